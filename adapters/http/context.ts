/** What every HTTP plugin is given: the shared, explicitly passed dependencies. */
import type { Db } from '../postgres/db.ts';
import type { Ledger } from '../../ledger/index.ts';
import type { Metrics } from '../metrics.ts';
import type { Principal, Role } from '../auth/api-keys.ts';
import type { PrincipalCache } from '../auth/principal-cache.ts';
import type PgBoss from 'pg-boss';
import type { Config } from '../config.ts';
import type { KeyStore, PiiKeyring } from '../crypto/index.ts';

export interface AppDeps {
  db: Db;
  ledger: Ledger;
  metrics: Metrics;
  /** Null until the job queue has started; readiness depends on it. */
  queue: () => PgBoss | null;
  bodyBytesMax: number;
  /** The clock: nothing deeper reads Date.now(). */
  now: () => Date;
  /** Validated configuration (limits, cutoff); never holds key material. */
  config: Config;
  /** TAC and QR master keys (configuration by default; an HSM can replace it). */
  keyStore: KeyStore;
  /** Personal-data encryption and blind-index keys. */
  pii: PiiKeyring;
  /** Authenticated principals kept briefly (see principal-cache.ts); absent: every request looks its key up. */
  principalCache?: PrincipalCache;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** Roles allowed on this route; an empty list means public (no credential needed). */
    roles?: readonly Role[];
  }
}

/** The error body of every refusal. */
export const error_schema = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', description: 'Stable machine code.' },
    message: { type: 'string', description: 'A human sentence.' },
    details: { type: 'object', additionalProperties: true },
  },
} as const;

export const error_responses = {
  400: error_schema, 401: error_schema, 403: error_schema, 404: error_schema, 409: error_schema,
  413: error_schema, 422: error_schema, 429: error_schema, 500: error_schema, 503: error_schema,
} as const;
