/**
 * Netting: from the ledger entries of a cycle to the lines each bank's package lists, the fees
 * and sweeps per merchant, and each bank's net position. Pure (no I/O, no clock).
 *
 * The clearing run computes the same thing set-based in SQL over millions of entries
 * (adapters/clearing/plans.ts); this model is the specification it is tested against, and
 * `checkZeroSum` is the invariant both must satisfy: what the banks receive net equals what the
 * centre's own accounts (fees, purses, medical accounts, programme funds, suspense) give up.
 *
 * Rules, per ledger entry:
 * - a net movement on `bank:{b}:clearing` is an ISSUER line of bank b: credited → RECEIVE (the
 *   centre owes the bank, e.g. a cancellation refund or a disbursement to a bank account),
 *   debited → PAY (a load, a self-pay part of a QR payment);
 * - a net movement on `merchant:{m}:payable` is an ACQUIRER line of m's acquiring bank: credited
 *   → RECEIVE, priced with m's fee; debited (a refund) → PAY, no fee;
 * - per merchant: fee = Σ fees, sweep = Σ RECEIVE − Σ PAY − fee moves from the payable to the
 *   acquiring bank's clearing account, leaving the payable where it was before the cycle.
 */
import type { DetailKindName } from './kinds.ts';
import { detailKindOf } from './kinds.ts';

export type Side = 'ISSUER' | 'ACQUIRER';
export type Direction = 'PAY' | 'RECEIVE';

export interface Posting {
  readonly debit: string;
  readonly credit: string;
  readonly amountFen: bigint;
}

export interface CycleEntry {
  readonly entryId: bigint;
  readonly kind: string;
  readonly postings: readonly Posting[];
}

export interface NettingRefs {
  /** Acquiring bank of a merchant. */
  merchantBank(merchantId: string): string;
  merchantKind(merchantId: string): string;
  /** Fee in fen for one transaction of `amountFen` credited to the merchant. */
  fee(merchantId: string, amountFen: bigint): bigint;
}

export interface ClearingLine {
  readonly entryId: bigint;
  readonly bankCode: string;
  readonly side: Side;
  readonly kind: DetailKindName;
  readonly merchantId: string;
  readonly amountFen: bigint;
  readonly feeFen: bigint;
  readonly direction: Direction;
}

export interface MerchantSettlement {
  readonly merchantId: string;
  readonly bankCode: string;
  readonly feeFen: bigint;
  /** Positive: payable → bank clearing; negative: the other way (refunds exceeded sales). */
  readonly sweepFen: bigint;
}

export interface BankPosition {
  readonly bankCode: string;
  readonly lineCount: number;
  readonly payFen: bigint;
  readonly receiveFen: bigint;
  readonly feeFen: bigint;
  readonly netFen: bigint;
}

export interface Netting {
  readonly lines: ClearingLine[];
  readonly merchants: MerchantSettlement[];
  readonly positions: Map<string, BankPosition>;
  /** Σ (credits − debits) the cycle left on the centre's own accounts, fees included. */
  readonly centreNetFen: bigint;
}

const bank_clearing = /^bank:([0-9]{12}):clearing$/;
const merchant_payable = /^merchant:([A-Za-z0-9_-]{1,64}):payable$/;

/** The net fen of a line as detail.csv writes it. */
export function lineNetFen(line: { side: Side; amountFen: bigint; feeFen: bigint }): bigint {
  return line.side === 'ACQUIRER' ? line.amountFen - line.feeFen : line.amountFen;
}

/** Σ RECEIVE net − Σ PAY net. */
export function netOfLines(lines: Iterable<{ side: Side; amountFen: bigint; feeFen: bigint; direction: Direction }>): bigint {
  let net = 0n;
  for (const l of lines) net += l.direction === 'RECEIVE' ? lineNetFen(l) : -lineNetFen(l);
  return net;
}

export function netCycle(entries: readonly CycleEntry[], refs: NettingRefs, banks: readonly string[] = []): Netting {
  const lines: ClearingLine[] = [];
  let centreNetFen = 0n;
  for (const e of entries) {
    const bankDelta = new Map<string, bigint>();
    const merchantDelta = new Map<string, bigint>();
    for (const p of e.postings) {
      for (const [code, delta] of [[p.debit, -p.amountFen], [p.credit, p.amountFen]] as const) {
        const b = bank_clearing.exec(code);
        const m = b ? null : merchant_payable.exec(code);
        if (b) bankDelta.set(b[1], (bankDelta.get(b[1]) ?? 0n) + delta);
        else if (m) merchantDelta.set(m[1], (merchantDelta.get(m[1]) ?? 0n) + delta);
        else centreNetFen += delta;
      }
    }
    // A QR payment's issuer line is named after its merchant's kind too (medical, utility).
    const firstMerchant = [...merchantDelta.keys()][0];
    const issuerKind = detailKindOf(e.kind, firstMerchant === undefined ? null : refs.merchantKind(firstMerchant));
    for (const [bankCode, delta] of bankDelta) {
      if (delta === 0n) continue;
      lines.push({
        entryId: e.entryId, bankCode, side: 'ISSUER', kind: issuerKind, merchantId: '',
        amountFen: delta < 0n ? -delta : delta, feeFen: 0n, direction: delta > 0n ? 'RECEIVE' : 'PAY',
      });
    }
    for (const [merchantId, delta] of merchantDelta) {
      if (delta === 0n) continue;
      lines.push({
        entryId: e.entryId, bankCode: refs.merchantBank(merchantId), side: 'ACQUIRER',
        kind: detailKindOf(e.kind, refs.merchantKind(merchantId)), merchantId,
        amountFen: delta < 0n ? -delta : delta, feeFen: delta > 0n ? refs.fee(merchantId, delta) : 0n,
        direction: delta > 0n ? 'RECEIVE' : 'PAY',
      });
    }
  }
  const perMerchant = new Map<string, { bankCode: string; feeFen: bigint; sweepFen: bigint }>();
  for (const l of lines) {
    if (l.side !== 'ACQUIRER') continue;
    const s = perMerchant.get(l.merchantId) ?? { bankCode: l.bankCode, feeFen: 0n, sweepFen: 0n };
    s.feeFen += l.feeFen;
    s.sweepFen += l.direction === 'RECEIVE' ? l.amountFen - l.feeFen : -l.amountFen;
    perMerchant.set(l.merchantId, s);
  }
  const merchants = [...perMerchant].map(([merchantId, s]) => ({ merchantId, ...s }));
  for (const m of merchants) centreNetFen += m.feeFen;
  const positions = positionsOf(lines, banks);
  return { lines, merchants, positions, centreNetFen };
}

/** Per-bank totals of lines; every bank in `banks` gets a position, zero when it had no lines. */
export function positionsOf(lines: Iterable<ClearingLine>, banks: readonly string[] = []): Map<string, BankPosition> {
  const acc = new Map<string, { lineCount: number; payFen: bigint; receiveFen: bigint; feeFen: bigint }>();
  for (const b of banks) acc.set(b, { lineCount: 0, payFen: 0n, receiveFen: 0n, feeFen: 0n });
  for (const l of lines) {
    const a = acc.get(l.bankCode) ?? { lineCount: 0, payFen: 0n, receiveFen: 0n, feeFen: 0n };
    a.lineCount += 1;
    a.feeFen += l.feeFen;
    if (l.direction === 'RECEIVE') a.receiveFen += lineNetFen(l);
    else a.payFen += lineNetFen(l);
    acc.set(l.bankCode, a);
  }
  const out = new Map<string, BankPosition>();
  for (const [bankCode, a] of [...acc].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
    out.set(bankCode, { bankCode, ...a, netFen: a.receiveFen - a.payFen });
  }
  return out;
}

/**
 * The cycle's invariant: banks' nets and the centre's accounts sum to exactly zero. Throws
 * (a defect, never a data error) when they do not: a package must not be published from it.
 */
export function checkZeroSum(banksNetFen: bigint, centreNetFen: bigint): void {
  if (banksNetFen + centreNetFen !== 0n) {
    throw new Error(`clearing does not sum to zero: banks ${banksNetFen} fen + centre ${centreNetFen} fen`);
  }
}
