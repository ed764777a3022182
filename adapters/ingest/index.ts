/** Transit tap ingestion's adapters: the public face of this folder. */
export {
  cardChain,
  payableAccount,
  purseAccount,
  receiptOf,
  risk_kind_clone,
  risk_kind_shortfall,
  sequenceGaps,
  suspense_account,
  tap_entry_kind,
  tapEntryKey,
  transit_error,
  transit_tx_attempts_max,
  uploadTapBatch,
} from './pipeline.ts';
export type { BodyFormat, ChainTapRow, OpenGap, TransitDeps, UploadResult, UploadStats, Uploader } from './pipeline.ts';
export { batch_key_lock_ns, plans } from './plans.ts';
