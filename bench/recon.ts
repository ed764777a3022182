/**
 * Reconciliation benchmark: one cycle of N engine lines (default 1,000,000) against the banks'
 * return lines, seeded set-based straight into clearing_line, settlement_return(_line) and the
 * operator totals (seeding is timed separately and excluded), with 0.1% planted differences of
 * every bank type — MISSING_AT_BANK, UNKNOWN_AT_ENGINE, AMOUNT_MISMATCH, DUPLICATE_AT_BANK,
 * REJECTED_BY_BANK (lines, plus one pacs.002 RJCT package) — and some OPERATOR_TOTAL_MISMATCH.
 * Then one timed reconcileCycle, and as the baseline, in the same run, the bare FULL OUTER JOIN
 * count of the same two tables on (bank, txn id).
 *
 * Options: --lines N (engine lines), --banks N, --terminals N (transit terminals, split between
 * two operators), --operator-mismatches N.
 * JSON (last line): recon_s (and steps_s, seconds from the start to each step), lines_per_s, exceptions_planted, exceptions_found, by_type
 * ({type: {planted, found}}), rss_mb_max, baseline_s, recon_vs_baseline, bar_s, within_bar.
 */
import { parseArgs } from 'node:util';
import { createPool } from '../adapters/postgres/db.ts';
import { reconcileCycle } from '../adapters/recon/run.ts';
import { exception_types, type ExceptionType } from '../engine/recon/index.ts';
import { benchDatabase, progress, report, rssSampler } from './support.ts';

const { values } = parseArgs({ args: process.argv.slice(3), options: {
  lines: { type: 'string', default: '1000000' }, banks: { type: 'string', default: '8' },
  terminals: { type: 'string', default: '2000' }, 'operator-mismatches': { type: 'string', default: '25' },
} });
const lines_n = Number(values.lines);
const banks_n = Number(values.banks);
const terminals_n = Number(values.terminals);
const operator_mismatches_n = Number(values['operator-mismatches']);
/** One planted difference of each line type per this many engine lines (0.1%). */
const plant_every = 1000;
const seed_chunk = 100_000;
const bar_s = 20;
const cycle_id = 'CYC20261128';
const business_date = '2026-11-28';
if (!(lines_n >= plant_every * 10) || !(banks_n >= 2) || !(terminals_n >= 2) || !(operator_mismatches_n >= 1 && operator_mismatches_n <= terminals_n)) {
  throw new Error('--lines ≥ 10000, --banks ≥ 2, --terminals ≥ 2, 1 ≤ --operator-mismatches ≤ --terminals');
}

const bdb = await benchDatabase();
const db = createPool(bdb.url, 3, 'onecard-bench-recon');
const rss = rssSampler();
try {
  const seedStart = performance.now();
  const planted = await seed();
  const seedS = (performance.now() - seedStart) / 1000;
  process.stderr.write(`seeded ${lines_n} engine lines in ${seedS.toFixed(1)} s\n`);

  // The baseline: the join every reconciliation must at least make, nothing else.
  const b0 = performance.now();
  const client = await db.connect();
  let baselinePairs = 0n;
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL work_mem = '256MB'`);
    baselinePairs = (await client.query<{ n: bigint }>(`
      SELECT count(*)::bigint AS n FROM (SELECT bank_code, txn_id FROM clearing_line WHERE cycle_id = $1) e
      FULL JOIN (SELECT l.bank_code, l.txn_id FROM settlement_return_line l JOIN settlement_return r ON r.bank_code = l.bank_code AND r.id = l.return_id
                 WHERE r.cycle_id = $1) b ON b.bank_code = e.bank_code AND b.txn_id = e.txn_id`, [cycle_id])).rows[0].n;
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  const baselineS = (performance.now() - b0) / 1000;

  const bar = progress('reconcile', 5);
  const t0 = performance.now();
  // Seconds from the start to each step the run reports: where the time goes.
  const steps_s: number[] = [];
  const r = await reconcileCycle({
    db, now: () => new Date(), progress: () => { steps_s.push(Number(((performance.now() - t0) / 1000).toFixed(2))); bar.tick(); },
  }, cycle_id, { keyId: 'bench', role: 'finance' });
  const reconS = (performance.now() - t0) / 1000;
  bar.stop();

  const byType: Record<string, { planted: number; found: number }> = {};
  let plantedTotal = 0;
  let foundTotal = 0;
  for (const t of exception_types) {
    const p = planted[t] ?? 0;
    const f = Number(r.byType[t]);
    if (p === 0 && f === 0) continue;
    byType[t] = { planted: p, found: f };
    plantedTotal += p;
    foundTotal += f;
  }
  const equal = plantedTotal === foundTotal && Object.values(byType).every((x) => x.planted === x.found);
  report('recon', {
    engine_lines: Number(r.engineLines),
    bank_lines: Number(r.bankLines),
    matched: Number(r.matched),
    recon_s: Number(reconS.toFixed(2)),
    steps_s: { counted: steps_s[0], bank_matched: steps_s[1], operators_compared: steps_s[2], signals_collected: steps_s[3], filed: steps_s[4] },
    lines_per_s: Math.round(Number(r.engineLines + r.bankLines) / reconS),
    exceptions_planted: plantedTotal,
    exceptions_found: foundTotal,
    planted_equals_found: equal,
    by_type: byType,
    rss_mb_max: rss.maxMb(),
    baseline_s: Number(baselineS.toFixed(2)),
    baseline_pairs: Number(baselinePairs),
    recon_vs_baseline: Number((reconS / baselineS).toFixed(2)),
    seed_s: Number(seedS.toFixed(1)),
    bar_s,
    within_bar: reconS <= bar_s,
  });
  if (!equal) process.exitCode = 1;
} finally {
  rss.stop();
  await db.end();
  await bdb.drop();
}

/**
 * Seeds the cycle and returns what was planted, per type. Engine line i (1..N) is txn `T<i>` at
 * bank i mod B; its bank line is the same except where i mod 1000 picks a planted difference.
 */
async function seed(): Promise<Partial<Record<ExceptionType, number>>> {
  const banks = Array.from({ length: banks_n }, (_, k) => `1021000${String(k + 1).padStart(5, '0')}`);
  await db.query(`INSERT INTO clearing_cycle (id, business_date, state, opened_at, closed_at) VALUES ($1, $2, 'PUBLISHED', '2026-11-27T15:00:00Z', '2026-11-28T15:00:00Z')`,
    [cycle_id, business_date]);
  await db.query(`INSERT INTO settlement_package (id, cycle_id, bank_code, business_date, net_fen, line_count, created_at)
    SELECT $1 || '-' || b, $1, b, $2, 0, 0, now() FROM unnest($3::text[]) b`, [cycle_id, business_date, banks]);

  // Where clearing_line is partitioned by cycle, the cycle's lines live in a partition of their own.
  const kind = (await db.query<{ relkind: string }>(`SELECT relkind FROM pg_class WHERE relname = 'clearing_line' AND relnamespace = current_schema()::regnamespace`)).rows[0].relkind;
  if (kind === 'p') await db.query(`CREATE TABLE clearing_line_${cycle_id.toLowerCase()} PARTITION OF clearing_line FOR VALUES IN ('${cycle_id}')`);
  const bar = progress('seed', lines_n);
  // Lines i ≡ 0..2 (mod 10) are transit taps of terminal (i / 10) mod T, operated by OP1 or OP2.
  for (let from = 1; from <= lines_n; from += seed_chunk) {
    const to = Math.min(lines_n, from + seed_chunk - 1);
    await db.query(`
      INSERT INTO clearing_line (cycle_id, bank_code, entry_id, side, kind, txn_id, card_no, merchant_id, terminal_id, txn_time, amount_fen, fee_fen, direction)
      SELECT $1, ($2::text[])[1 + i % $3], i, 'ACQUIRER',
        CASE WHEN i % 10 < 3 THEN 'PURSE_PURCHASE' ELSE 'QR_PAYMENT' END, 'T' || i,
        '62170000' || lpad((i % 100000)::text, 11, '0'),
        CASE WHEN i % 10 < 3 THEN 'OP' || (1 + ((i / 10) % $4) % 2) ELSE 'M' || (i % 200) END,
        CASE WHEN i % 10 < 3 THEN '4203' || lpad(((i / 10) % $4)::text, 8, '0') END,
        '2026-11-28T04:00:00Z'::timestamptz + make_interval(secs => i % 50000), 100 + (i * 7919) % 9900, 0,
        CASE WHEN i % 10 < 3 THEN 'RECEIVE' ELSE 'PAY' END
      FROM generate_series($5::bigint, $6::bigint) i`, [cycle_id, banks, banks_n, terminals_n, from, to]);
    // The bank's lines: missing (i ≡ 1), amount off by one (≡ 2), twice (≡ 3), rejected (≡ 4).
    await db.query(`
      INSERT INTO settlement_return_line (bank_code, return_id, line_no, txn_id, amount_fen, status, bank_ref, reason, outcome)
      SELECT c.bank_code, 1 + c.entry_id % ${banks_n}, c.entry_id + d.copy * 10000000000, c.txn_id,
        c.amount_fen + CASE WHEN c.entry_id % ${plant_every} = 2 THEN 1 ELSE 0 END,
        CASE WHEN c.entry_id % ${plant_every} = 4 THEN 'REJECTED' ELSE 'POSTED' END, 'BR' || c.entry_id,
        CASE WHEN c.entry_id % ${plant_every} = 4 THEN 'account closed' END,
        CASE WHEN c.entry_id % ${plant_every} IN (2, 3, 4) THEN 'EXCEPTION' ELSE 'MATCHED' END
      FROM clearing_line c
      CROSS JOIN LATERAL generate_series(0, CASE WHEN c.entry_id % ${plant_every} = 3 THEN 1 ELSE 0 END) AS d(copy)
      WHERE c.cycle_id = $1 AND c.entry_id BETWEEN $2 AND $3 AND c.entry_id % ${plant_every} <> 1`, [cycle_id, from, to]);
    bar.tick(to - from + 1);
  }
  bar.stop();
  // Lines the bank has and the engine does not (as many as each other planted type).
  const unknown = Math.floor(lines_n / plant_every);
  await db.query(`
    INSERT INTO settlement_return_line (bank_code, return_id, line_no, txn_id, amount_fen, status, bank_ref, reason, outcome)
    SELECT ($1::text[])[1 + k % ${banks_n}], 1 + k % ${banks_n}, 20000000000 + k, 'U' || k, 500, 'POSTED', 'BU' || k, NULL, 'EXCEPTION'
    FROM generate_series(1, $2::bigint) k`, [banks, unknown]);
  // The returns, written after their lines (as the upload does: the rows are immutable, so their
  // counts must be known first); return k is bank k's return.csv, one bank also refuses its
  // whole instruction by pacs.002.
  await db.query(`
    INSERT INTO settlement_return (id, bank_code, package_id, cycle_id, format, sha256, status, reason, line_count, matched_count, exception_count, received_at, actor)
    OVERRIDING SYSTEM VALUE
    SELECT x.k, x.b, $1 || '-' || x.b, $1, 'CSV', repeat('a', 64), NULL, NULL,
      (SELECT count(*) FROM settlement_return_line l WHERE l.bank_code = x.b AND l.return_id = x.k), 0, 0, now(), 'bench'
    FROM unnest($2::text[]) WITH ORDINALITY AS x(b, k)`, [cycle_id, banks]);
  await db.query(`
    INSERT INTO settlement_return (id, bank_code, package_id, cycle_id, format, sha256, status, reason, received_at, actor)
    OVERRIDING SYSTEM VALUE VALUES ($3, $1, $2 || '-' || $1, $2, 'PACS002', repeat('b', 64), 'RJCT', 'AM04', now(), 'bench')`, [banks[0], cycle_id, banks_n + 1]);
  // The operators' totals: the engine's own per-terminal figures, a few of them off by one fen.
  await db.query(`
    INSERT INTO operator_total_upload (operator_id, business_date, format, sha256, line_count, tap_count, amount_fen, received_at, actor)
    SELECT op, $1, 'CSV', repeat('c', 64), 0, 0, 0, now(), 'bench' FROM unnest(ARRAY['OP1', 'OP2']) op`, [business_date]);
  await db.query(`
    INSERT INTO operator_total_line (upload_id, terminal_id, tap_count, amount_fen)
    SELECT u.id, a.terminal_id, a.n, a.amount_fen + CASE WHEN a.rank <= $2 THEN 1 ELSE 0 END
    FROM (SELECT merchant_id, terminal_id, count(*) AS n, sum(amount_fen) AS amount_fen, row_number() OVER (ORDER BY terminal_id) AS rank
          FROM clearing_line WHERE cycle_id = $1 AND kind = 'PURSE_PURCHASE' GROUP BY merchant_id, terminal_id) a
    JOIN operator_total_upload u ON u.operator_id = a.merchant_id`, [cycle_id, operator_mismatches_n]);
  await db.query('ANALYZE clearing_line');
  await db.query('ANALYZE settlement_return_line');
  const per = (r: number) => Math.floor((lines_n - r) / plant_every) + 1;
  return {
    MISSING_AT_BANK: per(1),
    AMOUNT_MISMATCH: per(2),
    DUPLICATE_AT_BANK: per(3),
    REJECTED_BY_BANK: per(4) + 1,
    UNKNOWN_AT_ENGINE: unknown,
    OPERATOR_TOTAL_MISMATCH: operator_mismatches_n,
  };
}
