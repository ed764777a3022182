/**
 * Exactly once under faults: a clearing process killed with SIGKILL at random moments, then run
 * again, ends with the same ledger, positions, lines and package bytes as an uninterrupted run,
 * with nothing posted twice; and two nodes clearing the same cycle at once clear it once.
 */
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clearCycle } from '../adapters/clearing/run.ts';
import { createPool, type Db } from '../adapters/postgres/db.ts';
import { Ledger } from '../ledger/index.ts';
import { adminUrl, databaseUrlFor } from './support/db-names.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import {
  after_cutoff, before_cutoff, clearingTestSettings, entriesOf, medicalFunding, openCycle, postAll, randomTxns, seedReference, test_date,
} from './support/clearing-fixtures.ts';

const trials = 20;
const runner = path.join(import.meta.dirname, 'support', 'clearing-crash-runner.ts');
let prepared: TestDb;
let cycleId: string;
const clones: string[] = [];

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A copy of the prepared (uncleared) database. */
async function cloneOfPrepared(tag: string): Promise<string> {
  const name = `${prepared.name}_${tag}`;
  await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${prepared.name}`));
  clones.push(name);
  return databaseUrlFor(name);
}

/** Runs the clearing child; with `killAfterMs`, SIGKILLs it that long after it starts clearing. */
function runChild(url: string, dataDir: string, killAfterMs: number | null): Promise<{ completed: boolean; clearMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', runner, url, cycleId, dataDir, after_cutoff.toISOString()], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let startedAt = 0;
    let timer: NodeJS.Timeout | null = null;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (startedAt === 0 && out.includes('start\n')) {
        startedAt = Date.now();
        if (killAfterMs !== null) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      }
    });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      const clearMs = Date.now() - startedAt;
      if (signal === 'SIGKILL') return resolve({ completed: out.includes('cleared'), clearMs });
      if (code === 0 && out.includes('cleared PUBLISHED')) return resolve({ completed: true, clearMs });
      reject(new Error(`clearing runner exited ${code}: ${err.slice(-2000)}`));
    });
  });
}

/** Everything a clearing run writes, without ids or times that differ between databases. */
async function snapshot(url: string): Promise<Record<string, unknown>> {
  const db = createPool(url, 2, 'clearing-crash-snapshot');
  try {
    const q = async (sql: string) => (await db.query(sql)).rows;
    return {
      entries: await q(`SELECT e.idem_key, e.kind, e.business_date,
          (SELECT array_agg(da.code || '>' || ca.code || ':' || p.amount_fen ORDER BY p.line_no)
             FROM ledger_posting p JOIN ledger_account da ON da.id = p.debit_account_id JOIN ledger_account ca ON ca.id = p.credit_account_id
            WHERE p.entry_id = e.id) AS lines
        FROM ledger_entry e ORDER BY e.idem_key`),
      balances: await q(`SELECT code, debits_posted_fen, credits_posted_fen FROM ledger_account ORDER BY code`),
      positions: await q(`SELECT * FROM clearing_position ORDER BY bank_code`),
      lineCount: await q(`SELECT bank_code, count(*)::bigint AS n, sum(amount_fen)::bigint AS amount, sum(fee_fen)::bigint AS fee FROM clearing_line GROUP BY 1 ORDER BY 1`),
      files: await q(`SELECT bank_code, name, bytes, record_count, sha256, sm3 FROM settlement_package_file ORDER BY bank_code, name`),
      cycles: await q(`SELECT id, state FROM clearing_cycle ORDER BY id`),
    };
  } finally {
    await db.end();
  }
}

let reference: Record<string, unknown>;
let referenceMs = 0;

beforeAll(async () => {
  prepared = await freshDatabase(4);
  await seedReference(prepared.pool);
  const cycle = await openCycle(prepared.pool, before_cutoff);
  expect(cycle.businessDate).toBe(test_date);
  cycleId = cycle.id;
  const ledger = new Ledger();
  await postAll(prepared.pool, ledger, medicalFunding(test_date, 'crash'));
  await postAll(prepared.pool, ledger, entriesOf(randomTxns(7, 300), test_date, 'k'));
  await prepared.pool.end();
  // The uninterrupted run every trial must equal.
  const url = await cloneOfPrepared('ref');
  referenceMs = (await runChild(url, await mkdtemp(path.join(os.tmpdir(), 'clearing-ref-')), null)).clearMs;
  reference = await snapshot(url);
}, 120_000);

afterAll(async () => {
  await admin(async (c) => {
    for (const name of [...clones, prepared.name]) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
});

describe('clearing under faults', () => {
  it(`${trials} runs killed with SIGKILL at random moments, then re-run, equal an uninterrupted run`, async () => {
    expect((reference.cycles as { state: string }[]).map((c) => c.state)).toEqual(['PUBLISHED', 'OPEN']);
    expect((reference.files as unknown[]).length).toBeGreaterThan(0);
    let killedBeforeDone = 0;
    for (let i = 0; i < trials; i++) {
      const url = await cloneOfPrepared(`t${i}`);
      const dataDir = await mkdtemp(path.join(os.tmpdir(), `clearing-crash-${i}-`));
      // Spread the kill over most of the clearing run itself (from connected to done); runs vary in
      // speed on a shared machine, so the window stays inside the reference run.
      const first = await runChild(url, dataDir, Math.floor(Math.random() * referenceMs * 0.7));
      if (!first.completed) killedBeforeDone++;
      await runChild(url, dataDir, null);
      expect(await snapshot(url), `trial ${i}`).toEqual(reference);
    }
    // The trials must really have interrupted runs, or they prove nothing.
    expect(killedBeforeDone).toBeGreaterThanOrEqual(trials / 2);
  }, 600_000);

  it('two nodes clearing the same cycle at the same moment clear it once', async () => {
    const url = await cloneOfPrepared('two');
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'clearing-two-'));
    const nodes: Db[] = [createPool(url, 4, 'node-a'), createPool(url, 4, 'node-b')];
    try {
      const settings = clearingTestSettings(dataDir);
      const results = await Promise.all(nodes.map((db) => clearCycle({ db, ledger: new Ledger(), settings }, cycleId, 'test:node', after_cutoff)));
      expect(results.map((r) => r.state)).toEqual(['PUBLISHED', 'PUBLISHED']);
      expect(results.flatMap((r) => r.steps).sort()).toEqual(['CLEARED', 'CLOSED', 'PUBLISHED']);
    } finally {
      await Promise.all(nodes.map((db) => db.end()));
    }
    expect(await snapshot(url)).toEqual(reference);
  }, 120_000);
});
