-- Up Migration

-- The simulated bank decides a batch of authorizations in one round trip: one function takes the
-- cards' locks, decides each authorization in arrival order and records it. It stands in for a
-- bank's own authorization system, which decides inside its books the same way.
--
-- A card's approved total for the day is kept in its own row (card and Asia/Shanghai date), read
-- and written by primary key: approvals add to it, the reversal of an approval takes its amount
-- back out. Summing the day's authorizations instead needed a plan that depends on the table's
-- statistics (see 0016), and a probe of a primary key has one plan whatever they are.
CREATE TABLE sim_bank_card_day (
  card_no      text NOT NULL,
  local_date   date NOT NULL,
  approved_fen bigint NOT NULL CHECK (approved_fen >= 0),
  PRIMARY KEY (card_no, local_date)
);

INSERT INTO sim_bank_card_day (card_no, local_date, approved_fen)
SELECT a.card_no, a.local_date, sum(a.amount_fen)
FROM sim_bank_authorization a
WHERE a.approved AND NOT EXISTS (SELECT 1 FROM sim_bank_reversal v WHERE v.auth_id = a.auth_id)
GROUP BY a.card_no, a.local_date;

-- Row `ord` answers authorization `ord`. An authorization id decided before is answered as it was
-- (the bank's idempotency); one reversed before it arrived is declined AUTHORIZATION_REVERSED; a
-- card the bank does not hold (or holds for another bank) UNKNOWN_ACCOUNT; one that would take
-- the card's day over its daily limit DAILY_LIMIT_EXCEEDED. Cards' locks are taken in key order,
-- so concurrent batches never deadlock, and within a batch each decision sees the one before.
CREATE FUNCTION sim_bank_decide(p_lock_ns int, p_auth_ids text[], p_bank_codes text[], p_card_nos text[],
                                p_merchant_ids text[], p_amounts bigint[], p_local_date date, p_at timestamptz)
RETURNS TABLE (ord bigint, approved boolean, auth_code text, decline_code text)
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off AS $$
DECLARE
  r record;
  v_limit bigint;
  v_bank text;
  v_today bigint;
  v_code text;
  v_decline text;
BEGIN
  PERFORM pg_advisory_xact_lock(p_lock_ns, keys.k)
  FROM (SELECT DISTINCT hashtext(c) AS k FROM unnest(p_card_nos) c ORDER BY 1) keys;
  FOR r IN
    SELECT * FROM unnest(p_auth_ids, p_bank_codes, p_card_nos, p_merchant_ids, p_amounts)
      WITH ORDINALITY AS u(auth_id, bank_code, card_no, merchant_id, amount_fen, n)
    ORDER BY u.n
  LOOP
    ord := r.n;
    SELECT a.approved, a.auth_code, a.decline_code INTO approved, auth_code, decline_code
    FROM sim_bank_authorization a WHERE a.auth_id = r.auth_id;
    IF NOT FOUND THEN
      v_code := NULL;
      v_decline := NULL;
      SELECT c.daily_limit_fen, c.issuing_bank INTO v_limit, v_bank FROM card c WHERE c.card_no = r.card_no;
      IF EXISTS (SELECT 1 FROM sim_bank_reversal x WHERE x.auth_id = r.auth_id) THEN
        v_decline := 'AUTHORIZATION_REVERSED';
      ELSIF v_limit IS NULL OR v_bank IS DISTINCT FROM r.bank_code THEN
        v_decline := 'UNKNOWN_ACCOUNT';
      ELSE
        SELECT d.approved_fen INTO v_today FROM sim_bank_card_day d WHERE d.card_no = r.card_no AND d.local_date = p_local_date;
        IF coalesce(v_today, 0) + r.amount_fen > v_limit THEN
          v_decline := 'DAILY_LIMIT_EXCEEDED';
        ELSE
          v_code := lpad(floor(random() * 1000000)::int::text, 6, '0');
          INSERT INTO sim_bank_card_day AS d (card_no, local_date, approved_fen) VALUES (r.card_no, p_local_date, r.amount_fen)
          ON CONFLICT (card_no, local_date) DO UPDATE SET approved_fen = d.approved_fen + excluded.approved_fen;
        END IF;
      END IF;
      INSERT INTO sim_bank_authorization (auth_id, bank_code, card_no, merchant_id, local_date, amount_fen, approved, auth_code, decline_code, decided_at)
      VALUES (r.auth_id, r.bank_code, r.card_no, r.merchant_id, p_local_date, r.amount_fen, v_decline IS NULL, v_code, v_decline, p_at);
      approved := v_decline IS NULL;
      auth_code := v_code;
      decline_code := v_decline;
    END IF;
    RETURN NEXT;
  END LOOP;
END $$;

-- A reversal (idempotent; it may arrive before the authorization it reverses, which is then
-- declined when it comes). Reversing an approval gives its amount back to the card's day.
CREATE FUNCTION sim_bank_reverse(p_lock_ns int, p_auth_id text, p_card_no text, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off AS $$
DECLARE
  a record;
BEGIN
  PERFORM pg_advisory_xact_lock(p_lock_ns, hashtext(p_card_no));
  INSERT INTO sim_bank_reversal (auth_id, card_no, reversed_at) VALUES (p_auth_id, p_card_no, p_at) ON CONFLICT (auth_id) DO NOTHING;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  SELECT x.card_no, x.local_date, x.amount_fen INTO a FROM sim_bank_authorization x WHERE x.auth_id = p_auth_id AND x.approved;
  IF FOUND THEN
    UPDATE sim_bank_card_day d SET approved_fen = d.approved_fen - a.amount_fen WHERE d.card_no = a.card_no AND d.local_date = a.local_date;
  END IF;
END $$;

DROP FUNCTION sim_bank_lock_and_read(int, text[], text[], date);

-- Down Migration
DROP FUNCTION IF EXISTS sim_bank_decide, sim_bank_reverse;
DROP TABLE IF EXISTS sim_bank_card_day;
CREATE FUNCTION sim_bank_lock_and_read(p_lock_ns int, p_auth_ids text[], p_card_nos text[], p_local_date date)
RETURNS TABLE (ord bigint, approved boolean, auth_code text, decline_code text, reversed boolean,
               daily_limit_fen bigint, issuing_bank text, approved_today_fen bigint)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_custom_plan SET enable_seqscan = off AS $$
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
