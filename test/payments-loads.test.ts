/**
 * Purse loads over real Postgres: the issuing bank moves money onto a card's e-purse in the open
 * cycle; idempotent by the bank's reference (also under concurrent deliveries); only the card's
 * own issuer may load it; cancelled, lost and unknown cards are refused with stable codes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from './support/db.ts';
import { bearer, errorBody, mintKey } from './support/http.ts';
import { balanceFen, merchantToken, paymentsApp, pinnedClock, seedReference, verifyLedger, writtenCounts, type PaymentsApp } from './support/payments-fixtures.ts';

const bank_a = '102100000031';
const bank_b = '103100000032';
const card = (i: number) => `62174${String(i).padStart(14, '0')}`;

let db: TestDb;
let node: PaymentsApp;
let tokenA: string;
let tokenB: string;

beforeAll(async () => {
  db = await freshDatabase(24);
  await seedReference(db.pool, {
    banks: [bank_a, bank_b],
    merchants: [{ id: 'SHOP', kind: 'RETAIL', bank: bank_b }],
    cards: [
      ...Array.from({ length: 10 }, (_, i) => ({ cardNo: card(i), bank: bank_a })),
      { cardNo: card(10), bank: bank_b },
      { cardNo: card(11), bank: bank_a, status: 'CANCELLED' as const },
      { cardNo: card(12), bank: bank_a, status: 'LOST_REPORTED' as const },
      { cardNo: card(13), bank: bank_a, status: 'SUSPENDED' as const },
      { cardNo: card(14), bank: bank_a, status: 'ISSUED' as const },
    ],
  });
  node = await paymentsApp(db.pool, pinnedClock());
  tokenA = (await mintKey(db.pool, 'bank', bank_a)).token;
  tokenB = (await mintKey(db.pool, 'bank', bank_b)).token;
});

afterAll(async () => {
  await node?.app.close();
  await db?.drop();
});

function load(token: string, cardNo: string, body: Record<string, unknown>) {
  return node.app.inject({ method: 'POST', url: `/v1/cards/${cardNo}/purse-loads`, headers: bearer(token), payload: body });
}

async function refused(p: ReturnType<typeof load>, status: number, code: string): Promise<void> {
  const before = await writtenCounts(db.pool);
  const r = await p;
  expect(r.statusCode, r.body).toBe(status);
  expect(errorBody(r).code).toBe(code);
  expect(await writtenCounts(db.pool)).toEqual(before);
}

describe('purse loads', () => {
  it('moves money from the issuing bank onto the purse, in the open cycle, and says the balance after', async () => {
    const r = await load(tokenA, card(0), { bank_reference: 'BR-0001', amount_fen: '5000' });
    expect(r.statusCode, r.body).toBe(201);
    const b = r.json() as Record<string, string>;
    expect(b).toMatchObject({ status: 'POSTED', bank_reference: 'BR-0001', amount_fen: '5000', purse_balance_fen: '5000', card_no: '621740*********0000', cycle_id: 'CYC20261128', business_date: '2026-11-28' });
    expect(b.id).toMatch(/^pld_[0-9a-f]{24}$/);
    expect(r.body).not.toContain(card(0));
    const r2 = await load(tokenA, card(0), { bank_reference: 'BR-0002', amount_fen: '2500' });
    expect(r2.json()).toMatchObject({ purse_balance_fen: '7500' });
    expect(await balanceFen(db.pool, `card:${card(0)}:purse`)).toBe(7_500n);
    expect(await balanceFen(db.pool, `bank:${bank_a}:clearing`)).toBe(7_500n);
    const kinds = await db.pool.query(`SELECT DISTINCT kind FROM ledger_entry`);
    expect(kinds.rows).toEqual([{ kind: 'PURSE_LOAD' }]);
  });

  it('a retry with the same bank reference replays the first answer; other content under it is a conflict', async () => {
    const first = await load(tokenA, card(1), { bank_reference: 'BR-1', amount_fen: '100' });
    const more = await load(tokenA, card(1), { bank_reference: 'BR-2', amount_fen: '50' });
    expect(more.statusCode).toBe(201);
    const counts = await writtenCounts(db.pool);
    const again = await load(tokenA, card(1), { bank_reference: 'BR-1', amount_fen: '100' });
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    expect(await writtenCounts(db.pool)).toEqual(counts);
    await refused(load(tokenA, card(1), { bank_reference: 'BR-1', amount_fen: '101' }), 409, 'IDEMPOTENCY_CONFLICT');
    await refused(load(tokenA, card(2), { bank_reference: 'BR-1', amount_fen: '100' }), 409, 'IDEMPOTENCY_CONFLICT');
    // References are per bank.
    expect((await load(tokenB, card(10), { bank_reference: 'BR-1', amount_fen: '100' })).statusCode).toBe(201);
  });

  it('concurrent deliveries of one load make one load; concurrent different loads all add up', async () => {
    const same = await Promise.all(Array.from({ length: 10 }, () => load(tokenA, card(3), { bank_reference: 'BR-SAME', amount_fen: '700' })));
    expect(same.map((r) => r.statusCode)).toEqual(Array(10).fill(201));
    expect(new Set(same.map((r) => r.body)).size).toBe(1);
    const distinct = await Promise.all(Array.from({ length: 10 }, (_, i) => load(tokenA, card(3), { bank_reference: `BR-D${i}`, amount_fen: '10' })));
    expect(distinct.map((r) => r.statusCode)).toEqual(Array(10).fill(201));
    expect(await balanceFen(db.pool, `card:${card(3)}:purse`)).toBe(800n);
    const after = distinct.map((r) => Number((r.json() as { purse_balance_fen: string }).purse_balance_fen)).sort((a, b) => a - b);
    expect(after).toEqual([710, 720, 730, 740, 750, 760, 770, 780, 790, 800]);
  });

  it('only the card’s issuer may load it; unknown, cancelled, lost and suspended cards are refused', async () => {
    await refused(load(tokenB, card(4), { bank_reference: 'X-1', amount_fen: '100' }), 404, 'CARD_NOT_FOUND');
    await refused(load(tokenA, card(99), { bank_reference: 'X-2', amount_fen: '100' }), 404, 'CARD_NOT_FOUND');
    await refused(load(tokenA, card(11), { bank_reference: 'X-3', amount_fen: '100' }), 422, 'CARD_CANCELLED');
    await refused(load(tokenA, card(12), { bank_reference: 'X-4', amount_fen: '100' }), 422, 'CARD_HOTLISTED');
    await refused(load(tokenA, card(13), { bank_reference: 'X-5', amount_fen: '100' }), 422, 'CARD_HOTLISTED');
    // A card not yet activated may be pre-loaded by its bank.
    expect((await load(tokenA, card(14), { bank_reference: 'X-6', amount_fen: '100' })).statusCode).toBe(201);
  });

  it('amounts, bodies, roles', async () => {
    await refused(load(tokenA, card(5), { bank_reference: 'Y-1', amount_fen: '100001' }), 422, 'AMOUNT_OUT_OF_RANGE');
    expect((await load(tokenA, card(5), { bank_reference: 'Y-2', amount_fen: '100000' })).statusCode).toBe(201);
    await refused(load(tokenA, card(5), { bank_reference: 'Y-3', amount_fen: '0' }), 400, 'VALIDATION_FAILED');
    await refused(load(tokenA, card(5), { bank_reference: 'Y 4', amount_fen: '1' }), 400, 'VALIDATION_FAILED');
    await refused(load(tokenA, card(5), { amount_fen: '1' }), 400, 'VALIDATION_FAILED');
    await refused(load(tokenA, '123', { bank_reference: 'Y-5', amount_fen: '1' }), 400, 'VALIDATION_FAILED');
    const shop = await merchantToken(db.pool, 'SHOP');
    await refused(load(shop, card(5), { bank_reference: 'Y-6', amount_fen: '1' }), 403, 'FORBIDDEN_ROLE');
    const before = await writtenCounts(db.pool);
    const anon = await node.app.inject({ method: 'POST', url: `/v1/cards/${card(5)}/purse-loads`, payload: { bank_reference: 'Y-7', amount_fen: '1' } });
    expect(anon.statusCode).toBe(401);
    expect(await writtenCounts(db.pool)).toEqual(before);
  });

  it('the ledger verifies', async () => {
    const v = await verifyLedger(db.pool);
    expect(v.mismatches).toEqual([]);
    expect(v.ok).toBe(true);
  });
});
