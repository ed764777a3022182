/**
 * Fuzzing the payment routes with fast-check: random, malformed and half-valid bodies (with real
 * pay codes mixed in) never cause a 5xx, every refusal is a `{code, message}` body, and a refusal
 * writes nothing. The ledger verifies afterwards.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from './support/db.ts';
import { bearer, errorBody, mintKey } from './support/http.ts';
import {
  fundMedical, merchantToken, paymentsApp, pinnedClock, qrFor, seedReference, verifyLedger, writtenCounts, type Clock, type PaymentsApp,
} from './support/payments-fixtures.ts';

const issuer = '102100000041';
const acquirer = '104100000043';
const card = (i: number) => `62175${String(i).padStart(14, '0')}`;
const runs = Number(process.env.PAYMENTS_FUZZ_RUNS ?? 150);

let db: TestDb;
let clock: Clock;
let node: PaymentsApp;
const tokens: string[] = [];
let bankToken: string;
let codes: string[];
let paymentIds: string[] = [];

beforeAll(async () => {
  db = await freshDatabase(12);
  clock = pinnedClock();
  await seedReference(db.pool, {
    banks: [issuer, acquirer],
    merchants: [{ id: 'SHOP', kind: 'RETAIL', bank: acquirer }, { id: 'HOSP', kind: 'MEDICAL', bank: acquirer }, { id: 'WATER', kind: 'UTILITY', bank: acquirer }],
    cards: [
      ...Array.from({ length: 8 }, (_, i) => ({ cardNo: card(i), bank: issuer, dailyLimitFen: 50_000n })),
      { cardNo: card(8), bank: issuer, status: 'LOST_REPORTED' as const },
    ],
    terminals: [{ id: '420300000501', merchantId: 'SHOP' }],
  });
  await fundMedical(db.pool, issuer, Array.from({ length: 8 }, (_, i) => ({ cardNo: card(i), amountFen: 2_000n })));
  node = await paymentsApp(db.pool, clock);
  for (const m of ['SHOP', 'HOSP', 'WATER']) tokens.push(await merchantToken(db.pool, m));
  bankToken = (await mintKey(db.pool, 'bank', issuer)).token;
  // Real codes: of known cards, of a lost card, of an unknown card, an expired one.
  const now = clock.seconds();
  codes = [
    ...Array.from({ length: 40 }, (_, i) => qrFor(node.deps, card(i % 8), now - (i % 50))),
    qrFor(node.deps, card(8), now), qrFor(node.deps, card(50), now), qrFor(node.deps, card(1), now - 120),
  ];
  // A few payments to refund.
  for (let i = 0; i < 3; i++) {
    const r = await node.app.inject({ method: 'POST', url: '/v1/payments/qr', headers: bearer(tokens[0]), payload: { qr_code: qrFor(node.deps, card(i), now), amount_fen: '900', order_id: `seed-${i}` } });
    expect(r.statusCode, r.body).toBe(201);
    paymentIds.push((r.json() as { id: string }).id);
  }
});

afterAll(async () => {
  await node?.app.close();
  await db?.drop();
});

const junk = fc.oneof(
  fc.string({ maxLength: 80 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
);
const fenish = fc.oneof(
  fc.bigInt({ min: -5n, max: 10n ** 17n }).map(String), fc.integer({ min: -5, max: 2_000_000 }), fc.constantFrom('1', '100', '0', '007', '1e3', '', ' 5', '5.0'), junk,
);
const keyish = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/), fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/), fc.string({ maxLength: 80 }), junk);

function qrish(): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constantFrom(...codes),
    fc.tuple(fc.constantFrom(...codes), fc.nat({ max: 51 }), fc.constantFrom('A', '-', '_', '.', 'z', '0')).map(([c, i, ch]) => c.slice(0, i) + ch + c.slice(i + 1)),
    fc.tuple(fc.constantFrom(...codes), fc.nat({ max: 52 })).map(([c, n]) => c.slice(0, n)),
    fc.string({ maxLength: 300 }),
    junk,
  );
}

/** Mostly-valid bodies with one field broken or dropped, and wholly random ones. */
function mutate<T extends Record<string, unknown>>(valid: fc.Arbitrary<T>, keys: readonly string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof(
    valid,
    fc.tuple(valid, fc.constantFrom(...keys), junk).map(([b, k, v]) => ({ ...b, [k]: v })),
    fc.tuple(valid, fc.constantFrom(...keys)).map(([b, k]) => Object.fromEntries(Object.entries(b).filter(([key]) => key !== k))),
    fc.dictionary(fc.constantFrom(...keys, 'extra'), junk, { maxKeys: keys.length + 1 }),
  );
}

function paymentBody(): fc.Arbitrary<Record<string, unknown>> {
  const valid = fc.record({
    qr_code: qrish(),
    amount_fen: fc.bigInt({ min: 1n, max: 12_000_000n }).map(String),
    order_id: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/),
    terminal_id: fc.constantFrom('420300000501', '999999999999'),
    medical: fc.record({ personal_account_fen_max: fc.bigInt({ min: 0n, max: 5_000n }).map(String), visit_no: fc.stringMatching(/^[A-Za-z0-9]{1,10}$/) }, { requiredKeys: [] }),
    utility: fc.record({ customer_no: fc.stringMatching(/^[A-Za-z0-9]{1,10}$/), bill_id: fc.stringMatching(/^[A-Za-z0-9]{1,6}$/) }),
  }, { requiredKeys: ['qr_code', 'amount_fen', 'order_id'] });
  return mutate(valid, ['qr_code', 'amount_fen', 'order_id', 'terminal_id', 'medical', 'utility']);
}

async function check(res: { statusCode: number; body: string }, before: Record<string, number>): Promise<void> {
  expect(res.statusCode, res.body).toBeLessThan(500);
  if (res.statusCode >= 400) {
    errorBody(res as Parameters<typeof errorBody>[0]);
    expect(await writtenCounts(db.pool)).toEqual(before);
  }
}

describe('fuzzed requests', () => {
  it('QR payments: never 5xx, refusals write nothing', async () => {
    await fc.assert(fc.asyncProperty(paymentBody(), fc.nat({ max: 2 }), async (body, who) => {
      const before = await writtenCounts(db.pool);
      const r = await node.app.inject({ method: 'POST', url: '/v1/payments/qr', headers: bearer(tokens[who]), payload: body });
      await check(r, before);
    }), { numRuns: runs });
  });

  it('refunds: never 5xx, refusals write nothing', async () => {
    const pid = fc.oneof(fc.constantFrom(...paymentIds), fc.constantFrom(...paymentIds), fc.constantFrom('pay_000000000000000000000000', 'pay_', 'x'), fc.stringMatching(/^[a-z0-9_]{1,30}$/));
    const body = mutate(fc.record({ refund_id: fc.stringMatching(/^[A-Za-z0-9]{1,12}$/), amount_fen: fc.bigInt({ min: 1n, max: 1_000n }).map(String) }), ['refund_id', 'amount_fen']);
    await fc.assert(fc.asyncProperty(pid, body, fc.nat({ max: 2 }), async (id, body, who) => {
      const before = await writtenCounts(db.pool);
      const r = await node.app.inject({ method: 'POST', url: `/v1/payments/${encodeURIComponent(id)}/refunds`, headers: bearer(tokens[who]), payload: body });
      await check(r, before);
    }), { numRuns: runs });
  });

  it('purse loads: never 5xx, refusals write nothing', async () => {
    const cardNo = fc.oneof(fc.constantFrom(card(0), card(8), card(60), '0000000000000000'), fc.stringMatching(/^[0-9]{1,22}$/));
    const body = mutate(fc.record({ bank_reference: keyish, amount_fen: fenish }), ['bank_reference', 'amount_fen']);
    await fc.assert(fc.asyncProperty(cardNo, body, async (cn, body) => {
      const before = await writtenCounts(db.pool);
      const r = await node.app.inject({ method: 'POST', url: `/v1/cards/${cn}/purse-loads`, headers: bearer(bankToken), payload: body });
      await check(r, before);
    }), { numRuns: runs });
  });

  it('raw bodies that are not JSON objects: 4xx, nothing written', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ maxLength: 200 }), fc.constantFrom('/v1/payments/qr', `/v1/payments/${paymentIds[0]}/refunds`, `/v1/cards/${card(0)}/purse-loads`), async (raw, url) => {
      const before = await writtenCounts(db.pool);
      const token = url.includes('purse') ? bankToken : tokens[0];
      const r = await node.app.inject({ method: 'POST', url, headers: { ...bearer(token), 'content-type': 'application/json' }, payload: raw });
      await check(r, before);
    }), { numRuns: Math.ceil(runs / 2) });
  });

  it('the ledger verifies after all of it', async () => {
    const v = await verifyLedger(db.pool);
    expect(v.mismatches).toEqual([]);
    expect(v.negativeAccounts).toEqual([]);
    expect(v.ok).toBe(true);
  });
});
