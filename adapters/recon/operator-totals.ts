/**
 * Operator daily totals (docs/OPERATOR-TOTALS.md): a transit operator uploads its own
 * per-terminal tap counts and amounts for a business date, as CSV or JSON. Checked as a whole
 * before anything is written (a refusal writes nothing); keyed by the SHA-256 of the exact bytes,
 * so the same upload again answers the first receipt; a different upload for the same date is
 * kept too and supersedes the earlier ones (reconciliation reads the newest).
 */
import { createHash } from 'node:crypto';
import { CsvError, parse } from 'csv-parse/sync';
import { appendAudit } from '../audit/index.ts';
import { withTx, type Db, type Queryable } from '../postgres/db.ts';
import { badRequest, forbidden, tooLarge } from '../../engine/errors.ts';
import {
  OPERATOR_TOTALS_CSV_HEADER, checkCsvRecords, checkJsonDocument, operator_total_bytes_max, operator_total_lines_max, totalsOf,
  type OperatorTotals,
} from '../../engine/recon/index.ts';
import type { ReconActor } from './exceptions.ts';
import { plans } from './plans.ts';

export type TotalsFormat = 'CSV' | 'JSON';

export interface UploadView {
  upload_id: string;
  operator_id: string;
  business_date: string;
  format: string;
  sha256: string;
  line_count: number;
  tap_count: string;
  amount_fen: string;
  received_at: string;
  /** A later upload for the same date replaces this one in reconciliation. */
  superseded?: boolean;
}

export const upload_list_page_max = 100;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function malformed(message: string, details?: Record<string, unknown>) {
  return badRequest('OPERATOR_TOTALS_MALFORMED', message, details);
}

function decodeText(body: Buffer): string {
  try {
    return utf8.decode(body);
  } catch {
    throw malformed('The upload is not valid UTF-8.');
  }
}

export function parseCsvTotals(body: Buffer): OperatorTotals {
  const text = decodeText(body);
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, {
      bom: true, columns: false, delimiter: ',', quote: '"', escape: '"', record_delimiter: ['\r\n', '\n'], info: true,
      relax_column_count: true, relax_quotes: false, skip_empty_lines: true, trim: false, max_record_size: 1024,
      // The header and one line more than allowed: enough to refuse an oversize file by count.
      to: operator_total_lines_max + 2,
    }) as unknown as { record: string[]; info: { lines: number } }[];
  } catch (e) {
    if (e instanceof CsvError) throw malformed(`Not valid CSV (${e.code}).`, { line: typeof e.lines === 'number' ? e.lines : null });
    throw e;
  }
  const header = records[0];
  if (header === undefined || header.record.join(',') !== OPERATOR_TOTALS_CSV_HEADER) {
    throw malformed(`The first line must be exactly "${OPERATOR_TOTALS_CSV_HEADER}".`, { line: 1 });
  }
  return checkCsvRecords(records.slice(1).map((r) => ({ fields: r.record, line: r.info.lines })));
}

export function parseJsonTotals(body: Buffer, operatorId: string): OperatorTotals {
  let doc: unknown;
  try {
    doc = JSON.parse(decodeText(body));
  } catch (e) {
    if (e instanceof SyntaxError) throw malformed('Not valid JSON.');
    throw e;
  }
  return checkJsonDocument(doc, operatorId);
}

interface UploadRow {
  id: bigint; operator_id: string; business_date: string; format: string; sha256: string; line_count: number; tap_count: bigint;
  amount_fen: bigint; received_at: Date; superseded?: boolean;
}

function view(r: UploadRow): UploadView {
  return {
    upload_id: `otu_${r.id}`, operator_id: r.operator_id, business_date: r.business_date, format: r.format, sha256: r.sha256,
    line_count: r.line_count, tap_count: String(r.tap_count), amount_fen: String(r.amount_fen), received_at: r.received_at.toISOString(),
    ...(r.superseded === undefined ? {} : { superseded: r.superseded }),
  };
}

async function checkOperator(q: Queryable, operatorId: string): Promise<void> {
  const m = (await q.query<{ kind: string; is_operator: boolean; status: string }>(plans.operator_of, [operatorId])).rows[0];
  if (m === undefined || m.kind !== 'TRANSIT' || !m.is_operator) {
    throw forbidden('OPERATOR_NOT_TRANSIT', 'Only a transit operator uploads daily totals.');
  }
}

/**
 * Receives one upload for the key's operator. `created` is false when the same bytes were
 * received before (the first receipt is the answer).
 */
export async function receiveOperatorTotals(
  deps: { db: Db; now: () => Date }, operatorId: string, body: Buffer, format: TotalsFormat, actor: ReconActor,
): Promise<{ created: boolean; upload: UploadView }> {
  if (body.byteLength > operator_total_bytes_max) {
    throw tooLarge('OPERATOR_TOTALS_TOO_LARGE', `An upload is at most ${operator_total_bytes_max} bytes.`, { bytes_max: operator_total_bytes_max });
  }
  await checkOperator(deps.db, operatorId);
  const totals = format === 'CSV' ? parseCsvTotals(body) : parseJsonTotals(body, operatorId);
  const digest = createHash('sha256').update(body).digest('hex');
  const now = deps.now();
  return withTx(deps.db, async (tx) => {
    await tx.query(plans.upload_lock, [`${operatorId}/${totals.businessDate}`]);
    const existing = (await tx.query<UploadRow>(plans.upload_by_digest, [operatorId, totals.businessDate, digest])).rows[0];
    if (existing !== undefined) return { created: false, upload: view(existing) };
    const terminals = totals.lines.map((l) => l.terminalId);
    const foreign = (await tx.query<{ id: string }>(plans.foreign_terminals, [operatorId, terminals])).rows.map((r) => r.id);
    if (foreign.length > 0) {
      throw badRequest('OPERATOR_TOTALS_TERMINAL_UNKNOWN', 'The upload names terminals that are not this operator\'s.', { terminal_ids: foreign });
    }
    const sum = totalsOf(totals.lines);
    const row = (await tx.query<UploadRow>(plans.insert_upload, [
      operatorId, totals.businessDate, format, digest, totals.lines.length, String(sum.tapCount), String(sum.amountFen), now, actor.keyId,
    ])).rows[0];
    await tx.query(plans.insert_upload_lines, [
      String(row.id), terminals, totals.lines.map((l) => String(l.tapCount)), totals.lines.map((l) => String(l.amountFen)),
    ]);
    await appendAudit(tx, [{
      at: now, actor: actor.keyId, role: actor.role, purpose: null, action: 'OPERATOR_TOTALS_UPLOAD', subject: `operator_total_upload:otu_${row.id}`,
      fields: [], details: { operator_id: operatorId, business_date: totals.businessDate, format, sha256: digest, line_count: String(totals.lines.length) },
    }]);
    return { created: true, upload: view(row) };
  });
}

/** An operator's own uploads, newest first, optionally of one date. */
export async function listOperatorTotals(db: Queryable, operatorId: string, f: { businessDate?: string; cursor?: string | null; limit: number }): Promise<{ items: UploadView[]; nextCursor: string | null }> {
  const limit = Math.min(Math.max(1, f.limit), upload_list_page_max);
  const r = await db.query<UploadRow>(plans.list_uploads, [operatorId, f.businessDate ?? null, f.cursor ?? null, limit]);
  return { items: r.rows.map(view), nextCursor: r.rows.length === limit ? String(r.rows[r.rows.length - 1].id) : null };
}
