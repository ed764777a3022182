/**
 * Crash atomicity of a tap batch: a child process applies a 20,000-tap batch (records, receipt,
 * ledger entries, gap changes: one transaction) and is killed with SIGKILL at random moments.
 * Whatever the moment, the batch is in the database entirely or not at all, the ledger verifies,
 * and uploading the same batch again applies it exactly once (or replays the first receipt).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import {
  crash_cards, crash_operator, crash_taps_per_batch, crash_terminals, crashBatchId, crashCard, crashTerminal,
} from './support/transit-crash-uploader.ts';
import { fundPurses, seedTransit } from './support/transit-fixtures.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const uploader = path.join('test', 'support', 'transit-crash-uploader.ts');

let db: TestDb;
const base_ms = Date.now() - 3 * 3_600_000;

beforeAll(async () => {
  db = await freshDatabase(4);
  await seedTransit(db.pool, {
    operators: [{ id: crash_operator }],
    terminals: Array.from({ length: crash_terminals }, (_, i) => ({ id: crashTerminal(i), operatorId: crash_operator })),
    cards: Array.from({ length: crash_cards }, (_, i) => ({ cardNo: crashCard(i) })),
  });
  await fundPurses(db.pool, Array.from({ length: crash_cards }, (_, i) => ({ cardNo: crashCard(i), amountFen: 10_000_000n })));
});
afterAll(async () => { await db.drop(); });

interface Run {
  lines: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  startToUploadingMs?: number;
  uploadingToCommitMs?: number;
  killedAfterUploadingMs?: number;
}

function runUploader(batchNo: number, kill?: { afterUploadingMs: number } | { afterStartMs: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', uploader, db.url, String(batchNo), String(base_ms)], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    const run: Run = { lines: [], code: null, signal: null, stderr: '' };
    const startedAt = Date.now();
    let uploadingAt = 0;
    let buf = '';
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
        if (line.startsWith('committed')) run.uploadingToCommitMs = Date.now() - uploadingAt;
        if (line === 'uploading') {
          uploadingAt = Date.now();
          run.startToUploadingMs = uploadingAt - startedAt;
          if (kill && 'afterUploadingMs' in kill) {
            setTimeout(() => { run.killedAfterUploadingMs = Date.now() - uploadingAt; child.kill('SIGKILL'); }, kill.afterUploadingMs);
          }
        }
      }
    });
    if (kill && 'afterStartMs' in kill) setTimeout(() => child.kill('SIGKILL'), kill.afterStartMs);
    child.on('error', reject);
    child.on('close', (code, signal) => { run.code = code; run.signal = signal; resolve(run); });
  });
}

/** The killed client's backend may still be running or rolling back: wait until it is gone. */
async function waitForBackendGone(batchNo: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await db.pool.query<{ n: bigint }>(
      `SELECT count(*)::bigint AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, [`transit-crash-${batchNo}`]);
    if (r.rows[0].n === 0n) return;
    if (Date.now() > deadline) throw new Error(`backend of uploader ${batchNo} still alive after 30 s`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

async function countBatch(batchNo: number): Promise<{ batches: bigint; records: bigint; entries: bigint }> {
  const r = await db.pool.query<{ batches: bigint; records: bigint; entries: bigint }>(`
    SELECT (SELECT count(*) FROM tap_batch WHERE operator_id = $1 AND batch_id = $2)::bigint AS batches,
           (SELECT count(*) FROM tap_record r JOIN tap_batch b USING (batch_no) WHERE b.operator_id = $1 AND b.batch_id = $2)::bigint AS records,
           (SELECT count(*) FROM ledger_entry WHERE idem_key LIKE $3)::bigint AS entries`,
  [crash_operator, crashBatchId(batchNo), `tap:62170777%:${batchNo * 1000 + 1}:9`]);
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

async function expectLedgerConsistent(): Promise<void> {
  const v = await new Ledger().verify(db.pool);
  expect(v.ok, JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x))).toBe(true);
  const r = await db.pool.query<{ accepted: bigint; entries: bigint }>(`
    SELECT (SELECT count(*) FROM tap_record WHERE outcome = 'ACCEPTED')::bigint AS accepted,
           (SELECT count(*) FROM ledger_entry WHERE kind = 'TRANSIT_TAP')::bigint AS entries`);
  expect(r.rows[0].entries).toBe(r.rows[0].accepted);
}

/** Per batch, the entries counted are those of its first card counter: one per card. */
const entries_counted_per_batch = BigInt(crash_cards);

describe('tap batch crash atomicity', () => {
  it('a batch killed with SIGKILL at a random moment is all-or-nothing, and a re-upload applies it exactly once', async () => {
    const calibration = await runUploader(100);
    expect(calibration, calibration.stderr).toMatchObject({ code: 0 });
    const done = calibration.lines.find((l) => l.startsWith('committed')) as string;
    expect(done.startsWith('committed false ')).toBe(true);
    expect(JSON.parse(done.slice('committed false '.length))).toMatchObject({ acceptedCount: crash_taps_per_batch, rejectedCount: 0 });
    const d = Math.max(50, calibration.uploadingToCommitMs ?? 0);
    const startup = calibration.startToUploadingMs ?? 500;

    const seed = Number(process.env.TRANSIT_CRASH_SEED ?? Date.now() % 2 ** 31);
    const rnd = mulberry32(seed);
    const plans: ({ afterUploadingMs: number } | { afterStartMs: number })[] = [{ afterUploadingMs: 0 }];
    const slice = (1.2 * d) / 6;
    for (let k = 0; k < 6; k++) plans.push({ afterUploadingMs: Math.floor(k * slice + rnd() * slice) });
    plans.push({ afterStartMs: Math.floor(rnd() * (startup + d)) });
    // And one well after the expected commit: the re-upload must then replay the first receipt.
    plans.push({ afterUploadingMs: 4 * d });

    const outcomes: string[] = [];
    for (let trial = 0; trial < plans.length; trial++) {
      const batchNo = trial + 1;
      const run = await runUploader(batchNo, plans[trial]);
      await waitForBackendGone(batchNo);
      if (run.signal !== 'SIGKILL') expect(run, run.stderr).toMatchObject({ code: 0 });
      const finished = run.lines.some((l) => l.startsWith('committed'));
      const c = await countBatch(batchNo);
      // All or nothing: the receipt, every record and every entry, or none of them.
      if (c.batches === 0n) expect(c).toEqual({ batches: 0n, records: 0n, entries: 0n });
      else expect(c).toEqual({ batches: 1n, records: BigInt(crash_taps_per_batch), entries: entries_counted_per_batch });
      if (finished) expect(c.batches).toBe(1n);
      outcomes.push(`${JSON.stringify(plans[trial])} → ${run.signal ?? `exit ${run.code}`}, killed ${run.killedAfterUploadingMs ?? '-'} ms after uploading, ${c.batches === 1n ? 'applied' : 'nothing'}`);
      await expectLedgerConsistent();

      // Upload the same batch again: it completes it, or replays the receipt of the one that committed.
      const rerun = await runUploader(batchNo);
      expect(rerun, rerun.stderr).toMatchObject({ code: 0 });
      const line = rerun.lines.find((l) => l.startsWith('committed')) as string;
      expect(line.startsWith(c.batches === 1n ? 'committed true ' : 'committed false ')).toBe(true);
      expect(await countBatch(batchNo)).toEqual({ batches: 1n, records: BigInt(crash_taps_per_batch), entries: entries_counted_per_batch });
      await expectLedgerConsistent();
    }
    expect(outcomes.filter((o) => o.includes('→ SIGKILL')).length).toBeGreaterThanOrEqual(4);
    expect(outcomes.some((o) => o.endsWith('applied'))).toBe(true);
    console.log(`transit crash trials (TRANSIT_CRASH_SEED=${seed}; batch ${d} ms, startup ${startup} ms):\n  ${outcomes.join('\n  ')}`);
  }, 240_000);
});
