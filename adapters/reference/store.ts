/**
 * Reference data in Postgres: set-based, all-or-nothing imports (a single create is an import of
 * one row), updates that keep who changed what, lists, and card status events.
 *
 * An import runs in the caller's transaction and, for n rows, makes a fixed handful of queries:
 * one for the rows' references (banks, merchants, linked cards), one for rows that already
 * exist, one INSERT … SELECT FROM unnest, one for the audit rows. If any row is refused, nothing
 * is written and every refused row is reported (index, code, message). A row that already
 * exists with the same content is a replay (counted as existing); with different content it is
 * a `*_CONFLICT`.
 */
import { conflict, DomainError, notFound, unprocessable } from '../../engine/errors.ts';
import {
  checkBank, checkCard, checkFeeSchedule, checkMerchant, checkStatusChange, checkTerminal, currentStep, latestEvent,
  sameBank, sameCard, sameFeeSchedule, sameMerchant, sameTerminal,
} from '../../engine/reference/index.ts';
import type {
  BankRecord, CardForm, CardIdentity, CardRecord, CardStatus, CardStatusEvent, Checked, FeeScheduleRecord, MerchantKind, MerchantRecord,
  MerchantStatus, RawRow, RowError, TerminalRecord, TerminalStatus,
} from '../../engine/reference/index.ts';
import { Decimal } from 'decimal.js';
import type { Queryable } from '../postgres/db.ts';
import * as plans from './plans.ts';

/** One request or file chunk: bounded so an import is one modest transaction. */
export const import_rows_max = 10_000;
export const list_limit_max = 500;
/** A card's whole history is read to judge a change; a real card has a handful of events. */
export const card_status_history_events_max = 10_000;

export interface WriteContext {
  /** Who: `key_…` for an API key, `cli:<user>`, `seed:<n>`. */
  actor: string;
  /** When (the caller's clock). */
  at: Date;
}

export interface ImportResult {
  created: number;
  existing: number;
  /** Empty when the import was applied; otherwise nothing was written. */
  errors: RowError[];
}

type Row = Record<string, unknown>;

/** What a reference event is about (the audit trail of reference_event). */
export const reference_entities = ['bank', 'merchant', 'fee_schedule', 'terminal', 'card'] as const;
export type ReferenceEntity = (typeof reference_entities)[number];
type Entity = ReferenceEntity;

// ----------------------------------------------------------------------------------- views

export interface Stamped { createdAt: Date; updatedAt: Date }
export type BankView = BankRecord & Stamped;
export type MerchantView = MerchantRecord & Stamped;
export type TerminalView = TerminalRecord & Stamped;
export type FeeScheduleView = FeeScheduleRecord & { createdAt: Date; createdBy: string };
export interface CardView extends CardIdentity {
  status: CardStatus;
  statusSince: Date;
  replacedBy: string | null;
  createdAt: Date;
}
export interface CardStatusEventView {
  id: bigint;
  cardNo: string;
  status: CardStatus;
  effectiveAt: Date;
  actor: string;
  reason: string | null;
  recordedAt: Date;
}

const toBank = (r: Row): BankView => ({ code: r.code as string, name: r.name as string, createdAt: r.created_at as Date, updatedAt: r.updated_at as Date });

const toMerchant = (r: Row): MerchantView => ({
  id: r.id as string, name: r.name as string, kind: r.kind as MerchantKind, isOperator: r.is_operator as boolean,
  acquiringBank: r.acquiring_bank as string, settlementAccount: r.settlement_account as string, status: r.status as MerchantStatus,
  createdAt: r.created_at as Date, updatedAt: r.updated_at as Date,
});

const toFeeSchedule = (r: Row): FeeScheduleView => ({
  merchantId: r.merchant_id as string, effectiveFrom: r.effective_from as string, rate: new Decimal(r.rate as string).toFixed(),
  minFen: r.min_fen as bigint, maxFen: r.max_fen as bigint, createdAt: r.created_at as Date, createdBy: r.created_by as string,
});

const toTerminal = (r: Row): TerminalView => ({
  id: r.id as string, merchantId: r.merchant_id as string, stationId: r.station_id as string | null, lineId: r.line_id as string | null,
  latitude: r.latitude as string | null, longitude: r.longitude as string | null, status: r.status as TerminalStatus,
  createdAt: r.created_at as Date, updatedAt: r.updated_at as Date,
});

const toCard = (r: Row): CardView => ({
  cardNo: r.card_no as string, issuingBank: r.issuing_bank as string, form: r.form as CardForm,
  linkedCardNo: r.linked_card_no as string | null, personId: r.person_id as bigint | null, dailyLimitFen: r.daily_limit_fen as bigint,
  status: r.status as CardStatus, statusSince: r.status_since as Date, replacedBy: r.replaced_by as string | null, createdAt: r.created_at as Date,
});

const toStatusEvent = (r: Row): CardStatusEventView => ({
  id: r.id as bigint, cardNo: r.card_no as string, status: r.status as CardStatus, effectiveAt: r.effective_at as Date,
  actor: r.actor as string, reason: r.reason as string | null, recordedAt: r.recorded_at as Date,
});

// ----------------------------------------------------------------------------- the import core

/** Refused rows, at most one refusal per row (the first rule it breaks). */
export class RowErrors {
  readonly list: RowError[] = [];
  readonly #indexes = new Set<number>();

  add(e: RowError): void {
    if (this.#indexes.has(e.index)) return;
    this.#indexes.add(e.index);
    this.list.push(e);
  }

  has(index: number): boolean {
    return this.#indexes.has(index);
  }

  sorted(): RowError[] {
    return [...this.list].sort((a, b) => a.index - b.index);
  }
}

/** A validated record and its row number in the request or file. */
export interface IndexedRecord<R> { index: number; record: R }

interface ImportSpec<R, V> {
  entity: Entity;
  conflictCode: string;
  key(r: R): string;
  fetch(q: Queryable, records: readonly R[]): Promise<V[]>;
  viewKey(v: V): string;
  same(r: R, v: V): boolean;
  /** Refusals that need the database (references), over the rows not yet refused. */
  refuse?(q: Queryable, rows: readonly IndexedRecord<R>[], errors: RowErrors): Promise<void>;
  /** Inserts and returns the keys actually inserted (others lost a race to a concurrent import). */
  insert(q: Queryable, records: readonly R[], ctx: WriteContext): Promise<string[]>;
  afterInsert?(q: Queryable, inserted: readonly R[], ctx: WriteContext): Promise<void>;
}

/**
 * The import of validated rows. `errors` may already hold refusals of other rows (bad format):
 * then the remaining rows are still checked, so one answer lists every problem, and nothing is
 * written.
 */
async function runImport<R, V>(q: Queryable, spec: ImportSpec<R, V>, items: readonly IndexedRecord<R>[], ctx: WriteContext, errors = new RowErrors()): Promise<ImportResult> {
  if (items.length + errors.list.length > import_rows_max) {
    throw unprocessable('IMPORT_TOO_LARGE', `An import holds at most ${import_rows_max} rows; split the file.`, { rows: items.length + errors.list.length });
  }
  const firstIndex = new Map<string, number>();
  const candidates: IndexedRecord<R>[] = [];
  for (const item of items) {
    const k = spec.key(item.record);
    const first = firstIndex.get(k);
    if (first !== undefined) {
      errors.add({ index: item.index, code: 'DUPLICATE_IN_IMPORT', message: `The same id is at index ${first} of this import.` });
      continue;
    }
    firstIndex.set(k, item.index);
    candidates.push(item);
  }
  if (spec.refuse) await spec.refuse(q, candidates, errors);
  const ok = candidates.filter((c) => !errors.has(c.index));

  const existing = new Map((await spec.fetch(q, ok.map((c) => c.record))).map((v) => [spec.viewKey(v), v]));
  const fresh: R[] = [];
  let existingCount = 0;
  for (const c of ok) {
    const v = existing.get(spec.key(c.record));
    if (v === undefined) fresh.push(c.record);
    else if (spec.same(c.record, v)) existingCount++;
    else errors.add({ index: c.index, code: spec.conflictCode, message: 'A record with this id already exists with different content.' });
  }
  if (errors.list.length > 0) return { created: 0, existing: 0, errors: errors.sorted() };

  const inserted = fresh.length === 0 ? [] : await spec.insert(q, fresh, ctx);
  if (inserted.length < fresh.length) {
    // A concurrent import created some of these rows between our read and our insert.
    const won = new Set(inserted);
    const lost = fresh.filter((r) => !won.has(spec.key(r)));
    const now = new Map((await spec.fetch(q, lost)).map((v) => [spec.viewKey(v), v]));
    for (const r of lost) {
      const v = now.get(spec.key(r));
      if (v === undefined || !spec.same(r, v)) {
        throw conflict(spec.conflictCode, 'A record with this id was created concurrently with different content; nothing was imported.');
      }
    }
    existingCount += lost.length;
  }
  if (inserted.length > 0) {
    const won = new Set(inserted);
    const insertedRecords = fresh.filter((r) => won.has(spec.key(r)));
    await q.query(plans.insert_reference_events, [spec.entity, insertedRecords.map(spec.key), 'CREATED', ctx.actor, ctx.at, []]);
    if (spec.afterInsert) await spec.afterInsert(q, insertedRecords, ctx);
  }
  return { created: inserted.length, existing: existingCount, errors: [] };
}

const indexed = <R>(records: readonly R[]): IndexedRecord<R>[] => records.map((record, index) => ({ index, record }));

/** Which of these ids exist (one query). */
async function existingIds(q: Queryable, sql: string, ids: Iterable<string>): Promise<Set<string>> {
  const list = [...new Set(ids)];
  if (list.length === 0) return new Set();
  const r = await q.query<Row>(sql, [list]);
  return new Set(r.rows.map((x) => (x.code ?? x.id ?? x.card_no) as string));
}

function refuseMissing<R>(rows: readonly IndexedRecord<R>[], errors: RowErrors, ref: (r: R) => string | null, known: Set<string>, code: string, field: string, what: string): void {
  for (const { index, record } of rows) {
    const id = ref(record);
    if (id !== null && !known.has(id)) errors.add({ index, code, field, message: `No ${what} ${id} is registered.` });
  }
}

// ----------------------------------------------------------------------------------- imports

const bankSpec: ImportSpec<BankRecord, BankView> = {
  entity: 'bank', conflictCode: 'BANK_CONFLICT',
  key: (r) => r.code,
  viewKey: (v) => v.code,
  fetch: async (q, rs) => (rs.length === 0 ? [] : (await q.query<Row>(plans.banks_by_codes, [rs.map((r) => r.code)])).rows.map(toBank)),
  same: sameBank,
  insert: async (q, rs, ctx) => (await q.query<{ code: string }>(plans.insert_banks, [rs.map((r) => r.code), rs.map((r) => r.name), ctx.at])).rows.map((x) => x.code),
};

export function importBanks(q: Queryable, records: readonly BankRecord[], ctx: WriteContext): Promise<ImportResult> {
  return runImport(q, bankSpec, indexed(records), ctx);
}

const merchantSpec: ImportSpec<MerchantRecord, MerchantView> = {
  entity: 'merchant', conflictCode: 'MERCHANT_CONFLICT',
  key: (r) => r.id,
  viewKey: (v) => v.id,
  fetch: async (q, rs) => (rs.length === 0 ? [] : (await q.query<Row>(plans.merchants_by_ids, [rs.map((r) => r.id)])).rows.map(toMerchant)),
  same: sameMerchant,
  async refuse(q, rows, errors) {
    const banks = await existingIds(q, plans.banks_by_codes, rows.map((r) => r.record.acquiringBank));
    refuseMissing(rows, errors, (r) => r.acquiringBank, banks, 'BANK_NOT_FOUND', 'acquiring_bank', 'bank');
  },
  insert: async (q, rs, ctx) => (await q.query<{ id: string }>(plans.insert_merchants, [
    rs.map((r) => r.id), rs.map((r) => r.name), rs.map((r) => r.kind), rs.map((r) => r.isOperator),
    rs.map((r) => r.acquiringBank), rs.map((r) => r.settlementAccount), rs.map((r) => r.status), ctx.at,
  ])).rows.map((x) => x.id),
};

export function importMerchants(q: Queryable, records: readonly MerchantRecord[], ctx: WriteContext): Promise<ImportResult> {
  return runImport(q, merchantSpec, indexed(records), ctx);
}

const feeKey = (merchantId: string, effectiveFrom: string) => `${merchantId}@${effectiveFrom}`;

const feeScheduleSpec: ImportSpec<FeeScheduleRecord, FeeScheduleView> = {
  entity: 'fee_schedule', conflictCode: 'FEE_SCHEDULE_CONFLICT',
  key: (r) => feeKey(r.merchantId, r.effectiveFrom),
  viewKey: (v) => feeKey(v.merchantId, v.effectiveFrom),
  fetch: async (q, rs) => (rs.length === 0 ? [] : (await q.query<Row>(plans.fee_schedules_by_keys, [rs.map((r) => r.merchantId), rs.map((r) => r.effectiveFrom)])).rows.map(toFeeSchedule)),
  same: sameFeeSchedule,
  async refuse(q, rows, errors) {
    const merchants = await existingIds(q, plans.merchants_by_ids, rows.map((r) => r.record.merchantId));
    refuseMissing(rows, errors, (r) => r.merchantId, merchants, 'MERCHANT_NOT_FOUND', 'merchant_id', 'merchant');
    // A schedule must not reach back into a cycle that has been closed: that cycle is priced.
    const r = await q.query<{ business_date: string | null }>(plans.last_closed_business_date);
    const closed = r.rows[0]?.business_date ?? null;
    if (closed === null) return;
    const existing = new Map((await this.fetch(q, rows.map((x) => x.record))).map((v) => [this.viewKey(v), v]));
    for (const { index, record } of rows) {
      const replay = existing.get(this.key(record));
      if (record.effectiveFrom <= closed && replay === undefined) {
        errors.add({ index, code: 'FEE_SCHEDULE_BACKDATED', field: 'effective_from', message: `effective_from must be after ${closed}, the last closed clearing cycle.` });
      }
    }
  },
  insert: async (q, rs, ctx) => (await q.query<{ merchant_id: string; effective_from: string }>(plans.insert_fee_schedules, [
    rs.map((r) => r.merchantId), rs.map((r) => r.effectiveFrom), rs.map((r) => r.rate), rs.map((r) => String(r.minFen)),
    rs.map((r) => String(r.maxFen)), ctx.at, ctx.actor,
  ])).rows.map((x) => feeKey(x.merchant_id, x.effective_from)),
};

export function importFeeSchedules(q: Queryable, records: readonly FeeScheduleRecord[], ctx: WriteContext): Promise<ImportResult> {
  return runImport(q, feeScheduleSpec, indexed(records), ctx);
}

const terminalSpec: ImportSpec<TerminalRecord, TerminalView> = {
  entity: 'terminal', conflictCode: 'TERMINAL_CONFLICT',
  key: (r) => r.id,
  viewKey: (v) => v.id,
  fetch: async (q, rs) => (rs.length === 0 ? [] : (await q.query<Row>(plans.terminals_by_ids, [rs.map((r) => r.id)])).rows.map(toTerminal)),
  same: sameTerminal,
  async refuse(q, rows, errors) {
    const merchants = await existingIds(q, plans.merchants_by_ids, rows.map((r) => r.record.merchantId));
    refuseMissing(rows, errors, (r) => r.merchantId, merchants, 'MERCHANT_NOT_FOUND', 'merchant_id', 'merchant');
  },
  insert: async (q, rs, ctx) => (await q.query<{ id: string }>(plans.insert_terminals, [
    rs.map((r) => r.id), rs.map((r) => r.merchantId), rs.map((r) => r.stationId), rs.map((r) => r.lineId),
    rs.map((r) => r.latitude), rs.map((r) => r.longitude), rs.map((r) => r.status), ctx.at,
  ])).rows.map((x) => x.id),
};

export function importTerminals(q: Queryable, records: readonly TerminalRecord[], ctx: WriteContext): Promise<ImportResult> {
  return runImport(q, terminalSpec, indexed(records), ctx);
}

const cardSpec: ImportSpec<CardRecord, CardView> = {
  entity: 'card', conflictCode: 'CARD_CONFLICT',
  key: (r) => r.cardNo,
  viewKey: (v) => v.cardNo,
  fetch: async (q, rs) => (rs.length === 0 ? [] : (await q.query<Row>(plans.cards_by_numbers, [rs.map((r) => r.cardNo)])).rows.map(toCard)),
  same: (r, v) => sameCard(r, v),
  async refuse(q, rows, errors) {
    const banks = await existingIds(q, plans.banks_by_codes, rows.map((r) => r.record.issuingBank));
    refuseMissing(rows, errors, (r) => r.issuingBank, banks, 'BANK_NOT_FOUND', 'issuing_bank', 'bank');
    // An e-card's physical twin: already issued, or in this same import (one INSERT statement
    // checks its foreign keys at the end, so the order of rows does not matter).
    const linked = rows.map((r) => r.record.linkedCardNo).filter((x): x is string => x !== null);
    if (linked.length === 0) return;
    const formOf = new Map<string, CardForm>();
    for (const { record } of rows) formOf.set(record.cardNo, record.form);
    const stored = await q.query<{ card_no: string; form: CardForm }>(plans.cards_by_numbers, [[...new Set(linked)]]);
    for (const r of stored.rows) formOf.set(r.card_no, r.form);
    for (const { index, record } of rows) {
      if (record.linkedCardNo === null || errors.has(index)) continue;
      const form = formOf.get(record.linkedCardNo);
      if (form === undefined) errors.add({ index, code: 'LINKED_CARD_NOT_FOUND', field: 'linked_card_no', message: 'The linked physical card is not registered.' });
      else if (form !== 'PHYSICAL') errors.add({ index, code: 'LINKED_CARD_INVALID', field: 'linked_card_no', message: 'An e-card links to a PHYSICAL card.' });
    }
  },
  insert: async (q, rs, ctx) => (await q.query<{ card_no: string }>(plans.insert_cards, [
    rs.map((r) => r.cardNo), rs.map((r) => r.issuingBank), rs.map((r) => r.form), rs.map((r) => r.linkedCardNo),
    rs.map((r) => (r.personId === null ? null : String(r.personId))), rs.map((r) => currentStep(r).status),
    rs.map((r) => currentStep(r).effectiveAt), rs.map((r) => String(r.dailyLimitFen)), ctx.at,
  ])).rows.map((x) => x.card_no),
  async afterInsert(q, rs, ctx) {
    const cardNos: string[] = [];
    const statuses: string[] = [];
    const times: Date[] = [];
    for (const r of rs) {
      for (const step of r.history) {
        cardNos.push(r.cardNo);
        statuses.push(step.status);
        times.push(step.effectiveAt);
      }
    }
    await q.query(plans.insert_card_status_events, [cardNos, statuses, times, ctx.actor, 'history at registration', ctx.at]);
  },
};

/** Cards with their status history at creation (ISSUED, and ACTIVE or a later status if given). */
export function importCards(q: Queryable, records: readonly CardRecord[], ctx: WriteContext): Promise<ImportResult> {
  return runImport(q, cardSpec, indexed(records), ctx);
}

// ------------------------------------------------------------------------------------ reads

export async function getBank(q: Queryable, code: string): Promise<BankView | undefined> {
  return (await bankSpec.fetch(q, [{ code, name: '' }]))[0];
}

export async function getMerchant(q: Queryable, id: string): Promise<MerchantView | undefined> {
  const r = await q.query<Row>(plans.merchants_by_ids, [[id]]);
  return r.rows[0] ? toMerchant(r.rows[0]) : undefined;
}

export async function getFeeSchedule(q: Queryable, merchantId: string, effectiveFrom: string): Promise<FeeScheduleView | undefined> {
  const r = await q.query<Row>(plans.fee_schedules_by_keys, [[merchantId], [effectiveFrom]]);
  return r.rows[0] ? toFeeSchedule(r.rows[0]) : undefined;
}

export async function getTerminal(q: Queryable, id: string): Promise<TerminalView | undefined> {
  const r = await q.query<Row>(plans.terminals_by_ids, [[id]]);
  return r.rows[0] ? toTerminal(r.rows[0]) : undefined;
}

export async function getCard(q: Queryable, cardNo: string): Promise<CardView | undefined> {
  const r = await q.query<Row>(plans.cards_by_numbers, [[cardNo]]);
  return r.rows[0] ? toCard(r.rows[0]) : undefined;
}

function checkLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > list_limit_max) {
    throw unprocessable('LIMIT_INVALID', `limit is 1..${list_limit_max}.`);
  }
  return limit;
}

export async function listBanks(q: Queryable, after: string | null, limit: number): Promise<BankView[]> {
  return (await q.query<Row>(plans.list_banks, [after, checkLimit(limit)])).rows.map(toBank);
}

export interface MerchantFilter { kind?: MerchantKind; isOperator?: boolean; acquiringBank?: string; status?: MerchantStatus }

export async function listMerchants(q: Queryable, after: string | null, f: MerchantFilter, limit: number): Promise<MerchantView[]> {
  return (await q.query<Row>(plans.list_merchants, [after, f.kind ?? null, f.isOperator ?? null, f.acquiringBank ?? null, f.status ?? null, checkLimit(limit)])).rows.map(toMerchant);
}

export async function listFeeSchedules(q: Queryable, merchantId: string, after: string | null, limit: number): Promise<FeeScheduleView[]> {
  return (await q.query<Row>(plans.list_fee_schedules, [merchantId, after, checkLimit(limit)])).rows.map(toFeeSchedule);
}

export interface TerminalFilter { merchantId?: string; lineId?: string; status?: TerminalStatus }

export async function listTerminals(q: Queryable, after: string | null, f: TerminalFilter, limit: number): Promise<TerminalView[]> {
  return (await q.query<Row>(plans.list_terminals, [after, f.merchantId ?? null, f.lineId ?? null, f.status ?? null, checkLimit(limit)])).rows.map(toTerminal);
}

export interface CardFilter { issuingBank?: string; status?: CardStatus; form?: CardForm }

export async function listCards(q: Queryable, after: string | null, f: CardFilter, limit: number): Promise<CardView[]> {
  return (await q.query<Row>(plans.list_cards, [after, f.issuingBank ?? null, f.status ?? null, f.form ?? null, checkLimit(limit)])).rows.map(toCard);
}

export async function listCardStatusEvents(q: Queryable, cardNo: string, afterId: bigint | null, limit: number): Promise<CardStatusEventView[]> {
  const r = await q.query<Row>(plans.card_status_events_of, [cardNo, afterId === null ? null : String(afterId), checkLimit(limit)]);
  return r.rows.map(toStatusEvent);
}

/**
 * The status histories of many cards in one query, for ingestion: pass each card's list to
 * `cardStatusAt(events, tapTime)`. Cards without events (unknown cards) are absent.
 */
export async function cardStatusEvents(q: Queryable, cardNos: readonly string[]): Promise<Map<string, CardStatusEvent[]>> {
  const out = new Map<string, CardStatusEvent[]>();
  if (cardNos.length === 0) return out;
  const r = await q.query<Row>(plans.card_status_events_of_cards, [[...new Set(cardNos)]]);
  for (const row of r.rows) {
    const cardNo = row.card_no as string;
    let list = out.get(cardNo);
    if (list === undefined) out.set(cardNo, (list = []));
    list.push({ id: row.id as bigint, status: row.status as CardStatus, effectiveAt: row.effective_at as Date });
  }
  return out;
}

// ---------------------------------------------------------------------------------- updates

export interface UpdateResult<V> { record: V; changed: boolean }

type Changes = Record<string, [unknown, unknown]>;

function diff(before: Record<string, unknown>, after: Record<string, unknown>, fields: readonly string[]): Changes {
  const out: Changes = {};
  for (const f of fields) if (before[f] !== after[f]) out[f] = [before[f] ?? null, after[f] ?? null];
  return out;
}

async function audit(q: Queryable, entity: Entity, id: string, changes: Changes, ctx: WriteContext): Promise<void> {
  await q.query(plans.insert_reference_events, [entity, [id], 'UPDATED', ctx.actor, ctx.at, [JSON.stringify(changes)]]);
}

function refusal(e: RowError): DomainError {
  return unprocessable(e.code, e.message, e.field ? { field: e.field } : undefined);
}

/** Rename a bank. The code is its identity and never changes. */
export async function updateBank(q: Queryable, code: string, patch: { name?: unknown }, ctx: WriteContext): Promise<UpdateResult<BankView>> {
  const r = await q.query<Row>(plans.lock_bank, [code]);
  if (!r.rows[0]) throw notFound('BANK_NOT_FOUND', 'No such bank.');
  const before = toBank(r.rows[0]);
  const checked = checkBank({ code, name: patch.name ?? before.name });
  if (!checked.ok) throw refusal(checked.error);
  const changes = diff({ name: before.name }, { name: checked.record.name }, ['name']);
  if (Object.keys(changes).length === 0) return { record: before, changed: false };
  await q.query(plans.update_bank, [code, checked.record.name, ctx.at]);
  await audit(q, 'bank', code, changes, ctx);
  return { record: { ...before, ...checked.record, updatedAt: ctx.at }, changed: true };
}

export const merchant_patchable = ['name', 'acquiring_bank', 'settlement_account', 'status'] as const;

/**
 * Change what may change about a merchant: name, acquiring bank, settlement account, status.
 * Kind and operator role are its identity for pricing and for tap uploads: a new merchant id.
 */
export async function updateMerchant(q: Queryable, id: string, patch: Partial<Record<(typeof merchant_patchable)[number], unknown>>, ctx: WriteContext): Promise<UpdateResult<MerchantView>> {
  const r = await q.query<Row>(plans.lock_merchant, [id]);
  if (!r.rows[0]) throw notFound('MERCHANT_NOT_FOUND', 'No such merchant.');
  const before = toMerchant(r.rows[0]);
  const checked = checkMerchant({
    id, kind: before.kind, is_operator: before.isOperator,
    name: patch.name ?? before.name, acquiring_bank: patch.acquiring_bank ?? before.acquiringBank,
    settlement_account: patch.settlement_account ?? before.settlementAccount, status: patch.status ?? before.status,
  });
  if (!checked.ok) throw refusal(checked.error);
  const after = checked.record;
  const changes = diff(
    { name: before.name, acquiring_bank: before.acquiringBank, settlement_account: before.settlementAccount, status: before.status },
    { name: after.name, acquiring_bank: after.acquiringBank, settlement_account: after.settlementAccount, status: after.status },
    merchant_patchable);
  if (Object.keys(changes).length === 0) return { record: before, changed: false };
  if (changes.acquiring_bank && (await existingIds(q, plans.banks_by_codes, [after.acquiringBank])).size === 0) {
    throw unprocessable('BANK_NOT_FOUND', `No bank ${after.acquiringBank} is registered.`, { field: 'acquiring_bank' });
  }
  await q.query(plans.update_merchant, [id, after.name, after.acquiringBank, after.settlementAccount, after.status, ctx.at]);
  await audit(q, 'merchant', id, changes, ctx);
  return { record: { ...before, ...after, updatedAt: ctx.at }, changed: true };
}

export const terminal_patchable = ['station_id', 'line_id', 'latitude', 'longitude', 'status'] as const;

/**
 * Move a terminal to another station or line, or retire it. Its merchant never changes: a PSAM
 * moved to another operator is registered again under a new id.
 */
export async function updateTerminal(q: Queryable, id: string, patch: Partial<Record<(typeof terminal_patchable)[number], unknown>>, ctx: WriteContext): Promise<UpdateResult<TerminalView>> {
  const r = await q.query<Row>(plans.lock_terminal, [id]);
  if (!r.rows[0]) throw notFound('TERMINAL_NOT_FOUND', 'No such terminal.');
  const before = toTerminal(r.rows[0]);
  const pick = (k: (typeof terminal_patchable)[number], current: unknown) => (k in patch ? patch[k] : current);
  const checked = checkTerminal({
    id, merchant_id: before.merchantId, station_id: pick('station_id', before.stationId), line_id: pick('line_id', before.lineId),
    latitude: pick('latitude', before.latitude), longitude: pick('longitude', before.longitude), status: pick('status', before.status),
  });
  if (!checked.ok) throw refusal(checked.error);
  const after = checked.record;
  const asRow = (t: TerminalRecord) => ({ station_id: t.stationId, line_id: t.lineId, latitude: t.latitude, longitude: t.longitude, status: t.status });
  const changes = diff(asRow(before), asRow(after), terminal_patchable);
  if (Object.keys(changes).length === 0) return { record: before, changed: false };
  await q.query(plans.update_terminal, [id, after.stationId, after.lineId, after.latitude, after.longitude, after.status, ctx.at]);
  await audit(q, 'terminal', id, changes, ctx);
  return { record: { ...before, ...after, updatedAt: ctx.at }, changed: true };
}

export interface ReferenceEventView { id: bigint; entity: string; entityId: string; action: string; actor: string; at: Date; changes: unknown }

/** Who created and changed a record, oldest first (fee schedules: `<merchant>@<effective_from>`). */
export async function referenceEvents(q: Queryable, entity: ReferenceEntity, entityId: string, afterId: bigint | null, limit: number): Promise<ReferenceEventView[]> {
  const r = await q.query<Row>(plans.reference_events_of, [entity, entityId, checkLimit(limit), afterId === null ? null : String(afterId)]);
  return r.rows.map((x) => ({ id: x.id as bigint, entity: x.entity as string, entityId: x.entity_id as string, action: x.action as string, actor: x.actor as string, at: x.at as Date, changes: x.changes }));
}

// ------------------------------------------------------------------------- card status events

export interface CardStatusChange {
  cardNo: string;
  status: CardStatus;
  effectiveAt: Date;
  actor: string;
  reason?: string | null;
  /** When it was recorded; the database's clock if not given. */
  recordedAt?: Date;
}

export interface CardStatusResult {
  event: CardStatusEventView;
  /** True when this exact change (status and effective time) was already recorded. */
  replayed: boolean;
  /** The card's current status after the change (its latest event). */
  card: { status: CardStatus; statusSince: Date };
}

/**
 * Add an event to a card's status history, in the caller's transaction, and keep `card.status`
 * equal to the latest event. Changes of one card are serialized by its row lock, so two loss
 * reports racing cannot both judge against a stale history.
 */
export async function recordCardStatus(q: Queryable, change: CardStatusChange): Promise<CardStatusResult> {
  const locked = await q.query(plans.lock_card, [change.cardNo]);
  if (locked.rows.length === 0) throw notFound('CARD_NOT_FOUND', 'No such card.');
  const rows = (await q.query<Row>(plans.card_status_events_of, [change.cardNo, null, card_status_history_events_max])).rows.map(toStatusEvent);
  if (rows.length >= card_status_history_events_max) {
    throw new DomainError('CARD_HISTORY_TOO_LONG', 409, 'This card has too many status events to judge another; investigate it.');
  }
  const verdict = checkStatusChange(rows, { status: change.status, effectiveAt: change.effectiveAt });
  if (verdict.kind === 'refuse') {
    const status = verdict.code === 'CARD_STATUS_BEFORE_ISSUE' ? 422 : 409;
    throw new DomainError(verdict.code, status, verdict.message);
  }
  if (verdict.kind === 'replay') {
    const now = (await q.query<{ status: CardStatus; status_since: Date }>(plans.card_status_now, [change.cardNo])).rows[0];
    return { event: verdict.event as CardStatusEventView, replayed: true, card: { status: now.status, statusSince: now.status_since } };
  }
  const inserted = await q.query<Row>(plans.insert_card_status_event, [
    change.cardNo, change.status, change.effectiveAt, change.actor, change.reason ?? null, change.recordedAt ?? null,
  ]);
  const event = toStatusEvent(inserted.rows[0]);
  await q.query(plans.sync_card_status, [change.cardNo]);
  const latest = latestEvent([...rows, event]) as CardStatusEventView;
  return { event, replayed: false, card: { status: latest.status, statusSince: latest.effectiveAt } };
}

// ------------------------------------------------------------------------------- raw rows

export const reference_kinds = ['banks', 'merchants', 'fee-schedules', 'terminals', 'cards'] as const;
export type ReferenceKind = (typeof reference_kinds)[number];

/**
 * Validate raw rows (HTTP import bodies, JSON or CSV files) and import them, all or nothing:
 * errors of format and of the database are reported together, by row index.
 */
export async function importRows(q: Queryable, kind: ReferenceKind, rows: readonly RawRow[], ctx: WriteContext): Promise<ImportResult> {
  switch (kind) {
    case 'banks': return importRaw(q, bankSpec, rows, (r, i) => checkBank(r, i), ctx);
    case 'merchants': return importRaw(q, merchantSpec, rows, (r, i) => checkMerchant(r, i), ctx);
    case 'fee-schedules': return importRaw(q, feeScheduleSpec, rows, (r, i) => checkFeeSchedule(r, i), ctx);
    case 'terminals': return importRaw(q, terminalSpec, rows, (r, i) => checkTerminal(r, i), ctx);
    case 'cards': return importRaw(q, cardSpec, rows, (r, i) => checkCard(r, ctx.at, i), ctx);
  }
}

function importRaw<R, V>(q: Queryable, spec: ImportSpec<R, V>, rows: readonly RawRow[], check: (row: RawRow, index: number) => Checked<R>, ctx: WriteContext): Promise<ImportResult> {
  if (rows.length > import_rows_max) {
    throw unprocessable('IMPORT_TOO_LARGE', `An import holds at most ${import_rows_max} rows; split the file.`, { rows: rows.length });
  }
  const errors = new RowErrors();
  const items: IndexedRecord<R>[] = [];
  rows.forEach((row, index) => {
    const c = check(row, index);
    if (c.ok) items.push({ index, record: c.record });
    else errors.add(c.error);
  });
  return runImport(q, spec, items, ctx, errors);
}
