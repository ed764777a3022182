/**
 * Where a transit tap batch becomes records and postings. One parent function owns the control
 * flow of a batch (`uploadTapBatch`); the decisions are engine/ingest's pure functions over
 * arrays; this module only fetches their facts (one set-based statement per kind of fact) and
 * writes the result (a handful of set-based statements), all in ONE transaction with the receipt.
 *
 * Order inside the transaction, and why:
 *  1. advisory lock on (operator, batch_id): identical uploads take turns, the second replays;
 *  2. the open clearing cycle (shared cycle lock: a close waits for this batch, and vice versa);
 *  3. the operator's terminals, locked in id order: uploads sharing a terminal take turns, so
 *     terminal sequences and gaps are maintained without races;
 *  4. cards and their status history (reference data, no lock);
 *  5. pass 1 of the checks (pure);
 *  6. the candidates' card purses, locked in id order, with their balances: uploads sharing a
 *     card take turns, so a tap in two concurrent batches is seen by the second as DUPLICATE,
 *     and the purse cover is computed on balances nobody else can move;
 *  7. what was accepted before (tap keys, terminal sequence state), read after those locks;
 *  8. pass 2 (pure), purse cover, gap changes (pure);
 *  9. writes: batch + records, ledger entries (chunks of <= 10,000), risk cases, gap changes.
 * Locks are always taken in the order terminals → purses → (the ledger trigger's) hot accounts,
 * so two uploads cannot deadlock each other. Should a unique index still refuse a record (a race
 * this locking does not cover), the whole transaction is retried and sees the winner's rows.
 */
import { conflict, DomainError, forbidden } from '../../engine/errors.ts';
import {
  acceptedSeqsByTerminal,
  applySeqs,
  checkRecordFormat,
  checkWholeBatch,
  purseCover,
  resolveHistory,
  screenTaps,
  summarizeOutcomes,
  tapKey,
} from '../../engine/ingest/index.ts';
import type {
  CardStatus,
  CardStatusEvent,
  CloneSuspect,
  SeqGap,
  TapBatchInput,
  TapLimits,
  TapOutcome,
  TapReceipt,
  TapRecordInput,
  TapRejectReason,
  TerminalSeqState,
} from '../../engine/ingest/index.ts';
import { batch_entries_max, type EntryInput, type Ledger, type LineInput } from '../../ledger/index.ts';
import type { KeyStore } from '../crypto/index.ts';
import { openCycleForWrite, type OpenCycle } from '../postgres/cycles.ts';
import { withTx, type Db, type Queryable, type Tx } from '../postgres/db.ts';
import { decodeTapBatchJsonText, decodeTapBatchProtobuf, tapBatchDigest } from '../protobuf/tap-batch-codec.ts';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { from as copyFrom } from 'pg-copy-streams';
import { copy_null, copyBytea, copyText, plainArrayLiteral } from './copy-text.ts';
import { plans, prepared } from './plans.ts';

// ---------------------------------------------------------------------------------------------
// Limits and names
// ---------------------------------------------------------------------------------------------

/** A transaction refused by one of our unique indexes (a race) is retried this many times in all. */
export const transit_tx_attempts_max = 4;
/** Codes per Ledger.accountIdsFor call (see lockPurses). */
const account_ids_slice = 1_000;
/** Ledger entry kind of a tap, and the accounts it moves money between. */
export const tap_entry_kind = 'TRANSIT_TAP';
export const suspense_account = 'centre:suspense';
export const purseAccount = (cardNo: string) => `card:${cardNo}:purse`;
export const payableAccount = (operatorId: string) => `merchant:${operatorId}:payable`;
/** The tap's ledger idempotency key: the tap's identity on the card. */
export const tapEntryKey = (r: { cardNo: string; cardCounter: number; txnType: number }) => `tap:${tapKey(r)}`;

export const risk_kind_clone = 'CLONE_SUSPECT';
export const risk_kind_shortfall = 'PURSE_SHORTFALL';

/** Constraints whose violation means "another upload got there first": retry and see its rows. */
const race_constraints = new Set(['tap_accepted_once', 'tap_terminal_seq_once', 'tap_batch_pkey']);

export const transit_error = {
  operator_unknown: 'OPERATOR_UNKNOWN',
  operator_inactive: 'OPERATOR_INACTIVE',
  batch_id_conflict: 'BATCH_ID_CONFLICT',
  batch_contended: 'BATCH_CONTENDED',
} as const;

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

export interface TransitDeps {
  db: Db;
  ledger: Ledger;
  keyStore: KeyStore;
  /** The engine clock (received-at of a batch). */
  now: () => Date;
  /** Clearing cutoff in minutes after local midnight (parseCutoff of config.clearingCutoff). */
  cutoffMinutes: number;
  limits: TapLimits;
  bodyBytesMax: number;
}

export interface Uploader {
  /** The operator the credential acts for (its scope). */
  operatorId: string;
  /** The API key id, recorded as the actor. */
  keyId: string;
}

export type BodyFormat = 'PROTOBUF' | 'JSON';

export interface UploadStats {
  /** Records per outcome: 'ACCEPTED' or a reason code. */
  outcomes: Map<string, number>;
  shortfalls: number;
  clones: number;
  attempts: number;
}

export interface UploadResult {
  receipt: TapReceipt;
  /** True when this upload repeated an earlier one: nothing was written, the first receipt returned. */
  replayed: boolean;
  /** Only for an upload that was applied now. */
  stats: UploadStats | null;
}

type Row = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// Upload
// ---------------------------------------------------------------------------------------------

/**
 * Applies one uploaded batch (the raw body, as `format`), or replays its first receipt. Whole
 * batch refusals throw a 4xx DomainError and write nothing.
 */
export async function uploadTapBatch(deps: TransitDeps, uploader: Uploader, body: Buffer, format: BodyFormat): Promise<UploadResult> {
  const receivedAt = deps.now();
  // Who is asking comes before what was sent.
  await checkOperator(deps.db, uploader.operatorId);
  const batch = format === 'PROTOBUF'
    ? decodeTapBatchProtobuf(body, deps.bodyBytesMax)
    : decodeTapBatchJsonText(body, deps.bodyBytesMax);
  checkWholeBatch(batch, uploader.operatorId);
  const digest = tapBatchDigest(batch);

  // A replay needs no checks: answer it before the expensive part (re-checked under the lock).
  const earlier = await replayOf(deps.db, batch, digest);
  if (earlier !== null) return { receipt: earlier, replayed: true, stats: null };

  // Pure work outside the transaction, so locks and the connection are held only for I/O.
  const records = batch.records;
  const wellFormed = new Array<boolean>(records.length);
  for (let i = 0; i < records.length; i++) wellFormed[i] = checkRecordFormat(records[i]) === null;
  const tacValid = deps.keyStore.verifyTacs(records);

  for (let attempt = 1; ; attempt++) {
    try {
      const result = await withTx(deps.db, (tx) => applyBatch(tx, deps, uploader, batch, format, digest, receivedAt, wellFormed, tacValid));
      if (result.stats) result.stats.attempts = attempt;
      return result;
    } catch (e) {
      const constraint = (e as { code?: string; constraint?: string }).code === '23505' ? (e as { constraint?: string }).constraint : undefined;
      if (constraint === undefined || !race_constraints.has(constraint)) throw e;
      if (attempt >= transit_tx_attempts_max) {
        throw new DomainError(transit_error.batch_contended, 503,
          'Other uploads of the same taps kept winning the race for this batch; nothing was written. Send it again.',
          { attempts: attempt });
      }
    }
  }
}

async function checkOperator(db: Queryable, operatorId: string): Promise<void> {
  const r = await db.query<{ kind: string; is_operator: boolean; status: string }>(plans.operator, [operatorId]);
  const m = r.rows[0];
  if (m === undefined || m.kind !== 'TRANSIT' || !m.is_operator) {
    throw forbidden(transit_error.operator_unknown, 'This credential acts for an operator that is not a registered transit operator.');
  }
  if (m.status !== 'ACTIVE') {
    throw forbidden(transit_error.operator_inactive, `This transit operator is ${m.status.toLowerCase()}; it cannot upload taps.`,
      { status: m.status });
  }
}

/** The first receipt of this batch if it was applied with the same content; 409 if with other content. */
async function replayOf(q: Queryable, batch: TapBatchInput, digest: string): Promise<TapReceipt | null> {
  const r = await q.query<Row>(plans.batch_by_key, [batch.operatorId, batch.batchId]);
  const row = r.rows[0];
  if (row === undefined) return null;
  if (row.digest !== digest) {
    throw conflict(transit_error.batch_id_conflict,
      'This batch_id was already used for a batch with different content; nothing was written. Use a new batch_id.',
      { batchId: batch.batchId });
  }
  return receiptFromRow(row);
}

async function applyBatch(
  tx: Tx,
  deps: TransitDeps,
  uploader: Uploader,
  batch: TapBatchInput,
  format: BodyFormat,
  digest: string,
  receivedAt: Date,
  wellFormed: readonly boolean[],
  tacValid: readonly boolean[],
): Promise<UploadResult> {
  const operatorId = batch.operatorId;
  const records = batch.records;
  const n = records.length;

  await tx.query({ text: plans.lock_batch_key, values: [operatorId, batch.batchId] });
  const earlier = await replayOf(tx, batch, digest);
  if (earlier !== null) return { receipt: earlier, replayed: true, stats: null };
  const cycle = await openCycleForWrite(tx, receivedAt, deps.cutoffMinutes);

  // Facts for pass 1: one statement per kind, over the distinct ids of well-formed records.
  const terminalIds = new Set<string>();
  const cardNos = new Set<string>();
  for (let i = 0; i < n; i++) {
    if (!wellFormed[i]) continue;
    terminalIds.add(records[i].terminalId);
    cardNos.add(records[i].cardNo);
  }
  const terminalRows = await tx.query<{ id: string }>({
    name: prepared.lock_operator_terminals, text: plans.lock_operator_terminals, values: [plainArrayLiteral(sorted(terminalIds)), operatorId],
  });
  const operatorTerminals = new Set<string>();
  for (const t of terminalRows.rows) operatorTerminals.add(t.id);
  const cards = await cardFacts(tx, sorted(cardNos));

  const screened = screenTaps(records, {
    operatorTerminals, isIssued: (c) => !cards.unissued.has(c), statusHistories: cards.histories,
    hasKeyVersion: (v) => deps.keyStore.hasTacKey(v), tacValid,
  }, deps.limits, receivedAt.getTime(), wellFormed);

  // Candidates: lock their purses, then read their history.
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) if (screened[i] === null) candidates.push(i);
  let availableFen = new Map<string, bigint>();
  let history = { accepted: new Map<string, TapRecordInput & { batchNo: bigint; idx: number }>(), terminalSeqs: new Map<string, TerminalSeqState>() };
  if (candidates.length > 0) {
    availableFen = await lockPurses(tx, deps.ledger, records, candidates);
    history = await readHistory(tx, records, candidates);
  }
  const { outcomes, clones } = resolveHistory(records, screened, history);
  const coveredFen = purseCover(records, outcomes, availableFen);
  const summary = summarizeOutcomes(records, outcomes);

  const receipt: TapReceipt = {
    operatorId, batchId: batch.batchId, receivedAt: receivedAt.toISOString(), clearingCycleId: cycle.id, ...summary,
  };
  const batchNo = await insertBatch(tx, batch, format, digest, receivedAt, cycle, uploader, receipt, outcomes, coveredFen, wellFormed);

  const { entries, shortfalls } = tapEntries(operatorId, records, outcomes, coveredFen, cycle);
  const cases = riskCases(batch, clones, shortfalls, coveredFen);
  if (cases.kinds.length > 0) {
    await tx.query({ text: plans.raise_cases, values: [
      operatorId, receivedAt, cases.kinds, cases.sourceRefs, cases.cardNos, cases.terminalIds, cases.amounts, cases.details, uploader.keyId,
    ] });
  }
  await applyGapChanges(tx, operatorId, records, outcomes, history.terminalSeqs, batchNo, uploader.keyId, receivedAt);
  // Posted last, just before COMMIT: posting locks the operator's payable account, which every
  // upload of the operator credits, so concurrent uploads queue on it from here to their commit.
  for (let k = 0; k < entries.length; k += batch_entries_max) await postChunk(tx, deps.ledger, entries.slice(k, k + batch_entries_max));

  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const k = outcomes[i] ?? 'ACCEPTED';
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return { receipt, replayed: false, stats: { outcomes: counts, shortfalls: shortfalls.length, clones: clones.length, attempts: 1 } };
}

function sorted(values: Set<string>): string[] {
  return [...values].sort();
}

/** Which of these cards are not issued, and the status histories of those ever hotlisted or cancelled. */
async function cardFacts(tx: Tx, cardNos: string[]): Promise<{ unissued: Set<string>; histories: Map<string, CardStatusEvent[]> }> {
  const unissued = new Set<string>();
  const histories = new Map<string, CardStatusEvent[]>();
  if (cardNos.length === 0) return { unissued, histories };
  const r = await tx.query<{ card_no: string | null; issued: boolean | null; issued_count: bigint | null; statuses: CardStatus[] | null; effective_ms: number[] | null }>({
    name: prepared.card_exceptions, text: plans.card_exceptions, values: [plainArrayLiteral(cardNos)],
  });
  let issuedCount = -1n;
  for (const row of r.rows) {
    if (row.card_no === null) { issuedCount = row.issued_count as bigint; continue; }
    if (row.issued === false) { unissued.add(row.card_no); continue; }
    const statuses = row.statuses ?? [];
    const ms = row.effective_ms ?? [];
    const events = new Array<CardStatusEvent>(statuses.length);
    for (let k = 0; k < events.length; k++) events[k] = { status: statuses[k], effectiveAtMs: ms[k] };
    histories.set(row.card_no, events);
  }
  // Fail closed: every card not reported unissued must have been counted as issued.
  if (issuedCount !== BigInt(cardNos.length - unissued.size)) {
    throw new Error(`transit: card look-up inconsistent (${issuedCount} issued of ${cardNos.length}, ${unissued.size} unissued)`);
  }
  return { unissued, histories };
}

/**
 * Locks the candidates' purses (opening those never used) and returns, per card, what its purse
 * has available for this batch: its balance when that is less than the batch's taps of the card
 * add up to, else that sum (all of them are covered; their exact balance does not matter).
 */
async function lockPurses(tx: Tx, ledger: Ledger, records: readonly TapRecordInput[], candidates: readonly number[]): Promise<Map<string, bigint>> {
  const dueFen = new Map<string, number>();
  for (const i of candidates) {
    const r = records[i];
    dueFen.set(r.cardNo, (dueFen.get(r.cardNo) ?? 0) + r.amountFen);
  }
  const codes: string[] = [];
  for (const cardNo of dueFen.keys()) codes.push(purseAccount(cardNo));
  codes.sort();
  // In slices: Ledger.accountIdsFor is quadratic in the codes it has not cached yet (measured
  // ~12 ms for 1,000 uncached codes, seconds for 50,000); once cached, postBatch finds them all.
  const ids = new Map<string, bigint>();
  for (let k = 0; k < codes.length; k += account_ids_slice) {
    for (const [code, id] of await ledger.accountIdsFor(tx, codes.slice(k, k + account_ids_slice))) ids.set(code, id);
  }
  const cardOfId = new Map<bigint, string>();
  const idList: string[] = [];
  const dueList: number[] = [];
  const out = new Map<string, bigint>();
  for (const [code, id] of ids) {
    const cardNo = code.slice(5, code.length - 6);
    cardOfId.set(id, cardNo);
    idList.push(String(id));
    const due = dueFen.get(cardNo) as number;
    dueList.push(due);
    out.set(cardNo, BigInt(due));
  }
  const r = await tx.query<{ id: bigint | null; available_fen: bigint | null; locked: bigint | null }>({
    name: prepared.lock_purses, text: plans.lock_purses, values: [plainArrayLiteral(idList), plainArrayLiteral(dueList)],
  });
  let locked = -1n;
  for (const row of r.rows) {
    if (row.id === null) locked = row.locked as bigint;
    else out.set(cardOfId.get(row.id) as string, row.available_fen as bigint);
  }
  if (locked !== BigInt(idList.length)) throw new Error(`transit: ${locked} of ${idList.length} card purses were locked`);
  return out;
}

async function readHistory(tx: Tx, records: readonly TapRecordInput[], candidates: readonly number[]) {
  const kCard: string[] = [];
  const kCounter: number[] = [];
  const kType: number[] = [];
  const range = new Map<string, { lo: number; hi: number }>();
  for (const i of candidates) {
    const r = records[i];
    kCard.push(r.cardNo);
    kCounter.push(r.cardCounter);
    kType.push(r.txnType);
    const span = range.get(r.terminalId);
    if (span === undefined) range.set(r.terminalId, { lo: r.terminalSeq, hi: r.terminalSeq });
    else {
      if (r.terminalSeq < span.lo) span.lo = r.terminalSeq;
      if (r.terminalSeq > span.hi) span.hi = r.terminalSeq;
    }
  }
  const tIds: string[] = [];
  const tLo: number[] = [];
  const tHi: number[] = [];
  for (const [id, span] of range) { tIds.push(id); tLo.push(span.lo); tHi.push(span.hi); }
  const acceptedRows = await tx.query<Row>({
    name: prepared.accepted_by_keys, text: plans.accepted_by_keys, values: [plainArrayLiteral(kCard), plainArrayLiteral(kCounter), plainArrayLiteral(kType)],
  });
  const seqRows = await tx.query<Row>({
    text: plans.terminal_seq_state, values: [plainArrayLiteral(tIds), plainArrayLiteral(tLo), plainArrayLiteral(tHi)],
  });
  const accepted = new Map<string, TapRecordInput & { batchNo: bigint; idx: number }>();
  for (const row of acceptedRows.rows) {
    const rec = { ...recordFromRow(row), batchNo: row.batch_no as bigint, idx: row.idx as number };
    accepted.set(tapKey(rec), rec);
  }
  const terminalSeqs = new Map<string, TerminalSeqState>();
  for (const row of seqRows.rows) {
    if (row.seq_min === null) continue;
    const froms = (row.froms as bigint[] | null) ?? [];
    const tos = (row.tos as (bigint | string)[] | null) ?? [];
    const gaps: SeqGap[] = new Array(froms.length);
    for (let k = 0; k < froms.length; k++) gaps[k] = { from: Number(froms[k]), to: Number(tos[k]) };
    terminalSeqs.set(row.terminal_id as string, { seqMin: Number(row.seq_min), seqMax: Number(row.seq_max), gaps });
  }
  return { accepted, terminalSeqs };
}

function recordFromRow(row: Row): TapRecordInput {
  return {
    cardNo: row.card_no as string,
    cardCounter: Number(row.card_counter),
    txnType: row.txn_type as number,
    amountFen: Number(row.amount_fen),
    balanceBeforeFen: Number(row.balance_before_fen),
    terminalId: row.terminal_id as string,
    terminalSeq: Number(row.terminal_seq),
    localTime: row.local_time as string,
    keyVersion: row.key_version as number,
    tac: row.tac as string,
    lineId: (row.line_id as string | null) ?? '',
    stationId: (row.station_id as string | null) ?? '',
    entryStationId: (row.entry_station_id as string | null) ?? '',
    entryLocalTime: (row.entry_local_time as string | null) ?? '',
  };
}

async function insertBatch(
  tx: Tx,
  batch: TapBatchInput,
  format: BodyFormat,
  digest: string,
  receivedAt: Date,
  cycle: OpenCycle,
  uploader: Uploader,
  receipt: TapReceipt,
  outcomes: readonly TapOutcome[],
  coveredFen: readonly bigint[],
  wellFormed: readonly boolean[],
): Promise<bigint> {
  const records = batch.records;
  const n = records.length;
  const rejectedIndex = receipt.rejections.map((x) => x.index);
  const rejectedReason = receipt.rejections.map((x) => x.reason);
  const b = await tx.query<{ batch_no: bigint }>({ text: plans.insert_batch, values: [
    batch.operatorId, batch.batchId, digest, batch.createdAt, format, receivedAt, cycle.id, cycle.businessDate, n,
    receipt.acceptedCount, String(receipt.acceptedAmountFen), receipt.rejectedCount, String(receipt.rejectedAmountFen),
    rejectedIndex, rejectedReason, uploader.keyId,
  ] });
  const batchNo = b.rows[0].batch_no;
  const head = `${batchNo}\t`;
  const tail = `\t${cycle.businessDate}\t`;
  const operator = copyText(batch.operatorId);
  const lines = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const reason = outcomes[i];
    const outcome = reason === null ? 'ACCEPTED\t\\N' : `REJECTED\t${reason}`;
    if (!wellFormed[i]) {
      // Kept as sent, but as bytes: its strings may be anything a decoder let through.
      lines[i] = `${head}${i}\t${operator}\t${outcome}${malformed_fields}${tail}${copyBytea(Buffer.from(JSON.stringify(records[i]), 'utf8'))}\n`;
      continue;
    }
    const r = records[i];
    const short = reason === null ? BigInt(r.amountFen) - coveredFen[i] : 0n;
    lines[i] = `${head}${i}\t${operator}\t${outcome}\t${r.cardNo}\t${r.cardCounter}\t${r.txnType}\t${r.amountFen}\t` +
      `${r.balanceBeforeFen}\t${r.terminalId}\t${r.terminalSeq}\t${r.localTime}\t${r.keyVersion}\t${r.tac}\t` +
      `${optionalText(r.lineId)}\t${optionalText(r.stationId)}\t${optionalText(r.entryStationId)}\t${optionalText(r.entryLocalTime)}\t` +
      `${short > 0n ? String(short) : copy_null}${tail}${copy_null}\n`;
  }
  const copy = tx.query(copyFrom(plans.copy_records));
  await pipeline(Readable.from([lines.join('')]), copy);
  // Assert at the boundary: every record of the batch is kept.
  if (copy.rowCount !== n) throw new Error(`transit: ${copy.rowCount} of ${n} records were written`);
  return batchNo;
}

/** The 15 typed columns (card_no .. shortfall_fen) of a malformed record: all NULL. */
const malformed_fields = '\t\\N'.repeat(15);

function optionalText(v: string): string {
  return v === '' ? copy_null : copyText(v);
}

/**
 * Posts every accepted tap: what the purse covers from the card's purse, any shortfall from the
 * centre's suspense, both to the operator's payable, as one entry per tap. Returns the indexes
 * of taps with a shortfall.
 */
/** The ledger entries of the accepted taps (card purse → payable, a shortfall from suspense), and which taps fell short. */
function tapEntries(
  operatorId: string,
  records: readonly TapRecordInput[],
  outcomes: readonly TapOutcome[],
  coveredFen: readonly bigint[],
  cycle: OpenCycle,
): { entries: EntryInput[]; shortfalls: number[] } {
  const payable = payableAccount(operatorId);
  const shortfalls: number[] = [];
  const entries: EntryInput[] = [];
  for (let i = 0; i < records.length; i++) {
    if (outcomes[i] !== null) continue;
    const r = records[i];
    const amountFen = BigInt(r.amountFen);
    const covered = coveredFen[i];
    const lines: LineInput[] = [];
    if (covered > 0n) lines.push({ debit: purseAccount(r.cardNo), credit: payable, amountFen: covered });
    if (covered < amountFen) {
      lines.push({ debit: suspense_account, credit: payable, amountFen: amountFen - covered });
      shortfalls.push(i);
    }
    entries.push({ idemKey: tapEntryKey(r), kind: tap_entry_kind, businessDate: cycle.businessDate, lines });
  }
  return { entries, shortfalls };
}

async function postChunk(tx: Tx, ledger: Ledger, entries: EntryInput[]): Promise<void> {
  const results = await ledger.postBatch(tx, entries);
  // A tap posted before would have been refused as DUPLICATE: a replay here means the records
  // and the ledger disagree, which must not be papered over.
  for (const r of results) {
    if (r.replayed) throw new Error(`transit: ledger entry ${r.idemKey} already existed for a tap not accepted before`);
  }
}

function riskCases(batch: TapBatchInput, clones: readonly CloneSuspect[], shortfalls: readonly number[], coveredFen: readonly bigint[]) {
  const kinds: string[] = [];
  const sourceRefs: string[] = [];
  const cardNos: string[] = [];
  const terminalIds: string[] = [];
  const amounts: string[] = [];
  const details: string[] = [];
  for (const c of clones) {
    const r = batch.records[c.index];
    kinds.push(risk_kind_clone);
    sourceRefs.push(tapKey(r));
    cardNos.push(r.cardNo);
    terminalIds.push(r.terminalId);
    amounts.push(String(r.amountFen));
    const first = c.acceptedBefore as (TapRecordInput & { batchNo?: bigint; idx?: number }) | null;
    details.push(JSON.stringify({
      batch_id: batch.batchId, index: c.index, card_counter: r.cardCounter, txn_type: r.txnType,
      first_accepted: first === null
        ? { same_batch_index: c.acceptedIndexInBatch }
        : { batch_no: String(first.batchNo), index: first.idx, terminal_id: first.terminalId, terminal_seq: first.terminalSeq, local_time: first.localTime },
    }));
  }
  for (const i of shortfalls) {
    const r = batch.records[i];
    const shortfallFen = BigInt(r.amountFen) - coveredFen[i];
    kinds.push(risk_kind_shortfall);
    sourceRefs.push(tapKey(r));
    cardNos.push(r.cardNo);
    terminalIds.push(r.terminalId);
    amounts.push(String(shortfallFen));
    details.push(JSON.stringify({
      batch_id: batch.batchId, index: i, card_counter: r.cardCounter, txn_type: r.txnType,
      amount_fen: String(r.amountFen), covered_fen: String(coveredFen[i]), shortfall_fen: String(shortfallFen),
      suspense_account, entry_idem_key: tapEntryKey(r),
    }));
  }
  return { kinds, sourceRefs, cardNos, terminalIds, amounts, details };
}

async function applyGapChanges(
  tx: Tx,
  operatorId: string,
  records: readonly TapRecordInput[],
  outcomes: readonly TapOutcome[],
  states: ReadonlyMap<string, TerminalSeqState>,
  batchNo: bigint,
  actor: string,
  at: Date,
): Promise<void> {
  const closedT: string[] = [];
  const closedFrom: number[] = [];
  const openedT: string[] = [];
  const openedFrom: number[] = [];
  const openedTo: number[] = [];
  for (const [terminalId, seqs] of acceptedSeqsByTerminal(records, outcomes)) {
    const change = applySeqs(states.get(terminalId), seqs);
    for (const g of change.closed) { closedT.push(terminalId); closedFrom.push(g.from); }
    for (const g of change.opened) { openedT.push(terminalId); openedFrom.push(g.from); openedTo.push(g.to); }
  }
  const batch = String(batchNo);
  // Closing first: a split gap's remainder may start where the closed gap did (same key).
  if (closedT.length > 0) {
    await tx.query({ text: plans.close_gaps, values: [closedT, closedFrom, batch, actor, at] });
  }
  if (openedT.length > 0) {
    await tx.query({ text: plans.open_gaps, values: [openedT, openedFrom, openedTo, operatorId, batch, at, actor] });
  }
}

// ---------------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------------

function receiptFromRow(row: Row): TapReceipt {
  const index = row.rejected_index as number[];
  const reason = row.rejected_reason as TapRejectReason[];
  const rejections = new Array<{ index: number; reason: TapRejectReason }>(index.length);
  for (let k = 0; k < index.length; k++) rejections[k] = { index: index[k], reason: reason[k] };
  return {
    operatorId: row.operator_id as string,
    batchId: row.batch_id as string,
    receivedAt: (row.received_at as Date).toISOString(),
    clearingCycleId: row.cycle_id as string,
    acceptedCount: row.accepted_count as number,
    acceptedAmountFen: row.accepted_amount_fen as bigint,
    rejectedCount: row.rejected_count as number,
    rejectedAmountFen: row.rejected_amount_fen as bigint,
    rejections,
  };
}

/** The receipt of an applied batch, or null. */
export async function receiptOf(q: Queryable, operatorId: string, batchId: string): Promise<TapReceipt | null> {
  const r = await q.query<Row>(plans.batch_by_key, [operatorId, batchId]);
  return r.rows[0] === undefined ? null : receiptFromRow(r.rows[0]);
}

export interface OpenGap {
  terminalId: string;
  fromSeq: number;
  toSeq: number;
  openedAt: Date;
}

/** Open sequence gaps of an operator's terminals, cursor-paginated by (terminal, from_seq). */
export async function sequenceGaps(q: Queryable, operatorId: string, after: { terminalId: string; fromSeq: number } | null, limit: number): Promise<OpenGap[]> {
  const r = await q.query<{ terminal_id: string; from_seq: bigint; to_seq: bigint; opened_at: Date }>(plans.gaps_of_operator, [
    operatorId, after?.terminalId ?? null, after === null ? null : String(after.fromSeq), limit,
  ]);
  return r.rows.map((x) => ({ terminalId: x.terminal_id, fromSeq: Number(x.from_seq), toSeq: Number(x.to_seq), openedAt: x.opened_at }));
}

export interface ChainTapRow {
  cardCounter: number;
  txnType: number;
  amountFen: bigint;
  balanceBeforeFen: bigint;
  localTime: string;
  terminalId: string;
  terminalSeq: number;
  operatorId: string;
  batchId: string;
  index: number;
  loadBefore: boolean;
}

/**
 * One page of a card's accepted taps in counter order, from (counter, type) on, each with whether
 * a purse load came between it and the tap before it (on this page).
 */
export async function cardChain(q: Queryable, cardNo: string, from: { cardCounter: number; txnType: number }, limit: number): Promise<ChainTapRow[]> {
  const r = await q.query<Row>(plans.card_chain, [cardNo, String(from.cardCounter), from.txnType, limit, purseAccount(cardNo)]);
  return r.rows.map((x) => ({
    cardCounter: Number(x.card_counter), txnType: x.txn_type as number, amountFen: x.amount_fen as bigint,
    balanceBeforeFen: x.balance_before_fen as bigint, localTime: x.local_time as string, terminalId: x.terminal_id as string,
    terminalSeq: Number(x.terminal_seq), operatorId: x.operator_id as string, batchId: x.batch_id as string,
    index: x.idx as number, loadBefore: x.load_before as boolean,
  }));
}

