/**
 * Lifecycle actions on a card: activate, report loss, unfreeze, replace, cancel, suspend,
 * reinstate. Each runs in one transaction: lock the card, judge the move (engine/cards), write
 * the status event(s) and the card's status (which feeds the hotlist, 0007_cards.sql), move money
 * where the action moves money, record the action with its answer (a replay of the same request
 * id returns that answer), and append to the audit log.
 *
 * Money:
 * - replacement moves the old card's available purse and medical balances to the new card
 *   (kind CARD_REPLACEMENT);
 * - cancellation refunds them to the cardholder through the issuing bank (kind
 *   CARD_CANCEL_REFUND, credit `bank:{issuer}:clearing`), and records a `card_refund` row that the
 *   bank's next settlement package lists.
 * Both are posted in the open clearing cycle (openCycleForWrite). Only the *available* balance
 * moves: an online authorization still pending on the old card settles against it later.
 */
import { conflict, notFound, unprocessable } from '../../engine/errors.ts';
import { planAction, type CardAction, type CardStatus } from '../../engine/cards/index.ts';
import { parseCutoff } from '../../engine/clearing/calendar.ts';
import type { EntryInput, Ledger } from '../../ledger/index.ts';
import { canonicalJson } from '../crypto/index.ts';
import { appendAudit, type AuditEntry } from '../audit/index.ts';
import { openCycleForWrite } from '../postgres/cycles.ts';
import { withTx, type Db, type Tx } from '../postgres/db.ts';
import { issueCard } from './applications.ts';
import { hotlistVersion, plans as common_plans, writeReferenceEvents, writeStatusChanges, type Actor, type CardRow } from './common.ts';

export const plans = {
  action_by_request: `SELECT action, request_fingerprint, response FROM card_action WHERE card_no = $1 AND request_id = $2`,
  insert_action: `
    INSERT INTO card_action (card_no, request_id, action, from_status, to_status, effective_at, actor, role, channel, reason, case_id, new_card_no, request_fingerprint, response)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
  case_for_card: `SELECT id, card_no, state FROM risk_case WHERE id = $1`,
  // Same lock mode and order as the ledger's own balance update, so this never deadlocks with it.
  lock_accounts: `
    SELECT code, normal_side, debits_posted_fen, credits_posted_fen, debits_pending_fen
    FROM ledger_account WHERE code = ANY ($1::text[]) ORDER BY id FOR NO KEY UPDATE`,
  set_replaced_by: `UPDATE card SET replaced_by = $2 WHERE card_no = $1`,
  relink_ecards: `UPDATE card SET linked_card_no = $2 WHERE linked_card_no = $1 AND form = 'ECARD' AND status <> 'CANCELLED' RETURNING card_no`,
  insert_refunds: `
    INSERT INTO card_refund (card_no, account_purpose, issuing_bank, amount_fen, cycle_id, business_date, ledger_entry_id, created_at, created_by)
    SELECT card_no, purpose, $3, amount_fen, $4, $5, entry_id, $6, $7
    FROM unnest($1::text[], $2::text[], $8::bigint[], $9::bigint[]) AS r(card_no, purpose, amount_fen, entry_id)`,
} as const;

export interface CardActionRequest {
  cardNo: string;
  action: CardAction;
  requestId: string;
  channel: string;
  reason: string | null;
  /** SUSPEND: the misuse case the suspension belongs to. */
  caseId: bigint | null;
}

export interface CardActionResult {
  card_no: string;
  action: CardAction;
  request_id: string;
  from_status: CardStatus;
  to_status: CardStatus;
  effective_at: string;
  channel: string;
  new_card_no: string | null;
  /** Other cards changed with this one (a cancelled card's e-cards, a replaced card's relinked e-cards). */
  also_changed: { card_no: string; to_status: string | null; linked_card_no?: string }[];
  moved: { from: string; to: string; amount_fen: string; kind: string }[];
  hotlist_version: string;
  replayed: boolean;
}

export interface LifecycleDeps {
  db: Db;
  ledger: Ledger;
  now: () => Date;
  config: { clearingCutoff: string };
}

const money_purposes = ['purse', 'medical'] as const;

type Account = { code: string; available: bigint };

/** Available balances of a card's purse and medical accounts, locked (accounts never opened have nothing). */
async function lockCardBalances(tx: Tx, cardNos: readonly string[]): Promise<Map<string, Account>> {
  const codes = cardNos.flatMap((c) => money_purposes.map((p) => `card:${c}:${p}`));
  const r = await tx.query<{ code: string; normal_side: string; debits_posted_fen: bigint; credits_posted_fen: bigint; debits_pending_fen: bigint }>(plans.lock_accounts, [codes]);
  const out = new Map<string, Account>();
  // Card accounts are credit-normal and no-negative; pending debits (holds) are not available.
  for (const a of r.rows) out.set(a.code, { code: a.code, available: a.credits_posted_fen - a.debits_posted_fen - a.debits_pending_fen });
  return out;
}

/** Runs one lifecycle action in its own transaction. */
export async function performCardAction(deps: LifecycleDeps, req: CardActionRequest, actor: Actor): Promise<CardActionResult> {
  return withTx(deps.db, (tx) => performCardActionInTx(tx, deps, req, actor));
}

/** The same, in the caller's transaction (a case confirmation suspends the card in its own). */
export async function performCardActionInTx(tx: Tx, deps: LifecycleDeps, req: CardActionRequest, actor: Actor): Promise<CardActionResult> {
  const locked = await tx.query<CardRow>(common_plans.lock_card, [req.cardNo]);
  const card = locked.rows[0];
  if (!card) throw notFound('CARD_NOT_FOUND', 'No such card.');

  // Checked after the card's lock, so a concurrent replay waits for the first and then sees it.
  const fingerprint = canonicalJson({ action: req.action, channel: req.channel, reason: req.reason, caseId: req.caseId });
  const prior = await tx.query<{ action: string; request_fingerprint: string; response: CardActionResult }>(plans.action_by_request, [req.cardNo, req.requestId]);
  if (prior.rows[0]) {
    if (prior.rows[0].request_fingerprint !== fingerprint) {
      throw conflict('IDEMPOTENCY_CONFLICT', 'This request id was already used on this card for a different request.', { request_id: req.requestId });
    }
    return { ...prior.rows[0].response, replayed: true };
  }

  const plan = planAction(card.status as CardStatus, req.action);
  if (req.action === 'REPLACE' && card.form !== 'PHYSICAL') {
    throw conflict('CARD_TRANSITION_INVALID', 'An e-card is not replaced: it follows its physical card.', { form: card.form, action: req.action });
  }
  if (req.action === 'SUSPEND') {
    if (req.caseId === null) throw unprocessable('CASE_REQUIRED', 'A suspension names the misuse case it belongs to.');
    const c = await tx.query<{ id: bigint; card_no: string | null; state: string }>(plans.case_for_card, [String(req.caseId)]);
    if (!c.rows[0]) throw notFound('CASE_NOT_FOUND', 'No such case.');
    if (c.rows[0].card_no !== null && c.rows[0].card_no !== req.cardNo) {
      throw conflict('CASE_CARD_MISMATCH', 'That case is about another card.');
    }
  }

  const now = deps.now();
  const statusChanges: { cardNo: string; status: string }[] = [{ cardNo: card.card_no, status: plan.to }];
  const alsoChanged: CardActionResult['also_changed'] = [];
  const moved: CardActionResult['moved'] = [];
  const referenceEvents: Parameters<typeof writeReferenceEvents>[1][number][] = [];
  let newCardNo: string | null = null;

  if (req.action === 'REPLACE' || req.action === 'CANCEL') {
    const cycle = await openCycleForWrite(tx, now, parseCutoff(deps.config.clearingCutoff));
    const entries: EntryInput[] = [];
    const refunds: { cardNo: string; purpose: string; amountFen: bigint; idemKey: string }[] = [];
    if (req.action === 'REPLACE') {
      newCardNo = await issueCard(tx, 'PHYSICAL', card.issuing_bank, card.person_id, null, now);
      statusChanges.push({ cardNo: newCardNo, status: 'ISSUED' });
      referenceEvents.push({ cardNo: newCardNo, action: 'CREATED', changes: null });
      const balances = await lockCardBalances(tx, [card.card_no]);
      for (const purpose of money_purposes) {
        const from = `card:${card.card_no}:${purpose}`;
        const a = balances.get(from);
        if (!a || a.available <= 0n) continue;
        const to = `card:${newCardNo}:${purpose}`;
        entries.push({
          idemKey: `card-replacement:${card.card_no}:${purpose}`, kind: 'CARD_REPLACEMENT', businessDate: cycle.businessDate,
          description: `${purpose} balance moved to the replacement card`, metadata: { cycle_id: cycle.id, request_id: req.requestId },
          lines: [{ debit: from, credit: to, amountFen: a.available }],
        });
        moved.push({ from, to, amount_fen: String(a.available), kind: 'CARD_REPLACEMENT' });
      }
    } else {
      // A physical card's cancellation ends its e-cards too: the card is the identity they hang on.
      const cancelled: CardRow[] = [card];
      if (card.form === 'PHYSICAL') {
        const ecards = await tx.query<CardRow>(common_plans.lock_linked_ecards, [card.card_no]);
        for (const e of ecards.rows) {
          if (e.status === 'CANCELLED') continue;
          cancelled.push(e);
          statusChanges.push({ cardNo: e.card_no, status: 'CANCELLED' });
          alsoChanged.push({ card_no: e.card_no, to_status: 'CANCELLED' });
        }
      }
      const balances = await lockCardBalances(tx, cancelled.map((c) => c.card_no));
      for (const c of cancelled) {
        for (const purpose of money_purposes) {
          const from = `card:${c.card_no}:${purpose}`;
          const a = balances.get(from);
          if (!a || a.available <= 0n) continue;
          const to = `bank:${card.issuing_bank}:clearing`;
          const idemKey = `card-cancel-refund:${c.card_no}:${purpose}`;
          entries.push({
            idemKey, kind: 'CARD_CANCEL_REFUND', businessDate: cycle.businessDate,
            description: `${purpose} balance refunded to the cardholder through the issuing bank`, metadata: { cycle_id: cycle.id, request_id: req.requestId },
            lines: [{ debit: from, credit: to, amountFen: a.available }],
          });
          refunds.push({ cardNo: c.card_no, purpose, amountFen: a.available, idemKey });
          moved.push({ from, to, amount_fen: String(a.available), kind: 'CARD_CANCEL_REFUND' });
        }
      }
    }
    const posted = await deps.ledger.postBatch(tx, entries);
    if (refunds.length > 0) {
      const entryIds = new Map(posted.map((p) => [p.idemKey, p.entryId]));
      await tx.query(plans.insert_refunds, [
        refunds.map((r) => r.cardNo), refunds.map((r) => r.purpose), card.issuing_bank, cycle.id, cycle.businessDate, now, actor.keyId,
        refunds.map((r) => String(r.amountFen)), refunds.map((r) => String(entryIds.get(r.idemKey))),
      ]);
    }
  }

  await writeStatusChanges(tx, statusChanges, now, actor.keyId, req.reason ?? `${req.action} via ${req.channel}`);
  if (newCardNo !== null) {
    await tx.query(plans.set_replaced_by, [card.card_no, newCardNo]);
    referenceEvents.push({ cardNo: card.card_no, action: 'UPDATED', changes: { replaced_by: [null, newCardNo] } });
    const relinked = await tx.query<{ card_no: string }>(plans.relink_ecards, [card.card_no, newCardNo]);
    for (const r of relinked.rows) {
      alsoChanged.push({ card_no: r.card_no, to_status: null, linked_card_no: newCardNo });
      referenceEvents.push({ cardNo: r.card_no, action: 'UPDATED', changes: { linked_card_no: [card.card_no, newCardNo] } });
    }
  }
  await writeReferenceEvents(tx, referenceEvents, actor.keyId, now);

  const result: CardActionResult = {
    card_no: card.card_no, action: req.action, request_id: req.requestId, from_status: plan.from, to_status: plan.to,
    effective_at: now.toISOString(), channel: req.channel, new_card_no: newCardNo, also_changed: alsoChanged, moved,
    hotlist_version: String(await hotlistVersion(tx)), replayed: false,
  };
  await tx.query(plans.insert_action, [
    card.card_no, req.requestId, req.action, plan.from, plan.to, now, actor.keyId, actor.role, req.channel, req.reason,
    req.caseId === null ? null : String(req.caseId), newCardNo, fingerprint, JSON.stringify(result),
  ]);
  const audit: AuditEntry = {
    at: now, actor: actor.keyId, role: actor.role, purpose: null, action: `CARD_${req.action}`, subject: `card:${card.card_no}`, fields: [],
    details: {
      request_id: req.requestId, channel: req.channel, from_status: plan.from, to_status: plan.to, reason: req.reason,
      case_id: req.caseId === null ? null : `case_${req.caseId}`, new_card_no: newCardNo,
    },
  };
  await appendAudit(tx, [audit]);
  return result;
}
