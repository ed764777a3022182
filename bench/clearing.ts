/**
 * Clearing benchmark: seed N transactions (default 5,000,000) into one cycle with set-based SQL
 * straight into the ledger (loads, transit taps, QR self-pay payments over 100,000 cards, 200
 * merchants, 20 banks; seeding is timed separately and excluded), then clear the cycle and
 * generate every bank's package.
 *
 * Options: --transactions N --cards N
 *   --template NAME  keep the seeded, uncleared database as NAME and reuse it on the next run
 *                    with the same NAME (cloned by CREATE DATABASE … TEMPLATE: seeding 5 M
 *                    transactions takes minutes, a clone seconds); drop it by hand when done
 *   --keep           keep the cleared database (its name is printed) to EXPLAIN the statements
 * JSON (last line): clearing_s, package_lines_per_s, rss_mb_growth, transactions, and where the
 * two cores went: CPU seconds of this process (the engine) and of its Postgres backends, with
 * the load average before and after (the machine is shared, so noise must be visible).
 */
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createPool, withTx, type Db } from '../adapters/postgres/db.ts';
import { currentOpenCycle } from '../adapters/postgres/cycles.ts';
import { migrateUp } from '../adapters/postgres/migrate.ts';
import { clearCycle } from '../adapters/clearing/run.ts';
import { Ledger } from '../ledger/index.ts';
import { benchDatabase, processCpuMs, report, rssSampler, type BenchDb } from './support.ts';

const { values } = parseArgs({ args: process.argv.slice(3), options: {
  transactions: { type: 'string', default: '5000000' }, cards: { type: 'string', default: '100000' },
  template: { type: 'string' }, keep: { type: 'boolean', default: false },
} });
const transactions = Number(values.transactions);
const cards = Number(values.cards);
const banks_n = 20;
const merchants_n = 200;
const seed_chunk = 500_000;
const business_date = '2026-11-28';
const before_cutoff = new Date('2026-11-28T02:00:00Z');
const after_cutoff = new Date('2026-11-28T17:00:00Z');
/** How often the Postgres backends' CPU is sampled (a backend that exits loses at most this). */
const cpu_sample_ms = 200;
const template_name_pattern = /^[a-z_][a-z0-9_]{0,50}$/;

const bdb = await benchDatabase();
const adminUrl = (() => { const u = new URL(bdb.url); u.pathname = '/postgres'; return u.toString(); })();
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bench-clearing-'));
let target: BenchDb = bdb;
try {
  let seedS: number | null = null;
  if (values.template !== undefined) {
    if (!template_name_pattern.test(values.template)) throw new Error('--template must be a lower-case identifier');
    const tpl = values.template;
    if (!(await databaseExists(tpl))) {
      const s = await seed(bdb.url);
      seedS = s;
      await admin(`ALTER DATABASE ${dbName(bdb.url)} RENAME TO ${tpl}`);
      process.stderr.write(`seeded template ${tpl} in ${s.toFixed(1)} s\n`);
    } else {
      // The fresh database is not needed: the template's clone is measured instead.
      await admin(`DROP DATABASE IF EXISTS ${dbName(bdb.url)} WITH (FORCE)`);
    }
    const clone = `${tpl}_run`;
    await admin(`DROP DATABASE IF EXISTS ${clone} WITH (FORCE)`);
    const tc = performance.now();
    await admin(`CREATE DATABASE ${clone} TEMPLATE ${tpl}`);
    const u = new URL(adminUrl); u.pathname = `/${clone}`;
    target = { url: u.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${clone} WITH (FORCE)`) };
    await migrateUp(target.url);
    process.stderr.write(`cloned ${tpl} in ${((performance.now() - tc) / 1000).toFixed(1)} s\n`);
  } else {
    seedS = await seed(bdb.url);
  }

  const db = createPool(target.url, 4, 'bench-clearing');
  try {
    const cycle = await withTx(db, (tx) => currentOpenCycle(tx, before_cutoff, 23 * 60));
    const load0 = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const pgCpu = backendCpuSampler(db, dbName(target.url));
    await pgCpu.start();
    const rss = rssSampler();
    const rssBefore = process.memoryUsage().rss;
    const cpu0 = process.cpuUsage();
    const cpuS = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => Number(((b.user + b.system - a.user - a.system) / 1e6).toFixed(1));
    const t0 = performance.now();
    let clearedAt = 0;
    let cpuCleared = cpu0;
    let pgCleared = 0;
    const res = await clearCycle({
      db, ledger: new Ledger(), settings: { centre: { bankCode: '999100000001', accountId: '99910000000100001' }, packagesDir: path.join(dataDir, 'packages'), cutoff: '23:00' },
      progress: (m) => {
        if (m.startsWith('cleared ')) { clearedAt = performance.now(); cpuCleared = process.cpuUsage(); pgCleared = pgCpu.sampleMs(); }
        process.stderr.write(`${m}  [postgres cpu ${(pgCpu.sampleMs() / 1000).toFixed(1)} s, engine cpu ${cpuS(cpu0, process.cpuUsage())} s]\n`);
      },
    }, cycle.id, 'bench', after_cutoff);
    const t1 = performance.now();
    const cpu1 = process.cpuUsage();
    const pgTotal = pgCpu.stop();
    rss.stop();
    const load1 = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    if (res.state !== 'PUBLISHED') throw new Error(`cycle ended ${res.state}`);
    const lines = Number(res.lines);
    const clearingS = (clearedAt - t0) / 1000;
    const packagesS = (t1 - clearedAt) / 1000;
    report('clearing', {
      transactions, lines, seed_s: seedS === null ? 'template' : Number(seedS.toFixed(1)),
      clearing_s: Number(clearingS.toFixed(1)), packages_s: Number(packagesS.toFixed(1)),
      package_lines_per_s: Math.round(lines / packagesS), packages: res.packages,
      rss_mb_growth: Math.max(0, rss.maxMb() - Math.round(rssBefore / 1048576)),
      clearing_engine_cpu_s: cpuS(cpu0, cpuCleared), clearing_postgres_cpu_s: Number((pgCleared / 1000).toFixed(1)),
      packages_engine_cpu_s: cpuS(cpuCleared, cpu1), packages_postgres_cpu_s: Number(((pgTotal - pgCleared) / 1000).toFixed(1)),
      loadavg_before: load0, loadavg_after: load1,
    });
  } finally {
    await db.end();
  }
} finally {
  await rm(dataDir, { recursive: true, force: true });
  if (values.keep) process.stderr.write(`kept database ${dbName(target.url)}\n`);
  else await target.drop();
  // Drops the fresh database if it is still there, and stops an embedded server.
  if (target !== bdb) await bdb.drop();
}

function dbName(url: string): string {
  return new URL(url).pathname.slice(1);
}

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try { await c.query(sql); } finally { await c.end(); }
}

async function databaseExists(name: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try { return (await c.query(`SELECT 1 FROM pg_database WHERE datname = $1`, [name])).rows.length > 0; } finally { await c.end(); }
}

/**
 * CPU of every backend of the benchmark's database (pool connections and parallel workers),
 * sampled while the run goes: per pid, the last reading minus the first.
 */
function backendCpuSampler(db: Db, datname: string): { start(): Promise<void>; sampleMs(): number; stop(): number } {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  let timer: NodeJS.Timeout | undefined;
  let pids: number[] = [];
  const readAll = () => {
    for (const pid of pids) {
      const ms = processCpuMs(pid);
      if (ms === null) continue;
      if (!first.has(pid)) first.set(pid, ms);
      last.set(pid, ms);
    }
  };
  // A separate connection lists the pids, so the sampler never waits behind the clearing's queries.
  const lister = new pg.Client({ connectionString: (db as unknown as { options: { connectionString: string } }).options.connectionString });
  // Losing the sampler's connection loses samples, not the run.
  lister.on('error', () => undefined);
  let listing = false;
  const list = async () => {
    if (listing) return;
    listing = true;
    try {
      const r = await lister.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [datname]);
      pids = r.rows.map((x) => x.pid);
    } catch { /* ended */ } finally { listing = false; }
    readAll();
  };
  const total = () => { let s = 0; for (const [pid, ms] of last) s += ms - (first.get(pid) ?? ms); return s; };
  return {
    async start() {
      await lister.connect();
      await db.query('SELECT 1');
      await list();
      timer = setInterval(() => { void list(); }, cpu_sample_ms);
    },
    sampleMs() { readAll(); return total(); },
    stop() { readAll(); clearInterval(timer); void lister.end(); return total(); },
  };
}

/** Seeds the bench database; returns the seconds it took. */
async function seed(url: string): Promise<number> {
  const db = createPool(url, 4, 'bench-clearing-seed');
  try {
    const tSeed = performance.now();
    await seedInto(db);
    return (performance.now() - tSeed) / 1000;
  } finally {
    await db.end();
  }
}

async function seedInto(db: Db): Promise<void> {
  await db.query(`INSERT INTO bank (code, name) SELECT lpad((102100000000 + g)::text, 12, '0'), 'Bank ' || g FROM generate_series(1, ${banks_n}) g`);
  await db.query(`INSERT INTO merchant (id, name, kind, is_operator, acquiring_bank, settlement_account)
    SELECT 'M' || g, 'Merchant ' || g, CASE WHEN g <= 20 THEN 'TRANSIT' ELSE 'RETAIL' END, g <= 20,
           lpad((102100000000 + 1 + g % ${banks_n})::text, 12, '0'), '6222000000001' FROM generate_series(1, ${merchants_n}) g`);
  await db.query(`INSERT INTO merchant_fee_schedule (merchant_id, effective_from, rate, min_fen, max_fen, created_by)
    SELECT 'M' || g, '2026-01-01', 0.006, 0, 500, 'bench' FROM generate_series(1, ${merchants_n}) g`);
  await db.query(`INSERT INTO card (card_no, issuing_bank, form, status, status_since)
    SELECT '62170' || lpad(g::text, 14, '0'), lpad((102100000000 + 1 + g % ${banks_n})::text, 12, '0'), 'PHYSICAL', 'ACTIVE', now()
    FROM generate_series(0, ${cards - 1}) g`);
  await new Ledger().accountIdsFor(db, ['centre:fees', 'centre:suspense', 'centre:settlement']);
  // Accounts straight into the chart (the Ledger class opens the same rows one batch at a time).
  await db.query(`INSERT INTO ledger_account (code, owner_type, owner_id, purpose, normal_side, no_negative)
    SELECT 'card:62170' || lpad(g::text, 14, '0') || ':purse', 'card', '62170' || lpad(g::text, 14, '0'), 'purse', 'CREDIT', true FROM generate_series(0, ${cards - 1}) g
    UNION ALL SELECT 'merchant:M' || g || ':payable', 'merchant', 'M' || g, 'payable', 'CREDIT', false FROM generate_series(1, ${merchants_n}) g
    UNION ALL SELECT 'bank:' || code || ':clearing', 'bank', code, 'clearing', 'DEBIT', false FROM bank`);
  await withTx(db, (tx) => currentOpenCycle(tx, before_cutoff, 23 * 60));
  // Per 20 consecutive transactions of one card: 5 loads of 2,000 fen, 10 taps of ≤ 500, 5 QR
  // self-pay payments, so no purse ever goes negative.
  for (let from = 0; from < transactions; from += seed_chunk) {
    const to = Math.min(transactions, from + seed_chunk) - 1;
    await db.query(`
      WITH src AS (
        SELECT g, (g / 20) % ${cards} AS card, g % 20 AS slot, 1 + (g * 7919) % 500 AS amt FROM generate_series(${from}::bigint, ${to}::bigint) g
      ), spec AS (
        SELECT g, card, '62170' || lpad(card::text, 14, '0') AS card_no,
          CASE WHEN slot < 5 THEN 'PURSE_LOAD' WHEN slot < 15 THEN 'TRANSIT_TAP' ELSE 'QR_PAYMENT' END AS kind,
          CASE WHEN slot < 5 THEN 2000 ELSE amt END AS amount,
          lpad((102100000000 + 1 + card % ${banks_n})::text, 12, '0') AS bank,
          CASE WHEN slot < 15 THEN 'M' || (1 + card % 20) ELSE 'M' || (21 + card % ${merchants_n - 20}) END AS merchant
        FROM src
      ), acc AS (
        SELECT s.*, (SELECT id FROM ledger_account WHERE code = 'card:' || s.card_no || ':purse') AS purse_id,
          (SELECT id FROM ledger_account WHERE code = 'bank:' || s.bank || ':clearing') AS bank_id,
          (SELECT id FROM ledger_account WHERE code = 'merchant:' || s.merchant || ':payable') AS merchant_id
        FROM spec s
      ), e AS (
        INSERT INTO ledger_entry (idem_key, kind, business_date, metadata, posted_at)
        SELECT CASE kind WHEN 'PURSE_LOAD' THEN 'load:pld_' || g WHEN 'TRANSIT_TAP' THEN 'tap:' || card_no || ':' || g || ':6' ELSE 'pay:pay_' || g END,
          kind, '${business_date}',
          CASE kind WHEN 'PURSE_LOAD' THEN jsonb_build_object('load_id', 'pld_' || g) WHEN 'QR_PAYMENT' THEN jsonb_build_object('payment_id', 'pay_' || g, 'card_no', card_no, 'merchant_id', merchant) END,
          '${before_cutoff.toISOString()}'::timestamptz + (g % 50000) * interval '1 second'
        FROM acc ORDER BY g
        RETURNING id, idem_key
      )
      INSERT INTO ledger_posting (entry_id, line_no, debit_account_id, credit_account_id, amount_fen)
      SELECT e.id, 0,
        CASE a.kind WHEN 'PURSE_LOAD' THEN a.bank_id WHEN 'TRANSIT_TAP' THEN a.purse_id ELSE a.bank_id END,
        CASE a.kind WHEN 'PURSE_LOAD' THEN a.purse_id ELSE a.merchant_id END, a.amount
      FROM e JOIN acc a ON e.idem_key = CASE a.kind WHEN 'PURSE_LOAD' THEN 'load:pld_' || a.g WHEN 'TRANSIT_TAP' THEN 'tap:' || a.card_no || ':' || a.g || ':6' ELSE 'pay:pay_' || a.g END`);
    process.stderr.write(`seeded ${to + 1}/${transactions}\n`);
  }
  await db.query('ANALYZE');
}
