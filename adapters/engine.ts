/**
 * Starting and stopping the whole engine: Postgres (embedded or DATABASE_URL), migrations,
 * the job queue, the HTTP server. `stop()` closes them in reverse order.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { createPool, type Db } from './postgres/db.ts';
import { listenForRevocations, PrincipalCache } from './auth/principal-cache.ts';
import { startEmbeddedPostgres, type EmbeddedHandle } from './postgres/embedded.ts';
import { migrateUp } from './postgres/migrate.ts';
import { startQueue } from './jobs/queue.ts';
import { buildApp } from './http/app.ts';
import { createMetrics, ledgerObserver } from './metrics.ts';
import { Ledger } from '../ledger/index.ts';
import { adminKeyExists, createApiKey } from './auth/api-keys.ts';
import { ConfigKeyStore, PiiKeyring } from './crypto/index.ts';
import { resolveMasterKeys } from './crypto/master-keys-file.ts';
import { parseCutoff } from '../engine/clearing/calendar.ts';
import type { AppDeps } from './http/context.ts';
import { startClearingCalendar } from './clearing/calendar.ts';
import { startReconciliationSchedule } from './recon/schedule.ts';

export interface RunningEngine {
  app: FastifyInstance;
  db: Db;
  databaseUrl: string;
  url: string;
  stop(): Promise<void>;
}

export async function resolveDatabase(config: Config, log: Logger): Promise<{ databaseUrl: string; embedded: EmbeddedHandle | null }> {
  if (config.databaseUrl) return { databaseUrl: config.databaseUrl, embedded: null };
  const embedded = await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort, log);
  return { databaseUrl: embedded.databaseUrl, embedded };
}

export async function startEngine(config: Config, log: Logger): Promise<RunningEngine> {
  const { databaseUrl, embedded } = await resolveDatabase(config, log);
  let db: Db | null = null;
  let boss: PgBoss | null = null;
  let app: FastifyInstance | null = null;
  let principalCache: PrincipalCache | null = null;
  let revocations: { stop(): Promise<void> } | null = null;
  try {
    const applied = await migrateUp(databaseUrl, (m) => log.debug({ component: 'migrate' }, m));
    if (applied.length > 0) log.info({ applied }, 'migrations applied');
    db = createPool(databaseUrl, config.poolSize);
    await bootstrapAdminKey(db, config.dataDir, log);
    parseCutoff(config.clearingCutoff);
    const keys = resolveMasterKeys(config, config.dataDir);
    if (keys.source !== 'environment') log.info({ file: keys.source }, 'master keys read from the data directory');
    const metrics = createMetrics();
    principalCache = new PrincipalCache();
    revocations = listenForRevocations(databaseUrl, principalCache, log);
    const deps: AppDeps = {
      db, ledger: new Ledger(ledgerObserver(metrics)), metrics, queue: () => boss, bodyBytesMax: config.bodyBytesMax, now: () => new Date(),
      config: { ...config, tacMasterKeys: undefined, qrMasterKeys: undefined, piiKeys: undefined },
      keyStore: ConfigKeyStore.fromConfigStrings(keys.tacMasterKeys, keys.qrMasterKeys),
      pii: PiiKeyring.fromConfigString(keys.piiKeys),
      principalCache,
    };
    app = await buildApp(deps, log);
    boss = await startQueue(databaseUrl, log, config.workers);
    if (config.workers) {
      await startClearingCalendar(boss, deps);
      await startReconciliationSchedule(boss, deps);
    }
    await app.listen({ host: config.host, port: config.port });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.port;
    const url = `http://${config.host}:${port}`;
    log.info({ url, docs: `${url}/docs`, embeddedPostgres: embedded !== null }, 'engine ready');
    const pool = db;
    const server = app;
    const listener = revocations;
    let stopping: Promise<void> | null = null;
    return {
      app: server, db: pool, databaseUrl, url,
      stop() {
        stopping ??= (async () => {
          await server.close();
          await listener.stop();
          await boss?.stop({ graceful: true, timeout: 10_000, close: true, wait: true }).catch(() => undefined);
          await pool.end();
          await embedded?.stop();
        })();
        return stopping;
      },
    };
  } catch (e) {
    await app?.close().catch(() => undefined);
    await revocations?.stop().catch(() => undefined);
    await boss?.stop({ graceful: false, close: true, wait: true }).catch(() => undefined);
    await db?.end().catch(() => undefined);
    await embedded?.stop().catch(() => undefined);
    throw e;
  }
}

/**
 * The first admin key: on a database with no admin key, one is made and its token written to
 * `<dataDir>/bootstrap-admin.token` (mode 0600). The token itself is never logged.
 */
async function bootstrapAdminKey(db: Db, dataDir: string, log: Logger): Promise<void> {
  const lock = await db.connect();
  try {
    await lock.query('BEGIN');
    await lock.query('SELECT pg_advisory_xact_lock(7002)');
    if (await adminKeyExists(lock)) {
      await lock.query('COMMIT');
      return;
    }
    const k = await createApiKey(lock, 'admin', null, 'bootstrap admin', 'system:bootstrap');
    fs.mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, 'bootstrap-admin.token');
    fs.writeFileSync(file, `${k.token}\n`, { mode: 0o600 });
    await lock.query('COMMIT');
    log.warn({ keyId: k.keyId, file }, 'no admin key existed: a bootstrap admin key was created; its token is in the file named here');
  } catch (e) {
    await lock.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    lock.release();
  }
}
