/**
 * The clearing run against the pure netting model: random cycles of loads, taps, QR payments
 * (medical and self-pay), refunds and cancellations are cleared in SQL; every line, fee, sweep
 * and position must equal what engine/clearing/netting.ts computes, the line totals kept for the
 * packages must equal the sums of the lines, the cycle must sum to zero,
 * a second run changes nothing, and a late arrival lands in the next cycle.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clearCycle } from '../adapters/clearing/run.ts';
import { withTx } from '../adapters/postgres/db.ts';
import { openCycleForWrite } from '../adapters/postgres/cycles.ts';
import { netCycle, netOfLines } from '../engine/clearing/netting.ts';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import {
  after_cutoff, before_cutoff, banks, clearingTestSettings, entriesOf, idle_bank, medicalFunding, openCycle, postAll, randomTxns, refs, seedReference, test_date,
} from './support/clearing-fixtures.ts';

let db: TestDb;
let dataDir: string;
const ledger = new Ledger();

beforeAll(async () => {
  db = await freshDatabase(6);
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'clearing-run-'));
  await seedReference(db.pool);
});
afterAll(async () => { await db.drop(); });

describe('clearing a cycle', () => {
  it('matches the netting model line for line, sums to zero, and is idempotent', async () => {
    const cycle = await openCycle(db.pool, before_cutoff);
    expect(cycle.businessDate).toBe(test_date);
    await postAll(db.pool, ledger, medicalFunding(test_date, 'run'));
    const model = await postAll(db.pool, ledger, entriesOf(randomTxns(42, 400), test_date, 'r'));
    const ctx = { db: db.pool, ledger, settings: clearingTestSettings(dataDir) };

    await expect(clearCycle(ctx, cycle.id, 'test', before_cutoff)).rejects.toMatchObject({ code: 'CYCLE_NOT_DUE' });
    const res = await clearCycle(ctx, cycle.id, 'test', after_cutoff);
    expect(res.steps).toEqual(['CLOSED', 'CLEARED', 'PUBLISHED']);
    expect(res.state).toBe('PUBLISHED');

    const expected = netCycle(model, refs, [...banks, idle_bank]);
    const lines = (await db.pool.query<{ entry_id: bigint; bank_code: string; side: string; kind: string; amount_fen: bigint; fee_fen: bigint; direction: string; merchant_id: string | null }>(
      `SELECT entry_id, bank_code, side, kind, amount_fen, fee_fen, direction, merchant_id FROM clearing_line WHERE cycle_id = $1 ORDER BY entry_id, bank_code, side`, [cycle.id])).rows;
    const key = (l: { entryId: bigint; bankCode: string; side: string }) => `${l.entryId}/${l.bankCode}/${l.side}`;
    const want = new Map(expected.lines.map((l) => [key(l), l]));
    expect(lines.length).toBe(expected.lines.length);
    for (const l of lines) {
      const w = want.get(key({ entryId: l.entry_id, bankCode: l.bank_code, side: l.side }));
      expect(w, `line ${l.entry_id}`).toBeDefined();
      expect({ kind: l.kind, amount: l.amount_fen, fee: l.fee_fen, dir: l.direction }).toEqual({ kind: w!.kind, amount: w!.amountFen, fee: w!.feeFen, dir: w!.direction });
    }
    const positions = (await db.pool.query<{ bank_code: string; net_fen: bigint; line_count: bigint }>(`SELECT bank_code, net_fen, line_count FROM clearing_position WHERE cycle_id = $1 ORDER BY bank_code`, [cycle.id])).rows;
    expect(positions.map((p) => p.bank_code)).toEqual([...expected.positions.keys()]);
    for (const p of positions) {
      expect(p.net_fen).toBe(expected.positions.get(p.bank_code)!.netFen);
      expect(p.net_fen).toBe(netOfLines(expected.lines.filter((l) => l.bankCode === p.bank_code)));
    }
    expect(positions.find((p) => p.bank_code === idle_bank)).toMatchObject({ net_fen: 0n, line_count: 0n });
    const banksNet = positions.reduce((a, p) => a + p.net_fen, 0n);
    expect(banksNet + expected.centreNetFen).toBe(0n);
    const summary = (await db.pool.query<{ banks_net_fen: bigint; centre_net_fen: bigint; fees_fen: bigint }>(`SELECT * FROM clearing_summary WHERE cycle_id = $1`, [cycle.id])).rows[0];
    expect(summary.banks_net_fen).toBe(banksNet);
    expect(summary.centre_net_fen).toBe(expected.centreNetFen);
    expect(summary.fees_fen).toBe(expected.merchants.reduce((a, m) => a + m.feeFen, 0n));

    // The line totals kept for the packages are exactly the sums of the lines.
    const fromLines = (await db.pool.query(`
      SELECT bank_code, kind, side, direction, count(*)::bigint AS n,
        sum(CASE WHEN side = 'ACQUIRER' THEN amount_fen - fee_fen ELSE amount_fen END)::bigint AS net, sum(amount_fen)::bigint AS amount, sum(fee_fen)::bigint AS fee
      FROM clearing_line WHERE cycle_id = $1 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`, [cycle.id])).rows;
    const kept = (await db.pool.query(`
      SELECT bank_code, kind, side, direction, line_count AS n, net_fen AS net, amount_fen AS amount, fee_fen AS fee
      FROM clearing_line_total WHERE cycle_id = $1 AND plain_count = line_count ORDER BY 1, 2, 3, 4`, [cycle.id])).rows;
    expect(fromLines.length).toBeGreaterThan(0);
    expect(kept).toEqual(fromLines);

    // Fees reached centre:fees; each merchant's payable is back to zero (it started at zero).
    for (const m of expected.merchants) {
      const payable = await ledger.account(db.pool, `merchant:${m.merchantId}:payable`);
      expect(payable?.balanceFen ?? 0n).toBe(0n);
    }
    const fees = await ledger.account(db.pool, 'centre:fees');
    expect(fees?.balanceFen).toBe(summary.fees_fen);
    for (const p of positions) {
      const acct = await ledger.account(db.pool, `bank:${p.bank_code}:clearing`);
      // DEBIT-normal: positive when the bank owes the centre, i.e. minus its net position.
      expect(acct?.balanceFen ?? 0n).toBe(-p.net_fen);
    }

    const entriesBefore = (await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ledger_entry`)).rows[0].n;
    const again = await clearCycle(ctx, cycle.id, 'test', after_cutoff);
    expect(again.steps).toEqual([]);
    expect((await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ledger_entry`)).rows[0].n).toBe(entriesBefore);

    // The package of each bank states its position.
    const manifest = JSON.parse(await readFile(path.join(dataDir, 'packages', cycle.id, banks[0], 'manifest.json'), 'utf8')) as { netPositionFen: string };
    expect(BigInt(manifest.netPositionFen)).toBe(positions.find((p) => p.bank_code === banks[0])!.net_fen);
  });

  it('puts a write made after the close into the next open cycle', async () => {
    const c = await withTx(db.pool, (tx) => openCycleForWrite(tx, after_cutoff, 23 * 60));
    expect(c.businessDate).toBe('2026-11-29');
    expect(c.id).toBe('CYC20261129');
    const events = (await db.pool.query<{ to_state: string }>(`SELECT to_state FROM clearing_cycle_event WHERE cycle_id = 'CYC20261128' ORDER BY id`)).rows;
    expect(events.map((e) => e.to_state)).toEqual(['OPEN', 'CLOSED', 'CLEARED', 'PUBLISHED']);
  });
});
