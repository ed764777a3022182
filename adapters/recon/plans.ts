/**
 * SQL of reconciliation: the run (set-based over a whole cycle: one grouped pass per side and one
 * join, never a query per line), operator totals, and the exceptions workflow. The matching rules
 * are engine/recon/matching.ts's; test/recon-run.test.ts checks this SQL and the pure model agree.
 */
/** The instant of a terminal's Shanghai wall-clock `YYYYMMDDhhmmss` (TRANSIT-BATCH.md local_time). */
const shanghaiInstant = (column: string) => `make_timestamp(substr(${column}, 1, 4)::int, substr(${column}, 5, 2)::int,
  substr(${column}, 7, 2)::int, substr(${column}, 9, 2)::int, substr(${column}, 11, 2)::int, substr(${column}, 13, 2)::float8) AT TIME ZONE 'Asia/Shanghai'`;

const exception_columns = `
  x.id, x.type, x.source_key, x.cycle_id, x.business_date, x.bank_code, x.operator_id, x.terminal_id, x.txn_id, x.card_no,
  x.engine_amount_fen, x.other_amount_fen, x.details, x.state, x.assignee, x.resolution, x.resolution_note, x.opened_at,
  x.opened_by_run, x.resolved_at, x.resolved_by`;

/**
 * Advisory lock namespaces (first int4) of reconciliation, apart from every other module's
 * (payments use 7301 for the simulated bank's cards and 7302 for purse-load keys).
 */
export const run_lock_ns = 7501;
export const upload_lock_ns = 7502;

export const plans = {
  // ---- the run ---------------------------------------------------------------------------------
  cycle_by_id: `SELECT id, business_date, state, opened_at, closed_at FROM clearing_cycle WHERE id = $1`,
  /** One run per cycle at a time: a second run waits, then finds everything already raised. */
  run_lock: `SELECT pg_advisory_xact_lock(${run_lock_ns}, hashtext($1))`,
  insert_run: `
    INSERT INTO recon_run (cycle_id, business_date, started_at, actor) VALUES ($1, $2, $3, $4) RETURNING id`,
  finish_run: `
    UPDATE recon_run SET engine_lines = $2, bank_lines = $3, matched = $4, exceptions_new = $5, exceptions_total = $6, finished_at = $7
    WHERE id = $1`,
  /**
   * What a run found, before it is filed: the differences are few (a fraction of a percent), so a
   * temporary table keeps them for the insert, the events and the counts without re-reading.
   */
  create_found: `
    CREATE TEMPORARY TABLE recon_found (
      type text NOT NULL, source_key text NOT NULL, bank_code text, operator_id text, terminal_id text, txn_id text, card_no text,
      engine_amount_fen bigint, other_amount_fen bigint, engine_lines bigint NOT NULL DEFAULT 0, details jsonb NOT NULL
    ) ON COMMIT DROP`,
  /** Hash aggregates of a million groups must not spill to disk (the run is one transaction). */
  run_work_mem: `SET LOCAL work_mem = '256MB'`,
  /**
   * The planner prices the per-difference look-ups as if every one of a million groups differed,
   * which buys an expensive JIT compile: measured on a million lines, the bank matching took
   * 4.3–5.4 s with JIT and 3.6–4.1 s without.
   */
  run_jit_off: `SET LOCAL jit = off`,
  engine_lines_per_bank: `SELECT bank_code, count(*)::bigint AS n FROM clearing_line WHERE cycle_id = $1 GROUP BY bank_code`,
  /** Each package's latest return.csv (a bank may correct its return: the newest is its word). */
  latest_csv_returns: `
    SELECT DISTINCT ON (bank_code, package_id) bank_code, package_id, id, line_count FROM settlement_return
    WHERE cycle_id = $1 AND format = 'CSV' ORDER BY bank_code, package_id, id DESC`,
  /**
   * Engine lines against the latest returned lines, grouped per (bank, txn id) on each side and
   * joined once (engine/recon/matching.ts `classifyGroup`, the same order of rules). The groups
   * carry only fixed-size integers: an engine group has at most two lines, so equal counts and
   * equal min and max mean equal amounts (no numeric sum per group); min/max of the ids keep both
   * lines of a group for the side-by-side view. The few differences then look up their card
   * number and rejection reason by primary key. A million groups a side then fit in memory.
   */
  find_bank_differences: `
    WITH ret AS (
      SELECT DISTINCT ON (bank_code, package_id) bank_code, package_id, id FROM settlement_return
      WHERE cycle_id = $1 AND format = 'CSV' ORDER BY bank_code, package_id, id DESC
    ), e AS (
      SELECT bank_code, txn_id, count(*) AS n, min(amount_fen) AS amin, max(amount_fen) AS amax,
        min(entry_id) AS entry_min, max(entry_id) AS entry_max
      FROM clearing_line WHERE cycle_id = $1 GROUP BY bank_code, txn_id
    ), b AS (
      SELECT l.bank_code, l.txn_id, count(*) AS n, count(*) FILTER (WHERE l.status = 'REJECTED') AS rejected,
        min(l.amount_fen) AS amin, max(l.amount_fen) AS amax, min(l.line_no) AS line_min, max(l.line_no) AS line_max,
        min(l.line_no) FILTER (WHERE l.status = 'REJECTED') AS rejected_line
      FROM settlement_return_line l JOIN ret ON ret.bank_code = l.bank_code AND ret.id = l.return_id
      GROUP BY l.bank_code, l.txn_id
    ), j AS (
      SELECT coalesce(e.bank_code, b.bank_code) AS bank_code, coalesce(e.txn_id, b.txn_id) AS txn_id, e.n AS e_n, b.n AS b_n,
        CASE e.n WHEN 1 THEN e.amin WHEN 2 THEN e.amin + e.amax END AS e_sum,
        CASE b.n WHEN 1 THEN b.amin WHEN 2 THEN b.amin + b.amax END AS b_sum,
        e.entry_min, e.entry_max, b.line_min, b.line_max, b.rejected_line,
        CASE
          WHEN b.rejected > 0 THEN 'REJECTED_BY_BANK'
          WHEN e.n IS NULL THEN 'UNKNOWN_AT_ENGINE'
          WHEN b.n IS NULL THEN CASE WHEN EXISTS (SELECT 1 FROM ret WHERE ret.bank_code = e.bank_code) THEN 'MISSING_AT_BANK' END
          WHEN b.n > e.n THEN 'DUPLICATE_AT_BANK'
          WHEN b.n < e.n THEN 'MISSING_AT_BANK'
          WHEN b.amin <> e.amin OR b.amax <> e.amax THEN 'AMOUNT_MISMATCH'
        END AS type
      FROM e FULL JOIN b ON b.bank_code = e.bank_code AND b.txn_id = e.txn_id
      WHERE b.n IS NULL OR e.n IS NULL OR b.rejected > 0 OR b.n <> e.n OR b.amin <> e.amin OR b.amax <> e.amax
    ), d AS (
      SELECT j.*, (SELECT ret.id FROM ret WHERE ret.bank_code = j.bank_code LIMIT 1) AS return_id FROM j WHERE j.type IS NOT NULL
    )
    INSERT INTO recon_found (type, source_key, bank_code, txn_id, card_no, engine_amount_fen, other_amount_fen, engine_lines, details)
    SELECT d.type, d.bank_code || ':' || d.txn_id, d.bank_code, d.txn_id,
      (SELECT c.card_no FROM clearing_line c WHERE c.cycle_id = $1 AND c.bank_code = d.bank_code AND c.entry_id = d.entry_min LIMIT 1),
      d.e_sum, d.b_sum, coalesce(d.e_n, 0),
      jsonb_strip_nulls(jsonb_build_object(
        'engine_lines', d.e_n, 'bank_lines', d.b_n,
        'entry_ids', CASE WHEN d.entry_min IS NULL THEN NULL WHEN d.entry_min = d.entry_max THEN jsonb_build_array(d.entry_min::text)
                          ELSE jsonb_build_array(d.entry_min::text, d.entry_max::text) END,
        'return_id', CASE WHEN d.b_n IS NOT NULL THEN d.return_id::text END,
        'return_line_nos', CASE WHEN d.line_min IS NULL THEN NULL WHEN d.line_min = d.line_max THEN jsonb_build_array(d.line_min::text)
                                ELSE jsonb_build_array(d.line_min::text, d.line_max::text) END,
        'reason', (SELECT l.reason FROM settlement_return_line l WHERE l.bank_code = d.bank_code AND l.return_id = d.return_id AND l.line_no = d.rejected_line)))
    FROM d`,
  /** A package the bank refused as a whole (its latest pacs.002 is RJCT). */
  find_rejected_packages: `
    WITH s AS (
      SELECT DISTINCT ON (bank_code, package_id) bank_code, package_id, id, status, reason FROM settlement_return
      WHERE cycle_id = $1 AND format = 'PACS002' ORDER BY bank_code, package_id, id DESC
    )
    INSERT INTO recon_found (type, source_key, bank_code, engine_amount_fen, details)
    SELECT 'REJECTED_BY_BANK', 'package:' || s.bank_code || ':' || s.package_id, s.bank_code, p.net_fen,
      jsonb_strip_nulls(jsonb_build_object('package_id', s.package_id, 'return_id', s.id::text, 'status', s.status, 'reason', s.reason, 'net_fen', p.net_fen::text))
    FROM s JOIN settlement_package p ON p.bank_code = s.bank_code AND p.id = s.package_id
    WHERE s.status = 'RJCT'`,
  /**
   * Per operator that uploaded totals for the date, its latest upload against the engine's
   * accepted taps of the cycle (transit taps are the cycle's PURSE_PURCHASE acquirer lines).
   */
  find_operator_differences: `
    WITH up AS (
      SELECT DISTINCT ON (operator_id) operator_id, id FROM operator_total_upload
      WHERE business_date = $2 ORDER BY operator_id, id DESC
    ), ol AS (
      SELECT up.operator_id, l.terminal_id, l.tap_count, l.amount_fen, up.id AS upload_id
      FROM operator_total_line l JOIN up ON up.id = l.upload_id
    ), el AS (
      SELECT c.merchant_id AS operator_id, coalesce(c.terminal_id, '') AS terminal_id, count(*)::bigint AS tap_count, sum(c.amount_fen)::bigint AS amount_fen
      FROM clearing_line c
      WHERE c.cycle_id = $1 AND c.side = 'ACQUIRER' AND c.kind = 'PURSE_PURCHASE' AND c.merchant_id IN (SELECT operator_id FROM up)
      GROUP BY c.merchant_id, coalesce(c.terminal_id, '')
    )
    INSERT INTO recon_found (type, source_key, operator_id, terminal_id, engine_amount_fen, other_amount_fen, details)
    SELECT 'OPERATOR_TOTAL_MISMATCH', coalesce(ol.operator_id, el.operator_id) || ':' || coalesce(ol.terminal_id, el.terminal_id) || ':' || $2::date::text,
      coalesce(ol.operator_id, el.operator_id), nullif(coalesce(ol.terminal_id, el.terminal_id), ''), el.amount_fen, ol.amount_fen,
      jsonb_strip_nulls(jsonb_build_object(
        'upload_id', 'otu_' || coalesce(ol.upload_id, (SELECT id FROM up WHERE up.operator_id = el.operator_id))::text,
        'operator_tap_count', ol.tap_count::text, 'operator_amount_fen', ol.amount_fen::text,
        'engine_tap_count', coalesce(el.tap_count, 0)::text, 'engine_amount_fen', coalesce(el.amount_fen, 0)::text))
    FROM ol FULL JOIN el ON el.operator_id = ol.operator_id AND el.terminal_id = ol.terminal_id
    WHERE ol.tap_count IS DISTINCT FROM el.tap_count OR ol.amount_fen IS DISTINCT FROM el.amount_fen`,
  /**
   * Ingestion's risk cases raised by the cycle's tap batches (a case names its batch; the batch
   * names its cycle).
   */
  find_risk_signals: `
    INSERT INTO recon_found (type, source_key, operator_id, terminal_id, card_no, other_amount_fen, details)
    SELECT CASE rc.kind WHEN 'CLONE_SUSPECT' THEN 'CLONE_SUSPECT' ELSE 'SUSPENSE_SHORTFALL' END, 'risk_case:' || rc.id,
      rc.merchant_id, rc.terminal_id, rc.card_no, rc.amount_fen,
      jsonb_build_object('case_id', 'case_' || rc.id, 'risk_kind', rc.kind, 'batch_id', b.batch_id, 'risk_state', rc.state)
    FROM risk_case rc
    JOIN tap_batch b ON b.operator_id = rc.merchant_id AND b.batch_id = rc.details->>'batch_id'
    WHERE rc.kind IN ('CLONE_SUSPECT', 'PURSE_SHORTFALL') AND b.cycle_id = $1`,
  /** Sequence gaps still open that a batch of the cycle opened. */
  find_sequence_gaps: `
    INSERT INTO recon_found (type, source_key, operator_id, terminal_id, details)
    SELECT 'TERMINAL_SEQUENCE_GAP', 'gap:' || g.terminal_id || ':' || g.from_seq || '-' || g.to_seq, g.operator_id, g.terminal_id,
      jsonb_build_object('from_seq', g.from_seq::text, 'to_seq', g.to_seq::text, 'missing_count', (g.to_seq - g.from_seq + 1)::text, 'batch_id', b.batch_id)
    FROM tap_seq_gap g JOIN tap_batch b ON b.batch_no = g.opened_by_batch
    WHERE b.cycle_id = $1`,
  /**
   * Balance-chain breaks around the cycle's accepted taps (engine/ingest `chainBreaks`, the rule
   * the transit route applies to one card): a tap whose balance before is not the previous tap's
   * balance after (previous in the card's counter order, whatever day it was accepted), with no
   * purse load posted between the two tap times. Offline terminals upload late, so a card's
   * neighbouring taps can land in different cycles: each tap of the date is judged against its
   * predecessor, and also against its successor when that one was accepted on an earlier date
   * (whose run could not yet see this tap). Each neighbour is one probe of the accepted-tap index.
   */
  find_chain_breaks: `
    WITH t AS (
      SELECT r.batch_no, r.idx, r.card_no, r.card_counter, r.txn_type, r.amount_fen, r.balance_before_fen, r.terminal_id, r.operator_id, r.local_time
      FROM tap_record r WHERE r.business_date = $1 AND r.outcome = 'ACCEPTED'
    ), pairs AS (
      SELECT t.card_no, p.balance_before_fen - p.amount_fen AS expected_fen, p.local_time AS previous_local_time, p.card_counter AS previous_counter,
        t.batch_no, t.idx, t.card_counter, t.txn_type, t.balance_before_fen, t.terminal_id, t.operator_id, t.local_time
      FROM t CROSS JOIN LATERAL (
        SELECT q.balance_before_fen, q.amount_fen, q.local_time, q.card_counter FROM tap_record q
        WHERE q.card_no = t.card_no AND q.outcome = 'ACCEPTED' AND (q.card_counter, q.txn_type) < (t.card_counter, t.txn_type)
        ORDER BY q.card_counter DESC, q.txn_type DESC LIMIT 1) p
      UNION ALL
      SELECT t.card_no, t.balance_before_fen - t.amount_fen, t.local_time, t.card_counter,
        n.batch_no, n.idx, n.card_counter, n.txn_type, n.balance_before_fen, n.terminal_id, n.operator_id, n.local_time
      FROM t CROSS JOIN LATERAL (
        SELECT q.batch_no, q.idx, q.card_counter, q.txn_type, q.balance_before_fen, q.terminal_id, q.operator_id, q.local_time, q.business_date FROM tap_record q
        WHERE q.card_no = t.card_no AND q.outcome = 'ACCEPTED' AND (q.card_counter, q.txn_type) > (t.card_counter, t.txn_type)
        ORDER BY q.card_counter, q.txn_type LIMIT 1) n
      WHERE n.business_date < $1
    ), breaks AS (
      SELECT k.*,
        ${shanghaiInstant('k.local_time')} AS tapped_at, ${shanghaiInstant('k.previous_local_time')} AS previous_tapped_at
      FROM pairs k WHERE k.balance_before_fen <> k.expected_fen
    )
    INSERT INTO recon_found (type, source_key, operator_id, terminal_id, card_no, engine_amount_fen, other_amount_fen, details)
    SELECT 'BALANCE_CHAIN_BREAK', 'chain:' || k.batch_no || ':' || k.idx, k.operator_id, k.terminal_id, k.card_no, k.expected_fen, k.balance_before_fen,
      jsonb_build_object('card_counter', k.card_counter::text, 'txn_type', k.txn_type::text, 'previous_card_counter', k.previous_counter::text,
        'expected_balance_before_fen', k.expected_fen::text, 'balance_before_fen', k.balance_before_fen::text,
        'difference_fen', (k.balance_before_fen - k.expected_fen)::text, 'batch_no', k.batch_no::text, 'index', k.idx::text)
    FROM breaks k
    WHERE NOT EXISTS (
      SELECT 1 FROM ledger_account a JOIN ledger_posting p ON p.credit_account_id = a.id JOIN ledger_entry e ON e.id = p.entry_id
      WHERE a.code = 'card:' || k.card_no || ':purse' AND e.kind = 'PURSE_LOAD'
        AND e.posted_at > k.previous_tapped_at AND e.posted_at <= k.tapped_at)`,
  /** Files what was found: new differences become OPEN exceptions, known ones are left as they are. */
  file_found: `
    WITH n AS (
      INSERT INTO recon_exception (type, source_key, cycle_id, business_date, bank_code, operator_id, terminal_id, txn_id, card_no,
        engine_amount_fen, other_amount_fen, details, state, opened_at, opened_by_run)
      SELECT f.type, f.source_key, $1, $2, f.bank_code, f.operator_id, f.terminal_id, f.txn_id, f.card_no, f.engine_amount_fen,
        f.other_amount_fen, f.details, 'OPEN', $3, $4
      FROM recon_found f ORDER BY f.type, f.source_key
      ON CONFLICT (type, source_key) DO NOTHING
      RETURNING id, type
    ), ev AS (
      INSERT INTO recon_exception_event (exception_id, event, from_state, to_state, note, actor, at)
      SELECT id, 'OPENED', NULL, 'OPEN', 'raised by reconciliation run ' || $4::text, $5, $3 FROM n
    )
    SELECT type, count(*)::bigint AS n FROM n GROUP BY type`,
  found_by_type: `SELECT type, count(*)::bigint AS n, sum(engine_lines)::bigint AS engine_lines FROM recon_found GROUP BY type`,
  /**
   * Cleared cycles with something new since their last run: a bank return, or operator totals
   * for their date, received after that run started (or never reconciled and holding either).
   */
  cycles_pending: `
    SELECT c.id FROM clearing_cycle c
    LEFT JOIN LATERAL (SELECT max(x.started_at) AS at FROM recon_run x WHERE x.cycle_id = c.id) last ON true
    WHERE c.state = ANY($1::text[])
      AND (EXISTS (SELECT 1 FROM settlement_return r WHERE r.cycle_id = c.id AND r.received_at > coalesce(last.at, '-infinity'))
        OR EXISTS (SELECT 1 FROM operator_total_upload u WHERE u.business_date = c.business_date AND u.received_at > coalesce(last.at, '-infinity')))
    ORDER BY c.business_date LIMIT $2`,
  list_runs: `
    SELECT id, cycle_id, business_date, engine_lines, bank_lines, matched, exceptions_new, exceptions_total, started_at, finished_at, actor
    FROM recon_run WHERE ($1::text IS NULL OR cycle_id = $1) AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3`,

  // ---- operator totals -------------------------------------------------------------------------
  operator_of: `SELECT id, kind, is_operator, status FROM merchant WHERE id = $1`,
  /** Terminals named in an upload that are not the operator's (unknown ones included). */
  foreign_terminals: `
    SELECT t.id FROM unnest($2::text[]) AS t(id)
    WHERE NOT EXISTS (SELECT 1 FROM terminal x WHERE x.id = t.id AND x.merchant_id = $1) ORDER BY t.id LIMIT 10`,
  /** Same operator, date and bytes: the same upload, answered as first received. */
  upload_lock: `SELECT pg_advisory_xact_lock(${upload_lock_ns}, hashtext($1))`,
  upload_by_digest: `
    SELECT id, operator_id, business_date, format, sha256, line_count, tap_count, amount_fen, received_at FROM operator_total_upload
    WHERE operator_id = $1 AND business_date = $2 AND sha256 = $3`,
  insert_upload: `
    INSERT INTO operator_total_upload (operator_id, business_date, format, sha256, line_count, tap_count, amount_fen, received_at, actor)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, operator_id, business_date, format, sha256, line_count, tap_count, amount_fen, received_at`,
  insert_upload_lines: `
    INSERT INTO operator_total_line (upload_id, terminal_id, tap_count, amount_fen)
    SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[])`,
  /** An operator's uploads, newest first; `superseded` when a later one exists for its date. */
  list_uploads: `
    SELECT u.id, u.operator_id, u.business_date, u.format, u.sha256, u.line_count, u.tap_count, u.amount_fen, u.received_at,
      EXISTS (SELECT 1 FROM operator_total_upload n WHERE n.operator_id = u.operator_id AND n.business_date = u.business_date AND n.id > u.id) AS superseded
    FROM operator_total_upload u
    WHERE u.operator_id = $1 AND ($2::date IS NULL OR u.business_date = $2) AND ($3::bigint IS NULL OR u.id < $3)
    ORDER BY u.id DESC LIMIT $4`,

  // ---- exceptions ------------------------------------------------------------------------------
  list_exceptions: `
    SELECT ${exception_columns} FROM recon_exception x
    WHERE x.id > $1 AND ($2::text IS NULL OR x.state = $2) AND ($3::text IS NULL OR x.type = $3)
      AND ($4::date IS NULL OR x.business_date = $4) AND ($5::text IS NULL OR x.bank_code = $5)
      AND ($6::text IS NULL OR x.cycle_id = $6) AND ($7::text IS NULL OR x.assignee = $7)
    ORDER BY x.id LIMIT $8`,
  exception_by_id: `SELECT ${exception_columns} FROM recon_exception x WHERE x.id = $1`,
  lock_exception: `SELECT ${exception_columns} FROM recon_exception x WHERE x.id = $1 FOR UPDATE`,
  events_of: `
    SELECT id, event, from_state, to_state, note, actor, at FROM recon_exception_event WHERE exception_id = $1 ORDER BY id LIMIT 1000`,
  insert_event: `
    INSERT INTO recon_exception_event (exception_id, event, from_state, to_state, note, actor, at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
  set_assigned: `UPDATE recon_exception SET state = 'ASSIGNED', assignee = $2 WHERE id = $1`,
  set_resolved: `
    UPDATE recon_exception SET state = 'RESOLVED', resolution = $2, resolution_note = $3, resolved_at = $4, resolved_by = $5 WHERE id = $1`,
  approved_adjustment: `SELECT id FROM adjustment WHERE exception_id = $1 AND state = 'APPROVED' ORDER BY decided_at DESC LIMIT 1`,
  /** The engine's lines of a bank difference, by the primary key (cycle, bank, entry). */
  engine_lines_of: `
    SELECT bank_code, entry_id, side, kind, txn_id, card_no, merchant_id, terminal_id, txn_time, amount_fen, fee_fen, direction
    FROM clearing_line WHERE cycle_id = $1 AND bank_code = $2 AND entry_id = ANY($3::bigint[]) AND txn_id = $4 ORDER BY entry_id, side`,
  bank_lines_of: `
    SELECT l.bank_code, l.return_id, l.line_no, l.txn_id, l.amount_fen, l.status, l.bank_ref, l.reason
    FROM settlement_return_line l WHERE l.bank_code = $1 AND l.return_id = $2 AND l.line_no = ANY($3::bigint[]) ORDER BY l.line_no`,
  operator_line_of: `
    SELECT u.id AS upload_id, u.received_at, l.terminal_id, l.tap_count, l.amount_fen FROM operator_total_upload u
    JOIN operator_total_line l ON l.upload_id = u.id WHERE u.id = $1 AND l.terminal_id = $2`,
  engine_taps_of_terminal: `
    SELECT count(*)::bigint AS tap_count, coalesce(sum(amount_fen), 0)::bigint AS amount_fen FROM clearing_line
    WHERE cycle_id = $1 AND side = 'ACQUIRER' AND kind = 'PURSE_PURCHASE' AND merchant_id = $2 AND coalesce(terminal_id, '') = $3`,
} as const;
