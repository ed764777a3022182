/**
 * Crash atomicity: a child process posts a 5,000-entry batch in one transaction and is killed
 * with SIGKILL at random moments. Whatever the moment, the batch is in the ledger entirely or
 * not at all, the ledger verifies, and re-running the same batch completes it exactly once.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { crashAmount, crashKeyPrefix, crash_bank, entries_per_batch } from './support/ledger-crash-poster.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const poster = path.join('test', 'support', 'ledger-crash-poster.ts');

let db: TestDb;
const ledger = new Ledger();
beforeAll(async () => { db = await freshDatabase(4); });
afterAll(async () => { await db.drop(); });

interface Run {
  lines: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** ms from "posting" to the kill (undefined when killed before "posting" or not killed). */
  killedAfterPostingMs?: number;
  /** ms from spawn to "posting", and from "posting" to "committed" (when seen). */
  startToPostingMs?: number;
  postingToCommitMs?: number;
}

/**
 * Run the poster. kill: undefined = run to completion; { afterPostingMs } = SIGKILL that long
 * after it printed "posting"; { afterStartMs } = SIGKILL that long after spawn, whatever it is doing.
 */
function runPoster(batchNo: number, kill?: { afterPostingMs: number } | { afterStartMs: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', poster, db.url, String(batchNo)], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    const run: Run = { lines: [], code: null, signal: null, stderr: '' };
    let buf = '';
    let postingAt = 0;
    const startedAt = Date.now();
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => { run.stderr += d; });
    child.stdout.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        run.lines.push(line);
        if (line.startsWith('committed')) run.postingToCommitMs = Date.now() - postingAt;
        if (line === 'posting') {
          postingAt = Date.now();
          run.startToPostingMs = postingAt - startedAt;
          if (kill && 'afterPostingMs' in kill) {
            setTimeout(() => { run.killedAfterPostingMs = Date.now() - postingAt; child.kill('SIGKILL'); }, kill.afterPostingMs);
          }
        }
      }
    });
    if (kill && 'afterStartMs' in kill) {
      setTimeout(() => {
        if (postingAt) run.killedAfterPostingMs = Date.now() - postingAt;
        child.kill('SIGKILL');
      }, kill.afterStartMs);
    }
    child.on('error', reject);
    child.on('close', (code, signal) => { run.code = code; run.signal = signal; resolve(run); });
  });
}

/**
 * After a client dies the server may still be running (or rolling back) its statement; wait until
 * the poster's backend is gone, so what we count afterwards is final.
 */
async function waitForPosterBackendGone(batchNo: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await db.pool.query<{ n: bigint }>(
      `SELECT count(*)::bigint AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
      [`ledger-crash-poster-${batchNo}`]);
    if (r.rows[0].n === 0n) return;
    if (Date.now() > deadline) throw new Error(`backend of poster ${batchNo} still alive after 30 s`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

async function countBatch(batchNo: number): Promise<{ entries: bigint; postings: bigint }> {
  const r = await db.pool.query<{ entries: bigint; postings: bigint }>(
    `SELECT count(DISTINCT e.id)::bigint AS entries, count(p.*)::bigint AS postings
     FROM ledger_entry e LEFT JOIN ledger_posting p ON p.entry_id = e.id
     WHERE e.idem_key LIKE $1`, [`${crashKeyPrefix(batchNo)}%`]);
  return r.rows[0];
}

function mulberry32(a: number): () => number {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function batchTotal(batchNo: number): bigint {
  let t = 0n;
  for (let i = 0; i < entries_per_batch; i++) t += crashAmount(batchNo, i);
  return t;
}

async function expectLedgerConsistent(committedBatches: number[]): Promise<void> {
  const v = await ledger.verify(db.pool);
  expect(v, JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x))).toMatchObject({ ok: true, mismatches: [], negativeAccounts: [] });
  const bank = await ledger.account(db.pool, crash_bank);
  const expected = committedBatches.reduce((a, b) => a + batchTotal(b), 0n);
  expect(bank?.balanceFen ?? 0n).toBe(expected);
}

describe('ledger crash atomicity', () => {
  it('a batch killed with SIGKILL at a random moment is all-or-nothing, and a re-run completes it exactly once', async () => {
    // Calibrate: how long does the batch take from "posting" to "committed" on this machine?
    const calibration = await runPoster(1000);
    expect(calibration, calibration.stderr).toMatchObject({ code: 0 });
    const d = Math.max(20, calibration.postingToCommitMs ?? 0);
    const startup = calibration.startToPostingMs ?? 300;

    // Kill moments, stratified so that each run covers the whole window: right at "posting",
    // one uniformly random delay in each of six slices of [0, 1.2 d] after "posting" (the first
    // five fall before the expected commit: before, during and after the INSERT), and two at
    // random times from spawn onwards (while starting, opening accounts, or posting).
    const seed = Number(process.env.LEDGER_CRASH_SEED ?? Date.now() % 2 ** 31);
    const rnd = mulberry32(seed);
    const plans: ({ afterPostingMs: number } | { afterStartMs: number })[] = [{ afterPostingMs: 0 }];
    const slice = (1.2 * d) / 6;
    for (let k = 0; k < 6; k++) plans.push({ afterPostingMs: Math.floor(k * slice + rnd() * slice) });
    for (let k = 0; k < 2; k++) plans.push({ afterStartMs: Math.floor(rnd() * (startup + d)) });

    const committed: number[] = [1000];
    const outcomes: string[] = [];
    for (let t = 0; t < plans.length; t++) {
      const batchNo = t + 1;
      const run = await runPoster(batchNo, plans[t]);
      await waitForPosterBackendGone(batchNo);
      const finished = run.lines.some((l) => l.startsWith('committed'));
      // A poster that exited normally did so because it finished, not because it failed.
      if (run.signal !== 'SIGKILL') expect(run, run.stderr).toMatchObject({ code: 0 });
      const c = await countBatch(batchNo);
      // All or nothing: 0 or 5,000 entries, each with its one line.
      expect([0n, BigInt(entries_per_batch)]).toContain(c.entries);
      expect(c.postings).toBe(c.entries);
      // If the child reported the commit, the batch must be there.
      if (finished) expect(c.entries).toBe(BigInt(entries_per_batch));
      if (c.entries > 0n) committed.push(batchNo);
      outcomes.push(`${JSON.stringify(plans[t])} → ${run.signal ?? `exit ${run.code}`}, saw [${run.lines.join(',')}], ` +
        `killed ${run.killedAfterPostingMs ?? '-'} ms after posting, ${c.entries} entries`);
      await expectLedgerConsistent(committed);

      // Re-run the same batch to completion: it ends with exactly 5,000 entries, and posts
      // only what was missing (all replays if the killed run had committed).
      const rerun = await runPoster(batchNo);
      expect(rerun, rerun.stderr).toMatchObject({ code: 0 });
      const done = rerun.lines.find((l) => l.startsWith('committed'));
      expect(done).toBe(c.entries === 0n ? `committed ${entries_per_batch} 0` : `committed 0 ${entries_per_batch}`);
      const after = await countBatch(batchNo);
      expect(after).toEqual({ entries: BigInt(entries_per_batch), postings: BigInt(entries_per_batch) });
      if (!committed.includes(batchNo)) committed.push(batchNo);
      await expectLedgerConsistent(committed);
    }
    // At least five of the trials really were killed (not merely raced by a fast commit).
    expect(outcomes.filter((o) => o.includes('→ SIGKILL')).length).toBeGreaterThanOrEqual(5);
    console.log(`crash trials (LEDGER_CRASH_SEED=${seed}; calibrated batch ${d} ms, startup ${startup} ms):\n  ${outcomes.join('\n  ')}`);
  }, 120_000);
});
