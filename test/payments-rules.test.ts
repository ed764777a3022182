/**
 * The pure payment rules (engine/payments): the medical split, the proportional refund split with
 * cumulative rounding, the daily limit, the order of refusals, and the request fingerprint.
 * Invariants are checked with fast-check over random payments and refund sequences.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../engine/errors.ts';
import {
  medicalSplit, payment_amount_fen_max, paymentStatus, planQrPayment, planRefund, qrRequestCanonical,
  refunds_per_payment_max, type QrPaymentAsk, type QrPaymentFacts,
} from '../engine/payments/index.ts';

function codeOf(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    if (e instanceof DomainError) return e.code;
    throw e;
  }
}

const fen = (max: bigint) => fc.bigInt({ min: 0n, max });

describe('medical split', () => {
  it('the medical account pays min(amount, available, cap); the parts add up', () => {
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: payment_amount_fen_max }), fen(10n ** 9n), fc.option(fen(10n ** 9n)), (amount, available, cap) => {
      const s = medicalSplit(amount, available, cap);
      let expected = amount < available ? amount : available;
      if (cap !== null && cap < expected) expected = cap;
      expect(s.medicalFen).toBe(expected);
      expect(s.medicalFen + s.selfPayFen).toBe(amount);
      expect(s.selfPayFen >= 0n && s.medicalFen >= 0n).toBe(true);
    }));
  });
});

describe('refund split', () => {
  it('any sequence of refunds: each leg gets floor(M × R / A) cumulatively, never more than it paid, exact when complete', () => {
    const scenario = fc.bigInt({ min: 1n, max: payment_amount_fen_max }).chain((amount) => fc.record({
      amount: fc.constant(amount),
      medical: fc.bigInt({ min: 0n, max: amount }),
      cuts: fc.array(fc.bigInt({ min: 1n, max: amount }), { minLength: 1, maxLength: 30 }),
    }));
    fc.assert(fc.property(scenario, ({ amount, medical, cuts }) => {
      const payment = { amountFen: amount, medicalFen: medical };
      let refunded = { amountFen: 0n, medicalFen: 0n, count: 0 };
      for (const cut of cuts) {
        const remaining = amount - refunded.amountFen;
        if (cut > remaining) {
          expect(codeOf(() => planRefund(payment, refunded, cut))).toBe('REFUND_EXCEEDS_REMAINING');
          continue;
        }
        const p = planRefund(payment, refunded, cut);
        expect(p.medicalFen + p.selfPayFen).toBe(cut);
        expect(p.medicalFen >= 0n && p.selfPayFen >= 0n).toBe(true);
        refunded = { amountFen: refunded.amountFen + cut, medicalFen: refunded.medicalFen + p.medicalFen, count: refunded.count + 1 };
        expect(p.refundedAfterFen).toBe(refunded.amountFen);
        expect(refunded.medicalFen).toBe((medical * refunded.amountFen) / amount);
        expect(refunded.medicalFen <= medical).toBe(true);
        expect(refunded.amountFen - refunded.medicalFen <= amount - medical).toBe(true);
      }
      // Refund whatever is left: each leg comes back exactly.
      const left = amount - refunded.amountFen;
      if (left > 0n && refunded.count < refunds_per_payment_max) {
        const last = planRefund(payment, refunded, left);
        expect(refunded.medicalFen + last.medicalFen).toBe(medical);
        expect(refunded.amountFen - refunded.medicalFen + last.selfPayFen).toBe(amount - medical);
      }
    }));
  });

  it('refuses a non-positive refund and more than the per-payment refund count', () => {
    expect(codeOf(() => planRefund({ amountFen: 100n, medicalFen: 0n }, { amountFen: 0n, medicalFen: 0n, count: 0 }, 0n))).toBe('AMOUNT_OUT_OF_RANGE');
    expect(codeOf(() => planRefund({ amountFen: 1000n, medicalFen: 0n }, { amountFen: 100n, medicalFen: 0n, count: refunds_per_payment_max }, 1n))).toBe('REFUND_LIMIT_REACHED');
  });

  it('payment status follows the refunded total', () => {
    expect(paymentStatus(100n, 0n)).toBe('SUCCEEDED');
    expect(paymentStatus(100n, 1n)).toBe('PARTIALLY_REFUNDED');
    expect(paymentStatus(100n, 99n)).toBe('PARTIALLY_REFUNDED');
    expect(paymentStatus(100n, 100n)).toBe('REFUNDED');
  });
});

describe('deciding a QR payment', () => {
  const ask: QrPaymentAsk = { amountFen: 1000n, terminalId: null, medical: null, utility: null };
  const facts: QrPaymentFacts = {
    merchantId: 'M1', orderId: 'O1', merchant: { kind: 'RETAIL', status: 'ACTIVE' }, card: { status: 'ACTIVE', issuingBank: '102100000001' },
    codeUsedBy: null, billAlreadyPaid: false, medicalAvailableFen: 0n,
  };

  it('refuses in order: merchant, terminal, amount, payment kind, code replay, card, bill', () => {
    const cases: [Partial<QrPaymentAsk>, Partial<QrPaymentFacts>, string | null][] = [
      [{}, {}, null],
      [{}, { merchant: null, card: null }, 'MERCHANT_UNKNOWN'],
      [{}, { merchant: { kind: 'RETAIL', status: 'SUSPENDED' }, card: null }, 'MERCHANT_NOT_ACTIVE'],
      [{ terminalId: '000000000001' }, { terminal: null, card: null }, 'TERMINAL_INVALID'],
      [{ terminalId: '000000000001' }, { terminal: { merchantId: 'M2', status: 'ACTIVE' } }, 'TERMINAL_INVALID'],
      [{ terminalId: '000000000001' }, { terminal: { merchantId: 'M1', status: 'RETIRED' } }, 'TERMINAL_INVALID'],
      [{ terminalId: '000000000001' }, { terminal: { merchantId: 'M1', status: 'ACTIVE' } }, null],
      [{ amountFen: payment_amount_fen_max + 1n }, { card: null }, 'AMOUNT_OUT_OF_RANGE'],
      [{ medical: { personalAccountFenMax: null, visitNo: null } }, { card: null }, 'MEDICAL_NOT_ALLOWED'],
      [{ utility: { customerNo: 'C', billId: 'B' } }, { card: null }, 'UTILITY_NOT_ALLOWED'],
      [{}, { merchant: { kind: 'UTILITY', status: 'ACTIVE' }, card: null }, 'UTILITY_BILL_REQUIRED'],
      [{}, { codeUsedBy: { merchantId: 'M2', orderId: 'O1' }, card: null }, 'QR_REPLAYED'],
      [{}, { codeUsedBy: { merchantId: 'M1', orderId: 'O2' } }, 'QR_REPLAYED'],
      [{}, { codeUsedBy: { merchantId: 'M1', orderId: 'O1' } }, null],
      [{}, { card: null }, 'CARD_UNKNOWN'],
      [{}, { card: { status: 'ISSUED', issuingBank: 'x' }, billAlreadyPaid: true }, 'CARD_NOT_ACTIVE'],
      [{}, { card: { status: 'LOST_REPORTED', issuingBank: 'x' } }, 'CARD_HOTLISTED'],
      [{}, { card: { status: 'SUSPENDED', issuingBank: 'x' } }, 'CARD_HOTLISTED'],
      [{}, { card: { status: 'CANCELLED', issuingBank: 'x' } }, 'CARD_CANCELLED'],
      [{ utility: { customerNo: 'C', billId: 'B' } }, { merchant: { kind: 'UTILITY', status: 'ACTIVE' }, billAlreadyPaid: true }, 'BILL_ALREADY_PAID'],
    ];
    for (const [a, f, expected] of cases) {
      expect(codeOf(() => planQrPayment({ ...ask, ...a }, { ...facts, ...f })), JSON.stringify([a, f], (_k, v) => (typeof v === 'bigint' ? String(v) : v))).toBe(expected);
    }
  });

  it('splits only when the medical object is present at a medical merchant', () => {
    const hosp = { ...facts, merchant: { kind: 'MEDICAL' as const, status: 'ACTIVE' as const }, medicalAvailableFen: 600n };
    expect(planQrPayment(ask, hosp)).toEqual({ medicalFen: 0n, selfPayFen: 1000n });
    expect(planQrPayment({ ...ask, medical: { personalAccountFenMax: null, visitNo: null } }, hosp)).toEqual({ medicalFen: 600n, selfPayFen: 400n });
    expect(planQrPayment({ ...ask, medical: { personalAccountFenMax: 250n, visitNo: null } }, hosp)).toEqual({ medicalFen: 250n, selfPayFen: 750n });
  });
});

describe('request fingerprint', () => {
  it('differs whenever any part of the request differs', () => {
    const base: QrPaymentAsk = { amountFen: 10n, terminalId: null, medical: null, utility: null };
    const variants: [string, QrPaymentAsk][] = [
      ['A', base], ['B', base], ['A', { ...base, amountFen: 11n }], ['A', { ...base, terminalId: '000000000001' }],
      ['A', { ...base, medical: { personalAccountFenMax: null, visitNo: null } }], ['A', { ...base, medical: { personalAccountFenMax: 0n, visitNo: null } }],
      ['A', { ...base, medical: { personalAccountFenMax: null, visitNo: 'V' } }], ['A', { ...base, utility: { customerNo: 'C', billId: 'B' } }],
      ['A', { ...base, utility: { customerNo: 'C', billId: 'B2' } }],
    ];
    const texts = variants.map(([code, a]) => qrRequestCanonical(code, a));
    expect(new Set(texts).size).toBe(variants.length);
    expect(qrRequestCanonical('A', { ...base })).toBe(texts[0]);
  });
});
