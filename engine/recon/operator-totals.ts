/**
 * Operator daily totals (docs/OPERATOR-TOTALS.md): a transit operator's own per-terminal counts
 * and amounts for a business date, in CSV or JSON. This module checks the shape and values of an
 * already-decoded upload; which terminals belong to the operator is the adapter's question.
 * Every refusal is a 400 with a stable code and, for a line, its number.
 */
import { badRequest } from '../errors.ts';

export const OPERATOR_TOTALS_CSV_HEADER = 'business_date,terminal_id,tap_count,amount_fen';

/** Terminal lines per upload: a large operator runs a few thousand buses. */
export const operator_total_lines_max = 50_000;
/** Bytes of one upload: 50,000 lines of ~50 bytes, with room for JSON's keys. */
export const operator_total_bytes_max = 8 * 1024 * 1024;
/** A terminal's taps in one day cannot come near this; a bigger figure is a broken file. */
export const terminal_taps_per_day_max = 10_000_000n;
/** Fen per terminal per day, likewise. */
export const terminal_amount_fen_per_day_max = 100_000_000_000n;

export interface OperatorTotalLine {
  terminalId: string;
  tapCount: bigint;
  amountFen: bigint;
}

export interface OperatorTotals {
  businessDate: string;
  lines: OperatorTotalLine[];
}

const TERMINAL = /^[0-9]{12}$/;
const COUNT = /^(?:0|[1-9][0-9]{0,17})$/;
const DATE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;

function invalid(code: string, message: string, details?: Record<string, unknown>) {
  return badRequest(code, message, details);
}

export function checkBusinessDate(text: unknown, where: Record<string, unknown> = {}): string {
  const m = typeof text === 'string' ? DATE.exec(text) : null;
  if (m !== null) {
    const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
    if (d.getUTCFullYear() === +m[1] && d.getUTCMonth() === +m[2] - 1 && d.getUTCDate() === +m[3]) return text as string;
  }
  throw invalid('OPERATOR_TOTALS_DATE_INVALID', 'business_date must be a calendar date YYYY-MM-DD.', where);
}

/** A non-negative integer given as digits (CSV, or a JSON string) or as a JSON safe integer. */
function amountOf(value: unknown, field: string, max: bigint, line: number): bigint {
  let v: bigint | null = null;
  if (typeof value === 'string' && COUNT.test(value)) v = BigInt(value);
  else if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) v = BigInt(value);
  if (v === null) throw invalid('OPERATOR_TOTALS_VALUE_INVALID', `Line ${line}: ${field} must be a non-negative integer.`, { line, field });
  if (v > max) throw invalid('OPERATOR_TOTALS_VALUE_INVALID', `Line ${line}: ${field} exceeds ${max}.`, { line, field });
  return v;
}

function terminalOf(value: unknown, line: number): string {
  if (typeof value !== 'string' || !TERMINAL.test(value)) {
    throw invalid('OPERATOR_TOTALS_TERMINAL_INVALID', `Line ${line}: terminal_id must be 12 digits.`, { line });
  }
  return value;
}

/** Checked before any line is: a file of a million lines is refused without reading them. */
function checkLineCount(n: number): void {
  if (n > operator_total_lines_max) {
    throw invalid('OPERATOR_TOTALS_TOO_MANY_LINES', `An upload lists at most ${operator_total_lines_max} terminals.`, { lines_max: operator_total_lines_max });
  }
}

function finish(businessDate: string, lines: OperatorTotalLine[]): OperatorTotals {
  if (lines.length === 0) throw invalid('OPERATOR_TOTALS_EMPTY', 'An upload lists at least one terminal.');
  const seen = new Map<string, number>();
  lines.forEach((l, i) => {
    const first = seen.get(l.terminalId);
    if (first !== undefined) {
      throw invalid('OPERATOR_TOTALS_DUPLICATE_TERMINAL', `Line ${i + 1}: terminal ${l.terminalId} is already on line ${first}.`, { line: i + 1, first_line: first, terminal_id: l.terminalId });
    }
    seen.set(l.terminalId, i + 1);
  });
  return { businessDate, lines };
}

/**
 * CSV records after the header (each already split into fields by the CSV parser), with the
 * physical line numbers for messages. One business date per file.
 */
export function checkCsvRecords(records: readonly { fields: readonly string[]; line: number }[]): OperatorTotals {
  checkLineCount(records.length);
  let date: string | null = null;
  const lines: OperatorTotalLine[] = [];
  for (const r of records) {
    if (r.fields.length !== 4) throw invalid('OPERATOR_TOTALS_MALFORMED', `Line ${r.line}: expected 4 fields.`, { line: r.line });
    const [d, t, c, a] = r.fields;
    const day = checkBusinessDate(d, { line: r.line });
    if (date !== null && day !== date) throw invalid('OPERATOR_TOTALS_MIXED_DATES', `Line ${r.line}: one business date per file (${date} above).`, { line: r.line });
    date = day;
    lines.push({ terminalId: terminalOf(t, r.line), tapCount: amountOf(c, 'tap_count', terminal_taps_per_day_max, r.line), amountFen: amountOf(a, 'amount_fen', terminal_amount_fen_per_day_max, r.line) });
  }
  return finish(date ?? '', lines);
}

/**
 * The JSON form, already parsed: `{operator_id, business_date, terminals: [{terminal_id,
 * tap_count, amount_fen}]}`, nothing else. `operatorId` is the uploader's own: a file naming
 * another operator is refused rather than filed under the wrong name.
 */
export function checkJsonDocument(doc: unknown, operatorId: string): OperatorTotals {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid('OPERATOR_TOTALS_MALFORMED', 'The body must be a JSON object.');
  const o = doc as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => !['operator_id', 'business_date', 'terminals'].includes(k));
  if (extra.length > 0) throw invalid('OPERATOR_TOTALS_MALFORMED', `Unknown field ${extra[0]}.`, { field: extra[0] });
  if (typeof o.operator_id !== 'string') throw invalid('OPERATOR_TOTALS_MALFORMED', 'operator_id is required.');
  if (o.operator_id !== operatorId) throw invalid('OPERATOR_TOTALS_OPERATOR_MISMATCH', 'operator_id must be the operator the key acts for.');
  const date = checkBusinessDate(o.business_date);
  if (!Array.isArray(o.terminals)) throw invalid('OPERATOR_TOTALS_MALFORMED', 'terminals must be an array.');
  checkLineCount(o.terminals.length);
  const lines = o.terminals.map((t: unknown, i: number) => {
    const line = i + 1;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) throw invalid('OPERATOR_TOTALS_MALFORMED', `Terminal ${line} must be an object.`, { line });
    const r = t as Record<string, unknown>;
    const unknownKey = Object.keys(r).find((k) => !['terminal_id', 'tap_count', 'amount_fen'].includes(k));
    if (unknownKey !== undefined) throw invalid('OPERATOR_TOTALS_MALFORMED', `Terminal ${line}: unknown field ${unknownKey}.`, { line, field: unknownKey });
    return { terminalId: terminalOf(r.terminal_id, line), tapCount: amountOf(r.tap_count, 'tap_count', terminal_taps_per_day_max, line), amountFen: amountOf(r.amount_fen, 'amount_fen', terminal_amount_fen_per_day_max, line) };
  });
  return finish(date, lines);
}

export function totalsOf(lines: readonly OperatorTotalLine[]): { tapCount: bigint; amountFen: bigint } {
  let tapCount = 0n;
  let amountFen = 0n;
  for (const l of lines) { tapCount += l.tapCount; amountFen += l.amountFen; }
  return { tapCount, amountFen };
}
