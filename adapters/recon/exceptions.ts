/**
 * The exceptions queue finance staff work through: list with filters and a cursor, read one with
 * its history and its source lines side by side, assign, comment, resolve. Every change and
 * comment is a `recon_exception_event` row and an audit record, written in one transaction under
 * the exception's row lock, so two people acting at once are serialized and both are recorded.
 *
 * The console (adapters/console) and the adjustments (adapters/recon/adjustments.ts) call these
 * functions; `resolveExceptionInTx` lets an approval resolve its exception in its own transaction.
 */
import { appendAudit } from '../audit/index.ts';
import { maskCardNo } from '../bankfiles/index.ts';
import { withTx, type Db, type Queryable, type Tx } from '../postgres/db.ts';
import { badRequest, conflict, notFound } from '../../engine/errors.ts';
import {
  ageDays, assignee_chars_max, checkCommentable, checkNote, exception_states, exception_types, exceptionIdText, parseExceptionId,
  planExceptionStep, resolutions, type Resolution,
} from '../../engine/recon/index.ts';
import { plans } from './plans.ts';

/** Who acts: the API key (or console session's user) id and its role. */
export interface ReconActor {
  keyId: string;
  role: string;
}

/** What the workflow needs: the pool and the clock. AppDeps satisfies it. */
export interface ReconDeps {
  db: Db;
  now: () => Date;
}

/** An exception id as shown (`exc_12`) or as stored. */
export type ExceptionRef = string | bigint;

export const exception_list_page_max = 500;

export interface ExceptionView {
  id: string;
  type: string;
  source_key: string;
  cycle_id: string | null;
  business_date: string;
  bank_code: string | null;
  operator_id: string | null;
  terminal_id: string | null;
  txn_id: string | null;
  /** Masked (first 6, last 4). */
  card_no: string | null;
  engine_amount_fen: string | null;
  other_amount_fen: string | null;
  /** other − engine, when both are known. */
  difference_fen: string | null;
  details: Record<string, unknown>;
  state: string;
  assignee: string | null;
  resolution: string | null;
  resolution_note: string | null;
  opened_at: string;
  opened_by_run: string | null;
  resolved_at: string | null;
  resolved_by: string | null;
  age_days: number;
}

export interface ExceptionEventView {
  event: string;
  from_state: string | null;
  to_state: string | null;
  note: string | null;
  actor: string;
  at: string;
}

export interface EngineLineView {
  bank_code: string; entry_id: string; side: string; kind: string; txn_id: string; card_no: string | null; merchant_id: string | null;
  terminal_id: string | null; txn_time: string; amount_fen: string; fee_fen: string; direction: string;
}

export interface BankLineView {
  bank_code: string; return_id: string; line_no: string; txn_id: string; amount_fen: string; status: string; bank_ref: string | null; reason: string | null;
}

export interface ExceptionSources {
  /** The engine's clearing lines of the difference (bank types). */
  engine_lines: EngineLineView[];
  /** The bank's returned lines of the difference (bank types). */
  bank_lines: BankLineView[];
  /** OPERATOR_TOTAL_MISMATCH: the operator's figures against the engine's, for the terminal. */
  operator_totals: null | {
    upload_id: string | null;
    operator: { tap_count: string; amount_fen: string } | null;
    engine: { tap_count: string; amount_fen: string };
  };
}

export interface ExceptionDetail extends ExceptionView {
  events: ExceptionEventView[];
  sources: ExceptionSources;
}

export interface ExceptionFilter {
  state?: string;
  type?: string;
  businessDate?: string;
  bankCode?: string;
  cycleId?: string;
  assignee?: string;
  /** The `nextCursor` of the previous page. */
  cursor?: string | null;
  limit: number;
}

interface ExceptionRow {
  id: bigint; type: string; source_key: string; cycle_id: string | null; business_date: string; bank_code: string | null;
  operator_id: string | null; terminal_id: string | null; txn_id: string | null; card_no: string | null; engine_amount_fen: bigint | null;
  other_amount_fen: bigint | null; details: Record<string, unknown>; state: string; assignee: string | null; resolution: string | null;
  resolution_note: string | null; opened_at: Date; opened_by_run: bigint | null; resolved_at: Date | null; resolved_by: string | null;
}

function maskedCard(cardNo: string | null): string | null {
  if (cardNo === null || cardNo === '') return cardNo;
  try { return maskCardNo(cardNo); } catch { return '*'.repeat(cardNo.length); }
}

function view(r: ExceptionRow, now: Date): ExceptionView {
  return {
    id: exceptionIdText(r.id), type: r.type, source_key: r.source_key, cycle_id: r.cycle_id, business_date: r.business_date,
    bank_code: r.bank_code, operator_id: r.operator_id, terminal_id: r.terminal_id, txn_id: r.txn_id, card_no: maskedCard(r.card_no),
    engine_amount_fen: r.engine_amount_fen === null ? null : String(r.engine_amount_fen),
    other_amount_fen: r.other_amount_fen === null ? null : String(r.other_amount_fen),
    difference_fen: r.engine_amount_fen === null || r.other_amount_fen === null ? null : String(r.other_amount_fen - r.engine_amount_fen),
    details: r.details, state: r.state, assignee: r.assignee, resolution: r.resolution, resolution_note: r.resolution_note,
    opened_at: r.opened_at.toISOString(), opened_by_run: r.opened_by_run === null ? null : String(r.opened_by_run),
    resolved_at: r.resolved_at === null ? null : r.resolved_at.toISOString(), resolved_by: r.resolved_by,
    age_days: ageDays(r.opened_at, r.resolved_at, now),
  };
}

export function parseExceptionRef(ref: ExceptionRef): bigint {
  const id = typeof ref === 'bigint' ? ref : parseExceptionId(ref);
  if (id === null || id <= 0n) throw notFound('EXCEPTION_NOT_FOUND', 'No such exception.');
  return id;
}

function checkFilter(f: ExceptionFilter): void {
  if (f.state !== undefined && !(exception_states as readonly string[]).includes(f.state)) throw badRequest('FILTER_INVALID', `state must be one of ${exception_states.join(', ')}.`);
  if (f.type !== undefined && !(exception_types as readonly string[]).includes(f.type)) throw badRequest('FILTER_INVALID', `type must be one of ${exception_types.join(', ')}.`);
  if (!Number.isInteger(f.limit) || f.limit < 1 || f.limit > exception_list_page_max) throw badRequest('FILTER_INVALID', `limit must be 1..${exception_list_page_max}.`);
  if (f.cursor !== undefined && f.cursor !== null && !/^[0-9]{1,19}$/.test(f.cursor)) throw badRequest('CURSOR_INVALID', 'Malformed cursor.');
  if (f.businessDate !== undefined && !/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(f.businessDate)) throw badRequest('FILTER_INVALID', 'businessDate must be YYYY-MM-DD.');
  if (f.bankCode !== undefined && !/^[0-9]{12}$/.test(f.bankCode)) throw badRequest('FILTER_INVALID', 'bankCode must be 12 digits.');
  if (f.cycleId !== undefined && !/^CYC[0-9]{8}$/.test(f.cycleId)) throw badRequest('FILTER_INVALID', 'cycleId must be CYCyyyymmdd.');
}

/** Oldest first (by id), `limit` per page; `nextCursor` is null on the last page. */
export async function listExceptions(db: Queryable, f: ExceptionFilter, now = new Date()): Promise<{ items: ExceptionView[]; nextCursor: string | null }> {
  checkFilter(f);
  const r = await db.query<ExceptionRow>(plans.list_exceptions, [
    f.cursor ?? '0', f.state ?? null, f.type ?? null, f.businessDate ?? null, f.bankCode ?? null, f.cycleId ?? null, f.assignee ?? null, f.limit,
  ]);
  const items = r.rows.map((x) => view(x, now));
  return { items, nextCursor: r.rows.length === f.limit ? String(r.rows[r.rows.length - 1].id) : null };
}

function idsOf(details: Record<string, unknown>, key: string): string[] {
  const v = details[key];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && /^[0-9]{1,19}$/.test(x)) : [];
}

async function sourcesOf(db: Queryable, x: ExceptionRow): Promise<ExceptionSources> {
  const out: ExceptionSources = { engine_lines: [], bank_lines: [], operator_totals: null };
  if (x.type === 'OPERATOR_TOTAL_MISMATCH' && x.cycle_id !== null && x.operator_id !== null) {
    const uploadId = typeof x.details.upload_id === 'string' && /^otu_[0-9]{1,19}$/.test(x.details.upload_id) ? x.details.upload_id : null;
    const [u, e] = await Promise.all([
      uploadId === null ? Promise.resolve({ rows: [] as { tap_count: bigint; amount_fen: bigint }[] })
        : db.query<{ tap_count: bigint; amount_fen: bigint }>(plans.operator_line_of, [uploadId.slice(4), x.terminal_id ?? '']),
      db.query<{ tap_count: bigint; amount_fen: bigint }>(plans.engine_taps_of_terminal, [x.cycle_id, x.operator_id, x.terminal_id ?? '']),
    ]);
    out.operator_totals = {
      upload_id: uploadId,
      operator: u.rows[0] === undefined ? null : { tap_count: String(u.rows[0].tap_count), amount_fen: String(u.rows[0].amount_fen) },
      engine: { tap_count: String(e.rows[0].tap_count), amount_fen: String(e.rows[0].amount_fen) },
    };
    return out;
  }
  if (x.bank_code === null || x.cycle_id === null) return out;
  const entryIds = idsOf(x.details, 'entry_ids');
  const lineNos = idsOf(x.details, 'return_line_nos');
  const returnId = typeof x.details.return_id === 'string' ? x.details.return_id : null;
  if (entryIds.length > 0 && x.txn_id !== null) {
    const r = await db.query<Record<string, unknown>>(plans.engine_lines_of, [x.cycle_id, x.bank_code, entryIds, x.txn_id]);
    out.engine_lines = r.rows.map((l) => ({
      bank_code: l.bank_code as string, entry_id: String(l.entry_id), side: l.side as string, kind: l.kind as string, txn_id: l.txn_id as string,
      card_no: maskedCard(l.card_no as string | null), merchant_id: l.merchant_id as string | null, terminal_id: l.terminal_id as string | null,
      txn_time: (l.txn_time as Date).toISOString(), amount_fen: String(l.amount_fen), fee_fen: String(l.fee_fen), direction: l.direction as string,
    }));
  }
  if (returnId !== null && lineNos.length > 0) {
    const r = await db.query<Record<string, unknown>>(plans.bank_lines_of, [x.bank_code, returnId, lineNos]);
    out.bank_lines = r.rows.map((l) => ({
      bank_code: l.bank_code as string, return_id: String(l.return_id), line_no: String(l.line_no), txn_id: l.txn_id as string,
      amount_fen: String(l.amount_fen), status: l.status as string, bank_ref: (l.bank_ref as string | null) || null, reason: l.reason as string | null,
    }));
  }
  return out;
}

/** One exception with its events and its source lines side by side; 404 when there is none. */
export async function getException(db: Queryable, ref: ExceptionRef, now = new Date()): Promise<ExceptionDetail> {
  const id = parseExceptionRef(ref);
  const r = await db.query<ExceptionRow>(plans.exception_by_id, [String(id)]);
  const x = r.rows[0];
  if (x === undefined) throw notFound('EXCEPTION_NOT_FOUND', 'No such exception.');
  const [ev, sources] = await Promise.all([
    db.query<{ event: string; from_state: string | null; to_state: string | null; note: string | null; actor: string; at: Date }>(plans.events_of, [String(id)]),
    sourcesOf(db, x),
  ]);
  return {
    ...view(x, now),
    events: ev.rows.map((e) => ({ event: e.event, from_state: e.from_state, to_state: e.to_state, note: e.note, actor: e.actor, at: e.at.toISOString() })),
    sources,
  };
}

async function lockException(tx: Tx, id: bigint): Promise<ExceptionRow> {
  const r = await tx.query<ExceptionRow>(plans.lock_exception, [String(id)]);
  if (r.rows[0] === undefined) throw notFound('EXCEPTION_NOT_FOUND', 'No such exception.');
  return r.rows[0];
}

async function record(tx: Tx, x: ExceptionRow, event: string, from: string | null, to: string | null, note: string | null, actor: ReconActor, now: Date, details: Record<string, string | null>): Promise<void> {
  await tx.query(plans.insert_event, [String(x.id), event, from, to, note, actor.keyId, now]);
  // Last in the transaction: domain row locks first, then the audit chain's lock.
  await appendAudit(tx, [{
    at: now, actor: actor.keyId, role: actor.role, purpose: null, action: `RECON_EXCEPTION_${event}`, subject: `recon_exception:${exceptionIdText(x.id)}`,
    fields: [], details: { type: x.type, source_key: x.source_key, from_state: from, to_state: to, ...details },
  }]);
}

/** OPEN or ASSIGNED → ASSIGNED (a colleague may take over); RESOLVED answers 409. */
export async function assignException(deps: ReconDeps, ref: ExceptionRef, assignee: string, actor: ReconActor): Promise<ExceptionDetail> {
  const id = parseExceptionRef(ref);
  const who = assignee.trim();
  if (who.length === 0 || who.length > assignee_chars_max) throw badRequest('ASSIGNEE_INVALID', `assignee must be 1..${assignee_chars_max} characters.`);
  const now = deps.now();
  await withTx(deps.db, async (tx) => {
    const x = await lockException(tx, id);
    const step = planExceptionStep(x.state, 'ASSIGN');
    await tx.query(plans.set_assigned, [String(id), who]);
    await record(tx, x, 'ASSIGNED', step.from, step.to, `assigned to ${who}`, actor, now, { assignee: who });
  });
  return getException(deps.db, id, now);
}

/** A note on an open or assigned exception (its state does not change). */
export async function commentOnException(deps: ReconDeps, ref: ExceptionRef, note: string, actor: ReconActor): Promise<ExceptionDetail> {
  const id = parseExceptionRef(ref);
  const text = checkNote(note);
  const now = deps.now();
  await withTx(deps.db, async (tx) => {
    const x = await lockException(tx, id);
    checkCommentable(x.state);
    await record(tx, x, 'COMMENTED', null, null, text, actor, now, {});
  });
  return getException(deps.db, id, now);
}

export interface ResolveInput {
  resolution: Resolution;
  note: string;
}

/**
 * Resolves inside the caller's transaction (an adjustment's approval resolves its exception with
 * ADJUSTMENT in the same commit as the posting). ADJUSTMENT needs an approved adjustment of this
 * exception; without one it is refused (409 ADJUSTMENT_NOT_APPROVED).
 */
export async function resolveExceptionInTx(tx: Tx, ref: ExceptionRef, input: ResolveInput, actor: ReconActor, now: Date): Promise<void> {
  const id = parseExceptionRef(ref);
  if (!(resolutions as readonly string[]).includes(input.resolution)) throw badRequest('RESOLUTION_INVALID', `resolution must be one of ${resolutions.join(', ')}.`);
  const note = checkNote(input.note);
  const x = await lockException(tx, id);
  const step = planExceptionStep(x.state, 'RESOLVE');
  let adjustmentId: string | null = null;
  if (input.resolution === 'ADJUSTMENT') {
    const a = await tx.query<{ id: string }>(plans.approved_adjustment, [String(id)]);
    if (a.rows[0] === undefined) throw conflict('ADJUSTMENT_NOT_APPROVED', 'An exception is resolved by ADJUSTMENT only once an adjustment of it is approved.');
    adjustmentId = a.rows[0].id;
  }
  await tx.query(plans.set_resolved, [String(id), input.resolution, note, now, actor.keyId]);
  await record(tx, x, 'RESOLVED', step.from, step.to, note, actor, now, { resolution: input.resolution, adjustment_id: adjustmentId });
}

/** OPEN or ASSIGNED → RESOLVED with a resolution and a note; a resolved exception answers 409. */
export async function resolveException(deps: ReconDeps, ref: ExceptionRef, input: ResolveInput, actor: ReconActor): Promise<ExceptionDetail> {
  const id = parseExceptionRef(ref);
  const now = deps.now();
  await withTx(deps.db, (tx) => resolveExceptionInTx(tx, id, input, actor, now));
  return getException(deps.db, id, now);
}
