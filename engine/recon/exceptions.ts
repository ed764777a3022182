/**
 * Reconciliation exceptions (the `recon_exception` table of 0010): their types, the review
 * workflow OPEN → ASSIGNED → RESOLVED, how they are named and aged. Pure.
 */
import { badRequest, conflict } from '../errors.ts';

/** Differences between the engine's lines and a bank's return (one-to-one by bank and txn id). */
export const bank_exception_types = ['MISSING_AT_BANK', 'UNKNOWN_AT_ENGINE', 'AMOUNT_MISMATCH', 'DUPLICATE_AT_BANK', 'REJECTED_BY_BANK'] as const;
/** Signals raised at ingestion that join the same queue. */
export const signal_exception_types = ['TERMINAL_SEQUENCE_GAP', 'BALANCE_CHAIN_BREAK', 'CLONE_SUSPECT', 'SUSPENSE_SHORTFALL'] as const;
export const exception_types = [...bank_exception_types, 'OPERATOR_TOTAL_MISMATCH', ...signal_exception_types] as const;
export type ExceptionType = (typeof exception_types)[number];

export const exception_states = ['OPEN', 'ASSIGNED', 'RESOLVED'] as const;
export type ExceptionState = (typeof exception_states)[number];

export const resolutions = ['WRITE_OFF', 'RE_PRESENTED', 'EXPLAINED', 'ADJUSTMENT'] as const;
export type Resolution = (typeof resolutions)[number];

/** Risk-case kinds raised by transit ingestion → the exception type they become. */
export const risk_kind_to_exception: Readonly<Record<string, ExceptionType>> = {
  CLONE_SUSPECT: 'CLONE_SUSPECT',
  PURSE_SHORTFALL: 'SUSPENSE_SHORTFALL',
};

export type ExceptionStep = 'ASSIGN' | 'RESOLVE';

/**
 * Reassigning is allowed (a colleague takes over); a resolved exception is final: reopening one
 * would hide that it was once closed, so a difference that comes back is a new run's business.
 */
const step_rules: Readonly<Record<ExceptionStep, { from: readonly ExceptionState[]; to: ExceptionState }>> = {
  ASSIGN: { from: ['OPEN', 'ASSIGNED'], to: 'ASSIGNED' },
  RESOLVE: { from: ['OPEN', 'ASSIGNED'], to: 'RESOLVED' },
};

export function planExceptionStep(current: string, step: ExceptionStep): { from: ExceptionState; to: ExceptionState } {
  const rule = step_rules[step];
  if (!(rule.from as readonly string[]).includes(current)) {
    throw conflict('EXCEPTION_TRANSITION_INVALID', `An exception that is ${current} cannot be ${step === 'ASSIGN' ? 'assigned' : 'resolved'}.`, { state: current, step });
  }
  return { from: current as ExceptionState, to: rule.to };
}

/** Comments are kept on open and assigned exceptions; a resolved one is closed to discussion. */
export function checkCommentable(current: string): void {
  if (current === 'RESOLVED') throw conflict('EXCEPTION_RESOLVED', 'A resolved exception takes no more comments.', { state: current });
}

export const note_chars_max = 2000;
export const assignee_chars_max = 200;

export function checkNote(note: string): string {
  const t = note.trim();
  if (t.length === 0 || t.length > note_chars_max) throw badRequest('NOTE_INVALID', `A note must be 1..${note_chars_max} characters.`);
  return t;
}

/** Exception ids are shown as `exc_<n>`. */
export function exceptionIdText(id: bigint): string {
  return `exc_${id}`;
}

export const exception_id_pattern = '^exc_[1-9][0-9]{0,17}$';

export function parseExceptionId(text: string): bigint | null {
  const m = /^exc_([1-9][0-9]{0,17})$/.exec(text);
  return m ? BigInt(m[1]) : null;
}

const day_ms = 86_400_000;

/** Whole days an exception has been open: until it was resolved, or until now. */
export function ageDays(openedAt: Date, resolvedAt: Date | null, now: Date): number {
  const end = resolvedAt ?? now;
  return Math.max(0, Math.floor((end.getTime() - openedAt.getTime()) / day_ms));
}
