-- Up Migration

-- Clearing, settlement packages, bank returns and programme disbursements.
--
-- A cycle is cleared from the ledger entries of its business date (the authoritative record of
-- what happened), in one transaction: the detail lines, the per-bank positions, the fee and sweep
-- entries and the state change commit together or not at all, so a killed run leaves nothing
-- half done and the next run starts over. Unique keys include bank_code (the natural
-- distribution column of everything a bank pulls).

-- One line per (ledger entry, bank, side): what the bank's detail.csv lists. card_no is kept in
-- full here (the files mask it); txn_time is the posting instant.
CREATE TABLE clearing_line (
  cycle_id     text NOT NULL,
  bank_code    text NOT NULL CHECK (bank_code ~ '^[0-9]{12}$'),
  entry_id     bigint NOT NULL,
  side         text NOT NULL CHECK (side IN ('ISSUER', 'ACQUIRER')),
  kind         text NOT NULL CHECK (kind ~ '^[A-Z][A-Z_]{1,39}$'),
  txn_id       text NOT NULL CHECK (length(txn_id) BETWEEN 1 AND 64),
  card_no      text,
  merchant_id  text,
  terminal_id  text,
  txn_time     timestamptz NOT NULL,
  amount_fen   bigint NOT NULL CHECK (amount_fen >= 0),
  fee_fen      bigint NOT NULL CHECK (fee_fen >= 0),
  direction    text NOT NULL CHECK (direction IN ('PAY', 'RECEIVE')),
  PRIMARY KEY (cycle_id, bank_code, entry_id, side)
);

-- Each bank's position for a cycle: Σ RECEIVE net − Σ PAY net of its lines.
CREATE TABLE clearing_position (
  cycle_id     text NOT NULL,
  bank_code    text NOT NULL,
  line_count   bigint NOT NULL CHECK (line_count >= 0),
  pay_fen      bigint NOT NULL CHECK (pay_fen >= 0),
  receive_fen  bigint NOT NULL CHECK (receive_fen >= 0),
  fee_fen      bigint NOT NULL CHECK (fee_fen >= 0),
  net_fen      bigint NOT NULL,
  created_at   timestamptz NOT NULL,
  PRIMARY KEY (cycle_id, bank_code),
  CHECK (net_fen = receive_fen - pay_fen)
);

-- The centre's side of a cleared cycle, kept so the zero-sum check can be re-read later.
CREATE TABLE clearing_summary (
  cycle_id           text PRIMARY KEY,
  transactions       bigint NOT NULL,
  lines              bigint NOT NULL,
  banks_net_fen      bigint NOT NULL,
  centre_net_fen     bigint NOT NULL,
  fees_fen           bigint NOT NULL,
  created_at         timestamptz NOT NULL,
  actor              text NOT NULL,
  CHECK (banks_net_fen + centre_net_fen = 0)
);

-- Packages: one per bank per cycle, immutable once written.
CREATE TABLE settlement_package (
  id            text NOT NULL,
  cycle_id      text NOT NULL,
  bank_code     text NOT NULL,
  business_date date NOT NULL,
  net_fen       bigint NOT NULL,
  line_count    bigint NOT NULL,
  created_at    timestamptz NOT NULL,
  PRIMARY KEY (bank_code, id),
  UNIQUE (bank_code, cycle_id)
);
CREATE INDEX settlement_package_by_cycle ON settlement_package (cycle_id);

CREATE TABLE settlement_package_file (
  bank_code     text NOT NULL,
  package_id    text NOT NULL,
  name          text NOT NULL,
  path          text NOT NULL,
  bytes         bigint NOT NULL CHECK (bytes >= 0),
  record_count  bigint NOT NULL CHECK (record_count >= 0),
  sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  sm3           text NOT NULL CHECK (sm3 ~ '^[0-9a-f]{64}$'),
  PRIMARY KEY (bank_code, package_id, name),
  FOREIGN KEY (bank_code, package_id) REFERENCES settlement_package (bank_code, id)
);

-- Every download: who, what, when, which digest was served.
CREATE TABLE package_download (
  id            bigint GENERATED ALWAYS AS IDENTITY,
  bank_code     text NOT NULL,
  package_id    text NOT NULL,
  name          text NOT NULL,
  key_id        text NOT NULL,
  sha256_served text NOT NULL,
  at            timestamptz NOT NULL,
  PRIMARY KEY (bank_code, id)
);

-- Returns as uploaded, keyed by the digest of their exact bytes: the same upload is one row.
CREATE TABLE settlement_return (
  id            bigint GENERATED ALWAYS AS IDENTITY,
  bank_code     text NOT NULL,
  package_id    text NOT NULL,
  cycle_id      text NOT NULL,
  format        text NOT NULL CHECK (format IN ('PACS002', 'CSV')),
  sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  status        text,
  reason        text,
  line_count    bigint NOT NULL DEFAULT 0,
  matched_count bigint NOT NULL DEFAULT 0,
  exception_count bigint NOT NULL DEFAULT 0,
  received_at   timestamptz NOT NULL,
  actor         text NOT NULL,
  PRIMARY KEY (bank_code, id),
  UNIQUE (bank_code, package_id, format, sha256)
);

-- return.csv lines with the reconciliation outcome against the package's detail lines.
CREATE TABLE settlement_return_line (
  bank_code   text NOT NULL,
  return_id   bigint NOT NULL,
  line_no     bigint NOT NULL,
  txn_id      text NOT NULL,
  amount_fen  bigint NOT NULL,
  status      text NOT NULL CHECK (status IN ('POSTED', 'REJECTED')),
  bank_ref    text,
  reason      text,
  outcome     text NOT NULL CHECK (outcome IN ('MATCHED', 'EXCEPTION')),
  PRIMARY KEY (bank_code, return_id, line_no)
);

-- Programme funding recorded by finance (bank clearing → programme fund).
CREATE TABLE programme_deposit (
  programme_id   text NOT NULL CHECK (programme_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  deposit_id     text NOT NULL CHECK (deposit_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
  bank_code      text NOT NULL CHECK (bank_code ~ '^[0-9]{12}$'),
  amount_fen     bigint NOT NULL CHECK (amount_fen > 0),
  entry_idem_key text NOT NULL,
  cycle_id       text NOT NULL,
  business_date  date NOT NULL,
  actor          text NOT NULL,
  created_at     timestamptz NOT NULL,
  PRIMARY KEY (programme_id, deposit_id)
);

-- Disbursement batches, idempotent by (programme, batch id); the first answer is kept.
CREATE TABLE disbursement_batch (
  programme_id    text NOT NULL,
  batch_id        text NOT NULL CHECK (batch_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
  digest          text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
  record_count    integer NOT NULL,
  accepted_count  integer NOT NULL,
  accepted_fen    bigint NOT NULL,
  cycle_id        text NOT NULL,
  business_date   date NOT NULL,
  actor           text NOT NULL,
  created_at      timestamptz NOT NULL,
  PRIMARY KEY (programme_id, batch_id)
);

CREATE TABLE disbursement (
  programme_id   text NOT NULL,
  batch_id       text NOT NULL,
  idx            integer NOT NULL,
  card_no        text NOT NULL,
  amount_fen     bigint NOT NULL,
  purpose        text NOT NULL,
  destination    text NOT NULL CHECK (destination IN ('PURSE', 'BANK_ACCOUNT')),
  outcome        text NOT NULL CHECK (outcome IN ('ACCEPTED', 'REJECTED')),
  reason         text,
  issuing_bank   text,
  entry_idem_key text,
  PRIMARY KEY (programme_id, batch_id, idx),
  CHECK ((outcome = 'ACCEPTED') = (reason IS NULL))
);

CREATE FUNCTION clearing_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'clearing history is immutable: % on % refused', TG_OP, TG_TABLE_NAME USING ERRCODE = 'P0001';
END $$;
CREATE TRIGGER clearing_line_immutable BEFORE UPDATE OR DELETE ON clearing_line FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();
CREATE TRIGGER clearing_position_immutable BEFORE UPDATE OR DELETE ON clearing_position FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();
CREATE TRIGGER settlement_package_immutable BEFORE UPDATE OR DELETE ON settlement_package FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();
CREATE TRIGGER settlement_package_file_immutable BEFORE UPDATE OR DELETE ON settlement_package_file FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();
CREATE TRIGGER package_download_immutable BEFORE UPDATE OR DELETE ON package_download FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();
CREATE TRIGGER settlement_return_immutable BEFORE UPDATE OR DELETE ON settlement_return FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();
CREATE TRIGGER settlement_return_line_immutable BEFORE UPDATE OR DELETE ON settlement_return_line FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();
CREATE TRIGGER disbursement_immutable BEFORE UPDATE OR DELETE ON disbursement FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();

-- Down Migration
DROP TABLE IF EXISTS disbursement, disbursement_batch, programme_deposit, settlement_return_line, settlement_return,
  package_download, settlement_package_file, settlement_package, clearing_summary, clearing_position, clearing_line;
DROP FUNCTION IF EXISTS clearing_refuse_change();
