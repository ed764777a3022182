/**
 * Configuration: everything comes from the environment, read once at start-up, validated,
 * and passed explicitly to the parts that need it (nothing deep in the domain reads env).
 */
import path from 'node:path';

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
}

const port_default = 8080;
const embedded_pg_port_default = 54329;
const pool_size_default = 10;
const body_bytes_max_default = 16 * 1024 * 1024;
const tap_amount_fen_max_default = 20_000;
const tap_age_days_max_default = 30;

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
  };
}
