/**
 * The simulated bank, a property over real Postgres: for random sequences of authorizations
 * (sent together, so they are decided in batches), repeated authorization ids, reversals of
 * approvals and reversals that arrive before their authorization, every answer equals a plain
 * model of the bank (per card and day: approve while the day's approved and not reversed total
 * stays within the daily limit; a card it does not hold is an unknown account; an authorization
 * reversed before it arrived is declined), and the bank's per-card day totals equal the sum of its
 * recorded approvals that were not reversed. Batches come both with all cards different (decided
 * by one set-based statement) and with a card or an authorization id repeated (decided in turn).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedBank, sim_bank_decline, type BankAuthResult } from '../adapters/payments/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { seedReference, t0_ms } from './support/payments-fixtures.ts';

const issuer = '102100000001';
const other = '103100000002';
const limit_fen = 10_000n;
const cards = ['6217300000000000001', '6217300000000000002', '6217300000000000003'];
const foreign = '6217300000000000009';
const unknown = '6217300000000000099';
const day_ms = 86_400_000;

let db: TestDb;

beforeAll(async () => {
  db = await freshDatabase(8);
  await seedReference(db.pool, {
    banks: [issuer, other],
    merchants: [{ id: 'SHOP1', kind: 'RETAIL', bank: issuer }],
    cards: [...cards.map((cardNo) => ({ cardNo, bank: issuer, dailyLimitFen: limit_fen })), { cardNo: foreign, bank: other }],
  });
});

afterAll(async () => {
  await db?.drop();
});

type Op =
  | { kind: 'authorize'; card: number; amount: bigint; repeat: boolean }
  | { kind: 'reverse-earlier'; pick: number }
  | { kind: 'reverse-ahead' };

// Amounts that meet the limit exactly (4 × 2,500, 2 × 5,000, 9,999 + 1) are drawn often: the
// boundary is where a wrong comparison shows.
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('authorize' as const), card: fc.integer({ min: 0, max: 4 }), amount: fc.oneof(fc.bigInt({ min: 1n, max: 6_000n }), fc.constantFrom(1n, 2_500n, 5_000n, 9_999n, limit_fen, limit_fen + 1n)), repeat: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('reverse-earlier' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reverse-ahead' as const) }) },
);

describe('simulated bank', () => {
  it('answers every authorization as the model does, and keeps its day totals equal to its approvals', async () => {
    let run = 0;
    await fc.assert(fc.asyncProperty(fc.array(fc.array(op, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 5 }), async (groups) => {
      run++;
      // Each run is a new day at the bank, so runs do not share limits.
      const nowMs = t0_ms + run * day_ms;
      const bank = new SimulatedBank(db.pool, { now: () => new Date(nowMs), latencyMs: 0 });
      const model = { today: new Map<string, bigint>(), decided: new Map<string, { approved: boolean; declineCode?: string; cardNo: string; amount: bigint }>(), reversed: new Set<string>() };
      const issued: string[] = [];
      let seq = 0;
      const signal = new AbortController().signal;

      const modelDecide = (authId: string, cardNo: string, amount: bigint) => {
        const earlier = model.decided.get(authId);
        if (earlier) return earlier;
        let d: { approved: boolean; declineCode?: string; cardNo: string; amount: bigint };
        if (model.reversed.has(authId)) d = { approved: false, declineCode: sim_bank_decline.reversed, cardNo, amount };
        else if (!cards.includes(cardNo)) d = { approved: false, declineCode: sim_bank_decline.unknown_account, cardNo, amount };
        else {
          const today = model.today.get(cardNo) ?? 0n;
          if (today + amount > limit_fen) d = { approved: false, declineCode: sim_bank_decline.daily_limit_exceeded, cardNo, amount };
          else {
            model.today.set(cardNo, today + amount);
            d = { approved: true, cardNo, amount };
          }
        }
        model.decided.set(authId, d);
        return d;
      };
      const modelReverse = (authId: string) => {
        if (model.reversed.has(authId)) return;
        model.reversed.add(authId);
        const d = model.decided.get(authId);
        if (d?.approved) model.today.set(d.cardNo, (model.today.get(d.cardNo) ?? 0n) - d.amount);
      };

      for (const group of groups) {
        // Authorizations of a group are sent together (decided in batches, in this order);
        // reversals follow, one by one.
        const sent: { authId: string; cardNo: string; amount: bigint; answer: Promise<BankAuthResult> }[] = [];
        const reversals: string[] = [];
        for (const o of group) {
          if (o.kind === 'authorize') {
            const cardNo = o.card < 3 ? cards[o.card] : o.card === 3 ? foreign : unknown;
            const authId = o.repeat && issued.length > 0 ? issued[issued.length - 1] : `auth_${String(run).padStart(8, '0')}${String(++seq).padStart(16, '0')}`;
            if (!issued.includes(authId)) issued.push(authId);
            // A repeated id repeats its first request (the bank's idempotency key).
            const first = sent.find((s) => s.authId === authId) ?? null;
            const req = { authId, bankCode: issuer, cardNo: first?.cardNo ?? cardNo, merchantId: 'SHOP1', amountFen: first?.amount ?? o.amount };
            sent.push({ authId, cardNo: req.cardNo, amount: req.amountFen, answer: bank.authorize(req, signal) });
          } else if (o.kind === 'reverse-earlier' && issued.length > 0) {
            reversals.push(issued[o.pick % issued.length]);
          } else if (o.kind === 'reverse-ahead') {
            const authId = `auth_${String(run).padStart(8, '0')}${String(++seq).padStart(16, '0')}`;
            await bank.reverse({ authId, bankCode: issuer, cardNo: cards[0], amountFen: 1n }, signal);
            modelReverse(authId);
            issued.push(authId);
          }
        }
        for (const s of sent) {
          const got = await s.answer;
          const want = modelDecide(s.authId, s.cardNo, s.amount);
          expect({ approved: got.approved, declineCode: got.declineCode }).toEqual({ approved: want.approved, declineCode: want.declineCode });
          expect(got.approved ? /^[0-9]{6}$/.test(got.authCode ?? '') : got.authCode === null).toBe(true);
        }
        for (const authId of reversals) {
          const d = model.decided.get(authId);
          await bank.reverse({ authId, bankCode: issuer, cardNo: d?.cardNo ?? cards[0], amountFen: d?.amount ?? 1n }, signal);
          modelReverse(authId);
        }
      }
      const totals = await db.pool.query<{ card_no: string; approved_fen: string }>(
        `SELECT card_no, approved_fen::text FROM sim_bank_card_day WHERE local_date = ($1::timestamptz AT TIME ZONE 'Asia/Shanghai')::date`, [new Date(nowMs)]);
      const stored = new Map(totals.rows.map((r) => [r.card_no, BigInt(r.approved_fen)]));
      for (const c of cards) expect(stored.get(c) ?? 0n).toBe(model.today.get(c) ?? 0n);
      const recount = await db.pool.query<{ card_no: string; sum: string }>(`
        SELECT a.card_no, sum(a.amount_fen)::text AS sum FROM sim_bank_authorization a
        WHERE a.approved AND a.local_date = ($1::timestamptz AT TIME ZONE 'Asia/Shanghai')::date
          AND NOT EXISTS (SELECT 1 FROM sim_bank_reversal v WHERE v.auth_id = a.auth_id)
        GROUP BY a.card_no`, [new Date(nowMs)]);
      for (const r of recount.rows) expect(stored.get(r.card_no)).toBe(BigInt(r.sum));
    }), { numRuns: 30 });
  });
});
