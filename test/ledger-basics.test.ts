import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger, linesFromLegs } from '../ledger/index.ts';
import { withTx } from '../adapters/postgres/db.ts';
import { freshDatabase, type TestDb } from './support/db.ts';

let db: TestDb;
const ledger = new Ledger();
beforeAll(async () => { db = await freshDatabase(); });
afterAll(async () => { await db.drop(); });

const card = 'card:6217001234567890123:purse';
const merchant = 'merchant:M1:payable';
const bank = 'bank:102100099996:clearing';

describe('ledger basics', () => {
  it('posts a load and a purchase, balances follow postings', async () => {
    await withTx(db.pool, (tx) => ledger.postBatch(tx, [
      { idemKey: 'load-1', kind: 'PURSE_LOAD', businessDate: '2026-11-28', lines: [{ debit: bank, credit: card, amountFen: 1000n }] },
      { idemKey: 'tap-1', kind: 'PURSE_PURCHASE', businessDate: '2026-11-28', lines: [{ debit: card, credit: merchant, amountFen: 200n }] },
    ]));
    expect((await ledger.account(db.pool, card))?.balanceFen).toBe(800n);
    expect((await ledger.account(db.pool, merchant))?.balanceFen).toBe(200n);
    expect((await ledger.account(db.pool, bank))?.balanceFen).toBe(1000n);
    const v = await ledger.verify(db.pool);
    expect(v.ok).toBe(true);
  });
});
