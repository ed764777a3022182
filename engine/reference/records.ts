/**
 * Reference records (banks, merchants, fee schedules, terminals, cards) and the rules a record
 * must meet before it is stored. Pure: no I/O, no clock (callers pass `now`).
 *
 * Input comes from three places: HTTP bodies (already shaped by JSON schema), JSON files and CSV
 * files (every value a string, an empty cell meaning "not given"). So each validator takes a
 * loosely typed row, and answers either a normalized record or one refusal with a stable code
 * naming the first rule the row breaks. Bulk imports collect these per row.
 */
import { Decimal } from 'decimal.js';
import { checkDate } from '../clearing/calendar.ts';

// ---------------------------------------------------------------------------------------------
// Limits and formats
// ---------------------------------------------------------------------------------------------

export const bank_code_pattern = /^[0-9]{12}$/;
export const merchant_id_pattern = /^[A-Za-z0-9_-]{1,64}$/;
export const terminal_id_pattern = /^[0-9]{12}$/;
export const card_no_pattern = /^[0-9]{16,19}$/;
export const settlement_account_pattern = /^[0-9]{6,32}$/;
export const name_chars_max = 200;
export const station_id_chars_max = 64;
export const line_id_chars_max = 64;
/** numeric(9, 8) in the schema: a rate with more decimals would be silently rounded there. */
export const fee_rate_decimals_max = 8;
/** Fen fields fit a bigint column and stay far from 2^63. */
export const amount_fen_max = 10n ** 15n;
export const person_id_max = 2n ** 63n - 1n;
/** numeric(9, 6): coordinates are kept to the micro-degree (about 0.1 m). */
export const coordinate_decimals_max = 6;
/** A status or issue time may be a little ahead of our clock (the issuer's clock drifts). */
export const card_time_future_skew_ms = 5 * 60_000;
/** The schema's default per-card daily limit for online payments. */
export const daily_limit_fen_default = 500_000n;

export const merchant_kinds = ['TRANSIT', 'MEDICAL', 'UTILITY', 'RETAIL'] as const;
export type MerchantKind = (typeof merchant_kinds)[number];
export const merchant_statuses = ['ACTIVE', 'SUSPENDED', 'CLOSED'] as const;
export type MerchantStatus = (typeof merchant_statuses)[number];
export const terminal_statuses = ['ACTIVE', 'RETIRED'] as const;
export type TerminalStatus = (typeof terminal_statuses)[number];
export const card_forms = ['PHYSICAL', 'ECARD'] as const;
export type CardForm = (typeof card_forms)[number];
export const card_statuses = ['ISSUED', 'ACTIVE', 'LOST_REPORTED', 'SUSPENDED', 'CANCELLED'] as const;
export type CardStatus = (typeof card_statuses)[number];
/** A card imported with a later history ends in one of these, from `status_since`. */
export const card_import_final_statuses = ['LOST_REPORTED', 'SUSPENDED', 'CANCELLED'] as const;

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

export interface BankRecord {
  code: string;
  name: string;
}

export interface MerchantRecord {
  id: string;
  name: string;
  kind: MerchantKind;
  /** A transit operator: kind TRANSIT, uploads tap batches with its own key. */
  isOperator: boolean;
  acquiringBank: string;
  settlementAccount: string;
  status: MerchantStatus;
}

export interface FeeScheduleRecord {
  merchantId: string;
  /** Business date (YYYY-MM-DD) from which the schedule prices a cycle. */
  effectiveFrom: string;
  /** Canonical decimal string, 0 ≤ rate < 1, e.g. "0.003". */
  rate: string;
  minFen: bigint;
  maxFen: bigint;
}

export interface TerminalRecord {
  id: string;
  merchantId: string;
  stationId: string | null;
  lineId: string | null;
  /** Decimal degrees, canonical with 6 decimals ("32.629000"), or null. */
  latitude: string | null;
  longitude: string | null;
  status: TerminalStatus;
}

export interface CardStatusStep {
  status: CardStatus;
  effectiveAt: Date;
}

export interface CardRecord {
  cardNo: string;
  issuingBank: string;
  form: CardForm;
  linkedCardNo: string | null;
  personId: bigint | null;
  dailyLimitFen: bigint;
  /** The card's status history at creation, oldest first: ISSUED, then ACTIVE and/or a final status. */
  history: CardStatusStep[];
}

/** What identifies a card for good: everything but its status history. */
export type CardIdentity = Omit<CardRecord, 'history'>;

/** One refused row of an import (or the one row of a single create). */
export interface RowError {
  index: number;
  code: string;
  field?: string;
  message: string;
}

export type Checked<T> = { ok: true; record: T } | { ok: false; error: RowError };

/** A row as read from JSON or CSV: field name (snake_case) → value. */
export type RawRow = Readonly<Record<string, unknown>>;

// ---------------------------------------------------------------------------------------------
// Field readers: absent ('' or undefined or null) vs present, never a silent coercion of garbage
// ---------------------------------------------------------------------------------------------

class RowRefusal {
  constructor(readonly code: string, readonly field: string | undefined, readonly message: string) {}
}

function refuse(code: string, field: string | undefined, message: string): never {
  throw new RowRefusal(code, field, message);
}

function absent(v: unknown): boolean {
  return v === undefined || v === null || v === '';
}

function text(row: RawRow, field: string, code: string, required: true): string;
function text(row: RawRow, field: string, code: string, required: false): string | null;
function text(row: RawRow, field: string, code: string, required: boolean): string | null;
function text(row: RawRow, field: string, code: string, required: boolean): string | null {
  const v = row[field];
  if (absent(v)) {
    if (required) refuse(code, field, `${field} is required.`);
    return null;
  }
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  if (typeof v !== 'string') refuse(code, field, `${field} must be a string.`);
  return v;
}

function matching(row: RawRow, field: string, code: string, pattern: RegExp, what: string): string {
  const v = text(row, field, code, true);
  if (!pattern.test(v)) refuse(code, field, `${field} must be ${what}.`);
  return v;
}

function oneOf<T extends string>(row: RawRow, field: string, code: string, allowed: readonly T[], fallback?: T): T {
  const v = text(row, field, code, fallback === undefined);
  if (v === null) return fallback as T;
  const upper = v.toUpperCase();
  if (!(allowed as readonly string[]).includes(upper)) refuse(code, field, `${field} must be one of ${allowed.join(', ')}.`);
  return upper as T;
}

function bool(row: RawRow, field: string, code: string, fallback: boolean): boolean {
  const v = row[field];
  if (absent(v)) return fallback;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (s === 'true' || s === '1' || s === 'yes') return true;
    if (s === 'false' || s === '0' || s === 'no') return false;
  }
  return refuse(code, field, `${field} must be true or false.`);
}

const fen_pattern = /^[0-9]{1,16}$/;

function fen(row: RawRow, field: string, code: string, fallback?: bigint): bigint {
  const v = row[field];
  if (absent(v)) {
    if (fallback === undefined) refuse(code, field, `${field} is required.`);
    return fallback;
  }
  let s: string;
  if (typeof v === 'bigint') s = v.toString();
  else if (typeof v === 'number' && Number.isSafeInteger(v)) s = String(v);
  else if (typeof v === 'string') s = v.trim();
  else return refuse(code, field, `${field} must be a whole number of fen.`);
  if (!fen_pattern.test(s)) refuse(code, field, `${field} must be a whole, non-negative number of fen.`);
  const n = BigInt(s);
  if (n > amount_fen_max) refuse(code, field, `${field} must be at most ${amount_fen_max} fen.`);
  return n;
}

const rfc3339_pattern = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 instant with an explicit offset (a bare local time is ambiguous). */
export function parseInstant(v: unknown): Date | null {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v;
  if (typeof v !== 'string' || !rfc3339_pattern.test(v)) return null;
  const ms = Date.parse(v.replace(' ', 'T'));
  if (Number.isNaN(ms)) return null;
  // Date.parse rolls 2026-02-30 over into March; a real calendar date is required.
  try {
    checkDate(v.slice(0, 10));
  } catch {
    return null;
  }
  return new Date(ms);
}

function instant(row: RawRow, field: string, code: string): Date | null {
  const v = row[field];
  if (absent(v)) return null;
  const d = parseInstant(v);
  if (d === null) refuse(code, field, `${field} must be an RFC 3339 time with an offset, e.g. 2026-11-28T08:00:00+08:00.`);
  return d;
}

function boundedText(row: RawRow, field: string, code: string, charsMax: number): string | null {
  const v = text(row, field, code, false);
  if (v === null) return null;
  if (v.length > charsMax || v.trim() !== v) refuse(code, field, `${field} must be 1..${charsMax} characters without surrounding spaces.`);
  return v;
}

function name(row: RawRow, code: string): string {
  const v = text(row, 'name', code, true);
  if (v.trim().length === 0 || v.length > name_chars_max) refuse(code, 'name', `name must be 1..${name_chars_max} characters.`);
  return v.trim();
}

function noUnknownFields(row: RawRow, known: readonly string[]): void {
  for (const k of Object.keys(row)) {
    if (!known.includes(k)) refuse('FIELD_UNKNOWN', k, `Unknown field "${k.slice(0, 40)}"; expected some of ${known.join(', ')}.`);
  }
}

function run<T>(index: number, fn: () => T): Checked<T> {
  try {
    return { ok: true, record: fn() };
  } catch (e) {
    if (e instanceof RowRefusal) return { ok: false, error: { index, code: e.code, ...(e.field ? { field: e.field } : {}), message: e.message } };
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Validators
// ---------------------------------------------------------------------------------------------

export const bank_fields = ['code', 'name'] as const;

export function checkBank(row: RawRow, index = 0): Checked<BankRecord> {
  return run(index, () => {
    noUnknownFields(row, bank_fields);
    return {
      code: matching(row, 'code', 'BANK_CODE_INVALID', bank_code_pattern, 'a 12-digit CNAPS bank code'),
      name: name(row, 'BANK_NAME_INVALID'),
    };
  });
}

export const merchant_fields = ['id', 'name', 'kind', 'is_operator', 'acquiring_bank', 'settlement_account', 'status'] as const;

export function checkMerchant(row: RawRow, index = 0): Checked<MerchantRecord> {
  return run(index, () => {
    noUnknownFields(row, merchant_fields);
    const id = matching(row, 'id', 'MERCHANT_ID_INVALID', merchant_id_pattern, '1..64 characters of A-Z, a-z, 0-9, _ or -');
    const merchantName = name(row, 'MERCHANT_NAME_INVALID');
    const kind = oneOf(row, 'kind', 'MERCHANT_KIND_INVALID', merchant_kinds);
    const isOperator = bool(row, 'is_operator', 'OPERATOR_KIND_INVALID', false);
    // Only transit operators upload tap batches; a hospital flagged as one would get that power.
    if (isOperator && kind !== 'TRANSIT') refuse('OPERATOR_KIND_INVALID', 'is_operator', 'Only a TRANSIT merchant can be a transit operator.');
    const acquiringBank = matching(row, 'acquiring_bank', 'BANK_CODE_INVALID', bank_code_pattern, 'a 12-digit CNAPS bank code');
    const settlementAccount = matching(row, 'settlement_account', 'SETTLEMENT_ACCOUNT_INVALID', settlement_account_pattern, '6..32 digits');
    const status = oneOf(row, 'status', 'MERCHANT_STATUS_INVALID', merchant_statuses, 'ACTIVE');
    return { id, name: merchantName, kind, isOperator, acquiringBank, settlementAccount, status };
  });
}

export const fee_schedule_fields = ['merchant_id', 'effective_from', 'rate', 'min_fen', 'max_fen'] as const;
const rate_pattern = /^[0-9]{1,3}(\.[0-9]+)?$/;

/** The canonical text of a rate ("0.00300000" → "0.003"), or null if it is not 0 ≤ rate < 1 with ≤ 8 decimals. */
export function canonicalRate(v: unknown): string | null {
  let s: string;
  if (typeof v === 'string') s = v.trim();
  else if (typeof v === 'number' && Number.isFinite(v)) s = String(v);
  else return null;
  if (!rate_pattern.test(s)) return null;
  const d = new Decimal(s);
  if (d.isNegative() || d.gte(1) || d.decimalPlaces() > fee_rate_decimals_max) return null;
  return d.toFixed();
}

export function checkFeeSchedule(row: RawRow, index = 0): Checked<FeeScheduleRecord> {
  return run(index, () => {
    noUnknownFields(row, fee_schedule_fields);
    const merchantId = matching(row, 'merchant_id', 'MERCHANT_ID_INVALID', merchant_id_pattern, 'a merchant id');
    const from = text(row, 'effective_from', 'FEE_EFFECTIVE_FROM_INVALID', true);
    try {
      checkDate(from);
    } catch {
      refuse('FEE_EFFECTIVE_FROM_INVALID', 'effective_from', 'effective_from must be a calendar date YYYY-MM-DD.');
    }
    const rate = canonicalRate(row.rate);
    if (rate === null) {
      refuse('FEE_RATE_INVALID', 'rate', `rate must be a decimal string with 0 ≤ rate < 1 and at most ${fee_rate_decimals_max} decimals, e.g. "0.003".`);
    }
    const minFen = fen(row, 'min_fen', 'FEE_AMOUNT_INVALID');
    const maxFen = fen(row, 'max_fen', 'FEE_AMOUNT_INVALID');
    if (minFen > maxFen) refuse('FEE_MIN_ABOVE_MAX', 'min_fen', 'min_fen must not be above max_fen.');
    return { merchantId, effectiveFrom: from, rate, minFen, maxFen };
  });
}

export const terminal_fields = ['id', 'merchant_id', 'station_id', 'line_id', 'latitude', 'longitude', 'status'] as const;
const coordinate_pattern = /^-?[0-9]{1,3}(\.[0-9]+)?$/;

/** Canonical 6-decimal text of a coordinate within ±limit, or null. */
export function canonicalCoordinate(v: unknown, limit: number): string | null {
  let s: string;
  if (typeof v === 'string') s = v.trim();
  else if (typeof v === 'number' && Number.isFinite(v)) s = String(v);
  else return null;
  if (!coordinate_pattern.test(s)) return null;
  const d = new Decimal(s);
  if (d.abs().gt(limit) || d.decimalPlaces() > coordinate_decimals_max) return null;
  return d.toFixed(coordinate_decimals_max);
}

export function checkTerminal(row: RawRow, index = 0): Checked<TerminalRecord> {
  return run(index, () => {
    noUnknownFields(row, terminal_fields);
    const id = matching(row, 'id', 'TERMINAL_ID_INVALID', terminal_id_pattern, 'a 12-digit terminal (PSAM) id');
    const merchantId = matching(row, 'merchant_id', 'MERCHANT_ID_INVALID', merchant_id_pattern, 'a merchant id');
    const stationId = boundedText(row, 'station_id', 'STATION_ID_INVALID', station_id_chars_max);
    const lineId = boundedText(row, 'line_id', 'LINE_ID_INVALID', line_id_chars_max);
    const latGiven = !absent(row.latitude);
    const lonGiven = !absent(row.longitude);
    if (latGiven !== lonGiven) refuse('COORDINATES_INVALID', latGiven ? 'longitude' : 'latitude', 'latitude and longitude are given together or not at all.');
    let latitude: string | null = null;
    let longitude: string | null = null;
    if (latGiven) {
      latitude = canonicalCoordinate(row.latitude, 90);
      if (latitude === null) refuse('COORDINATES_INVALID', 'latitude', 'latitude must be decimal degrees in -90..90 with at most 6 decimals.');
      longitude = canonicalCoordinate(row.longitude, 180);
      if (longitude === null) refuse('COORDINATES_INVALID', 'longitude', 'longitude must be decimal degrees in -180..180 with at most 6 decimals.');
    }
    const status = oneOf(row, 'status', 'TERMINAL_STATUS_INVALID', terminal_statuses, 'ACTIVE');
    return { id, merchantId, stationId, lineId, latitude, longitude, status };
  });
}

export const card_fields = [
  'card_no', 'issuing_bank', 'form', 'linked_card_no', 'person_id', 'daily_limit_fen',
  'issued_at', 'activated_at', 'status', 'status_since',
] as const;
const person_id_pattern = /^[0-9]{1,19}$/;

/**
 * A card and its history at creation: ISSUED at `issued_at` (default `now`), ACTIVE at
 * `activated_at` if given, and, for cards migrated with a later state, `status` (LOST_REPORTED,
 * SUSPENDED or CANCELLED) at `status_since`. Times must be in order and not in the future.
 */
export function checkCard(row: RawRow, now: Date, index = 0): Checked<CardRecord> {
  return run(index, () => {
    noUnknownFields(row, card_fields);
    const cardNo = matching(row, 'card_no', 'CARD_NO_INVALID', card_no_pattern, '16..19 digits');
    const issuingBank = matching(row, 'issuing_bank', 'BANK_CODE_INVALID', bank_code_pattern, 'a 12-digit CNAPS bank code');
    const form = oneOf(row, 'form', 'CARD_FORM_INVALID', card_forms);
    const linked = text(row, 'linked_card_no', 'LINKED_CARD_INVALID', false);
    if (linked !== null && !card_no_pattern.test(linked)) refuse('LINKED_CARD_INVALID', 'linked_card_no', 'linked_card_no must be 16..19 digits.');
    if (linked === cardNo) refuse('LINKED_CARD_INVALID', 'linked_card_no', 'A card cannot be linked to itself.');
    // An e-card is the phone-borne twin of a physical card, never the other way round.
    if (linked !== null && form !== 'ECARD') refuse('LINKED_CARD_INVALID', 'linked_card_no', 'Only an ECARD links to a physical card.');
    const personText = text(row, 'person_id', 'PERSON_ID_INVALID', false);
    let personId: bigint | null = null;
    if (personText !== null) {
      if (!person_id_pattern.test(personText) || BigInt(personText) > person_id_max) refuse('PERSON_ID_INVALID', 'person_id', 'person_id must be a whole number below 2^63.');
      personId = BigInt(personText);
    }
    const dailyLimitFen = fen(row, 'daily_limit_fen', 'DAILY_LIMIT_INVALID', daily_limit_fen_default);

    const latest = now.getTime() + card_time_future_skew_ms;
    const issuedAt = instant(row, 'issued_at', 'CARD_TIME_INVALID') ?? now;
    const activatedAt = instant(row, 'activated_at', 'CARD_TIME_INVALID');
    const finalStatus = text(row, 'status', 'CARD_STATUS_INVALID', false);
    const statusSince = instant(row, 'status_since', 'CARD_TIME_INVALID');
    const history: CardStatusStep[] = [{ status: 'ISSUED', effectiveAt: issuedAt }];
    if (activatedAt !== null) {
      if (activatedAt < issuedAt) refuse('CARD_TIME_INVALID', 'activated_at', 'activated_at must not be before issued_at.');
      history.push({ status: 'ACTIVE', effectiveAt: activatedAt });
    }
    if (finalStatus !== null) {
      const s = finalStatus.toUpperCase();
      if (s === 'ISSUED' || s === 'ACTIVE') {
        // Implied by issued_at / activated_at; accepted when consistent, so an export re-imports.
        if ((s === 'ACTIVE') !== (activatedAt !== null) || statusSince !== null) {
          refuse('CARD_STATUS_INVALID', 'status', 'status ISSUED or ACTIVE follows from activated_at; give status_since only with LOST_REPORTED, SUSPENDED or CANCELLED.');
        }
      } else {
        if (!(card_import_final_statuses as readonly string[]).includes(s)) {
          refuse('CARD_STATUS_INVALID', 'status', `status must be one of ${card_statuses.join(', ')}.`);
        }
        if (statusSince === null) refuse('CARD_TIME_INVALID', 'status_since', `status_since is required with status ${s}.`);
        if (statusSince < history[history.length - 1].effectiveAt) refuse('CARD_TIME_INVALID', 'status_since', 'status_since must not be before issued_at or activated_at.');
        history.push({ status: s as CardStatus, effectiveAt: statusSince });
      }
    } else if (statusSince !== null) {
      refuse('CARD_STATUS_INVALID', 'status', 'status_since is given without a status.');
    }
    for (const step of history) {
      if (step.effectiveAt.getTime() > latest) refuse('CARD_TIME_INVALID', undefined, 'A card status time must not be in the future.');
    }
    return { cardNo, issuingBank, form, linkedCardNo: linked, personId, dailyLimitFen, history };
  });
}

/** The current status of a card created with this history: its last step. */
export function currentStep(record: CardRecord): CardStatusStep {
  return record.history[record.history.length - 1];
}

// ---------------------------------------------------------------------------------------------
// Sameness: a create replayed with the same content is the same record
// ---------------------------------------------------------------------------------------------

export function sameBank(a: BankRecord, b: BankRecord): boolean {
  return a.code === b.code && a.name === b.name;
}

export function sameMerchant(a: MerchantRecord, b: MerchantRecord): boolean {
  return a.id === b.id && a.name === b.name && a.kind === b.kind && a.isOperator === b.isOperator &&
    a.acquiringBank === b.acquiringBank && a.settlementAccount === b.settlementAccount && a.status === b.status;
}

export function sameFeeSchedule(a: FeeScheduleRecord, b: FeeScheduleRecord): boolean {
  return a.merchantId === b.merchantId && a.effectiveFrom === b.effectiveFrom && new Decimal(a.rate).eq(b.rate) &&
    a.minFen === b.minFen && a.maxFen === b.maxFen;
}

export function sameTerminal(a: TerminalRecord, b: TerminalRecord): boolean {
  return a.id === b.id && a.merchantId === b.merchantId && a.stationId === b.stationId && a.lineId === b.lineId &&
    a.latitude === b.latitude && a.longitude === b.longitude && a.status === b.status;
}

/**
 * A card's identity: the fields fixed at issue. Its status history is deliberately not compared:
 * it moves on through status events after creation, and a replayed import must not conflict
 * with a loss report made since (nor rewrite it).
 */
export function sameCard(a: CardIdentity, b: CardIdentity): boolean {
  return a.cardNo === b.cardNo && a.issuingBank === b.issuingBank && a.form === b.form &&
    a.linkedCardNo === b.linkedCardNo && a.personId === b.personId && a.dailyLimitFen === b.dailyLimitFen;
}
