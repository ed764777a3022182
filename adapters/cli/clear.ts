/**
 * `npm run clear -- --date YYYY-MM-DD`: close (if due), clear and publish the packages of that
 * business date's cycle; safe to re-run (it finishes an interrupted run or does nothing).
 * Progress on stderr; the result as one JSON line on stdout.
 */
import { parseArgs } from 'node:util';
import { checkDate } from '../../engine/clearing/calendar.ts';
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { resolveDatabase } from '../engine.ts';
import { migrateUp } from '../postgres/migrate.ts';
import { createPool } from '../postgres/db.ts';
import { clearCycle, cycleIdForDate } from '../clearing/run.ts';
import { clearingSettings } from '../clearing/settings.ts';
import { Ledger } from '../../ledger/index.ts';

const { values } = parseArgs({ options: { date: { type: 'string' } } });
if (values.date === undefined) {
  process.stderr.write('usage: npm run clear -- --date YYYY-MM-DD\n');
  process.exit(2);
}
const config = loadConfig();
const log = createLogger('warn');
const { databaseUrl, embedded } = await resolveDatabase(config, log);
const db = createPool(databaseUrl, 3, 'onecard-clear');
let code = 1;
try {
  await migrateUp(databaseUrl);
  const cycleId = await cycleIdForDate(db, checkDate(values.date));
  const r = await clearCycle({ db, ledger: new Ledger(), settings: clearingSettings(config), progress: (m) => process.stderr.write(`${m}\n`) },
    cycleId, `cli:${process.env.USER ?? 'operator'}`, new Date());
  process.stdout.write(`${JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}\n`);
  code = 0;
} catch (e) {
  const err = e as { code?: string; message: string };
  process.stderr.write(`${err.code ? `${err.code}: ` : ''}${err.message}\n`);
} finally {
  await db.end();
  await embedded?.stop();
}
process.exit(code);
