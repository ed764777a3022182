/**
 * Ingest benchmark: genuine protobuf tap batches (1,000 taps each) POSTed over HTTP to the engine
 * running as its own process, for `--duration` seconds with `--connections` concurrent uploads,
 * each request a different batch. Measured: taps accepted and durably posted (counted in the
 * database afterwards) per second, batch latency, the server's peak RSS. In the same run, the
 * same taps are written by raw set-based SQL (unnest of tap rows, entries and postings, one
 * aggregated balance update per batch, same indexes, no checks, no triggers) as the baseline, so
 * the ratio means something on a noisy machine.
 *
 * Reference data: 1 operator, 2,000 terminals, 100,000 cards with funded purses. The taps model
 * a day of uploads: batch b carries the next 1,000 taps of the card population (card g mod
 * 100,000, its counter rising each round) from 20 terminals (50 consecutive sequence numbers
 * each). Concurrent batches therefore touch different cards and terminals, as uploads from
 * different buses do; `--pattern random` draws cards at random instead (every concurrent pair of
 * batches then shares cards and takes turns on their purse locks: the worst case).
 *
 * Options: --duration S (30) --connections N (4) --batch N (1000) --cards N (100000)
 *          --terminals N (2000) --pattern sequential|random
 *          --cpu-prof-dir DIR (write a V8 CPU profile of the engine process there)
 *          --ledger-fillfactor N (experiment, off by default: migration 0015 sets ledger_account
 *            to fillfactor 80 so balance updates are HOT; this tries another value, the table
 *            rewritten before the run. Reported.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { createApiKey } from '../adapters/auth/api-keys.ts';
import { ConfigKeyStore } from '../adapters/crypto/index.ts';
import { createPool, withTx, type Db } from '../adapters/postgres/db.ts';
import { encodeTapBatchProtobuf } from '../adapters/protobuf/tap-batch-codec.ts';
import type { TapRecordInput } from '../engine/ingest/index.ts';
import { Ledger, type EntryInput } from '../ledger/index.ts';
import { benchDatabase, processCpuMs, progress, report } from './support.ts';

const { values } = parseArgs({ args: process.argv.slice(3), options: {
  duration: { type: 'string', default: '30' }, connections: { type: 'string', default: '4' },
  batch: { type: 'string', default: '1000' }, cards: { type: 'string', default: '100000' },
  terminals: { type: 'string', default: '2000' }, pattern: { type: 'string', default: 'sequential' },
  'cpu-prof-dir': { type: 'string' }, 'ledger-fillfactor': { type: 'string' },
} });
const duration_s = Number(values.duration);
const connections = Number(values.connections);
const batch_taps = Number(values.batch);
const cards_total = Number(values.cards);
const terminals_total = Number(values.terminals);
const pattern = values.pattern === 'random' ? 'random' : 'sequential';
const terminals_per_batch = 20;
const taps_per_terminal = Math.ceil(batch_taps / terminals_per_batch);
/** Bodies are built before the run; enough for this rate, so no batch is ever sent twice. */
const prebuilt_taps_per_s_max = 60_000;
const purse_funding_fen = 5_000_000n;
const operator_id = 'OP-BENCH';
const bank_code = '102100099996';
const business_date_of_loads = '2026-01-01';
/** Bench-only keys (not the spec's test vectors' key, not anyone's production key). */
const tac_master_keys = '1:00112233445566778899AABBCCDDEEFF';
const qr_master_keys = '1:FFEEDDCCBBAA99887766554433221100';
const pii_keys = '1:0F1E2D3C4B5A69788796A5B4C3D2E1F0';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cardNo = (i: number) => `62170${String(i).padStart(14, '0')}`;
const terminalId = (i: number) => `4203${String(i).padStart(8, '0')}`;

const bench_started_ms = Date.now();
function log(msg: string): void {
  process.stderr.write(`[${((Date.now() - bench_started_ms) / 1000).toFixed(1)} s] ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

async function seed(db: Db): Promise<void> {
  log('setup: reference data (set-based)');
  await db.query(`INSERT INTO bank (code, name) VALUES ($1, 'Bench bank')`, [bank_code]);
  await db.query(`
    INSERT INTO merchant (id, name, kind, is_operator, acquiring_bank, settlement_account)
    VALUES ($1, 'Bench bus company', 'TRANSIT', true, $2, '6222000000001')`, [operator_id, bank_code]);
  await db.query(`
    INSERT INTO terminal (id, merchant_id, line_id)
    SELECT '4203' || lpad(i::text, 8, '0'), $1, 'L' || (i / 20) FROM generate_series(0, $2 - 1) i`, [operator_id, terminals_total]);
  await db.query(`
    INSERT INTO card (card_no, issuing_bank, form, status, status_since)
    SELECT '62170' || lpad(i::text, 14, '0'), $1, 'PHYSICAL', 'ACTIVE', '2026-01-01T00:00:00Z' FROM generate_series(0, $2 - 1) i`,
  [bank_code, cards_total]);
  await db.query(`
    INSERT INTO card_status_event (card_no, status, effective_at, actor)
    SELECT '62170' || lpad(i::text, 14, '0'), 'ACTIVE', '2026-01-01T00:00:00Z', 'bench' FROM generate_series(0, $1 - 1) i`, [cards_total]);
  log('setup: funding purses (one ledger batch)');
  // One ledger batch: entries of up to 50,000 lines, bank → purse.
  const ledger = new Ledger();
  // Open the purse accounts first, in slices: Ledger.accountIdsFor is quadratic in the number of
  // codes it has not seen (see the report); once committed they are cached, and the funding
  // batch below resolves every code from the cache.
  const opening_slice = 2_000;
  for (let c = 0; c < cards_total; c += opening_slice) {
    const codes: string[] = [];
    for (let i = c; i < Math.min(cards_total, c + opening_slice); i++) codes.push(`card:${cardNo(i)}:purse`);
    await withTx(db, (tx) => ledger.accountIdsFor(tx, codes));
  }
  await ledger.accountIdsFor(db, [`bank:${bank_code}:clearing`]);
  const entries: EntryInput[] = [];
  const lines_per_entry = 50_000;
  for (let c = 0; c < cards_total; c += lines_per_entry) {
    const lines = [];
    for (let i = c; i < Math.min(cards_total, c + lines_per_entry); i++) {
      lines.push({ debit: `bank:${bank_code}:clearing`, credit: `card:${cardNo(i)}:purse`, amountFen: purse_funding_fen });
    }
    entries.push({ idemKey: `bench-load:${c}`, kind: 'PURSE_LOAD', businessDate: business_date_of_loads, lines });
  }
  log('setup: purse accounts open');
  await withTx(db, (tx) => ledger.postBatch(tx, entries));
  log('setup: purses funded');
  if (values['ledger-fillfactor'] !== undefined) {
    const ff = Number(values['ledger-fillfactor']);
    if (!Number.isInteger(ff) || ff < 10 || ff > 100) throw new Error('--ledger-fillfactor must be 10..100');
    log(`setup: EXPERIMENT ledger_account fillfactor ${ff}`);
    await db.query(`ALTER TABLE ledger_account SET (fillfactor = ${ff})`);
    await db.query('VACUUM FULL ledger_account');
  }
  await db.query('VACUUM ANALYZE');
  await db.query('CHECKPOINT');
  log('setup: reference data and purses ready');
}

interface Prebuilt {
  bodies: Buffer[];
  /** The same taps, for the baseline. */
  batches: TapRecordInput[][];
}

function buildBatches(count: number, startMs: number): Prebuilt {
  const keys = ConfigKeyStore.fromConfigStrings(tac_master_keys, undefined);
  const counters = new Uint32Array(cards_total);
  const balances = new Float64Array(cards_total).fill(Number(purse_funding_fen));
  const seqs = new Uint32Array(terminals_total);
  let rnd = 0x2545f491;
  const next = () => { rnd ^= rnd << 13; rnd ^= rnd >>> 17; rnd ^= rnd << 5; return (rnd >>> 0) / 4294967296; };
  const bodies: Buffer[] = [];
  const batches: TapRecordInput[][] = [];
  const bar = progress('setup: signing tap batches', count);
  for (let b = 0; b < count; b++) {
    const records: TapRecordInput[] = new Array(batch_taps);
    const used = new Set<number>();
    let total = 0;
    for (let i = 0; i < batch_taps; i++) {
      const g = b * batch_taps + i;
      let card: number;
      if (pattern === 'sequential') card = g % cards_total;
      else {
        do card = Math.floor(next() * cards_total); while (used.has(card));
        used.add(card);
      }
      const terminal = (b * terminals_per_batch + Math.floor(i / taps_per_terminal)) % terminals_total;
      const amountFen = 100 + (g % 7) * 50;
      counters[card]++;
      seqs[terminal]++;
      // A day of taps, spread over the last hours before the run (never in the future).
      const localTime = shanghaiLocalTime(startMs - 6 * 3_600_000 + Math.floor((g / (count * batch_taps)) * 5 * 3_600_000));
      const fields = { amountFen, txnType: 9, terminalId: terminalId(terminal), terminalSeq: seqs[terminal], localTime };
      records[i] = {
        cardNo: cardNo(card), cardCounter: counters[card], txnType: 9, amountFen, balanceBeforeFen: balances[card],
        terminalId: fields.terminalId, terminalSeq: fields.terminalSeq, localTime, keyVersion: 1,
        tac: keys.computeTac(1, cardNo(card), fields), lineId: `L${Math.floor(terminal / 20)}`, stationId: '', entryStationId: '', entryLocalTime: '',
      };
      balances[card] -= amountFen;
      total += amountFen;
    }
    const batchId = `BENCH-${String(b).padStart(6, '0')}`;
    bodies.push(encodeTapBatchProtobuf({
      operatorId: operator_id, batchId, createdAt: new Date(startMs).toISOString(), recordCount: batch_taps, totalAmountFen: BigInt(total), records,
    }));
    batches.push(records);
    bar.tick();
  }
  bar.stop();
  return { bodies, batches };
}

function shanghaiLocalTime(ms: number): string {
  const d = new Date(ms + 8 * 3_600_000).toISOString();
  return d.slice(0, 4) + d.slice(5, 7) + d.slice(8, 10) + d.slice(11, 13) + d.slice(14, 16) + d.slice(17, 19);
}

// ---------------------------------------------------------------------------------------------
// The engine as its own process
// ---------------------------------------------------------------------------------------------

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function startServer(databaseUrl: string, port: number, dataDir: string): Promise<ChildProcess> {
  // node --import tsx (not the tsx wrapper) so that the child's pid is the server's, for its RSS.
  const profile = values['cpu-prof-dir'] === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.resolve(values['cpu-prof-dir'])}`];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', path.join('adapters', 'cli', 'start.ts')], {
    cwd: repo,
    env: {
      ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), HOST: '127.0.0.1', WORKERS: 'false',
      TAC_MASTER_KEYS: tac_master_keys, QR_MASTER_KEYS: qr_master_keys, PII_KEYS: pii_keys,
      LOG_LEVEL: 'warn', ONECARD_DATA_DIR: dataDir, PG_POOL_SIZE: String(Math.max(4, connections + 2)),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => { stderr += d; if (stderr.length > 20_000) stderr = stderr.slice(-10_000); });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`engine exited during start (${child.exitCode}): ${stderr.slice(-2000)}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.status < 500) return child;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`engine did not start in 60 s: ${stderr.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The engine's Postgres backends (its pool connections), to count their CPU too. */
async function engineBackendPids(db: Db): Promise<number[]> {
  const r = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'onecard'`);
  return r.rows.map((x) => x.pid);
}

function rssSamplerOf(pid: number): { maxMb(): number; stop(): void } {
  let maxKb = 0;
  const sample = () => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) maxKb = Math.max(maxKb, Number(m[1]));
    } catch { /* the process has exited */ }
  };
  sample();
  const t = setInterval(sample, 200);
  t.unref();
  return { maxMb: () => { sample(); return Math.round(maxKb / 1024); }, stop: () => clearInterval(t) };
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// Baseline: the same taps by raw set-based SQL
// ---------------------------------------------------------------------------------------------

async function baseline(db: Db, batches: TapRecordInput[][]): Promise<{ seconds: number }> {
  await db.query(`
    CREATE TABLE base_tap (LIKE tap_record INCLUDING DEFAULTS);
    ALTER TABLE base_tap ADD PRIMARY KEY (batch_no, idx);
    CREATE UNIQUE INDEX ON base_tap (card_no, card_counter, txn_type) WHERE outcome = 'ACCEPTED';
    CREATE UNIQUE INDEX ON base_tap (terminal_id, terminal_seq) WHERE outcome = 'ACCEPTED';
    CREATE INDEX ON base_tap USING brin (business_date);
    CREATE TABLE base_account (LIKE ledger_account INCLUDING DEFAULTS);
    INSERT INTO base_account SELECT * FROM ledger_account;
    ALTER TABLE base_account ADD PRIMARY KEY (id);
    CREATE UNIQUE INDEX ON base_account (code);
    CREATE TABLE base_entry (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, idem_key text NOT NULL UNIQUE, kind text NOT NULL,
      business_date date NOT NULL, description text, metadata jsonb, reverses_entry_id bigint, hold_id bigint, posted_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX ON base_entry (business_date, id);
    CREATE TABLE base_posting (entry_id bigint NOT NULL, line_no integer NOT NULL, debit_account_id bigint NOT NULL,
      credit_account_id bigint NOT NULL, amount_fen bigint NOT NULL, PRIMARY KEY (entry_id, line_no));
    CREATE INDEX ON base_posting (debit_account_id, entry_id);
    CREATE INDEX ON base_posting (credit_account_id, entry_id);`);
  await db.query('VACUUM ANALYZE base_account');
  await db.query('CHECKPOINT');
  const ids = new Map<string, string>();
  const r = await db.query<{ id: bigint; code: string }>(`SELECT id, code FROM base_account`);
  for (const row of r.rows) ids.set(row.code, String(row.id));
  const payable = ids.get(`merchant:${operator_id}:payable`) as string;
  const bar = progress('baseline raw SQL', batches.length);
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: connections }, async () => {
    for (let b = next++; b < batches.length; b = next++) {
      const recs = batches[b];
      const n = recs.length;
      const idx = new Array<number>(n), card = new Array<string>(n), counter = new Array<number>(n), amount = new Array<number>(n);
      const before = new Array<number>(n), term = new Array<string>(n), seq = new Array<number>(n), lt = new Array<string>(n);
      const tac = new Array<string>(n), line = new Array<string>(n), keys = new Array<string>(n), dr = new Array<string>(n);
      for (let i = 0; i < n; i++) {
        const x = recs[i];
        idx[i] = i; card[i] = x.cardNo; counter[i] = x.cardCounter; amount[i] = x.amountFen; before[i] = x.balanceBeforeFen;
        term[i] = x.terminalId; seq[i] = x.terminalSeq; lt[i] = x.localTime; tac[i] = x.tac; line[i] = x.lineId;
        keys[i] = `tap:${x.cardNo}:${x.cardCounter}:${x.txnType}`;
        dr[i] = ids.get(`card:${x.cardNo}:purse`) as string;
      }
      await withTx(db, async (tx) => {
        await tx.query(`
          INSERT INTO base_tap (batch_no, idx, operator_id, outcome, card_no, card_counter, txn_type, amount_fen, balance_before_fen,
            terminal_id, terminal_seq, local_time, key_version, tac, line_id, business_date)
          SELECT $1, i, $2, 'ACCEPTED', c, k, 9, a, bb, t, s, l, 1, tc, ln, '2026-11-28'
          FROM unnest($3::int[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[])
            AS x(i, c, k, a, bb, t, s, l, tc, ln)`,
        [b, operator_id, idx, card, counter, amount, before, term, seq, lt, tac, line]);
        await tx.query(`
          WITH e AS (INSERT INTO base_entry (idem_key, kind, business_date)
            SELECT k, 'TRANSIT_TAP', '2026-11-28' FROM unnest($1::text[]) k RETURNING id, idem_key)
          INSERT INTO base_posting (entry_id, line_no, debit_account_id, credit_account_id, amount_fen)
          SELECT e.id, 0, l.dr, $2, l.amt FROM unnest($1::text[], $3::bigint[], $4::bigint[]) l(k, dr, amt)
          JOIN e ON e.idem_key = l.k`, [keys, payable, dr, amount]);
        await tx.query(`
          WITH d AS (SELECT id, sum(dr)::bigint dr, sum(cr)::bigint cr FROM (
              SELECT unnest($1::bigint[]) id, unnest($2::bigint[]) dr, 0::bigint cr
              UNION ALL SELECT $3::bigint, 0, sum(a) FROM unnest($2::bigint[]) a) x GROUP BY id),
          l AS (SELECT a.id FROM base_account a JOIN d USING (id) ORDER BY a.id FOR NO KEY UPDATE)
          UPDATE base_account a SET debits_posted_fen = a.debits_posted_fen + d.dr, credits_posted_fen = a.credits_posted_fen + d.cr
          FROM d WHERE a.id = d.id AND EXISTS (SELECT 1 FROM l)`, [dr, amount, payable]);
      });
      bar.tick();
    }
  }));
  bar.stop();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

// ---------------------------------------------------------------------------------------------
// Run
// ---------------------------------------------------------------------------------------------

const bdb = await benchDatabase();
const db: Db = createPool(bdb.url, connections + 2, 'onecard-bench');
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'onecard-bench-'));
let server: ChildProcess | null = null;
try {
  await seed(db);
  const token = (await createApiKey(db, 'operator', operator_id, 'bench operator', 'bench')).token;
  const startMs = Date.now();
  const batchCount = Math.ceil((duration_s * prebuilt_taps_per_s_max) / batch_taps);
  const built = buildBatches(batchCount, startMs);

  const port = await freePort();
  log('starting the engine (its own process)');
  server = await startServer(bdb.url, port, dataDir);
  const rss = rssSamplerOf(server.pid as number);

  log(`uploading for ${duration_s} s with ${connections} connections`);
  let sent = 0;
  const statusCounts = new Map<number, number>();
  const serverCpu0 = (processCpuMs(server.pid as number) ?? 0);
  const t0 = process.hrtime.bigint();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const inst = autocannon({
      url: `http://127.0.0.1:${port}`,
      connections,
      pipelining: 1,
      duration: duration_s,
      timeout: 60,
      requests: [{
        method: 'POST',
        path: '/v1/transit/batches',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-protobuf' },
        setupRequest: (req) => {
          if (sent >= built.bodies.length) throw new Error('ran out of prebuilt batches: raise prebuilt_taps_per_s_max');
          req.body = built.bodies[sent++];
          return req;
        },
      }],
    }, (err, res) => (err ? reject(err) : resolve(res)));
    inst.on('response', (_client, statusCode) => statusCounts.set(statusCode, (statusCounts.get(statusCode) ?? 0) + 1));
    const tick = setInterval(() => log(`  ${sent} batches sent`), 5000);
    inst.on('done', () => clearInterval(tick));
  });
  const engineSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  // Where the two cores went: the engine process, and its Postgres backends (created during the run).
  const serverCpuMs = (processCpuMs(server.pid as number) ?? 0) - serverCpu0;
  let pgCpuMs = 0;
  for (const pid of await engineBackendPids(db)) pgCpuMs += processCpuMs(pid) ?? 0;
  const rssMb = rss.maxMb();
  rss.stop();
  await stopServer(server);
  server = null;

  const counts = (await db.query<{ accepted: bigint; rejected: bigint; entries: bigint; batches: bigint }>(`
    SELECT (SELECT count(*) FROM tap_record WHERE outcome = 'ACCEPTED')::bigint AS accepted,
           (SELECT count(*) FROM tap_record WHERE outcome = 'REJECTED')::bigint AS rejected,
           (SELECT count(*) FROM ledger_entry WHERE kind = 'TRANSIT_TAP')::bigint AS entries,
           (SELECT count(*) FROM tap_batch)::bigint AS batches`)).rows[0];
  if (counts.entries !== counts.accepted) throw new Error(`ledger entries (${counts.entries}) ≠ accepted taps (${counts.accepted})`);
  const verify = await new Ledger().verify(db);
  const accepted = Number(counts.accepted);
  const tapsPerS = Math.round(accepted / engineSeconds);

  // The baseline writes exactly the batches the engine applied.
  const appliedBatches = built.batches.slice(0, Number(counts.batches));
  const base = await baseline(db, appliedBatches);
  const baselinePerS = Math.round((appliedBatches.length * batch_taps) / base.seconds);

  const latencies = [result.latency.p50, result.latency.p99];
  report('ingest', {
    duration_s: Number(engineSeconds.toFixed(1)), connections, batch_taps, pattern, cards: cards_total, terminals: terminals_total,
    batches_applied: Number(counts.batches), taps_accepted: accepted, taps_rejected: Number(counts.rejected),
    non_2xx: [...statusCounts].filter(([s]) => s >= 300).reduce((a, [, c]) => a + c, 0),
    taps_per_s: tapsPerS,
    batch_latency_ms_p50: latencies[0],
    batch_latency_ms_p99: latencies[1],
    rss_mb_max: rssMb,
    engine_cpu_ms_per_batch: Number((serverCpuMs / Number(counts.batches)).toFixed(1)),
    postgres_cpu_ms_per_batch: Number((pgCpuMs / Number(counts.batches)).toFixed(1)),
    baseline_taps_per_s: baselinePerS,
    ratio: Number((tapsPerS / baselinePerS).toFixed(3)),
    ledger_fillfactor_experiment: values['ledger-fillfactor'] === undefined ? null : Number(values['ledger-fillfactor']),
    bar_taps_per_s: 25_000,
    meets_bar: tapsPerS >= 25_000,
    verify_ok: verify.ok,
  });
} finally {
  if (server !== null) await stopServer(server);
  await db.end();
  await bdb.drop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
