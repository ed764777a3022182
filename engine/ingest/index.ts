/**
 * Ingestion's public face. A transit tap batch is decoded by adapters/protobuf/tap-batch-codec.ts
 * into a `TapBatchInput`, checked whole (`checkWholeBatch`), then record by record (`screenTaps`,
 * `resolveHistory`); accepted taps are covered by the purse (`purseCover`) and posted to the
 * ledger by adapters/ingest, which owns the I/O.
 */
export {
  batch_records_max,
  batch_id_pattern,
  checkRecordFormat,
  checkRecordFormats,
  checkWholeBatch,
  localTimeEpochMs,
  parseLocalTime,
  tap_batch_refusal,
  txn_type_compound_purchase,
  txn_type_purse_purchase,
} from './tap-batch.ts';
export type { TapBatchInput, TapBatchRefusalCode, TapRecordFieldName, TapRecordInput } from './tap-batch.ts';

export {
  acceptedSeqsByTerminal,
  applySeqs,
  cardStatusAt,
  chainBreaks,
  decideTaps,
  future_tap_ms_max,
  purseCover,
  resolveHistory,
  sameTapContent,
  screenTaps,
  seqTaken,
  summarizeOutcomes,
  tap_reject,
  tap_reject_order,
  tapKey,
} from './transit.ts';
export type {
  CardStatus,
  CardStatusEvent,
  ChainBreak,
  ChainTap,
  CloneSuspect,
  SeqGap,
  SeqGapChange,
  TapHistory,
  TapLimits,
  TapOutcome,
  TapReceipt,
  TapRejection,
  TapRejectReason,
  TapScreenFacts,
  TerminalSeqState,
} from './transit.ts';
