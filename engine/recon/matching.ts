/**
 * The matching rules of reconciliation, as a pure model over small inputs. The run
 * (adapters/recon/plans.ts) applies the same rules in set-based SQL over millions of lines; the
 * tests check both agree.
 *
 * Bank returns: engine lines and return lines are grouped by (bank, txn id). A txn id appears at
 * most twice for one bank (a payment whose cardholder's bank is also the merchant's acquirer has
 * an ISSUER and an ACQUIRER line), so two groups hold the same amounts exactly when their count,
 * minimum, maximum and sum agree. One type per group, in this order:
 *   any line REJECTED by the bank        → REJECTED_BY_BANK
 *   no engine line                       → UNKNOWN_AT_ENGINE
 *   no bank line (the bank returned)     → MISSING_AT_BANK
 *   more bank lines than engine lines    → DUPLICATE_AT_BANK
 *   fewer bank lines than engine lines   → MISSING_AT_BANK
 *   amounts differ                       → AMOUNT_MISMATCH
 *
 * Operator totals: per (operator, terminal) of the business date, the engine's accepted taps
 * (count, Σ amount) against the operator's latest upload; any difference, or a terminal on one
 * side only, is OPERATOR_TOTAL_MISMATCH.
 */
import type { ExceptionType } from './exceptions.ts';

export interface LineAmount {
  bankCode: string;
  txnId: string;
  amountFen: bigint;
}

export interface ReturnedLine extends LineAmount {
  status: 'POSTED' | 'REJECTED';
}

export interface BankDifference {
  type: ExceptionType;
  bankCode: string;
  txnId: string;
}

interface Group { n: number; min: bigint; max: bigint; sum: bigint; rejected: number }

function groupBy<T extends LineAmount>(lines: readonly T[], rejected: (l: T) => boolean): Map<string, Group & { bankCode: string; txnId: string }> {
  const out = new Map<string, Group & { bankCode: string; txnId: string }>();
  for (const l of lines) {
    const k = `${l.bankCode}\u0000${l.txnId}`;
    const g = out.get(k);
    if (g === undefined) out.set(k, { bankCode: l.bankCode, txnId: l.txnId, n: 1, min: l.amountFen, max: l.amountFen, sum: l.amountFen, rejected: rejected(l) ? 1 : 0 });
    else {
      g.n += 1; g.sum += l.amountFen; g.rejected += rejected(l) ? 1 : 0;
      if (l.amountFen < g.min) g.min = l.amountFen;
      if (l.amountFen > g.max) g.max = l.amountFen;
    }
  }
  return out;
}

export function classifyGroup(engine: Group | undefined, bank: Group | undefined, bankReturned: boolean): ExceptionType | null {
  if (bank !== undefined && bank.rejected > 0) return 'REJECTED_BY_BANK';
  if (engine === undefined) return bank === undefined ? null : 'UNKNOWN_AT_ENGINE';
  if (bank === undefined) return bankReturned ? 'MISSING_AT_BANK' : null;
  if (bank.n > engine.n) return 'DUPLICATE_AT_BANK';
  if (bank.n < engine.n) return 'MISSING_AT_BANK';
  if (bank.min !== engine.min || bank.max !== engine.max || bank.sum !== engine.sum) return 'AMOUNT_MISMATCH';
  return null;
}

/**
 * The differences between the engine's lines and the banks' returned lines. `returnedBanks` are
 * the banks that sent a return.csv: only their missing lines are differences (a bank that has not
 * answered yet is not missing anything).
 */
export function matchBankLines(engine: readonly LineAmount[], returned: readonly ReturnedLine[], returnedBanks: ReadonlySet<string>): BankDifference[] {
  const e = groupBy(engine, () => false);
  const b = groupBy(returned, (l) => l.status === 'REJECTED');
  const keys = new Set([...e.keys(), ...b.keys()]);
  const out: BankDifference[] = [];
  for (const k of keys) {
    const eg = e.get(k);
    const bg = b.get(k);
    const g = (eg ?? bg)!;
    const type = classifyGroup(eg, bg, returnedBanks.has(g.bankCode));
    if (type !== null) out.push({ type, bankCode: g.bankCode, txnId: g.txnId });
  }
  return out.sort((x, y) => (x.bankCode + x.txnId < y.bankCode + y.txnId ? -1 : x.bankCode + x.txnId > y.bankCode + y.txnId ? 1 : 0));
}

export interface TerminalTotal {
  terminalId: string;
  tapCount: bigint;
  amountFen: bigint;
}

/** Terminals whose uploaded totals differ from the engine's (either side may be missing). */
export function matchOperatorTotals(uploaded: readonly TerminalTotal[], engine: readonly TerminalTotal[]): { terminalId: string; uploaded: TerminalTotal | null; engine: TerminalTotal | null }[] {
  const u = new Map(uploaded.map((t) => [t.terminalId, t]));
  const e = new Map(engine.map((t) => [t.terminalId, t]));
  const out: { terminalId: string; uploaded: TerminalTotal | null; engine: TerminalTotal | null }[] = [];
  for (const id of [...new Set([...u.keys(), ...e.keys()])].sort()) {
    const a = u.get(id) ?? null;
    const b = e.get(id) ?? null;
    if (a === null || b === null || a.tapCount !== b.tapCount || a.amountFen !== b.amountFen) out.push({ terminalId: id, uploaded: a, engine: b });
  }
  return out;
}
