-- Up Migration

-- A batch of QR payments posted in one round trip: BEGIN, the claim, the ledger's entries and
-- COMMIT travel as one request (simple protocol). Each round trip on a busy 2-core machine costs
-- far more than the statement it carries (the engine's event loop and Postgres' backends take
-- turns on the same cores), and the posting transaction is the pipeline's narrowest stage.
-- Neither statement may then depend on the other's answer: each raises instead of reporting, so
-- the transaction fails as a whole and the engine posts that batch the long way (claim, read the
-- outcome, post what won, commit).

-- The ledger's insert for entries that are all new: no ON CONFLICT, so a key posted before is a
-- unique violation (postBatch tells replays from conflicts), and a line without its entry is an
-- error. A function so that it is planned once per session (its inputs are arrays).
CREATE FUNCTION ledger_post_new_entries(e_idem_key text[], e_kind text[], e_business_date date[], e_description text[],
    e_metadata jsonb[], e_reverses_entry_id bigint[], e_hold_id bigint[],
    l_idem_key text[], l_line_no int[], l_debit_account_id bigint[], l_credit_account_id bigint[], l_amount_fen bigint[])
RETURNS int
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  lines_written int;
BEGIN
  WITH e AS (
    INSERT INTO ledger_entry (idem_key, kind, business_date, description, metadata, reverses_entry_id, hold_id)
    SELECT * FROM unnest(e_idem_key, e_kind, e_business_date, e_description, e_metadata, e_reverses_entry_id, e_hold_id)
    RETURNING id, idem_key
  ), l AS (
    INSERT INTO ledger_posting (entry_id, line_no, debit_account_id, credit_account_id, amount_fen)
    SELECT e.id, x.line_no, x.dr, x.cr, x.amt
    FROM unnest(l_idem_key, l_line_no, l_debit_account_id, l_credit_account_id, l_amount_fen) AS x(idem_key, line_no, dr, cr, amt)
    JOIN e ON e.idem_key = x.idem_key
    RETURNING 1
  )
  SELECT count(*) INTO lines_written FROM l;
  IF lines_written <> cardinality(l_idem_key) THEN
    RAISE EXCEPTION 'ledger_post_new_entries: % of % lines matched an entry of the batch', lines_written, cardinality(l_idem_key)
      USING ERRCODE = '23514';
  END IF;
  RETURN cardinality(e_idem_key);
END $$;

-- The claim of a batch that must win whole, in the open cycle the engine expects (it knows the
-- cycle from its last claim; the cycle changes once a day). Anything else (a code, order or bill
-- taken meanwhile by another payment, a card no longer active, another cycle) raises, and the
-- batch is posted the long way.
CREATE FUNCTION payments_claim_qr_all(p_cycle_id text, p_lock_a int, p_lock_b int, p_at timestamptz,
    p_id text[], p_merchant_id text[], p_order_id text[], p_request_sha256 text[], p_merchant_kind text[], p_card_no text[],
    p_issuing_bank text[], p_amount_fen bigint[], p_medical_fen bigint[], p_self_pay_fen bigint[], p_code_id text[],
    p_terminal_id text[], p_medical_visit_no text[], p_customer_no text[], p_bill_id text[], p_bank_auth_id text[],
    p_bank_auth_code text[], p_entry_idem_key text[], p_issued_at_s bigint[], p_actor text[])
RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  won int;
  asked int;
BEGIN
  SELECT count(*) FILTER (WHERE c.id IS NOT NULL AND c.cycle_id = p_cycle_id), count(*) INTO won, asked
  FROM payments_claim_qr(p_lock_a, p_lock_b, p_at, p_id, p_merchant_id, p_order_id, p_request_sha256, p_merchant_kind,
                         p_card_no, p_issuing_bank, p_amount_fen, p_medical_fen, p_self_pay_fen, p_code_id, p_terminal_id,
                         p_medical_visit_no, p_customer_no, p_bill_id, p_bank_auth_id, p_bank_auth_code, p_entry_idem_key,
                         p_issued_at_s, p_actor) c;
  IF won <> asked THEN
    RAISE EXCEPTION 'payments_claim_qr_all: % of % payments claimed in cycle %', won, asked, p_cycle_id;
  END IF;
  RETURN won;
END $$;

-- The facts of a batch also give the medical personal account's id, so the posting needs no
-- round trip to look it up (0009's function otherwise unchanged, with 0016's settings).
DROP FUNCTION payments_qr_facts(text[], text[], text[], text[], text[], text[], boolean[]);
CREATE FUNCTION payments_qr_facts(p_merchant_ids text[], p_order_ids text[], p_card_nos text[], p_terminal_ids text[],
                                  p_code_ids text[], p_bill_ids text[], p_want_medical boolean[])
RETURNS TABLE (ord bigint, merchant_kind text, merchant_status text, terminal_merchant_id text, terminal_status text,
               existing_id text, existing_sha256 text, card_status text, issuing_bank text,
               used_by_merchant_id text, used_by_order_id text, bill_paid boolean, medical_available_fen bigint,
               medical_account_id bigint)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT r.ord, m.kind, m.status, t.merchant_id, t.status, p.id, p.request_sha256, c.status, c.issuing_bank,
         u.merchant_id, u.order_id, coalesce(b.paid, false),
         coalesce(a.available_fen, 0)::bigint, a.id
  FROM unnest(p_merchant_ids, p_order_ids, p_card_nos, p_terminal_ids, p_code_ids, p_bill_ids, p_want_medical)
       WITH ORDINALITY AS r(merchant_id, order_id, card_no, terminal_id, code_id, bill_id, want_medical, ord)
  LEFT JOIN LATERAL (SELECT x.kind, x.status FROM merchant x WHERE x.id = r.merchant_id LIMIT 1) m ON true
  LEFT JOIN LATERAL (SELECT x.merchant_id, x.status FROM terminal x WHERE x.id = r.terminal_id LIMIT 1) t ON true
  LEFT JOIN LATERAL (SELECT x.id, x.request_sha256 FROM payment x WHERE x.merchant_id = r.merchant_id AND x.order_id = r.order_id LIMIT 1) p ON true
  LEFT JOIN LATERAL (SELECT x.status, x.issuing_bank FROM card x WHERE x.card_no = r.card_no LIMIT 1) c ON true
  LEFT JOIN LATERAL (SELECT x.merchant_id, x.order_id FROM qr_code_use x WHERE x.code_id = r.code_id LIMIT 1) u ON true
  LEFT JOIN LATERAL (SELECT true AS paid FROM payment x
                     WHERE x.merchant_id = r.merchant_id AND x.bill_id = r.bill_id AND x.bill_released_at IS NULL LIMIT 1) b ON true
  LEFT JOIN LATERAL (SELECT x.id, greatest(x.credits_posted_fen - x.debits_posted_fen - x.debits_pending_fen, 0) AS available_fen
                     FROM ledger_account x WHERE r.want_medical AND x.code = 'card:' || r.card_no || ':medical' AND x.normal_side = 'CREDIT' LIMIT 1) a ON true
  ORDER BY r.ord;
END $$;

-- Down Migration
DROP FUNCTION payments_qr_facts(text[], text[], text[], text[], text[], text[], boolean[]);
CREATE FUNCTION payments_qr_facts(p_merchant_ids text[], p_order_ids text[], p_card_nos text[], p_terminal_ids text[],
                                  p_code_ids text[], p_bill_ids text[], p_want_medical boolean[])
RETURNS TABLE (ord bigint, merchant_kind text, merchant_status text, terminal_merchant_id text, terminal_status text,
               existing_id text, existing_sha256 text, card_status text, issuing_bank text,
               used_by_merchant_id text, used_by_order_id text, bill_paid boolean, medical_available_fen bigint)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT r.ord, m.kind, m.status, t.merchant_id, t.status, p.id, p.request_sha256, c.status, c.issuing_bank,
         u.merchant_id, u.order_id, coalesce(b.paid, false),
         coalesce(a.available_fen, 0)::bigint
  FROM unnest(p_merchant_ids, p_order_ids, p_card_nos, p_terminal_ids, p_code_ids, p_bill_ids, p_want_medical)
       WITH ORDINALITY AS r(merchant_id, order_id, card_no, terminal_id, code_id, bill_id, want_medical, ord)
  LEFT JOIN LATERAL (SELECT x.kind, x.status FROM merchant x WHERE x.id = r.merchant_id LIMIT 1) m ON true
  LEFT JOIN LATERAL (SELECT x.merchant_id, x.status FROM terminal x WHERE x.id = r.terminal_id LIMIT 1) t ON true
  LEFT JOIN LATERAL (SELECT x.id, x.request_sha256 FROM payment x WHERE x.merchant_id = r.merchant_id AND x.order_id = r.order_id LIMIT 1) p ON true
  LEFT JOIN LATERAL (SELECT x.status, x.issuing_bank FROM card x WHERE x.card_no = r.card_no LIMIT 1) c ON true
  LEFT JOIN LATERAL (SELECT x.merchant_id, x.order_id FROM qr_code_use x WHERE x.code_id = r.code_id LIMIT 1) u ON true
  LEFT JOIN LATERAL (SELECT true AS paid FROM payment x
                     WHERE x.merchant_id = r.merchant_id AND x.bill_id = r.bill_id AND x.bill_released_at IS NULL LIMIT 1) b ON true
  LEFT JOIN LATERAL (SELECT greatest(x.credits_posted_fen - x.debits_posted_fen - x.debits_pending_fen, 0) AS available_fen
                     FROM ledger_account x WHERE r.want_medical AND x.code = 'card:' || r.card_no || ':medical' AND x.normal_side = 'CREDIT' LIMIT 1) a ON true
  ORDER BY r.ord;
END $$;
DROP FUNCTION IF EXISTS payments_claim_qr_all, ledger_post_new_entries;
