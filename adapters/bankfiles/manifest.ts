/**
 * `manifest.json` of a settlement package (SETTLEMENT-FILES.md, "The package"), and the small
 * vocabulary every file of the package shares: bank codes, dates, yuan amounts, the direction
 * of a net position. The XML and CSV writers import it from here so that one rule, written
 * once, decides e.g. who is the debtor of a zero net.
 */
import { DomainError, unprocessable } from '../../engine/errors.ts';
import type { DetailCsvSummary } from './detail-csv.ts';
import { digestOf } from './digest.ts';

/** The bank owes the centre (PAY) or the centre owes the bank (RECEIVE). */
export type Direction = 'PAY' | 'RECEIVE';

/** A cycle id is part of ISO ids capped at 35 characters: `${cycleId}-${bankCode}` must fit. */
export const CYCLE_ID_CHARS_MAX = 22;
/** ISO 20022 amounts carry at most 18 digits; with 2 decimals the fen value must stay below. */
export const AMOUNT_FEN_ABS_MAX = 10n ** 18n - 1n;
/** Asia/Shanghai has had no daylight saving since 1991: a fixed offset is exact. */
export const SHANGHAI_OFFSET_MS = 8 * 60 * 60 * 1000;

const BANK_CODE_PATTERN = /^\d{12}$/;
const CYCLE_ID_PATTERN = new RegExp(`^[A-Za-z0-9_]{1,${CYCLE_ID_CHARS_MAX}}$`);
const ISO_DATE_PATTERN = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
const MAX35_PATTERN = /^[^\s](?:.{0,33}[^\s])?$/su;
const HEX64_PATTERN = /^[0-9a-f]{64}$/;

/** The one error every package builder throws for a caller's bad input (422). */
export function inputInvalid(field: string, reason: string, details: Record<string, unknown> = {}): DomainError {
  return unprocessable('BANK_FILE_INPUT_INVALID', `Cannot build a bank file: ${field} ${reason}.`, { field, ...details });
}

export function assertBankCode(field: string, value: string): void {
  if (typeof value !== 'string' || !BANK_CODE_PATTERN.test(value)) {
    throw inputInvalid(field, 'must be a 12-digit CNAPS bank code');
  }
}

export function assertCycleId(value: string): void {
  if (typeof value !== 'string' || !CYCLE_ID_PATTERN.test(value)) {
    throw inputInvalid('cycleId', `must be 1..${CYCLE_ID_CHARS_MAX} letters, digits or _`);
  }
}

/** A calendar date `YYYY-MM-DD` that exists (2026-02-30 does not). */
export function assertIsoDate(field: string, value: string): void {
  if (typeof value !== 'string' || !ISO_DATE_PATTERN.test(value)) {
    throw inputInvalid(field, 'must be a date YYYY-MM-DD');
  }
  const parsed = new Date(`${value}T00:00:00Z`);
  if (Number.isNaN(parsed.getTime()) || parsed.toISOString().slice(0, 10) !== value) {
    throw inputInvalid(field, 'is not a calendar date', { value });
  }
}

/** ISO 20022 Max35Text, restricted to no leading/trailing blanks so ids survive trimming. */
export function assertMax35(field: string, value: string): void {
  if (typeof value !== 'string' || !MAX35_PATTERN.test(value)) {
    throw inputInvalid(field, 'must be 1..35 characters without leading or trailing blanks');
  }
}

export function assertValidDate(field: string, value: Date): void {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw inputInvalid(field, 'must be a valid Date');
}

/**
 * Fen → yuan with exactly two decimals, exact for any bigint: 12345n → "123.45", 5n → "0.05",
 * 0n → "0.00", -150n → "-1.50". Never goes through a JS number.
 */
export function formatYuan(fen: bigint): string {
  const negative = fen < 0n;
  const digits = (negative ? -fen : fen).toString().padStart(3, '0');
  const yuan = `${digits.slice(0, -2)}.${digits.slice(-2)}`;
  return negative ? `-${yuan}` : yuan;
}

/**
 * An instant as Asia/Shanghai wall-clock time with its offset, to the second:
 * `2026-11-28T07:30:15+08:00`. This is the one timestamp format of the package (detail.csv
 * `txn_time`, XML `CreDtTm`, manifest `createdAt`): banks read local time directly.
 */
export function shanghaiDateTime(instant: Date): string {
  assertValidDate('instant', instant);
  return `${new Date(instant.getTime() + SHANGHAI_OFFSET_MS).toISOString().slice(0, 19)}+08:00`;
}

/**
 * Who pays whom for a bank's net position (Σ RECEIVE net − Σ PAY net). Negative: the bank pays.
 * Zero settles too (a lesson from Mojaloop), as a 0.00 instruction with the centre as debtor,
 * the same as any non-negative net, so there is no third case anywhere downstream.
 */
export function netDirection(netPositionFen: bigint): Direction {
  return netPositionFen < 0n ? 'PAY' : 'RECEIVE';
}

/**
 * `${cycleId}-${bankCode}`: names one bank's package in ISO ids (pacs.009 `EndToEndId`, camt.053
 * statement `Id`) so a bank's pacs.002 points back at the package. At most 35 characters.
 */
export function packageReference(cycleId: string, bankCode: string): string {
  assertCycleId(cycleId);
  assertBankCode('bankCode', bankCode);
  return `${cycleId}-${bankCode}`;
}

/** What the manifest says about one file of the package. */
export interface ManifestFile {
  readonly name: string;
  readonly bytes: number;
  readonly recordCount: number;
  /** Fen sums that let a bank check the file; written as decimal strings (JSON has no bigint). */
  readonly controlSums: Readonly<Record<string, bigint>>;
  readonly sha256Hex: string;
  readonly sm3Hex: string;
}

/** An XML file of the package as its builder returns it: the text and its figures. */
export interface BuiltXmlFile {
  readonly xml: string;
  readonly recordCount: number;
  readonly controlSums: Readonly<Record<string, bigint>>;
}

/** The manifest entry of an in-memory file: digests taken over its exact UTF-8 bytes. */
export function manifestFileOf(name: string, built: BuiltXmlFile): ManifestFile {
  const { bytes, sha256Hex, sm3Hex } = digestOf(built.xml);
  return { name, bytes, recordCount: built.recordCount, controlSums: built.controlSums, sha256Hex, sm3Hex };
}

/** The manifest entry of a streamed detail.csv, from what `writeDetailCsv` returned. */
export function detailManifestFile(summary: DetailCsvSummary, name = 'detail.csv'): ManifestFile {
  const { bytes, lineCount, sha256Hex, sm3Hex, controlSums } = summary;
  return { name, bytes, recordCount: lineCount, controlSums: { ...controlSums }, sha256Hex, sm3Hex };
}

export interface ManifestInput {
  readonly bankCode: string;
  readonly cycleId: string;
  readonly businessDate: string;
  readonly settlementDate: string;
  readonly createdAt: Date;
  /** The bank's net position: Σ RECEIVE net − Σ PAY net of its detail lines. */
  readonly netPositionFen: bigint;
  readonly files: readonly ManifestFile[];
}

/** Files of one package, at most: detail.csv, pacs.009.xml, camt.053.xml and room to grow. */
export const MANIFEST_FILES_MAX = 16;
/** Control sum that every file carrying it must agree on: the package's single net figure. */
export const NET_POSITION_CONTROL_SUM = 'netPositionFen';

/**
 * The exact text of `manifest.json`: keys in a fixed order (control sums sorted by name), two
 * spaces of indentation, one trailing `\n`, so the same package always yields the same bytes.
 * Asserts the spec's invariant that every file's net position equals the manifest's.
 */
export function buildManifest(input: ManifestInput): string {
  assertBankCode('bankCode', input.bankCode);
  assertCycleId(input.cycleId);
  assertIsoDate('businessDate', input.businessDate);
  assertIsoDate('settlementDate', input.settlementDate);
  assertValidDate('createdAt', input.createdAt);
  if (input.files.length === 0 || input.files.length > MANIFEST_FILES_MAX) {
    throw inputInvalid('files', `must list 1..${MANIFEST_FILES_MAX} files`);
  }
  const names = new Set<string>();
  const files = input.files.map((file) => {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(file.name) || names.has(file.name)) {
      throw inputInvalid('files.name', 'must be a unique plain file name', { name: file.name });
    }
    names.add(file.name);
    if (!Number.isSafeInteger(file.bytes) || file.bytes < 0) throw inputInvalid('files.bytes', 'must be a byte count', { name: file.name });
    if (!Number.isSafeInteger(file.recordCount) || file.recordCount < 0) {
      throw inputInvalid('files.recordCount', 'must be a count', { name: file.name });
    }
    if (!HEX64_PATTERN.test(file.sha256Hex) || !HEX64_PATTERN.test(file.sm3Hex)) {
      throw inputInvalid('files digests', 'must be 64 lowercase hex digits', { name: file.name });
    }
    const fileNet = file.controlSums[NET_POSITION_CONTROL_SUM];
    if (fileNet !== undefined && fileNet !== input.netPositionFen) {
      // Two files of one package disagreeing on what the bank owes is a defect upstream,
      // never something to publish.
      throw new DomainError('SETTLEMENT_PACKAGE_INCONSISTENT', 500, 'A file of the package disagrees with its net position.', {
        name: file.name,
        fileNetPositionFen: fileNet.toString(),
        netPositionFen: input.netPositionFen.toString(),
      });
    }
    const controlSums: Record<string, string> = {};
    for (const key of Object.keys(file.controlSums).sort()) controlSums[key] = file.controlSums[key].toString();
    return {
      name: file.name,
      bytes: file.bytes,
      recordCount: file.recordCount,
      controlSums,
      sha256: file.sha256Hex,
      sm3: file.sm3Hex,
    };
  });
  const manifest = {
    bankCode: input.bankCode,
    cycleId: input.cycleId,
    businessDate: input.businessDate,
    settlementDate: input.settlementDate,
    createdAt: shanghaiDateTime(input.createdAt),
    // Signed (negative: the bank pays) and, for a reader who skims, the direction in words.
    netPositionFen: input.netPositionFen.toString(),
    direction: netDirection(input.netPositionFen),
    files,
  };
  return `${JSON.stringify(manifest, null, 2)}\n`;
}
