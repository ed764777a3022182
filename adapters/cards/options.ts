/**
 * Settings of the cards capability. Read from the environment once, by the caller, and passed
 * in (the shared Config does not carry them yet: see the lead's note in the report):
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | MISUSE_SPEED_KMH_MAX | 120 | impossible-travel threshold |
 * | MISUSE_DAILY_TAPS_MAX | 30 | abnormal daily tap count threshold |
 * | COMPLAINT_DEADLINE_DAYS | 15 | days to answer a complaint |
 * | COMPLAINT_FILINGS_PER_IP_BURST | 5 | public filings one IP may make at once |
 * | COMPLAINT_FILING_REFILL_MS | 600000 | one more filing per IP per this many ms |
 */
import { misuse_limits_default, validateLimits, type MisuseLimits } from '../../engine/cards/index.ts';
import { complaint_deadline_days_default, complaint_deadline_days_max, type BucketLimits } from '../../engine/complaints/index.ts';

export interface CardsOptions {
  misuse: MisuseLimits;
  complaintDeadlineDays: number;
  complaintFilingBucket: BucketLimits;
  /** Public reads of a complaint by access code, per IP. */
  complaintReadBucket: BucketLimits;
}

export const rate_limit_ips_max = 100_000;

export const cards_options_default: CardsOptions = {
  misuse: misuse_limits_default,
  complaintDeadlineDays: complaint_deadline_days_default,
  complaintFilingBucket: { capacity: 5, refillMs: 600_000, keysMax: rate_limit_ips_max },
  complaintReadBucket: { capacity: 30, refillMs: 2_000, keysMax: rate_limit_ips_max },
};

function num(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number, integer = true): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new Error(`${name} must be ${integer ? 'an integer' : 'a number'} between ${min} and ${max}, got "${raw}"`);
  }
  return n;
}

export function cardsOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): CardsOptions {
  const d = cards_options_default;
  return {
    misuse: validateLimits({
      ...d.misuse,
      speedKmhMax: num(env, 'MISUSE_SPEED_KMH_MAX', d.misuse.speedKmhMax, 1, 2000, false),
      dailyTapsMax: num(env, 'MISUSE_DAILY_TAPS_MAX', d.misuse.dailyTapsMax, 1, 10_000),
    }),
    complaintDeadlineDays: num(env, 'COMPLAINT_DEADLINE_DAYS', d.complaintDeadlineDays, 1, complaint_deadline_days_max),
    complaintFilingBucket: {
      ...d.complaintFilingBucket,
      capacity: num(env, 'COMPLAINT_FILINGS_PER_IP_BURST', d.complaintFilingBucket.capacity, 1, 1000),
      refillMs: num(env, 'COMPLAINT_FILING_REFILL_MS', d.complaintFilingBucket.refillMs, 1, 86_400_000),
    },
    complaintReadBucket: d.complaintReadBucket,
  };
}
