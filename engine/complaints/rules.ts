/**
 * Complaints (the city regulation: anyone may complain about the card service; the centre answers
 * within a deadline, and the complainant can read the answer). Pure: the clock is passed in.
 */
import { conflict } from '../errors.ts';

export const complaint_categories = ['CARD_SERVICE', 'PAYMENT', 'FEES', 'MERCHANT', 'PRIVACY', 'MISUSE_REPORT', 'OTHER'] as const;
export type ComplaintCategory = (typeof complaint_categories)[number];
export const complainant_kinds = ['CARDHOLDER', 'MERCHANT', 'PUBLIC'] as const;
export type ComplainantKind = (typeof complainant_kinds)[number];
export const complaint_states = ['OPEN', 'ASSIGNED', 'ANSWERED'] as const;
export type ComplaintState = (typeof complaint_states)[number];

/** The regulation's answer deadline, in calendar days from filing; configurable. */
export const complaint_deadline_days_default = 15;
export const complaint_deadline_days_max = 90;
export const complaint_description_chars_max = 4000;
export const complaint_answer_chars_max = 4000;

const day_ms = 86_400_000;

export function dueAt(filedAt: Date, deadlineDays: number): Date {
  if (!Number.isInteger(deadlineDays) || deadlineDays < 1 || deadlineDays > complaint_deadline_days_max) {
    throw new RangeError(`deadline days must be an integer in [1, ${complaint_deadline_days_max}]`);
  }
  return new Date(filedAt.getTime() + deadlineDays * day_ms);
}

/** Overdue: still unanswered after its due time. */
export function isOverdue(state: string, due: Date, now: Date): boolean {
  return state !== 'ANSWERED' && now.getTime() > due.getTime();
}

export type ComplaintStep = 'ASSIGN' | 'ANSWER';

/** An answered complaint is closed; it may be assigned (or reassigned) and answered while open. */
export function planComplaintStep(current: string, step: ComplaintStep): { from: ComplaintState; to: ComplaintState } {
  if (current !== 'OPEN' && current !== 'ASSIGNED') {
    throw conflict('COMPLAINT_TRANSITION_INVALID', `A complaint that is ${current} cannot be ${step === 'ASSIGN' ? 'assigned' : 'answered'} again.`, { state: current, step });
  }
  return { from: current, to: step === 'ASSIGN' ? 'ASSIGNED' : 'ANSWERED' };
}

export function complaintIdText(id: bigint): string {
  return `cmp_${id}`;
}

export function parseComplaintId(text: string): bigint | null {
  const m = /^cmp_([1-9][0-9]{0,17})$/.exec(text);
  return m ? BigInt(m[1]) : null;
}
