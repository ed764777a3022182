/**
 * `npm run reconcile -- --date YYYY-MM-DD`: reconcile that business date's cleared cycle (bank
 * returns, operator totals, ingestion signals) into the exceptions queue; safe to run again
 * (known differences are not filed twice). Progress on stderr, a bar on a terminal; the run's
 * counts as one JSON line on stdout.
 */
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { checkBusinessDate } from '../../engine/recon/index.ts';
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { resolveDatabase } from '../engine.ts';
import { migrateUp } from '../postgres/migrate.ts';
import { createPool } from '../postgres/db.ts';
import { cycleOfDate, reconcileCycle } from '../recon/run.ts';

/** The run reports this many steps (see adapters/recon/run.ts). */
const run_steps = 5;

const { values } = parseArgs({ options: { date: { type: 'string' } } });
if (values.date === undefined) {
  process.stderr.write('usage: npm run reconcile -- --date YYYY-MM-DD\n');
  process.exit(2);
}
const config = loadConfig();
const log = createLogger('warn');
const { databaseUrl, embedded } = await resolveDatabase(config, log);
const db = createPool(databaseUrl, 2, 'onecard-reconcile');
const bar = process.stderr.isTTY
  ? new cliProgress.SingleBar({ format: 'reconcile [{bar}] {value}/{total} {step}', stream: process.stderr }, cliProgress.Presets.shades_classic)
  : null;
let code = 1;
try {
  await migrateUp(databaseUrl);
  const cycleId = await cycleOfDate(db, checkBusinessDate(values.date));
  bar?.start(run_steps, 0, { step: '' });
  const r = await reconcileCycle({
    db, now: () => new Date(),
    progress: (m) => { if (bar) bar.increment(1, { step: m }); else process.stderr.write(`${m}\n`); },
  }, cycleId, { keyId: `cli:${process.env.USER ?? 'operator'}`, role: 'finance' });
  bar?.stop();
  process.stdout.write(`${JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}\n`);
  code = 0;
} catch (e) {
  bar?.stop();
  const err = e as { code?: string; message: string };
  process.stderr.write(`${err.code ? `${err.code}: ` : ''}${err.message}\n`);
} finally {
  await db.end();
  await embedded?.stop();
}
process.exit(code);
