/**
 * `npm run ledger:verify` and Ledger.verify: a clean ledger passes; a balance changed behind the
 * triggers' back, or a posting removed, is reported by name and makes the command exit non-zero.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../adapters/postgres/db.ts';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';

const run = promisify(execFile);
let db: TestDb;
const ledger = new Ledger();
const card = 'card:6217001234567890123:purse';
const shop = 'merchant:SHOP1:payable';
const bank = 'bank:102100099996:clearing';

async function cli(): Promise<{ code: number; out: string }> {
  try {
    const r = await run('npx', ['tsx', 'adapters/cli/ledger-verify.ts'], { env: { ...process.env, DATABASE_URL: db.url }, timeout: 60_000 });
    return { code: 0, out: r.stdout };
  } catch (e) {
    const err = e as { code?: number; stdout?: string };
    return { code: err.code ?? -1, out: err.stdout ?? '' };
  }
}

/** Runs SQL with every trigger off (as a superuser can): how a corruption would get in. */
async function behindTheTriggers(sql: string, params: unknown[]): Promise<void> {
  const c = await db.pool.connect();
  try {
    await c.query('SET session_replication_role = replica');
    await c.query(sql, params);
    await c.query('SET session_replication_role = origin');
  } finally {
    c.release();
  }
}

beforeAll(async () => {
  db = await freshDatabase();
  await withTx(db.pool, (tx) => ledger.postBatch(tx, [
    { idemKey: 'v-load', kind: 'PURSE_LOAD', businessDate: '2026-11-28', lines: [{ debit: bank, credit: card, amountFen: 1_000n }] },
    { idemKey: 'v-buy', kind: 'PURSE_PURCHASE', businessDate: '2026-11-28', lines: [{ debit: card, credit: shop, amountFen: 250n }] },
  ]));
});
afterAll(async () => db.drop());

describe('ledger verification', () => {
  it('passes a clean ledger: exit 0, trial balance balanced', async () => {
    const report = await ledger.verify(db.pool);
    expect(report.ok).toBe(true);
    expect(report.trialBalance.debitsFen).toBe(1_250n);
    expect(report.trialBalance.creditsFen).toBe(1_250n);
    const r = await cli();
    expect(r.code).toBe(0);
    expect(r.out).toContain('ledger OK');
  }, 90_000);

  it('reports a stored balance that differs from the postings, by account and field, and exits 1', async () => {
    await behindTheTriggers('UPDATE ledger_account SET credits_posted_fen = credits_posted_fen + 7 WHERE code = $1', [shop]);
    const report = await ledger.verify(db.pool);
    expect(report.ok).toBe(false);
    expect(report.mismatches).toEqual([{ code: shop, field: 'credits_posted_fen', storedFen: 257n, recomputedFen: 250n }]);
    expect(report.trialBalance.creditsFen - report.trialBalance.debitsFen).toBe(7n);
    const r = await cli();
    expect(r.code).toBe(1);
    expect(r.out).toContain(`MISMATCH ${shop} credits_posted_fen: stored 257, from postings 250`);
    expect(r.out).toContain('UNBALANCED');
    await behindTheTriggers('UPDATE ledger_account SET credits_posted_fen = credits_posted_fen - 7 WHERE code = $1', [shop]);
    expect((await ledger.verify(db.pool)).ok).toBe(true);
  }, 90_000);

  it('reports an entry whose postings were removed', async () => {
    await behindTheTriggers(`DELETE FROM ledger_posting WHERE entry_id = (SELECT id FROM ledger_entry WHERE idem_key = 'v-buy')`, []);
    const report = await ledger.verify(db.pool);
    expect(report.ok).toBe(false);
    expect(report.entriesWithoutLines).toBe(1n);
    expect(report.mismatches.map((m) => `${m.code}:${m.field}`).sort()).toEqual([`${card}:debits_posted_fen`, `${shop}:credits_posted_fen`]);
    const r = await cli();
    expect(r.code).toBe(1);
    expect(r.out).toContain('EMPTY entries without lines: 1');
  }, 90_000);
});
