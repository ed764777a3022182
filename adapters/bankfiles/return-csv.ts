/**
 * `return.csv`, the bank's per-line answer to a package (SETTLEMENT-FILES.md, "Returns"):
 * UTF-8, one header row `txn_id,amount_fen,status,bank_ref,reason`, status POSTED or REJECTED
 * (then a reason). Parsed as a stream with csv-parse, so a return of tens of millions of lines
 * is read in constant memory; every refusal is RETURN_MALFORMED (400) with its line number.
 */
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CsvError, parse } from 'csv-parse';
import { badRequest } from '../../engine/errors.ts';
import { csvField } from './detail-csv.ts';

export const RETURN_CSV_HEADER = 'txn_id,amount_fen,status,bank_ref,reason';
const COLUMNS = RETURN_CSV_HEADER.split(',');

export type ReturnStatus = 'POSTED' | 'REJECTED';

export interface ReturnRow {
  /** Physical line of the file where the record ends (header is line 1). */
  readonly lineNo: number;
  readonly txnId: string;
  readonly amountFen: bigint;
  readonly status: ReturnStatus;
  /** The bank's own reference for the posting; may be empty. */
  readonly bankRef: string;
  /** Why a line was rejected; null when the bank gave none (only allowed for POSTED). */
  readonly reason: string | null;
}

export type ReturnRowInput = Omit<ReturnRow, 'lineNo'>;

/** Records per file, at most: the same bound as detail.csv lines. */
export const RETURN_ROWS_MAX = 500_000_000;
/** Bytes of one record: generous for five short fields, small enough to stop a runaway quote. */
export const RETURN_RECORD_CHARS_MAX = 4096;
export const RETURN_ID_CHARS_MAX = 64;
export const RETURN_REASON_CHARS_MAX = 512;

const AMOUNT_PATTERN = /^(?:0|[1-9]\d{0,17})$/;

/**
 * Yields the rows of a return.csv in order. Stops at the first bad line with RETURN_MALFORMED.
 * A UTF-8 BOM and `\r\n` line ends are tolerated (spreadsheets write them); blank lines are
 * skipped.
 */
export async function* parseReturnCsv(
  input: Readable | AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
): AsyncGenerator<ReturnRow> {
  const source = input instanceof Readable ? input : Readable.from(input, { objectMode: false });
  const parser = parse({
    bom: true,
    columns: false,
    delimiter: ',',
    quote: '"',
    escape: '"',
    record_delimiter: ['\r\n', '\n'],
    encoding: 'utf8',
    info: true,
    max_record_size: RETURN_RECORD_CHARS_MAX,
    relax_column_count: false,
    relax_quotes: false,
    skip_empty_lines: true,
    trim: false,
  });
  // pipe() does not forward a source's error: do it, so a broken upload stops the parse.
  source.once('error', (error) => parser.destroy(error));
  source.pipe(parser);
  let rows = 0;
  let headerSeen = false;
  try {
    for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      const { record, info } = item;
      if (!headerSeen) {
        if (record.length !== COLUMNS.length || record.some((name, index) => name !== COLUMNS[index])) {
          throw malformed(info.lines, `the header must be exactly "${RETURN_CSV_HEADER}"`);
        }
        headerSeen = true;
        continue;
      }
      rows += 1;
      if (rows > RETURN_ROWS_MAX) throw malformed(info.lines, `more than ${RETURN_ROWS_MAX} lines`);
      yield readRow(record, info.lines);
    }
  } catch (error) {
    if (error instanceof CsvError) {
      const line = typeof error.lines === 'number' ? error.lines : 0;
      throw malformed(line, `not valid CSV (${error.code})`);
    }
    throw error;
  } finally {
    source.unpipe(parser);
    parser.destroy();
  }
  if (!headerSeen) throw malformed(1, 'the file is empty: a header row is required');
}

function readRow(record: string[], lineNo: number): ReturnRow {
  const [txnId, amount, status, bankRef, reason] = record;
  for (const field of record) {
    // csv-parse turns invalid UTF-8 into U+FFFD; an id rebuilt that way would silently not match.
    if (field.includes('\uFFFD')) throw malformed(lineNo, 'the line is not valid UTF-8');
  }
  if (txnId.length === 0 || txnId.length > RETURN_ID_CHARS_MAX) {
    throw malformed(lineNo, `txn_id must be 1..${RETURN_ID_CHARS_MAX} characters`);
  }
  if (!AMOUNT_PATTERN.test(amount)) throw malformed(lineNo, 'amount_fen must be a non-negative integer of fen');
  if (status !== 'POSTED' && status !== 'REJECTED') throw malformed(lineNo, 'status must be POSTED or REJECTED');
  if (bankRef.length > RETURN_ID_CHARS_MAX) throw malformed(lineNo, `bank_ref must be at most ${RETURN_ID_CHARS_MAX} characters`);
  if (reason.length > RETURN_REASON_CHARS_MAX) throw malformed(lineNo, `reason must be at most ${RETURN_REASON_CHARS_MAX} characters`);
  if (status === 'REJECTED' && reason.trim() === '') throw malformed(lineNo, 'a REJECTED line must give a reason');
  return { lineNo, txnId, amountFen: BigInt(amount), status, bankRef, reason: reason === '' ? null : reason };
}

/**
 * Writes a return.csv (for tests and the bank simulator): header, one line per row, `\n`,
 * RFC 4180 quoting. Ends `out`.
 */
export async function writeReturnCsv(
  rows: AsyncIterable<ReturnRowInput> | Iterable<ReturnRowInput>,
  out: Writable,
): Promise<{ bytes: number; lineCount: number }> {
  const counts = { bytes: 0, lineCount: 0 };
  async function* encode(): AsyncGenerator<Buffer> {
    let chunk = `${RETURN_CSV_HEADER}\n`;
    for await (const row of rows) {
      counts.lineCount += 1;
      chunk += `${csvField(row.txnId)},${row.amountFen},${row.status},${csvField(row.bankRef)},${csvField(row.reason ?? '')}\n`;
      if (chunk.length >= 64 * 1024) {
        const bytes = Buffer.from(chunk, 'utf8');
        counts.bytes += bytes.byteLength;
        yield bytes;
        chunk = '';
      }
    }
    const bytes = Buffer.from(chunk, 'utf8');
    counts.bytes += bytes.byteLength;
    yield bytes;
  }
  await pipeline(Readable.from(encode(), { objectMode: false }), out);
  return counts;
}

function malformed(lineNo: number, reason: string) {
  return badRequest('RETURN_MALFORMED', `Malformed return.csv, line ${lineNo}: ${reason}.`, { lineNo });
}
