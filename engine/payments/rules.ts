/**
 * Online payment rules, pure: what may be paid where, how a medical payment splits between the
 * card's medical personal account and self-pay through the cardholder's bank, how a refund
 * splits back, and the simulated bank's daily limit. No I/O, no clock: callers pass the facts
 * they read and the time they were given.
 */
import { DomainError, conflict, notFound, unprocessable } from '../errors.ts';

export type CardStatus = 'ISSUED' | 'ACTIVE' | 'LOST_REPORTED' | 'SUSPENDED' | 'CANCELLED';
export type MerchantKind = 'TRANSIT' | 'MEDICAL' | 'UTILITY' | 'RETAIL';
export type MerchantStatus = 'ACTIVE' | 'SUSPENDED' | 'CLOSED';
export type TerminalStatus = 'ACTIVE' | 'RETIRED';
export type PaymentStatus = 'SUCCEEDED' | 'PARTIALLY_REFUNDED' | 'REFUNDED';

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/** One QR payment: 100,000 yuan covers a hospital stay; anything larger is a typing error. */
export const payment_amount_fen_max = 10_000_000n;
/** One purse load: 1,000 yuan, the e-purse's stored-value ceiling for a load. */
export const purse_load_amount_fen_max = 100_000n;
/** Refunds per payment, so a payment's view (which lists them) stays bounded. */
export const refunds_per_payment_max = 100;

// ---------------------------------------------------------------------------------------------
// Refusal codes (stable: callers program against them)
// ---------------------------------------------------------------------------------------------

export const payment_error = {
  amount_out_of_range: 'AMOUNT_OUT_OF_RANGE',
  merchant_unknown: 'MERCHANT_UNKNOWN',
  merchant_not_active: 'MERCHANT_NOT_ACTIVE',
  terminal_invalid: 'TERMINAL_INVALID',
  card_unknown: 'CARD_UNKNOWN',
  card_not_found: 'CARD_NOT_FOUND',
  card_not_active: 'CARD_NOT_ACTIVE',
  card_hotlisted: 'CARD_HOTLISTED',
  card_cancelled: 'CARD_CANCELLED',
  qr_replayed: 'QR_REPLAYED',
  medical_not_allowed: 'MEDICAL_NOT_ALLOWED',
  utility_not_allowed: 'UTILITY_NOT_ALLOWED',
  utility_bill_required: 'UTILITY_BILL_REQUIRED',
  bill_already_paid: 'BILL_ALREADY_PAID',
  bank_declined: 'BANK_DECLINED',
  bank_timeout: 'BANK_TIMEOUT',
  bank_unavailable: 'BANK_UNAVAILABLE',
  idempotency_conflict: 'IDEMPOTENCY_CONFLICT',
  payment_not_found: 'PAYMENT_NOT_FOUND',
  refund_exceeds_remaining: 'REFUND_EXCEEDS_REMAINING',
  refund_limit_reached: 'REFUND_LIMIT_REACHED',
  concurrent_update: 'CONCURRENT_UPDATE',
} as const;

export function amountOutOfRange(what: string, maxFen: bigint): DomainError {
  return unprocessable(payment_error.amount_out_of_range, `${what} must be 1..${maxFen} fen.`, { amountFenMax: String(maxFen) });
}

export function idempotencyConflict(what: string): DomainError {
  return conflict(payment_error.idempotency_conflict, `This ${what} was already used for a different request; use a new one.`);
}

export function checkAmount(amountFen: bigint, maxFen: bigint, what: string): void {
  if (amountFen <= 0n || amountFen > maxFen) throw amountOutOfRange(what, maxFen);
}

// ---------------------------------------------------------------------------------------------
// Cards and merchants
// ---------------------------------------------------------------------------------------------

/** Refusal for a card that may not pay or be loaded now; ACTIVE passes. */
export function cardStatusRefusal(status: CardStatus, allowIssued: boolean): DomainError | null {
  switch (status) {
    case 'ACTIVE':
      return null;
    case 'ISSUED':
      return allowIssued ? null : unprocessable(payment_error.card_not_active, 'The card has not been activated yet.');
    case 'LOST_REPORTED':
    case 'SUSPENDED':
      return unprocessable(payment_error.card_hotlisted, 'The card is reported lost or suspended.', { status });
    case 'CANCELLED':
      return unprocessable(payment_error.card_cancelled, 'The card is cancelled.');
  }
}

/**
 * A purse load. A card not yet activated may be loaded (banks pre-load new cards); a lost,
 * suspended or cancelled one may not: its money would be out of the cardholder's reach.
 * A card of another issuer is "not found" to the caller, as an unknown one is.
 */
export function checkPurseLoad(card: { status: CardStatus; issuingBank: string } | null, callerBank: string, amountFen: bigint): void {
  checkAmount(amountFen, purse_load_amount_fen_max, 'A purse load');
  if (card === null || card.issuingBank !== callerBank) {
    throw notFound(payment_error.card_not_found, 'No card with this number was issued by your bank.');
  }
  const refusal = cardStatusRefusal(card.status, true);
  if (refusal) throw refusal;
}

export interface QrPaymentAsk {
  amountFen: bigint;
  terminalId: string | null;
  /** Present when the merchant asks to draw on the medical personal account first. */
  medical: { personalAccountFenMax: bigint | null; visitNo: string | null } | null;
  utility: { customerNo: string; billId: string } | null;
}

/** What the engine knew when it decided, read in one query. */
export interface QrPaymentFacts {
  merchant: { kind: MerchantKind; status: MerchantStatus } | null;
  /** Undefined when the request named no terminal; null when it named an unknown one. */
  terminal?: { merchantId: string; status: TerminalStatus } | null;
  merchantId: string;
  card: { status: CardStatus; issuingBank: string } | null;
  /** The order that already used this code, if any. */
  codeUsedBy: { merchantId: string; orderId: string } | null;
  orderId: string;
  billAlreadyPaid: boolean;
  /** Spendable balance of the card's medical personal account (0 if it has none). */
  medicalAvailableFen: bigint;
}

export interface QrPaymentPlan {
  medicalFen: bigint;
  selfPayFen: bigint;
}

/**
 * Decide a QR payment: refuse it with a stable code, or split it. Checks run from the merchant's
 * own mistakes (its key, terminal, amount, the kind of payment it asked for) to the card's state,
 * so a merchant learns about its own errors before anything about the cardholder.
 */
export function planQrPayment(ask: QrPaymentAsk, f: QrPaymentFacts): QrPaymentPlan {
  if (f.merchant === null) throw new DomainError(payment_error.merchant_unknown, 403, 'Your API key names a merchant that does not exist.');
  if (f.merchant.status !== 'ACTIVE') {
    throw new DomainError(payment_error.merchant_not_active, 403, 'Your merchant is not active.', { status: f.merchant.status });
  }
  if (f.terminal !== undefined) {
    if (f.terminal === null || f.terminal.merchantId !== f.merchantId) {
      throw unprocessable(payment_error.terminal_invalid, 'No such terminal of yours.', { reason: 'UNKNOWN' });
    }
    if (f.terminal.status !== 'ACTIVE') throw unprocessable(payment_error.terminal_invalid, 'The terminal is retired.', { reason: 'RETIRED' });
  }
  checkAmount(ask.amountFen, payment_amount_fen_max, 'A payment');
  if (ask.medical !== null && f.merchant.kind !== 'MEDICAL') {
    throw unprocessable(payment_error.medical_not_allowed, 'The medical personal account can be used only at medical merchants.');
  }
  if (ask.utility !== null && f.merchant.kind !== 'UTILITY') {
    throw unprocessable(payment_error.utility_not_allowed, 'Bill details belong only to payments at utility merchants.');
  }
  if (ask.utility === null && f.merchant.kind === 'UTILITY') {
    throw unprocessable(payment_error.utility_bill_required, 'A payment at a utility merchant names the customer number and the bill.');
  }
  if (f.codeUsedBy !== null && !(f.codeUsedBy.merchantId === f.merchantId && f.codeUsedBy.orderId === f.orderId)) {
    throw conflict(payment_error.qr_replayed, 'This pay code was already used; ask the cardholder to refresh it.');
  }
  if (f.card === null) throw unprocessable(payment_error.card_unknown, 'The pay code names a card the engine does not know.');
  const refusal = cardStatusRefusal(f.card.status, false);
  if (refusal) throw refusal;
  if (f.billAlreadyPaid) throw conflict(payment_error.bill_already_paid, 'This bill has already been paid.');
  if (ask.medical === null) return { medicalFen: 0n, selfPayFen: ask.amountFen };
  return medicalSplit(ask.amountFen, f.medicalAvailableFen, ask.medical.personalAccountFenMax);
}

/**
 * The medical personal account pays first, as much as it holds (and no more than the merchant
 * asked it to); the rest is self-pay through the cardholder's bank.
 */
export function medicalSplit(amountFen: bigint, medicalAvailableFen: bigint, capFen: bigint | null): QrPaymentPlan {
  let medicalFen = amountFen;
  if (medicalAvailableFen < medicalFen) medicalFen = medicalAvailableFen;
  if (capFen !== null && capFen < medicalFen) medicalFen = capFen;
  if (medicalFen < 0n) medicalFen = 0n;
  return { medicalFen, selfPayFen: amountFen - medicalFen };
}

// ---------------------------------------------------------------------------------------------
// Refunds
// ---------------------------------------------------------------------------------------------

export interface RefundPlan {
  medicalFen: bigint;
  selfPayFen: bigint;
  refundedAfterFen: bigint;
}

/**
 * A refund goes back to where the money came from, in the payment's own proportion: after any
 * sequence of refunds totalling R of a payment A with medical part M, the medical account has
 * had floor(M × R / A) back and the bank the rest. Computing each refund from the cumulative
 * totals (not from its own amount) means rounding never accumulates, a full refund returns each
 * leg exactly, and no leg is ever refunded beyond what it paid. (Medical-first would empty the
 * insurance account's share before the cardholder's own money; the proportional rule is what a
 * cardholder sees on the original receipt.)
 */
export function planRefund(payment: { amountFen: bigint; medicalFen: bigint }, refunded: { amountFen: bigint; medicalFen: bigint; count: number }, amountFen: bigint): RefundPlan {
  if (amountFen <= 0n) throw amountOutOfRange('A refund', payment.amountFen);
  const remainingFen = payment.amountFen - refunded.amountFen;
  if (amountFen > remainingFen) {
    throw unprocessable(payment_error.refund_exceeds_remaining, 'The refund is larger than what remains of the payment.', {
      remainingFen: String(remainingFen), requestedFen: String(amountFen),
    });
  }
  if (refunded.count >= refunds_per_payment_max) {
    throw unprocessable(payment_error.refund_limit_reached, `A payment takes at most ${refunds_per_payment_max} refunds.`);
  }
  const refundedAfterFen = refunded.amountFen + amountFen;
  const medicalAfterFen = (payment.medicalFen * refundedAfterFen) / payment.amountFen;
  let medicalFen = medicalAfterFen - refunded.medicalFen;
  // Only reachable if earlier refunds were split by another rule; never hand back more than
  // this refund or more than the medical leg still holds.
  if (medicalFen < 0n) medicalFen = 0n;
  if (medicalFen > amountFen) medicalFen = amountFen;
  if (medicalFen > payment.medicalFen - refunded.medicalFen) medicalFen = payment.medicalFen - refunded.medicalFen;
  return { medicalFen, selfPayFen: amountFen - medicalFen, refundedAfterFen };
}

export function paymentStatus(amountFen: bigint, refundedFen: bigint): PaymentStatus {
  if (refundedFen === 0n) return 'SUCCEEDED';
  return refundedFen >= amountFen ? 'REFUNDED' : 'PARTIALLY_REFUNDED';
}

// ---------------------------------------------------------------------------------------------
// Request fingerprints (what "the same request" means for idempotency)
// ---------------------------------------------------------------------------------------------

/**
 * The canonical text of a QR payment request, hashed and stored with the payment: a retry of the
 * order with this exact text is a replay, anything else under the same order id is a conflict.
 * The pay code is part of it, so a retry with a refreshed code is a different request.
 */
export function qrRequestCanonical(qrCode: string, ask: QrPaymentAsk): string {
  return JSON.stringify([
    'qr/1', qrCode, String(ask.amountFen), ask.terminalId,
    ask.medical === null ? null : [ask.medical.personalAccountFenMax === null ? null : String(ask.medical.personalAccountFenMax), ask.medical.visitNo],
    ask.utility === null ? null : [ask.utility.customerNo, ask.utility.billId],
  ]);
}
