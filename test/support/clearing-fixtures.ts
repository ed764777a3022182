/**
 * Clearing fixtures: banks, merchants with fee schedules, cards, an open cycle, and cycles of
 * random transactions posted to the ledger the way the writers post them (same kinds, accounts,
 * idempotency-key shapes and metadata), plus the pure model's view of the same transactions.
 */
import type { Db, Queryable } from '../../adapters/postgres/db.ts';
import { withTx } from '../../adapters/postgres/db.ts';
import { currentOpenCycle } from '../../adapters/postgres/cycles.ts';
import { feeFen, type FeeSchedule } from '../../engine/clearing/fees.ts';
import type { CycleEntry, NettingRefs } from '../../engine/clearing/netting.ts';
import { Ledger, type EntryInput } from '../../ledger/index.ts';
import { clearingSettings, type ClearingSettings } from '../../adapters/clearing/settings.ts';
import { testConfig } from './deps.ts';

export const banks = ['102100000011', '103100000022', '104100000033'] as const;
export const idle_bank = '105100000044';
export const merchants = [
  { id: 'MT1', kind: 'TRANSIT', bank: banks[0], schedule: { rate: '0.006', minFen: 0n, maxFen: 500n } },
  { id: 'MS1', kind: 'RETAIL', bank: banks[1], schedule: { rate: '0.0125', minFen: 1n, maxFen: 100000n } },
  { id: 'MH1', kind: 'MEDICAL', bank: banks[2], schedule: { rate: '0.0035', minFen: 0n, maxFen: 2000n } },
  { id: 'MU1', kind: 'UTILITY', bank: banks[0], schedule: { rate: '0.005', minFen: 5n, maxFen: 300n } },
] as const;
export const cards = Array.from({ length: 12 }, (_, i) => ({ cardNo: `62170000${String(i).padStart(8, '0')}`, bank: banks[i % banks.length] }));
export const test_date = '2026-11-28';
/** 01:00 Shanghai on the day after test_date: past the default 23:00 cutoff. */
export const after_cutoff = new Date('2026-11-28T17:00:00Z');
export const before_cutoff = new Date('2026-11-28T02:00:00Z');

export function clearingTestSettings(dataDir: string): ClearingSettings {
  return clearingSettings(testConfig({ dataDir }), {});
}

export async function seedReference(db: Queryable): Promise<void> {
  await db.query(`INSERT INTO bank (code, name) SELECT c, 'Bank ' || c FROM unnest($1::text[]) c ON CONFLICT DO NOTHING`, [[...banks, idle_bank]]);
  for (const m of merchants) {
    await db.query(`INSERT INTO merchant (id, name, kind, is_operator, acquiring_bank, settlement_account) VALUES ($1, $1, $2, $3, $4, '6222000000001') ON CONFLICT DO NOTHING`,
      [m.id, m.kind, m.kind === 'TRANSIT', m.bank]);
    await db.query(`INSERT INTO merchant_fee_schedule (merchant_id, effective_from, rate, min_fen, max_fen, created_by) VALUES ($1, '2026-01-01', $2, $3, $4, 'test') ON CONFLICT DO NOTHING`,
      [m.id, m.schedule.rate, m.schedule.minFen, m.schedule.maxFen]);
    // A later schedule that must not apply to test_date.
    await db.query(`INSERT INTO merchant_fee_schedule (merchant_id, effective_from, rate, min_fen, max_fen, created_by) VALUES ($1, '2027-01-01', 0.5, 0, 100000000, 'test') ON CONFLICT DO NOTHING`, [m.id]);
  }
  await db.query(`INSERT INTO card (card_no, issuing_bank, form, status, status_since) SELECT c, b, 'PHYSICAL', 'ACTIVE', now() FROM unnest($1::text[], $2::text[]) AS x(c, b) ON CONFLICT DO NOTHING`,
    [cards.map((c) => c.cardNo), cards.map((c) => c.bank)]);
}

export async function openCycle(db: Db, now: Date): Promise<{ id: string; businessDate: string }> {
  return withTx(db, (tx) => currentOpenCycle(tx, now, 23 * 60));
}

export const refs: NettingRefs = {
  merchantBank: (id) => merchants.find((m) => m.id === id)!.bank,
  merchantKind: (id) => merchants.find((m) => m.id === id)!.kind,
  fee: (id, amount) => feeFen(amount, merchants.find((m) => m.id === id)!.schedule as FeeSchedule),
};

/** A small deterministic PRNG so a failing seed reproduces. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

export type TxnSpec =
  | { t: 'load'; card: number; amount: bigint }
  | { t: 'tap'; card: number; amount: bigint; counter: number }
  | { t: 'qr'; card: number; merchant: number; medical: bigint; selfPay: bigint }
  | { t: 'refund'; ofQr: number; amount: bigint }
  | { t: 'cancel'; card: number; amount: bigint };

/** Random transactions that never overdraw a purse or medical account. */
export function randomTxns(seed: number, n: number): TxnSpec[] {
  const r = rng(seed);
  const out: TxnSpec[] = [];
  const purse = new Map<number, bigint>();
  const qrs: number[] = [];
  let counter = 1;
  for (let i = 0; i < cards.length; i++) { out.push({ t: 'load', card: i, amount: 100_000n }); purse.set(i, 100_000n); }
  for (let i = 0; i < n; i++) {
    const card = Math.floor(r() * cards.length);
    const x = r();
    const amount = BigInt(1 + Math.floor(r() * 5_000));
    if (x < 0.15) { out.push({ t: 'load', card, amount }); purse.set(card, purse.get(card)! + amount); }
    else if (x < 0.55) {
      if (purse.get(card)! >= amount) { out.push({ t: 'tap', card, amount, counter: counter++ }); purse.set(card, purse.get(card)! - amount); }
    } else if (x < 0.85) {
      const merchant = 1 + Math.floor(r() * 3);
      const medical = merchants[merchant].kind === 'MEDICAL' ? BigInt(Math.floor(r() * Number(amount))) : 0n;
      qrs.push(out.length);
      out.push({ t: 'qr', card, merchant, medical, selfPay: amount - medical });
    } else if (x < 0.95 && qrs.length > 0) {
      const q = out[qrs[Math.floor(r() * qrs.length)]] as Extract<TxnSpec, { t: 'qr' }>;
      if (q.medical === 0n && q.selfPay > 1n) out.push({ t: 'refund', ofQr: out.indexOf(q), amount: q.selfPay / 2n });
    } else if (purse.get(card)! > 0n && x >= 0.97) {
      const amountC = purse.get(card)! / 3n;
      if (amountC > 0n) { out.push({ t: 'cancel', card, amount: amountC }); purse.set(card, purse.get(card)! - amountC); }
    }
  }
  return out;
}

/** The ledger entries for the transactions, shaped like the writers'. Medical accounts are funded first. */
export function entriesOf(txns: TxnSpec[], date: string, tag: string): EntryInput[] {
  const out: EntryInput[] = [];
  const purse = (i: number) => `card:${cards[i].cardNo}:purse`;
  const medical = (i: number) => `card:${cards[i].cardNo}:medical`;
  const bankOf = (i: number) => `bank:${cards[i].bank}:clearing`;
  txns.forEach((x, i) => {
    const id = `${tag}${i}`;
    if (x.t === 'load') {
      out.push({ idemKey: `load:pld_${id}`, kind: 'PURSE_LOAD', businessDate: date, metadata: { load_id: `pld_${id}`, bank_reference: id },
        lines: [{ debit: bankOf(x.card), credit: purse(x.card), amountFen: x.amount }] });
    } else if (x.t === 'tap') {
      out.push({ idemKey: `tap:${cards[x.card].cardNo}:${x.counter}:6`, kind: 'TRANSIT_TAP', businessDate: date,
        lines: [{ debit: purse(x.card), credit: 'merchant:MT1:payable', amountFen: x.amount }] });
    } else if (x.t === 'qr') {
      const m = merchants[x.merchant].id;
      const lines = [];
      if (x.medical > 0n) lines.push({ debit: medical(x.card), credit: `merchant:${m}:payable`, amountFen: x.medical });
      if (x.selfPay > 0n) lines.push({ debit: bankOf(x.card), credit: `merchant:${m}:payable`, amountFen: x.selfPay });
      out.push({ idemKey: `pay:pay_${id}`, kind: 'QR_PAYMENT', businessDate: date, metadata: { payment_id: `pay_${id}`, merchant_id: m, card_no: cards[x.card].cardNo }, lines });
    } else if (x.t === 'refund') {
      const q = txns[x.ofQr] as Extract<TxnSpec, { t: 'qr' }>;
      const m = merchants[q.merchant].id;
      out.push({ idemKey: `refund:rfd_${id}`, kind: 'REFUND', businessDate: date,
        metadata: { payment_id: `pay_${tag}${x.ofQr}`, refund: `rfd_${id}`, card_no: cards[q.card].cardNo },
        lines: [{ debit: `merchant:${m}:payable`, credit: bankOf(q.card), amountFen: x.amount }] });
    } else {
      out.push({ idemKey: `card-cancel-refund:${cards[x.card].cardNo}:purse:${id}`, kind: 'CARD_CANCEL_REFUND', businessDate: date,
        lines: [{ debit: purse(x.card), credit: bankOf(x.card), amountFen: x.amount }] });
    }
  });
  return out;
}

/** Funds every card's medical account (a centre-internal entry, not a bank transaction). */
export function medicalFunding(date: string, tag: string): EntryInput[] {
  return cards.map((c, i) => ({ idemKey: `medfund:${tag}${i}`, kind: 'MEDICAL_FUNDING', businessDate: date,
    lines: [{ debit: 'centre:suspense', credit: `card:${c.cardNo}:medical`, amountFen: 10_000_000n }] }));
}

/** Posts entries in order; returns the model's entries (with their ledger ids). */
export async function postAll(db: Db, ledger: Ledger, entries: EntryInput[]): Promise<CycleEntry[]> {
  const out: CycleEntry[] = [];
  await withTx(db, async (tx) => {
    for (let i = 0; i < entries.length; i += 5_000) {
      const chunk = entries.slice(i, i + 5_000);
      const res = await ledger.postBatch(tx, chunk);
      res.forEach((r, j) => out.push({ entryId: r.entryId, kind: chunk[j].kind, postings: chunk[j].lines }));
    }
  });
  return out;
}
