/**
 * A batch of QR payments is posted in one round trip (one statement, its own transaction: a
 * claim that must win whole, then the ledger's entries) once the node knows the open cycle and
 * every account's id; whatever the database refuses there is posted the long way, which decides
 * each payment. Over real Postgres: the fast way answers exactly what it stored; a card reported
 * lost, a medical account drained and a cycle closed between deciding and posting each fall back
 * and end correctly, with the other payments of the batch posted; the ledger verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BankAuthorizer } from '../adapters/payments/index.ts';
import { SimulatedBank } from '../adapters/payments/index.ts';
import { withTx } from '../adapters/postgres/db.ts';
import type { EntryInput, Queryable } from '../ledger/index.ts';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { errorBody } from './support/http.ts';
import {
  balanceFen, fundMedical, merchantToken, pay, paymentsApp, pinnedClock, qrFor, seedReference, setCardStatus, verifyLedger,
  type Clock, type PaymentsApp,
} from './support/payments-fixtures.ts';

const issuer = '102100000001';
const acquirer = '104100000003';
const card = (i: number) => `62172${String(i).padStart(14, '0')}`;

/** A ledger that counts how each batch of payments went: in one round trip, or the long way. */
class CountingLedger extends Ledger {
  /** Batches sent in one round trip: committed, or refused by the database. */
  attempts = 0;
  oneRoundTrip = 0;
  oneRoundTripEntries = 0;
  longWayPaymentEntries = 0;
  override newEntriesArguments(entries: readonly EntryInput[]): unknown[] | null {
    const args = super.newEntriesArguments(entries);
    if (args !== null) this.attempts++;
    return args;
  }
  get refused(): number {
    return this.attempts - this.oneRoundTrip;
  }
  override newEntriesCommitted(entries: readonly EntryInput[], seconds: number): void {
    this.oneRoundTrip++;
    this.oneRoundTripEntries += entries.length;
    super.newEntriesCommitted(entries, seconds);
  }
  override async postBatch(q: Queryable, entries: readonly EntryInput[]) {
    this.longWayPaymentEntries += entries.filter((e) => e.kind === 'QR_PAYMENT').length;
    return super.postBatch(q, entries);
  }
}

let db: TestDb;
let clock: Clock;
let shop: string;
let hospital: string;
let orderNo = 0;
const order = () => `rt-${++orderNo}`;

beforeAll(async () => {
  db = await freshDatabase(30);
  clock = pinnedClock();
  await seedReference(db.pool, {
    banks: [issuer, acquirer],
    merchants: [{ id: 'SHOP1', kind: 'RETAIL', bank: acquirer }, { id: 'HOSP1', kind: 'MEDICAL', bank: acquirer }],
    cards: Array.from({ length: 60 }, (_, i) => ({ cardNo: card(i), bank: issuer })),
  });
  await fundMedical(db.pool, issuer, Array.from({ length: 60 }, (_, i) => ({ cardNo: card(i), amountFen: 1_000n })));
  shop = await merchantToken(db.pool, 'SHOP1');
  hospital = await merchantToken(db.pool, 'HOSP1');
});

afterAll(async () => {
  await db?.drop();
});

async function node(bank?: BankAuthorizer): Promise<PaymentsApp & { ledger: CountingLedger }> {
  const ledger = new CountingLedger();
  const n = await paymentsApp(db.pool, clock, { ledger, ...(bank ? { bankAuthorizer: bank } : {}) } as Parameters<typeof paymentsApp>[2]);
  return { ...n, ledger };
}

/**
 * The simulated bank, which after approving `cardNo`'s first authorization runs `meanwhile`:
 * something that changes the facts between deciding a payment and posting it.
 */
function bankThatMeanwhile(cardNo: string, meanwhile: () => Promise<void>): BankAuthorizer {
  const inner = new SimulatedBank(db.pool, { now: clock.now, latencyMs: 0 });
  let done = false;
  return {
    async authorize(req, signal) {
      const res = await inner.authorize(req, signal);
      if (req.cardNo === cardNo && !done) {
        done = true;
        await meanwhile();
      }
      return res;
    },
    reverse: (req, signal) => inner.reverse(req, signal),
  };
}

describe('posting a batch in one round trip', () => {
  it('once the cycle and accounts are known, concurrent payments post in one round trip and answer what was stored', async () => {
    const n = await node();
    try {
      // The first payments of each merchant go the long way: the node learns the open cycle and
      // the accounts' ids (an account opened by a transaction is remembered once it committed, so
      // the second payment of a new merchant learns its payable account).
      for (const [token, c] of [[shop, card(0)], [hospital, card(13)], [shop, card(14)], [hospital, card(15)]] as const) {
        const first = await pay(n.app, token, { qr_code: qrFor(n.deps, c, clock.seconds()), amount_fen: '100', order_id: order() });
        expect(first.statusCode, first.body).toBe(201);
      }
      expect(n.ledger.oneRoundTrip).toBe(0);
      expect(n.ledger.longWayPaymentEntries).toBe(4);

      const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => pay(n.app, i % 3 === 0 ? hospital : shop, {
        qr_code: qrFor(n.deps, card(1 + i), clock.seconds()), amount_fen: String(300 + i), order_id: order(),
        ...(i % 3 === 0 ? { medical: { visit_no: `V${i}` } } : {}),
      })));
      for (const r of rs) expect(r.statusCode, r.body).toBe(201);
      expect(n.ledger.longWayPaymentEntries).toBe(4);
      expect(n.ledger.oneRoundTripEntries).toBe(12);
      expect(n.ledger.oneRoundTrip).toBeGreaterThanOrEqual(1);
      expect(n.ledger.oneRoundTrip).toBeLessThan(12);
      expect(n.ledger.refused).toBe(0);

      // Each answer is the row the database holds, and its entry moved the money as answered.
      for (const r of rs) {
        const answered = r.json() as Record<string, unknown>;
        const stored = await n.app.inject({ method: 'GET', url: `/v1/payments/${answered.id as string}`, headers: { authorization: `Bearer ${answered.merchant_id === 'HOSP1' ? hospital : shop}` } });
        expect(stored.statusCode, stored.body).toBe(200);
        expect(stored.json()).toEqual({ ...answered, refunded_fen: '0', refunds: [] });
      }
      for (let i = 0; i < rs.length; i += 3) {
        const m = rs[i].json() as { medical_fen: string };
        expect(m.medical_fen).toBe(String(300 + i));
        expect(await balanceFen(db.pool, `card:${card(1 + i)}:medical`)).toBe(1_000n - BigInt(300 + i));
      }
      expect((await verifyLedger(db.pool)).ok).toBe(true);
    } finally {
      await n.app.close();
    }
  });

  it('a card reported lost between deciding and posting: that payment is refused, the rest of its batch is posted', async () => {
    const victim = card(30);
    const lossDuringAuth = bankThatMeanwhile(victim, () => setCardStatus(db.pool, victim, 'LOST_REPORTED', clock.now()));
    const n = await node(lossDuringAuth);
    try {
      const warm = await pay(n.app, shop, { qr_code: qrFor(n.deps, card(31), clock.seconds()), amount_fen: '100', order_id: order() });
      expect(warm.statusCode, warm.body).toBe(201);
      const rs = await Promise.all([victim, card(32), card(33), card(34)].map((c) =>
        pay(n.app, shop, { qr_code: qrFor(n.deps, c, clock.seconds()), amount_fen: '250', order_id: order() })));
      expect(rs[0].statusCode, rs[0].body).toBe(422);
      expect(errorBody(rs[0]).code).toBe('CARD_HOTLISTED');
      for (const r of rs.slice(1)) expect(r.statusCode, r.body).toBe(201);
      // Its batch was sent in one round trip and refused whole, then posted the long way.
      expect(n.ledger.refused).toBeGreaterThanOrEqual(1);
      const victimPayments = await db.pool.query(`SELECT 1 FROM payment WHERE card_no = $1`, [victim]);
      expect(victimPayments.rows).toHaveLength(0);
      // The other three were posted once each, whichever way their batch went.
      const posted = await db.pool.query(`SELECT count(*)::int AS n FROM payment WHERE card_no = ANY ($1)`, [[card(32), card(33), card(34)]]);
      expect(posted.rows[0].n).toBe(3);
      expect((await verifyLedger(db.pool)).ok).toBe(true);
    } finally {
      await n.app.close();
    }
  });

  it('a medical account drained between deciding and posting: the payment is split again and posted', async () => {
    const patient = card(40);
    // Another institution's draw on the account, committed after the payment read it.
    const drainDuringAuth = bankThatMeanwhile(patient, () => withTx(db.pool, async (tx) => {
      await new Ledger().postBatch(tx, [{ idemKey: `drain:${patient}`, kind: 'MEDICAL_DRAW', businessDate: '2026-11-28',
        lines: [{ debit: `card:${patient}:medical`, credit: `bank:${issuer}:clearing`, amountFen: 900n }] }]);
    }));
    const n = await node(drainDuringAuth);
    try {
      const warm = await pay(n.app, hospital, { qr_code: qrFor(n.deps, card(41), clock.seconds()), amount_fen: '1500', order_id: order(), medical: { visit_no: 'W' } });
      expect(warm.statusCode, warm.body).toBe(201);
      const r = await pay(n.app, hospital, { qr_code: qrFor(n.deps, patient, clock.seconds()), amount_fen: '1500', order_id: order(), medical: { visit_no: 'V' } });
      expect(r.statusCode, r.body).toBe(201);
      const p = r.json() as { medical_fen: string; self_pay_fen: string };
      // Decided as 1,000 medical + 500 self-pay; the 900 drawn meanwhile leaves 100, so it is
      // decided again as 100 medical + 1,400 self-pay (the first authorization is reversed).
      expect(p).toMatchObject({ medical_fen: '100', self_pay_fen: '1400' });
      expect(n.ledger.refused).toBe(1);
      expect(await balanceFen(db.pool, `card:${patient}:medical`)).toBe(0n);
      expect((await verifyLedger(db.pool)).ok).toBe(true);
    } finally {
      await n.app.close();
    }
  });

  it('a cycle closed between two batches: the next batch lands in the new cycle, the long way, and the node learns it', async () => {
    const n = await node();
    try {
      const before = await pay(n.app, shop, { qr_code: qrFor(n.deps, card(50), clock.seconds()), amount_fen: '100', order_id: order() });
      expect(before.statusCode, before.body).toBe(201);
      const oldCycle = (before.json() as { cycle_id: string }).cycle_id;
      // What clearing's cut does to the cycle table: the open cycle closes, the next day's opens.
      const opened = await db.pool.query<{ id: string }>(`
        WITH closed AS (UPDATE clearing_cycle SET state = 'CLOSED', closed_at = now() WHERE id = $1 RETURNING business_date)
        INSERT INTO clearing_cycle (id, business_date, state, opened_at)
        SELECT 'CYC' || to_char(business_date + 1, 'YYYYMMDD'), business_date + 1, 'OPEN', now() FROM closed
        RETURNING id`, [oldCycle]);
      const newCycle = opened.rows[0].id;
      const longWayBefore = n.ledger.longWayPaymentEntries;
      const after = await pay(n.app, shop, { qr_code: qrFor(n.deps, card(51), clock.seconds()), amount_fen: '100', order_id: order() });
      expect(after.statusCode, after.body).toBe(201);
      expect((after.json() as { cycle_id: string }).cycle_id).toBe(newCycle);
      expect(n.ledger.longWayPaymentEntries).toBe(longWayBefore + 1);
      expect(n.ledger.refused).toBe(1);
      const trips = n.ledger.oneRoundTrip;
      const next = await pay(n.app, shop, { qr_code: qrFor(n.deps, card(52), clock.seconds()), amount_fen: '100', order_id: order() });
      expect(next.statusCode, next.body).toBe(201);
      expect((next.json() as { cycle_id: string }).cycle_id).toBe(newCycle);
      expect(n.ledger.oneRoundTrip).toBe(trips + 1);
    } finally {
      await n.app.close();
    }
  });
});
