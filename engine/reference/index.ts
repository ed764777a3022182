/**
 * Reference data, the public face: what a valid bank, merchant, fee schedule, terminal and card
 * is; a card's status at an instant (ingestion asks it for every tap); the demo city generator.
 * Pure: no I/O, no clock. Storage is adapters/reference.
 */
export {
  amount_fen_max,
  bank_code_pattern,
  bank_fields,
  canonicalCoordinate,
  canonicalRate,
  card_fields,
  card_forms,
  card_import_final_statuses,
  card_no_pattern,
  card_statuses,
  card_time_future_skew_ms,
  checkBank,
  checkCard,
  checkFeeSchedule,
  checkMerchant,
  checkTerminal,
  currentStep,
  daily_limit_fen_default,
  fee_rate_decimals_max,
  fee_schedule_fields,
  merchant_fields,
  merchant_id_pattern,
  merchant_kinds,
  merchant_statuses,
  parseInstant,
  sameBank,
  sameCard,
  sameFeeSchedule,
  sameMerchant,
  sameTerminal,
  terminal_fields,
  terminal_id_pattern,
  terminal_statuses,
} from './records.ts';
export type {
  BankRecord,
  CardForm,
  CardIdentity,
  CardRecord,
  CardStatus,
  CardStatusStep,
  Checked,
  FeeScheduleRecord,
  MerchantKind,
  MerchantRecord,
  MerchantStatus,
  RawRow,
  RowError,
  TerminalRecord,
  TerminalStatus,
} from './records.ts';

export { cardStatusAt, card_status_transitions, checkStatusChange, eventInForceAt, latestEvent } from './card-status.ts';
export type { CardStatusEvent, StatusChangeVerdict } from './card-status.ts';

export {
  checkSeedOptions,
  chunkCount,
  chunkEntries,
  chunkMedicalDepositFen,
  chunkRange,
  fee_schedules_effective_from,
  isLuhnValid,
  luhnCheckDigit,
  medical_programme_id,
  planCard,
  planCards,
  planCity,
  programmeFundAccount,
  seed_as_of_default,
  seed_cards_default,
  seed_cards_max,
  seed_cards_per_chunk,
  seed_entry_kinds,
  seed_fee_rules,
  seed_max,
  seedKey,
  tacSamples,
} from './seed-plan.ts';
export type { CityPlan, PlannedCard, PlannedLine, PlannedStation, SeedOptions, TacSample } from './seed-plan.ts';

export { hash32, Rng } from './prng.ts';
