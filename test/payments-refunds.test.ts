/**
 * Refunds and the payment view over real Postgres: partial and full refunds back to the legs the
 * payment came from (proportionally, exactly in total), idempotent by refund id, never more than
 * the payment (also under concurrent refunds), only by the payment's own merchant, before and
 * after the cycle closed; GET for the merchant, finance and auditors with masked card numbers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from './support/db.ts';
import { bearer, errorBody, mintKey } from './support/http.ts';
import {
  balanceFen, fundMedical, merchantToken, pay, paymentsApp, pinnedClock, qrFor, refund, seedReference, verifyLedger,
  writtenCounts, type Clock, type PaymentsApp,
} from './support/payments-fixtures.ts';

const issuer = '102100000021';
const acquirer = '104100000023';
const fund_bank = '105100000025';
const card = (i: number) => `62173${String(i).padStart(14, '0')}`;

let db: TestDb;
let clock: Clock;
let node: PaymentsApp;
let hosp: string;
let shop: string;
let other: string;
let finance: string;
let auditor: string;
let orderNo = 0;
const order = () => `r-${++orderNo}`;

type Payment = { id: string; status: string; card_no: string; amount_fen: string; medical_fen: string; self_pay_fen: string; refunded_fen: string; refunds: Refund[]; cycle_id: string };
type Refund = { id: string; refund_id: string; payment_id: string; amount_fen: string; medical_fen: string; self_pay_fen: string; refunded_total_fen: string; payment_status: string; cycle_id: string };

beforeAll(async () => {
  db = await freshDatabase(30);
  clock = pinnedClock();
  await seedReference(db.pool, {
    banks: [issuer, acquirer, fund_bank],
    merchants: [{ id: 'HOSP', kind: 'MEDICAL', bank: acquirer }, { id: 'SHOP', kind: 'RETAIL', bank: acquirer }, { id: 'OTHER', kind: 'RETAIL', bank: acquirer }],
    cards: Array.from({ length: 20 }, (_, i) => ({ cardNo: card(i), bank: issuer, dailyLimitFen: 10_000_000n })),
  });
  await fundMedical(db.pool, fund_bank, Array.from({ length: 20 }, (_, i) => ({ cardNo: card(i), amountFen: 3_000n })));
  node = await paymentsApp(db.pool, clock);
  hosp = await merchantToken(db.pool, 'HOSP');
  shop = await merchantToken(db.pool, 'SHOP');
  other = await merchantToken(db.pool, 'OTHER');
  finance = (await mintKey(db.pool, 'finance')).token;
  auditor = (await mintKey(db.pool, 'auditor')).token;
});

afterAll(async () => {
  await node?.app.close();
  await db?.drop();
});

async function newPayment(token: string, cardNo: string, amountFen: string, medical = false): Promise<Payment> {
  const r = await pay(node.app, token, { qr_code: qrFor(node.deps, cardNo, clock.seconds()), amount_fen: amountFen, order_id: order(), ...(medical ? { medical: {} } : {}) });
  expect(r.statusCode, r.body).toBe(201);
  return r.json() as Payment;
}

async function view(token: string, id: string) {
  return node.app.inject({ method: 'GET', url: `/v1/payments/${id}`, headers: bearer(token) });
}

describe('refunds', () => {
  it('partial refunds of a medical payment go back proportionally; the last one returns each leg exactly', async () => {
    const cn = card(0);
    // 3,000 from the medical account, 7,000 self-pay.
    const p = await newPayment(hosp, cn, '10000', true);
    expect(p).toMatchObject({ medical_fen: '3000', self_pay_fen: '7000' });
    const bankBefore = await balanceFen(db.pool, `bank:${issuer}:clearing`);

    const r1 = await refund(node.app, hosp, p.id, { refund_id: 'ref-1', amount_fen: '3333' });
    expect(r1.statusCode, r1.body).toBe(201);
    // floor(3000 × 3333 / 10000) = 999 to the medical account.
    expect(r1.json()).toMatchObject({ refund_id: 'ref-1', payment_id: p.id, amount_fen: '3333', medical_fen: '999', self_pay_fen: '2334', refunded_total_fen: '3333', payment_status: 'PARTIALLY_REFUNDED' });
    expect((r1.json() as Refund).id).toMatch(/^rfd_[0-9a-f]{24}$/);
    const r2 = await refund(node.app, hosp, p.id, { refund_id: 'ref-2', amount_fen: '1' });
    // floor(3000 × 3334 / 10000) = 1000: one more fen is the medical account's.
    expect(r2.json()).toMatchObject({ medical_fen: '1', self_pay_fen: '0', refunded_total_fen: '3334' });
    const r3 = await refund(node.app, hosp, p.id, { refund_id: 'ref-3', amount_fen: '6666' });
    expect(r3.json()).toMatchObject({ medical_fen: '2000', self_pay_fen: '4666', refunded_total_fen: '10000', payment_status: 'REFUNDED' });

    expect(await balanceFen(db.pool, `card:${cn}:medical`)).toBe(3_000n);
    expect(await balanceFen(db.pool, `bank:${issuer}:clearing`)).toBe(bankBefore - 7_000n);
    const entries = await db.pool.query<{ kind: string; reverses: string | null; original: string }>(`
      SELECT kind, reverses_entry_id::text AS reverses, metadata->>'original_entry_id' AS original FROM ledger_entry WHERE metadata->>'payment_id' = $1 AND kind = 'REFUND'`, [p.id]);
    const orig = await db.pool.query<{ id: string }>(`SELECT id::text FROM ledger_entry WHERE idem_key = $1`, [`pay:${p.id}`]);
    expect(entries.rows).toHaveLength(3);
    // Partial refunds point at the original through metadata, and are not ledger reversals.
    for (const e of entries.rows) expect(e).toEqual({ kind: 'REFUND', reverses: null, original: orig.rows[0].id });

    const v = await view(hosp, p.id);
    expect(v.statusCode).toBe(200);
    const pv = v.json() as Payment;
    expect(pv).toMatchObject({ status: 'REFUNDED', refunded_fen: '10000' });
    expect(pv.refunds.map((x) => x.refund_id)).toEqual(['ref-1', 'ref-2', 'ref-3']);
    expect(pv.card_no).toBe('621730*********0000');
    expect(v.body).not.toContain(cn);
  });

  it('a full refund at once reverses the original entry; the over-refund is refused', async () => {
    const p = await newPayment(shop, card(1), '2500');
    const full = await refund(node.app, shop, p.id, { refund_id: 'full-1', amount_fen: '2500' });
    expect(full.statusCode, full.body).toBe(201);
    const e = await db.pool.query<{ reverses: string }>(`SELECT reverses_entry_id::text AS reverses FROM ledger_entry WHERE kind = 'REFUND' AND metadata->>'payment_id' = $1`, [p.id]);
    const orig = await db.pool.query<{ id: string }>(`SELECT id::text FROM ledger_entry WHERE idem_key = $1`, [`pay:${p.id}`]);
    expect(e.rows).toEqual([{ reverses: orig.rows[0].id }]);
    const before = await writtenCounts(db.pool);
    const over = await refund(node.app, shop, p.id, { refund_id: 'full-2', amount_fen: '1' });
    expect(over.statusCode).toBe(422);
    expect(errorBody(over)).toMatchObject({ code: 'REFUND_EXCEEDS_REMAINING', details: { remainingFen: '0', requestedFen: '1' } });
    const p2 = await newPayment(shop, card(1), '100');
    const over2 = await refund(node.app, shop, p2.id, { refund_id: 'big', amount_fen: '101' });
    expect(errorBody(over2).code).toBe('REFUND_EXCEEDS_REMAINING');
    expect((await writtenCounts(db.pool)).refunds).toBe(before.refunds);
  });

  it('is idempotent by refund id: a retry replays the first answer; other content under it is a conflict', async () => {
    const p = await newPayment(shop, card(2), '1000');
    const a = await refund(node.app, shop, p.id, { refund_id: 'idem-1', amount_fen: '300' });
    expect(a.statusCode).toBe(201);
    const counts = await writtenCounts(db.pool);
    // Even after a later refund changed the payment's total, the replay is the first answer.
    expect((await refund(node.app, shop, p.id, { refund_id: 'idem-2', amount_fen: '100' })).statusCode).toBe(201);
    const b = await refund(node.app, shop, p.id, { refund_id: 'idem-1', amount_fen: '300' });
    expect(b.statusCode).toBe(201);
    expect(b.headers['idempotent-replayed']).toBe('true');
    expect(b.json()).toEqual(a.json());
    expect((await writtenCounts(db.pool)).refunds).toBe(counts.refunds + 1);
    const c = await refund(node.app, shop, p.id, { refund_id: 'idem-1', amount_fen: '301' });
    expect(c.statusCode).toBe(409);
    expect(errorBody(c).code).toBe('IDEMPOTENCY_CONFLICT');
    const p2 = await newPayment(shop, card(2), '1000');
    const d = await refund(node.app, shop, p2.id, { refund_id: 'idem-1', amount_fen: '300' });
    expect(errorBody(d).code).toBe('IDEMPOTENCY_CONFLICT');
  });

  it('concurrent refunds never exceed the payment, over two nodes; concurrent identical ones make one refund', async () => {
    const p = await newPayment(hosp, card(3), '1000', true);
    const nodeB = await paymentsApp(db.pool, clock);
    try {
      const rs = await Promise.all(Array.from({ length: 16 }, (_, i) => refund(i % 2 === 0 ? node.app : nodeB.app, hosp, p.id, { refund_id: `con-${i}`, amount_fen: '150' })));
      const ok = rs.filter((r) => r.statusCode === 201);
      expect(ok).toHaveLength(6);
      for (const r of rs.filter((x) => x.statusCode !== 201)) expect(errorBody(r).code).toBe('REFUND_EXCEEDS_REMAINING');
      const totals = ok.map((r) => (r.json() as Refund).refunded_total_fen).sort((x, y) => Number(x) - Number(y));
      expect(totals).toEqual(['150', '300', '450', '600', '750', '900']);
      const same = await Promise.all(Array.from({ length: 8 }, (_, i) => refund(i % 2 === 0 ? node.app : nodeB.app, hosp, p.id, { refund_id: 'con-last', amount_fen: '100' })));
      expect(same.map((r) => r.statusCode)).toEqual(Array(8).fill(201));
      expect(new Set(same.map((r) => (r.json() as Refund).id)).size).toBe(1);
      const sum = await db.pool.query<{ n: number; s: string; m: string }>(`
        SELECT count(*)::int AS n, sum(amount_fen)::text AS s, sum(medical_fen)::text AS m FROM payment_refund WHERE payment_id = $1`, [p.id]);
      expect(sum.rows[0]).toEqual({ n: 7, s: '1000', m: p.medical_fen });
    } finally {
      await nodeB.app.close();
    }
  });

  it('the database refuses refunds beyond the payment even without the engine’s lock', async () => {
    const p = await newPayment(shop, card(4), '500');
    await expect(db.pool.query(`
      INSERT INTO payment_refund (id, merchant_id, refund_id, payment_id, amount_fen, medical_fen, self_pay_fen, refunded_after_fen, entry_idem_key, cycle_id, business_date, actor, created_at)
      VALUES ('rfd_000000000000000000000001', 'SHOP', 'raw', $1, 501, 0, 501, 501, 'x', 'CYC20261128', '2026-11-28', 'test', now())`, [p.id])).rejects.toThrow(/exceed/);
  });

  it('only the payment’s own merchant refunds it: another merchant gets 404, other roles 403', async () => {
    const p = await newPayment(shop, card(5), '800');
    const before = await writtenCounts(db.pool);
    const r = await refund(node.app, other, p.id, { refund_id: 'steal', amount_fen: '800' });
    expect(r.statusCode).toBe(404);
    expect(errorBody(r).code).toBe('PAYMENT_NOT_FOUND');
    expect(errorBody(await refund(node.app, shop, 'pay_000000000000000000000000', { refund_id: 'nope', amount_fen: '1' })).code).toBe('PAYMENT_NOT_FOUND');
    const fin = await refund(node.app, finance, p.id, { refund_id: 'fin', amount_fen: '1' });
    expect(fin.statusCode).toBe(403);
    expect(errorBody(fin).code).toBe('FORBIDDEN_ROLE');
    expect(errorBody(await refund(node.app, shop, 'not-an-id', { refund_id: 'x', amount_fen: '1' })).code).toBe('VALIDATION_FAILED');
    expect(errorBody(await refund(node.app, shop, p.id, { refund_id: 'x', amount_fen: '0' })).code).toBe('VALIDATION_FAILED');
    expect(await writtenCounts(db.pool)).toEqual(before);
  });

  it('works after the cycle of the payment closed: the refund posts in the open cycle', async () => {
    const p = await newPayment(shop, card(6), '900');
    // Close the payment's cycle and open the next, as the clearing calendar does.
    await db.pool.query(`
      WITH closed AS (UPDATE clearing_cycle SET state = 'CLOSED', closed_at = now() WHERE id = $1 RETURNING business_date)
      INSERT INTO clearing_cycle (id, business_date, state, opened_at) SELECT 'CYC' || to_char(business_date + 1, 'YYYYMMDD'), business_date + 1, 'OPEN', now() FROM closed`, [p.cycle_id]);
    const r = await refund(node.app, shop, p.id, { refund_id: 'after-close', amount_fen: '900' });
    expect(r.statusCode, r.body).toBe(201);
    const rf = r.json() as Refund;
    expect(rf.cycle_id).not.toBe(p.cycle_id);
    expect(rf.cycle_id).toBe(`CYC${String(Number(p.cycle_id.slice(3)) + 1)}`);
  });
});

describe('the payment view', () => {
  it('merchant (own only), finance and auditor; others are refused', async () => {
    const p = await newPayment(shop, card(7), '1234');
    for (const t of [shop, finance, auditor]) {
      const r = await view(t, p.id);
      expect(r.statusCode, r.body).toBe(200);
      expect(r.json()).toMatchObject({ id: p.id, status: 'SUCCEEDED', amount_fen: '1234', refunded_fen: '0', refunds: [], card_no: '621730*********0007' });
    }
    expect(errorBody(await view(other, p.id))).toMatchObject({ code: 'PAYMENT_NOT_FOUND' });
    const bank = (await mintKey(db.pool, 'bank', issuer)).token;
    expect(errorBody(await view(bank, p.id)).code).toBe('FORBIDDEN_ROLE');
    expect((await node.app.inject({ method: 'GET', url: `/v1/payments/${p.id}` })).statusCode).toBe(401);
  });

  it('the ledger verifies', async () => {
    const v = await verifyLedger(db.pool);
    expect(v.mismatches).toEqual([]);
    expect(v.ok).toBe(true);
  });
});
