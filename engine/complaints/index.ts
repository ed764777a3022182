/** Complaints: categories, the answer deadline, the workflow, and the public routes' rate limit. Pure. */
export {
  complainant_kinds, complaint_answer_chars_max, complaint_categories, complaint_deadline_days_default, complaint_deadline_days_max,
  complaint_description_chars_max, complaint_states, complaintIdText, dueAt, isOverdue, parseComplaintId, planComplaintStep,
} from './rules.ts';
export type { ComplainantKind, ComplaintCategory, ComplaintState, ComplaintStep } from './rules.ts';
export { TokenBuckets } from './rate-limit.ts';
export type { BucketLimits } from './rate-limit.ts';
