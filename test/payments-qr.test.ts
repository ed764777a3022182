/**
 * E-card QR payments over real Postgres: the spec's public QR vectors pay; every refusal has its
 * stable code and writes nothing; a code is single-use across engine nodes and restarts; races
 * between identical and between conflicting orders; the bank's timeout, decline, outage and
 * daily limit; reversal of an approval that could not be posted; the ledger verifies at the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAndVerifyQrCode, sm3Hex } from '../adapters/crypto/index.ts';
import { SimulatedBank, retryPendingReversals, type BankAuthRequest, type BankAuthResult, type BankAuthorizer, type BankReversalRequest, type PaymentsContext } from '../adapters/payments/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { errorBody, metricSample, mintKey } from './support/http.ts';
import {
  DownBank, SlowBank, balanceFen, t0_ms, merchantToken, pay, paymentsApp, pinnedClock, qrFor, seedReference, setCardStatus,
  verifyLedger, writtenCounts, type Clock, type PaymentsApp,
} from './support/payments-fixtures.ts';

const issuer = '102100000001';
const issuer2 = '103100000002';
const acquirer = '104100000003';
const vector1 = { cardNo: '6217001234567890123', issuedAtS: 1795000000, nonceHex: '0a0b0c0d', code: 'SSC1.BiFwASNFZ4kBI2r9hsAKCwwN.re3xeb9Dx_tvZrzNxmLsJA' };
const vector2 = { cardNo: '6230580000000000018', issuedAtS: 1800000000, nonceHex: 'ffffffff', code: 'SSC1.BiMFgAAAAAAAGGtJ0gD_____.ogj2wo7ankMePSBYaSZs9A' };

const card = (i: number) => `62171${String(i).padStart(14, '0')}`;
const c = {
  lost: card(50), suspended: card(51), cancelled: card(52), issued: card(53), unknown: card(59),
};

let db: TestDb;
let clock: Clock;
let node: PaymentsApp;
let shop: string;
let closedShop: string;
let ghostShop: string;
let bankKey: string;
let orderNo = 0;
const order = () => `ord-${++orderNo}`;

beforeAll(async () => {
  db = await freshDatabase(30);
  clock = pinnedClock();
  await seedReference(db.pool, {
    banks: [issuer, issuer2, acquirer],
    merchants: [
      { id: 'SHOP1', kind: 'RETAIL', bank: acquirer },
      { id: 'SHOP2', kind: 'RETAIL', bank: acquirer },
      { id: 'SHUT', kind: 'RETAIL', bank: acquirer, status: 'CLOSED' },
    ],
    cards: [
      { cardNo: vector1.cardNo, bank: issuer },
      { cardNo: vector2.cardNo, bank: issuer2 },
      ...Array.from({ length: 50 }, (_, i) => ({ cardNo: card(i), bank: i % 2 === 0 ? issuer : issuer2, dailyLimitFen: 100_000n })),
      { cardNo: c.lost, bank: issuer, status: 'LOST_REPORTED' as const },
      { cardNo: c.suspended, bank: issuer, status: 'SUSPENDED' as const },
      { cardNo: c.cancelled, bank: issuer, status: 'CANCELLED' as const },
      { cardNo: c.issued, bank: issuer, status: 'ISSUED' as const },
    ],
    terminals: [
      { id: '420300000101', merchantId: 'SHOP1' },
      { id: '420300000102', merchantId: 'SHOP2' },
      { id: '420300000103', merchantId: 'SHOP1', status: 'RETIRED' },
    ],
  });
  node = await paymentsApp(db.pool, clock);
  shop = await merchantToken(db.pool, 'SHOP1');
  closedShop = await merchantToken(db.pool, 'SHUT');
  ghostShop = await merchantToken(db.pool, 'NOSUCH');
  bankKey = (await mintKey(db.pool, 'bank', issuer)).token;
});

afterAll(async () => {
  await node?.app.close();
  await db?.drop();
});

type Payment = { id: string; status: string; card_no: string; amount_fen: string; medical_fen: string; self_pay_fen: string; cycle_id: string; business_date: string; bank_auth_code: string | null; order_id: string };

async function expectRefusal(p: Promise<{ statusCode: number; body: string; json(): unknown }>, status: number, code: string): Promise<Record<string, unknown> | undefined> {
  const before = await writtenCounts(db.pool);
  const r = await p;
  expect(r.statusCode, r.body).toBe(status);
  const b = errorBody(r as Parameters<typeof errorBody>[0]);
  expect(b.code).toBe(code);
  expect(await writtenCounts(db.pool)).toEqual(before);
  return b.details;
}

describe('public QR vectors (CARD-SECURITY.md)', () => {
  it('parse and verify with the clock pinned to issued-at, and pay', async () => {
    for (const v of [vector1, vector2]) {
      const parsed = parseAndVerifyQrCode(node.deps.keyStore, v.code, v.issuedAtS);
      expect(parsed).toMatchObject({ cardNo: v.cardNo, issuedAtS: v.issuedAtS, nonceHex: v.nonceHex, keyVersion: 1 });
      const body = Buffer.from(v.code.split('.')[1], 'base64url');
      expect(parsed.codeId).toBe(sm3Hex(body));
    }
    clock.set(vector1.issuedAtS * 1000);
    const r1 = await pay(node.app, shop, { qr_code: vector1.code, amount_fen: '1250', order_id: 'vector-1' });
    expect(r1.statusCode, r1.body).toBe(201);
    const p1 = r1.json() as Payment;
    expect(p1).toMatchObject({ status: 'SUCCEEDED', amount_fen: '1250', medical_fen: '0', self_pay_fen: '1250', card_no: '621700*********0123', order_id: 'vector-1' });
    expect(p1.id).toMatch(/^pay_[0-9a-f]{24}$/);
    expect(p1.bank_auth_code).toMatch(/^[0-9]{6}$/);
    expect(r1.body).not.toContain(vector1.cardNo);
    // The cycle of the first payment is opened for the business date of the pinned clock (2026-11-18 Shanghai, before the 23:00 cutoff).
    expect(p1.business_date).toBe('2026-11-18');
    expect(p1.cycle_id).toBe('CYC20261118');

    // Presented at the very end of its window (issued-at + 60 s) the second vector still pays.
    clock.set((vector2.issuedAtS + 60) * 1000);
    const r2 = await pay(node.app, shop, { qr_code: vector2.code, amount_fen: '1', order_id: 'vector-2' });
    expect(r2.statusCode, r2.body).toBe(201);
    expect((r2.json() as Payment).card_no).toBe('623058*********0018');
    // Funds: the cardholder's bank owes the centre, the centre owes the merchant.
    expect(await balanceFen(db.pool, `bank:${issuer}:clearing`)).toBe(1250n);
    expect(await balanceFen(db.pool, `bank:${issuer2}:clearing`)).toBe(1n);
    expect(await balanceFen(db.pool, 'merchant:SHOP1:payable')).toBe(1251n);
    const entry = await db.pool.query(`SELECT kind, metadata->>'payment_id' AS pid FROM ledger_entry WHERE idem_key = $1`, [`pay:${p1.id}`]);
    expect(entry.rows).toEqual([{ kind: 'QR_PAYMENT', pid: p1.id }]);
    clock.set(t0_ms);
  });
});

describe('refusals: a stable code each, nothing written', () => {
  it('the code itself: malformed, bad signature, expired, not yet valid', async () => {
    const now = clock.seconds();
    await expectRefusal(pay(node.app, shop, { qr_code: 'SSC1.not-a-code', amount_fen: '100', order_id: order() }), 400, 'QR_MALFORMED');
    const good = qrFor(node.deps, card(0), now);
    const [prefix, body, sig] = good.split('.');
    const flipped = Buffer.from(sig, 'base64url');
    flipped[0] ^= 1;
    await expectRefusal(pay(node.app, shop, { qr_code: `${prefix}.${body}.${flipped.toString('base64url')}`, amount_fen: '100', order_id: order() }), 403, 'QR_BAD_SIGNATURE');
    // A body altered to another card, with the original signature.
    const other = Buffer.from(body, 'base64url');
    other[9] ^= 0x01;
    await expectRefusal(pay(node.app, shop, { qr_code: `${prefix}.${other.toString('base64url')}.${sig}`, amount_fen: '100', order_id: order() }), 403, 'QR_BAD_SIGNATURE');
    const expired = await expectRefusal(pay(node.app, shop, { qr_code: qrFor(node.deps, card(0), now - 61), amount_fen: '100', order_id: order() }), 403, 'QR_EXPIRED');
    expect(expired).toMatchObject({ ageS: 61 });
    await expectRefusal(pay(node.app, shop, { qr_code: qrFor(node.deps, card(0), now + 6), amount_fen: '100', order_id: order() }), 403, 'QR_NOT_YET_VALID');
    // The window's edges are inside it.
    for (const issued of [now - 60, now + 5]) {
      const r = await pay(node.app, shop, { qr_code: qrFor(node.deps, card(0), issued), amount_fen: '100', order_id: order() });
      expect(r.statusCode, r.body).toBe(201);
    }
  });

  it('the card: unknown, not activated, lost, suspended, cancelled', async () => {
    const now = clock.seconds();
    await expectRefusal(pay(node.app, shop, { qr_code: qrFor(node.deps, c.unknown, now), amount_fen: '100', order_id: order() }), 422, 'CARD_UNKNOWN');
    await expectRefusal(pay(node.app, shop, { qr_code: qrFor(node.deps, c.issued, now), amount_fen: '100', order_id: order() }), 422, 'CARD_NOT_ACTIVE');
    await expectRefusal(pay(node.app, shop, { qr_code: qrFor(node.deps, c.lost, now), amount_fen: '100', order_id: order() }), 422, 'CARD_HOTLISTED');
    await expectRefusal(pay(node.app, shop, { qr_code: qrFor(node.deps, c.suspended, now), amount_fen: '100', order_id: order() }), 422, 'CARD_HOTLISTED');
    await expectRefusal(pay(node.app, shop, { qr_code: qrFor(node.deps, c.cancelled, now), amount_fen: '100', order_id: order() }), 422, 'CARD_CANCELLED');
  });

  it('the merchant: closed, unknown, terminal not its own or retired, amount out of range, bad body, wrong role, no key', async () => {
    const q = () => qrFor(node.deps, card(1), clock.seconds());
    await expectRefusal(pay(node.app, closedShop, { qr_code: q(), amount_fen: '100', order_id: order() }), 403, 'MERCHANT_NOT_ACTIVE');
    await expectRefusal(pay(node.app, ghostShop, { qr_code: q(), amount_fen: '100', order_id: order() }), 403, 'MERCHANT_UNKNOWN');
    const t1 = await expectRefusal(pay(node.app, shop, { qr_code: q(), amount_fen: '100', order_id: order(), terminal_id: '420300000102' }), 422, 'TERMINAL_INVALID');
    expect(t1).toEqual({ reason: 'UNKNOWN' });
    await expectRefusal(pay(node.app, shop, { qr_code: q(), amount_fen: '100', order_id: order(), terminal_id: '999999999999' }), 422, 'TERMINAL_INVALID');
    const t3 = await expectRefusal(pay(node.app, shop, { qr_code: q(), amount_fen: '100', order_id: order(), terminal_id: '420300000103' }), 422, 'TERMINAL_INVALID');
    expect(t3).toEqual({ reason: 'RETIRED' });
    await expectRefusal(pay(node.app, shop, { qr_code: q(), amount_fen: '10000001', order_id: order() }), 422, 'AMOUNT_OUT_OF_RANGE');
    await expectRefusal(pay(node.app, shop, { qr_code: q(), amount_fen: '0', order_id: order() }), 400, 'VALIDATION_FAILED');
    await expectRefusal(pay(node.app, shop, { qr_code: q(), amount_fen: '-5', order_id: order() }), 400, 'VALIDATION_FAILED');
    await expectRefusal(pay(node.app, shop, { qr_code: q(), amount_fen: '1.5', order_id: order() }), 400, 'VALIDATION_FAILED');
    await expectRefusal(pay(node.app, shop, { qr_code: q(), amount_fen: '100' }), 400, 'VALIDATION_FAILED');
    await expectRefusal(pay(node.app, shop, { qr_code: q(), amount_fen: '100', order_id: 'has space' }), 400, 'VALIDATION_FAILED');
    await expectRefusal(pay(node.app, shop, { qr_code: q(), amount_fen: '100', order_id: order(), extra: 1 }), 400, 'VALIDATION_FAILED');
    await expectRefusal(pay(node.app, bankKey, { qr_code: q(), amount_fen: '100', order_id: order() }), 403, 'FORBIDDEN_ROLE');
    await expectRefusal(node.app.inject({ method: 'POST', url: '/v1/payments/qr', payload: { qr_code: q(), amount_fen: '100', order_id: order() } }), 401, 'UNAUTHENTICATED');
  });

  it('the order id: a retry replays the first answer, even after the code expired; other content under it is a conflict', async () => {
    const code = qrFor(node.deps, card(2), clock.seconds());
    const id = order();
    const first = await pay(node.app, shop, { qr_code: code, amount_fen: '321', order_id: id, terminal_id: '420300000101' });
    expect(first.statusCode, first.body).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const counts = await writtenCounts(db.pool);
    clock.advance(120_000);
    try {
      const again = await pay(node.app, shop, { qr_code: code, amount_fen: '321', order_id: id, terminal_id: '420300000101' });
      expect(again.statusCode).toBe(201);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.json()).toEqual(first.json());
      expect(await writtenCounts(db.pool)).toEqual(counts);
      await expectRefusal(pay(node.app, shop, { qr_code: code, amount_fen: '322', order_id: id, terminal_id: '420300000101' }), 409, 'IDEMPOTENCY_CONFLICT');
      await expectRefusal(pay(node.app, shop, { qr_code: code, amount_fen: '321', order_id: id }), 409, 'IDEMPOTENCY_CONFLICT');
      await expectRefusal(pay(node.app, shop, { qr_code: qrFor(node.deps, card(2), clock.seconds()), amount_fen: '321', order_id: id, terminal_id: '420300000101' }), 409, 'IDEMPOTENCY_CONFLICT');
      // Another merchant may use the same order id for its own order.
      const shop2 = await merchantToken(db.pool, 'SHOP2');
      const theirs = await pay(node.app, shop2, { qr_code: qrFor(node.deps, card(2), clock.seconds()), amount_fen: '321', order_id: id });
      expect(theirs.statusCode, theirs.body).toBe(201);
      expect((theirs.json() as Payment).id).not.toBe((first.json() as Payment).id);
    } finally {
      clock.advance(-120_000);
    }
  });
});

describe('single use of a code, across engine nodes and restarts', () => {
  it('a code paid on one node is refused as QR_REPLAYED by a second node and by a restarted one', async () => {
    const code = qrFor(node.deps, card(3), clock.seconds());
    const paid = await pay(node.app, shop, { qr_code: code, amount_fen: '500', order_id: 'node-a-order' });
    expect(paid.statusCode, paid.body).toBe(201);

    const nodeB = await paymentsApp(db.pool, clock);
    try {
      await expectRefusal(pay(nodeB.app, shop, { qr_code: code, amount_fen: '500', order_id: 'node-b-order' }), 409, 'QR_REPLAYED');
      const shop2 = await merchantToken(db.pool, 'SHOP2');
      await expectRefusal(pay(nodeB.app, shop2, { qr_code: code, amount_fen: '500', order_id: 'node-b-order' }), 409, 'QR_REPLAYED');
      // The same order retried on the other node is a replay, not a refusal.
      const replay = await pay(nodeB.app, shop, { qr_code: code, amount_fen: '500', order_id: 'node-a-order' });
      expect(replay.statusCode).toBe(201);
      expect(replay.json()).toEqual(paid.json());
    } finally {
      await nodeB.app.close();
    }
    // "Restart": a brand-new app instance (fresh caches, fresh ledger object) on the same database.
    const restarted = await paymentsApp(db.pool, clock);
    try {
      await expectRefusal(pay(restarted.app, shop, { qr_code: code, amount_fen: '500', order_id: 'after-restart' }), 409, 'QR_REPLAYED');
    } finally {
      await restarted.app.close();
    }
  });
});

describe('races', () => {
  it('concurrent identical submissions of one order, over two nodes, make one payment and one answer', async () => {
    const nodeB = await paymentsApp(db.pool, clock);
    try {
      const body = { qr_code: qrFor(node.deps, card(4), clock.seconds()), amount_fen: '777', order_id: 'same-order' };
      const before = await writtenCounts(db.pool);
      const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => pay(i % 2 === 0 ? node.app : nodeB.app, shop, body)));
      expect(rs.map((r) => r.statusCode)).toEqual(Array(12).fill(201));
      const ids = new Set(rs.map((r) => (r.json() as Payment).id));
      expect(ids.size).toBe(1);
      const bodies = new Set(rs.map((r) => r.body));
      expect(bodies.size).toBe(1);
      const after = await writtenCounts(db.pool);
      expect(after.payments - before.payments).toBe(1);
      expect(after.entries - before.entries).toBe(1);
      expect(after.code_uses - before.code_uses).toBe(1);
      // Every authorization the losers obtained was reversed: the card's day counts one payment.
      const day = await db.pool.query<{ net: string }>(`
        SELECT coalesce(sum(amount_fen), 0)::text AS net FROM sim_bank_authorization a
        WHERE card_no = $1 AND approved AND NOT EXISTS (SELECT 1 FROM sim_bank_reversal r WHERE r.auth_id = a.auth_id)`, [card(4)]);
      expect(day.rows[0].net).toBe('777');
      const unacked = await db.pool.query(`SELECT 1 FROM bank_auth_reversal v WHERE NOT EXISTS (SELECT 1 FROM bank_auth_reversal_ack a WHERE a.auth_id = v.auth_id)`);
      expect(unacked.rows).toEqual([]);
    } finally {
      await nodeB.app.close();
    }
  });

  it('concurrent different orders presenting one code: exactly one pays, the rest are QR_REPLAYED', async () => {
    const code = qrFor(node.deps, card(6), clock.seconds());
    const shop2 = await merchantToken(db.pool, 'SHOP2');
    const before = await writtenCounts(db.pool);
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => pay(node.app, i % 2 === 0 ? shop : shop2, { qr_code: code, amount_fen: '300', order_id: `race-${i}` })));
    const ok = rs.filter((r) => r.statusCode === 201);
    expect(ok).toHaveLength(1);
    for (const r of rs.filter((x) => x.statusCode !== 201)) {
      expect(r.statusCode, r.body).toBe(409);
      expect(errorBody(r).code).toBe('QR_REPLAYED');
    }
    const after = await writtenCounts(db.pool);
    expect(after.payments - before.payments).toBe(1);
    expect(after.entries - before.entries).toBe(1);
  });
});

describe('the cardholder bank', () => {
  it('declines over the daily limit (Asia/Shanghai day), which survives a restart and resets the next day', async () => {
    const limited = card(8);
    await db.pool.query(`UPDATE card SET daily_limit_fen = 1000 WHERE card_no = $1`, [limited]);
    const q = () => qrFor(node.deps, limited, clock.seconds());
    expect((await pay(node.app, shop, { qr_code: q(), amount_fen: '600', order_id: order() })).statusCode).toBe(201);
    const details = await expectRefusal(pay(node.app, shop, { qr_code: q(), amount_fen: '401', order_id: order() }), 402, 'BANK_DECLINED');
    expect(details).toEqual({ reason: 'DAILY_LIMIT_EXCEEDED' });
    const restarted = await paymentsApp(db.pool, clock);
    try {
      await expectRefusal(pay(restarted.app, shop, { qr_code: q(), amount_fen: '401', order_id: order() }), 402, 'BANK_DECLINED');
      expect((await pay(restarted.app, shop, { qr_code: q(), amount_fen: '400', order_id: order() })).statusCode).toBe(201);
      await expectRefusal(pay(restarted.app, shop, { qr_code: q(), amount_fen: '1', order_id: order() }), 402, 'BANK_DECLINED');
      // Past midnight in Shanghai (16:00 UTC) it is a new day at the bank.
      const saved = clock.now().getTime();
      const shanghaiMidnight = Date.UTC(2026, 10, 28, 16, 0, 0);
      clock.set(shanghaiMidnight - 1000);
      await expectRefusal(pay(restarted.app, shop, { qr_code: q(), amount_fen: '1', order_id: order() }), 402, 'BANK_DECLINED');
      clock.set(shanghaiMidnight);
      expect((await pay(restarted.app, shop, { qr_code: q(), amount_fen: '1000', order_id: order() })).statusCode).toBe(201);
      clock.set(saved);
    } finally {
      await restarted.app.close();
    }
  });

  it('a bank that does not answer in time: 504 BANK_TIMEOUT, nothing posted, the code reusable, the late decision undone', async () => {
    const slow = new SlowBank(new SimulatedBank(db.pool, { now: clock.now, latencyMs: 0 }), 300);
    const nodeSlow = await paymentsApp(db.pool, clock, { bankAuthorizer: slow, bankAuthTimeoutMs: 50 });
    try {
      const code = qrFor(node.deps, card(10), clock.seconds());
      const before = await writtenCounts(db.pool);
      const r = await pay(nodeSlow.app, shop, { qr_code: code, amount_fen: '900', order_id: 'slow-order' });
      expect(r.statusCode, r.body).toBe(504);
      expect(errorBody(r)).toMatchObject({ code: 'BANK_TIMEOUT', details: { timeoutMs: 50 } });
      expect(slow.reversals).toHaveLength(1);
      // Let the slow bank decide: it finds the reversal already there and declines.
      await new Promise((res) => setTimeout(res, 400));
      expect(await writtenCounts(db.pool)).toEqual(before);
      const late = await db.pool.query(`SELECT approved, decline_code FROM sim_bank_authorization WHERE auth_id = $1`, [slow.reversals[0]]);
      expect(late.rows).toEqual([{ approved: false, decline_code: 'AUTHORIZATION_REVERSED' }]);
      const rev = await db.pool.query(`SELECT v.reason, a.auth_id IS NOT NULL AS acked FROM bank_auth_reversal v LEFT JOIN bank_auth_reversal_ack a USING (auth_id) WHERE v.auth_id = $1`, [slow.reversals[0]]);
      expect(rev.rows).toEqual([{ reason: 'BANK_TIMEOUT', acked: true }]);
      // The cardholder retries with the same code, the same order, on a healthy node.
      const retry = await pay(node.app, shop, { qr_code: code, amount_fen: '900', order_id: 'slow-order' });
      expect(retry.statusCode, retry.body).toBe(201);
    } finally {
      await nodeSlow.app.close();
    }
  });

  it('an approval the engine gave up waiting for is reversed, so it does not count against the daily limit', async () => {
    const limited = card(12);
    await db.pool.query(`UPDATE card SET daily_limit_fen = 1000 WHERE card_no = $1`, [limited]);
    const inner = new SimulatedBank(db.pool, { now: clock.now, latencyMs: 0 });
    // Decides at once, but the answer reaches the engine too late.
    const lateAnswer: BankAuthorizer = {
      async authorize(req: BankAuthRequest): Promise<BankAuthResult> {
        const res = await inner.authorize(req, new AbortController().signal);
        await new Promise((r) => setTimeout(r, 200));
        return res;
      },
      reverse: (req: BankReversalRequest, signal: AbortSignal) => inner.reverse(req, signal),
    };
    const nodeLate = await paymentsApp(db.pool, clock, { bankAuthorizer: lateAnswer, bankAuthTimeoutMs: 50 });
    try {
      const r = await pay(nodeLate.app, shop, { qr_code: qrFor(node.deps, limited, clock.seconds()), amount_fen: '800', order_id: order() });
      expect(r.statusCode).toBe(504);
      await new Promise((res) => setTimeout(res, 250));
      const approved = await db.pool.query(`SELECT count(*)::int AS n FROM sim_bank_authorization WHERE card_no = $1 AND approved`, [limited]);
      expect(approved.rows[0].n).toBe(1);
      // 800 was approved at the bank and then reversed: 900 more fits the 1000 limit.
      const ok = await pay(node.app, shop, { qr_code: qrFor(node.deps, limited, clock.seconds()), amount_fen: '900', order_id: order() });
      expect(ok.statusCode, ok.body).toBe(201);
    } finally {
      await nodeLate.app.close();
    }
  });

  it('a bank link that is down: 503 BANK_UNAVAILABLE, and the reversal stays pending until the bank acknowledges it', async () => {
    const nodeDown = await paymentsApp(db.pool, clock, { bankAuthorizer: new DownBank() });
    try {
      await expectRefusal(pay(nodeDown.app, shop, { qr_code: qrFor(node.deps, card(14), clock.seconds()), amount_fen: '100', order_id: order() }), 503, 'BANK_UNAVAILABLE');
      const pending = await db.pool.query<{ auth_id: string; reason: string }>(`
        SELECT v.auth_id, v.reason FROM bank_auth_reversal v WHERE NOT EXISTS (SELECT 1 FROM bank_auth_reversal_ack a WHERE a.auth_id = v.auth_id)`);
      expect(pending.rows.map((x) => x.reason)).toEqual(['BANK_ERROR']);
      const ctx = { db: db.pool, now: clock.now, authorizer: new SimulatedBank(db.pool, { now: clock.now }), bankReversalTimeoutMs: 1000, log: { warn: () => undefined } } as unknown as PaymentsContext;
      expect(await retryPendingReversals(ctx)).toEqual({ attempted: 1, acknowledged: 1 });
      expect(await retryPendingReversals(ctx)).toEqual({ attempted: 0, acknowledged: 0 });
      const tomb = await db.pool.query(`SELECT 1 FROM sim_bank_reversal WHERE auth_id = $1`, [pending.rows[0].auth_id]);
      expect(tomb.rows).toHaveLength(1);
    } finally {
      await nodeDown.app.close();
    }
  });

  it('an approval whose payment cannot be posted (the card was reported lost meanwhile) is reversed, and the card refused', async () => {
    const victim = card(16);
    const inner = new SimulatedBank(db.pool, { now: clock.now, latencyMs: 0 });
    const authIds: string[] = [];
    const lossDuringAuth: BankAuthorizer = {
      async authorize(req, signal) {
        authIds.push(req.authId);
        const res = await inner.authorize(req, signal);
        await setCardStatus(db.pool, victim, 'LOST_REPORTED', clock.now());
        return res;
      },
      reverse: (req, signal) => inner.reverse(req, signal),
    };
    const n2 = await paymentsApp(db.pool, clock, { bankAuthorizer: lossDuringAuth });
    try {
      const before = await writtenCounts(db.pool);
      const r = await pay(n2.app, shop, { qr_code: qrFor(node.deps, victim, clock.seconds()), amount_fen: '250', order_id: order() });
      expect(r.statusCode, r.body).toBe(422);
      expect(errorBody(r).code).toBe('CARD_HOTLISTED');
      const after = await writtenCounts(db.pool);
      expect({ ...after, bank_approvals: 0 }).toEqual({ ...before, bank_approvals: 0 });
      expect(authIds).toHaveLength(1);
      const rev = await db.pool.query(`SELECT reason FROM bank_auth_reversal WHERE auth_id = $1`, [authIds[0]]);
      expect(rev.rows).toEqual([{ reason: 'NOT_POSTED' }]);
      const tomb = await db.pool.query(`SELECT 1 FROM sim_bank_reversal WHERE auth_id = $1`, [authIds[0]]);
      expect(tomb.rows).toHaveLength(1);
    } finally {
      await n2.app.close();
    }
  });
});

describe('metrics', () => {
  it("counts each stage's batches: a payment alone is one batch of one in each of facts, bank and post", async () => {
    const stages = async () => {
      const m = await node.app.inject({ method: 'GET', url: '/metrics' });
      expect(m.statusCode).toBe(200);
      const read = (series: string, stage: string) => metricSample(m.body, `${series}{stage="${stage}"}`) ?? 0;
      return Object.fromEntries(['facts', 'bank', 'post'].map((stage) => [stage, {
        batches: read('onecard_payment_batch_items_count', stage),
        items: read('onecard_payment_batch_items_sum', stage),
        seconds: read('onecard_payment_batch_duration_seconds_sum', stage),
      }]));
    };
    const before = await stages();
    const r = await pay(node.app, shop, { qr_code: qrFor(node.deps, card(7), clock.seconds()), amount_fen: '100', order_id: order() });
    expect(r.statusCode, r.body).toBe(201);
    const after = await stages();
    for (const stage of ['facts', 'bank', 'post']) {
      expect(after[stage].batches - before[stage].batches, stage).toBe(1);
      expect(after[stage].items - before[stage].items, stage).toBe(1);
      expect(after[stage].seconds, stage).toBeGreaterThan(before[stage].seconds);
    }
  });
});

describe('the books', () => {
  it('every payment is one balanced entry; the ledger verifies', async () => {
    const sums = await db.pool.query<{ payments: string; merchant: string }>(`
      SELECT (SELECT coalesce(sum(amount_fen), 0) FROM payment WHERE merchant_id = 'SHOP1')::text AS payments,
             (SELECT (credits_posted_fen - debits_posted_fen) FROM ledger_account WHERE code = 'merchant:SHOP1:payable')::text AS merchant`);
    expect(sums.rows[0].merchant).toBe(sums.rows[0].payments);
    const orphans = await db.pool.query(`SELECT p.id FROM payment p LEFT JOIN ledger_entry e ON e.idem_key = p.entry_idem_key WHERE e.id IS NULL`);
    expect(orphans.rows).toEqual([]);
    const v = await verifyLedger(db.pool);
    expect(v.mismatches).toEqual([]);
    expect(v.negativeAccounts).toEqual([]);
    expect(v.ok).toBe(true);
  });
});
