-- Up Migration

-- Reconciliation: the engine's clearing lines matched against the banks' returns and the transit
-- operators' own daily totals, the exceptions finance staff work through, and the maker-checker
-- adjustments that resolve some of them.

-- Operator daily totals, as uploaded: one row per upload, keyed by the digest of its exact
-- bytes, so the same upload twice is one row. A later, different upload for the same operator and
-- date supersedes the earlier one (the newest upload's lines are the operator's word).
CREATE TABLE operator_total_upload (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  operator_id    text NOT NULL,
  business_date  date NOT NULL,
  format         text NOT NULL CHECK (format IN ('CSV', 'JSON')),
  sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  line_count     integer NOT NULL CHECK (line_count >= 0),
  tap_count      bigint NOT NULL CHECK (tap_count >= 0),
  amount_fen     bigint NOT NULL CHECK (amount_fen >= 0),
  received_at    timestamptz NOT NULL,
  actor          text NOT NULL,
  UNIQUE (operator_id, business_date, sha256)
);
CREATE INDEX operator_total_upload_latest ON operator_total_upload (operator_id, business_date, id DESC);

CREATE TABLE operator_total_line (
  upload_id      bigint NOT NULL REFERENCES operator_total_upload (id),
  terminal_id    text NOT NULL CHECK (terminal_id ~ '^[0-9]{12}$'),
  tap_count      bigint NOT NULL CHECK (tap_count >= 0),
  amount_fen     bigint NOT NULL CHECK (amount_fen >= 0),
  PRIMARY KEY (upload_id, terminal_id)
);

-- One row per reconciliation run of a cycle (runs are repeatable; each is recorded).
CREATE TABLE recon_run (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  cycle_id           text NOT NULL,
  business_date      date NOT NULL,
  engine_lines       bigint NOT NULL DEFAULT 0,
  bank_lines         bigint NOT NULL DEFAULT 0,
  matched            bigint NOT NULL DEFAULT 0,
  exceptions_new     bigint NOT NULL DEFAULT 0,
  exceptions_total   bigint NOT NULL DEFAULT 0,
  started_at         timestamptz NOT NULL,
  finished_at        timestamptz,
  actor              text NOT NULL
);
CREATE INDEX recon_run_by_cycle ON recon_run (cycle_id, id);

-- The exceptions queue. (type, source_key) makes raising an exception idempotent: a re-run finds
-- the same difference under the same key and adds nothing. source_key names what differs, e.g.
-- '<bank_code>:<txn_id>' for a bank-return difference, '<operator>:<terminal>:<date>' for an
-- operator total, 'risk_case:<id>' for an ingestion risk signal.
--   types: MISSING_AT_BANK, UNKNOWN_AT_ENGINE, AMOUNT_MISMATCH, DUPLICATE_AT_BANK,
--          REJECTED_BY_BANK, OPERATOR_TOTAL_MISMATCH, and the ingestion risk signals
--          TERMINAL_SEQUENCE_GAP, BALANCE_CHAIN_BREAK, CLONE_SUSPECT, SUSPENSE_SHORTFALL.
CREATE TABLE recon_exception (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type               text NOT NULL CHECK (type ~ '^[A-Z][A-Z_]{2,39}$'),
  source_key         text NOT NULL CHECK (length(source_key) BETWEEN 1 AND 300),
  cycle_id           text,
  business_date      date NOT NULL,
  bank_code          text,
  operator_id        text,
  terminal_id        text,
  txn_id             text,
  card_no            text,
  engine_amount_fen  bigint,
  other_amount_fen   bigint,
  details            jsonb NOT NULL DEFAULT '{}'::jsonb,
  state              text NOT NULL DEFAULT 'OPEN' CHECK (state IN ('OPEN', 'ASSIGNED', 'RESOLVED')),
  assignee           text,
  resolution         text CHECK (resolution IN ('ADJUSTMENT', 'WRITE_OFF', 'RE_PRESENTED', 'EXPLAINED')),
  resolution_note    text,
  opened_at          timestamptz NOT NULL,
  opened_by_run      bigint REFERENCES recon_run (id),
  resolved_at        timestamptz,
  resolved_by        text,
  UNIQUE (type, source_key),
  CHECK ((state = 'RESOLVED') = (resolution IS NOT NULL AND resolved_at IS NOT NULL AND resolved_by IS NOT NULL)),
  CHECK (state <> 'ASSIGNED' OR assignee IS NOT NULL)
);
CREATE INDEX recon_exception_queue ON recon_exception (state, business_date, type);
CREATE INDEX recon_exception_by_cycle ON recon_exception (cycle_id, type);

-- Every change and comment of an exception, appended (never edited).
CREATE TABLE recon_exception_event (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  exception_id   bigint NOT NULL REFERENCES recon_exception (id),
  event          text NOT NULL CHECK (event IN ('OPENED', 'ASSIGNED', 'COMMENTED', 'RESOLVED', 'ADJUSTMENT_PROPOSED', 'ADJUSTMENT_APPROVED', 'ADJUSTMENT_REJECTED')),
  from_state     text,
  to_state       text,
  note           text,
  actor          text NOT NULL,
  at             timestamptz NOT NULL
);
CREATE INDEX recon_exception_event_by_exception ON recon_exception_event (exception_id, id);

-- Maker-checker adjustments: a balanced adjusting entry proposed by one finance user against an
-- exception, approved (then posted, entry_id set) or rejected by a different finance user.
-- lines: [{"account": "<ledger account code>", "side": "DEBIT"|"CREDIT", "amount_fen": "<int>"}].
CREATE TABLE adjustment (
  id             text PRIMARY KEY CHECK (id ~ '^adj_[a-z0-9]{16,32}$'),
  exception_id   bigint NOT NULL REFERENCES recon_exception (id),
  lines          jsonb NOT NULL,
  total_fen      bigint NOT NULL CHECK (total_fen > 0),
  memo           text NOT NULL CHECK (length(memo) BETWEEN 1 AND 500),
  state          text NOT NULL DEFAULT 'PROPOSED' CHECK (state IN ('PROPOSED', 'APPROVED', 'REJECTED')),
  proposed_by    text NOT NULL,
  proposed_at    timestamptz NOT NULL,
  decided_by     text,
  decided_at     timestamptz,
  decision_note  text,
  entry_id       bigint,
  CHECK ((state = 'PROPOSED') = (decided_by IS NULL)),
  CHECK (decided_by IS NULL OR decided_by <> proposed_by),
  CHECK ((state = 'APPROVED') = (entry_id IS NOT NULL))
);
CREATE INDEX adjustment_by_state ON adjustment (state, proposed_at);
CREATE INDEX adjustment_by_exception ON adjustment (exception_id);
-- At most one adjustment awaiting approval per exception.
CREATE UNIQUE INDEX adjustment_one_pending ON adjustment (exception_id) WHERE state = 'PROPOSED';

-- Down Migration
DROP TABLE IF EXISTS adjustment, recon_exception_event, recon_exception, recon_run,
  operator_total_line, operator_total_upload;
