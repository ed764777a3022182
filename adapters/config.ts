/**
 * Configuration: everything comes from the environment, read once at start-up, validated,
 * and passed explicitly to the parts that need it (nothing deep in the domain reads env).
 */
import path from 'node:path';
// Pure domain constants only: the defaults and bounds live with the rules they parameterise.
import { daily_taps_max_limit, misuse_limits_default, speed_kmh_max_limit } from '../engine/cards/index.ts';
import { complaint_deadline_days_default, complaint_deadline_days_max } from '../engine/complaints/index.ts';

export interface Config {
  /** Where the HTTP server listens. */
  host: string;
  port: number;
  /** Postgres to use; unset means an embedded Postgres under `dataDir`. */
  databaseUrl: string | undefined;
  /** Root of everything the engine keeps on disk: embedded Postgres, packages, bootstrap token. */
  dataDir: string;
  embeddedPgPort: number;
  poolSize: number;
  logLevel: string;
  /** Upper bound for one HTTP body; a tap batch of 50,000 records is about 5 MB in protobuf. */
  bodyBytesMax: number;
  /** Versioned master keys, `version:hex32,version:hex32`. Never logged. */
  tacMasterKeys: string | undefined;
  qrMasterKeys: string | undefined;
  piiKeys: string | undefined;
  /** Start the clearing calendar's pg-boss workers on this node. */
  workers: boolean;
  /** Local time (Asia/Shanghai, HH:MM) at which each business date's cycle closes. */
  clearingCutoff: string;
  /** The single-tap limit: a fare above it is AMOUNT_OUT_OF_RANGE (TRANSIT-BATCH.md). */
  tapAmountFenMax: number;
  /** The acceptance window: a tap older than this is STALE_TAP. */
  tapAgeDaysMax: number;
  /** Impossible-travel threshold of the misuse job (km/h between two stations' taps). */
  misuseSpeedKmhMax: number;
  /** Above this many accepted taps of one card in a business date, the misuse job opens a case. */
  misuseDailyTapsMax: number;
  /** Days a complaint may stay unanswered before it is listed as overdue. */
  complaintDeadlineDays: number;
  /** Public complaint filings one client IP may make at once (token bucket capacity). */
  complaintFilingsPerIpBurst: number;
  /** One more public filing per IP per this many milliseconds. */
  complaintFilingRefillMs: number;
  /** Failed authentications one client IP (or one key id) may make per window before 429. */
  authFailuresMax: number;
  authFailureWindowMs: number;
}

const port_default = 8080;
const embedded_pg_port_default = 54329;
const pool_size_default = 10;
const body_bytes_max_default = 16 * 1024 * 1024;
const tap_amount_fen_max_default = 20_000;
const tap_age_days_max_default = 30;
const complaint_filings_per_ip_burst_default = 5;
const complaint_filing_refill_ms_default = 600_000;
const auth_failures_max_default = 20;
const auth_failure_window_ms_default = 60_000;
const day_ms = 86_400_000;

function intFrom(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return n;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const dataDir = path.resolve(env.ONECARD_DATA_DIR ?? path.join(process.cwd(), 'data'));
  return {
    host: env.HOST ?? '127.0.0.1',
    port: intFrom(env, 'PORT', port_default, 0, 65535),
    databaseUrl: env.DATABASE_URL && env.DATABASE_URL !== '' ? env.DATABASE_URL : undefined,
    dataDir,
    embeddedPgPort: intFrom(env, 'EMBEDDED_PG_PORT', embedded_pg_port_default, 1024, 65535),
    poolSize: intFrom(env, 'PG_POOL_SIZE', pool_size_default, 2, 200),
    logLevel: env.LOG_LEVEL ?? 'info',
    bodyBytesMax: intFrom(env, 'BODY_BYTES_MAX', body_bytes_max_default, 1024, 256 * 1024 * 1024),
    tacMasterKeys: env.TAC_MASTER_KEYS,
    qrMasterKeys: env.QR_MASTER_KEYS,
    piiKeys: env.PII_KEYS,
    workers: env.WORKERS !== 'false',
    clearingCutoff: env.CLEARING_CUTOFF ?? '23:00',
    tapAmountFenMax: intFrom(env, 'TAP_AMOUNT_FEN_MAX', tap_amount_fen_max_default, 1, 4_294_967_295),
    tapAgeDaysMax: intFrom(env, 'TAP_AGE_DAYS_MAX', tap_age_days_max_default, 1, 3650),
    misuseSpeedKmhMax: intFrom(env, 'MISUSE_SPEED_KMH_MAX', misuse_limits_default.speedKmhMax, 1, speed_kmh_max_limit),
    misuseDailyTapsMax: intFrom(env, 'MISUSE_DAILY_TAPS_MAX', misuse_limits_default.dailyTapsMax, 1, daily_taps_max_limit),
    complaintDeadlineDays: intFrom(env, 'COMPLAINT_DEADLINE_DAYS', complaint_deadline_days_default, 1, complaint_deadline_days_max),
    complaintFilingsPerIpBurst: intFrom(env, 'COMPLAINT_FILINGS_PER_IP_BURST', complaint_filings_per_ip_burst_default, 1, 1000),
    complaintFilingRefillMs: intFrom(env, 'COMPLAINT_FILING_REFILL_MS', complaint_filing_refill_ms_default, 1, day_ms),
    authFailuresMax: intFrom(env, 'AUTH_FAILURES_MAX', auth_failures_max_default, 1, 10_000),
    authFailureWindowMs: intFrom(env, 'AUTH_FAILURE_WINDOW_MS', auth_failure_window_ms_default, 1_000, day_ms),
  };
}
