/**
 * The pure rules of transit ingestion (engine/ingest/transit.ts): the per-record checks in the
 * spec's order, card status over time, history (duplicates, clones, terminal sequences), the
 * purse cover, terminal sequence gaps, balance chains; and the COPY text encoding the adapter
 * writes records with. Invariants are checked with fast-check.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  acceptedSeqsByTerminal,
  applySeqs,
  cardStatusAt,
  chainBreaks,
  decideTaps,
  purseCover,
  resolveHistory,
  screenTaps,
  seqTaken,
  summarizeOutcomes,
  tap_reject,
  tap_reject_order,
  tapKey,
} from '../engine/ingest/index.ts';
import type { CardStatusEvent, SeqGap, TapHistory, TapRecordInput, TapRejectReason, TapScreenFacts, TerminalSeqState } from '../engine/ingest/index.ts';
import { checkRecordFormat } from '../engine/ingest/tap-batch.ts';
import { copyBytea, copyText, plainArrayLiteral } from '../adapters/ingest/copy-text.ts';
import { shanghaiInstant, shanghaiLocalTime } from './support/transit-fixtures.ts';

const received_ms = shanghaiInstant('20261128120000');
const limits = { amountFenMax: 20_000, ageDaysMax: 30 };
const card = '6217001234567890123';
const terminal = '420300000101';
const day_ms = 86_400_000;

function rec(over: Partial<TapRecordInput> = {}): TapRecordInput {
  return {
    cardNo: card, cardCounter: 10, txnType: 9, amountFen: 200, balanceBeforeFen: 5_000, terminalId: terminal, terminalSeq: 100,
    localTime: shanghaiLocalTime(received_ms - 3_600_000), keyVersion: 1, tac: 'ABCDEF01',
    lineId: 'L1', stationId: '', entryStationId: '', entryLocalTime: '', ...over,
  };
}

function facts(over: Partial<TapScreenFacts> & { records: number }): TapScreenFacts {
  return {
    operatorTerminals: new Set([terminal, '420300000102']),
    isIssued: (c) => c !== '6217009999999999999',
    statusHistories: new Map(),
    hasKeyVersion: (v) => v === 1,
    tacValid: new Array(over.records).fill(true),
    ...over,
  };
}

const no_history: TapHistory = { accepted: new Map(), terminalSeqs: new Map() };

describe('per-record checks', () => {
  it('tap_reject_order is the spec table, in order', () => {
    expect(tap_reject_order).toEqual([
      'MALFORMED', 'AMOUNT_OUT_OF_RANGE', 'INSUFFICIENT_PURSE', 'UNKNOWN_TERMINAL', 'UNKNOWN_CARD', 'UNKNOWN_KEY_VERSION',
      'BAD_TAC', 'FUTURE_TAP', 'STALE_TAP', 'CARD_CANCELLED', 'CARD_HOTLISTED', 'DUPLICATE', 'CLONE_SUSPECT', 'DUPLICATE_TERMINAL_SEQ',
    ]);
  });

  it('each check alone gives its reason; a clean record is accepted', () => {
    const lost = new Map<string, CardStatusEvent[]>([[card, [
      { status: 'ACTIVE', effectiveAtMs: received_ms - 90 * day_ms },
      { status: 'LOST_REPORTED', effectiveAtMs: received_ms - 2 * 3_600_000 },
    ]]]);
    const cancelled = new Map<string, CardStatusEvent[]>([[card, [{ status: 'CANCELLED', effectiveAtMs: received_ms - day_ms }]]]);
    const cases: [string, TapRecordInput, Partial<TapScreenFacts>, TapHistory, TapRejectReason | null][] = [
      ['clean', rec(), {}, no_history, null],
      ['card_no of 15 digits', rec({ cardNo: '621700123456789' }), {}, no_history, 'MALFORMED'],
      ['lower-case TAC', rec({ tac: 'abcdef01' }), {}, no_history, 'MALFORMED'],
      ['NUL in a station id', rec({ stationId: 'S\u00001' }), {}, no_history, 'MALFORMED'],
      ['amount 0', rec({ amountFen: 0 }), {}, no_history, 'AMOUNT_OUT_OF_RANGE'],
      ['amount over the limit', rec({ amountFen: 20_001, balanceBeforeFen: 30_000 }), {}, no_history, 'AMOUNT_OUT_OF_RANGE'],
      ['amount at the limit', rec({ amountFen: 20_000, balanceBeforeFen: 30_000 }), {}, no_history, null],
      ['amount above the balance', rec({ amountFen: 201, balanceBeforeFen: 200 }), {}, no_history, 'INSUFFICIENT_PURSE'],
      ['amount equal to the balance', rec({ amountFen: 200, balanceBeforeFen: 200 }), {}, no_history, null],
      ['another operator\'s terminal', rec({ terminalId: '999900000001' }), {}, no_history, 'UNKNOWN_TERMINAL'],
      ['card not issued', rec({ cardNo: '6217009999999999999' }), {}, no_history, 'UNKNOWN_CARD'],
      ['key version 2', rec({ keyVersion: 2 }), {}, no_history, 'UNKNOWN_KEY_VERSION'],
      ['TAC does not verify', rec(), { tacValid: [false] }, no_history, 'BAD_TAC'],
      ['10 min 1 s ahead', rec({ localTime: shanghaiLocalTime(received_ms + 601_000) }), {}, no_history, 'FUTURE_TAP'],
      ['10 min ahead', rec({ localTime: shanghaiLocalTime(received_ms + 600_000) }), {}, no_history, null],
      ['30 days 1 s old', rec({ localTime: shanghaiLocalTime(received_ms - 30 * day_ms - 1000) }), {}, no_history, 'STALE_TAP'],
      ['30 days old', rec({ localTime: shanghaiLocalTime(received_ms - 30 * day_ms) }), {}, no_history, null],
      ['cancelled before', rec(), { statusHistories: cancelled }, no_history, 'CARD_CANCELLED'],
      ['reported lost before', rec(), { statusHistories: lost }, no_history, 'CARD_HOTLISTED'],
      ['tapped before the loss report', rec({ localTime: shanghaiLocalTime(received_ms - 3 * 3_600_000) }), { statusHistories: lost }, no_history, null],
    ];
    for (const [name, r, f, h, expected] of cases) {
      const { outcomes } = decideTaps([r], facts({ records: 1, ...f }), h, limits, received_ms);
      expect(outcomes[0], name).toBe(expected);
    }
  });

  it('a record failing several checks gets the first in the spec order (any combination)', () => {
    // Every check can be made to fail independently of the others, except where two are
    // mutually exclusive (a tap cannot be both future and stale, a card has one status at a
    // time, a tap key matches identical or different content): one of each such pair at most.
    const independent: TapRejectReason[] = ['MALFORMED', 'AMOUNT_OUT_OF_RANGE', 'INSUFFICIENT_PURSE', 'UNKNOWN_TERMINAL', 'UNKNOWN_CARD',
      'UNKNOWN_KEY_VERSION', 'BAD_TAC', 'DUPLICATE_TERMINAL_SEQ'];
    const arb = fc.record({
      set: fc.subarray(independent),
      time: fc.constantFrom(null, 'FUTURE_TAP', 'STALE_TAP'),
      status: fc.constantFrom(null, 'CARD_CANCELLED', 'CARD_HOTLISTED'),
      history: fc.constantFrom(null, 'DUPLICATE', 'CLONE_SUSPECT'),
    });
    fc.assert(fc.property(arb, ({ set, time, status, history }) => {
      const fail = new Set<TapRejectReason>(set);
      for (const x of [time, status, history]) if (x !== null) fail.add(x as TapRejectReason);
      const unknownCard = '6217009999999999999';
      const tapMs = fail.has('FUTURE_TAP') ? received_ms + 700_000 : fail.has('STALE_TAP') ? received_ms - 31 * day_ms : received_ms - 3_600_000;
      const r = rec({
        cardNo: fail.has('UNKNOWN_CARD') ? unknownCard : card,
        lineId: fail.has('MALFORMED') ? 'L'.repeat(65) : 'L1',
        amountFen: fail.has('AMOUNT_OUT_OF_RANGE') ? 20_001 : 300,
        balanceBeforeFen: fail.has('INSUFFICIENT_PURSE') ? (fail.has('AMOUNT_OUT_OF_RANGE') ? 20_000 : 299) : 50_000,
        terminalId: fail.has('UNKNOWN_TERMINAL') ? '999900000001' : terminal,
        keyVersion: fail.has('UNKNOWN_KEY_VERSION') ? 7 : 1,
        localTime: shanghaiLocalTime(tapMs),
      });
      const statusHistories = new Map<string, CardStatusEvent[]>();
      const events: CardStatusEvent[] = [{ status: 'ACTIVE', effectiveAtMs: received_ms - 100 * day_ms }];
      if (fail.has('CARD_CANCELLED')) events.push({ status: 'CANCELLED', effectiveAtMs: received_ms - 40 * day_ms });
      if (fail.has('CARD_HOTLISTED')) events.push({ status: 'SUSPENDED', effectiveAtMs: received_ms - 40 * day_ms });
      statusHistories.set(r.cardNo, events);
      const accepted = new Map<string, TapRecordInput>();
      if (fail.has('DUPLICATE')) accepted.set(tapKey(r), { ...r });
      if (fail.has('CLONE_SUSPECT')) accepted.set(tapKey(r), { ...r, terminalSeq: r.terminalSeq + 1, tac: '0000FFFF' });
      const terminalSeqs = new Map<string, TerminalSeqState>();
      if (fail.has('DUPLICATE_TERMINAL_SEQ')) terminalSeqs.set(r.terminalId, { seqMin: 1, seqMax: 1000, gaps: [] });
      const f = facts({ records: 1, statusHistories, tacValid: [!fail.has('BAD_TAC')] });
      const { outcomes, clones } = decideTaps([r], f, { accepted, terminalSeqs }, limits, received_ms);
      const expected = tap_reject_order.find((x) => fail.has(x)) ?? null;
      expect(outcomes[0]).toBe(expected);
      expect(clones.length).toBe(expected === 'CLONE_SUSPECT' ? 1 : 0);
    }), { numRuns: 2_000 });
  });

  it('within a batch: a repeat is DUPLICATE, another content under the same key CLONE_SUSPECT, a reused terminal seq DUPLICATE_TERMINAL_SEQ', () => {
    const a = rec({ cardCounter: 1, terminalSeq: 1 });
    const records = [
      a,
      { ...a },                                              // identical: DUPLICATE
      { ...a, amountFen: 150 },                              // same key, other content: CLONE_SUSPECT
      rec({ cardCounter: 2, terminalSeq: 1 }),               // new tap, seq of record 0
      rec({ cardCounter: 3, terminalSeq: 7 }),               // rejected earlier (bad TAC): takes no seq
      rec({ cardCounter: 4, terminalSeq: 7 }),               // so this one is accepted
      rec({ cardCounter: 5, terminalSeq: 8, terminalId: '420300000102' }), // seq 8 on another terminal
    ];
    const tacValid = [true, true, true, true, false, true, true];
    const { outcomes, clones } = decideTaps(records, facts({ records: records.length, tacValid }), no_history, limits, received_ms);
    expect(outcomes).toEqual([null, 'DUPLICATE', 'CLONE_SUSPECT', 'DUPLICATE_TERMINAL_SEQ', 'BAD_TAC', null, null]);
    expect(clones).toEqual([{ index: 2, acceptedBefore: null, acceptedIndexInBatch: 0 }]);
  });

  it('against earlier batches: history decides DUPLICATE, CLONE_SUSPECT and DUPLICATE_TERMINAL_SEQ', () => {
    const earlier = rec({ cardCounter: 1, terminalSeq: 50 });
    const history: TapHistory = {
      accepted: new Map([[tapKey(earlier), earlier]]),
      terminalSeqs: new Map([[terminal, { seqMin: 40, seqMax: 60, gaps: [{ from: 45, to: 47 }] }]]),
    };
    const records = [
      { ...earlier },
      { ...earlier, localTime: shanghaiLocalTime(received_ms - 7_200_000) },
      rec({ cardCounter: 2, terminalSeq: 41 }),   // taken
      rec({ cardCounter: 3, terminalSeq: 46 }),   // in the open gap: free
      rec({ cardCounter: 4, terminalSeq: 61 }),   // above the maximum: free
      rec({ cardCounter: 5, terminalSeq: 39 }),   // below the minimum: free
    ];
    const { outcomes, clones } = decideTaps(records, facts({ records: records.length }), history, limits, received_ms);
    expect(outcomes).toEqual(['DUPLICATE', 'CLONE_SUSPECT', 'DUPLICATE_TERMINAL_SEQ', null, null, null]);
    expect(clones[0].acceptedBefore).toBe(earlier);
  });

  it('screenTaps needs one TAC result per record', () => {
    expect(() => screenTaps([rec()], facts({ records: 2 }), limits, received_ms)).toThrow();
  });

  it('resolveHistory leaves pass-1 rejections alone', () => {
    const { outcomes } = resolveHistory([rec(), rec()], ['BAD_TAC', null], no_history);
    expect(outcomes).toEqual(['BAD_TAC', null]);
  });
});

describe('card status over time', () => {
  it('is the latest event effective at or before the instant', () => {
    const events: CardStatusEvent[] = [
      { status: 'ISSUED', effectiveAtMs: 1000 }, { status: 'ACTIVE', effectiveAtMs: 2000 },
      { status: 'LOST_REPORTED', effectiveAtMs: 3000 }, { status: 'ACTIVE', effectiveAtMs: 3000 }, { status: 'CANCELLED', effectiveAtMs: 5000 },
    ];
    expect(cardStatusAt(events, 999)).toBeNull();
    expect(cardStatusAt(events, 1000)).toBe('ISSUED');
    expect(cardStatusAt(events, 2999)).toBe('ACTIVE');
    // Two events at one instant: the later recorded one is in force.
    expect(cardStatusAt(events, 3000)).toBe('ACTIVE');
    expect(cardStatusAt(events, 4999)).toBe('ACTIVE');
    expect(cardStatusAt(events, 5000)).toBe('CANCELLED');
    expect(cardStatusAt([], 5000)).toBeNull();
  });
});

describe('purse cover', () => {
  it('covers each card\'s taps in counter order with what the purse holds; the rest is shortfall', () => {
    const records = [
      rec({ cardCounter: 3, amountFen: 300 }), rec({ cardCounter: 1, amountFen: 300 }), rec({ cardCounter: 2, amountFen: 300 }),
      rec({ cardNo: '6230580000000000018', cardCounter: 1, amountFen: 100 }), rec({ cardCounter: 4, amountFen: 50 }),
    ];
    const outcomes = [null, null, null, null, 'BAD_TAC' as const];
    const covered = purseCover(records, outcomes, new Map([[card, 500n]]));
    expect(covered).toEqual([0n, 300n, 200n, 0n, 0n]);
  });

  it('never covers more than the purse or the tap, and only leaves a shortfall once the purse is empty', () => {
    const arb = fc.record({
      taps: fc.array(fc.record({ card: fc.integer({ min: 0, max: 3 }), counter: fc.integer({ min: 0, max: 10_000 }), amount: fc.integer({ min: 1, max: 20_000 }), accepted: fc.boolean() }), { maxLength: 40 }),
      balances: fc.array(fc.bigInt({ min: -5n, max: 60_000n }), { minLength: 4, maxLength: 4 }),
    });
    fc.assert(fc.property(arb, ({ taps, balances }) => {
      const cards = ['6217000000000000000', '6217000000000000001', '6217000000000000002', '6217000000000000003'];
      const records = taps.map((t, i) => rec({ cardNo: cards[t.card], cardCounter: t.counter * 100 + i, amountFen: t.amount }));
      const outcomes = taps.map((t) => (t.accepted ? null : 'DUPLICATE' as const));
      const available = new Map(cards.map((c, i) => [c, balances[i]]));
      const covered = purseCover(records, outcomes, available);
      for (let c = 0; c < cards.length; c++) {
        const mine = records.map((r, i) => ({ r, i })).filter(({ r, i }) => r.cardNo === cards[c] && outcomes[i] === null)
          .sort((a, b) => a.r.cardCounter - b.r.cardCounter);
        let left = balances[c] > 0n ? balances[c] : 0n;
        for (const { r, i } of mine) {
          const want = BigInt(r.amountFen) <= left ? BigInt(r.amountFen) : left;
          expect(covered[i]).toBe(want);
          left -= want;
        }
      }
      for (let i = 0; i < records.length; i++) {
        expect(covered[i] >= 0n && covered[i] <= BigInt(records[i].amountFen)).toBe(true);
        if (outcomes[i] !== null) expect(covered[i]).toBe(0n);
      }
    }), { numRuns: 500 });
  });
});

describe('terminal sequence gaps', () => {
  /** The gaps from scratch: the missing numbers between the lowest and highest accepted. */
  function gapsOf(accepted: Set<number>): SeqGap[] {
    const sorted = [...accepted].sort((a, b) => a - b);
    const out: SeqGap[] = [];
    for (let k = 1; k < sorted.length; k++) if (sorted[k] > sorted[k - 1] + 1) out.push({ from: sorted[k - 1] + 1, to: sorted[k] - 1 });
    return out;
  }

  it('maintained gaps always equal the gaps computed from scratch, however batches arrive', () => {
    const arb = fc.array(fc.uniqueArray(fc.integer({ min: 0, max: 120 }), { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 12 });
    fc.assert(fc.property(arb, (batches) => {
      const accepted = new Set<number>();
      let state: TerminalSeqState | undefined;
      let open: SeqGap[] = [];
      for (const raw of batches) {
        const fresh = raw.filter((s) => !accepted.has(s)).sort((a, b) => a - b);
        for (const s of raw) expect(seqTaken(state, s)).toBe(accepted.has(s));
        if (fresh.length === 0) continue;
        // The adapter fetches only the gaps overlapping the batch's range: the result must not depend on that.
        const lo = fresh[0];
        const hi = fresh[fresh.length - 1];
        const partial = state === undefined ? undefined : { ...state, gaps: state.gaps.filter((g) => g.from <= hi && g.to >= lo) };
        const change = applySeqs(state, fresh);
        const partialChange = applySeqs(partial, fresh);
        expect(partialChange.closed).toEqual(change.closed);
        expect(partialChange.opened).toEqual(change.opened);
        for (const s of fresh) accepted.add(s);
        // The change log replays to the open set.
        const key = (g: SeqGap) => `${g.from}-${g.to}`;
        const closed = new Set(change.closed.map(key));
        expect(change.closed.every((g) => open.some((o) => key(o) === key(g)))).toBe(true);
        open = open.filter((g) => !closed.has(key(g))).concat(change.opened).sort((a, b) => a.from - b.from);
        const expected = gapsOf(accepted);
        expect(open).toEqual(expected);
        expect(change.next.gaps).toEqual(expected);
        expect(change.next.seqMin).toBe(Math.min(...accepted));
        expect(change.next.seqMax).toBe(Math.max(...accepted));
        state = change.next;
      }
    }), { numRuns: 1_000 });
  });

  it('refuses unsorted or already accepted sequence numbers (a caller bug, not input)', () => {
    expect(() => applySeqs(undefined, [3, 2])).toThrow();
    expect(() => applySeqs({ seqMin: 1, seqMax: 10, gaps: [] }, [5])).toThrow();
  });

  it('acceptedSeqsByTerminal lists accepted records only, sorted', () => {
    const records = [rec({ terminalSeq: 9 }), rec({ terminalSeq: 3 }), rec({ terminalSeq: 5, terminalId: '420300000102' }), rec({ terminalSeq: 1 })];
    const m = acceptedSeqsByTerminal(records, [null, null, null, 'BAD_TAC']);
    expect([...m]).toEqual([[terminal, [3, 9]], ['420300000102', [5]]]);
  });
});

describe('balance chain', () => {
  const t = (cardCounter: number, before: bigint, amount: bigint, load = false) => ({ cardCounter, txnType: 9, amountFen: amount, balanceBeforeFen: before, load });
  it('breaks where the next balance is not the previous one minus its amount, unless a load came between', () => {
    const taps = [t(1, 1000n, 200n), t(2, 800n, 200n), t(3, 700n, 100n), t(4, 5000n, 100n, true), t(5, 100n, 100n)];
    const breaks = chainBreaks(taps, (_p, n) => n.load);
    expect(breaks.map((b) => [b.previous.cardCounter, b.next.cardCounter, b.expectedBalanceBeforeFen])).toEqual([[2, 3, 600n], [4, 5, 4900n]]);
  });
});

describe('receipt summary', () => {
  it('counts and sums accepted and rejected records, rejections by index', () => {
    const records = [rec({ amountFen: 100 }), rec({ amountFen: 250 }), rec({ amountFen: 7 })];
    const s = summarizeOutcomes(records, [null, 'BAD_TAC', null]);
    expect(s).toEqual({ acceptedCount: 2, acceptedAmountFen: 107n, rejectedCount: 1, rejectedAmountFen: 250n, rejections: [{ index: 1, reason: 'BAD_TAC' }] });
  });
});

describe('record format extension', () => {
  it('refuses a NUL in the optional ids (Postgres text cannot hold it), accepts other Unicode', () => {
    expect(checkRecordFormat(rec({ lineId: 'A\u0000' }))).toBe('line_id');
    expect(checkRecordFormat(rec({ entryStationId: '\u0000' }))).toBe('entry_station_id');
    expect(checkRecordFormat(rec({ stationId: '站\t\n\\' }))).toBeNull();
  });
});

describe('COPY text', () => {
  it('escapes the framing characters and writes NULL and bytea as COPY reads them', () => {
    expect(copyText(null)).toBe('\\N');
    expect(copyText('plain-1')).toBe('plain-1');
    expect(copyText('a\tb\nc\rd\\e')).toBe('a\\tb\\nc\\rd\\\\e');
    expect(copyBytea(Buffer.from([0, 255]))).toBe('\\\\x00ff');
  });

  it('builds unquoted array literals only from plain elements', () => {
    expect(plainArrayLiteral(['6217', 'L-1_a', 12])).toBe('{6217,L-1_a,12}');
    expect(plainArrayLiteral([])).toBe('{}');
    expect(() => plainArrayLiteral(['a,b'])).toThrow();
    expect(() => plainArrayLiteral(['"x'])).toThrow();
    expect(() => plainArrayLiteral([''])).toThrow();
    expect(() => plainArrayLiteral([1.5])).toThrow();
  });

  it('tapKey is card:counter:type', () => {
    expect(tapKey(rec({ cardCounter: 77, txnType: 6 }))).toBe(`${card}:77:6`);
    expect(tap_reject.clone_suspect).toBe('CLONE_SUSPECT');
  });
});
