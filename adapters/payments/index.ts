/** Online payments' adapters: the public face of this folder. */
export { Batcher, QueueFull } from './batcher.ts';
export type { BatchObserver, BatcherLimits, Settled } from './batcher.ts';
export { SimulatedBank, sim_bank_decline, sim_bank_latency_ms_default, untilAborted } from './bank-auth.ts';
export type { BankAuthRequest, BankAuthResult, BankAuthorizer, BankReversalRequest, SimulatedBankOptions } from './bank-auth.ts';
export {
  bank_auth_timeout_ms,
  bank_reversal_timeout_ms,
  createPaymentsContext,
  getPayment,
  loadPurse,
  newId,
  payByQr,
  pending_reversals_batch_max,
  refundPayment,
  retryPendingReversals,
} from './pipeline.ts';
export type {
  Actor,
  PaymentRecord,
  PaymentsContext,
  PaymentsLog,
  PaymentsOptions,
  PurseLoadRecord,
  PurseLoadRequest,
  QrPaymentRequest,
  RefundRecord,
  RefundRequest,
} from './pipeline.ts';
