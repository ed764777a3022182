/**
 * A transit tap batch as the engine sees it once decoded, whatever the wire format (protobuf or
 * JSON), and the checks that need nothing but the batch itself: whole-batch refusals (nothing
 * is written, the caller gets a 4xx) and the per-record MALFORMED format rule.
 *
 * The contract is /work/shared/spec/TRANSIT-BATCH.md. Pure: no I/O, no clock, no database, so
 * every rule here is a unit test away. This runs over 50,000-record batches on the upload path,
 * hence plain loops, regexes compiled once and no per-record closures.
 */
import { DomainError, badRequest, forbidden, tooLarge } from '../errors.ts';

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/**
 * One tap, normalized. Mirrors the protobuf `TapRecord`: a field the sender left out holds the
 * proto3 default ('' or 0) exactly as a protobuf decoder would give it, so JSON and protobuf
 * uploads of the same taps are indistinguishable from here on. An optional string field is
 * "present" when it is not ''.
 */
export interface TapRecordInput {
  cardNo: string;
  cardCounter: number;
  txnType: number;
  amountFen: number;
  balanceBeforeFen: number;
  terminalId: string;
  terminalSeq: number;
  localTime: string;
  keyVersion: number;
  tac: string;
  lineId: string;
  stationId: string;
  entryStationId: string;
  entryLocalTime: string;
}

/** One upload, normalized. `totalAmountFen` is a uint64 on the wire, so it is held as a bigint. */
export interface TapBatchInput {
  operatorId: string;
  batchId: string;
  createdAt: string;
  recordCount: number;
  totalAmountFen: bigint;
  records: TapRecordInput[];
}

/** A record field by its name in the spec (snake_case), as reported for a MALFORMED record. */
export type TapRecordFieldName =
  | 'card_no'
  | 'card_counter'
  | 'txn_type'
  | 'amount_fen'
  | 'balance_before_fen'
  | 'terminal_id'
  | 'terminal_seq'
  | 'local_time'
  | 'key_version'
  | 'tac'
  | 'line_id'
  | 'station_id'
  | 'entry_station_id'
  | 'entry_local_time';

// ---------------------------------------------------------------------------------------------
// Limits and formats (the spec's numbers, named once)
// ---------------------------------------------------------------------------------------------

/** The spec caps a batch at 50,000 records: one upload must fit one database transaction. */
export const batch_records_max = 50_000;
/** batch_id is the idempotency key, echoed in receipts and URLs: keep it short and URL-safe. */
export const batch_id_chars_max = 64;
export const batch_id_pattern = /^[A-Za-z0-9_-]{1,64}$/;

/** The card's financial application number, 16..19 digits (ISO/IEC 7812 PAN lengths). */
export const card_no_digits_min = 16;
export const card_no_digits_max = 19;
const card_no_pattern = /^[0-9]{16,19}$/;

/** The PSAM terminal id is 6 bytes BCD, so exactly 12 digits. */
export const terminal_id_digits = 12;
const terminal_id_pattern = /^[0-9]{12}$/;

/** The TAC is a 4-byte MAC, written as 8 hex digits; uppercase so equal TACs compare equal. */
export const tac_hex_chars = 8;
const tac_pattern = /^[0-9A-F]{8}$/;

/** The key version is one byte on the card (0 is not a version: no key is ever issued as 0). */
export const key_version_min = 1;
export const key_version_max = 255;

/** txn_type values the spec defines: 6 purse purchase, 9 compound (transit) purchase. */
export const txn_type_purse_purchase = 6;
export const txn_type_compound_purchase = 9;

/**
 * Optional free-text ids (GTFS-style route and stop ids). The spec sets no length, but they are
 * stored, indexed and printed in reports, so an unbounded string is refused as MALFORMED.
 * Lengths are JavaScript string lengths (UTF-16 code units), i.e. characters for ASCII ids.
 */
export const line_id_chars_max = 64;
export const station_id_chars_max = 64;
export const entry_station_id_chars_max = 64;

/** local_time and entry_local_time: `YYYYMMDDhhmmss`, no separators. */
export const local_time_chars = 14;
/**
 * Terminal clocks have no year 0; anything from year 1 on is a real date and a clock reset to,
 * say, 2000-01-01 is rejected later as STALE_TAP, which tells the operator more than MALFORMED.
 */
export const local_time_year_min = 1;

/**
 * Asia/Shanghai is UTC+8 with no daylight saving since 1991 (China last observed DST in 1991),
 * so a Shanghai wall-clock time converts with a fixed offset. Taps before 1992 would be off by an
 * hour in summer, but those are decades outside any acceptance window and rejected as stale.
 */
export const shanghai_utc_offset_ms = 8 * 60 * 60 * 1000;

/** RFC 3339 `date-time` (section 5.6). Nine fraction digits is nanoseconds, the finest any client emits. */
export const created_at_fraction_digits_max = 9;
const created_at_pattern =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

/** card_counter, terminal_seq, amounts and the other uint32 fields range over 0..2^32-1. */
export const uint32_max = 0xffff_ffff;
/** total_amount_fen is a uint64. */
export const uint64_max = 0xffff_ffff_ffff_ffffn;
const ms_per_day = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Refusal codes
// ---------------------------------------------------------------------------------------------

/** Stable machine codes of whole-batch refusals. Operators' software switches on these. */
export const tap_batch_refusal = {
  /** 400: the body does not decode, or has the wrong JSON shape or types. */
  malformed_body: 'MALFORMED_BODY',
  /** 413: the body is over the configured size; refused before decoding. */
  body_too_large: 'BODY_TOO_LARGE',
  /** 400: batch_id is not 1..64 chars of [A-Za-z0-9_-]. */
  batch_id_invalid: 'BATCH_ID_INVALID',
  /** 403: operator_id is not the authenticated caller. */
  operator_mismatch: 'OPERATOR_MISMATCH',
  /** 413: more than batch_records_max records. */
  too_many_records: 'TOO_MANY_RECORDS',
  /** 400: no records. */
  empty_batch: 'EMPTY_BATCH',
  /** 400: record_count is not the number of records sent. */
  record_count_mismatch: 'RECORD_COUNT_MISMATCH',
  /** 400: total_amount_fen is not the sum of the records' amount_fen. */
  total_amount_mismatch: 'TOTAL_AMOUNT_MISMATCH',
  /** 400: created_at is not an RFC 3339 date-time. */
  created_at_invalid: 'CREATED_AT_INVALID',
} as const;

export type TapBatchRefusalCode = (typeof tap_batch_refusal)[keyof typeof tap_batch_refusal];

/** The one constructor of MALFORMED_BODY, so both decoders word it alike. `path` names no values. */
export function malformedBody(reason: string, path?: string): DomainError {
  const where = path === undefined ? '' : ` at ${path}`;
  return badRequest(
    tap_batch_refusal.malformed_body,
    `The batch body cannot be read${where}: ${reason}.`,
    path === undefined ? { reason } : { path, reason },
  );
}

/** Made by the decoders before any record is built, and by checkWholeBatch for batches built otherwise. */
export function tooManyRecords(recordsActual: number): DomainError {
  return tooLarge(
    tap_batch_refusal.too_many_records,
    `The batch holds ${recordsActual} records; at most ${batch_records_max} are accepted per batch.`,
    { expected: batch_records_max, actual: recordsActual },
  );
}

export function bodyTooLarge(bodyBytes: number, bodyBytesMax: number): DomainError {
  return tooLarge(
    tap_batch_refusal.body_too_large,
    `The batch body is ${bodyBytes} bytes; at most ${bodyBytesMax} bytes are accepted.`,
    { expected: bodyBytesMax, actual: bodyBytes },
  );
}

// ---------------------------------------------------------------------------------------------
// Whole-batch checks
// ---------------------------------------------------------------------------------------------

/**
 * Throws the first whole-batch refusal, or returns if the batch may be processed record by record.
 *
 * Order: who is asking comes first (403 before anything is revealed about the body), then the
 * header fields, then size, then the header-versus-records invariants.
 */
export function checkWholeBatch(batch: TapBatchInput, callerOperatorId: string): void {
  // '' is never a registered operator: it must not match a caller that somehow has no id either.
  if (batch.operatorId === '' || batch.operatorId !== callerOperatorId) {
    throw forbidden(
      tap_batch_refusal.operator_mismatch,
      'The batch operator_id is not the operator this credential belongs to.',
      { field: 'operator_id' },
    );
  }
  if (!batch_id_pattern.test(batch.batchId)) {
    throw badRequest(
      tap_batch_refusal.batch_id_invalid,
      `The batch_id must be 1 to ${batch_id_chars_max} characters of A-Z, a-z, 0-9, '_' or '-'.`,
      { field: 'batch_id', lengthChars: batch.batchId.length, pattern: batch_id_pattern.source },
    );
  }
  if (!isRfc3339DateTime(batch.createdAt)) {
    throw badRequest(
      tap_batch_refusal.created_at_invalid,
      'The created_at is not an RFC 3339 date-time such as 2024-05-01T08:30:00+08:00.',
      { field: 'created_at' },
    );
  }
  const records = batch.records;
  if (records.length > batch_records_max) throw tooManyRecords(records.length);
  if (records.length === 0) {
    throw badRequest(tap_batch_refusal.empty_batch, 'The batch holds no records; send 1 or more.', {
      expected: 1,
      actual: 0,
    });
  }
  if (batch.recordCount !== records.length) {
    throw badRequest(
      tap_batch_refusal.record_count_mismatch,
      `The record_count says ${batch.recordCount} but the batch holds ${records.length} records.`,
      { field: 'record_count', expected: records.length, actual: batch.recordCount },
    );
  }
  // A JS number holds this sum exactly: 50,000 records of at most 2^32-1 fen is < 2^48 < 2^53.
  let sumFen = 0;
  for (let i = 0; i < records.length; i++) sumFen += records[i].amountFen;
  const recordsTotalFen = BigInt(sumFen);
  if (recordsTotalFen !== batch.totalAmountFen) {
    // Decimal strings, not numbers: a declared uint64 may exceed what JSON numbers carry exactly.
    throw badRequest(
      tap_batch_refusal.total_amount_mismatch,
      `The total_amount_fen says ${batch.totalAmountFen} but the records' amount_fen add up to ${recordsTotalFen}.`,
      { field: 'total_amount_fen', expected: recordsTotalFen.toString(), actual: batch.totalAmountFen.toString() },
    );
  }
}

/** RFC 3339 section 5.6 `date-time`, with a real calendar date and in-range clock fields. */
export function isRfc3339DateTime(s: string): boolean {
  if (typeof s !== 'string') return false;
  const m = created_at_pattern.exec(s);
  if (m === null) return false;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return false;
  // RFC 3339 allows second 60 for a leap second; which minutes may carry one is not checked.
  if (Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 60) return false;
  if (m[7] !== undefined && (Number(m[7]) > 23 || Number(m[8]) > 59)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Per-record format (the MALFORMED outcome)
// ---------------------------------------------------------------------------------------------

/**
 * The first field (in tag order) that breaks the spec's format, or null if the record is well
 * formed. amount_fen = 0 is not MALFORMED: the spec makes it AMOUNT_OUT_OF_RANGE, a later check.
 * Numeric fields are re-checked as uint32 because a batch may reach here without a decoder.
 */
export function checkRecordFormat(r: TapRecordInput): TapRecordFieldName | null {
  if (!card_no_pattern.test(r.cardNo)) return 'card_no';
  if (!isUint32(r.cardCounter)) return 'card_counter';
  if (r.txnType !== txn_type_purse_purchase && r.txnType !== txn_type_compound_purchase) return 'txn_type';
  if (!isUint32(r.amountFen)) return 'amount_fen';
  if (!isUint32(r.balanceBeforeFen)) return 'balance_before_fen';
  if (!terminal_id_pattern.test(r.terminalId)) return 'terminal_id';
  if (!isUint32(r.terminalSeq)) return 'terminal_seq';
  if (parseLocalTime(r.localTime) === null) return 'local_time';
  if (!isUint32(r.keyVersion) || r.keyVersion < key_version_min || r.keyVersion > key_version_max) {
    return 'key_version';
  }
  if (!tac_pattern.test(r.tac)) return 'tac';
  if (!isOptionalId(r.lineId, line_id_chars_max)) return 'line_id';
  if (!isOptionalId(r.stationId, station_id_chars_max)) return 'station_id';
  if (!isOptionalId(r.entryStationId, entry_station_id_chars_max)) return 'entry_station_id';
  if (r.entryLocalTime !== '' && parseLocalTime(r.entryLocalTime) === null) return 'entry_local_time';
  return null;
}

/** checkRecordFormat over a batch: entry i is record i's failing field, or null. */
export function checkRecordFormats(records: readonly TapRecordInput[]): Array<TapRecordFieldName | null> {
  const out = new Array<TapRecordFieldName | null>(records.length);
  for (let i = 0; i < records.length; i++) out[i] = checkRecordFormat(records[i]);
  return out;
}

/**
 * An optional free-text id: at most `charsMax` characters and no U+0000. proto3 and JSON strings
 * may carry a NUL, but Postgres `text` cannot store one, and no route or stop id contains it;
 * refusing it here keeps a well-formed record storable exactly as sent.
 */
function isOptionalId(v: string, charsMax: number): boolean {
  return typeof v === 'string' && v.length <= charsMax && (v.length === 0 || !nul_pattern.test(v));
}
const nul_pattern = /\u0000/;

function isUint32(v: number): boolean {
  return typeof v === 'number' && v >>> 0 === v;
}

// ---------------------------------------------------------------------------------------------
// Terminal wall-clock time
// ---------------------------------------------------------------------------------------------

/**
 * The UTC instant, in epoch milliseconds, of an Asia/Shanghai wall-clock `YYYYMMDDhhmmss`, or
 * null if the string is not exactly 14 ASCII digits naming a real calendar date and time
 * (seconds 00..59: terminal clocks do not count leap seconds). Shanghai is taken as a fixed UTC+8,
 * see `shanghai_utc_offset_ms`. No Date is built: Date.UTC maps years 0..99 to 1900..1999.
 */
export function parseLocalTime(s: string): number | null {
  if (typeof s !== 'string' || s.length !== local_time_chars) return null;
  const year = digitsAt(s, 0, 4);
  const month = digitsAt(s, 4, 2);
  const day = digitsAt(s, 6, 2);
  const hour = digitsAt(s, 8, 2);
  const minute = digitsAt(s, 10, 2);
  const second = digitsAt(s, 12, 2);
  if (year < local_time_year_min || month < 1 || month > 12 || day < 1) return null;
  if (day > daysInMonth(year, month)) return null;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return null;
  const wallMs = daysFromCivil(year, month, day) * ms_per_day + ((hour * 60 + minute) * 60 + second) * 1000;
  return wallMs - shanghai_utc_offset_ms;
}

/**
 * parseLocalTime for a record that already passed checkRecordFormat. A null here is a bug in
 * the caller (the format check was skipped), not bad input, so it throws a plain Error (a 500).
 */
export function localTimeEpochMs(s: string): number {
  const ms = parseLocalTime(s);
  if (ms === null) throw new Error('localTimeEpochMs: local time was not format-checked first');
  return ms;
}

/** The decimal value of `count` ASCII digits at `start`, or -1 if any is not a digit. */
function digitsAt(s: string, start: number, count: number): number {
  let v = 0;
  for (let i = start; i < start + count; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return isLeapYear(year) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}
