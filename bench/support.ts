/** Shared by benchmarks: a fresh database, progress on a terminal, percentiles, the report. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import pg from 'pg';
import cliProgress from 'cli-progress';
import { loadConfig } from '../adapters/config.ts';
import { createLogger } from '../adapters/logger.ts';
import { resolveDatabase } from '../adapters/engine.ts';
import { migrateUp } from '../adapters/postgres/migrate.ts';

export interface BenchDb {
  url: string;
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database on DATABASE_URL's server (or the embedded one), dropped afterwards.
 * `walIoTiming`: its sessions time their WAL writes and syncs (track_wal_io_timing, which only a
 * superuser may set; without the right, the database is made without it).
 */
export async function benchDatabase(opts: { walIoTiming?: boolean } = {}): Promise<BenchDb> {
  const config = loadConfig();
  const { databaseUrl, embedded } = await resolveDatabase(config, createLogger('warn'));
  const name = `onecard_bench_${crypto.randomBytes(4).toString('hex')}`;
  const u = new URL(databaseUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    await migrateUp(url);
    if (opts.walIoTiming) {
      // Refused unless a superuser: then the WAL's sync times are not measured.
      await admin.query(`ALTER DATABASE ${name} SET track_wal_io_timing = on`).catch(() => undefined);
    }
    // BENCH_LOG_STATEMENTS=1 has the server log every statement of this database with its duration
    // (log_min_duration_statement = 0): where the database's time goes, statement by statement.
    if (process.env.BENCH_LOG_STATEMENTS === '1') await admin.query(`ALTER DATABASE ${name} SET log_min_duration_statement = 0`);
  } finally {
    await admin.end();
  }
  return {
    url,
    async drop() {
      // BENCH_KEEP_DB=1 keeps the database for a look at its plans and tables afterwards.
      if (process.env.BENCH_KEEP_DB === '1') {
        process.stderr.write(`kept the benchmark database ${name} (drop it yourself)\n`);
        await embedded?.stop();
        return;
      }
      const a = new pg.Client({ connectionString: databaseUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
      await embedded?.stop();
    },
  };
}

export function progress(label: string, total: number): { tick(n?: number): void; stop(): void } {
  if (!process.stderr.isTTY) {
    let done = 0;
    let lastPct = -1;
    return {
      tick(n = 1) {
        done += n;
        const pct = Math.floor((done / total) * 10) * 10;
        if (pct !== lastPct) { lastPct = pct; process.stderr.write(`${label}: ${pct}%\n`); }
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar({ format: `${label} [{bar}] {percentage}% {value}/{total} eta {eta}s`, stream: process.stderr }, cliProgress.Presets.shades_classic);
  bar.start(total, 0);
  return { tick: (n = 1) => bar.increment(n), stop: () => bar.stop() };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** Linux counts CPU time in /proc in clock ticks of 10 ms (USER_HZ = 100). */
export const proc_ms_per_tick = 10;

/**
 * CPU time (user + system, ms) a process has used so far, from /proc/<pid>/stat; null once it is
 * gone (or where there is no /proc).
 */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may itself hold spaces or parentheses: fields follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * proc_ms_per_tick;
  } catch {
    return null;
  }
}

export function rssSampler(): { maxMb(): number; stop(): void } {
  let max = process.memoryUsage().rss;
  const t = setInterval(() => { max = Math.max(max, process.memoryUsage().rss); }, 100);
  t.unref();
  return { maxMb: () => Math.round(Math.max(max, process.memoryUsage().rss) / 1048576), stop: () => clearInterval(t) };
}

/** A short human table, then the machine-readable JSON as the last line. */
export function report(name: string, result: Record<string, unknown>): void {
  const rows = Object.entries(result);
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\n${name}\n${'-'.repeat(w + 20)}\n`);
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${typeof v === 'object' ? JSON.stringify(v) : String(v)}\n`);
  process.stdout.write(`${JSON.stringify({ bench: name, ...result })}\n`);
}
