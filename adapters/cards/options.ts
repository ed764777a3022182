/**
 * Settings of the cards capability, derived from the validated `Config` (adapters/config.ts
 * reads and checks the environment once; nothing here reads it):
 *
 * | variable | Config field | default | meaning |
 * |---|---|---|---|
 * | MISUSE_SPEED_KMH_MAX | misuseSpeedKmhMax | 120 | impossible-travel threshold (km/h) |
 * | MISUSE_DAILY_TAPS_MAX | misuseDailyTapsMax | 30 | abnormal daily tap count threshold |
 * | COMPLAINT_DEADLINE_DAYS | complaintDeadlineDays | 15 | days to answer a complaint |
 * | COMPLAINT_FILINGS_PER_IP_BURST | complaintFilingsPerIpBurst | 5 | public filings one IP may make at once |
 * | COMPLAINT_FILING_REFILL_MS | complaintFilingRefillMs | 600000 | one more filing per IP per this many ms |
 */
import { loadConfig, type Config } from '../config.ts';
import { misuse_limits_default, validateLimits, type MisuseLimits } from '../../engine/cards/index.ts';
import { complaint_deadline_days_default, type BucketLimits } from '../../engine/complaints/index.ts';

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

type CardsConfig = Pick<Config, 'misuseSpeedKmhMax' | 'misuseDailyTapsMax' | 'complaintDeadlineDays' | 'complaintFilingsPerIpBurst' | 'complaintFilingRefillMs'>;

/** The cards options of a loaded configuration: `cardsOptionsFromConfig(deps.config)`. */
export function cardsOptionsFromConfig(config: CardsConfig): CardsOptions {
  const d = cards_options_default;
  return {
    misuse: validateLimits({ ...d.misuse, speedKmhMax: config.misuseSpeedKmhMax, dailyTapsMax: config.misuseDailyTapsMax }),
    complaintDeadlineDays: config.complaintDeadlineDays,
    complaintFilingBucket: { ...d.complaintFilingBucket, capacity: config.complaintFilingsPerIpBurst, refillMs: config.complaintFilingRefillMs },
    complaintReadBucket: d.complaintReadBucket,
  };
}

/**
 * @deprecated Use `cardsOptionsFromConfig(deps.config)`. Kept for callers that have no Config at
 * hand; it parses through `loadConfig`, so the variables, defaults and bounds are the same ones.
 */
export function cardsOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): CardsOptions {
  return cardsOptionsFromConfig(loadConfig(env));
}
