-- Up Migration

-- Transit tap batches (TRANSIT-BATCH.md): one row per accepted upload with its receipt, one row
-- per record (accepted and rejected alike, for the operator's corrections and the audit trail),
-- and the open per-terminal sequence gaps with their history. A batch, its records and their
-- ledger entries are written in one transaction, so a crash leaves all of it or none.
--
-- Why so few indexes on tap_record: every index costs each of the ~25,000 taps a second an index
-- insertion. The two partial unique indexes are the contract (a tap and a terminal sequence are
-- accepted once, even under concurrent uploads). Records are found by batch and by business date
-- through BRIN indexes, nearly free to maintain for columns that only grow in insertion order; a
-- batch's records are written by one COPY with idx 0..n-1, so (batch_no, idx) is unique by
-- construction and needs no btree (measured: a btree primary key there cost ~15% of the insert).
--
-- Growing to Citus: tap_record would be distributed by card_no (the accepted-tap key includes it);
-- the (terminal_id, terminal_seq) uniqueness would move to a small terminal-distributed side table.
-- No foreign keys to merchant, terminal or card: those are reference tables read in the same
-- transaction, and a KEY SHARE lock per tap on the operator's one merchant row would serialize
-- every upload (see 0005's note on the same choice).

CREATE TABLE tap_batch (
  batch_no             bigint GENERATED ALWAYS AS IDENTITY,
  operator_id          text NOT NULL CHECK (operator_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  batch_id             text NOT NULL CHECK (batch_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  -- tapBatchDigest of the content (format-independent): a replay must match it, else 409.
  digest               text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
  -- The operator's own created_at, as sent (RFC 3339, checked before storing).
  operator_created_at  text NOT NULL CHECK (length(operator_created_at) BETWEEN 1 AND 64),
  body_format          text NOT NULL CHECK (body_format IN ('PROTOBUF', 'JSON')),
  received_at          timestamptz NOT NULL,
  cycle_id             text NOT NULL,
  business_date        date NOT NULL,
  record_count         integer NOT NULL CHECK (record_count BETWEEN 1 AND 50000),
  accepted_count       integer NOT NULL CHECK (accepted_count >= 0),
  accepted_amount_fen  bigint NOT NULL CHECK (accepted_amount_fen >= 0),
  rejected_count       integer NOT NULL CHECK (rejected_count >= 0),
  rejected_amount_fen  bigint NOT NULL CHECK (rejected_amount_fen >= 0),
  -- The receipt's rejection list, kept with the batch so a replay answers without reading records.
  rejected_index       integer[] NOT NULL,
  rejected_reason      text[] NOT NULL,
  -- Who uploaded: the API key id (never the token).
  actor                text NOT NULL,
  PRIMARY KEY (operator_id, batch_id),
  UNIQUE (batch_no),
  CHECK (accepted_count + rejected_count = record_count),
  CHECK (cardinality(rejected_index) = rejected_count AND cardinality(rejected_reason) = rejected_count)
);
CREATE INDEX tap_batch_by_cycle ON tap_batch (cycle_id);

CREATE TABLE tap_record (
  batch_no            bigint NOT NULL,
  idx                 integer NOT NULL CHECK (idx BETWEEN 0 AND 49999),
  operator_id         text NOT NULL,
  outcome             text NOT NULL CHECK (outcome IN ('ACCEPTED', 'REJECTED')),
  reason              text CHECK (reason IN ('MALFORMED', 'AMOUNT_OUT_OF_RANGE', 'INSUFFICIENT_PURSE',
                        'UNKNOWN_TERMINAL', 'UNKNOWN_CARD', 'UNKNOWN_KEY_VERSION', 'BAD_TAC', 'FUTURE_TAP',
                        'STALE_TAP', 'CARD_CANCELLED', 'CARD_HOTLISTED', 'DUPLICATE', 'CLONE_SUSPECT',
                        'DUPLICATE_TERMINAL_SEQ')),
  -- The record's fields, as sent, for every record that is well formed. An empty optional string
  -- is stored as NULL.
  card_no             text,
  card_counter        bigint,
  txn_type            smallint,
  amount_fen          bigint,
  balance_before_fen  bigint,
  terminal_id         text,
  terminal_seq        bigint,
  local_time          text,
  key_version         smallint,
  tac                 text,
  line_id             text,
  station_id          text,
  entry_station_id    text,
  entry_local_time    text,
  -- Of an accepted tap, what the shadow purse could not cover and suspense carried (NULL: none).
  shortfall_fen       bigint CHECK (shortfall_fen IS NULL OR (shortfall_fen > 0 AND shortfall_fen <= amount_fen)),
  business_date       date NOT NULL,
  -- A MALFORMED record as sent (JSON, UTF-8): its fields may not fit the columns (or hold a NUL).
  raw                 bytea,
  CHECK ((outcome = 'ACCEPTED') = (reason IS NULL)),
  CHECK ((reason IS NOT DISTINCT FROM 'MALFORMED') = (raw IS NOT NULL)),
  CHECK (reason IS NOT DISTINCT FROM 'MALFORMED' OR (card_no IS NOT NULL AND card_counter IS NOT NULL
    AND txn_type IS NOT NULL AND amount_fen IS NOT NULL AND balance_before_fen IS NOT NULL
    AND terminal_id IS NOT NULL AND terminal_seq IS NOT NULL AND local_time IS NOT NULL
    AND key_version IS NOT NULL AND tac IS NOT NULL)),
  CHECK (outcome = 'ACCEPTED' OR shortfall_fen IS NULL)
);
-- A tap is accepted once: a second upload of it is DUPLICATE (or CLONE_SUSPECT), even when two
-- uploads race (the loser's insert fails and its transaction is retried against the winner's).
CREATE UNIQUE INDEX tap_accepted_once ON tap_record (card_no, card_counter, txn_type) WHERE outcome = 'ACCEPTED';
CREATE UNIQUE INDEX tap_terminal_seq_once ON tap_record (terminal_id, terminal_seq) WHERE outcome = 'ACCEPTED';
CREATE INDEX tap_record_batch ON tap_record USING brin (batch_no);
CREATE INDEX tap_record_business_date ON tap_record USING brin (business_date);
-- Ingestion asks, for every card of a batch, whether it was ever hotlisted or cancelled; such
-- events are few, so this index is tiny and the answer for a card that never was is one probe
-- into it (instead of reading every status event of every card). Additive: it only serves the
-- transit look-up and costs an insertion only for the rare blocking status events.
CREATE INDEX tap_card_blocking_status ON card_status_event (card_no)
  WHERE status IN ('LOST_REPORTED', 'SUSPENDED', 'CANCELLED');

-- Open sequence gaps per terminal: the missing terminal_seq numbers between accepted records.
-- This is current state (a gap row is deleted when a record lands in it, and what remains of it
-- is inserted anew); every change is kept in tap_seq_gap_event.
CREATE TABLE tap_seq_gap (
  terminal_id      text NOT NULL,
  from_seq         bigint NOT NULL,
  to_seq           bigint NOT NULL,
  operator_id      text NOT NULL,
  opened_at        timestamptz NOT NULL,
  opened_by_batch  bigint NOT NULL,
  PRIMARY KEY (terminal_id, from_seq),
  CHECK (0 <= from_seq AND from_seq <= to_seq AND to_seq <= 4294967295)
);
CREATE INDEX tap_seq_gap_by_operator ON tap_seq_gap (operator_id, terminal_id, from_seq);

CREATE TABLE tap_seq_gap_event (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  terminal_id  text NOT NULL,
  from_seq     bigint NOT NULL,
  to_seq       bigint NOT NULL,
  operator_id  text NOT NULL,
  event        text NOT NULL CHECK (event IN ('OPENED', 'CLOSED')),
  batch_no     bigint NOT NULL,
  actor        text NOT NULL,
  at           timestamptz NOT NULL
);
CREATE INDEX tap_seq_gap_event_by_terminal ON tap_seq_gap_event (terminal_id, id);

-- Batches, records and the gap history are never edited or removed.
CREATE FUNCTION transit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'transit history is immutable: % on % refused', TG_OP, TG_TABLE_NAME USING ERRCODE = 'P0001';
END $$;
CREATE TRIGGER tap_batch_immutable BEFORE UPDATE OR DELETE ON tap_batch
  FOR EACH ROW EXECUTE FUNCTION transit_refuse_change();
CREATE TRIGGER tap_batch_no_truncate BEFORE TRUNCATE ON tap_batch
  FOR EACH STATEMENT EXECUTE FUNCTION transit_refuse_change();
CREATE TRIGGER tap_record_immutable BEFORE UPDATE OR DELETE ON tap_record
  FOR EACH ROW EXECUTE FUNCTION transit_refuse_change();
CREATE TRIGGER tap_record_no_truncate BEFORE TRUNCATE ON tap_record
  FOR EACH STATEMENT EXECUTE FUNCTION transit_refuse_change();
CREATE TRIGGER tap_seq_gap_event_immutable BEFORE UPDATE OR DELETE ON tap_seq_gap_event
  FOR EACH ROW EXECUTE FUNCTION transit_refuse_change();
CREATE TRIGGER tap_seq_gap_event_no_truncate BEFORE TRUNCATE ON tap_seq_gap_event
  FOR EACH STATEMENT EXECUTE FUNCTION transit_refuse_change();

-- Down Migration
DROP INDEX IF EXISTS tap_card_blocking_status;
DROP TABLE IF EXISTS tap_seq_gap_event, tap_seq_gap, tap_record, tap_batch;
DROP FUNCTION IF EXISTS transit_refuse_change();
