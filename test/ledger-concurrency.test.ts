/**
 * Concurrency: many transactions posting to the same hot accounts in random account order must
 * all succeed (lock ordering and deadlock retry are the ledger's business, not the caller's)
 * with exact final balances; and concurrent spends from one no-negative purse never overdraw it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../adapters/postgres/db.ts';
import { DomainError } from '../engine/errors.ts';
import { Ledger, type EntryInput, type LineInput } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';

let db: TestDb;
beforeAll(async () => { db = await freshDatabase(24); });
afterAll(async () => { await db.drop(); });

const business_date = '2026-11-28';
const seed = Number(process.env.LEDGER_CONCURRENCY_SEED ?? Date.now() % 2 ** 31);

function mulberry32(a: number): () => number {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(xs: T[], rnd: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

async function expectVerifies(ledger: Ledger): Promise<void> {
  const v = await ledger.verify(db.pool);
  expect(v.mismatches).toEqual([]);
  expect(v.negativeAccounts).toEqual([]);
  expect(v.ok).toBe(true);
}

function codeOf(e: unknown): string {
  return e instanceof DomainError ? e.code : `non-domain error: ${(e as { code?: string }).code ?? ''} ${(e as Error).message}`;
}

describe('ledger under concurrency', () => {
  it('8 concurrent posters × 20 batches × 200 entries over 200 purses and 5 hot merchants: all succeed, balances exact', async () => {
    const posters = 8, batches = 20, per_batch = 200, purses = 200, merchants = 5;
    const initial = 1_000_000n;
    const card = (i: number) => `card:62171${String(i).padStart(14, '0')}:purse`;
    const merchant = (i: number) => `merchant:HOT${i}:payable`;
    const bank = 'bank:102100000001:clearing';
    const setup = new Ledger();

    // Pre-fund the purses (the merchants are opened by the concurrent posters themselves).
    const loads: EntryInput[] = Array.from({ length: purses }, (_, i) => ({
      idemKey: `fund-${i}`, kind: 'PURSE_LOAD', businessDate: business_date, lines: [{ debit: bank, credit: card(i), amountFen: initial }],
    }));
    await withTx(db.pool, (tx) => setup.postBatch(tx, loads));

    // Generate every batch up front (seeded), and the expected balances from them.
    const expected = new Map<string, bigint>();
    const credit = (code: string, v: bigint) => expected.set(code, (expected.get(code) ?? 0n) + v);
    for (let i = 0; i < purses; i++) credit(card(i), initial);
    const rnd = mulberry32(seed);
    const work: EntryInput[][][] = [];
    for (let p = 0; p < posters; p++) {
      const mine: EntryInput[][] = [];
      for (let b = 0; b < batches; b++) {
        const batch: EntryInput[] = [];
        for (let k = 0; k < per_batch; k++) {
          const c = card(Math.floor(rnd() * purses)), c2 = card(Math.floor(rnd() * purses));
          const m = merchant(Math.floor(rnd() * merchants)), m2 = merchant(Math.floor(rnd() * merchants));
          const amt = BigInt(1 + Math.floor(rnd() * 300));
          let lines: LineInput[];
          const shape = rnd();
          if (shape < 0.6) lines = [{ debit: c, credit: m, amountFen: amt }]; // purchase
          else if (shape < 0.75) lines = [{ debit: m, credit: c, amountFen: amt }]; // refund
          else if (shape < 0.85 && c !== c2) lines = [{ debit: c, credit: c2, amountFen: amt }]; // purse to purse
          else lines = shuffle([{ debit: c, credit: m, amountFen: amt }, { debit: m2, credit: c2, amountFen: amt / 2n + 1n }], rnd); // two legs, random order
          for (const l of lines) {
            // Purses are CREDIT-normal, merchants CREDIT-normal: balance = credits - debits.
            credit(l.credit, l.amountFen);
            credit(l.debit, -l.amountFen);
          }
          batch.push({ idemKey: `p${p}-b${b}-e${k}`, kind: 'PURSE_PURCHASE', businessDate: business_date, lines });
        }
        mine.push(batch);
      }
      work.push(mine);
    }
    // The workload can never overdraw a purse (each starts with far more than it can lose), so
    // every batch must succeed.
    for (let i = 0; i < purses; i++) expect(expected.get(card(i)) ?? 0n).toBeGreaterThan(0n);

    const t0 = Date.now();
    const errors: string[] = [];
    await Promise.all(work.map(async (mine) => {
      const ledger = new Ledger(); // as if each poster were its own process
      for (const batch of mine) {
        try {
          const res = await withTx(db.pool, (tx) => ledger.postBatch(tx, batch));
          expect(res.every((r) => !r.replayed)).toBe(true);
        } catch (e) {
          errors.push(codeOf(e));
        }
      }
    }));
    const seconds = (Date.now() - t0) / 1000;
    expect(errors, `seed ${seed}`).toEqual([]);

    const setupLedger = new Ledger();
    for (const [code, v] of expected) {
      expect((await setupLedger.account(db.pool, code))?.balanceFen, code).toBe(v);
    }
    expect((await setupLedger.account(db.pool, bank))?.balanceFen).toBe(initial * BigInt(purses));
    const n = await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ledger_entry WHERE idem_key LIKE 'p%-b%-e%'`);
    expect(n.rows[0].n).toBe(BigInt(posters * batches * per_batch));
    await expectVerifies(setupLedger);
    console.log(`hot accounts: ${posters * batches * per_batch} entries in ${seconds.toFixed(1)} s (seed ${seed})`);
  }, 60_000);

  it('concurrent spends from one no-negative purse: exactly floor(B / amount) succeed, the rest are INSUFFICIENT_FUNDS, never negative', async () => {
    const ledger = new Ledger();
    const purse = 'card:6217200000000000001:purse';
    const bank = 'bank:102100000002:clearing';
    const B = 10_000n, amount = 700n, attempts = 40;
    await withTx(db.pool, (tx) => ledger.postBatch(tx, [{ idemKey: 'nn-load', kind: 'PURSE_LOAD', businessDate: business_date, lines: [{ debit: bank, credit: purse, amountFen: B }] }]));
    // Open the merchants first, so every attempt's transaction does only the spend.
    const merchants = Array.from({ length: 4 }, (_, i) => `merchant:NN${i}:payable`);
    await withTx(db.pool, (tx) => ledger.accountIdsFor(tx, merchants));

    // Sample the purse's balance (committed state) throughout.
    let sampling = true;
    const samples: bigint[] = [];
    const sampler = (async () => {
      while (sampling) {
        const r = await db.pool.query<{ b: bigint }>('SELECT credits_posted_fen - debits_posted_fen AS b FROM ledger_account WHERE code = $1', [purse]);
        samples.push(r.rows[0].b);
        await new Promise((res) => setTimeout(res, 2));
      }
    })();

    // Each attempt is a batch: the spend from the shared purse plus an unrelated entry, so a
    // refusal must also take the unrelated entry with it.
    const results = await Promise.allSettled(Array.from({ length: attempts }, (_, i) => withTx(db.pool, (tx) => ledger.postBatch(tx, [
      { idemKey: `nn-other-${i}`, kind: 'ADJUSTMENT', businessDate: business_date, lines: [{ debit: bank, credit: merchants[(i + 1) % 4], amountFen: 1n }] },
      { idemKey: `nn-spend-${i}`, kind: 'PURSE_PURCHASE', businessDate: business_date, lines: [{ debit: purse, credit: merchants[i % 4], amountFen: amount }] },
    ]))));
    sampling = false;
    await sampler;

    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [codeOf(r.reason)] : []));
    expect(BigInt(ok) * amount).toBeLessThanOrEqual(B);
    // Every attempt sees the committed balance after waiting for the purse's lock, so all that
    // fit succeed: a ledger that refused too eagerly is as wrong as one that overdrew.
    expect(ok).toBe(Number(B / amount));
    expect(refused).toEqual(Array(attempts - ok).fill('INSUFFICIENT_FUNDS'));

    const final = await ledger.account(db.pool, purse);
    expect(final?.balanceFen).toBe(B - BigInt(ok) * amount);
    expect(samples.length).toBeGreaterThan(0);
    expect(samples.every((s) => s >= 0n)).toBe(true);
    // Refused batches left nothing: neither their spend nor their unrelated entry.
    const written = await db.pool.query<{ spends: bigint; others: bigint }>(
      `SELECT count(*) FILTER (WHERE idem_key LIKE 'nn-spend-%')::bigint AS spends, count(*) FILTER (WHERE idem_key LIKE 'nn-other-%')::bigint AS others FROM ledger_entry`);
    expect(written.rows[0]).toEqual({ spends: BigInt(ok), others: BigInt(ok) });
    await expectVerifies(ledger);
  }, 60_000);

  it('concurrent holds on one no-negative purse never reserve more than its balance', async () => {
    const ledger = new Ledger();
    const purse = 'card:6217300000000000001:purse';
    const merchant = 'merchant:HOLDS:payable';
    const bank = 'bank:102100000003:clearing';
    const B = 5_000n, amount = 450n, attempts = 30;
    await withTx(db.pool, (tx) => ledger.postBatch(tx, [{ idemKey: 'hh-load', kind: 'PURSE_LOAD', businessDate: business_date, lines: [{ debit: bank, credit: purse, amountFen: B }] }]));
    await withTx(db.pool, (tx) => ledger.accountIdsFor(tx, [merchant]));
    const results = await Promise.allSettled(Array.from({ length: attempts }, (_, i) => withTx(db.pool, (tx) => ledger.createHold(tx, {
      idemKey: `hh-${i}`, debit: purse, credit: merchant, amountFen: amount, kind: 'PURSE_PURCHASE', expiresAt: new Date(Date.now() + 3_600_000),
    }))));
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    expect(ok).toBe(Number(B / amount));
    expect(results.flatMap((r) => (r.status === 'rejected' ? [codeOf(r.reason)] : []))).toEqual(Array(attempts - ok).fill('INSUFFICIENT_FUNDS'));
    const a = await ledger.account(db.pool, purse);
    expect(a?.balanceFen).toBe(B);
    expect(a?.pendingDebitsFen).toBe(BigInt(ok) * amount);
    expect(a?.availableFen).toBe(B - BigInt(ok) * amount);
    expect(a?.availableFen).toBeGreaterThanOrEqual(0n);

    // Now post every successful hold concurrently, in full: all succeed, the purse ends at
    // B - ok × amount with nothing pending.
    const holdIds = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.holdId] : []));
    const posted = await Promise.allSettled(holdIds.map((id, i) => withTx(db.pool, (tx) => ledger.postHold(tx, id, amount, {
      idemKey: `hh-post-${i}`, businessDate: business_date, actor: 'test', now: new Date(),
    }))));
    expect(posted.filter((r) => r.status === 'rejected').map((r) => codeOf((r as PromiseRejectedResult).reason))).toEqual([]);
    const b = await ledger.account(db.pool, purse);
    expect(b).toMatchObject({ balanceFen: B - BigInt(ok) * amount, pendingDebitsFen: 0n, availableFen: B - BigInt(ok) * amount });
    expect((await ledger.account(db.pool, merchant))?.balanceFen).toBe(BigInt(ok) * amount);
    await expectVerifies(ledger);
  }, 60_000);
});
