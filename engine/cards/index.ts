/** Cards: lifecycle, eligibility, card numbers, misuse signals and cases, fines, data masking, the services catalogue. Pure. */
export {
  action_rules, card_actions, card_statuses, hotlisted_statuses, isCardAction, isCardStatus, planAction, service_channels,
} from './lifecycle.ts';
export type { CardAction, CardStatus, PlannedTransition, ServiceChannel } from './lifecycle.ts';
export {
  address_chars_max, birthDateOf, checkEligibility, eligibility_bases, isValidNationalId, nationalIdCheckChar, needsValidity,
  person_name_chars_max,
} from './eligibility.ts';
export type { ApplicantInput, EligibilityBasis } from './eligibility.ts';
export { card_bin, card_form_digit, card_no_digits, card_serial_max, cardNoFor, isLuhnValid, luhnCheckDigit } from './card-numbers.ts';
export type { IssuedForm } from './card-numbers.ts';
export { fine_multiple_max, fine_multiple_min, parseFineMultiple, recovery_amount_fen_max, recoveryTerms } from './fines.ts';
export type { RecoveryTerms } from './fines.ts';
export {
  daily_taps_max_limit, detectAbnormalCounts, detectImpossibleTravel, distanceKm, misuse_limits_default, speed_kmh_max_limit, validateLimits,
} from './misuse.ts';
export type { AbnormalCount, ImpossibleTravel, MisuseLimits, TapForMisuse } from './misuse.ts';
export {
  applyPolicy, isPurpose, maskAddress, maskEmail, maskFreeText, parsePurpose, pii_fields, purposes, reveal_table, revealedFields,
} from './masking.ts';
export type { Masker, PiiField, Purpose } from './masking.ts';
export { case_kinds, case_states, case_steps, caseIdText, integrity_kinds, parseCaseId, planCaseStep } from './cases.ts';
export type { CaseKind, CaseState, CaseStep, IntegrityKind } from './cases.ts';
export { services_catalogue, services_catalogue_version } from './services.ts';
export type { ServiceEntry } from './services.ts';
