/**
 * The pure rules of reference data: what a valid bank, merchant, fee schedule, terminal and card
 * is (each refusal with its stable code); a card's status at an instant (property: the status at
 * t is the latest event effective at or before t, ties to the later recorded); which status
 * changes are allowed; and the demo city plan (deterministic, prefix-stable, valid).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalRate, cardStatusAt, card_statuses, checkBank, checkCard, checkFeeSchedule, checkMerchant, checkStatusChange,
  checkTerminal, chunkEntries, chunkMedicalDepositFen, eventInForceAt, isLuhnValid, latestEvent, planCard, planCards, planCity,
  seed_cards_per_chunk,
} from '../engine/reference/index.ts';
import type { CardStatus, CardStatusEvent, Checked, RawRow } from '../engine/reference/index.ts';
import { accountSpecFor, validateEntry, type EntryInput } from '../ledger/index.ts';

const now = new Date('2026-11-28T08:00:00+08:00');

/** Every entry is one the ledger would take: valid shape, accounts of the chart. */
function checkEntryAccounts(entries: readonly EntryInput[]): void {
  for (const e of entries) {
    validateEntry(e);
    for (const l of e.lines) {
      accountSpecFor(l.debit);
      accountSpecFor(l.credit);
    }
  }
}

function refusedWith<T>(c: Checked<T>): string {
  if (c.ok) throw new Error(`expected a refusal, got ${JSON.stringify(c.record, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  return c.error.code;
}

describe('bank, merchant, fee schedule and terminal rules', () => {
  const bank = { code: '102100099996', name: 'ICBC test branch' };
  const merchant = { id: 'OP1', name: 'Bus Co', kind: 'TRANSIT', is_operator: 'true', acquiring_bank: bank.code, settlement_account: '6222020000000001' };

  it('accepts valid rows and normalizes them (CSV text, defaults, canonical decimals)', () => {
    expect(checkBank(bank)).toEqual({ ok: true, record: bank });
    const m = checkMerchant(merchant);
    expect(m.ok && m.record).toEqual({ id: 'OP1', name: 'Bus Co', kind: 'TRANSIT', isOperator: true, acquiringBank: bank.code, settlementAccount: '6222020000000001', status: 'ACTIVE' });
    const f = checkFeeSchedule({ merchant_id: 'OP1', effective_from: '2026-12-01', rate: '0.00300000', min_fen: '0', max_fen: 50 });
    expect(f.ok && f.record).toEqual({ merchantId: 'OP1', effectiveFrom: '2026-12-01', rate: '0.003', minFen: 0n, maxFen: 50n });
    const t = checkTerminal({ id: '420300000101', merchant_id: 'OP1', latitude: '32.6', longitude: 110.798, station_id: 'S1', line_id: '' });
    expect(t.ok && t.record).toEqual({ id: '420300000101', merchantId: 'OP1', stationId: 'S1', lineId: null, latitude: '32.600000', longitude: '110.798000', status: 'ACTIVE' });
  });

  it.each<[string, RawRow, string]>([
    ['bank code of 11 digits', { code: '10210009999', name: 'x' }, 'BANK_CODE_INVALID'],
    ['bank code with a letter', { code: '10210009999A', name: 'x' }, 'BANK_CODE_INVALID'],
    ['blank bank name', { code: '102100099996', name: '   ' }, 'BANK_NAME_INVALID'],
    ['unknown bank field', { code: '102100099996', name: 'x', swift: 'ICBKCNBJ' }, 'FIELD_UNKNOWN'],
  ])('refuses a bank with %s', (_what, row, code) => {
    expect(refusedWith(checkBank(row))).toBe(code);
  });

  it.each<[string, Partial<typeof merchant> & Record<string, unknown>, string]>([
    ['an id with a space', { id: 'OP 1' }, 'MERCHANT_ID_INVALID'],
    ['an unknown kind', { kind: 'BAKERY' }, 'MERCHANT_KIND_INVALID'],
    ['is_operator on a hospital', { kind: 'MEDICAL' }, 'OPERATOR_KIND_INVALID'],
    ['is_operator that is not a boolean', { is_operator: 'maybe' }, 'OPERATOR_KIND_INVALID'],
    ['a short settlement account', { settlement_account: '12345' }, 'SETTLEMENT_ACCOUNT_INVALID'],
    ['an acquiring bank of 13 digits', { acquiring_bank: '1021000999961' }, 'BANK_CODE_INVALID'],
    ['an unknown status', { status: 'PAUSED' }, 'MERCHANT_STATUS_INVALID'],
  ])('refuses a merchant with %s', (_what, change, code) => {
    expect(refusedWith(checkMerchant({ ...merchant, ...change }))).toBe(code);
  });

  it.each<[string, RawRow, string]>([
    ['rate 1', { rate: '1' }, 'FEE_RATE_INVALID'],
    ['rate 1.0', { rate: '1.0' }, 'FEE_RATE_INVALID'],
    ['a negative rate', { rate: '-0.001' }, 'FEE_RATE_INVALID'],
    ['a rate with 9 decimals', { rate: '0.000000001' }, 'FEE_RATE_INVALID'],
    ['a rate in exponent form', { rate: '3e-3' }, 'FEE_RATE_INVALID'],
    ['a percentage', { rate: '0.3%' }, 'FEE_RATE_INVALID'],
    ['min above max', { min_fen: '51', max_fen: '50' }, 'FEE_MIN_ABOVE_MAX'],
    ['fractional fen', { min_fen: '0.5' }, 'FEE_AMOUNT_INVALID'],
    ['a negative max', { max_fen: '-1' }, 'FEE_AMOUNT_INVALID'],
    ['30 February', { effective_from: '2027-02-30' }, 'FEE_EFFECTIVE_FROM_INVALID'],
  ])('refuses a fee schedule with %s', (_what, change, code) => {
    expect(refusedWith(checkFeeSchedule({ merchant_id: 'OP1', effective_from: '2026-12-01', rate: '0.003', min_fen: '0', max_fen: '50', ...change }))).toBe(code);
  });

  it('keeps a rate exact: the largest rate below 1 and a rate that is not a binary fraction', () => {
    expect(canonicalRate('0.99999999')).toBe('0.99999999');
    expect(canonicalRate('0.1')).toBe('0.1');
    expect(canonicalRate('0.0038000')).toBe('0.0038');
  });

  it.each<[string, RawRow, string]>([
    ['an 11-digit id', { id: '42030000010' }, 'TERMINAL_ID_INVALID'],
    ['a latitude without a longitude', { latitude: '32.6' }, 'COORDINATES_INVALID'],
    ['a latitude of 91', { latitude: '91', longitude: '110' }, 'COORDINATES_INVALID'],
    ['a longitude of 7 decimals', { latitude: '32.6', longitude: '110.1234567' }, 'COORDINATES_INVALID'],
    ['a station id of 65 characters', { station_id: 'S'.repeat(65) }, 'STATION_ID_INVALID'],
    ['an unknown status', { status: 'BROKEN' }, 'TERMINAL_STATUS_INVALID'],
  ])('refuses a terminal with %s', (_what, change, code) => {
    expect(refusedWith(checkTerminal({ id: '420300000101', merchant_id: 'OP1', ...change }))).toBe(code);
  });
});

describe('card rules', () => {
  const card = { card_no: '6217001234567890123', issuing_bank: '102100099996', form: 'PHYSICAL' };

  it('builds the history at creation: ISSUED (default now), ACTIVE, and a migrated final status', () => {
    const plain = checkCard(card, now);
    expect(plain.ok && plain.record.history).toEqual([{ status: 'ISSUED', effectiveAt: now }]);
    expect(plain.ok && plain.record.dailyLimitFen).toBe(500_000n);
    const migrated = checkCard({ ...card, issued_at: '2025-01-02T09:00:00+08:00', activated_at: '2025-01-02T10:00:00+08:00', status: 'LOST_REPORTED', status_since: '2026-11-01T07:00:00Z', person_id: '77' }, now);
    expect(migrated.ok && migrated.record.history.map((h) => [h.status, h.effectiveAt.toISOString()])).toEqual([
      ['ISSUED', '2025-01-02T01:00:00.000Z'], ['ACTIVE', '2025-01-02T02:00:00.000Z'], ['LOST_REPORTED', '2026-11-01T07:00:00.000Z'],
    ]);
    expect(migrated.ok && migrated.record.personId).toBe(77n);
  });

  it.each<[string, RawRow, string]>([
    ['15 digits', { card_no: '621700123456789' }, 'CARD_NO_INVALID'],
    ['20 digits', { card_no: '62170012345678901234' }, 'CARD_NO_INVALID'],
    ['an unknown form', { form: 'WATCH' }, 'CARD_FORM_INVALID'],
    ['a physical card linked to another', { linked_card_no: '6217001234567890124' }, 'LINKED_CARD_INVALID'],
    ['an e-card linked to itself', { form: 'ECARD', linked_card_no: '6217001234567890123' }, 'LINKED_CARD_INVALID'],
    ['activation before issue', { issued_at: '2026-01-02T00:00:00Z', activated_at: '2026-01-01T00:00:00Z' }, 'CARD_TIME_INVALID'],
    ['an issue time in the future', { issued_at: '2026-11-28T01:00:00Z' }, 'CARD_TIME_INVALID'],
    ['a time without an offset', { issued_at: '2026-01-02T00:00:00' }, 'CARD_TIME_INVALID'],
    ['a time on 30 February', { issued_at: '2026-02-30T00:00:00Z' }, 'CARD_TIME_INVALID'],
    ['a final status without its time', { status: 'CANCELLED' }, 'CARD_TIME_INVALID'],
    ['status ACTIVE without activated_at', { status: 'ACTIVE' }, 'CARD_STATUS_INVALID'],
    ['an unknown status', { status: 'STOLEN', status_since: '2026-01-01T00:00:00Z' }, 'CARD_STATUS_INVALID'],
    ['a person id that is not a number', { person_id: 'abc' }, 'PERSON_ID_INVALID'],
    ['a negative daily limit', { daily_limit_fen: '-1' }, 'DAILY_LIMIT_INVALID'],
  ])('refuses a card with %s', (_what, change, code) => {
    expect(refusedWith(checkCard({ ...card, ...change }, now))).toBe(code);
  });
});

// ------------------------------------------------------------------------ status over time

const statusArb = fc.constantFrom<CardStatus>(...card_statuses);
const eventsArb = fc.array(fc.record({ status: statusArb, minute: fc.integer({ min: 0, max: 50 }) }), { maxLength: 25 });
const t0 = Date.UTC(2026, 10, 1);
const at = (minute: number) => new Date(t0 + minute * 60_000);

describe('cardStatusAt', () => {
  it('is the latest event effective at or before t, ties going to the later recorded (any input order)', () => {
    fc.assert(fc.property(eventsArb, fc.integer({ min: -5, max: 55 }), fc.boolean(), (raw, minute, shuffle) => {
      const recorded: CardStatusEvent[] = raw.map((e, i) => ({ status: e.status, effectiveAt: at(e.minute), id: BigInt(i + 1) }));
      const input = shuffle ? [...recorded].reverse() : recorded;
      // The model: walk the events in recording order, keep the one with the greatest time ≤ t.
      let expected: CardStatus | null = null;
      let bestMinute = -Infinity;
      raw.forEach((e) => {
        if (e.minute <= minute && e.minute >= bestMinute) {
          expected = e.status;
          bestMinute = e.minute;
        }
      });
      expect(cardStatusAt(input, at(minute))).toBe(expected);
    }));
  });

  it('without ids, the later position in the array wins a tie', () => {
    const events: CardStatusEvent[] = [
      { status: 'ACTIVE', effectiveAt: at(10) }, { status: 'LOST_REPORTED', effectiveAt: at(10) },
    ];
    expect(cardStatusAt(events, at(10))).toBe('LOST_REPORTED');
    expect(cardStatusAt([...events].reverse(), at(10))).toBe('ACTIVE');
    expect(cardStatusAt(events, at(9))).toBeNull();
  });

  it('a back-dated loss report takes effect from its effective time, not from when it was recorded', () => {
    const events: CardStatusEvent[] = [
      { status: 'ISSUED', effectiveAt: at(0), id: 1n }, { status: 'ACTIVE', effectiveAt: at(5), id: 2n },
      // Recorded last, effective earlier than the tap at minute 40.
      { status: 'LOST_REPORTED', effectiveAt: at(30), id: 3n },
    ];
    expect(cardStatusAt(events, at(29))).toBe('ACTIVE');
    expect(cardStatusAt(events, at(30))).toBe('LOST_REPORTED');
    expect(cardStatusAt(events, at(40))).toBe('LOST_REPORTED');
    expect(latestEvent(events)?.id).toBe(3n);
    expect(eventInForceAt(events, at(4))?.status).toBe('ISSUED');
  });
});

describe('checkStatusChange', () => {
  const history: CardStatusEvent[] = [
    { status: 'ISSUED', effectiveAt: at(0), id: 1n }, { status: 'ACTIVE', effectiveAt: at(10), id: 2n },
  ];

  it('allows a loss report, judged against the status in force at its effective time', () => {
    expect(checkStatusChange(history, { status: 'LOST_REPORTED', effectiveAt: at(20) }).kind).toBe('apply');
    // At minute 5 the card was only ISSUED: reporting it lost then is allowed too.
    expect(checkStatusChange(history, { status: 'LOST_REPORTED', effectiveAt: at(5) }).kind).toBe('apply');
  });

  it('refuses what cannot happen, with stable codes', () => {
    const code = (status: CardStatus, minute: number, events = history) => {
      const v = checkStatusChange(events, { status, effectiveAt: at(minute) });
      return v.kind === 'refuse' ? v.code : v.kind;
    };
    expect(code('ISSUED', 20)).toBe('CARD_STATUS_TRANSITION_INVALID');
    expect(code('LOST_REPORTED', -1)).toBe('CARD_STATUS_BEFORE_ISSUE');
    expect(code('ACTIVE', 20)).toBe('CARD_STATUS_TRANSITION_INVALID');
    const cancelled = [...history, { status: 'CANCELLED' as const, effectiveAt: at(30), id: 3n }];
    expect(code('ACTIVE', 40, cancelled)).toBe('CARD_CANCELLED');
    expect(code('LOST_REPORTED', 20, cancelled)).toBe('CARD_CANCELLED');
    const lost = [...history, { status: 'LOST_REPORTED' as const, effectiveAt: at(30), id: 3n }];
    expect(code('CANCELLED', 25, lost)).toBe('CARD_STATUS_TRANSITION_INVALID');
    expect(code('ACTIVE', 35, lost)).toBe('apply');
    expect(code('LOST_REPORTED', 30, lost)).toBe('replay');
  });
});

// ------------------------------------------------------------------------------- the plan

describe('the demo city plan', () => {
  it('is deterministic: the same seed gives the same city, another seed other cards', () => {
    const a = planCity({ seed: 42, cards: 500 });
    const b = planCity({ seed: 42, cards: 500 });
    expect(a).toEqual(b);
    expect(planCards(a, 0, 500)).toEqual(planCards(b, 0, 500));
    const other = new Set(planCards(planCity({ seed: 43, cards: 500 }), 0, 500).map((c) => c.record.cardNo));
    expect(planCards(a, 0, 500).filter((c) => other.has(c.record.cardNo))).toEqual([]);
  });

  it('has the shape the brief asks for', () => {
    const p = planCity({ seed: 42, cards: 10 });
    expect(p.banks).toHaveLength(6);
    expect(new Set(p.banks.map((b) => b.code)).size).toBe(6);
    const operators = p.merchants.filter((m) => m.isOperator);
    expect(operators.map((o) => o.kind)).toEqual(['TRANSIT', 'TRANSIT']);
    expect(p.terminals.filter((t) => operators.some((o) => o.id === t.merchantId))).toHaveLength(2_000);
    expect(p.merchants.filter((m) => m.kind === 'MEDICAL')).toHaveLength(40);
    expect(p.merchants.filter((m) => m.kind === 'UTILITY')).toHaveLength(3);
    for (const m of p.merchants.filter((x) => x.kind === 'MEDICAL')) expect(p.terminals.filter((t) => t.merchantId === m.id)).toHaveLength(1);
    expect(p.feeSchedules.find((f) => f.merchantId === operators[0].id)).toMatchObject({ rate: '0.003', minFen: 0n, maxFen: 50n });
    // Every generated record passes the same rules an admin's would.
    for (const b of p.banks) expect(checkBank({ code: b.code, name: b.name }).ok).toBe(true);
    for (const m of p.merchants) {
      expect(checkMerchant({ id: m.id, name: m.name, kind: m.kind, is_operator: m.isOperator, acquiring_bank: m.acquiringBank, settlement_account: m.settlementAccount }).ok).toBe(true);
    }
    for (const t of p.terminals) {
      const c = checkTerminal({ id: t.id, merchant_id: t.merchantId, station_id: t.stationId, line_id: t.lineId, latitude: t.latitude, longitude: t.longitude });
      expect(c.ok && c.record).toEqual(t);
      // Around the city centre (Shiyan, 32.63 N 110.80 E): within about 25 km.
      expect(Math.abs(Number(t.latitude) - 32.63)).toBeLessThan(0.25);
      expect(Math.abs(Number(t.longitude) - 110.8)).toBeLessThan(0.3);
    }
    expect(new Set(p.terminals.map((t) => t.id)).size).toBe(p.terminals.length);
  });

  it('makes valid, unique, Luhn-checked cards with consistent histories and twins', () => {
    const p = planCity({ seed: 9, cards: 3 * seed_cards_per_chunk });
    const cards = planCards(p, 0, p.cards);
    expect(new Set(cards.map((c) => c.record.cardNo)).size).toBe(cards.length);
    const byNo = new Map(cards.map((c) => [c.record.cardNo, c]));
    const seen = { ecard: 0, linked: 0, lost: 0, cancelled: 0 };
    for (const c of cards) {
      expect(isLuhnValid(c.record.cardNo)).toBe(true);
      const h = c.record.history;
      expect(h.map((x) => x.status).slice(0, 2)).toEqual(['ISSUED', 'ACTIVE']);
      for (let i = 1; i < h.length; i++) expect(h[i].effectiveAt.getTime()).toBeGreaterThanOrEqual(h[i - 1].effectiveAt.getTime());
      expect(h[h.length - 1].effectiveAt.getTime()).toBeLessThan(p.asOfInstant.getTime());
      expect(h[h.length - 1].status).toBe(c.status);
      if (c.record.form === 'ECARD') seen.ecard++;
      if (c.status === 'LOST_REPORTED') seen.lost++;
      if (c.status === 'CANCELLED') {
        seen.cancelled++;
        expect(c.purseFen + c.medicalFen).toBe(0n);
      }
      if (c.record.linkedCardNo !== null) {
        seen.linked++;
        const twin = byNo.get(c.record.linkedCardNo);
        expect(twin?.record.form).toBe('PHYSICAL');
        expect(twin?.record.issuingBank).toBe(c.record.issuingBank);
        // Never across a chunk boundary (chunks are written concurrently).
        expect(Math.floor((twin?.index ?? -1) / seed_cards_per_chunk)).toBe(Math.floor(c.index / seed_cards_per_chunk));
        expect(c.medicalFen).toBe(0n);
      }
      expect(c.purseFen).toBeGreaterThanOrEqual(0n);
      expect(c.purseFen).toBeLessThanOrEqual(100_000n);
    }
    expect(seen.ecard).toBeGreaterThan(cards.length / 5);
    expect(seen.linked).toBeGreaterThan(0);
    expect(seen.lost).toBeGreaterThan(0);
    expect(seen.cancelled).toBeGreaterThan(0);
  });

  it('card i does not depend on the city size, and a chunk\'s deposit covers the whole chunk', () => {
    const small = planCity({ seed: 5, cards: 100 });
    const large = planCity({ seed: 5, cards: 6_000 });
    expect(planCards(small, 0, 100)).toEqual(planCards(large, 0, 100));
    const chunk0Small = planCards(small, 0, 100);
    const chunk0Large = planCards(large, 0, seed_cards_per_chunk);
    expect(chunkMedicalDepositFen(small, 0, chunk0Small)).toBe(chunkMedicalDepositFen(large, 0, chunk0Large));
    expect(chunkMedicalDepositFen(large, 0, chunk0Large)).toBe(chunk0Large.reduce((a, c) => a + c.medicalFen, 0n));
  });

  it('opening entries balance per chunk and never overdraw the programme fund', () => {
    const p = planCity({ seed: 3, cards: 1_000 });
    const cards = planCards(p, 0, 1_000);
    const entries = chunkEntries(p, 0, cards);
    checkEntryAccounts(entries);
    const fund = `programme:${p.medicalProgramme.programmeId}:fund`;
    let fundFen = 0n;
    for (const e of entries) for (const l of e.lines) {
      if (l.credit === fund) fundFen += l.amountFen;
      if (l.debit === fund) fundFen -= l.amountFen;
    }
    expect(fundFen).toBeGreaterThanOrEqual(0n);
    expect(entries.filter((e) => e.kind === 'PURSE_LOAD')).toHaveLength(cards.filter((c) => c.purseFen > 0n).length);
    expect(new Set(entries.map((e) => e.idemKey)).size).toBe(entries.length);
    expect(planCard(p, 7)).toEqual(cards[7]);
  });
});
