/**
 * Misuse and fraud cases (the `risk_case` table of 0003): who raises which kind, the review
 * workflow, and what confirming one may do. Pure.
 */
import { conflict } from '../errors.ts';

/**
 * Kinds of case. CLONE_SUSPECT and PURSE_SHORTFALL are raised by tap ingestion; IMPOSSIBLE_TRAVEL
 * and ABNORMAL_TAP_COUNT by the daily misuse job; FRAUD by staff (a report, a complaint, an
 * investigation). The column accepts any UPPER_SNAKE kind, so ingestion may add its own.
 */
export const case_kinds = ['IMPOSSIBLE_TRAVEL', 'ABNORMAL_TAP_COUNT', 'CLONE_SUSPECT', 'PURSE_SHORTFALL', 'FRAUD'] as const;
export type CaseKind = (typeof case_kinds)[number];
export const case_states = ['OPEN', 'ASSIGNED', 'CONFIRMED', 'DISMISSED'] as const;
export type CaseState = (typeof case_states)[number];
export const case_steps = ['ASSIGN', 'CONFIRM', 'DISMISS'] as const;
export type CaseStep = (typeof case_steps)[number];

/** Kinds of integrity (credit) record a confirmed case may write against the cardholder. */
export const integrity_kinds = ['CARD_LENDING_FOR_PROFIT', 'IMPERSONATION', 'FORGED_CARD', 'FRAUDULENT_CLAIM', 'OTHER_MISUSE'] as const;
export type IntegrityKind = (typeof integrity_kinds)[number];

/** Reassigning an assigned case is allowed (a colleague takes over); decided cases are final. */
const step_rules: Readonly<Record<CaseStep, { from: readonly CaseState[]; to: CaseState }>> = {
  ASSIGN: { from: ['OPEN', 'ASSIGNED'], to: 'ASSIGNED' },
  CONFIRM: { from: ['OPEN', 'ASSIGNED'], to: 'CONFIRMED' },
  DISMISS: { from: ['OPEN', 'ASSIGNED'], to: 'DISMISSED' },
};

export function planCaseStep(current: string, step: CaseStep): { from: CaseState; to: CaseState } {
  const rule = step_rules[step];
  if (!(rule.from as readonly string[]).includes(current)) {
    throw conflict('CASE_TRANSITION_INVALID', `A case that is ${current} cannot be ${step === 'ASSIGN' ? 'assigned' : step === 'CONFIRM' ? 'confirmed' : 'dismissed'}.`, {
      state: current, step,
    });
  }
  return { from: current as CaseState, to: rule.to };
}

/** Case ids are shown as `case_<n>`. */
export function caseIdText(id: bigint): string {
  return `case_${id}`;
}

export function parseCaseId(text: string): bigint | null {
  const m = /^case_([1-9][0-9]{0,17})$/.exec(text);
  return m ? BigInt(m[1]) : null;
}
