-- Up Migration

-- The double-entry ledger. Amounts are integer fen (bigint). The database itself refuses what
-- must never happen: empty entries, non-positive lines, edits or deletes of posted history,
-- balances that drift from postings, and overdrafts of no-negative accounts.

CREATE TABLE ledger_account (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  code                text NOT NULL UNIQUE CHECK (length(code) BETWEEN 3 AND 160),
  owner_type          text NOT NULL CHECK (owner_type IN ('card', 'merchant', 'bank', 'programme', 'centre', 'cardholder')),
  owner_id            text NOT NULL,
  purpose             text NOT NULL,
  currency            char(3) NOT NULL DEFAULT 'CNY' CHECK (currency = 'CNY'),
  normal_side         text NOT NULL CHECK (normal_side IN ('DEBIT', 'CREDIT')),
  no_negative         boolean NOT NULL DEFAULT false,
  -- Cumulative totals, TigerBeetle-style: the balance is derived from them by normal side.
  debits_posted_fen   bigint NOT NULL DEFAULT 0 CHECK (debits_posted_fen >= 0),
  credits_posted_fen  bigint NOT NULL DEFAULT 0 CHECK (credits_posted_fen >= 0),
  debits_pending_fen  bigint NOT NULL DEFAULT 0 CHECK (debits_pending_fen >= 0),
  credits_pending_fen bigint NOT NULL DEFAULT 0 CHECK (credits_pending_fen >= 0),
  created_at          timestamptz NOT NULL DEFAULT now(),
  -- Pending amounts that would reduce the balance count against it, so a hold can never be
  -- posted into an overdraft.
  CONSTRAINT ledger_account_no_negative CHECK (
    NOT no_negative OR (
      CASE normal_side
        WHEN 'CREDIT' THEN credits_posted_fen - debits_posted_fen - debits_pending_fen
        ELSE debits_posted_fen - credits_posted_fen - credits_pending_fen
      END) >= 0)
);
CREATE INDEX ledger_account_owner ON ledger_account (owner_type, owner_id);

CREATE TABLE ledger_entry (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  idem_key          text NOT NULL UNIQUE CHECK (length(idem_key) BETWEEN 1 AND 200),
  kind              text NOT NULL CHECK (length(kind) BETWEEN 1 AND 40),
  business_date     date NOT NULL,
  description       text CHECK (length(description) <= 500),
  metadata          jsonb,
  reverses_entry_id bigint REFERENCES ledger_entry (id),
  hold_id           bigint,
  posted_at         timestamptz NOT NULL DEFAULT now()
);
-- An entry is reversed in full at most once; partial corrections are adjusting entries.
CREATE UNIQUE INDEX ledger_entry_one_reversal ON ledger_entry (reverses_entry_id) WHERE kind = 'REVERSAL';
-- A hold is posted by at most one entry (which carries its hold_id).
CREATE UNIQUE INDEX ledger_entry_one_per_hold ON ledger_entry (hold_id) WHERE hold_id IS NOT NULL;
CREATE INDEX ledger_entry_business_date ON ledger_entry (business_date, id);

-- A posting line moves one amount from a debit account to a credit account. Every line, and
-- so every entry, balances by construction (Σ debits = Σ credits); a multi-leg entry is a set
-- of lines under one entry id, written by one statement.
CREATE TABLE ledger_posting (
  entry_id          bigint NOT NULL,
  line_no           integer NOT NULL CHECK (line_no >= 0),
  debit_account_id  bigint NOT NULL,
  credit_account_id bigint NOT NULL,
  amount_fen        bigint NOT NULL CHECK (amount_fen > 0),
  CHECK (debit_account_id <> credit_account_id),
  PRIMARY KEY (entry_id, line_no)
);
CREATE INDEX ledger_posting_debit ON ledger_posting (debit_account_id, entry_id);
CREATE INDEX ledger_posting_credit ON ledger_posting (credit_account_id, entry_id);

-- Two-phase transfers: a hold reserves an amount (pending), then is posted (in full or in part),
-- voided, or expires. Exactly one resolution per hold, enforced by its primary key.
CREATE TABLE ledger_hold (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  idem_key          text NOT NULL UNIQUE CHECK (length(idem_key) BETWEEN 1 AND 200),
  debit_account_id  bigint NOT NULL REFERENCES ledger_account (id),
  credit_account_id bigint NOT NULL REFERENCES ledger_account (id),
  amount_fen        bigint NOT NULL CHECK (amount_fen > 0),
  kind              text NOT NULL,
  metadata          jsonb,
  expires_at        timestamptz NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  CHECK (debit_account_id <> credit_account_id)
);
CREATE INDEX ledger_hold_expiry ON ledger_hold (expires_at);

CREATE TABLE ledger_hold_resolution (
  hold_id           bigint PRIMARY KEY REFERENCES ledger_hold (id),
  outcome           text NOT NULL CHECK (outcome IN ('POSTED', 'VOIDED', 'EXPIRED')),
  posted_amount_fen bigint NOT NULL DEFAULT 0 CHECK (posted_amount_fen >= 0),
  actor             text NOT NULL,
  resolved_at       timestamptz NOT NULL DEFAULT now(),
  CHECK (outcome = 'POSTED' OR posted_amount_fen = 0)
);

-- Posted history is immutable.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger history is immutable: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'P0001', HINT = 'correct a posted entry with a reversing or adjusting entry';
END $$;

CREATE TRIGGER ledger_entry_immutable BEFORE UPDATE OR DELETE ON ledger_entry
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entry_no_truncate BEFORE TRUNCATE ON ledger_entry
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_posting_immutable BEFORE UPDATE OR DELETE ON ledger_posting
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_posting_no_truncate BEFORE TRUNCATE ON ledger_posting
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_hold_immutable BEFORE UPDATE OR DELETE ON ledger_hold
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_hold_no_truncate BEFORE TRUNCATE ON ledger_hold
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_hold_resolution_immutable BEFORE UPDATE OR DELETE ON ledger_hold_resolution
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_hold_resolution_no_truncate BEFORE TRUNCATE ON ledger_hold_resolution
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Balances change only through postings and holds (the triggers below run at trigger depth 2);
-- a direct UPDATE of a balance column is refused, so a balance cannot drift from its postings.
CREATE FUNCTION ledger_account_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'ledger accounts are never deleted' USING ERRCODE = 'P0001';
  END IF;
  IF pg_trigger_depth() < 2 AND (
       NEW.debits_posted_fen IS DISTINCT FROM OLD.debits_posted_fen OR
       NEW.credits_posted_fen IS DISTINCT FROM OLD.credits_posted_fen OR
       NEW.debits_pending_fen IS DISTINCT FROM OLD.debits_pending_fen OR
       NEW.credits_pending_fen IS DISTINCT FROM OLD.credits_pending_fen OR
       NEW.normal_side IS DISTINCT FROM OLD.normal_side OR
       NEW.id IS DISTINCT FROM OLD.id) THEN
    RAISE EXCEPTION 'ledger balances change only through postings' USING ERRCODE = 'P0001';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER ledger_account_guard BEFORE UPDATE OR DELETE ON ledger_account
  FOR EACH ROW EXECUTE FUNCTION ledger_account_guard();
CREATE TRIGGER ledger_account_no_truncate BEFORE TRUNCATE ON ledger_account
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Apply a set of balance deltas: lock the touched accounts in id order (so concurrent batches
-- on the same hot accounts queue instead of deadlocking), then one aggregated UPDATE.
CREATE FUNCTION ledger_apply_deltas(d_ids bigint[], d_dr bigint[], d_cr bigint[], d_dr_pend bigint[], d_cr_pend bigint[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  n_expected int := cardinality(d_ids);
  n_locked int;
BEGIN
  PERFORM 1 FROM ledger_account WHERE id = ANY (d_ids) ORDER BY id FOR NO KEY UPDATE;
  GET DIAGNOSTICS n_locked = ROW_COUNT;
  IF n_locked <> n_expected THEN
    RAISE EXCEPTION 'posting names an unknown ledger account' USING ERRCODE = '23503';
  END IF;
  UPDATE ledger_account a SET
    debits_posted_fen   = a.debits_posted_fen + d.dr,
    credits_posted_fen  = a.credits_posted_fen + d.cr,
    debits_pending_fen  = a.debits_pending_fen + d.dr_pend,
    credits_pending_fen = a.credits_pending_fen + d.cr_pend
  FROM unnest(d_ids, d_dr, d_cr, d_dr_pend, d_cr_pend) AS d(id, dr, cr, dr_pend, cr_pend)
  WHERE a.id = d.id;
END $$;

CREATE FUNCTION ledger_after_postings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ids bigint[]; dr bigint[]; cr bigint[]; z bigint[];
BEGIN
  SELECT array_agg(account_id ORDER BY account_id), array_agg(s_dr ORDER BY account_id),
         array_agg(s_cr ORDER BY account_id), array_agg(0::bigint)
    INTO ids, dr, cr, z
  FROM (
    SELECT account_id, sum(a_dr)::bigint AS s_dr, sum(a_cr)::bigint AS s_cr FROM (
      SELECT debit_account_id AS account_id, amount_fen AS a_dr, 0::bigint AS a_cr FROM new_rows
      UNION ALL
      SELECT credit_account_id, 0::bigint, amount_fen FROM new_rows
    ) legs GROUP BY account_id
  ) agg;
  IF ids IS NOT NULL THEN
    PERFORM ledger_apply_deltas(ids, dr, cr, z, z);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER ledger_posting_balances AFTER INSERT ON ledger_posting
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger_after_postings();

-- An entry without lines is refused: checked once per statement over the new entries (the
-- data-modifying CTE that writes an entry and its lines fires this after both are in).
CREATE FUNCTION ledger_after_entries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  empty_id bigint;
BEGIN
  SELECT e.id INTO empty_id FROM new_rows e
  WHERE NOT EXISTS (SELECT 1 FROM ledger_posting p WHERE p.entry_id = e.id) LIMIT 1;
  IF empty_id IS NOT NULL THEN
    RAISE EXCEPTION 'ledger entry % has no posting lines', empty_id USING ERRCODE = '23514';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER ledger_entry_has_lines AFTER INSERT ON ledger_entry
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger_after_entries();

CREATE FUNCTION ledger_after_holds() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ids bigint[]; dp bigint[]; cp bigint[]; z bigint[];
BEGIN
  SELECT array_agg(account_id ORDER BY account_id), array_agg(s_dr ORDER BY account_id),
         array_agg(s_cr ORDER BY account_id), array_agg(0::bigint)
    INTO ids, dp, cp, z
  FROM (
    SELECT account_id, sum(a_dr)::bigint AS s_dr, sum(a_cr)::bigint AS s_cr FROM (
      SELECT debit_account_id AS account_id, amount_fen AS a_dr, 0::bigint AS a_cr FROM new_rows
      UNION ALL
      SELECT credit_account_id, 0::bigint, amount_fen FROM new_rows
    ) legs GROUP BY account_id
  ) agg;
  IF ids IS NOT NULL THEN
    PERFORM ledger_apply_deltas(ids, z, z, dp, cp);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER ledger_hold_pending AFTER INSERT ON ledger_hold
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger_after_holds();

-- Resolving a hold releases its whole pending amount; a partial post then posts only its part
-- through an ordinary entry. A posted amount above the hold is refused.
CREATE FUNCTION ledger_after_resolutions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ids bigint[]; dp bigint[]; cp bigint[]; z bigint[];
  bad_id bigint;
BEGIN
  SELECT r.hold_id INTO bad_id FROM new_rows r JOIN ledger_hold h ON h.id = r.hold_id
  WHERE r.posted_amount_fen > h.amount_fen LIMIT 1;
  IF bad_id IS NOT NULL THEN
    RAISE EXCEPTION 'hold % posted above its amount', bad_id USING ERRCODE = '23514';
  END IF;
  SELECT array_agg(account_id ORDER BY account_id), array_agg(-s_dr ORDER BY account_id),
         array_agg(-s_cr ORDER BY account_id), array_agg(0::bigint)
    INTO ids, dp, cp, z
  FROM (
    SELECT account_id, sum(a_dr)::bigint AS s_dr, sum(a_cr)::bigint AS s_cr FROM (
      SELECT h.debit_account_id AS account_id, h.amount_fen AS a_dr, 0::bigint AS a_cr
        FROM new_rows r JOIN ledger_hold h ON h.id = r.hold_id
      UNION ALL
      SELECT h.credit_account_id, 0::bigint, h.amount_fen
        FROM new_rows r JOIN ledger_hold h ON h.id = r.hold_id
    ) legs GROUP BY account_id
  ) agg;
  IF ids IS NOT NULL THEN
    PERFORM ledger_apply_deltas(ids, z, z, dp, cp);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER ledger_hold_release AFTER INSERT ON ledger_hold_resolution
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger_after_resolutions();

-- Down Migration
DROP TABLE IF EXISTS ledger_hold_resolution, ledger_hold, ledger_posting, ledger_entry, ledger_account CASCADE;
DROP FUNCTION IF EXISTS ledger_after_resolutions, ledger_after_holds, ledger_after_entries, ledger_after_postings,
  ledger_apply_deltas, ledger_account_guard, ledger_refuse_change;
