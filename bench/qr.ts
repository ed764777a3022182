/**
 * QR payment benchmark: the engine as its own process (`tsx adapters/cli/start.ts`) on a fresh
 * database with 100,000 active e-cards (with medical personal accounts) and a few dozen
 * merchants, driven at a FIXED rate by an open-loop generator (bench/paced.ts: request i is due
 * at i / rate and sent when due; its latency counts from then, so waiting for the engine is
 * charged): every request a new, unique, freshly issued pay code; 15% medical payments drawing on
 * the medical account, 5% utility bills, the rest plain QR. The same run measures GET /healthz at
 * the same rate as the baseline: what the machine, Node and HTTP cost before any payment work.
 *
 * Options: --rate N (req/s, default 1000) --duration S (default 20) --warmup S (default 10)
 *          --connections N (most keep-alive connections open at once, default 64)
 *          --cards N (default 100000) --medical-share F (0.15) --utility-share F (0.05)
 *          --pool N (engine PG_POOL_SIZE) --profile DIR (write the engine's V8 CPU profile there)
 *
 * Beside latency it reports the CPU each payment cost the engine process, this database's
 * Postgres backends and the load generator (from /proc), the rest of the machine's CPU meanwhile
 * (`other_cpu_ms_per_payment`), how busy its cores were and how much the hypervisor took
 * (`machine_cpu_busy_fraction`, `machine_cpu_steal_fraction`), and the 1-minute load average when
 * the run started: on a shared machine, other work on the same two cores shows there first. `stages`
 * says where a payment's time goes, from the engine's own metrics: for each batched stage (facts,
 * bank, post) its batches, items per batch, mean batch time and the fraction of the run it was
 * busy; each stage runs one batch at a time, so a stage busy most of the run is where payments
 * queue.
 *
 * Two readings tell the engine's tail from the machine's: `latency_ms_p99_by_second`, the p99 of
 * the requests due in each second (a few stalls show as a few bad seconds, queueing as a bad
 * run), and a disk probe beside the run (8 KiB written and fdatasync'd every 20 ms in the temp
 * directory; with a local Postgres on the same disk, what each durable commit waits for):
 * `disk_fsync_ms_p99`, `disk_fsync_ms_max` and how many syncs took over 50 ms. Postgres' own
 * count says what the commits themselves waited for: `wal_syncs` and `wal_sync_ms_mean` (the
 * server's WAL syncs during the run and their mean time, when the benchmark may turn on
 * track_wal_io_timing), with the WAL each payment wrote (`wal_records_per_payment`,
 * `wal_bytes_per_payment`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { createApiKey } from '../adapters/auth/api-keys.ts';
import { ConfigKeyStore, encodeQrCode } from '../adapters/crypto/index.ts';
import { createPool, withTx, type Db } from '../adapters/postgres/db.ts';
import { Ledger, type EntryInput } from '../ledger/index.ts';
import { benchDatabase, percentile, proc_ms_per_tick, processCpuMs, progress, report } from './support.ts';
import { PacedConnections, paced, type PacedRequest, type PacedResult } from './paced.ts';

const { values } = parseArgs({ args: process.argv.slice(3), options: {
  rate: { type: 'string', default: '1000' }, duration: { type: 'string', default: '20' }, warmup: { type: 'string', default: '10' },
  connections: { type: 'string', default: '64' }, cards: { type: 'string', default: '100000' },
  'medical-share': { type: 'string', default: '0.15' }, 'utility-share': { type: 'string', default: '0.05' }, pool: { type: 'string' },
  profile: { type: 'string' },
} });
const rate_per_s = Number(values.rate);
const duration_s = Number(values.duration);
const warmup_s = Number(values.warmup);
const connections = Number(values.connections);
const cards_total = Number(values.cards);
const medical_share = Number(values['medical-share']);
const utility_share = Number(values['utility-share']);
/** The bar this benchmark exists to check. */
const latency_ms_p99_max = 25;
const engine_ready_timeout_ms = 60_000;
const engine_stop_timeout_ms = 15_000;
const medical_balance_fen = 5_000n;
const fund_batch_entries = 10_000;

const repo_root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const banks = ['102100000001', '103100000002', '104100000003', '105100000004', '301290000007'];
const merchants = [
  ...Array.from({ length: 20 }, (_, i) => ({ id: `SHOP${String(i).padStart(2, '0')}`, kind: 'RETAIL' })),
  ...Array.from({ length: 10 }, (_, i) => ({ id: `HOSP${String(i).padStart(2, '0')}`, kind: 'MEDICAL' })),
  ...Array.from({ length: 4 }, (_, i) => ({ id: `UTIL${String(i).padStart(2, '0')}`, kind: 'UTILITY' })),
];
const cardNo = (i: number) => `62179${String(i).padStart(14, '0')}`;
const hexKey = () => crypto.randomBytes(16).toString('hex').toUpperCase();

interface Planned {
  merchant: number;
  body: string;
}

function plan(count: number, firstCard: number, keyStore: ConfigKeyStore, issuedAtS: number, tag: string): Planned[] {
  const out: Planned[] = [];
  const byKind = (k: string) => merchants.map((m, i) => ({ m, i })).filter((x) => x.m.kind === k).map((x) => x.i);
  const shops = byKind('RETAIL'), hosps = byKind('MEDICAL'), utils = byKind('UTILITY');
  for (let n = 0; n < count; n++) {
    const c = cardNo((firstCard + n) % cards_total);
    const roll = (n * 7919) % 1000 / 1000;
    const amountFen = 100 + ((n * 104729) % 9900);
    const base = { qr_code: encodeQrCode(keyStore, { cardNo: c, issuedAtS }), amount_fen: String(amountFen), order_id: `${tag}-${n}` };
    if (roll < medical_share) {
      out.push({ merchant: hosps[n % hosps.length], body: JSON.stringify({ ...base, medical: { visit_no: `V${n}` } }) });
    } else if (roll < medical_share + utility_share) {
      out.push({ merchant: utils[n % utils.length], body: JSON.stringify({ ...base, utility: { customer_no: `C${n}`, bill_id: `${tag}-B${n}` } }) });
    } else {
      out.push({ merchant: shops[n % shops.length], body: JSON.stringify(base) });
    }
  }
  return out;
}

/** `rate_per_s` requests for `seconds`, evenly spaced (see bench/paced.ts). */
async function run(baseUrl: string, request: (i: number) => PacedRequest, seconds: number, title: string, conns?: PacedConnections): Promise<PacedResult> {
  const bar = progress(title, Math.round(rate_per_s * seconds));
  let shown = 0;
  const r = await paced({
    baseUrl, ratePerS: rate_per_s, seconds, connectionsMax: connections, request, ...(conns ? { connections: conns } : {}),
    onProgress: (sent) => { if (sent > shown) { bar.tick(sent - shown); shown = sent; } },
  });
  bar.stop();
  return r;
}

/** User + system CPU time of processes, in ms (Linux /proc; 0 for processes that are gone). */
function cpuMs(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (processCpuMs(pid) ?? 0), 0);
}

/**
 * The whole machine's CPU time from /proc/stat, in ms over all cores: busy (user, nice, system,
 * irq, softirq), stolen by the hypervisor, and in all. Zeros where there is no /proc/stat.
 */
function machineCpuMs(): { busy: number; steal: number; total: number } {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1, 9).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    return {
      busy: (user + nice + system + irq + softirq) * proc_ms_per_tick,
      steal: steal * proc_ms_per_tick,
      total: f.reduce((a, b) => a + b, 0) * proc_ms_per_tick,
    };
  } catch {
    return { busy: 0, steal: 0, total: 0 };
  }
}

interface WalTotals { records: number; bytes: number; syncs: number; syncMs: number; timed: boolean }

/**
 * The server's WAL totals (pg_stat_wal: the whole server's, so on a server of its own this run's):
 * records and bytes written, syncs to disk and their time (when this session times them).
 */
async function walTotals(db: Db): Promise<WalTotals> {
  const { rows: [w] } = await db.query<{ records: string; bytes: string; syncs: string; sync_ms: number; timed: boolean }>(`
    SELECT wal_records::text AS records, wal_bytes::text AS bytes, wal_sync::text AS syncs, wal_sync_time AS sync_ms,
           current_setting('track_wal_io_timing')::boolean AS timed
    FROM pg_stat_wal`);
  return { records: Number(w.records), bytes: Number(w.bytes), syncs: Number(w.syncs), syncMs: w.sync_ms, timed: w.timed };
}

type StageTotals = Record<'facts' | 'bank' | 'post', { batches: number; items: number; seconds: number }>;

/** The payment stages' batch totals, read from the engine's /metrics. */
async function stageTotals(base: string): Promise<StageTotals> {
  const body = await (await fetch(`${base}/metrics`)).text();
  const read = (series: string, stage: string) => Number(new RegExp(`^${series}\\{stage="${stage}"\\} (\\S+)$`, 'm').exec(body)?.[1] ?? 0);
  const one = (stage: string) => ({
    batches: read('onecard_payment_batch_items_count', stage),
    items: read('onecard_payment_batch_items_sum', stage),
    seconds: read('onecard_payment_batch_duration_seconds_sum', stage),
  });
  return { facts: one('facts'), bank: one('bank'), post: one('post') };
}

/**
 * Per stage over the measured run: batches, items per batch, mean batch time, and the fraction of
 * the run the stage was busy (it runs one batch at a time, so near 1 is where payments queue).
 */
function stageReport(before: StageTotals, after: StageTotals, seconds: number) {
  const out: Record<string, { batches: number; items_per_batch: number; batch_ms_mean: number; busy_fraction: number }> = {};
  for (const stage of ['facts', 'bank', 'post'] as const) {
    const batches = after[stage].batches - before[stage].batches;
    const busy = after[stage].seconds - before[stage].seconds;
    out[stage] = {
      batches,
      items_per_batch: Number(((after[stage].items - before[stage].items) / Math.max(batches, 1)).toFixed(2)),
      batch_ms_mean: Number(((busy * 1000) / Math.max(batches, 1)).toFixed(2)),
      busy_fraction: Number((busy / Math.max(seconds, 1e-9)).toFixed(2)),
    };
  }
  return out;
}

/** The p99 latency of the requests due in each second of the run. */
function p99BySecond(r: PacedResult): number[] {
  const bySecond: number[][] = [];
  r.answers.dueMs.forEach((due, i) => (bySecond[Math.floor(due / 1000)] ??= []).push(r.answers.latencyMs[i]));
  return Array.from(bySecond, (l) => (l === undefined ? 0 : Number(percentile(l.sort((a, b) => a - b), 99).toFixed(1))));
}

const disk_probe_interval_ms = 20;
/** What `disk_fsyncs_over_50ms` counts. */
const disk_probe_slow_ms = 50;

/**
 * fdatasync latency of the disk under `dir`, sampled on a thread of its own while the run goes:
 * a sync that stalls is a stall of every durable commit on that disk at the time.
 */
function startDiskProbe(dir: string): { stop: () => Promise<number[]> } {
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const fs = require('node:fs');
    const fd = fs.openSync(workerData.file, 'w');
    const block = Buffer.alloc(8192, 1);
    const syncMs = [];
    let stopped = false;
    parentPort.on('message', () => { stopped = true; });
    (async () => {
      for (let i = 0; !stopped; i++) {
        fs.writeSync(fd, block, 0, block.length, (i % 128) * block.length);
        const t = performance.now();
        fs.fdatasyncSync(fd);
        syncMs.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, workerData.intervalMs));
      }
      fs.closeSync(fd);
      fs.rmSync(workerData.file);
      parentPort.postMessage(syncMs);
    })();`, { eval: true, workerData: { file: path.join(dir, 'disk-probe'), intervalMs: disk_probe_interval_ms } });
  const result = new Promise<number[]>((resolve, reject) => {
    worker.once('message', (m: number[]) => resolve(m));
    worker.once('error', reject);
  });
  return { stop: () => { worker.postMessage('stop'); return result.finally(() => worker.terminate()); } };
}

/** The engine as its own process; the tail of its output is kept for when it fails. */
function startEngine(env: NodeJS.ProcessEnv, nodeArgs: string[]): { child: ChildProcess; exited: Promise<number | null>; output: () => string } {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'adapters/cli/start.ts'], { cwd: repo_root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => { out = (out + d.toString()).slice(-8000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => out };
}

async function waitReady(base: string, exited: Promise<number | null>): Promise<void> {
  const deadline = Date.now() + engine_ready_timeout_ms;
  let gone = false;
  void exited.then(() => { gone = true; });
  while (Date.now() < deadline && !gone) {
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(gone ? 'the engine exited during start-up' : 'the engine did not become ready in time');
}

const bdb = await benchDatabase({ walIoTiming: true });
const db = createPool(bdb.url, 4, 'onecard-bench');
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'onecard-bench-qr-'));
let engine: ReturnType<typeof startEngine> | null = null;
try {
  // ---- Reference data and balances, set-based (not measured) ---------------------------------
  await db.query(`INSERT INTO bank (code, name) SELECT c, 'Bank ' || c FROM unnest($1::text[]) c`, [banks]);
  await db.query(`
    INSERT INTO merchant (id, name, kind, acquiring_bank, settlement_account)
    SELECT id, 'Merchant ' || id, kind, ($3::text[])[1 + (ord % cardinality($3::text[]))::int], '62220000000' || ord
    FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS m(id, kind, ord)`,
  [merchants.map((m) => m.id), merchants.map((m) => m.kind), banks]);
  await db.query(`
    INSERT INTO card (card_no, issuing_bank, form, status, status_since)
    SELECT '62179' || lpad(i::text, 14, '0'), ($2::text[])[1 + i % cardinality($2::text[])], 'ECARD', 'ACTIVE', now()
    FROM generate_series(0, $1::int - 1) i`, [cards_total, banks]);
  await db.query(`
    INSERT INTO card_status_event (card_no, status, effective_at, actor)
    SELECT card_no, 'ACTIVE', status_since, 'bench' FROM card`);
  const ledger = new Ledger();
  const funding = progress('setup: medical accounts', Math.ceil(cards_total / fund_batch_entries));
  for (let c = 0; c < cards_total; c += fund_batch_entries) {
    const entries: EntryInput[] = [];
    for (let i = c; i < Math.min(cards_total, c + fund_batch_entries); i++) {
      entries.push({ idemKey: `bench-medical:${i}`, kind: 'MEDICAL_CONTRIBUTION', businessDate: '2026-01-01',
        lines: [{ debit: `bank:${banks[0]}:clearing`, credit: `card:${cardNo(i)}:medical`, amountFen: medical_balance_fen }] });
    }
    await withTx(db, (tx) => ledger.postBatch(tx, entries));
    funding.tick();
  }
  funding.stop();
  const tokens: string[] = [];
  for (const m of merchants) tokens.push((await createApiKey(db, 'merchant', m.id, `bench ${m.id}`, 'bench')).token);
  await db.query('VACUUM ANALYZE');
  await db.query('CHECKPOINT');

  // ---- The engine, as its own process ------------------------------------------------------
  const keys = { tac: `1:${hexKey()}`, qr: `1:${hexKey()}`, pii: `1:${hexKey()}` };
  const keyStore = ConfigKeyStore.fromConfigStrings(keys.tac, keys.qr);
  const port = 20_000 + crypto.randomInt(0, 20_000);
  const base = `http://127.0.0.1:${port}`;
  engine = startEngine({
    ...process.env, DATABASE_URL: bdb.url, WORKERS: 'false', HOST: '127.0.0.1', PORT: String(port), ONECARD_DATA_DIR: dataDir,
    TAC_MASTER_KEYS: keys.tac, QR_MASTER_KEYS: keys.qr, PII_KEYS: keys.pii,
    // Request logs at info are two lines a request on stdout; a production node ships warnings.
    LOG_LEVEL: 'warn',
    ...(values.pool ? { PG_POOL_SIZE: values.pool } : {}),
  }, values.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(values.profile)}`] : []);
  await waitReady(base, engine.exited).catch((e: Error) => {
    throw new Error(`${e.message}\n--- engine output ---\n${engine?.output() ?? ''}`);
  });

  const paymentRequests = (planned: Planned[]) => (i: number): PacedRequest => {
    // Past the planned list a code would repeat and be refused: count it as the error it is.
    const p = planned[Math.min(i, planned.length - 1)];
    return { method: 'POST', path: '/v1/payments/qr', body: p.body, headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[p.merchant]}` } };
  };

  const engineCpuBefore = cpuMs(engine.child.pid === undefined ? [] : [engine.child.pid]);
  const baseline = await run(base, () => ({ method: 'GET', path: '/healthz' }), duration_s, 'GET /healthz (baseline)');
  const baselineEngineCpuMs = cpuMs(engine.child.pid === undefined ? [] : [engine.child.pid]) - engineCpuBefore;

  // Codes are issued just before the runs, as phones show them: each is valid for 60 s.
  const count = Math.ceil(rate_per_s * duration_s * 1.1);
  const warmCount = Math.ceil(rate_per_s * warmup_s * 1.2);
  const issuedAtS = Math.floor(Date.now() / 1000);
  const planned = plan(count, 0, keyStore, issuedAtS, 'pay');
  const warm = plan(warmCount, cards_total - 1 - warmCount, keyStore, issuedAtS, 'warm');
  // Warm-up (not reported), right before the measured run: JIT, connection pools and their
  // sessions' plans, account-id and principal caches, as on an engine that has been serving.
  // The scanners' connections: opened by the warm-up, kept by the measured run.
  const scanners = new PacedConnections(base, connections);
  if (warmup_s > 0) await run(base, paymentRequests(warm), warmup_s, 'warm-up', scanners);
  const load0 = os.loadavg()[0];
  const backends = (await db.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)).rows.map((x) => x.pid);
  const enginePid = engine.child.pid === undefined ? [] : [engine.child.pid];
  const stages0 = await stageTotals(base);
  const cpu0 = { engine: cpuMs(enginePid), pg: cpuMs(backends), self: process.cpuUsage(), machine: machineCpuMs() };
  const wal0 = await walTotals(db);
  const disk = startDiskProbe(dataDir);
  const payments = await run(base, paymentRequests(planned), duration_s, 'POST /v1/payments/qr', scanners);
  const syncMs = (await disk.stop()).sort((a, b) => a - b);
  const wal1 = await walTotals(db);
  scanners.close();
  const stages = stageReport(stages0, await stageTotals(base), payments.durationS);
  const selfCpu = process.cpuUsage(cpu0.self);
  const machine1 = machineCpuMs();
  const perPayment = (ms: number) => Number((ms / Math.max(payments.sent, 1)).toFixed(3));
  const used = { engine: cpuMs(enginePid) - cpu0.engine, pg: cpuMs(backends) - cpu0.pg, generator: (selfCpu.user + selfCpu.system) / 1000 };
  const machine = { busy: machine1.busy - cpu0.machine.busy, steal: machine1.steal - cpu0.machine.steal, total: machine1.total - cpu0.machine.total };
  const fraction = (ms: number) => Number((ms / Math.max(machine.total, 1)).toFixed(3));
  const cpu = {
    engine_cpu_ms_per_payment: perPayment(used.engine),
    pg_cpu_ms_per_payment: perPayment(used.pg),
    load_generator_cpu_ms_per_payment: perPayment(used.generator),
    // Everything else on the machine meanwhile (the kernel's own threads, Postgres' background
    // processes, other services): the share of the cores the engine did not get to use.
    other_cpu_ms_per_payment: perPayment(Math.max(machine.busy - used.engine - used.pg - used.generator, 0)),
    machine_cpu_busy_fraction: fraction(machine.busy),
    machine_cpu_steal_fraction: fraction(machine.steal),
  };

  // Rows written by one transaction share its xmin: how many payments each batch carried.
  const written = await db.query<{ payments: string; medical: string; utility: string; post_txs: string; bank_txs: string }>(`
    SELECT count(*)::text AS payments, count(*) FILTER (WHERE medical_fen > 0)::text AS medical, count(*) FILTER (WHERE bill_id IS NOT NULL)::text AS utility,
           count(DISTINCT xmin::text)::text AS post_txs,
           (SELECT count(DISTINCT a.xmin::text) FROM sim_bank_authorization a JOIN payment p ON p.bank_auth_id = a.auth_id WHERE p.order_id LIKE 'pay-%')::text AS bank_txs
    FROM payment WHERE order_id LIKE 'pay-%'`);
  const v = await ledger.verify(db);
  const pct = (r: PacedResult, p: number) => Number(percentile(r.latencyMs, p).toFixed(1));
  const p99 = pct(payments, 99);
  const baselineP99 = pct(baseline, 99);
  const errors = payments.non2xx + payments.errors;
  const achieved = Math.round(payments.ok / payments.durationS);
  report('qr', {
    rate_per_s, achieved_rate_per_s: achieved, duration_s, connections_max: connections, cards: cards_total, requests: payments.sent,
    latency_ms_p50: pct(payments, 50), latency_ms_p90: pct(payments, 90), latency_ms_p99: p99,
    latency_ms_max: Number((payments.latencyMs[payments.latencyMs.length - 1] ?? 0).toFixed(1)),
    latency_ms_p99_by_second: p99BySecond(payments),
    queue_wait_ms_max: Number(payments.queueWaitMsMax.toFixed(1)),
    errors, status_counts: payments.statusCounts,
    payments_written: Number(written.rows[0].payments), medical_payments: Number(written.rows[0].medical), utility_payments: Number(written.rows[0].utility),
    payments_per_post_tx: Number((Number(written.rows[0].payments) / Math.max(Number(written.rows[0].post_txs), 1)).toFixed(2)),
    authorizations_per_bank_tx: Number((Number(written.rows[0].payments) / Math.max(Number(written.rows[0].bank_txs), 1)).toFixed(2)),
    stages,
    baseline_latency_ms_p50: pct(baseline, 50), baseline_latency_ms_p99: baselineP99,
    baseline_engine_cpu_ms_per_request: Number((baselineEngineCpuMs / Math.max(baseline.sent, 1)).toFixed(3)),
    ratio: Number((p99 / Math.max(baselineP99, 0.1)).toFixed(2)),
    ...cpu, load_avg_1m_at_start: Number(load0.toFixed(2)),
    disk_fsync_ms_p99: Number(percentile(syncMs, 99).toFixed(1)), disk_fsync_ms_max: Number((syncMs[syncMs.length - 1] ?? 0).toFixed(1)),
    disk_fsyncs_over_50ms: syncMs.filter((ms) => ms > disk_probe_slow_ms).length,
    wal_records_per_payment: Number(((wal1.records - wal0.records) / Math.max(payments.sent, 1)).toFixed(1)),
    wal_bytes_per_payment: Math.round((wal1.bytes - wal0.bytes) / Math.max(payments.sent, 1)),
    wal_syncs: wal1.syncs - wal0.syncs,
    wal_sync_ms_mean: wal1.timed ? Number(((wal1.syncMs - wal0.syncMs) / Math.max(wal1.syncs - wal0.syncs, 1)).toFixed(2)) : null,
    latency_ms_p99_max, bar_met: p99 <= latency_ms_p99_max && errors === 0 && achieved >= rate_per_s * 0.98,
    verify_ok: v.ok,
  });
} finally {
  if (engine !== null && engine.child.exitCode === null) {
    engine.child.kill('SIGTERM');
    const stopped = await Promise.race([engine.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), engine_stop_timeout_ms))]);
    if (!stopped) engine.child.kill('SIGKILL');
  }
  await db.end();
  await bdb.drop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
