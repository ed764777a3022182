/**
 * What becomes of each tap of a batch (TRANSIT-BATCH.md "Per-record outcome"), how much of an
 * accepted tap the card's shadow purse covers, the per-terminal sequence gaps, and the receipt.
 *
 * Pure: the adapter (adapters/ingest) looks the facts up with one set-based query per kind and
 * hands them over as arrays and maps; nothing here does I/O or reads a clock. The checks run in
 * two passes because the second one needs facts that may only be read under the card locks:
 *
 *   screenTaps      MALFORMED ... CARD_HOTLISTED   (the record, reference data, keys, the clock)
 *   resolveHistory  DUPLICATE, CLONE_SUSPECT, DUPLICATE_TERMINAL_SEQ  (what was accepted before)
 *
 * Each record gets the first failing check in the spec's order; `decideTaps` runs both passes.
 * Loops are plain and allocation-light: a batch holds up to 50,000 records.
 */
import type { TapRecordInput } from './tap-batch.ts';
import { checkRecordFormat, parseLocalTime } from './tap-batch.ts';

// ---------------------------------------------------------------------------------------------
// Reason codes, in the spec's order
// ---------------------------------------------------------------------------------------------

export const tap_reject = {
  malformed: 'MALFORMED',
  amount_out_of_range: 'AMOUNT_OUT_OF_RANGE',
  insufficient_purse: 'INSUFFICIENT_PURSE',
  unknown_terminal: 'UNKNOWN_TERMINAL',
  unknown_card: 'UNKNOWN_CARD',
  unknown_key_version: 'UNKNOWN_KEY_VERSION',
  bad_tac: 'BAD_TAC',
  future_tap: 'FUTURE_TAP',
  stale_tap: 'STALE_TAP',
  card_cancelled: 'CARD_CANCELLED',
  card_hotlisted: 'CARD_HOTLISTED',
  duplicate: 'DUPLICATE',
  clone_suspect: 'CLONE_SUSPECT',
  duplicate_terminal_seq: 'DUPLICATE_TERMINAL_SEQ',
} as const;

export type TapRejectReason = (typeof tap_reject)[keyof typeof tap_reject];

/** The spec's order of checks: a record failing several gets the first. */
export const tap_reject_order: readonly TapRejectReason[] = Object.values(tap_reject);

/** A record's outcome: null is ACCEPTED. */
export type TapOutcome = TapRejectReason | null;

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/** FUTURE_TAP: a terminal clock may run this far ahead of the engine's before a tap is refused. */
export const future_tap_ms_max = 10 * 60 * 1000;
const ms_per_day = 86_400_000;

export interface TapLimits {
  /** The single-tap limit (config TAP_AMOUNT_FEN_MAX, default 20,000 fen). */
  amountFenMax: number;
  /** The acceptance window (config TAP_AGE_DAYS_MAX, default 30 days). */
  ageDaysMax: number;
}

// ---------------------------------------------------------------------------------------------
// Card status over time
// ---------------------------------------------------------------------------------------------

export type CardStatus = 'ISSUED' | 'ACTIVE' | 'LOST_REPORTED' | 'SUSPENDED' | 'CANCELLED';

export interface CardStatusEvent {
  status: CardStatus;
  effectiveAtMs: number;
}

/**
 * The card's status at an instant: the latest event effective at or before it. `events` are in
 * effective order (ties in the order they were recorded). Null when no event is in force yet: the
 * card exists but its history starts later; nothing blocks the tap then.
 */
export function cardStatusAt(events: readonly CardStatusEvent[], atMs: number): CardStatus | null {
  let status: CardStatus | null = null;
  for (let i = 0; i < events.length; i++) {
    if (events[i].effectiveAtMs > atMs) break;
    status = events[i].status;
  }
  return status;
}

// ---------------------------------------------------------------------------------------------
// Pass 1: everything but history
// ---------------------------------------------------------------------------------------------

export interface TapScreenFacts {
  /** Terminals registered to the uploading operator (others' and unregistered ones are absent). */
  operatorTerminals: ReadonlySet<string>;
  /** True if the card number was issued (UNKNOWN_CARD otherwise). */
  isIssued: (cardNo: string) => boolean;
  /**
   * Status histories, in effective order, of the cards whose status could refuse a tap (ever
   * hotlisted or cancelled). A card absent here is taken as never blocked.
   */
  statusHistories: ReadonlyMap<string, readonly CardStatusEvent[]>;
  /** TAC master key versions the key store holds. */
  hasKeyVersion: (keyVersion: number) => boolean;
  /** verifyTacs over the whole batch: entry i is true iff record i's TAC verifies. */
  tacValid: readonly boolean[];
}

/**
 * Pass 1 over a batch: entry i is record i's first failing check up to CARD_HOTLISTED, or null
 * if it is still a candidate for acceptance (history decides the rest). `receivedAtMs` is when
 * the engine received the batch, the reference for FUTURE_TAP and STALE_TAP.
 */
export function screenTaps(
  records: readonly TapRecordInput[],
  facts: TapScreenFacts,
  limits: TapLimits,
  receivedAtMs: number,
  /** checkRecordFormat(records[i]) === null, when the caller has it already. */
  wellFormed?: readonly boolean[],
): TapOutcome[] {
  if (facts.tacValid.length !== records.length) throw new Error('screenTaps: one TAC result per record is required');
  const latestMs = receivedAtMs + future_tap_ms_max;
  const earliestMs = receivedAtMs - limits.ageDaysMax * ms_per_day;
  const out = new Array<TapOutcome>(records.length);
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (wellFormed === undefined ? checkRecordFormat(r) !== null : !wellFormed[i]) { out[i] = tap_reject.malformed; continue; }
    if (r.amountFen === 0 || r.amountFen > limits.amountFenMax) { out[i] = tap_reject.amount_out_of_range; continue; }
    if (r.amountFen > r.balanceBeforeFen) { out[i] = tap_reject.insufficient_purse; continue; }
    if (!facts.operatorTerminals.has(r.terminalId)) { out[i] = tap_reject.unknown_terminal; continue; }
    if (!facts.isIssued(r.cardNo)) { out[i] = tap_reject.unknown_card; continue; }
    if (!facts.hasKeyVersion(r.keyVersion)) { out[i] = tap_reject.unknown_key_version; continue; }
    if (!facts.tacValid[i]) { out[i] = tap_reject.bad_tac; continue; }
    // Well formed, so the local time parses.
    const tapMs = parseLocalTime(r.localTime) as number;
    if (tapMs > latestMs) { out[i] = tap_reject.future_tap; continue; }
    if (tapMs < earliestMs) { out[i] = tap_reject.stale_tap; continue; }
    const events = facts.statusHistories.get(r.cardNo);
    const status = events === undefined ? null : cardStatusAt(events, tapMs);
    if (status === 'CANCELLED') { out[i] = tap_reject.card_cancelled; continue; }
    if (status === 'LOST_REPORTED' || status === 'SUSPENDED') { out[i] = tap_reject.card_hotlisted; continue; }
    out[i] = null;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pass 2: history (duplicates, clones, terminal sequences)
// ---------------------------------------------------------------------------------------------

/** The identity of a tap on the card: (card_no, card_counter, txn_type). Also the ledger key's tail. */
export function tapKey(r: { cardNo: string; cardCounter: number; txnType: number }): string {
  return `${r.cardNo}:${r.cardCounter}:${r.txnType}`;
}

/** True when two records carry the same content, every field of the spec compared. */
export function sameTapContent(a: TapRecordInput, b: TapRecordInput): boolean {
  return a.cardNo === b.cardNo && a.cardCounter === b.cardCounter && a.txnType === b.txnType &&
    a.amountFen === b.amountFen && a.balanceBeforeFen === b.balanceBeforeFen && a.terminalId === b.terminalId &&
    a.terminalSeq === b.terminalSeq && a.localTime === b.localTime && a.keyVersion === b.keyVersion &&
    a.tac === b.tac && a.lineId === b.lineId && a.stationId === b.stationId &&
    a.entryStationId === b.entryStationId && a.entryLocalTime === b.entryLocalTime;
}

/** A missing run of terminal sequence numbers, both ends included. */
export interface SeqGap {
  from: number;
  to: number;
}

/**
 * What is known of a terminal's accepted sequence numbers: they are exactly [seqMin, seqMax]
 * minus the open gaps. `gaps` (sorted by `from`, disjoint, strictly inside the range) need only
 * hold the gaps that overlap the sequence numbers being asked about.
 */
export interface TerminalSeqState {
  seqMin: number;
  seqMax: number;
  gaps: readonly SeqGap[];
}

/** True if `seq` was already accepted on a terminal in this state. */
export function seqTaken(state: TerminalSeqState | undefined, seq: number): boolean {
  if (state === undefined || seq < state.seqMin || seq > state.seqMax) return false;
  return gapContaining(state.gaps, seq) < 0;
}

/** Index of the gap containing seq, or -1 (binary search over sorted, disjoint gaps). */
function gapContaining(gaps: readonly SeqGap[], seq: number): number {
  let lo = 0;
  let hi = gaps.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const g = gaps[mid];
    if (seq < g.from) hi = mid - 1;
    else if (seq > g.to) lo = mid + 1;
    else return mid;
  }
  return -1;
}

export interface TapHistory {
  /** Accepted records (earlier batches) whose tap key is among this batch's candidates. */
  accepted: ReadonlyMap<string, TapRecordInput>;
  /** Per terminal of the candidates: its accepted sequence numbers so far. */
  terminalSeqs: ReadonlyMap<string, TerminalSeqState>;
}

export interface CloneSuspect {
  index: number;
  /** The record accepted first, from an earlier batch; null if it is earlier in this batch. */
  acceptedBefore: TapRecordInput | null;
  /** Its index in this batch when it came earlier in this batch. */
  acceptedIndexInBatch: number | null;
}

/**
 * Pass 2: resolves the candidates of pass 1 (null entries) in record order against what was
 * accepted before, in earlier batches (`history`) or earlier in this one. Returns the final
 * outcomes (a new array) and the clone suspects to raise as risk cases.
 */
export function resolveHistory(
  records: readonly TapRecordInput[],
  screened: readonly TapOutcome[],
  history: TapHistory,
): { outcomes: TapOutcome[]; clones: CloneSuspect[] } {
  const outcomes = screened.slice();
  const clones: CloneSuspect[] = [];
  const acceptedHere = new Map<string, number>();
  const seqsHere = new Set<string>();
  for (let i = 0; i < records.length; i++) {
    if (outcomes[i] !== null) continue;
    const r = records[i];
    const key = tapKey(r);
    const before = history.accepted.get(key);
    const hereIndex = acceptedHere.get(key);
    if (before !== undefined || hereIndex !== undefined) {
      const first = before ?? records[hereIndex as number];
      if (sameTapContent(first, r)) {
        outcomes[i] = tap_reject.duplicate;
      } else {
        outcomes[i] = tap_reject.clone_suspect;
        clones.push({ index: i, acceptedBefore: before ?? null, acceptedIndexInBatch: before === undefined ? (hereIndex as number) : null });
      }
      continue;
    }
    const seqKey = `${r.terminalId}:${r.terminalSeq}`;
    if (seqsHere.has(seqKey) || seqTaken(history.terminalSeqs.get(r.terminalId), r.terminalSeq)) {
      outcomes[i] = tap_reject.duplicate_terminal_seq;
      continue;
    }
    acceptedHere.set(key, i);
    seqsHere.add(seqKey);
  }
  return { outcomes, clones };
}

/** Both passes, for callers that have every fact at once (tests, tools). */
export function decideTaps(
  records: readonly TapRecordInput[],
  facts: TapScreenFacts,
  history: TapHistory,
  limits: TapLimits,
  receivedAtMs: number,
): { outcomes: TapOutcome[]; clones: CloneSuspect[] } {
  return resolveHistory(records, screenTaps(records, facts, limits, receivedAtMs), history);
}

// ---------------------------------------------------------------------------------------------
// Purse cover (the shortfall rule)
// ---------------------------------------------------------------------------------------------

/**
 * How much of each accepted tap the card's shadow purse (`card:{n}:purse`) covers. A genuine tap
 * is never refused because the centre's copy of the purse is short (the chip's purse paid, and
 * the TAC proves it): the purse pays what it has, taken in card_counter order per card, and the
 * rest is the shortfall the centre's suspense account carries until someone resolves it.
 *
 * `availableFen` is each card's available purse balance, read under the purse's row lock.
 * Returns `coveredFen[i]` for every record (0n for rejected ones): 0 <= covered <= amount.
 */
export function purseCover(
  records: readonly TapRecordInput[],
  outcomes: readonly TapOutcome[],
  availableFen: ReadonlyMap<string, bigint>,
): bigint[] {
  const covered = new Array<bigint>(records.length).fill(0n);
  const accepted: number[] = [];
  for (let i = 0; i < records.length; i++) if (outcomes[i] === null) accepted.push(i);
  // Per card in counter order, so the taps the chip made first are the ones the purse pays.
  accepted.sort((a, b) => {
    const ra = records[a];
    const rb = records[b];
    if (ra.cardNo !== rb.cardNo) return ra.cardNo < rb.cardNo ? -1 : 1;
    if (ra.cardCounter !== rb.cardCounter) return ra.cardCounter - rb.cardCounter;
    return ra.txnType - rb.txnType;
  });
  let card = '';
  let leftFen = 0n;
  for (const i of accepted) {
    const r = records[i];
    if (r.cardNo !== card) {
      card = r.cardNo;
      const available = availableFen.get(card) ?? 0n;
      leftFen = available > 0n ? available : 0n;
    }
    const amountFen = BigInt(r.amountFen);
    const c = amountFen <= leftFen ? amountFen : leftFen;
    covered[i] = c;
    leftFen -= c;
  }
  return covered;
}

// ---------------------------------------------------------------------------------------------
// Terminal sequence gaps
// ---------------------------------------------------------------------------------------------

export interface SeqGapChange {
  /** Gaps no longer open as they were (filled, or split by a record that arrived). */
  closed: SeqGap[];
  /** Gaps now open (new, or what is left of a split one). */
  opened: SeqGap[];
  next: TerminalSeqState;
}

/**
 * The gap changes when `newSeqs` (sorted ascending, distinct, none already accepted) are accepted
 * on a terminal in `state` (undefined: nothing accepted yet). Gaps are the missing numbers between
 * accepted records: a gap inside the range is closed when a record lands in it (what remains of
 * it is reopened), and new gaps open below the old minimum or above the old maximum.
 */
export function applySeqs(state: TerminalSeqState | undefined, newSeqs: readonly number[]): SeqGapChange {
  const closed: SeqGap[] = [];
  const opened: SeqGap[] = [];
  if (newSeqs.length === 0) {
    if (state === undefined) throw new Error('applySeqs: nothing to apply to an empty terminal');
    return { closed, opened, next: state };
  }
  for (let k = 1; k < newSeqs.length; k++) {
    if (newSeqs[k] <= newSeqs[k - 1]) throw new Error('applySeqs: sequence numbers must be sorted and distinct');
  }
  if (state === undefined) {
    pushGapsBetween(newSeqs, 0, newSeqs.length, opened);
    return { closed, opened, next: { seqMin: newSeqs[0], seqMax: newSeqs[newSeqs.length - 1], gaps: opened.slice() } };
  }
  const gaps = state.gaps.slice();
  let k = 0;
  // Below the old minimum: gaps between the new ones, and up to the old minimum.
  const belowStart = k;
  while (k < newSeqs.length && newSeqs[k] < state.seqMin) k++;
  if (k > belowStart) {
    pushGapsBetween(newSeqs, belowStart, k, opened);
    pushGap(newSeqs[k - 1] + 1, state.seqMin - 1, opened);
  }
  // Inside: each new one lands in an open gap, which closes and reopens around it.
  const insideStart = k;
  while (k < newSeqs.length && newSeqs[k] <= state.seqMax) k++;
  const touched = new Map<number, number[]>();
  for (let j = insideStart; j < k; j++) {
    const g = gapContaining(gaps, newSeqs[j]);
    if (g < 0) throw new Error('applySeqs: a sequence number inside the range is already accepted');
    const list = touched.get(g);
    if (list === undefined) touched.set(g, [newSeqs[j]]);
    else list.push(newSeqs[j]);
  }
  const remaining: SeqGap[] = [];
  for (let g = 0; g < gaps.length; g++) {
    const filled = touched.get(g);
    if (filled === undefined) { remaining.push(gaps[g]); continue; }
    closed.push(gaps[g]);
    const pieces: SeqGap[] = [];
    pushGap(gaps[g].from, filled[0] - 1, pieces);
    pushGapsBetween(filled, 0, filled.length, pieces);
    pushGap(filled[filled.length - 1] + 1, gaps[g].to, pieces);
    for (const p of pieces) { opened.push(p); remaining.push(p); }
  }
  // Above the old maximum: from the old maximum up, and between the new ones.
  if (k < newSeqs.length) {
    pushGap(state.seqMax + 1, newSeqs[k] - 1, opened);
    pushGapsBetween(newSeqs, k, newSeqs.length, opened);
  }
  const outside = opened.filter((g) => g.to < state.seqMin || g.from > state.seqMax);
  const all = remaining.concat(outside).sort((a, b) => a.from - b.from);
  return {
    closed,
    opened,
    next: {
      seqMin: Math.min(state.seqMin, newSeqs[0]),
      seqMax: Math.max(state.seqMax, newSeqs[newSeqs.length - 1]),
      gaps: all,
    },
  };
}

function pushGap(from: number, to: number, out: SeqGap[]): void {
  if (from <= to) out.push({ from, to });
}

function pushGapsBetween(seqs: readonly number[], start: number, end: number, out: SeqGap[]): void {
  for (let j = start + 1; j < end; j++) pushGap(seqs[j - 1] + 1, seqs[j] - 1, out);
}

/**
 * The accepted sequence numbers of a batch per terminal (sorted ascending), for `applySeqs`.
 * Accepted records never share a (terminal, seq): resolveHistory refused the second one.
 */
export function acceptedSeqsByTerminal(records: readonly TapRecordInput[], outcomes: readonly TapOutcome[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (let i = 0; i < records.length; i++) {
    if (outcomes[i] !== null) continue;
    const r = records[i];
    const list = out.get(r.terminalId);
    if (list === undefined) out.set(r.terminalId, [r.terminalSeq]);
    else list.push(r.terminalSeq);
  }
  for (const list of out.values()) list.sort((a, b) => a - b);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Purse balance chain
// ---------------------------------------------------------------------------------------------

export interface ChainTap {
  cardCounter: number;
  txnType: number;
  amountFen: bigint;
  balanceBeforeFen: bigint;
}

export interface ChainBreak<T extends ChainTap> {
  previous: T;
  next: T;
  /** What the next record's balance_before_fen should have been. */
  expectedBalanceBeforeFen: bigint;
}

/**
 * Breaks in one card's purse balance chain: taps in card_counter order, where the next record's
 * balance_before is not the previous one's balance_before minus its amount, and no purse load came
 * between them (`loadBetween(previous, next)`, which the caller answers from the ledger).
 */
export function chainBreaks<T extends ChainTap>(taps: readonly T[], loadBetween: (previous: T, next: T) => boolean): ChainBreak<T>[] {
  const out: ChainBreak<T>[] = [];
  for (let i = 1; i < taps.length; i++) {
    const previous = taps[i - 1];
    const next = taps[i];
    const expected = previous.balanceBeforeFen - previous.amountFen;
    if (next.balanceBeforeFen !== expected && !loadBetween(previous, next)) {
      out.push({ previous, next, expectedBalanceBeforeFen: expected });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Receipt
// ---------------------------------------------------------------------------------------------

export interface TapRejection {
  index: number;
  reason: TapRejectReason;
}

export interface TapReceipt {
  operatorId: string;
  batchId: string;
  /** RFC 3339, the engine's clock when the batch arrived. */
  receivedAt: string;
  clearingCycleId: string;
  acceptedCount: number;
  acceptedAmountFen: bigint;
  rejectedCount: number;
  rejectedAmountFen: bigint;
  /** Only the rejected records, by index, ascending. */
  rejections: TapRejection[];
}

/** Counts, totals and the rejection list of a decided batch. */
export function summarizeOutcomes(
  records: readonly TapRecordInput[],
  outcomes: readonly TapOutcome[],
): Pick<TapReceipt, 'acceptedCount' | 'acceptedAmountFen' | 'rejectedCount' | 'rejectedAmountFen' | 'rejections'> {
  // Exact in a number: at most 50,000 uint32 amounts, < 2^48.
  let acceptedSum = 0;
  let rejectedSum = 0;
  const rejections: TapRejection[] = [];
  for (let i = 0; i < records.length; i++) {
    const reason = outcomes[i];
    // A malformed record's amount is whatever the decoder read (a uint32, 0 if absent).
    const amount = records[i].amountFen;
    if (reason === null) acceptedSum += amount;
    else {
      rejectedSum += typeof amount === 'number' && amount >>> 0 === amount ? amount : 0;
      rejections.push({ index: i, reason });
    }
  }
  return {
    acceptedCount: records.length - rejections.length,
    acceptedAmountFen: BigInt(acceptedSum),
    rejectedCount: rejections.length,
    rejectedAmountFen: BigInt(rejectedSum),
    rejections,
  };
}
