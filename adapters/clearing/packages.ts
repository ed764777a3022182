/**
 * One bank's settlement package: detail.csv streamed (memory flat in the number of lines),
 * pacs.009, camt.053 and the manifest. Postgres encodes the lines and COPY streams their bytes
 * when every line is plain (writeBankDetailCsv); otherwise a server-side cursor feeds the
 * engine's encoder. Every file is written under a temporary name and linked into place; an
 * existing file is never replaced — if it is there already (a run killed after writing it) it
 * must have exactly the bytes this run produced, else publishing stops. The files' rows commit
 * together.
 */
import { randomBytes } from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { to as copyTo } from 'pg-copy-streams';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  buildCamt053,
  buildManifest,
  buildPacs009,
  DETAIL_CSV_HEADER,
  DigestPassThrough,
  detailManifestFile,
  digestOf,
  manifestFileOf,
  writeDetailCsv,
  type DetailCsvSummary,
  type DetailKind,
  type DetailLine,
  type EntryAggregate,
  type Side,
} from '../bankfiles/index.ts';
import { StreamDigest } from '../bankfiles/digest.ts';
import { DomainError } from '../../engine/errors.ts';
import { addDays } from '../../engine/clearing/calendar.ts';
import { withTx, type Db } from '../postgres/db.ts';
import type { PoolClient } from 'pg';
import { copyDetailLines, plans } from './plans.ts';
import type { ClearingSettings } from './settings.ts';

/** Rows fetched from the cursor at a time: big enough to amortise round trips, small in memory. */
export const cursor_fetch_rows = 20_000;
export const package_file_names = ['detail.csv', 'pacs.009.xml', 'camt.053.xml', 'manifest.json'] as const;

export interface PackageInput {
  cycleId: string;
  businessDate: string;
  bankCode: string;
  netFen: bigint;
  lineCount: bigint;
  createdAt: Date;
  /** Read the bank's control sums from clearing_line_total rather than from its lines. */
  storedTotals?: boolean;
}

export const packageIdOf = (cycleId: string, bankCode: string): string => `${cycleId}-${bankCode}`;
export const packageDir = (settings: ClearingSettings, cycleId: string, bankCode: string): string =>
  path.join(settings.packagesDir, cycleId, bankCode);

interface StoredFile { name: string; path: string; bytes: number; recordCount: number; sha256Hex: string; sm3Hex: string }

export async function publishPackage(db: Db, settings: ClearingSettings, p: PackageInput): Promise<void> {
  const dir = packageDir(settings, p.cycleId, p.bankCode);
  await mkdir(dir, { recursive: true });
  const settlementDate = addDays(p.businessDate, 1);

  const detailTmp = tmpName(dir, 'detail.csv');
  const client = await db.connect();
  let written: BankDetailCsv;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // Compiling the line encoding with JIT costs more than the few seconds it could save. The
    // lines come in package order from the primary key: sorting a bank's hundreds of thousands
    // of lines again (the plan statistics favour) cost more than the whole encoding.
    await client.query('SET LOCAL jit = off');
    await client.query('SET LOCAL enable_sort = off');
    written = await writeBankDetailCsv(client, p.cycleId, p.bankCode, createWriteStream(detailTmp), p.storedTotals ?? false);
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    await unlink(detailTmp).catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
  const { summary, aggregates } = written;
  if (summary.controlSums.netPositionFen !== p.netFen || BigInt(summary.lineCount) !== p.lineCount) {
    await unlink(detailTmp).catch(() => undefined);
    throw new DomainError('SETTLEMENT_PACKAGE_INCONSISTENT', 500, 'detail.csv disagrees with the bank position.', {
      bank_code: p.bankCode, csv_net_fen: String(summary.controlSums.netPositionFen), position_net_fen: String(p.netFen),
    });
  }
  const ref = packageIdOf(p.cycleId, p.bankCode);
  const pacs009 = buildPacs009({
    messageId: `P${ref}`, createdAt: p.createdAt, cycleId: p.cycleId, bankCode: p.bankCode,
    settlementDate, netPositionFen: p.netFen, centre: settings.centre,
  });
  const camt053 = buildCamt053({
    messageId: `S${ref}`, createdAt: p.createdAt, bankCode: p.bankCode, cycleId: p.cycleId, businessDate: p.businessDate,
    settlementDate, openingBalanceFen: 0n, aggregates: [...aggregates.values()] as EntryAggregate[],
  });
  const detailFile = detailManifestFile(summary);
  const pacsFile = manifestFileOf('pacs.009.xml', pacs009);
  const camtFile = manifestFileOf('camt.053.xml', camt053);
  const manifest = buildManifest({
    bankCode: p.bankCode, cycleId: p.cycleId, businessDate: p.businessDate, settlementDate, createdAt: p.createdAt,
    netPositionFen: p.netFen, files: [detailFile, pacsFile, camtFile],
  });
  const manifestDigest = digestOf(manifest);

  const stored: StoredFile[] = [];
  stored.push(await place(detailTmp, path.join(dir, 'detail.csv'), { name: 'detail.csv', bytes: detailFile.bytes, recordCount: detailFile.recordCount, sha256Hex: detailFile.sha256Hex, sm3Hex: detailFile.sm3Hex }));
  for (const [name, text, file] of [['pacs.009.xml', pacs009.xml, pacsFile], ['camt.053.xml', camt053.xml, camtFile]] as const) {
    const tmp = tmpName(dir, name);
    await writeFile(tmp, text, 'utf8');
    stored.push(await place(tmp, path.join(dir, name), { name, bytes: file.bytes, recordCount: file.recordCount, sha256Hex: file.sha256Hex, sm3Hex: file.sm3Hex }));
  }
  const mTmp = tmpName(dir, 'manifest.json');
  await writeFile(mTmp, manifest, 'utf8');
  stored.push(await place(mTmp, path.join(dir, 'manifest.json'), { name: 'manifest.json', bytes: manifestDigest.bytes, recordCount: 3, sha256Hex: manifestDigest.sha256Hex, sm3Hex: manifestDigest.sm3Hex }));

  await withTx(db, async (tx) => {
    await tx.query(plans.insert_package, [ref, p.cycleId, p.bankCode, p.businessDate, p.netFen, p.lineCount, p.createdAt]);
    await tx.query(plans.insert_package_files, [
      p.bankCode, ref, stored.map((f) => f.name), stored.map((f) => f.path), stored.map((f) => String(f.bytes)),
      stored.map((f) => String(f.recordCount)), stored.map((f) => f.sha256Hex), stored.map((f) => f.sm3Hex),
    ]);
  });
}

type Aggregate = { kind: DetailKind; side: Side; direction: 'PAY' | 'RECEIVE'; count: number; netFen: bigint };
export interface BankDetailCsv {
  summary: DetailCsvSummary;
  /** Per kind, side and direction: camt.053's entries. */
  aggregates: Map<string, Aggregate>;
  /** Who encoded the lines: Postgres (COPY) when every line is plain, else the engine's encoder. */
  encodedBy: 'postgres' | 'engine';
}

/**
 * One bank's detail.csv of a cycle into `out`, read in the caller's (repeatable read) transaction;
 * its sums by kind, side and direction come from the lines, or with `storedTotals` from
 * clearing_line_total (summed as the lines were built; the streamed lines must number them).
 * When every line is plain, Postgres encodes the lines and COPY streams their bytes, so the
 * engine does no per-line work; otherwise the lines go through the encoder, which also names the
 * first line it refuses.
 */
export async function writeBankDetailCsv(client: PoolClient, cycleId: string, bankCode: string, out: Writable, storedTotals = false): Promise<BankDetailCsv> {
  const aggregates = new Map<string, Aggregate>();
  const sums = await client.query<LineSums>(storedTotals ? plans.line_totals : plans.package_line_sums, [cycleId, bankCode]);
  if (sums.rows.every((r) => r.plain)) {
    for (const r of sums.rows) aggregates.set(`${r.kind}/${r.side}/${r.direction}`, { kind: r.kind, side: r.side, direction: r.direction, count: Number(r.n), netFen: r.net_fen });
    const summary = await writeCopiedDetailCsv(client.query(copyTo(copyDetailLines(cycleId, bankCode))), out, sums.rows);
    return { summary, aggregates, encodedBy: 'postgres' };
  }
  await client.query(plans.declare_lines_cursor, [cycleId, bankCode]);
  const summary = await writeDetailCsv(cursorLines(client, aggregates), out);
  return { summary, aggregates, encodedBy: 'engine' };
}

interface LineSums { kind: DetailKind; side: Side; direction: 'PAY' | 'RECEIVE'; n: bigint; net_fen: bigint; amount_fen: bigint; fee_fen: bigint; plain: boolean }

/**
 * detail.csv from the bytes of copyDetailLines: the header, then the copied lines as they come,
 * digested on the way. The control sums are the bank's sums read in the same snapshot; the lines
 * counted in the bytes must number what those sums count.
 */
async function writeCopiedDetailCsv(body: Readable, out: Writable, sums: readonly LineSums[]): Promise<DetailCsvSummary> {
  let newlines = 0;
  async function* bytes(): AsyncGenerator<Buffer> {
    yield Buffer.from(`${DETAIL_CSV_HEADER}\n`, 'utf8');
    for await (const chunk of body) {
      const b = chunk as Buffer;
      for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) newlines += 1;
      yield b;
    }
  }
  const digest = new DigestPassThrough();
  await pipeline(Readable.from(bytes(), { objectMode: false }), digest, out);
  let lineCount = 0n;
  const totals = { payFen: 0n, receiveFen: 0n, amountFen: 0n, feeFen: 0n };
  for (const r of sums) {
    lineCount += r.n;
    if (r.direction === 'PAY') totals.payFen += r.net_fen; else totals.receiveFen += r.net_fen;
    totals.amountFen += r.amount_fen;
    totals.feeFen += r.fee_fen;
  }
  if (BigInt(newlines) !== lineCount) {
    throw new DomainError('SETTLEMENT_PACKAGE_INCONSISTENT', 500, 'detail.csv has not as many lines as the bank has.', {
      csv_lines: String(newlines), bank_lines: String(lineCount),
    });
  }
  return {
    ...digest.result(),
    lineCount: newlines,
    controlSums: { ...totals, netPositionFen: totals.receiveFen - totals.payFen },
  };
}

function tmpName(dir: string, name: string): string {
  return path.join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Link `tmp` to `final` (never overwriting) and drop `tmp`. A file already there is accepted
 * only with the same bytes (a killed run that got this far wrote the same deterministic file).
 */
async function place(tmp: string, final: string, f: Omit<StoredFile, 'path'>): Promise<StoredFile> {
  try {
    await link(tmp, final);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const existing = await fileDigest(final);
    if (existing.sha256Hex !== f.sha256Hex) {
      await unlink(tmp).catch(() => undefined);
      throw new DomainError('PACKAGE_FILE_EXISTS', 500, 'A different package file is already stored; packages are never overwritten.', { file: path.basename(final) });
    }
  }
  await unlink(tmp);
  return { ...f, path: final };
}

export async function fileDigest(file: string): Promise<{ bytes: number; sha256Hex: string; sm3Hex: string }> {
  const d = new StreamDigest();
  for await (const chunk of createReadStream(file)) d.update(chunk as Buffer);
  return d.finish();
}

type CursorRow = [string, DetailKind, Side, string, string, string, string, bigint, bigint, 'PAY' | 'RECEIVE'];

async function* cursorLines(
  client: { query: Db['query'] },
  aggregates: Map<string, { kind: DetailKind; side: Side; direction: 'PAY' | 'RECEIVE'; count: number; netFen: bigint }>,
): AsyncGenerator<DetailLine> {
  for (;;) {
    const r = await client.query<CursorRow>({ text: `FETCH ${cursor_fetch_rows} FROM detail_lines`, rowMode: 'array' } as never);
    const rows = r.rows as unknown as CursorRow[];
    if (rows.length === 0) return;
    for (const [txnId, kind, side, cardNo, merchantId, terminalId, txnTime, amountFen, feeFen, direction] of rows) {
      const key = `${kind}/${side}/${direction}`;
      const a = aggregates.get(key);
      const net = side === 'ACQUIRER' ? amountFen - feeFen : amountFen;
      if (a) { a.count += 1; a.netFen += net; } else aggregates.set(key, { kind, side, direction, count: 1, netFen: net });
      yield { txnId, kind, side, cardNo, merchantId, terminalId, txnTime, amountFen, feeFen, direction };
    }
  }
}
