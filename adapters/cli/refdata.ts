/**
 * `npm run refdata -- import <banks|merchants|fee-schedules|terminals|cards> --file rows.csv|rows.json`
 * `npm run refdata -- list <kind> [--format csv|json]`
 * Works directly on DATABASE_URL (or the embedded Postgres under the data directory).
 */
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { resolveDatabase } from '../engine.ts';
import { migrateUp } from '../postgres/migrate.ts';
import { createPool } from '../postgres/db.ts';
import { runRefdata } from '../reference/refdata.ts';

const config = loadConfig();
const log = createLogger('warn');
const { databaseUrl, embedded } = await resolveDatabase(config, log);
const db = createPool(databaseUrl, 2, 'onecard-refdata');
let code = 1;
try {
  await migrateUp(databaseUrl);
  code = await runRefdata(process.argv.slice(2), {
    db,
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
    now: () => new Date(),
    actor: `cli:${process.env.USER ?? 'operator'}`,
  });
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
} finally {
  await db.end();
  await embedded?.stop();
}
process.exit(code);
