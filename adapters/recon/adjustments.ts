/**
 * Maker-checker adjustments: one finance user proposes a balanced adjusting entry against a
 * reconciliation exception; a different finance user approves it (then, and only then, it posts
 * to the ledger and resolves the exception) or rejects it (nothing posts). Every step is an
 * exception event and an audit record, written in the same transaction as the change.
 *
 * Why these rules:
 * - The proposer can never decide their own adjustment, approve or reject: the database refuses
 *   it too (CHECK decided_by <> proposed_by in 0010_recon.sql). There is no withdrawal: a maker
 *   who erred asks a checker to reject, so every closed proposal carries a second person's name.
 * - Approval locks the adjustment row, then the exception row, then takes the clearing cycle lock
 *   in shared mode (the order every writer uses), and posts with the key `adj:<id>`: of two
 *   approvers at once, one wins and the other sees the decision; the entry cannot post twice.
 * - Accounts are checked at proposal: the shape must be in the chart of accounts, and an account
 *   the ledger has not opened yet must belong to a registered bank, merchant or card, so a typo
 *   cannot open a phantom account when the entry posts.
 * - A caller's idempotency key makes the proposal's id deterministic (per proposer), so a retried
 *   request returns the first answer instead of a second proposal.
 */
import crypto from 'node:crypto';
import { parseCutoff } from '../../engine/clearing/calendar.ts';
import { badRequest, conflict, DomainError, forbidden, notFound, unprocessable } from '../../engine/errors.ts';
import { exceptionIdText } from '../../engine/recon/index.ts';
import { accountSpecFor, linesFromLegs, type Ledger } from '../../ledger/index.ts';
import { appendAudit } from '../audit/index.ts';
import type { Config } from '../config.ts';
import { openCycleForWrite } from '../postgres/cycles.ts';
import { withTx, type Db, type Queryable, type Tx } from '../postgres/db.ts';
import { parseExceptionRef, resolveExceptionInTx, type ExceptionRef } from './exceptions.ts';

export type AdjustmentSide = 'DEBIT' | 'CREDIT';
export type AdjustmentState = 'PROPOSED' | 'APPROVED' | 'REJECTED';
export const adjustment_states: readonly AdjustmentState[] = ['PROPOSED', 'APPROVED', 'REJECTED'];

/** Legs of one adjusting entry: a correction names few accounts; more is a sign of misuse. */
export const adjustment_legs_max = 20;
export const adjustment_memo_chars_max = 500;
export const adjustment_note_chars_max = 500;
export const adjustment_list_page_max = 200;
export const idempotency_key_chars_max = 200;
/** The largest leg: the ledger's own per-line limit. */
export const adjustment_leg_fen_max = 10n ** 15n;
/** The ledger entry kind of an approved adjustment (clearing lists it as kind ADJUSTMENT). */
export const adjustment_entry_kind = 'ADJUSTMENT';

export interface AdjustmentLeg {
  account: string;
  side: AdjustmentSide;
  amountFen: bigint;
}

export interface ProposeInput {
  /** `exc_<n>` as the exceptions queue shows it, or the stored number. */
  exceptionId: ExceptionRef;
  lines: AdjustmentLeg[];
  memo: string;
  /** The caller's key (the Idempotency-Key header): the same key from the same proposer is a replay. */
  idempotencyKey?: string;
}

/** Who acts: a finance user's API key id, and its role (for the audit record). */
export interface AdjustmentActor {
  keyId: string;
  role?: string;
}

export interface AdjustmentDeps {
  db: Db;
  ledger: Ledger;
  now: () => Date;
  config: Pick<Config, 'clearingCutoff'>;
}

export interface Adjustment {
  id: string;
  exceptionId: bigint;
  exceptionType: string;
  exceptionState: string;
  lines: AdjustmentLeg[];
  totalFen: bigint;
  memo: string;
  state: AdjustmentState;
  proposedBy: string;
  proposedAt: Date;
  decidedBy: string | null;
  decidedAt: Date | null;
  decisionNote: string | null;
  /** The posted ledger entry (approved adjustments only). */
  entryId: bigint | null;
  /** The business date the entry was posted in (approved adjustments only). */
  postedBusinessDate: string | null;
}

export interface AdjustmentResult {
  adjustment: Adjustment;
  /** True when this call changed nothing: the same request had already been answered. */
  replayed: boolean;
}

const adjustment_id_pattern = /^adj_[a-z0-9]{16,32}$/;
const idempotency_key_pattern = /^[\x21-\x7e]{1,200}$/;

export const plans = {
  select_adjustment: `
    SELECT a.id, a.exception_id, a.lines, a.total_fen, a.memo, a.state, a.proposed_by, a.proposed_at, a.decided_by,
           a.decided_at, a.decision_note, a.entry_id, x.type AS exception_type, x.state AS exception_state,
           e.business_date AS posted_business_date
    FROM adjustment a
    JOIN recon_exception x ON x.id = a.exception_id
    LEFT JOIN ledger_entry e ON e.id = a.entry_id`,
  lock_adjustment: `SELECT id, exception_id, lines, total_fen, memo, state, proposed_by, decided_by FROM adjustment WHERE id = $1 FOR UPDATE`,
  lock_exception: `SELECT id, type, state FROM recon_exception WHERE id = $1 FOR UPDATE`,
  pending_of_exception: `SELECT id FROM adjustment WHERE exception_id = $1 AND state = 'PROPOSED'`,
  insert_adjustment: `
    INSERT INTO adjustment (id, exception_id, lines, total_fen, memo, state, proposed_by, proposed_at)
    VALUES ($1, $2, $3::jsonb, $4, $5, 'PROPOSED', $6, $7)`,
  /**
   * Which of the named accounts may be posted to: already open in the ledger, or owned by a
   * registered bank, merchant or card (the ledger opens those on first posting). Centre
   * accounts exist by the chart itself. One query for all legs.
   */
  known_accounts: `
    SELECT c.code FROM unnest($1::text[], $2::text[], $3::text[]) AS c(code, owner_type, owner_id)
    WHERE c.owner_type = 'centre'
       OR EXISTS (SELECT 1 FROM ledger_account a WHERE a.code = c.code)
       OR (c.owner_type = 'bank' AND EXISTS (SELECT 1 FROM bank b WHERE b.code = c.owner_id))
       OR (c.owner_type = 'merchant' AND EXISTS (SELECT 1 FROM merchant m WHERE m.id = c.owner_id))
       OR (c.owner_type IN ('card', 'cardholder') AND EXISTS (SELECT 1 FROM card k WHERE k.card_no = c.owner_id))`,
  approve: `
    UPDATE adjustment SET state = 'APPROVED', decided_by = $2, decided_at = $3, decision_note = $4, entry_id = $5
    WHERE id = $1 AND state = 'PROPOSED'`,
  reject: `
    UPDATE adjustment SET state = 'REJECTED', decided_by = $2, decided_at = $3, decision_note = $4
    WHERE id = $1 AND state = 'PROPOSED'`,
  list: `
    SELECT to_char(a.proposed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS at_utc,
           a.id, a.exception_id, a.lines, a.total_fen, a.memo, a.state, a.proposed_by, a.proposed_at, a.decided_by,
           a.decided_at, a.decision_note, a.entry_id, x.type AS exception_type, x.state AS exception_state,
           e.business_date AS posted_business_date
    FROM adjustment a
    JOIN recon_exception x ON x.id = a.exception_id
    LEFT JOIN ledger_entry e ON e.id = a.entry_id
    WHERE ($1::text IS NULL OR a.state = $1) AND ($2::bigint IS NULL OR a.exception_id = $2)
      AND ($3::timestamp IS NULL OR (a.proposed_at, a.id) > ($3::timestamp AT TIME ZONE 'UTC', $4::text))
    ORDER BY a.proposed_at, a.id
    LIMIT $5`,
  insert_event: `
    INSERT INTO recon_exception_event (exception_id, event, from_state, to_state, note, actor, at)
    SELECT $1, u.event, u.from_state, u.to_state, u.note, $2, $3
    FROM unnest($4::text[], $5::text[], $6::text[], $7::text[]) AS u(event, from_state, to_state, note)`,
} as const;

type Row = {
  id: string; exception_id: bigint; lines: { account: string; side: AdjustmentSide; amount_fen: string }[]; total_fen: bigint; memo: string;
  state: AdjustmentState; proposed_by: string; proposed_at: Date; decided_by: string | null; decided_at: Date | null;
  decision_note: string | null; entry_id: bigint | null; exception_type: string; exception_state: string; posted_business_date: string | null;
};

function fromRow(r: Row): Adjustment {
  return {
    id: r.id, exceptionId: r.exception_id, exceptionType: r.exception_type, exceptionState: r.exception_state,
    lines: legsFromJson(r.lines), totalFen: r.total_fen, memo: r.memo, state: r.state, proposedBy: r.proposed_by,
    proposedAt: r.proposed_at, decidedBy: r.decided_by, decidedAt: r.decided_at, decisionNote: r.decision_note,
    entryId: r.entry_id, postedBusinessDate: r.posted_business_date,
  };
}

function legsFromJson(lines: Row['lines']): AdjustmentLeg[] {
  return lines.map((l) => ({ account: l.account, side: l.side, amountFen: BigInt(l.amount_fen) }));
}

function legsToJson(legs: readonly AdjustmentLeg[]): string {
  return JSON.stringify(legs.map((l) => ({ account: l.account, side: l.side, amount_fen: String(l.amountFen) })));
}

/**
 * The pure checks of a proposed entry: legs within limits, every account in the chart of
 * accounts and named once, Σ debits = Σ credits > 0. Returns the total (Σ debits).
 */
export function checkAdjustmentLegs(legs: readonly AdjustmentLeg[]): bigint {
  if (!Array.isArray(legs) || legs.length < 2 || legs.length > adjustment_legs_max) {
    throw badRequest('ADJUSTMENT_LINES_INVALID', `An adjustment has 2..${adjustment_legs_max} lines.`);
  }
  const seen = new Set<string>();
  let debitsFen = 0n;
  let creditsFen = 0n;
  for (const l of legs) {
    if (l.side !== 'DEBIT' && l.side !== 'CREDIT') throw badRequest('ADJUSTMENT_SIDE_INVALID', 'A line\'s side is DEBIT or CREDIT.');
    if (typeof l.amountFen !== 'bigint' || l.amountFen <= 0n || l.amountFen > adjustment_leg_fen_max) {
      throw badRequest('ADJUSTMENT_AMOUNT_INVALID', 'Every line amount is a positive number of fen.');
    }
    if (typeof l.account !== 'string') throw badRequest('ACCOUNT_CODE_INVALID', 'Every line names an account of the chart of accounts.');
    accountSpecFor(l.account);
    // One leg per account: a debit and a credit of one account would be a line to itself.
    if (seen.has(l.account)) throw unprocessable('ADJUSTMENT_ACCOUNT_REPEATED', 'Each account appears on one line only.', { account: l.account });
    seen.add(l.account);
    if (l.side === 'DEBIT') debitsFen += l.amountFen;
    else creditsFen += l.amountFen;
  }
  if (debitsFen !== creditsFen || debitsFen === 0n) {
    throw unprocessable('ADJUSTMENT_UNBALANCED', `Debits (${debitsFen} fen) must equal credits (${creditsFen} fen).`,
      { debits_fen: String(debitsFen), credits_fen: String(creditsFen) });
  }
  return debitsFen;
}

function checkText(value: unknown, code: string, what: string, max: number): string {
  if (typeof value !== 'string' || value.trim().length === 0 || value.length > max) {
    throw badRequest(code, `${what} is 1..${max} characters.`);
  }
  return value;
}

function checkActor(actor: AdjustmentActor): void {
  if (typeof actor?.keyId !== 'string' || actor.keyId.length === 0) throw new DomainError('UNAUTHENTICATED', 401, 'A finance user must act.');
}

/** Random id, or (with a caller's key) a deterministic one: the same proposer and key, the same id. */
function adjustmentIdFor(proposer: string, idempotencyKey: string | undefined): string {
  if (idempotencyKey === undefined) return `adj_${crypto.randomBytes(12).toString('hex')}`;
  return `adj_${crypto.createHash('sha256').update(`${proposer}\u0000${idempotencyKey}`).digest('hex').slice(0, 32)}`;
}

function sameProposal(a: Adjustment, exceptionId: bigint, legs: readonly AdjustmentLeg[], memo: string): boolean {
  return a.exceptionId === exceptionId && a.memo === memo && legsToJson(a.lines) === legsToJson(legs);
}

async function readAdjustment(q: Queryable, id: string): Promise<Adjustment | undefined> {
  const r = await q.query<Row>(`${plans.select_adjustment} WHERE a.id = $1`, [id]);
  return r.rows[0] ? fromRow(r.rows[0]) : undefined;
}

function audit(tx: Tx, at: Date, actor: AdjustmentActor, action: string, id: string, details: Record<string, string | null>) {
  return appendAudit(tx, [{ at, actor: actor.keyId, role: actor.role ?? 'finance', purpose: null, action, subject: `adjustment:${id}`, fields: [], details }]);
}

export async function proposeAdjustment(deps: AdjustmentDeps, input: ProposeInput, actor: AdjustmentActor): Promise<AdjustmentResult> {
  checkActor(actor);
  const exceptionId = parseExceptionRef(input.exceptionId);
  const memo = checkText(input.memo, 'ADJUSTMENT_MEMO_INVALID', 'The memo', adjustment_memo_chars_max);
  if (input.idempotencyKey !== undefined && !idempotency_key_pattern.test(input.idempotencyKey)) {
    throw badRequest('IDEMPOTENCY_KEY_INVALID', `An idempotency key is 1..${idempotency_key_chars_max} printable ASCII characters.`);
  }
  if (!Array.isArray(input.lines)) throw badRequest('ADJUSTMENT_LINES_INVALID', `An adjustment has 2..${adjustment_legs_max} lines.`);
  const legs = input.lines.map((l) => ({ account: l?.account, side: l?.side, amountFen: l?.amountFen }));
  const totalFen = checkAdjustmentLegs(legs);
  const id = adjustmentIdFor(actor.keyId, input.idempotencyKey);
  const now = deps.now();

  return withTx(deps.db, async (tx) => {
    const replay = async (): Promise<AdjustmentResult | null> => {
      const prior = await readAdjustment(tx, id);
      if (prior === undefined) return null;
      if (!sameProposal(prior, exceptionId, legs, memo)) {
        throw conflict('IDEMPOTENCY_CONFLICT', 'This idempotency key was already used for a different adjustment.', { adjustment_id: id });
      }
      return { adjustment: prior, replayed: true };
    };
    const early = await replay();
    if (early) return early;

    const ex = (await tx.query<{ id: bigint; type: string; state: string }>(plans.lock_exception, [String(exceptionId)])).rows[0];
    if (ex === undefined) throw notFound('EXCEPTION_NOT_FOUND', 'No such reconciliation exception.');
    // A concurrent request with the same key may have committed while this one waited for the lock.
    const late = await replay();
    if (late) return late;
    if (ex.state === 'RESOLVED') throw conflict('EXCEPTION_ALREADY_RESOLVED', 'The exception is already resolved.');
    const pending = (await tx.query<{ id: string }>(plans.pending_of_exception, [String(exceptionId)])).rows[0];
    if (pending) {
      throw conflict('ADJUSTMENT_ALREADY_PROPOSED', 'An adjustment of this exception is already awaiting approval.', { adjustment_id: pending.id });
    }
    const specs = legs.map((l) => accountSpecFor(l.account));
    const known = new Set((await tx.query<{ code: string }>(plans.known_accounts, [
      specs.map((s) => s.code), specs.map((s) => s.ownerType), specs.map((s) => s.ownerId)])).rows.map((r) => r.code));
    const unknown = legs.filter((l) => !known.has(l.account)).map((l) => l.account);
    if (unknown.length > 0) {
      throw unprocessable('ACCOUNT_UNKNOWN', 'An account is neither open in the ledger nor owned by a registered bank, merchant or card.', { accounts: unknown.join(',') });
    }

    await tx.query(plans.insert_adjustment, [id, String(exceptionId), legsToJson(legs), String(totalFen), memo, actor.keyId, now]);
    await tx.query(plans.insert_event, [String(exceptionId), actor.keyId, now, ['ADJUSTMENT_PROPOSED'], [null], [null], [`${id}: ${memo}`.slice(0, 500)]]);
    await audit(tx, now, actor, 'ADJUSTMENT_PROPOSE', id, {
      exception_id: exceptionIdText(exceptionId), total_fen: String(totalFen), legs: String(legs.length),
      idempotency_key: input.idempotencyKey === undefined ? null : 'given',
    });
    return { adjustment: (await readAdjustment(tx, id)) as Adjustment, replayed: false };
  });
}

interface LockedAdjustment {
  id: string; exception_id: bigint; lines: Row['lines']; total_fen: bigint; memo: string; state: AdjustmentState; proposed_by: string; decided_by: string | null;
}

async function lockAdjustment(tx: Tx, id: string): Promise<LockedAdjustment> {
  if (!adjustment_id_pattern.test(id)) throw notFound('ADJUSTMENT_NOT_FOUND', 'No such adjustment.');
  const a = (await tx.query<LockedAdjustment>(plans.lock_adjustment, [id])).rows[0];
  if (a === undefined) throw notFound('ADJUSTMENT_NOT_FOUND', 'No such adjustment.');
  return a;
}

/**
 * Approve: post the entry in the open clearing cycle and resolve the exception, in one
 * transaction. The same approver approving again gets the first answer (replayed).
 */
export async function approveAdjustment(deps: AdjustmentDeps, id: string, actor: AdjustmentActor, note?: string): Promise<AdjustmentResult> {
  checkActor(actor);
  const decisionNote = note === undefined || note === null ? null : checkText(note, 'ADJUSTMENT_NOTE_INVALID', 'The note', adjustment_note_chars_max);
  const now = deps.now();
  return withTx(deps.db, async (tx) => {
    const a = await lockAdjustment(tx, id);
    if (a.state !== 'PROPOSED') {
      if (a.state === 'APPROVED' && a.decided_by === actor.keyId) return { adjustment: (await readAdjustment(tx, id)) as Adjustment, replayed: true };
      throw conflict('ADJUSTMENT_ALREADY_DECIDED', `This adjustment was already ${a.state.toLowerCase()}.`, { state: a.state });
    }
    if (a.proposed_by === actor.keyId) throw forbidden('ADJUSTMENT_SELF_APPROVAL', 'An adjustment must be approved by someone other than its proposer.');
    const ex = (await tx.query<{ id: bigint; type: string; state: string }>(plans.lock_exception, [String(a.exception_id)])).rows[0];
    if (ex === undefined) throw new DomainError('ADJUSTMENT_INTERNAL', 500, 'The adjustment\'s exception could not be read.');
    if (ex.state === 'RESOLVED') throw conflict('EXCEPTION_ALREADY_RESOLVED', 'The exception was resolved otherwise; reject this adjustment.');

    // Re-check what was stored before it moves money (a boundary: stored jsonb → ledger).
    const legs = legsFromJson(a.lines);
    const totalFen = checkAdjustmentLegs(legs);
    if (totalFen !== a.total_fen) throw new DomainError('ADJUSTMENT_INTERNAL', 500, 'The stored adjustment does not match its total.');

    const cycle = await openCycleForWrite(tx, now, parseCutoff(deps.config.clearingCutoff));
    const [posted] = await deps.ledger.postBatch(tx, [{
      idemKey: `adj:${id}`, kind: adjustment_entry_kind, businessDate: cycle.businessDate, description: a.memo.slice(0, 500),
      metadata: { adjustment_id: id, exception_id: exceptionIdText(a.exception_id), cycle_id: cycle.id },
      lines: linesFromLegs(legs),
    }]);
    const updated = await tx.query(plans.approve, [id, actor.keyId, now, decisionNote, String(posted.entryId)]);
    if (updated.rowCount !== 1) throw new DomainError('ADJUSTMENT_INTERNAL', 500, 'The locked adjustment could not be approved.');
    await tx.query(plans.insert_event, [String(a.exception_id), actor.keyId, now,
      ['ADJUSTMENT_APPROVED'], [null], [null], [`${id}${decisionNote ? `: ${decisionNote}` : ''}`.slice(0, 500)]]);
    // The exceptions workflow resolves (its RESOLVED event and audit record), seeing this approval.
    await resolveExceptionInTx(tx, a.exception_id, { resolution: 'ADJUSTMENT', note: `adjustment ${id} approved${decisionNote ? `: ${decisionNote}` : ''}` },
      { keyId: actor.keyId, role: actor.role ?? 'finance' }, now);
    await audit(tx, now, actor, 'ADJUSTMENT_APPROVE', id, {
      exception_id: exceptionIdText(a.exception_id), total_fen: String(totalFen), entry_id: String(posted.entryId),
      cycle_id: cycle.id, proposed_by: a.proposed_by,
    });
    return { adjustment: (await readAdjustment(tx, id)) as Adjustment, replayed: false };
  });
}

/** Reject: nothing posts, the exception stays open for another proposal. */
export async function rejectAdjustment(deps: AdjustmentDeps, id: string, actor: AdjustmentActor, note: string): Promise<AdjustmentResult> {
  checkActor(actor);
  const decisionNote = checkText(note, 'ADJUSTMENT_NOTE_INVALID', 'The note', adjustment_note_chars_max);
  const now = deps.now();
  return withTx(deps.db, async (tx) => {
    const a = await lockAdjustment(tx, id);
    if (a.state !== 'PROPOSED') {
      if (a.state === 'REJECTED' && a.decided_by === actor.keyId) return { adjustment: (await readAdjustment(tx, id)) as Adjustment, replayed: true };
      throw conflict('ADJUSTMENT_ALREADY_DECIDED', `This adjustment was already ${a.state.toLowerCase()}.`, { state: a.state });
    }
    if (a.proposed_by === actor.keyId) throw forbidden('ADJUSTMENT_SELF_REJECTION', 'An adjustment must be rejected by someone other than its proposer.');
    const updated = await tx.query(plans.reject, [id, actor.keyId, now, decisionNote]);
    if (updated.rowCount !== 1) throw new DomainError('ADJUSTMENT_INTERNAL', 500, 'The locked adjustment could not be rejected.');
    await tx.query(plans.insert_event, [String(a.exception_id), actor.keyId, now, ['ADJUSTMENT_REJECTED'], [null], [null], [`${id}: ${decisionNote}`.slice(0, 500)]]);
    await audit(tx, now, actor, 'ADJUSTMENT_REJECT', id, { exception_id: exceptionIdText(a.exception_id), total_fen: String(a.total_fen), proposed_by: a.proposed_by });
    return { adjustment: (await readAdjustment(tx, id)) as Adjustment, replayed: false };
  });
}

export async function getAdjustment(db: Queryable, id: string): Promise<Adjustment> {
  const a = adjustment_id_pattern.test(id) ? await readAdjustment(db, id) : undefined;
  if (a === undefined) throw notFound('ADJUSTMENT_NOT_FOUND', 'No such adjustment.');
  return a;
}

export interface ListFilter {
  state?: AdjustmentState;
  exceptionId?: ExceptionRef;
  /** Opaque: the `nextCursor` of the previous page. */
  cursor?: string;
  limit: number;
}

/** Oldest proposal first (the approval queue's order); cursor-paginated. */
export async function listAdjustments(db: Queryable, f: ListFilter): Promise<{ items: Adjustment[]; nextCursor: string | null }> {
  const limit = Math.max(1, Math.min(Math.floor(f.limit), adjustment_list_page_max));
  let after: { at: string; id: string } | null = null;
  if (f.cursor !== undefined) {
    // The cursor carries the last row's exact proposal time (UTC, microseconds) and id.
    const m = /^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6})\|(adj_[a-z0-9]{16,32})$/.exec(Buffer.from(f.cursor, 'base64url').toString('utf8'));
    if (!m) throw badRequest('CURSOR_INVALID', 'The cursor is not one this list returned.');
    after = { at: m[1], id: m[2] };
  }
  const r = await db.query<Row & { at_utc: string }>(plans.list, [
    f.state ?? null, f.exceptionId === undefined ? null : String(parseExceptionRef(f.exceptionId)), after?.at ?? null, after?.id ?? null, limit]);
  const last = r.rows[r.rows.length - 1];
  return {
    items: r.rows.map(fromRow),
    nextCursor: r.rows.length === limit ? Buffer.from(`${last.at_utc}|${last.id}`).toString('base64url') : null,
  };
}

/** The JSON view of an adjustment (amounts as strings of fen, times in ISO 8601). */
export function adjustmentJson(a: Adjustment): Record<string, unknown> {
  return {
    id: a.id, exception_id: exceptionIdText(a.exceptionId), exception_type: a.exceptionType, exception_state: a.exceptionState,
    lines: a.lines.map((l) => ({ account: l.account, side: l.side, amount_fen: String(l.amountFen) })),
    total_fen: String(a.totalFen), memo: a.memo, state: a.state, proposed_by: a.proposedBy, proposed_at: a.proposedAt.toISOString(),
    decided_by: a.decidedBy, decided_at: a.decidedAt?.toISOString() ?? null, decision_note: a.decisionNote,
    entry_id: a.entryId === null ? null : String(a.entryId), posted_business_date: a.postedBusinessDate,
  };
}
