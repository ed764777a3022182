/** `npm run migrate`: apply pending migrations to DATABASE_URL (or the embedded Postgres). */
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { resolveDatabase } from '../engine.ts';
import { migrateUp } from '../postgres/migrate.ts';

const config = loadConfig();
const log = createLogger(config.logLevel);
const { databaseUrl, embedded } = await resolveDatabase(config, log);
try {
  const applied = await migrateUp(databaseUrl, () => undefined);
  process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'schema is up to date\n');
} finally {
  await embedded?.stop();
}
