-- Up Migration

-- Payments hot path. Nothing reads payments or purse loads by card and time, so those two
-- indexes only cost every write; they go.
DROP INDEX purse_load_by_card;
DROP INDEX payment_by_card;

-- The hot path of QR payments as functions, for one reason: plans. Their inputs are arrays (one
-- element per payment of a batch), for which Postgres estimates 100 rows and so re-plans every
-- execution of a prepared statement with a custom plan (about 1 ms of CPU per batch, more than
-- running it). A function marked force_generic_plan is planned once per session. Every lookup is
-- a LATERAL ... LIMIT 1 probe of a unique index, so the generic plan cannot turn into a scan.

-- What QR payments are decided on, for a batch (row `ord` answers item `ord`): the merchant, the
-- terminal, an earlier payment under the order id, the card, an earlier use of the code, whether
-- the bill is paid, and (when asked) what the card's medical personal account can spend: the
-- ledger's available balance of a credit-normal account (posted credits - posted debits -
-- pending debits).
CREATE FUNCTION payments_qr_facts(p_merchant_ids text[], p_order_ids text[], p_card_nos text[], p_terminal_ids text[],
                                  p_code_ids text[], p_bill_ids text[], p_want_medical boolean[])
RETURNS TABLE (ord bigint, merchant_kind text, merchant_status text, terminal_merchant_id text, terminal_status text,
               existing_id text, existing_sha256 text, card_status text, issuing_bank text,
               used_by_merchant_id text, used_by_order_id text, bill_paid boolean, medical_available_fen bigint)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
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

-- The claim of a batch of QR payments, inside the posting transaction. First the shared
-- clearing-cycle lock (the lock openCycleForWrite takes, its key passed by the caller), then the
-- open cycle read in a snapshot taken after it (each statement of a function takes its own), so
-- a cycle's close waits for the payment and the payment lands in exactly one cycle. Then a
-- payment is recorded only if its card is still ACTIVE, its code unused and its order (and bill)
-- not yet paid; codes are claimed in code order and payments in order-id order, so two batches
-- never wait on each other in a cycle. Each code, order and bill appears at most once in a batch
-- (the caller sees to it). Row `ord` answers item `ord`: its payment, or nulls (it lost a race),
-- and whether its code was claimed. No open cycle at all: nothing is written, open_cycle_id is
-- null, and the caller opens the first cycle and claims again.
CREATE FUNCTION payments_claim_qr(p_lock_a int, p_lock_b int, p_at timestamptz,
    p_id text[], p_merchant_id text[], p_order_id text[], p_request_sha256 text[], p_merchant_kind text[], p_card_no text[],
    p_issuing_bank text[], p_amount_fen bigint[], p_medical_fen bigint[], p_self_pay_fen bigint[], p_code_id text[],
    p_terminal_id text[], p_medical_visit_no text[], p_customer_no text[], p_bill_id text[], p_bank_auth_id text[],
    p_bank_auth_code text[], p_entry_idem_key text[], p_issued_at_s bigint[], p_actor text[])
RETURNS TABLE (ord bigint, open_cycle_id text, code_claimed boolean,
               id text, merchant_id text, order_id text, request_sha256 text, merchant_kind text, card_no text, issuing_bank text,
               amount_fen bigint, medical_fen bigint, self_pay_fen bigint, terminal_id text, medical_visit_no text,
               customer_no text, bill_id text, bank_auth_id text, bank_auth_code text, entry_idem_key text,
               cycle_id text, business_date date, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
BEGIN
  PERFORM pg_advisory_xact_lock_shared(p_lock_a, p_lock_b);
  RETURN QUERY
  WITH cyc AS (SELECT y.id, y.business_date FROM clearing_cycle y WHERE y.state = 'OPEN'),
  r AS (
    SELECT * FROM unnest(p_id, p_merchant_id, p_order_id, p_request_sha256, p_merchant_kind, p_card_no, p_issuing_bank,
                         p_amount_fen, p_medical_fen, p_self_pay_fen, p_code_id, p_terminal_id, p_medical_visit_no,
                         p_customer_no, p_bill_id, p_bank_auth_id, p_bank_auth_code, p_entry_idem_key, p_issued_at_s, p_actor)
      WITH ORDINALITY AS r(id, merchant_id, order_id, request_sha256, merchant_kind, card_no, issuing_bank, amount_fen,
                           medical_fen, self_pay_fen, code_id, terminal_id, medical_visit_no, customer_no, bill_id,
                           bank_auth_id, bank_auth_code, entry_idem_key, issued_at_s, actor, ord)),
  use AS (
    INSERT INTO qr_code_use AS q (code_id, card_no, merchant_id, order_id, payment_id, issued_at, used_at)
    SELECT r.code_id, r.card_no, r.merchant_id, r.order_id, r.id, to_timestamp(r.issued_at_s), p_at
    FROM r CROSS JOIN cyc
    CROSS JOIN LATERAL (SELECT 1 FROM card x WHERE x.card_no = r.card_no AND x.status = 'ACTIVE' LIMIT 1) active
    ORDER BY r.code_id
    ON CONFLICT (code_id) DO NOTHING
    RETURNING q.code_id),
  ins AS (
    INSERT INTO payment AS n (id, merchant_id, order_id, request_sha256, merchant_kind, card_no, issuing_bank, amount_fen,
                              medical_fen, self_pay_fen, qr_code_id, terminal_id, medical_visit_no, customer_no, bill_id,
                              bank_auth_id, bank_auth_code, entry_idem_key, cycle_id, business_date, actor, created_at)
    SELECT r.id, r.merchant_id, r.order_id, r.request_sha256, r.merchant_kind, r.card_no, r.issuing_bank, r.amount_fen,
           r.medical_fen, r.self_pay_fen, r.code_id, r.terminal_id, r.medical_visit_no, r.customer_no, r.bill_id,
           r.bank_auth_id, r.bank_auth_code, r.entry_idem_key, cyc.id, cyc.business_date, r.actor, p_at
    FROM r JOIN use ON use.code_id = r.code_id CROSS JOIN cyc
    ORDER BY r.merchant_id, r.order_id
    ON CONFLICT DO NOTHING
    RETURNING n.*)
  SELECT r.ord, (SELECT cyc.id FROM cyc), (use.code_id IS NOT NULL),
         p.id, p.merchant_id, p.order_id, p.request_sha256, p.merchant_kind, p.card_no, p.issuing_bank,
         p.amount_fen, p.medical_fen, p.self_pay_fen, p.terminal_id, p.medical_visit_no,
         p.customer_no, p.bill_id, p.bank_auth_id, p.bank_auth_code, p.entry_idem_key,
         p.cycle_id, p.business_date, p.created_at
  FROM r LEFT JOIN use ON use.code_id = r.code_id LEFT JOIN ins p ON p.id = r.id
  ORDER BY r.ord;
END $$;

-- The simulated bank's read for a batch of authorizations: the cards' locks (in key order, so
-- concurrent batches never deadlock), then each authorization (if already decided) and its
-- card's approved total for the day, in a snapshot taken after the locks.
CREATE FUNCTION sim_bank_lock_and_read(p_lock_ns int, p_auth_ids text[], p_card_nos text[], p_local_date date)
RETURNS TABLE (ord bigint, approved boolean, auth_code text, decline_code text, reversed boolean,
               daily_limit_fen bigint, issuing_bank text, approved_today_fen bigint)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
BEGIN
  PERFORM pg_advisory_xact_lock(p_lock_ns, keys.k)
  FROM (SELECT DISTINCT hashtext(c) AS k FROM unnest(p_card_nos) c ORDER BY 1) keys;
  RETURN QUERY
  SELECT r.ord, a.approved, a.auth_code, a.decline_code,
         EXISTS (SELECT 1 FROM sim_bank_reversal v WHERE v.auth_id = r.auth_id),
         c.daily_limit_fen, c.issuing_bank,
         (SELECT coalesce(sum(x.amount_fen), 0) FROM sim_bank_authorization x
           WHERE x.card_no = r.card_no AND x.local_date = p_local_date AND x.approved
             AND NOT EXISTS (SELECT 1 FROM sim_bank_reversal v WHERE v.auth_id = x.auth_id))::bigint
  FROM unnest(p_auth_ids, p_card_nos) WITH ORDINALITY AS r(auth_id, card_no, ord)
  LEFT JOIN LATERAL (SELECT x.approved, x.auth_code, x.decline_code FROM sim_bank_authorization x WHERE x.auth_id = r.auth_id LIMIT 1) a ON true
  LEFT JOIN LATERAL (SELECT x.daily_limit_fen, x.issuing_bank FROM card x WHERE x.card_no = r.card_no LIMIT 1) c ON true
  ORDER BY r.ord;
END $$;

-- Down Migration
DROP FUNCTION IF EXISTS sim_bank_lock_and_read, payments_claim_qr, payments_qr_facts;
CREATE INDEX purse_load_by_card ON purse_load (card_no, created_at);
CREATE INDEX payment_by_card ON payment (card_no, created_at);
