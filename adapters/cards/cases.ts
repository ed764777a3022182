/**
 * The review workflow of misuse and fraud cases (risk_case of 0003): list, open, assign, confirm,
 * dismiss, and collect what a confirmed fraud case recovers. Every step is a risk_case_event row
 * and an audit record.
 *
 * Booking a confirmed FRAUD case (the chart of accounts is ledger/rules.ts's; nothing is added):
 *
 *     FRAUD_RECOVERY_DUE   DR cardholder:{card}:receivable   CR centre:suspense   amount obtained
 *     FRAUD_FINE_DUE       DR cardholder:{card}:receivable   CR centre:suspense   fine (2×–5×)
 *     FRAUD_RECOVERY_COLLECTION  DR bank:{code}:clearing  CR cardholder:{card}:receivable  per collection
 *
 * Both parts credit `centre:suspense`, the chart's account for money the centre holds pending its
 * final destination: the amount obtained goes back to the fund that was defrauded, and the fine
 * is the city authority's revenue, not the centre's (so not `centre:fees`). They are separate
 * entries of separate kinds, so suspense can be split by kind; the `recovery` row keeps the
 * split too. Paying them over (to the fund, to the authority) is finance's later entry out of
 * suspense. `centre:writeoff` is for a receivable later found uncollectible, also finance's call.
 */
import { badRequest, conflict, notFound, unprocessable } from '../../engine/errors.ts';
import { caseIdText, planCaseStep, recoveryTerms, type CaseStep, type IntegrityKind } from '../../engine/cards/index.ts';
import { parseCutoff } from '../../engine/clearing/calendar.ts';
import type { EntryInput } from '../../ledger/index.ts';
import { appendAudit } from '../audit/index.ts';
import { openCycleForWrite } from '../postgres/cycles.ts';
import { withTx, type Db, type Queryable, type Tx } from '../postgres/db.ts';
import type { Actor, CardRow } from './common.ts';
import { performCardActionInTx, type CardActionResult, type LifecycleDeps } from './lifecycle.ts';

export const case_list_page_max = 500;

export const plans = {
  lock_case: `SELECT id, kind, source_ref, card_no, merchant_id, terminal_id, amount_fen, details, state, opened_at, assignee FROM risk_case WHERE id = $1 FOR UPDATE`,
  case_by_id: `SELECT id, kind, source_ref, card_no, merchant_id, terminal_id, amount_fen, details, state, opened_at, assignee FROM risk_case WHERE id = $1`,
  list: `
    SELECT id, kind, source_ref, card_no, merchant_id, terminal_id, amount_fen, details, state, opened_at, assignee FROM risk_case
    WHERE id > $1 AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR kind = $3)
      AND ($4::text IS NULL OR card_no = $4) AND ($5::text IS NULL OR assignee = $5)
    ORDER BY id LIMIT $6`,
  open_case: `
    WITH c AS (
      INSERT INTO risk_case (kind, source_ref, card_no, merchant_id, terminal_id, amount_fen, details, state, opened_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, 'OPEN', $8)
      ON CONFLICT (kind, source_ref) DO NOTHING RETURNING id)
    INSERT INTO risk_case_event (case_id, from_state, to_state, actor, note, at)
    SELECT id, NULL, 'OPEN', $9, $10, $8 FROM c RETURNING case_id`,
  case_by_key: `SELECT id FROM risk_case WHERE kind = $1 AND source_ref = $2`,
  set_state: `UPDATE risk_case SET state = $2, assignee = coalesce($3, assignee) WHERE id = $1`,
  insert_event: `INSERT INTO risk_case_event (case_id, from_state, to_state, actor, note, at) VALUES ($1, $2, $3, $4, $5, $6)`,
  events_of: `SELECT id, from_state, to_state, actor, note, at FROM risk_case_event WHERE case_id = $1 ORDER BY id LIMIT 1000`,
  card_of: `SELECT card_no, person_id, status FROM card WHERE card_no = $1`,
  insert_integrity: `
    INSERT INTO integrity_record (person_id, card_no, kind, case_id, note, at, actor) VALUES ($1, $2, $3, $4, $5, $6, $7)
    RETURNING id`,
  integrity_of_case: `SELECT id, person_id, card_no, kind, at FROM integrity_record WHERE case_id = $1 ORDER BY id`,
  insert_recovery: `
    INSERT INTO recovery (case_id, card_no, person_id, amount_fen, fine_multiple, fine_fen, due_fen, ledger_entry_ids, created_at, created_by)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
  recovery_of: `SELECT case_id, card_no, amount_fen, fine_multiple::text AS fine_multiple, fine_fen, due_fen, collected_fen FROM recovery WHERE case_id = $1`,
  lock_recovery: `SELECT case_id, card_no, due_fen, collected_fen FROM recovery WHERE case_id = $1 FOR UPDATE`,
  collection_by_id: `SELECT amount_fen, bank_code, ledger_entry_id, at FROM recovery_collection WHERE case_id = $1 AND collection_id = $2`,
  collections_of: `SELECT collection_id, amount_fen, bank_code, at FROM recovery_collection WHERE case_id = $1 ORDER BY id LIMIT 1000`,
  insert_collection: `
    INSERT INTO recovery_collection (case_id, collection_id, amount_fen, bank_code, ledger_entry_id, at, actor) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
  add_collected: `UPDATE recovery SET collected_fen = collected_fen + $2 WHERE case_id = $1 RETURNING collected_fen, due_fen`,
  bank_exists: `SELECT 1 FROM bank WHERE code = $1`,
} as const;

type CaseRow = {
  id: bigint; kind: string; source_ref: string; card_no: string | null; merchant_id: string | null; terminal_id: string | null;
  amount_fen: bigint | null; details: Record<string, unknown>; state: string; opened_at: Date; assignee: string | null;
};

export interface CaseView {
  case_id: string;
  kind: string;
  source_ref: string;
  card_no: string | null;
  merchant_id: string | null;
  terminal_id: string | null;
  amount_fen: string | null;
  details: Record<string, unknown>;
  state: string;
  assignee: string | null;
  opened_at: string;
}

function view(r: CaseRow): CaseView {
  return {
    case_id: caseIdText(r.id), kind: r.kind, source_ref: r.source_ref, card_no: r.card_no, merchant_id: r.merchant_id, terminal_id: r.terminal_id,
    amount_fen: r.amount_fen === null ? null : String(r.amount_fen), details: r.details, state: r.state, assignee: r.assignee,
    opened_at: r.opened_at.toISOString(),
  };
}

export interface CaseFilter {
  state?: string;
  kind?: string;
  cardNo?: string;
  assignee?: string;
}

export async function listCases(q: Queryable, after: bigint, limit: number, f: CaseFilter): Promise<CaseView[]> {
  const r = await q.query<CaseRow>(plans.list, [String(after), f.state ?? null, f.kind ?? null, f.cardNo ?? null, f.assignee ?? null, Math.min(limit, case_list_page_max)]);
  return r.rows.map(view);
}

export interface CaseDetail extends CaseView {
  events: { from_state: string | null; to_state: string; actor: string; note: string | null; at: string }[];
  integrity_records: { id: string; kind: string; at: string }[];
  recovery: null | {
    amount_fen: string; fine_multiple: string; fine_fen: string; due_fen: string; collected_fen: string; outstanding_fen: string;
    collections: { collection_id: string; amount_fen: string; bank_code: string; at: string }[];
  };
}

export async function getCase(q: Queryable, id: bigint): Promise<CaseDetail> {
  const c = await q.query<CaseRow>(plans.case_by_id, [String(id)]);
  if (!c.rows[0]) throw notFound('CASE_NOT_FOUND', 'No such case.');
  const [ev, integ, rec, col] = await Promise.all([
    q.query<Record<string, unknown>>(plans.events_of, [String(id)]),
    q.query<Record<string, unknown>>(plans.integrity_of_case, [String(id)]),
    q.query<Record<string, unknown>>(plans.recovery_of, [String(id)]),
    q.query<Record<string, unknown>>(plans.collections_of, [String(id)]),
  ]);
  const r = rec.rows[0];
  return {
    ...view(c.rows[0]),
    events: ev.rows.map((e) => ({ from_state: e.from_state as string | null, to_state: e.to_state as string, actor: e.actor as string, note: e.note as string | null, at: (e.at as Date).toISOString() })),
    integrity_records: integ.rows.map((i) => ({ id: String(i.id), kind: i.kind as string, at: (i.at as Date).toISOString() })),
    recovery: r === undefined ? null : {
      amount_fen: String(r.amount_fen), fine_multiple: r.fine_multiple as string, fine_fen: String(r.fine_fen), due_fen: String(r.due_fen),
      collected_fen: String(r.collected_fen), outstanding_fen: String((r.due_fen as bigint) - (r.collected_fen as bigint)),
      collections: col.rows.map((x) => ({ collection_id: x.collection_id as string, amount_fen: String(x.amount_fen), bank_code: x.bank_code as string, at: (x.at as Date).toISOString() })),
    },
  };
}

export interface OpenCaseInput {
  kind: string;
  sourceRef: string;
  cardNo: string | null;
  merchantId?: string | null;
  terminalId?: string | null;
  amountFen?: bigint | null;
  details: Record<string, unknown>;
  note: string | null;
}

/** Opens a case, idempotent by (kind, source_ref): the same signal twice is one case. */
export async function openCase(db: Db, input: OpenCaseInput, actor: Actor, now: Date): Promise<{ caseId: bigint; created: boolean }> {
  return withTx(db, async (tx) => {
    if (input.cardNo !== null) {
      const card = await tx.query(plans.card_of, [input.cardNo]);
      if (card.rows.length === 0) throw notFound('CARD_NOT_FOUND', 'No such card.');
    }
    const r = await tx.query<{ case_id: bigint }>(plans.open_case, [
      input.kind, input.sourceRef, input.cardNo, input.merchantId ?? null, input.terminalId ?? null,
      input.amountFen === undefined || input.amountFen === null ? null : String(input.amountFen), JSON.stringify(input.details), now, actor.keyId, input.note,
    ]);
    if (r.rows[0]) {
      await appendAudit(tx, [{ at: now, actor: actor.keyId, role: actor.role, purpose: null, action: 'CASE_OPEN', subject: `case:${caseIdText(r.rows[0].case_id)}`, fields: [], details: { kind: input.kind, source_ref: input.sourceRef } }]);
      return { caseId: r.rows[0].case_id, created: true };
    }
    const existing = await tx.query<{ id: bigint }>(plans.case_by_key, [input.kind, input.sourceRef]);
    return { caseId: existing.rows[0].id, created: false };
  });
}

async function lockCase(tx: Tx, id: bigint): Promise<CaseRow> {
  const r = await tx.query<CaseRow>(plans.lock_case, [String(id)]);
  if (!r.rows[0]) throw notFound('CASE_NOT_FOUND', 'No such case.');
  return r.rows[0];
}

async function step(tx: Tx, c: CaseRow, s: CaseStep, assignee: string | null, note: string | null, actor: Actor, now: Date, details: Record<string, string | boolean | null> = {}): Promise<void> {
  const plan = planCaseStep(c.state, s);
  await tx.query(plans.set_state, [String(c.id), plan.to, assignee]);
  await tx.query(plans.insert_event, [String(c.id), plan.from, plan.to, actor.keyId, note, now]);
  await appendAudit(tx, [{
    at: now, actor: actor.keyId, role: actor.role, purpose: null, action: `CASE_${s}`, subject: `case:${caseIdText(c.id)}`, fields: [],
    details: { from_state: plan.from, to_state: plan.to, assignee, ...details },
  }]);
}

export async function assignCase(db: Db, id: bigint, assignee: string, note: string | null, actor: Actor, now: Date): Promise<CaseDetail> {
  await withTx(db, async (tx) => step(tx, await lockCase(tx, id), 'ASSIGN', assignee, note, actor, now));
  return getCase(db, id);
}

export async function dismissCase(db: Db, id: bigint, note: string, actor: Actor, now: Date): Promise<CaseDetail> {
  await withTx(db, async (tx) => step(tx, await lockCase(tx, id), 'DISMISS', null, note, actor, now));
  return getCase(db, id);
}

export interface ConfirmInput {
  note: string;
  /** Suspend the case's card (its social-security functions), with this request id. */
  suspendCard: { requestId: string; reason: string } | null;
  integrityKind: IntegrityKind | null;
  /** FRAUD only: funds obtained and the fine multiple (decimal text, 2–5). */
  amountFen: bigint | null;
  fineMultiple: string | null;
}

export async function confirmCase(deps: LifecycleDeps, id: bigint, input: ConfirmInput, actor: Actor): Promise<{ case: CaseDetail; suspension: CardActionResult | null }> {
  const now = deps.now();
  const suspension = await withTx(deps.db, async (tx) => {
    const c = await lockCase(tx, id);
    planCaseStep(c.state, 'CONFIRM');
    const isFraud = c.kind === 'FRAUD';
    const hasTerms = input.amountFen !== null || input.fineMultiple !== null;
    if (isFraud && (input.amountFen === null || input.fineMultiple === null)) {
      throw badRequest('RECOVERY_TERMS_REQUIRED', 'Confirming a FRAUD case states the amount obtained (amount_fen) and the fine multiple (2 to 5).');
    }
    if (!isFraud && hasTerms) throw badRequest('RECOVERY_NOT_APPLICABLE', 'Only a FRAUD case records an amount to recover and a fine.');
    const terms = isFraud ? recoveryTerms(input.amountFen as bigint, input.fineMultiple as string) : null;
    if ((input.suspendCard !== null || terms !== null || input.integrityKind !== null) && c.card_no === null) {
      throw unprocessable('CASE_HAS_NO_CARD', 'This case names no card to suspend, charge or record against.');
    }
    const card = c.card_no === null ? null : ((await tx.query<Pick<CardRow, 'card_no' | 'person_id' | 'status'>>(plans.card_of, [c.card_no])).rows[0] ?? null);
    if (c.card_no !== null && card === null) throw notFound('CARD_NOT_FOUND', 'The case\'s card is not on record.');

    // Card before money: the same lock order as a lifecycle action (card row, then the cycle).
    let suspended: CardActionResult | null = null;
    if (input.suspendCard !== null && card !== null && card.status !== 'SUSPENDED') {
      suspended = await performCardActionInTx(tx, deps, {
        cardNo: card.card_no, action: 'SUSPEND', requestId: input.suspendCard.requestId, channel: 'SYSTEM', reason: input.suspendCard.reason, caseId: c.id,
      }, actor);
    }
    if (input.integrityKind !== null && card !== null) {
      await tx.query(plans.insert_integrity, [card.person_id === null ? null : String(card.person_id), card.card_no, input.integrityKind, String(c.id), input.note, now, actor.keyId]);
    }
    if (terms !== null && card !== null) {
      const cycle = await openCycleForWrite(tx, now, parseCutoff(deps.config.clearingCutoff));
      const receivable = `cardholder:${card.card_no}:receivable`;
      const meta = { cycle_id: cycle.id, case_id: caseIdText(c.id), fine_multiple: terms.fineMultiple };
      const entries: EntryInput[] = [
        { idemKey: `fraud-recovery:${c.id}:return`, kind: 'FRAUD_RECOVERY_DUE', businessDate: cycle.businessDate, description: 'funds obtained by fraud, to be returned', metadata: meta, lines: [{ debit: receivable, credit: 'centre:suspense', amountFen: terms.amountFen }] },
        { idemKey: `fraud-recovery:${c.id}:fine`, kind: 'FRAUD_FINE_DUE', businessDate: cycle.businessDate, description: 'fine for fraud, payable to the authority', metadata: meta, lines: [{ debit: receivable, credit: 'centre:suspense', amountFen: terms.fineFen }] },
      ];
      const posted = await deps.ledger.postBatch(tx, entries);
      await tx.query(plans.insert_recovery, [
        String(c.id), card.card_no, card.person_id === null ? null : String(card.person_id), String(terms.amountFen), terms.fineMultiple,
        String(terms.fineFen), String(terms.dueFen), posted.map((p) => String(p.entryId)), now, actor.keyId,
      ]);
    }
    await step(tx, c, 'CONFIRM', null, input.note, actor, now, {
      suspended: suspended !== null, integrity_kind: input.integrityKind,
      amount_fen: terms === null ? null : String(terms.amountFen), fine_fen: terms === null ? null : String(terms.fineFen),
    });
    return suspended;
  });
  return { case: await getCase(deps.db, id), suspension };
}

export interface CollectionInput {
  collectionId: string;
  amountFen: bigint;
  bankCode: string;
}

/** Money collected from the cardholder (through a bank) against a confirmed fraud recovery. */
export async function collectRecovery(deps: LifecycleDeps, id: bigint, input: CollectionInput, actor: Actor): Promise<{ collected_fen: string; due_fen: string; outstanding_fen: string; replayed: boolean }> {
  const now = deps.now();
  return withTx(deps.db, async (tx) => {
    const r = await tx.query<{ case_id: bigint; card_no: string; due_fen: bigint; collected_fen: bigint }>(plans.lock_recovery, [String(id)]);
    const rec = r.rows[0];
    if (!rec) throw notFound('RECOVERY_NOT_FOUND', 'This case has no recovery to collect (only a confirmed FRAUD case has one).');
    const prior = await tx.query<{ amount_fen: bigint; bank_code: string }>(plans.collection_by_id, [String(id), input.collectionId]);
    if (prior.rows[0]) {
      if (prior.rows[0].amount_fen !== input.amountFen || prior.rows[0].bank_code !== input.bankCode) {
        throw conflict('IDEMPOTENCY_CONFLICT', 'This collection id was already used for a different collection.');
      }
      return { collected_fen: String(rec.collected_fen), due_fen: String(rec.due_fen), outstanding_fen: String(rec.due_fen - rec.collected_fen), replayed: true };
    }
    if (input.amountFen <= 0n) throw badRequest('AMOUNT_INVALID', 'A collection is a positive number of fen.');
    if (input.amountFen > rec.due_fen - rec.collected_fen) {
      throw unprocessable('COLLECTION_EXCEEDS_DUE', 'The collection is more than is still owed.', { outstanding_fen: String(rec.due_fen - rec.collected_fen) });
    }
    const bank = await tx.query(plans.bank_exists, [input.bankCode]);
    if (bank.rows.length === 0) throw unprocessable('BANK_UNKNOWN', 'The bank is not a registered cooperating bank.');
    const cycle = await openCycleForWrite(tx, now, parseCutoff(deps.config.clearingCutoff));
    const [posted] = await deps.ledger.postBatch(tx, [{
      idemKey: `fraud-collection:${id}:${input.collectionId}`, kind: 'FRAUD_RECOVERY_COLLECTION', businessDate: cycle.businessDate,
      description: 'fraud recovery collected from the cardholder', metadata: { cycle_id: cycle.id, case_id: caseIdText(id) },
      lines: [{ debit: `bank:${input.bankCode}:clearing`, credit: `cardholder:${rec.card_no}:receivable`, amountFen: input.amountFen }],
    }]);
    await tx.query(plans.insert_collection, [String(id), input.collectionId, String(input.amountFen), input.bankCode, String(posted.entryId), now, actor.keyId]);
    const after = await tx.query<{ collected_fen: bigint; due_fen: bigint }>(plans.add_collected, [String(id), String(input.amountFen)]);
    await appendAudit(tx, [{
      at: now, actor: actor.keyId, role: actor.role, purpose: null, action: 'RECOVERY_COLLECTION', subject: `case:${caseIdText(id)}`, fields: [],
      details: { collection_id: input.collectionId, amount_fen: String(input.amountFen), bank_code: input.bankCode },
    }]);
    const a = after.rows[0];
    return { collected_fen: String(a.collected_fen), due_fen: String(a.due_fen), outstanding_fen: String(a.due_fen - a.collected_fen), replayed: false };
  });
}
