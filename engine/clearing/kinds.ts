/**
 * Which detail.csv kind a ledger entry becomes. Kept as data so the SQL of the clearing run
 * (adapters/clearing/plans.ts) is generated from the same table and cannot drift from it.
 */
export type DetailKindName =
  | 'PURSE_PURCHASE' | 'QR_PAYMENT' | 'MEDICAL_SELF_PAY' | 'UTILITY_PAYMENT'
  | 'PURSE_LOAD' | 'REFUND' | 'DISBURSEMENT' | 'ADJUSTMENT';

/** Ledger entry kind → detail kind (QR_PAYMENT is refined by the merchant's kind). */
export const entry_kind_to_detail: Readonly<Record<string, DetailKindName>> = {
  TRANSIT_TAP: 'PURSE_PURCHASE',
  QR_PAYMENT: 'QR_PAYMENT',
  PURSE_LOAD: 'PURSE_LOAD',
  REFUND: 'REFUND',
  CARD_CANCEL_REFUND: 'REFUND',
  DISBURSEMENT: 'DISBURSEMENT',
};

/** Entries the clearing itself posts: never a transaction of the cycle. */
export const clearing_entry_kinds = ['CLEARING_FEE', 'CLEARING_SWEEP', 'SETTLEMENT'] as const;

export function detailKindOf(entryKind: string, merchantKind: string | null): DetailKindName {
  if (entryKind === 'QR_PAYMENT') {
    if (merchantKind === 'MEDICAL') return 'MEDICAL_SELF_PAY';
    if (merchantKind === 'UTILITY') return 'UTILITY_PAYMENT';
    return 'QR_PAYMENT';
  }
  return entry_kind_to_detail[entryKind] ?? 'ADJUSTMENT';
}
