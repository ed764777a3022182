/** Reconciliation: exception types and workflow, matching rules, operator totals. Pure. */
export {
  ageDays, assignee_chars_max, bank_exception_types, checkCommentable, checkNote, exception_id_pattern, exception_states, exception_types,
  exceptionIdText, note_chars_max, parseExceptionId, planExceptionStep, resolutions, risk_kind_to_exception, signal_exception_types,
} from './exceptions.ts';
export type { ExceptionState, ExceptionStep, ExceptionType, Resolution } from './exceptions.ts';
export { classifyGroup, matchBankLines, matchOperatorTotals } from './matching.ts';
export type { BankDifference, LineAmount, ReturnedLine, TerminalTotal } from './matching.ts';
export {
  OPERATOR_TOTALS_CSV_HEADER, checkBusinessDate, checkCsvRecords, checkJsonDocument, operator_total_bytes_max, operator_total_lines_max,
  terminal_amount_fen_per_day_max, terminal_taps_per_day_max, totalsOf,
} from './operator-totals.ts';
export type { OperatorTotalLine, OperatorTotals } from './operator-totals.ts';
