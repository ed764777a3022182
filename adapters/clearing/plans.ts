/**
 * SQL of the clearing run, the packages, the returns and the disbursements. The heavy
 * statements are set-based over chunks of a cycle's entries (hundreds of thousands of lines
 * each), implementing engine/clearing/netting.ts's rules; test/clearing-run.test.ts checks that
 * this SQL and the pure model agree line for line.
 */
import { clearing_entry_kinds, entry_kind_to_detail } from '../../engine/clearing/kinds.ts';
import { DETAIL_AMOUNT_FEN_MAX, DETAIL_ID_CHARS_MAX, DETAIL_KINDS } from '../bankfiles/index.ts';

/**
 * The table of a cycle's lines (its partition of clearing_line once cleared); the same rule as
 * clearing_line_table_of() in migrations/0013_clearing_speed.sql.
 */
export function linesTableOf(cycleId: string): string {
  if (!/^[A-Za-z0-9]{1,40}$/.test(cycleId)) throw new Error('a cycle id names its lines table: letters and digits only');
  return `clearing_line_${cycleId.toLowerCase()}`;
}

/** DDL of a cycle's lines table; identifiers and the literal come from linesTableOf's checked id. */
export const lines_ddl = {
  drop: (table: string) => `DROP TABLE IF EXISTS ${table}`,
  /** Same columns and checks as clearing_line, plus its partition bound as a check so attaching skips a scan. */
  create: (table: string, cycleId: string) => `
    CREATE TABLE ${table} (LIKE clearing_line INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
      CONSTRAINT ${table}_cycle CHECK (cycle_id = ${quote(cycleId)}))`,
  primary_key: (table: string) => `ALTER TABLE ${table} ADD CONSTRAINT ${table}_pkey PRIMARY KEY (cycle_id, bank_code, entry_id, side)`,
  analyze: (table: string) => `ANALYZE ${table}`,
  attach: (table: string, cycleId: string) => `ALTER TABLE clearing_line ATTACH PARTITION ${table} FOR VALUES IN (${quote(cycleId)})`,
};

const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
const excluded_kinds = `ARRAY[${clearing_entry_kinds.map(quote).join(', ')}]::text[]`;
const kind_case = `CASE
      WHEN e.kind = 'QR_PAYMENT' AND coalesce(m.kind, em.kind) = 'MEDICAL' THEN 'MEDICAL_SELF_PAY'
      WHEN e.kind = 'QR_PAYMENT' AND coalesce(m.kind, em.kind) = 'UTILITY' THEN 'UTILITY_PAYMENT'
      ${Object.entries(entry_kind_to_detail).map(([k, v]) => `WHEN e.kind = ${quote(k)} THEN ${quote(v)}`).join('\n      ')}
      ELSE 'ADJUSTMENT' END`;

/**
 * detail.csv lines encoded by Postgres, byte for byte as adapters/bankfiles/detail-csv.ts
 * encodes them (test/settlement-csv-sql.test.ts compares the two on random lines), for lines
 * that `detail_line_plain` accepts: those pass the encoder's checks, and their id columns hold
 * no backslash or control character that COPY's text format would escape, so each row COPY
 * writes is exactly one CSV line and its `\n`. Any other line goes through the encoder itself.
 */
const csv_field = (x: string) => `CASE WHEN strpos(${x}, ',') > 0 OR strpos(${x}, '"') > 0 THEN '"' || replace(${x}, '"', '""') || '"' ELSE ${x} END`;
const detail_line_plain = `(
  amount_fen BETWEEN 0 AND ${DETAIL_AMOUNT_FEN_MAX} AND fee_fen BETWEEN 0 AND ${DETAIL_AMOUNT_FEN_MAX}
  AND side IN ('ISSUER', 'ACQUIRER') AND direction IN ('PAY', 'RECEIVE')
  AND kind IN (${DETAIL_KINDS.map(quote).join(', ')})
  AND txn_time >= '1000-01-01T00:00:00+08:00' AND txn_time < '10000-01-01T00:00:00+08:00'
  AND (card_no IS NULL OR card_no = '' OR (octet_length(card_no) BETWEEN 11 AND 19 AND ltrim(card_no, '0123456789') = ''))
  AND octet_length(txn_id) BETWEEN 1 AND ${DETAIL_ID_CHARS_MAX}
  AND octet_length(coalesce(merchant_id, '')) <= ${DETAIL_ID_CHARS_MAX} AND octet_length(coalesce(terminal_id, '')) <= ${DETAIL_ID_CHARS_MAX}
  AND (txn_id || coalesce(merchant_id, '') || coalesce(terminal_id, '')) !~ '[\\\\\\b\\f\\n\\r\\t\\v]')`;
// concat_ws builds each line in one pass (a chain of || copies the growing line at every step);
// none of its arguments is ever NULL, so none is skipped.
const detail_line_text = `concat_ws(',', row_number() OVER (ORDER BY entry_id, side), ${csv_field('txn_id')}, kind, side,
    CASE WHEN coalesce(card_no, '') = '' THEN '' ELSE left(card_no, 6) || repeat('*', length(card_no) - 10) || right(card_no, 4) END,
    ${csv_field("coalesce(merchant_id, '')")}, ${csv_field("coalesce(terminal_id, '')")},
    to_char(txn_time AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI:SS"+08:00"'),
    amount_fen, fee_fen, CASE WHEN side = 'ACQUIRER' THEN amount_fen - fee_fen ELSE amount_fen END, direction)`;

/** COPY takes no parameters: the cycle id and bank code are checked (letters and digits) before they are written in. */
export function copyDetailLines(cycleId: string, bankCode: string): string {
  if (!/^[0-9]{12}$/.test(bankCode)) throw new Error('a bank code is 12 digits');
  linesTableOf(cycleId);
  return `COPY (SELECT ${detail_line_text} FROM clearing_line WHERE cycle_id = ${quote(cycleId)} AND bank_code = ${quote(bankCode)} ORDER BY entry_id, side) TO STDOUT`;
}

export const plans = {
  cycle_by_id: `SELECT id, business_date, state, closed_at FROM clearing_cycle WHERE id = $1`,
  cycle_by_id_for_update: `SELECT id, business_date, state FROM clearing_cycle WHERE id = $1 FOR UPDATE`,
  cycle_by_date: `SELECT id, business_date, state FROM clearing_cycle WHERE business_date = $1`,
  set_state: `
    WITH u AS (UPDATE clearing_cycle SET state = $2, closed_at = coalesce(closed_at, $4)
               WHERE id = $1 AND state = ANY($3::text[]) RETURNING id, $5::text AS from_state)
    INSERT INTO clearing_cycle_event (cycle_id, from_state, to_state, actor, at, details)
    SELECT id, from_state, $2, $6, $4, $7::jsonb FROM u RETURNING cycle_id`,
  /** A session lock per cycle: one clearing process per cycle at a time, released if it dies. */
  run_lock: `SELECT pg_advisory_lock(7101, hashtext($1))`,
  run_unlock: `SELECT pg_advisory_unlock(7101, hashtext($1))`,

  /** Entry id range of a business date (the date's entries are cut into chunks by id). */
  entry_range: `SELECT min(id) AS lo, max(id) AS hi FROM ledger_entry WHERE business_date = $1::date`,
  /** Whether the cycle's partition of clearing_line exists, and whether it is attached. */
  lines_table_state: `
    SELECT c.oid, c.relispartition AS attached FROM pg_class c
    WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace`,

  /**
   * The detail lines of one chunk of a cycle's entries (ids $3..$4 of business date $2), written
   * into the cycle's own table $TABLE (not yet a partition of clearing_line): per ledger entry,
   * the net movement on each bank clearing account (ISSUER) and each merchant payable (ACQUIRER,
   * at the merchant's acquiring bank, with its fee: round half up — round() of a non-negative
   * numeric — then clamped to min/max).
   *
   * Most entries have one posting: its two legs are on different accounts, so each leg on a bank
   * clearing or merchant payable account is a line of its own and needs no grouping; only
   * entries of several postings (a medical split) are summed per account owner. The statement
   * answers the chunk's totals per bank, side, merchant and direction (the positions, fees and
   * sweeps are sums of them; so are the packages' control sums, with whether every line is
   * plain enough for Postgres to encode) and its number of entries with lines.
   */
  insert_lines_chunk: `
    WITH rel AS (
      SELECT id, owner_type, owner_id FROM ledger_account
      WHERE (owner_type = 'bank' AND purpose = 'clearing') OR (owner_type = 'merchant' AND purpose = 'payable')
    ), multi AS (
      SELECT DISTINCT entry_id FROM ledger_posting WHERE entry_id BETWEEN $3 AND $4 AND line_no > 0
    ), legs AS (
      SELECT p.entry_id, a.owner_type, a.owner_id, -p.amount_fen AS delta
      FROM ledger_posting p JOIN rel a ON a.id = p.debit_account_id
      WHERE p.entry_id BETWEEN $3 AND $4 AND p.line_no = 0 AND NOT EXISTS (SELECT 1 FROM multi WHERE multi.entry_id = p.entry_id)
      UNION ALL
      SELECT p.entry_id, a.owner_type, a.owner_id, p.amount_fen
      FROM ledger_posting p JOIN rel a ON a.id = p.credit_account_id
      WHERE p.entry_id BETWEEN $3 AND $4 AND p.line_no = 0 AND NOT EXISTS (SELECT 1 FROM multi WHERE multi.entry_id = p.entry_id)
      UNION ALL
      SELECT p.entry_id, a.owner_type, a.owner_id, sum(l.amt)::bigint
      FROM ledger_posting p JOIN multi ON multi.entry_id = p.entry_id
      CROSS JOIN LATERAL (VALUES (p.debit_account_id, -p.amount_fen), (p.credit_account_id, p.amount_fen)) AS l(account_id, amt)
      JOIN rel a ON a.id = l.account_id
      WHERE p.entry_id BETWEEN $3 AND $4
      GROUP BY p.entry_id, a.owner_type, a.owner_id
      HAVING sum(l.amt) <> 0
    ), sched AS (
      SELECT DISTINCT ON (merchant_id) merchant_id, rate, min_fen, max_fen
      FROM merchant_fee_schedule WHERE effective_from <= $2::date
      ORDER BY merchant_id, effective_from DESC
    ), ins AS (
      INSERT INTO $TABLE (cycle_id, bank_code, entry_id, side, kind, txn_id, card_no, merchant_id, terminal_id,
                          txn_time, amount_fen, fee_fen, direction)
      SELECT $1, CASE WHEN agg.owner_type = 'bank' THEN agg.owner_id ELSE m.acquiring_bank END, agg.entry_id,
        CASE WHEN agg.owner_type = 'bank' THEN 'ISSUER' ELSE 'ACQUIRER' END,
        ${kind_case},
        coalesce(e.metadata->>'payment_id', e.metadata->>'load_id', e.metadata->>'disbursement_id', 'E' || e.id::text)
          || CASE WHEN e.kind = 'REFUND' THEN coalesce('/' || (e.metadata->>'refund'), '') ELSE '' END,
        CASE
          WHEN e.kind = 'TRANSIT_TAP' THEN split_part(e.idem_key, ':', 2)
          WHEN e.kind = 'CARD_CANCEL_REFUND' THEN split_part(e.idem_key, ':', 2)
          ELSE coalesce(e.metadata->>'card_no', ep.card_no) END,
        CASE WHEN agg.owner_type = 'merchant' THEN agg.owner_id ELSE em.id END,
        coalesce(t.terminal_id, ep.terminal_id),
        e.posted_at, abs(agg.delta),
        CASE WHEN agg.owner_type = 'merchant' AND agg.delta > 0 AND s.rate IS NOT NULL
             THEN least(greatest(round(agg.delta * s.rate), s.min_fen), s.max_fen)::bigint ELSE 0 END,
        CASE WHEN agg.delta > 0 THEN 'RECEIVE' ELSE 'PAY' END
      FROM legs agg
      JOIN ledger_entry e ON e.id = agg.entry_id AND e.id BETWEEN $3 AND $4
        AND e.business_date = $2::date AND e.kind <> ALL (${excluded_kinds})
      LEFT JOIN merchant m ON agg.owner_type = 'merchant' AND m.id = agg.owner_id
      LEFT JOIN sched s ON agg.owner_type = 'merchant' AND s.merchant_id = agg.owner_id
      LEFT JOIN payment ep ON e.kind IN ('QR_PAYMENT', 'REFUND') AND ep.id = e.metadata->>'payment_id'
      LEFT JOIN merchant em ON agg.owner_type = 'bank' AND e.kind IN ('QR_PAYMENT', 'REFUND')
        AND em.id = coalesce(ep.merchant_id, e.metadata->>'merchant_id')
      -- A tap's entry key is 'tap:' card ':' counter ':' type (adapters/ingest/pipeline.ts, tapEntryKey):
      -- matching the whole key hashes the entry's key as it is, with nothing parsed per line.
      LEFT JOIN tap_record t ON e.kind = 'TRANSIT_TAP' AND t.outcome = 'ACCEPTED'
        AND e.idem_key = 'tap:' || t.card_no || ':' || t.card_counter::text || ':' || t.txn_type::text
      RETURNING bank_code, side, merchant_id, direction, kind, amount_fen, fee_fen, entry_id, ${detail_line_plain} AS plain
    )
    SELECT bank_code, side, merchant_id, direction, kind, count(*)::bigint AS n, sum(amount_fen)::bigint AS amount_fen,
      sum(fee_fen)::bigint AS fee_fen, count(*) FILTER (WHERE plain)::bigint AS plain_n, NULL::bigint AS entries
    FROM ins GROUP BY bank_code, side, merchant_id, direction, kind
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, count(*)::bigint FROM (SELECT DISTINCT entry_id FROM ins) AS d`,

  /**
   * Every bank gets a position (and a package), zero when it had no lines; the figures are the
   * sums of the chunks' totals ($2.. arrays by bank).
   */
  insert_positions: `
    INSERT INTO clearing_position (cycle_id, bank_code, line_count, pay_fen, receive_fen, fee_fen, net_fen, created_at)
    SELECT $1, b.code, coalesce(x.n, 0), coalesce(x.pay, 0), coalesce(x.recv, 0), coalesce(x.fee, 0),
           coalesce(x.recv, 0) - coalesce(x.pay, 0), $7
    FROM bank b LEFT JOIN unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) AS x(bank_code, n, pay, recv, fee)
      ON x.bank_code = b.code
    RETURNING bank_code, line_count, pay_fen, receive_fen, fee_fen, net_fen`,

  /**
   * Net movement of every bank clearing and merchant payable account over the entries $2..$3 of
   * business date $1, the clearing's own fees and sweeps included (settlements excluded): over
   * the whole date, after the sweep each merchant's is zero and each bank's equals its position;
   * the rest of the ledger (the centre's accounts) moved by exactly minus their sum. Read from
   * the postings independently of the lines, so the two derivations check each other.
   */
  account_movements: `
    WITH moved AS (
      -- One pass over the postings: per debited and per credited account (two grouping sets).
      SELECT p.debit_account_id, p.credit_account_id, grouping(p.debit_account_id) AS credit_side, sum(p.amount_fen) AS amt
      FROM ledger_posting p JOIN ledger_entry e ON e.id = p.entry_id
      WHERE p.entry_id BETWEEN $2 AND $3 AND e.id BETWEEN $2 AND $3 AND e.business_date = $1::date AND e.kind <> 'SETTLEMENT'
      GROUP BY GROUPING SETS ((p.debit_account_id), (p.credit_account_id))
    )
    SELECT a.owner_type, a.owner_id, sum(CASE WHEN m.credit_side = 1 THEN m.amt ELSE -m.amt END)::bigint AS delta
    FROM moved m JOIN ledger_account a ON a.id = CASE WHEN m.credit_side = 1 THEN m.credit_account_id ELSE m.debit_account_id END
      AND ((a.owner_type = 'bank' AND a.purpose = 'clearing') OR (a.owner_type = 'merchant' AND a.purpose = 'payable'))
    GROUP BY a.owner_type, a.owner_id`,
  insert_summary: `
    INSERT INTO clearing_summary (cycle_id, transactions, lines, banks_net_fen, centre_net_fen, fees_fen, created_at, actor)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (cycle_id) DO NOTHING`,
  summary: `SELECT cycle_id, transactions, lines, banks_net_fen, centre_net_fen, fees_fen, created_at FROM clearing_summary WHERE cycle_id = $1`,

  positions: `SELECT bank_code, line_count, pay_fen, receive_fen, fee_fen, net_fen FROM clearing_position WHERE cycle_id = $1 ORDER BY bank_code`,
  events: `SELECT from_state, to_state, actor, at, details FROM clearing_cycle_event WHERE cycle_id = $1 ORDER BY id`,
  list_cycles: `
    SELECT id, business_date, state, opened_at, closed_at FROM clearing_cycle
    WHERE ($1::date IS NULL OR business_date < $1::date) ORDER BY business_date DESC LIMIT $2`,

  // ---- packages -------------------------------------------------------------------------------
  package_exists: `SELECT id FROM settlement_package WHERE bank_code = $1 AND cycle_id = $2`,
  /** The cycle's line totals by bank, kind, side and direction, from the chunks' answers. */
  insert_line_totals: `
    INSERT INTO clearing_line_total (cycle_id, bank_code, kind, side, direction, line_count, net_fen, amount_fen, fee_fen, plain_count)
    SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])`,
  /** A bank's stored line totals, as package_line_sums answers them. */
  line_totals: `
    SELECT kind, side, direction, line_count AS n, net_fen, amount_fen, fee_fen, plain_count = line_count AS plain
    FROM clearing_line_total WHERE cycle_id = $1 AND bank_code = $2`,
  /** Lines the cycle's stored totals count (none for a cycle cleared before they were kept). */
  line_totals_count: `SELECT coalesce(sum(line_count), 0)::bigint AS n FROM clearing_line_total WHERE cycle_id = $1`,
  /**
   * A bank's lines by kind, side and direction (camt.053's entries and detail.csv's control
   * sums), and whether every line is plain enough for Postgres to encode (copyDetailLines),
   * read from the lines themselves.
   */
  package_line_sums: `
    SELECT kind, side, direction, count(*)::bigint AS n,
      sum(CASE WHEN side = 'ACQUIRER' THEN amount_fen - fee_fen ELSE amount_fen END)::bigint AS net_fen,
      sum(amount_fen)::bigint AS amount_fen, sum(fee_fen)::bigint AS fee_fen, bool_and(${detail_line_plain}) AS plain
    FROM clearing_line WHERE cycle_id = $1 AND bank_code = $2 GROUP BY kind, side, direction`,
  declare_lines_cursor: `
    DECLARE detail_lines NO SCROLL CURSOR FOR
    SELECT txn_id, kind, side, coalesce(card_no, ''), coalesce(merchant_id, ''), coalesce(terminal_id, ''),
      to_char(txn_time AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI:SS"+08:00"'), amount_fen, fee_fen, direction
    FROM clearing_line WHERE cycle_id = $1 AND bank_code = $2 ORDER BY entry_id, side`,
  insert_package: `
    INSERT INTO settlement_package (id, cycle_id, bank_code, business_date, net_fen, line_count, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id`,
  insert_package_files: `
    INSERT INTO settlement_package_file (bank_code, package_id, name, path, bytes, record_count, sha256, sm3)
    SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[])
    ON CONFLICT DO NOTHING`,
  packages_missing: `
    SELECT count(*)::bigint AS n FROM clearing_position p
    WHERE p.cycle_id = $1 AND NOT EXISTS (SELECT 1 FROM settlement_package s WHERE s.bank_code = p.bank_code AND s.cycle_id = p.cycle_id)`,
  list_packages: `
    SELECT s.id, s.cycle_id, s.business_date, s.net_fen, s.line_count, s.created_at,
      coalesce(json_agg(json_build_object('name', f.name, 'bytes', f.bytes, 'record_count', f.record_count, 'sha256', f.sha256, 'sm3', f.sm3)
        ORDER BY f.name) FILTER (WHERE f.name IS NOT NULL), '[]') AS files
    FROM settlement_package s LEFT JOIN settlement_package_file f ON f.bank_code = s.bank_code AND f.package_id = s.id
    WHERE s.bank_code = $1 AND ($2::date IS NULL OR s.business_date = $2::date) AND ($3::text IS NULL OR s.id > $3)
    GROUP BY s.bank_code, s.id ORDER BY s.id LIMIT $4`,
  package_file: `
    SELECT s.cycle_id, f.path, f.bytes, f.sha256 FROM settlement_package s
    JOIN settlement_package_file f ON f.bank_code = s.bank_code AND f.package_id = s.id
    WHERE s.bank_code = $1 AND s.id = $2 AND f.name = $3`,
  package_by_id: `SELECT id, cycle_id, bank_code, net_fen, business_date FROM settlement_package WHERE bank_code = $1 AND id = $2`,
  insert_download: `
    INSERT INTO package_download (bank_code, package_id, name, key_id, sha256_served, at) VALUES ($1, $2, $3, $4, $5, $6)`,
  cycle_files: `
    SELECT f.bank_code, f.name, f.sha256, f.sm3, f.bytes FROM settlement_package s
    JOIN settlement_package_file f ON f.bank_code = s.bank_code AND f.package_id = s.id
    WHERE s.cycle_id = $1 ORDER BY f.bank_code, f.name`,

  // ---- returns --------------------------------------------------------------------------------
  return_by_digest: `
    SELECT id, status, reason, line_count, matched_count, exception_count FROM settlement_return
    WHERE bank_code = $1 AND package_id = $2 AND format = $3 AND sha256 = $4`,
  insert_return: `
    INSERT INTO settlement_return (bank_code, package_id, cycle_id, format, sha256, status, reason, line_count, matched_count,
      exception_count, received_at, actor)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (bank_code, package_id, format, sha256) DO NOTHING RETURNING id`,
  /** Returned lines with their match against the package's lines (same txn id, same amount). */
  insert_return_lines: `
    INSERT INTO settlement_return_line (bank_code, return_id, line_no, txn_id, amount_fen, status, bank_ref, reason, outcome)
    SELECT $1, $2, r.line_no, r.txn_id, r.amount_fen, r.status, r.bank_ref, r.reason,
      CASE WHEN r.status = 'POSTED' AND EXISTS (
        SELECT 1 FROM clearing_line c WHERE c.cycle_id = $3 AND c.bank_code = $1 AND c.txn_id = r.txn_id AND c.amount_fen = r.amount_fen)
      THEN 'MATCHED' ELSE 'EXCEPTION' END
    FROM unnest($4::bigint[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[])
      AS r(line_no, txn_id, amount_fen, status, bank_ref, reason)
    RETURNING outcome`,
  set_return_counts: `SELECT 1`,
  /** The latest pacs.002 per package of a cycle. */
  cycle_confirmations: `
    SELECT p.bank_code, r.status FROM clearing_position p
    LEFT JOIN LATERAL (SELECT status FROM settlement_return x WHERE x.bank_code = p.bank_code AND x.cycle_id = p.cycle_id
                       AND x.format = 'PACS002' ORDER BY x.id DESC LIMIT 1) r ON true
    WHERE p.cycle_id = $1`,

  // ---- disbursements --------------------------------------------------------------------------
  insert_deposit: `
    INSERT INTO programme_deposit (programme_id, deposit_id, bank_code, amount_fen, entry_idem_key, cycle_id, business_date, actor, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING programme_id`,
  deposit_by_id: `SELECT programme_id, deposit_id, bank_code, amount_fen, cycle_id, business_date, created_at FROM programme_deposit WHERE programme_id = $1 AND deposit_id = $2`,
  lock_programme: `SELECT pg_advisory_xact_lock(7102, hashtext($1))`,
  batch_by_id: `SELECT digest, record_count, accepted_count, accepted_fen, cycle_id, business_date FROM disbursement_batch WHERE programme_id = $1 AND batch_id = $2`,
  batch_records: `SELECT idx, card_no, amount_fen, destination, outcome, reason FROM disbursement WHERE programme_id = $1 AND batch_id = $2 ORDER BY idx`,
  cards_of: `SELECT card_no, issuing_bank, status FROM card WHERE card_no = ANY($1::text[])`,
  insert_batch: `
    INSERT INTO disbursement_batch (programme_id, batch_id, digest, record_count, accepted_count, accepted_fen, cycle_id, business_date, actor, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
  insert_disbursements: `
    INSERT INTO disbursement (programme_id, batch_id, idx, card_no, amount_fen, purpose, destination, outcome, reason, issuing_bank, entry_idem_key)
    SELECT $1, $2, * FROM unnest($3::int[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])`,
} as const;
