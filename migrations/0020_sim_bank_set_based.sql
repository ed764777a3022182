-- Up Migration

-- The simulated bank decides a batch whose cards are all different with one set-based statement.
-- Deciding in turn (0018's function, kept under the name sim_bank_decide_in_turn) runs six
-- statements per authorization inside a loop; a batch of distinct cards has nothing to decide in
-- turn, since no decision can depend on another's. A batch where a card or an authorization id
-- repeats is still decided in turn, so each of its decisions sees the one before.
--
-- Same answers as in turn, row `ord` answering authorization `ord`: an authorization id decided
-- before is answered as it was; one reversed before it arrived is declined
-- AUTHORIZATION_REVERSED; a card the bank does not hold (or holds for another bank)
-- UNKNOWN_ACCOUNT; one that would take the card's day over its daily limit
-- DAILY_LIMIT_EXCEEDED. The cards' locks are taken in key order before the statement, whose
-- snapshot is taken after them.
ALTER FUNCTION sim_bank_decide(int, text[], text[], text[], text[], bigint[], date, timestamptz) RENAME TO sim_bank_decide_in_turn;

CREATE FUNCTION sim_bank_decide(p_lock_ns int, p_auth_ids text[], p_bank_codes text[], p_card_nos text[],
                                p_merchant_ids text[], p_amounts bigint[], p_local_date date, p_at timestamptz)
RETURNS TABLE (ord bigint, approved boolean, auth_code text, decline_code text)
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
BEGIN
  IF (SELECT count(DISTINCT c) FROM unnest(p_card_nos) c) < cardinality(p_card_nos)
     OR (SELECT count(DISTINCT a) FROM unnest(p_auth_ids) a) < cardinality(p_auth_ids) THEN
    RETURN QUERY SELECT * FROM sim_bank_decide_in_turn(p_lock_ns, p_auth_ids, p_bank_codes, p_card_nos, p_merchant_ids,
                                                       p_amounts, p_local_date, p_at);
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(p_lock_ns, keys.k)
  FROM (SELECT DISTINCT hashtext(c) AS k FROM unnest(p_card_nos) c ORDER BY 1) keys;
  RETURN QUERY
  WITH r AS (
    SELECT * FROM unnest(p_auth_ids, p_bank_codes, p_card_nos, p_merchant_ids, p_amounts)
      WITH ORDINALITY AS u(auth_id, bank_code, card_no, merchant_id, amount_fen, n)),
  -- Each authorization with what it is decided on, and its decision if it is new. The auth code
  -- is drawn once here (a CTE read twice is computed once), for the answer and the record alike.
  f AS (
    SELECT r.*, a.auth_id IS NOT NULL AS decided, a.approved AS was_approved, a.auth_code AS was_code,
           a.decline_code AS was_decline,
           CASE WHEN EXISTS (SELECT 1 FROM sim_bank_reversal x WHERE x.auth_id = r.auth_id) THEN 'AUTHORIZATION_REVERSED'
                WHEN c.daily_limit_fen IS NULL OR c.issuing_bank IS DISTINCT FROM r.bank_code THEN 'UNKNOWN_ACCOUNT'
                WHEN coalesce(d.approved_fen, 0) + r.amount_fen > c.daily_limit_fen THEN 'DAILY_LIMIT_EXCEEDED'
           END AS decline,
           lpad(floor(random() * 1000000)::int::text, 6, '0') AS code
    FROM r
    LEFT JOIN LATERAL (SELECT x.auth_id, x.approved, x.auth_code, x.decline_code FROM sim_bank_authorization x
                       WHERE x.auth_id = r.auth_id LIMIT 1) a ON true
    LEFT JOIN LATERAL (SELECT x.daily_limit_fen, x.issuing_bank FROM card x WHERE x.card_no = r.card_no LIMIT 1) c ON true
    LEFT JOIN LATERAL (SELECT x.approved_fen FROM sim_bank_card_day x
                       WHERE x.card_no = r.card_no AND x.local_date = p_local_date LIMIT 1) d ON true),
  day AS (
    INSERT INTO sim_bank_card_day AS d (card_no, local_date, approved_fen)
    SELECT f.card_no, p_local_date, f.amount_fen FROM f WHERE NOT f.decided AND f.decline IS NULL ORDER BY f.card_no
    ON CONFLICT (card_no, local_date) DO UPDATE SET approved_fen = d.approved_fen + excluded.approved_fen
    RETURNING 1),
  recorded AS (
    INSERT INTO sim_bank_authorization (auth_id, bank_code, card_no, merchant_id, local_date, amount_fen, approved, auth_code,
                                        decline_code, decided_at)
    SELECT f.auth_id, f.bank_code, f.card_no, f.merchant_id, p_local_date, f.amount_fen, f.decline IS NULL,
           CASE WHEN f.decline IS NULL THEN f.code END, f.decline, p_at
    FROM f WHERE NOT f.decided ORDER BY f.auth_id
    RETURNING 1)
  SELECT f.n,
         CASE WHEN f.decided THEN f.was_approved ELSE f.decline IS NULL END,
         CASE WHEN f.decided THEN f.was_code WHEN f.decline IS NULL THEN f.code END,
         CASE WHEN f.decided THEN f.was_decline ELSE f.decline END
  FROM f ORDER BY f.n;
END $$;

-- Down Migration
DROP FUNCTION sim_bank_decide(int, text[], text[], text[], text[], bigint[], date, timestamptz);
ALTER FUNCTION sim_bank_decide_in_turn(int, text[], text[], text[], text[], bigint[], date, timestamptz) RENAME TO sim_bank_decide;
