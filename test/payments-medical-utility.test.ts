/**
 * Medical and utility payments over real Postgres: the medical personal account pays first (up
 * to its balance or the requested cap), the rest is self-pay through the bank, both legs in one
 * entry; never at a non-medical merchant; concurrent payments never overdraw the medical account.
 * A utility bill is paid at most once (until a full refund releases it), also under races.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../adapters/postgres/db.ts';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { errorBody } from './support/http.ts';
import {
  balanceFen, fundMedical, merchantToken, pay, paymentsApp, pinnedClock, qrFor, refund, seedReference, verifyLedger,
  writtenCounts, type Clock, type PaymentsApp,
} from './support/payments-fixtures.ts';

const issuer = '102100000011';
const acquirer = '104100000013';
const fund_bank = '105100000015';
const card = (i: number) => `62172${String(i).padStart(14, '0')}`;

let db: TestDb;
let clock: Clock;
let node: PaymentsApp;
const token: Record<string, string> = {};
let orderNo = 0;
const order = () => `m-${++orderNo}`;

type Payment = { id: string; amount_fen: string; medical_fen: string; self_pay_fen: string; bank_auth_code: string | null; medical: unknown; utility: unknown };

beforeAll(async () => {
  db = await freshDatabase(30);
  clock = pinnedClock();
  await seedReference(db.pool, {
    banks: [issuer, acquirer, fund_bank],
    merchants: [
      { id: 'HOSP', kind: 'MEDICAL', bank: acquirer },
      { id: 'SHOP', kind: 'RETAIL', bank: acquirer },
      { id: 'METRO', kind: 'TRANSIT', bank: acquirer },
      { id: 'WATER', kind: 'UTILITY', bank: acquirer },
      { id: 'POWER', kind: 'UTILITY', bank: acquirer },
    ],
    cards: Array.from({ length: 40 }, (_, i) => ({ cardNo: card(i), bank: issuer, dailyLimitFen: 10_000_000n })),
  });
  await fundMedical(db.pool, fund_bank, Array.from({ length: 30 }, (_, i) => ({ cardNo: card(i), amountFen: 10_000n })));
  node = await paymentsApp(db.pool, clock);
  for (const m of ['HOSP', 'SHOP', 'METRO', 'WATER', 'POWER']) token[m] = await merchantToken(db.pool, m);
});

afterAll(async () => {
  await node?.app.close();
  await db?.drop();
});

const code = (cardNo: string) => qrFor(node.deps, cardNo, clock.seconds());

async function entryLines(paymentId: string): Promise<{ debit: string; credit: string; amount_fen: string }[]> {
  const r = await db.pool.query<{ debit: string; credit: string; amount_fen: string }>(`
    SELECT da.code AS debit, ca.code AS credit, p.amount_fen::text AS amount_fen FROM ledger_entry e
    JOIN ledger_posting p ON p.entry_id = e.id JOIN ledger_account da ON da.id = p.debit_account_id JOIN ledger_account ca ON ca.id = p.credit_account_id
    WHERE e.idem_key = $1 ORDER BY p.line_no`, [`pay:${paymentId}`]);
  return r.rows;
}

describe('medical payments', () => {
  it('the medical account pays first; the rest is self-pay through the bank; both legs in one entry', async () => {
    const cn = card(0);
    const a = await pay(node.app, token.HOSP, { qr_code: code(cn), amount_fen: '3000', order_id: order(), medical: { visit_no: 'V-1' } });
    expect(a.statusCode, a.body).toBe(201);
    const pa = a.json() as Payment;
    expect(pa).toMatchObject({ amount_fen: '3000', medical_fen: '3000', self_pay_fen: '0', bank_auth_code: null, medical: { visit_no: 'V-1' } });
    expect(await entryLines(pa.id)).toEqual([{ debit: `card:${cn}:medical`, credit: 'merchant:HOSP:payable', amount_fen: '3000' }]);
    // No self-pay: the bank was not asked.
    const asked = await db.pool.query(`SELECT 1 FROM sim_bank_authorization WHERE card_no = $1`, [cn]);
    expect(asked.rows).toEqual([]);

    const b = await pay(node.app, token.HOSP, { qr_code: code(cn), amount_fen: '9000', order_id: order(), medical: {} });
    expect(b.statusCode, b.body).toBe(201);
    const pb = b.json() as Payment;
    expect(pb).toMatchObject({ medical_fen: '7000', self_pay_fen: '2000' });
    expect(pb.bank_auth_code).toMatch(/^[0-9]{6}$/);
    expect(await entryLines(pb.id)).toEqual([
      { debit: `card:${cn}:medical`, credit: 'merchant:HOSP:payable', amount_fen: '7000' },
      { debit: `bank:${issuer}:clearing`, credit: 'merchant:HOSP:payable', amount_fen: '2000' },
    ]);
    expect(await balanceFen(db.pool, `card:${cn}:medical`)).toBe(0n);

    // An empty medical account: all self-pay.
    const c = await pay(node.app, token.HOSP, { qr_code: code(cn), amount_fen: '500', order_id: order(), medical: {} });
    expect(c.json()).toMatchObject({ medical_fen: '0', self_pay_fen: '500' });
    const bankAsked = await db.pool.query<{ amount_fen: string }>(`SELECT amount_fen::text FROM sim_bank_authorization WHERE card_no = $1 ORDER BY decided_at, auth_id`, [cn]);
    expect(bankAsked.rows.map((x) => x.amount_fen).sort()).toEqual(['2000', '500']);
  });

  it('a requested cap limits the medical part; without the medical object the account is not touched', async () => {
    const cn = card(1);
    const capped = await pay(node.app, token.HOSP, { qr_code: code(cn), amount_fen: '2000', order_id: order(), medical: { personal_account_fen_max: '500' } });
    expect(capped.json()).toMatchObject({ medical_fen: '500', self_pay_fen: '1500' });
    const zero = await pay(node.app, token.HOSP, { qr_code: code(cn), amount_fen: '2000', order_id: order(), medical: { personal_account_fen_max: '0' } });
    expect(zero.json()).toMatchObject({ medical_fen: '0', self_pay_fen: '2000' });
    const plain = await pay(node.app, token.HOSP, { qr_code: code(cn), amount_fen: '2000', order_id: order() });
    expect(plain.json()).toMatchObject({ medical_fen: '0', self_pay_fen: '2000', medical: null });
    expect(await balanceFen(db.pool, `card:${cn}:medical`)).toBe(9_500n);
    // A card that never had a medical account pays it all itself.
    const none = await pay(node.app, token.HOSP, { qr_code: code(card(35)), amount_fen: '700', order_id: order(), medical: {} });
    expect(none.json()).toMatchObject({ medical_fen: '0', self_pay_fen: '700' });
  });

  it('draws only what the account can spend: its balance less what pending holds reserve (the ledger’s available balance)', async () => {
    const cn = card(5);
    const ledger = new Ledger();
    await withTx(db.pool, (tx) => ledger.createHold(tx, {
      idemKey: `hold-${cn}`, debit: `card:${cn}:medical`, credit: 'merchant:HOSP:payable', amountFen: 4_000n, kind: 'MEDICAL_PREAUTH',
      expiresAt: new Date(clock.now().getTime() + 3_600_000),
    }));
    const available = (await ledger.account(db.pool, `card:${cn}:medical`))?.availableFen;
    expect(available).toBe(6_000n);
    const r = await pay(node.app, token.HOSP, { qr_code: code(cn), amount_fen: '8000', order_id: order(), medical: {} });
    expect(r.json()).toMatchObject({ medical_fen: '6000', self_pay_fen: '2000' });
  });

  it('never at a non-medical merchant: MEDICAL_NOT_ALLOWED, nothing written, the account untouched', async () => {
    const cn = card(2);
    for (const m of ['SHOP', 'METRO', 'WATER']) {
      const before = await writtenCounts(db.pool);
      const body = { qr_code: code(cn), amount_fen: '100', order_id: order(), medical: {}, ...(m === 'WATER' ? { utility: { customer_no: 'C1', bill_id: 'B-x' } } : {}) };
      const r = await pay(node.app, token[m], body);
      expect(r.statusCode, r.body).toBe(422);
      expect(errorBody(r).code).toBe('MEDICAL_NOT_ALLOWED');
      expect(await writtenCounts(db.pool)).toEqual(before);
    }
    expect(await balanceFen(db.pool, `card:${cn}:medical`)).toBe(10_000n);
  });

  it('two concurrent payments on one medical account: both succeed, the account pays exactly its balance, never below zero', async () => {
    const cn = card(3);
    const rs = await Promise.all([6000, 7000].map((amt) => pay(node.app, token.HOSP, { qr_code: code(cn), amount_fen: String(amt), order_id: order(), medical: {} })));
    expect(rs.map((r) => r.statusCode)).toEqual([201, 201]);
    const ps = rs.map((r) => r.json() as Payment);
    const medical = ps.reduce((s, p) => s + BigInt(p.medical_fen), 0n);
    expect(medical).toBe(10_000n);
    for (const p of ps) expect(BigInt(p.medical_fen) + BigInt(p.self_pay_fen)).toBe(BigInt(p.amount_fen));
    expect(await balanceFen(db.pool, `card:${cn}:medical`)).toBe(0n);
  });

  it('many concurrent payments on one medical account never overdraw it, and every answer adds up', async () => {
    const cn = card(4);
    const rs = await Promise.all(Array.from({ length: 12 }, () => pay(node.app, token.HOSP, { qr_code: code(cn), amount_fen: '1500', order_id: order(), medical: {} })));
    const ok = rs.filter((r) => r.statusCode === 201).map((r) => r.json() as Payment);
    for (const r of rs.filter((x) => x.statusCode !== 201)) {
      expect(r.statusCode, r.body).toBe(409);
      expect(errorBody(r).code).toBe('CONCURRENT_UPDATE');
    }
    expect(ok.length).toBeGreaterThanOrEqual(7);
    const final = await balanceFen(db.pool, `card:${cn}:medical`);
    expect(final).toBeGreaterThanOrEqual(0n);
    expect(ok.reduce((s, p) => s + BigInt(p.medical_fen), 0n)).toBe(10_000n - final);
    for (const p of ok) expect(BigInt(p.medical_fen) + BigInt(p.self_pay_fen)).toBe(1500n);
    // Every bank approval is either a payment's or reversed.
    const unexplained = await db.pool.query(`
      SELECT a.auth_id FROM sim_bank_authorization a
      WHERE a.card_no = $1 AND a.approved AND NOT EXISTS (SELECT 1 FROM sim_bank_reversal r WHERE r.auth_id = a.auth_id)
        AND NOT EXISTS (SELECT 1 FROM payment p WHERE p.bank_auth_id = a.auth_id)`, [cn]);
    expect(unexplained.rows).toEqual([]);
  });
});

describe('utility payments', () => {
  it('a bill is paid once: a second payment of it is BILL_ALREADY_PAID, a retry of the order replays', async () => {
    const body = { qr_code: code(card(10)), amount_fen: '8800', order_id: order(), utility: { customer_no: 'CUST-1', bill_id: 'BILL-2026-11' } };
    const first = await pay(node.app, token.WATER, body);
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json()).toMatchObject({ utility: { customer_no: 'CUST-1', bill_id: 'BILL-2026-11' }, merchant_kind: 'UTILITY' });
    const replay = await pay(node.app, token.WATER, body);
    expect(replay.statusCode).toBe(201);
    expect(replay.json()).toEqual(first.json());
    const before = await writtenCounts(db.pool);
    const second = await pay(node.app, token.WATER, { qr_code: code(card(11)), amount_fen: '8800', order_id: order(), utility: { customer_no: 'CUST-1', bill_id: 'BILL-2026-11' } });
    expect(second.statusCode, second.body).toBe(409);
    expect(errorBody(second).code).toBe('BILL_ALREADY_PAID');
    expect(await writtenCounts(db.pool)).toEqual(before);
    // Bill ids are the utility's own: another utility may have the same one.
    const other = await pay(node.app, token.POWER, { qr_code: code(card(11)), amount_fen: '100', order_id: order(), utility: { customer_no: 'CUST-1', bill_id: 'BILL-2026-11' } });
    expect(other.statusCode, other.body).toBe(201);
  });

  it('bill details are required at a utility and refused elsewhere', async () => {
    for (const [m, body, code_] of [
      ['WATER', { qr_code: code(card(12)), amount_fen: '100', order_id: order() }, 'UTILITY_BILL_REQUIRED'],
      ['SHOP', { qr_code: code(card(12)), amount_fen: '100', order_id: order(), utility: { customer_no: 'C', bill_id: 'B' } }, 'UTILITY_NOT_ALLOWED'],
      ['HOSP', { qr_code: code(card(12)), amount_fen: '100', order_id: order(), utility: { customer_no: 'C', bill_id: 'B' } }, 'UTILITY_NOT_ALLOWED'],
    ] as const) {
      const before = await writtenCounts(db.pool);
      const r = await pay(node.app, token[m], body);
      expect(r.statusCode, r.body).toBe(422);
      expect(errorBody(r).code).toBe(code_);
      expect(await writtenCounts(db.pool)).toEqual(before);
    }
  });

  it('concurrent payments of one bill by different orders: exactly one pays', async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => pay(node.app, token.WATER, {
      qr_code: code(card(13 + i)), amount_fen: '4200', order_id: order(), utility: { customer_no: 'CUST-9', bill_id: 'RACE-BILL' },
    })));
    expect(rs.filter((r) => r.statusCode === 201)).toHaveLength(1);
    for (const r of rs.filter((x) => x.statusCode !== 201)) {
      expect(r.statusCode, r.body).toBe(409);
      expect(errorBody(r).code).toBe('BILL_ALREADY_PAID');
    }
    const n = await db.pool.query(`SELECT count(*)::int AS n FROM payment WHERE merchant_id = 'WATER' AND bill_id = 'RACE-BILL'`);
    expect(n.rows[0].n).toBe(1);
  });

  it('a full refund releases the bill so it can be paid again; a partial one does not', async () => {
    const first = await pay(node.app, token.WATER, { qr_code: code(card(25)), amount_fen: '1000', order_id: order(), utility: { customer_no: 'C-R', bill_id: 'REFUND-ME' } });
    const pid = (first.json() as Payment).id;
    expect((await refund(node.app, token.WATER, pid, { refund_id: 'r-part', amount_fen: '400' })).statusCode).toBe(201);
    const blocked = await pay(node.app, token.WATER, { qr_code: code(card(26)), amount_fen: '1000', order_id: order(), utility: { customer_no: 'C-R', bill_id: 'REFUND-ME' } });
    expect(errorBody(blocked).code).toBe('BILL_ALREADY_PAID');
    expect((await refund(node.app, token.WATER, pid, { refund_id: 'r-rest', amount_fen: '600' })).statusCode).toBe(201);
    const again = await pay(node.app, token.WATER, { qr_code: code(card(26)), amount_fen: '1000', order_id: order(), utility: { customer_no: 'C-R', bill_id: 'REFUND-ME' } });
    expect(again.statusCode, again.body).toBe(201);
    // A payment row never changes except for that one release.
    await expect(db.pool.query(`UPDATE payment SET amount_fen = 1 WHERE id = $1`, [pid])).rejects.toThrow(/changes only by releasing its bill/);
    await expect(db.pool.query(`DELETE FROM payment WHERE id = $1`, [pid])).rejects.toThrow(/never deleted/);
  });

  it('the ledger verifies', async () => {
    const v = await verifyLedger(db.pool);
    expect(v.mismatches).toEqual([]);
    expect(v.negativeAccounts).toEqual([]);
    expect(v.ok).toBe(true);
  });
});
