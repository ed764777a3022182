/**
 * Programme funds: deposits recorded by finance (the programme's bank pays in: bank clearing →
 * programme fund) and disbursement batches uploaded by the programme. A batch is one
 * transaction: cards looked up in one query, each record checked in order against the fund's
 * balance, accepted payouts posted together (purse: fund → card purse at once; bank account:
 * fund → the issuing bank's clearing account, a DISBURSEMENT line of that bank's next package).
 * Idempotent by (programme, batch id): the same batch returns the first answer, another batch
 * under the same id is refused.
 */
import { createHash } from 'node:crypto';
import { conflict } from '../../engine/errors.ts';
import { parseCutoff } from '../../engine/clearing/calendar.ts';
import { batch_entries_max } from '../../ledger/rules.ts';
import type { EntryInput, Ledger } from '../../ledger/index.ts';
import { openCycleForWrite } from '../postgres/cycles.ts';
import { withTx, type Db } from '../postgres/db.ts';
import { plans } from './plans.ts';

export const disbursement_records_max = 10_000;
/** Per payout ceiling: 50,000 yuan; anything above is a data error, not a benefit. */
export const disbursement_amount_fen_max = 5_000_000n;

export type Destination = 'PURSE' | 'BANK_ACCOUNT';
export type DisbursementRefusal = 'UNKNOWN_CARD' | 'CARD_CANCELLED' | 'AMOUNT_OUT_OF_RANGE' | 'INSUFFICIENT_PROGRAMME_FUNDS';

export interface DisbursementRecord { cardNo: string; amountFen: bigint; purpose: string; destination: Destination }
export interface RecordResult { index: number; outcome: 'ACCEPTED' | 'REJECTED'; reason: DisbursementRefusal | null }
export interface BatchResult { replayed: boolean; cycleId: string; acceptedCount: number; acceptedFen: bigint; results: RecordResult[] }

export interface ProgrammeContext { db: Db; ledger: Ledger; cutoff: string }

const fund = (programmeId: string) => `programme:${programmeId}:fund`;

function batchDigest(records: readonly DisbursementRecord[]): string {
  const h = createHash('sha256');
  for (const r of records) h.update(`${r.cardNo}|${r.amountFen}|${r.purpose}|${r.destination}\n`);
  return h.digest('hex');
}

/** The id a payout carries into detail.csv (txn_id): short, and free of the card number. */
export function disbursementTxnId(programmeId: string, batchId: string, index: number): string {
  return `dsb_${createHash('sha256').update(`${programmeId}/${batchId}/${index}`).digest('hex').slice(0, 24)}`;
}

export async function recordDeposit(ctx: ProgrammeContext, programmeId: string, depositId: string, bankCode: string, amountFen: bigint, actor: string, now: Date) {
  return withTx(ctx.db, async (tx) => {
    await tx.query(plans.lock_programme, [programmeId]);
    const cycle = await openCycleForWrite(tx, now, parseCutoff(ctx.cutoff));
    const idemKey = `deposit:${programmeId}:${depositId}`;
    const ins = await tx.query(plans.insert_deposit, [programmeId, depositId, bankCode, amountFen, idemKey, cycle.id, cycle.businessDate, actor, now]);
    const row = (await tx.query<{ bank_code: string; amount_fen: bigint; cycle_id: string; business_date: string; created_at: Date }>(plans.deposit_by_id, [programmeId, depositId])).rows[0];
    if (ins.rows.length === 0) {
      if (row.bank_code !== bankCode || row.amount_fen !== amountFen) throw conflict('IDEMPOTENCY_CONFLICT', 'This deposit id was used with other content.');
      return { replayed: true, ...row };
    }
    await ctx.ledger.postBatch(tx, [{
      idemKey, kind: 'PROGRAMME_DEPOSIT', businessDate: cycle.businessDate, metadata: { programme_id: programmeId, deposit_id: depositId },
      lines: [{ debit: `bank:${bankCode}:clearing`, credit: fund(programmeId), amountFen }],
    }]);
    return { replayed: false, ...row };
  });
}

export async function disburse(ctx: ProgrammeContext, programmeId: string, batchId: string, records: readonly DisbursementRecord[], actor: string, now: Date): Promise<BatchResult> {
  const digest = batchDigest(records);
  return withTx(ctx.db, async (tx) => {
    await tx.query(plans.lock_programme, [programmeId]);
    const prior = await tx.query<{ digest: string; accepted_count: number; accepted_fen: bigint; cycle_id: string }>(plans.batch_by_id, [programmeId, batchId]);
    if (prior.rows.length > 0) {
      if (prior.rows[0].digest !== digest) throw conflict('IDEMPOTENCY_CONFLICT', 'This batch id was used with other records.');
      const rows = (await tx.query<{ idx: number; outcome: 'ACCEPTED' | 'REJECTED'; reason: DisbursementRefusal | null }>(plans.batch_records, [programmeId, batchId])).rows;
      return { replayed: true, cycleId: prior.rows[0].cycle_id, acceptedCount: prior.rows[0].accepted_count, acceptedFen: prior.rows[0].accepted_fen,
        results: rows.map((r) => ({ index: r.idx, outcome: r.outcome, reason: r.reason })) };
    }
    const cycle = await openCycleForWrite(tx, now, parseCutoff(ctx.cutoff));
    const cards = new Map((await tx.query<{ card_no: string; issuing_bank: string; status: string }>(plans.cards_of, [[...new Set(records.map((r) => r.cardNo))]])).rows
      .map((c) => [c.card_no, c]));
    let available = (await ctx.ledger.account(tx, fund(programmeId)))?.availableFen ?? 0n;
    const results: RecordResult[] = [];
    const entries: EntryInput[] = [];
    const banks: (string | null)[] = [];
    const keys: (string | null)[] = [];
    let acceptedFen = 0n;
    records.forEach((r, index) => {
      const card = cards.get(r.cardNo);
      let reason: DisbursementRefusal | null = null;
      if (card === undefined) reason = 'UNKNOWN_CARD';
      else if (card.status === 'CANCELLED') reason = 'CARD_CANCELLED';
      else if (r.amountFen <= 0n || r.amountFen > disbursement_amount_fen_max) reason = 'AMOUNT_OUT_OF_RANGE';
      else if (r.amountFen > available) reason = 'INSUFFICIENT_PROGRAMME_FUNDS';
      results.push({ index, outcome: reason === null ? 'ACCEPTED' : 'REJECTED', reason });
      banks.push(card?.issuing_bank ?? null);
      if (reason !== null || card === undefined) { keys.push(null); return; }
      available -= r.amountFen;
      acceptedFen += r.amountFen;
      const idemKey = `disb:${programmeId}:${batchId}:${index}`;
      keys.push(idemKey);
      entries.push({
        idemKey, kind: 'DISBURSEMENT', businessDate: cycle.businessDate,
        metadata: { programme_id: programmeId, batch_id: batchId, index, purpose: r.purpose, card_no: r.cardNo, disbursement_id: disbursementTxnId(programmeId, batchId, index) },
        lines: [{ debit: fund(programmeId), credit: r.destination === 'PURSE' ? `card:${r.cardNo}:purse` : `bank:${card.issuing_bank}:clearing`, amountFen: r.amountFen }],
      });
    });
    for (let i = 0; i < entries.length; i += batch_entries_max) await ctx.ledger.postBatch(tx, entries.slice(i, i + batch_entries_max));
    const accepted = results.filter((r) => r.outcome === 'ACCEPTED').length;
    await tx.query(plans.insert_batch, [programmeId, batchId, digest, records.length, accepted, acceptedFen, cycle.id, cycle.businessDate, actor, now]);
    await tx.query(plans.insert_disbursements, [
      programmeId, batchId, results.map((r) => r.index), records.map((r) => r.cardNo), records.map((r) => String(r.amountFen)),
      records.map((r) => r.purpose), records.map((r) => r.destination), results.map((r) => r.outcome), results.map((r) => r.reason), banks, keys,
    ]);
    return { replayed: false, cycleId: cycle.id, acceptedCount: accepted, acceptedFen, results };
  });
}
