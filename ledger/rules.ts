/**
 * Pure ledger rules: the chart of accounts and the shape of a valid entry. No I/O here.
 */
import { badRequest } from '../engine/errors.ts';

export type NormalSide = 'DEBIT' | 'CREDIT';
export type OwnerType = 'card' | 'merchant' | 'bank' | 'programme' | 'centre' | 'cardholder';

export interface AccountSpec {
  code: string;
  ownerType: OwnerType;
  ownerId: string;
  purpose: string;
  normalSide: NormalSide;
  noNegative: boolean;
}

/** One line: `amountFen` leaves `debit`'s side and arrives on `credit`'s. */
export interface LineInput {
  debit: string;
  credit: string;
  amountFen: bigint;
}

export interface EntryInput {
  /** The caller's idempotency key: the same key with the same content is a replay. */
  idemKey: string;
  kind: string;
  /** Asia/Shanghai calendar date, YYYY-MM-DD. */
  businessDate: string;
  description?: string;
  metadata?: Record<string, unknown>;
  reversesEntryId?: bigint;
  lines: LineInput[];
}

export const entry_lines_max = 60_000;
export const batch_entries_max = 10_000;
export const idem_key_chars_max = 200;
export const amount_fen_max = 10n ** 15n;

const business_date_pattern = /^\d{4}-\d{2}-\d{2}$/;
const kind_pattern = /^[A-Z][A-Z0-9_]{0,39}$/;

/**
 * The chart of accounts. The code names the owner and purpose; the rule here decides the
 * normal side and whether it may go negative, so every account of a kind behaves alike.
 */
const chart: { pattern: RegExp; ownerType: OwnerType; normalSide: NormalSide; noNegative: boolean }[] = [
  // Stored value the centre owes the cardholder: a liability that can never go below zero.
  { pattern: /^card:([0-9]{16,19}):purse$/, ownerType: 'card', normalSide: 'CREDIT', noNegative: true },
  { pattern: /^card:([0-9]{16,19}):medical$/, ownerType: 'card', normalSide: 'CREDIT', noNegative: true },
  { pattern: /^merchant:([A-Za-z0-9_-]{1,64}):payable$/, ownerType: 'merchant', normalSide: 'CREDIT', noNegative: false },
  // A bank's position with the centre in the open cycle: positive when the bank owes the centre.
  { pattern: /^bank:([0-9]{12}):clearing$/, ownerType: 'bank', normalSide: 'DEBIT', noNegative: false },
  { pattern: /^programme:([A-Za-z0-9_-]{1,64}):fund$/, ownerType: 'programme', normalSide: 'CREDIT', noNegative: true },
  { pattern: /^cardholder:([0-9]{16,19}):receivable$/, ownerType: 'cardholder', normalSide: 'DEBIT', noNegative: false },
  { pattern: /^centre:(fees)$/, ownerType: 'centre', normalSide: 'CREDIT', noNegative: false },
  { pattern: /^centre:(suspense)$/, ownerType: 'centre', normalSide: 'DEBIT', noNegative: false },
  { pattern: /^centre:(settlement)$/, ownerType: 'centre', normalSide: 'DEBIT', noNegative: false },
  { pattern: /^centre:(writeoff)$/, ownerType: 'centre', normalSide: 'DEBIT', noNegative: false },
];

export function accountSpecFor(code: string): AccountSpec {
  for (const rule of chart) {
    const m = rule.pattern.exec(code);
    if (m) {
      const purpose = code.slice(code.lastIndexOf(':') + 1);
      return { code, ownerType: rule.ownerType, ownerId: m[1], purpose, normalSide: rule.normalSide, noNegative: rule.noNegative };
    }
  }
  throw badRequest('ACCOUNT_CODE_INVALID', `"${code.slice(0, 60)}" is not an account of the chart of accounts.`);
}

/** Balance by normal side, from the cumulative totals. */
export function balanceOf(normalSide: NormalSide, debitsFen: bigint, creditsFen: bigint): bigint {
  return normalSide === 'CREDIT' ? creditsFen - debitsFen : debitsFen - creditsFen;
}

/**
 * Turn balanced legs (account, side, amount) into lines. Refuses an unbalanced set: this is
 * where "Σ debits = Σ credits" is checked for callers that think in legs.
 */
export function linesFromLegs(legs: { account: string; side: 'DEBIT' | 'CREDIT'; amountFen: bigint }[]): LineInput[] {
  const debits = legs.filter((l) => l.side === 'DEBIT').map((l) => ({ ...l }));
  const credits = legs.filter((l) => l.side === 'CREDIT').map((l) => ({ ...l }));
  const sum = (xs: { amountFen: bigint }[]) => xs.reduce((a, x) => a + x.amountFen, 0n);
  for (const l of legs) {
    if (l.amountFen <= 0n) throw badRequest('ENTRY_AMOUNT_INVALID', 'Every leg amount must be a positive number of fen.');
  }
  const dr = sum(debits);
  const cr = sum(credits);
  if (dr !== cr || dr === 0n) {
    throw badRequest('ENTRY_UNBALANCED', `Debits (${dr} fen) must equal credits (${cr} fen).`, { debitsFen: String(dr), creditsFen: String(cr) });
  }
  const lines: LineInput[] = [];
  let i = 0;
  let j = 0;
  while (i < debits.length && j < credits.length) {
    const d = debits[i];
    const c = credits[j];
    const amountFen = d.amountFen < c.amountFen ? d.amountFen : c.amountFen;
    lines.push({ debit: d.account, credit: c.account, amountFen });
    d.amountFen -= amountFen;
    c.amountFen -= amountFen;
    if (d.amountFen === 0n) i++;
    if (c.amountFen === 0n) j++;
  }
  return lines;
}

export function validateEntry(e: EntryInput): void {
  if (typeof e.idemKey !== 'string' || e.idemKey.length < 1 || e.idemKey.length > idem_key_chars_max) {
    throw badRequest('IDEMPOTENCY_KEY_INVALID', `An idempotency key of 1..${idem_key_chars_max} characters is required.`);
  }
  if (!kind_pattern.test(e.kind)) throw badRequest('ENTRY_KIND_INVALID', 'Entry kind must be UPPER_SNAKE_CASE, at most 40 characters.');
  if (!business_date_pattern.test(e.businessDate)) throw badRequest('BUSINESS_DATE_INVALID', 'Business date must be YYYY-MM-DD.');
  if (e.lines.length < 1 || e.lines.length > entry_lines_max) {
    throw badRequest('ENTRY_LINES_INVALID', `An entry has 1..${entry_lines_max} lines.`, { idemKey: e.idemKey });
  }
  for (const l of e.lines) {
    if (typeof l.amountFen !== 'bigint' || l.amountFen <= 0n || l.amountFen > amount_fen_max) {
      throw badRequest('ENTRY_AMOUNT_INVALID', 'Every line amount must be a positive number of fen.', { idemKey: e.idemKey });
    }
    if (l.debit === l.credit) throw badRequest('ENTRY_SAME_ACCOUNT', 'A line cannot debit and credit the same account.', { idemKey: e.idemKey });
  }
}

/** Canonical content of an entry, compared on replay (same key, same content = same entry). */
export function entryFingerprint(e: { kind: string; businessDate: string; description?: string | null; metadata?: unknown; reversesEntryId?: bigint | null; holdId?: bigint | null; lines: LineInput[] }): string {
  return JSON.stringify([
    e.kind,
    e.businessDate,
    e.description ?? null,
    e.metadata === undefined || e.metadata === null ? null : stableJson(e.metadata),
    e.reversesEntryId === undefined || e.reversesEntryId === null ? null : String(e.reversesEntryId),
    e.holdId === undefined || e.holdId === null ? null : String(e.holdId),
    e.lines.map((l) => [l.debit, l.credit, String(l.amountFen)]),
  ]);
}

function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  // Keys whose value is undefined are dropped, as JSON.stringify drops them when storing.
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(',')}}`;
}
