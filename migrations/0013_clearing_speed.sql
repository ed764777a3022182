-- Up Migration

-- Clearing millions of lines a cycle on two cores.
--
-- clearing_line becomes partitioned by cycle: the clearing run builds a cycle's lines in a table
-- of their own from two connections at once (each chunk of entries committed on its own, so a
-- killed run leaves only an unattached table that the next run drops and rebuilds), then
-- attaches it as the cycle's partition in the one short transaction that also posts the fees and
-- sweeps, writes the positions and moves the cycle to CLEARED: the lines still appear all at
-- once, with the rest of the clearing, or not at all. Reads by cycle (packages, returns,
-- reconciliation) touch only that cycle's partition.
--
-- The column checks keep their meaning but not their regular expressions: measured on 625,000
-- lines, `kind ~ '^[A-Z][A-Z_]{1,39}$'` alone cost 1.4 s and the bank code's 0.7 s, as much as
-- writing the rows; the forms below accept exactly the same values for a fraction of that.

ALTER TABLE clearing_line RENAME TO clearing_line_0008;
ALTER TABLE clearing_line_0008 RENAME CONSTRAINT clearing_line_pkey TO clearing_line_0008_pkey;

CREATE TABLE clearing_line (
  cycle_id     text NOT NULL,
  -- 12 ASCII digits.
  bank_code    text NOT NULL CHECK (octet_length(bank_code) = 12 AND ltrim(bank_code, '0123456789') = ''),
  entry_id     bigint NOT NULL,
  side         text NOT NULL CHECK (side IN ('ISSUER', 'ACQUIRER')),
  -- An upper-case letter, then 1..39 upper-case letters or underscores.
  kind         text NOT NULL CHECK (octet_length(kind) BETWEEN 2 AND 40 AND kind ~ '^[A-Z][A-Z_]+$'),
  txn_id       text NOT NULL CHECK (length(txn_id) BETWEEN 1 AND 64),
  card_no      text,
  merchant_id  text,
  terminal_id  text,
  txn_time     timestamptz NOT NULL,
  amount_fen   bigint NOT NULL CHECK (amount_fen >= 0),
  fee_fen      bigint NOT NULL CHECK (fee_fen >= 0),
  direction    text NOT NULL CHECK (direction IN ('PAY', 'RECEIVE')),
  PRIMARY KEY (cycle_id, bank_code, entry_id, side)
) PARTITION BY LIST (cycle_id);

CREATE TRIGGER clearing_line_immutable BEFORE UPDATE OR DELETE ON clearing_line
  FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();

-- The partition of a cycle is named after it (adapters/clearing/plans.ts, linesTableOf).
CREATE FUNCTION clearing_line_table_of(cycle_id text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT CASE WHEN cycle_id ~ '^[A-Za-z0-9]{1,40}$' THEN 'clearing_line_' || lower(cycle_id) END
$$;

DO $$
DECLARE
  c text;
BEGIN
  FOR c IN SELECT DISTINCT cycle_id FROM clearing_line_0008 LOOP
    IF clearing_line_table_of(c) IS NULL THEN
      RAISE EXCEPTION 'cycle id % cannot name a partition', c;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF clearing_line FOR VALUES IN (%L)', clearing_line_table_of(c), c);
    EXECUTE format('INSERT INTO clearing_line SELECT * FROM clearing_line_0008 WHERE cycle_id = %L', c);
  END LOOP;
END $$;

DROP TABLE clearing_line_0008;

-- Each bank's lines of a cycle by kind, side and direction, summed when the lines are built:
-- camt.053's entries and detail.csv's control sums, so publishing a package reads its lines
-- once (to stream them), not twice. plain_count counts the lines Postgres may encode itself
-- (adapters/clearing/plans.ts, copyDetailLines); the package checks the streamed lines number
-- line_count.
CREATE TABLE clearing_line_total (
  cycle_id     text NOT NULL,
  bank_code    text NOT NULL,
  kind         text NOT NULL,
  side         text NOT NULL,
  direction    text NOT NULL,
  line_count   bigint NOT NULL CHECK (line_count > 0),
  net_fen      bigint NOT NULL,
  amount_fen   bigint NOT NULL,
  fee_fen      bigint NOT NULL,
  plain_count  bigint NOT NULL CHECK (plain_count BETWEEN 0 AND line_count),
  PRIMARY KEY (cycle_id, bank_code, kind, side, direction)
);
CREATE TRIGGER clearing_line_total_immutable BEFORE UPDATE OR DELETE ON clearing_line_total
  FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();

-- Down Migration
DROP TABLE clearing_line_total;
CREATE TABLE clearing_line_0013 (
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
  direction    text NOT NULL CHECK (direction IN ('PAY', 'RECEIVE'))
);
INSERT INTO clearing_line_0013 SELECT * FROM clearing_line;
DROP TABLE clearing_line;
DROP FUNCTION clearing_line_table_of(text);
ALTER TABLE clearing_line_0013 RENAME TO clearing_line;
ALTER TABLE clearing_line ADD PRIMARY KEY (cycle_id, bank_code, entry_id, side);
CREATE TRIGGER clearing_line_immutable BEFORE UPDATE OR DELETE ON clearing_line FOR EACH ROW EXECUTE FUNCTION clearing_refuse_change();
