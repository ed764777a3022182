/**
 * Reference rows from files: JSON (an array of objects, or `{"items": [...]}`) or CSV (a header
 * row of field names, one record per line, an empty cell meaning "not given"). Field names are
 * those of the HTTP API (snake_case), so a file and a request body say the same thing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { badRequest, tooLarge } from '../../engine/errors.ts';
import type { RawRow } from '../../engine/reference/index.ts';

/** A city's whole card base fits (a few million rows); past that, split the file. */
export const file_bytes_max = 512 * 1024 * 1024;
export const file_rows_max = 5_000_000;

export interface RowsFile {
  rows: RawRow[];
  /** For CSV, the line each row starts on (so errors can name it); empty for JSON. */
  lines: number[];
}

export function readRowsFile(file: string): RowsFile {
  const ext = path.extname(file).toLowerCase();
  if (ext !== '.json' && ext !== '.csv') throw badRequest('FILE_TYPE_INVALID', 'The file must be .json or .csv.');
  const size = fs.statSync(file).size;
  if (size > file_bytes_max) throw tooLarge('FILE_TOO_LARGE', `A file is at most ${file_bytes_max} bytes; split it.`);
  const text = fs.readFileSync(file, 'utf8');
  return ext === '.json' ? parseJsonRows(text) : parseCsvRows(text);
}

export function parseJsonRows(text: string): RowsFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw badRequest('FILE_MALFORMED', `The JSON file does not parse: ${(e as Error).message}`);
  }
  const items = Array.isArray(data) ? data : (data as { items?: unknown } | null)?.items;
  if (!Array.isArray(items)) throw badRequest('FILE_MALFORMED', 'A JSON file holds an array of objects, or {"items": [...]}.');
  if (items.length > file_rows_max) throw tooLarge('FILE_TOO_LARGE', `A file holds at most ${file_rows_max} rows; split it.`);
  items.forEach((x, i) => {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) throw badRequest('FILE_MALFORMED', `Item ${i} of the JSON file is not an object.`);
  });
  return { rows: items as RawRow[], lines: [] };
}

export function parseCsvRows(text: string): RowsFile {
  let records: { record: Record<string, string>; info: { lines: number } }[];
  try {
    records = parse(text, { columns: true, bom: true, trim: true, skip_empty_lines: true, info: true, relax_column_count: false }) as typeof records;
  } catch (e) {
    throw badRequest('FILE_MALFORMED', `The CSV file does not parse: ${(e as Error).message}`);
  }
  if (records.length > file_rows_max) throw tooLarge('FILE_TOO_LARGE', `A file holds at most ${file_rows_max} rows; split it.`);
  return { rows: records.map((r) => r.record), lines: records.map((r) => r.info.lines) };
}

/** Rows as CSV with the given columns (absent and null cells empty), header first. */
export function toCsv(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  return stringify(rows.map((r) => columns.map((c) => (r[c] === null || r[c] === undefined ? '' : String(r[c])))), { header: true, columns: [...columns] });
}
