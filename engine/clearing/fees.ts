/**
 * Merchant fee per transaction (SETTLEMENT-FILES.md, "Identifiers and money"):
 *
 *     fee_fen = clamp(round_half_up(amount_fen × rate), min_fen, max_fen)
 *
 * Pure: no I/O, no clock. The product is computed exactly in decimal (decimal.js), never in
 * binary floating point, because a rate such as 0.006 has no exact binary representation and a
 * float product can land just under a .5 boundary and round the wrong way.
 */
import { Decimal } from 'decimal.js';
import { unprocessable } from '../errors.ts';

export interface FeeSchedule {
  /** Decimal string in [0, 1], e.g. "0.006" for 0.6 %. A string, so it is never a float. */
  readonly rate: string;
  readonly minFen: bigint;
  readonly maxFen: bigint;
}

/** Digits after the point a rate may carry: ample for any real tariff (0.000001 % steps). */
export const FEE_RATE_DECIMALS_MAX = 12;
/** Largest amount priced: 10^18 fen is far beyond any one transaction and keeps math small. */
export const FEE_AMOUNT_FEN_MAX = 10n ** 18n;

// Exactness: |amount| < 10^18 (18 digits) × rate (at most 1 + 12 decimals, 13 significant
// digits) needs at most 31 significant digits, so 64 can never round the product itself; the
// only rounding is the explicit half-up to whole fen below.
const FeeDecimal = Decimal.clone({
  precision: 64,
  rounding: Decimal.ROUND_HALF_UP,
  toExpNeg: -64,
  toExpPos: 64,
});

const RATE_PATTERN = new RegExp(`^(?:0|1)(?:\\.\\d{1,${FEE_RATE_DECIMALS_MAX}})?$`);

// Schedules are few (one per merchant class) and fees are many: validate and parse each
// schedule object once, not once per transaction. Schedules are values (readonly): a changed
// tariff is a new object, so a cached parse can never go stale.
const validatedRates = new WeakMap<FeeSchedule, Decimal>();

/** Throws FEE_SCHEDULE_INVALID unless 0 ≤ rate ≤ 1, 0 ≤ min ≤ max (e.g. when a tariff is saved). */
export function validateFeeSchedule(schedule: FeeSchedule): void {
  parsedRate(schedule);
}

function parsedRate(schedule: FeeSchedule): Decimal {
  const cached = validatedRates.get(schedule);
  if (cached !== undefined) return cached;
  const { rate, minFen, maxFen } = schedule;
  if (typeof rate !== 'string' || !RATE_PATTERN.test(rate)) {
    throw invalid(`rate must be a decimal string between 0 and 1 with at most ${FEE_RATE_DECIMALS_MAX} decimals`, { rate: String(rate) });
  }
  const rateDecimal = new FeeDecimal(rate);
  if (rateDecimal.gt(1)) throw invalid('rate must not exceed 1', { rate });
  if (typeof minFen !== 'bigint' || typeof maxFen !== 'bigint') {
    throw invalid('minFen and maxFen must be bigint fen', {});
  }
  if (minFen < 0n) throw invalid('minFen must not be negative', { minFen: minFen.toString() });
  if (maxFen < minFen) {
    throw invalid('maxFen must not be below minFen', { minFen: minFen.toString(), maxFen: maxFen.toString() });
  }
  validatedRates.set(schedule, rateDecimal);
  return rateDecimal;
}

/** The fee in fen for one transaction of `amountFen` (≥ 0) under `schedule`. */
export function feeFen(amountFen: bigint, schedule: FeeSchedule): bigint {
  const rate = parsedRate(schedule);
  // A negative amount (refund, reversal) has no agreed rounding direction for "half up": the
  // caller prices the original amount and reverses the fee explicitly.
  if (typeof amountFen !== 'bigint' || amountFen < 0n || amountFen >= FEE_AMOUNT_FEN_MAX) {
    throw unprocessable('FEE_AMOUNT_INVALID', 'A fee is computed on a non-negative amount in fen below 10^18.', {
      amountFen: String(amountFen),
    });
  }
  const product = new FeeDecimal(amountFen.toString()).times(rate);
  const rounded = BigInt(product.toDecimalPlaces(0, Decimal.ROUND_HALF_UP).toFixed(0));
  if (rounded < schedule.minFen) return schedule.minFen;
  if (rounded > schedule.maxFen) return schedule.maxFen;
  return rounded;
}

function invalid(reason: string, details: Record<string, unknown>) {
  return unprocessable('FEE_SCHEDULE_INVALID', `Invalid fee schedule: ${reason}.`, details);
}
