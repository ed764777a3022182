/**
 * Fraud recovery (the city regulation): a cardholder who obtained social-security funds by
 * impersonation or with a forged card returns them and pays a fine of 2 to 5 times the amount.
 * Decimal arithmetic only (decimal.js): a multiple such as 2.35 has no exact binary form.
 */
import { Decimal } from 'decimal.js';
import { badRequest } from '../errors.ts';

export const fine_multiple_min = '2';
export const fine_multiple_max = '5';
/** numeric(6, 4) in the schema. */
export const fine_multiple_decimals_max = 4;
export const recovery_amount_fen_max = 10n ** 12n;

const multiple_pattern = new RegExp(`^[0-9]{1,2}(?:\\.[0-9]{1,${fine_multiple_decimals_max}})?$`);
const FineDecimal = Decimal.clone({ precision: 40, rounding: Decimal.ROUND_HALF_UP, toExpNeg: -40, toExpPos: 40 });

/** Parses and range-checks a fine multiple given as a decimal string; 400 FINE_MULTIPLE_OUT_OF_RANGE otherwise. */
export function parseFineMultiple(text: string): Decimal {
  const out = () => badRequest('FINE_MULTIPLE_OUT_OF_RANGE',
    `The fine multiple is a decimal from ${fine_multiple_min} to ${fine_multiple_max} inclusive, at most ${fine_multiple_decimals_max} decimals.`,
    { fine_multiple: String(text).slice(0, 20) });
  if (typeof text !== 'string' || !multiple_pattern.test(text)) throw out();
  const m = new FineDecimal(text);
  if (m.lt(fine_multiple_min) || m.gt(fine_multiple_max)) throw out();
  return m;
}

export interface RecoveryTerms {
  amountFen: bigint;
  /** Canonical decimal text of the multiple (e.g. "2.5"). */
  fineMultiple: string;
  fineFen: bigint;
  dueFen: bigint;
}

/** fine = round_half_up(amount × multiple) in whole fen; due = amount + fine. */
export function recoveryTerms(amountFen: bigint, fineMultipleText: string): RecoveryTerms {
  if (amountFen <= 0n || amountFen > recovery_amount_fen_max) {
    throw badRequest('AMOUNT_INVALID', `The amount obtained is 1..${recovery_amount_fen_max} fen.`);
  }
  const m = parseFineMultiple(fineMultipleText);
  const fine = new FineDecimal(amountFen.toString()).times(m).toDecimalPlaces(0, Decimal.ROUND_HALF_UP);
  const fineFen = BigInt(fine.toFixed(0));
  return { amountFen, fineMultiple: m.toString(), fineFen, dueFen: amountFen + fineFen };
}
