/** Online payments' pure rules: the public face of this folder. */
export {
  amountOutOfRange,
  cardStatusRefusal,
  checkAmount,
  checkPurseLoad,
  idempotencyConflict,
  medicalSplit,
  payment_amount_fen_max,
  payment_error,
  paymentStatus,
  planQrPayment,
  planRefund,
  purse_load_amount_fen_max,
  qrRequestCanonical,
  refunds_per_payment_max,
} from './rules.ts';
export type {
  CardStatus,
  MerchantKind,
  MerchantStatus,
  PaymentStatus,
  QrPaymentAsk,
  QrPaymentFacts,
  QrPaymentPlan,
  RefundPlan,
  TerminalStatus,
} from './rules.ts';
