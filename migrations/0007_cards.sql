-- Up Migration

-- Cardholders and the card lifecycle the city's regulation asks for: applications, loss reports,
-- replacements, cancellations with refunds, suspensions for misuse; the hotlist terminals
-- download; misuse cases' outcomes (integrity records, recoveries); complaints; and the
-- append-only, hash-chained audit log of every read of personal data and every privileged act.
--
-- Personal data is never stored in plaintext: each value is sealed by the engine (SM4-CTR +
-- HMAC-SM3, encrypt-then-MAC, CARD-SECURITY.md) and looked up through a keyed blind index.

-- Append-only tables share one refusal (the ledger's and reference history's are separate on
-- purpose: their messages name their own tables).
CREATE FUNCTION cards_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'history is append-only: % on % refused', TG_OP, TG_TABLE_NAME USING ERRCODE = 'P0001';
END $$;

-- ---------------------------------------------------------------------------------------------
-- Persons
-- ---------------------------------------------------------------------------------------------

-- `eligibility` is the basis on which the person may hold a card (engine/cards/eligibility.ts
-- documents each value). `pii_key_version` is the key version every sealed column of the row is
-- sealed under: the rotation job looks for rows below the current one.
CREATE TABLE person (
  id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name_sealed           bytea NOT NULL,
  national_id_sealed    bytea NOT NULL,
  phone_sealed          bytea,
  address_sealed        bytea,
  national_id_index     bytea NOT NULL CHECK (length(national_id_index) = 32),
  phone_index           bytea CHECK (phone_index IS NULL OR length(phone_index) = 32),
  eligibility           text NOT NULL CHECK (eligibility IN ('LOCAL_HOUSEHOLD', 'RESIDENCE_PERMIT', 'INSURED_EMPLOYEE',
                          'INSURED_RESIDENT', 'HMT_RESIDENT', 'FOREIGN_PERMANENT_RESIDENT')),
  eligibility_valid_until date,
  pii_key_version       smallint NOT NULL CHECK (pii_key_version BETWEEN 1 AND 255),
  created_at            timestamptz NOT NULL,
  created_by            text NOT NULL,
  CHECK ((phone_sealed IS NULL) = (phone_index IS NULL))
);
-- One person per national ID number.
CREATE UNIQUE INDEX person_by_national_id ON person (national_id_index);
CREATE INDEX person_by_phone ON person (phone_index) WHERE phone_index IS NOT NULL;
CREATE INDEX person_by_key_version ON person (pii_key_version, id);

-- ---------------------------------------------------------------------------------------------
-- Applications and lifecycle actions
-- ---------------------------------------------------------------------------------------------

-- Generated card numbers come from one sequence (engine/cards/card-numbers.ts adds the BIN, the
-- form digit and the Luhn check digit), so two applications never draw the same number.
CREATE SEQUENCE card_serial_seq AS bigint MINVALUE 1 MAXVALUE 99999999999 NO CYCLE;

-- `request_fingerprint` is a keyed digest (the PII blind-index key) of the request, so a replay
-- can be compared with the original without keeping the personal data it carried.
CREATE TABLE card_application (
  id                   text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
  person_id            bigint NOT NULL REFERENCES person (id),
  eligibility          text NOT NULL,
  issuing_bank         text NOT NULL REFERENCES bank (code),
  physical_card_no     text NOT NULL REFERENCES card (card_no),
  ecard_no             text NOT NULL REFERENCES card (card_no),
  channel              text NOT NULL,
  request_fingerprint  bytea NOT NULL,
  created_at           timestamptz NOT NULL,
  created_by           text NOT NULL
);
CREATE INDEX card_application_by_person ON card_application (person_id);
CREATE TRIGGER card_application_immutable BEFORE UPDATE OR DELETE ON card_application
  FOR EACH ROW EXECUTE FUNCTION cards_refuse_change();

-- One row per lifecycle action (activation, loss report, unfreeze, replacement, cancellation,
-- suspension, reinstatement): who, through which channel, why, when, and the answer given, so a
-- replayed request (same card and request id) returns the first answer.
CREATE TABLE card_action (
  id                   bigint GENERATED ALWAYS AS IDENTITY,
  card_no              text NOT NULL REFERENCES card (card_no),
  request_id           text NOT NULL CHECK (request_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  action               text NOT NULL CHECK (action IN ('ACTIVATE', 'REPORT_LOSS', 'UNFREEZE', 'REPLACE', 'CANCEL', 'SUSPEND', 'REINSTATE')),
  from_status          text NOT NULL,
  to_status            text NOT NULL,
  effective_at         timestamptz NOT NULL,
  actor                text NOT NULL,
  role                 text NOT NULL,
  channel              text NOT NULL,
  reason               text CHECK (reason IS NULL OR length(reason) <= 500),
  case_id              bigint REFERENCES risk_case (id),
  new_card_no          text REFERENCES card (card_no),
  request_fingerprint  text NOT NULL,
  response             jsonb NOT NULL,
  PRIMARY KEY (card_no, id),
  UNIQUE (card_no, request_id)
);
CREATE TRIGGER card_action_immutable BEFORE UPDATE OR DELETE ON card_action
  FOR EACH ROW EXECUTE FUNCTION cards_refuse_change();

-- Purse (and medical account) balances refunded when a card is cancelled: the issuing bank pays
-- them into the cardholder's account. The bank's next settlement package lists these rows
-- (by issuing_bank and cycle_id); the ledger entry credits the bank's clearing account.
CREATE TABLE card_refund (
  id               bigint GENERATED ALWAYS AS IDENTITY,
  card_no          text NOT NULL REFERENCES card (card_no),
  account_purpose  text NOT NULL CHECK (account_purpose IN ('purse', 'medical')),
  issuing_bank     text NOT NULL REFERENCES bank (code),
  amount_fen       bigint NOT NULL CHECK (amount_fen > 0),
  cycle_id         text NOT NULL REFERENCES clearing_cycle (id),
  business_date    date NOT NULL,
  ledger_entry_id  bigint NOT NULL,
  created_at       timestamptz NOT NULL,
  created_by       text NOT NULL,
  PRIMARY KEY (card_no, id),
  UNIQUE (card_no, account_purpose)
);
CREATE INDEX card_refund_by_bank_cycle ON card_refund (issuing_bank, cycle_id);
CREATE TRIGGER card_refund_immutable BEFORE UPDATE OR DELETE ON card_refund
  FOR EACH ROW EXECUTE FUNCTION cards_refuse_change();

-- ---------------------------------------------------------------------------------------------
-- Hotlist
-- ---------------------------------------------------------------------------------------------

-- Every change of a card into or out of a hotlisted status (LOST_REPORTED, SUSPENDED,
-- CANCELLED), whoever makes it, gets the next version. Versions are gapless and commit in order:
-- the trigger takes a transaction-level advisory lock before drawing max(version) + 1, so a
-- terminal that has applied every change up to N and asks for "since N" can never miss one that
-- commits later with a smaller number.
CREATE TABLE hotlist_change (
  version     bigint PRIMARY KEY CHECK (version > 0),
  card_no     text NOT NULL,
  op          text NOT NULL CHECK (op IN ('ADD', 'REMOVE')),
  status      text NOT NULL,
  changed_at  timestamptz NOT NULL
);
CREATE TRIGGER hotlist_change_immutable BEFORE UPDATE OR DELETE ON hotlist_change
  FOR EACH ROW EXECUTE FUNCTION cards_refuse_change();
CREATE TRIGGER hotlist_change_no_truncate BEFORE TRUNCATE ON hotlist_change
  FOR EACH STATEMENT EXECUTE FUNCTION cards_refuse_change();

CREATE FUNCTION card_hotlist_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  was_listed boolean := TG_OP = 'UPDATE' AND OLD.status IN ('LOST_REPORTED', 'SUSPENDED', 'CANCELLED');
  is_listed boolean := NEW.status IN ('LOST_REPORTED', 'SUSPENDED', 'CANCELLED');
  next_version bigint;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.status = OLD.status THEN RETURN NULL; END IF;
  IF NOT was_listed AND NOT is_listed THEN RETURN NULL; END IF;
  PERFORM pg_advisory_xact_lock(7300, 1);
  SELECT coalesce(max(version), 0) + 1 INTO next_version FROM hotlist_change;
  INSERT INTO hotlist_change (version, card_no, op, status, changed_at)
  VALUES (next_version, NEW.card_no, CASE WHEN is_listed THEN 'ADD' ELSE 'REMOVE' END, NEW.status, NEW.status_since);
  RETURN NULL;
END $$;
CREATE TRIGGER card_hotlist AFTER INSERT OR UPDATE OF status ON card
  FOR EACH ROW EXECUTE FUNCTION card_hotlist_track();
-- The full list is read from the card table itself, at a version, in card number order.
CREATE INDEX card_hotlisted ON card (card_no) WHERE status IN ('LOST_REPORTED', 'SUSPENDED', 'CANCELLED');

-- ---------------------------------------------------------------------------------------------
-- Misuse cases: outcomes (risk_case and risk_case_event are in 0003)
-- ---------------------------------------------------------------------------------------------

ALTER TABLE risk_case ADD COLUMN assignee text CHECK (assignee IS NULL OR length(assignee) BETWEEN 1 AND 200);
CREATE INDEX risk_case_by_state_kind ON risk_case (state, kind, id);
CREATE INDEX risk_case_event_by_case ON risk_case_event (case_id, id);
CREATE TRIGGER risk_case_event_immutable BEFORE UPDATE OR DELETE ON risk_case_event
  FOR EACH ROW EXECUTE FUNCTION cards_refuse_change();

-- The cardholder's integrity (credit) record, written when a misuse case is confirmed.
CREATE TABLE integrity_record (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  person_id  bigint REFERENCES person (id),
  card_no    text,
  kind       text NOT NULL CHECK (kind IN ('CARD_LENDING_FOR_PROFIT', 'IMPERSONATION', 'FORGED_CARD', 'FRAUDULENT_CLAIM', 'OTHER_MISUSE')),
  case_id    bigint NOT NULL REFERENCES risk_case (id),
  note       text CHECK (note IS NULL OR length(note) <= 500),
  at         timestamptz NOT NULL,
  actor      text NOT NULL,
  UNIQUE (case_id, kind),
  CHECK (person_id IS NOT NULL OR card_no IS NOT NULL)
);
CREATE INDEX integrity_record_by_person ON integrity_record (person_id) WHERE person_id IS NOT NULL;
CREATE TRIGGER integrity_record_immutable BEFORE UPDATE OR DELETE ON integrity_record
  FOR EACH ROW EXECUTE FUNCTION cards_refuse_change();

-- Funds obtained by fraud (impersonation, a forged card) and the fine (2×–5× of them) a
-- confirmed FRAUD case makes the cardholder owe: both are booked as a receivable from the
-- cardholder. `collected_fen` is the sum of recovery_collection rows, kept here under the row's
-- lock so an over-collection is refused.
CREATE TABLE recovery (
  case_id          bigint PRIMARY KEY REFERENCES risk_case (id),
  card_no          text NOT NULL,
  person_id        bigint REFERENCES person (id),
  amount_fen       bigint NOT NULL CHECK (amount_fen > 0),
  fine_multiple    numeric(6, 4) NOT NULL CHECK (fine_multiple BETWEEN 2 AND 5),
  fine_fen         bigint NOT NULL CHECK (fine_fen > 0),
  due_fen          bigint NOT NULL CHECK (due_fen = amount_fen + fine_fen),
  collected_fen    bigint NOT NULL DEFAULT 0 CHECK (collected_fen BETWEEN 0 AND due_fen),
  ledger_entry_ids bigint[] NOT NULL,
  created_at       timestamptz NOT NULL,
  created_by       text NOT NULL
);

CREATE TABLE recovery_collection (
  id               bigint GENERATED ALWAYS AS IDENTITY,
  case_id          bigint NOT NULL REFERENCES recovery (case_id),
  collection_id    text NOT NULL CHECK (collection_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  amount_fen       bigint NOT NULL CHECK (amount_fen > 0),
  bank_code        text NOT NULL REFERENCES bank (code),
  ledger_entry_id  bigint NOT NULL,
  at               timestamptz NOT NULL,
  actor            text NOT NULL,
  PRIMARY KEY (case_id, id),
  UNIQUE (case_id, collection_id)
);
CREATE TRIGGER recovery_collection_immutable BEFORE UPDATE OR DELETE ON recovery_collection
  FOR EACH ROW EXECUTE FUNCTION cards_refuse_change();

-- ---------------------------------------------------------------------------------------------
-- Complaints
-- ---------------------------------------------------------------------------------------------

-- Filed by anyone; the complainant's contact details and the complaint text are sealed like a
-- person's. The complainant reads the answer with the access code given at filing (only its
-- SHA-256 is kept: the code is 100 random bits, nothing to brute-force).
CREATE TABLE complaint (
  id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  request_id            text NOT NULL UNIQUE CHECK (request_id ~ '^[A-Za-z0-9_-]{8,64}$'),
  request_fingerprint   bytea NOT NULL,
  complainant_kind      text NOT NULL CHECK (complainant_kind IN ('CARDHOLDER', 'MERCHANT', 'PUBLIC')),
  category              text NOT NULL,
  contact_name_sealed   bytea NOT NULL,
  contact_phone_sealed  bytea,
  contact_email_sealed  bytea,
  description_sealed    bytea NOT NULL,
  pii_key_version       smallint NOT NULL CHECK (pii_key_version BETWEEN 1 AND 255),
  access_code_sha256    bytea NOT NULL CHECK (length(access_code_sha256) = 32),
  state                 text NOT NULL CHECK (state IN ('OPEN', 'ASSIGNED', 'ANSWERED')),
  assignee              text,
  answer                text CHECK (answer IS NULL OR length(answer) <= 4000),
  filed_at              timestamptz NOT NULL,
  due_at                timestamptz NOT NULL,
  answered_at           timestamptz,
  answered_by           text,
  CHECK ((state = 'ANSWERED') = (answer IS NOT NULL AND answered_at IS NOT NULL))
);
CREATE INDEX complaint_open_by_due ON complaint (due_at, id) WHERE state <> 'ANSWERED';
CREATE INDEX complaint_by_key_version ON complaint (pii_key_version, id);

CREATE TABLE complaint_event (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  complaint_id  bigint NOT NULL REFERENCES complaint (id),
  from_state    text,
  to_state      text NOT NULL,
  actor         text NOT NULL,
  note          text CHECK (note IS NULL OR length(note) <= 500),
  at            timestamptz NOT NULL
);
CREATE INDEX complaint_event_by_complaint ON complaint_event (complaint_id, id);
CREATE TRIGGER complaint_event_immutable BEFORE UPDATE OR DELETE ON complaint_event
  FOR EACH ROW EXECUTE FUNCTION cards_refuse_change();

-- ---------------------------------------------------------------------------------------------
-- Audit log
-- ---------------------------------------------------------------------------------------------

-- hash = SM3(prev_hash ‖ canonical JSON of the record's other columns), adapters/audit. `seq`
-- is drawn as last + 1 under a transaction-level advisory lock, so the chain is linear and
-- gapless: a missing seq is a deleted record. Nothing may change or remove a record.
CREATE TABLE audit_log (
  seq        bigint PRIMARY KEY CHECK (seq > 0),
  at         timestamptz NOT NULL,
  actor      text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
  role       text NOT NULL CHECK (length(role) BETWEEN 1 AND 40),
  purpose    text CHECK (purpose IS NULL OR length(purpose) BETWEEN 1 AND 40),
  action     text NOT NULL CHECK (action ~ '^[A-Z][A-Z0-9_]{1,63}$'),
  subject    text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
  fields     text[] NOT NULL,
  details    jsonb NOT NULL,
  prev_hash  text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash       text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX audit_log_by_subject ON audit_log (subject, seq);
CREATE TRIGGER audit_log_immutable BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION cards_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION cards_refuse_change();

-- Down Migration
DROP TABLE IF EXISTS audit_log, complaint_event, complaint, recovery_collection, recovery, integrity_record,
  hotlist_change, card_refund, card_action, card_application, person;
DROP TRIGGER IF EXISTS risk_case_event_immutable ON risk_case_event;
DROP INDEX IF EXISTS risk_case_event_by_case, risk_case_by_state_kind, card_hotlisted;
ALTER TABLE risk_case DROP COLUMN IF EXISTS assignee;
DROP TRIGGER IF EXISTS card_hotlist ON card;
DROP FUNCTION IF EXISTS card_hotlist_track, cards_refuse_change;
DROP SEQUENCE IF EXISTS card_serial_seq;
