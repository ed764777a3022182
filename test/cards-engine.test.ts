/**
 * The pure rules of engine/cards and engine/complaints, with properties where there are
 * invariants: lifecycle moves, national ID check characters, card numbers, fines, misuse
 * detectors, the masking table, the complaint deadline and the token bucket.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  action_rules, card_actions, card_bin, card_statuses, cardNoFor, checkEligibility, detectAbnormalCounts, detectImpossibleTravel, distanceKm,
  hotlisted_statuses, isLuhnValid, isValidNationalId, nationalIdCheckChar, parseFineMultiple, planAction, purposes, recoveryTerms, reveal_table,
  revealedFields, type TapForMisuse,
} from '../engine/cards/index.ts';
import { card_status_transitions } from '../engine/reference/card-status.ts';
import { dueAt, isOverdue, planComplaintStep, TokenBuckets } from '../engine/complaints/index.ts';
import { isDomainError } from '../engine/errors.ts';

function codeOf(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    if (isDomainError(e)) return e.code;
    throw e;
  }
}

describe('lifecycle', () => {
  it('every (status, action) pair either makes the rule\'s move or is CARD_TRANSITION_INVALID', () => {
    for (const s of card_statuses) {
      for (const act of card_actions) {
        const allowed = action_rules[act].from.includes(s);
        if (allowed) {
          const p = planAction(s, act);
          expect(p.to).toBe(action_rules[act].to);
          const was = hotlisted_statuses.includes(s);
          const will = hotlisted_statuses.includes(p.to);
          expect(p.hotlistChange).toBe(was === will ? null : will ? 'ADD' : 'REMOVE');
        } else {
          expect(codeOf(() => planAction(s, act))).toBe('CARD_TRANSITION_INVALID');
        }
      }
    }
  });

  it('every move a desk action makes is one the status history allows (engine/reference)', () => {
    for (const act of card_actions) {
      for (const from of action_rules[act].from) expect(card_status_transitions[from]).toContain(action_rules[act].to);
    }
  });

  it('a cancelled card accepts no action, and any sequence of actions ends in a status', () => {
    for (const act of card_actions) expect(codeOf(() => planAction('CANCELLED', act))).toBe('CARD_TRANSITION_INVALID');
    fc.assert(fc.property(fc.array(fc.constantFrom(...card_actions), { maxLength: 30 }), (acts) => {
      let s: (typeof card_statuses)[number] = 'ISSUED';
      let cancelled = false;
      for (const act of acts) {
        if (codeOf(() => planAction(s, act)) === null) {
          expect(cancelled).toBe(false);
          s = planAction(s, act).to;
          if (s === 'CANCELLED') cancelled = true;
        }
      }
      expect(card_statuses).toContain(s);
    }));
  });
});

describe('national ID numbers (GB 11643)', () => {
  it('accepts the published example and rejects a wrong check character', () => {
    expect(isValidNationalId('11010519491231002X')).toBe(true);
    expect(isValidNationalId('110105194912310021')).toBe(false);
    expect(isValidNationalId('11010519491331002X')).toBe(false); // month 13
  });

  const birth = fc.date({ min: new Date('1900-01-01T00:00:00Z'), max: new Date('2020-12-31T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10).replaceAll('-', ''));
  const id = fc.tuple(fc.stringMatching(/^[1-6][0-9]{5}$/), birth, fc.stringMatching(/^[0-9]{3}$/)).map(([r, b, s]) => `${r}${b}${s}`);

  it('a number with its check character is valid; any single changed character is not', () => {
    fc.assert(fc.property(id, fc.nat(17), fc.nat(10), (first17, pos, delta) => {
      const good = first17 + nationalIdCheckChar(first17);
      expect(isValidNationalId(good)).toBe(true);
      const chars = '0123456789X';
      const old = good[pos];
      const replacement = chars[(chars.indexOf(old) + 1 + delta) % 11];
      if (replacement === old || (pos < 17 && replacement === 'X')) return;
      const bad = good.slice(0, pos) + replacement + good.slice(pos + 1);
      expect(isValidNationalId(bad)).toBe(false);
    }));
  });

  it('eligibility: basis rules, document expiry, HMT and foreign number ranges', () => {
    const local = '11010519491231002X';
    const today = '2026-11-28';
    const base = { nationalId: local, name: '张三' };
    expect(checkEligibility({ ...base, basis: 'LOCAL_HOUSEHOLD' }, today)).toBe('LOCAL_HOUSEHOLD');
    expect(codeOf(() => checkEligibility({ ...base, basis: 'RESIDENCE_PERMIT' }, today))).toBe('VALID_UNTIL_REQUIRED');
    expect(codeOf(() => checkEligibility({ ...base, basis: 'RESIDENCE_PERMIT', validUntil: '2026-11-27' }, today))).toBe('ELIGIBILITY_EXPIRED');
    expect(checkEligibility({ ...base, basis: 'RESIDENCE_PERMIT', validUntil: today }, today)).toBe('RESIDENCE_PERMIT');
    expect(codeOf(() => checkEligibility({ ...base, basis: 'HMT_RESIDENT', validUntil: '2030-01-01' }, today))).toBe('NOT_ELIGIBLE');
    const hmt17 = '81000019900101001';
    expect(checkEligibility({ ...base, nationalId: hmt17 + nationalIdCheckChar(hmt17), basis: 'HMT_RESIDENT', validUntil: '2030-01-01' }, today)).toBe('HMT_RESIDENT');
    expect(codeOf(() => checkEligibility({ ...base, basis: 'MARTIAN' }, today))).toBe('ELIGIBILITY_BASIS_INVALID');
    expect(codeOf(() => checkEligibility({ ...base, basis: 'LOCAL_HOUSEHOLD', phone: '12345' }, today))).toBe('PHONE_INVALID');
    const future17 = '11010520300101001';
    expect(codeOf(() => checkEligibility({ ...base, nationalId: future17 + nationalIdCheckChar(future17), basis: 'LOCAL_HOUSEHOLD' }, today))).toBe('NATIONAL_ID_INVALID');
  });
});

describe('card numbers', () => {
  it('are 19 digits in the BIN, Luhn-valid, distinct per serial and form; a changed digit fails Luhn', () => {
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: 99_999_999_999n }), fc.bigInt({ min: 1n, max: 99_999_999_999n }), fc.nat(18), (s1, s2, pos) => {
      const a = cardNoFor('PHYSICAL', s1);
      const e = cardNoFor('ECARD', s1);
      expect(a).toMatch(/^[0-9]{19}$/);
      expect(a.startsWith(card_bin)).toBe(true);
      expect(isLuhnValid(a) && isLuhnValid(e)).toBe(true);
      expect(a).not.toBe(e);
      if (s1 !== s2) expect(cardNoFor('PHYSICAL', s2)).not.toBe(a);
      const d = Number(a[pos]);
      const changed = a.slice(0, pos) + String((d + 1) % 10) + a.slice(pos + 1);
      expect(isLuhnValid(changed)).toBe(false);
    }));
    expect(() => cardNoFor('PHYSICAL', 0n)).toThrow(RangeError);
  });
});

describe('fines', () => {
  it('accepts 2 to 5 inclusive and nothing else', () => {
    for (const ok of ['2', '5', '2.0', '3.75', '4.9999', '5.0000']) expect(() => parseFineMultiple(ok)).not.toThrow();
    for (const bad of ['1.9999', '5.0001', '6', '0', '-2', '2.00001', '2e0', ' 3', 'NaN', 'Infinity']) {
      expect(codeOf(() => parseFineMultiple(bad))).toBe('FINE_MULTIPLE_OUT_OF_RANGE');
    }
  });

  it('fine = round half up of amount × multiple, exactly (property against integer arithmetic)', () => {
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: 10n ** 12n }), fc.integer({ min: 20_000, max: 50_000 }), (amount, m4) => {
      const text = `${Math.floor(m4 / 10_000)}.${String(m4 % 10_000).padStart(4, '0')}`;
      const t = recoveryTerms(amount, text);
      // amount × m4 / 10^4, half up: floor((2·amount·m4 + 10^4) / (2·10^4)).
      const expected = (2n * amount * BigInt(m4) + 10_000n) / 20_000n;
      expect(t.fineFen).toBe(expected);
      expect(t.dueFen).toBe(amount + expected);
      expect(t.fineFen >= 2n * amount && t.fineFen <= 5n * amount).toBe(true);
    }));
    expect(recoveryTerms(1001n, '2.5').fineFen).toBe(2503n);
  });
});

describe('misuse detectors', () => {
  const limits = { speedKmhMax: 120, dailyTapsMax: 30, distanceKmMin: 1 };
  const t0 = Date.parse('2026-11-28T00:00:00Z');
  const tap = (card: string, terminal: string, lat: number, minutes: number): TapForMisuse => ({ cardNo: card, terminalId: terminal, at: new Date(t0 + minutes * 60_000), latitude: lat, longitude: 114 });

  it('flags a trip faster than the limit and not one within it', () => {
    const km = distanceKm(30, 114, 30.3, 114);
    expect(km).toBeGreaterThan(33);
    expect(km).toBeLessThan(34);
    // 33.4 km in 10 min = 200 km/h; in 20 min = 100 km/h.
    expect(detectImpossibleTravel([tap('A', 'T1', 30, 0), tap('A', 'T2', 30.3, 10)], limits)).toHaveLength(1);
    expect(detectImpossibleTravel([tap('A', 'T1', 30, 0), tap('A', 'T2', 30.3, 20)], limits)).toHaveLength(0);
    // Same instant, far apart: infinite speed.
    const same = detectImpossibleTravel([tap('A', 'T1', 30, 0), tap('A', 'T2', 30.3, 0)], limits);
    expect(same[0].speedKmh).toBe(Number.POSITIVE_INFINITY);
    // Terminals without coordinates give no signal.
    expect(detectImpossibleTravel([tap('A', 'T1', 30, 0), { ...tap('A', 'T2', 30.3, 1), latitude: null, longitude: null }], limits)).toHaveLength(0);
  });

  it('never flags trips whose speed is within the limit, whatever the order of input (property)', () => {
    const trip = fc.array(fc.record({ dLatKm: fc.double({ min: -50, max: 50, noNaN: true }), speedKmh: fc.double({ min: 1, max: 119, noNaN: true }) }), { minLength: 1, maxLength: 15 });
    fc.assert(fc.property(trip, fc.integer(), (legs, seed) => {
      const taps: TapForMisuse[] = [];
      let lat = 30;
      let minutes = 0;
      taps.push(tap('C', 'T0', lat, minutes));
      legs.forEach((leg, i) => {
        const nextLat = lat + leg.dLatKm / 111.2;
        const km = distanceKm(lat, 114, nextLat, 114);
        // Round the time up to whole minutes: it only makes the trip slower.
        minutes += Math.ceil((km / leg.speedKmh) * 60) + 1;
        lat = nextLat;
        taps.push(tap('C', `T${i + 1}`, lat, minutes));
      });
      const shuffled = [...taps].sort((x, y) => ((x.terminalId.charCodeAt(1) * 31 + seed) % 7) - ((y.terminalId.charCodeAt(1) * 31 + seed) % 7));
      expect(detectImpossibleTravel(shuffled, limits)).toEqual([]);
    }));
  });

  it('counts taps per card above the daily limit only', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 60 }), (na, nb) => {
      const taps = [...Array.from({ length: na }, (_, i) => tap('A', 'T', 30, i)), ...Array.from({ length: nb }, (_, i) => tap('B', 'T', 30, i))];
      const got = detectAbnormalCounts(taps, limits);
      const expected = [...(na > 30 ? [{ cardNo: 'A', taps: na, limit: 30 }] : []), ...(nb > 30 ? [{ cardNo: 'B', taps: nb, limit: 30 }] : [])];
      expect(got).toEqual(expected);
    }));
  });
});

describe('masking policy', () => {
  it('reveals nothing without a purpose, and nothing to roles outside the table', () => {
    for (const role of ['admin', 'finance', 'auditor', 'operator', 'bank', 'merchant', 'programme']) {
      expect(revealedFields(role, undefined)).toEqual([]);
      for (const p of purposes) {
        const r = revealedFields(role, p);
        if (!(role in reveal_table)) expect(r).toEqual([]);
        else expect(r).toEqual(reveal_table[role][p] ?? []);
      }
    }
    expect(revealedFields('admin', 'CARD_SERVICE')).toEqual(['name', 'national_id', 'phone', 'address']);
    expect(revealedFields('finance', 'CARD_SERVICE')).toEqual([]);
  });
});

describe('complaints rules', () => {
  it('deadline and overdue', () => {
    const filed = new Date('2026-11-28T02:00:00Z');
    const due = dueAt(filed, 15);
    expect(due.toISOString()).toBe('2026-12-13T02:00:00.000Z');
    expect(isOverdue('OPEN', due, new Date(due.getTime() + 1))).toBe(true);
    expect(isOverdue('OPEN', due, due)).toBe(false);
    expect(isOverdue('ANSWERED', due, new Date(due.getTime() + 1e9))).toBe(false);
    expect(codeOf(() => planComplaintStep('ANSWERED', 'ASSIGN'))).toBe('COMPLAINT_TRANSITION_INVALID');
  });

  it('a token bucket never allows more than capacity + refills in any window (property)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 1, maxLength: 200 }), (gaps) => {
      const b = new TokenBuckets({ capacity: 3, refillMs: 1_000, keysMax: 10 });
      let t = 0;
      const allowed: number[] = [];
      for (const g of gaps) {
        t += g;
        if (b.take('ip', t) === 0) allowed.push(t);
      }
      for (let i = 0; i < allowed.length; i++) {
        for (let j = i; j < allowed.length; j++) {
          const window = allowed[j] - allowed[i];
          expect(j - i + 1).toBeLessThanOrEqual(3 + Math.floor(window / 1_000));
        }
      }
    }));
  });

  it('keeps at most keysMax addresses', () => {
    const b = new TokenBuckets({ capacity: 1, refillMs: 1_000, keysMax: 5 });
    for (let i = 0; i < 50; i++) b.take(`ip${i}`, 0);
    expect(b.size).toBe(5);
  });
});
