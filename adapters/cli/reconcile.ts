/**
 * `npm run reconcile -- --date YYYY-MM-DD`: reconcile that business date's cleared cycle (bank
 * returns, operator totals, ingestion signals) into the exceptions queue; safe to run again
 * (known differences are not filed twice). Progress on stderr, a bar on a terminal; the run's
 * counts as one JSON line on stdout.
 *
 * `npm run reconcile -- --pending`: reconcile every cleared cycle that received a bank return or
 * operator totals since its last run (for a scheduler: cheap when there is nothing new); one JSON
 * line per cycle reconciled.
 */
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { checkDate } from '../../engine/clearing/calendar.ts';
import { cycleIdForDate } from '../clearing/run.ts';
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { resolveDatabase } from '../engine.ts';
import { migrateUp } from '../postgres/migrate.ts';
import { createPool } from '../postgres/db.ts';
import { reconcileCycle, reconcilePending, type ReconRunResult } from '../recon/run.ts';

/** The run reports this many steps (see adapters/recon/run.ts). */
const run_steps = 5;

const { values } = parseArgs({ options: { date: { type: 'string' }, pending: { type: 'boolean', default: false } } });
if ((values.date === undefined) === !values.pending) {
  process.stderr.write('usage: npm run reconcile -- --date YYYY-MM-DD | --pending\n');
  process.exit(2);
}
const config = loadConfig();
const log = createLogger('warn');
const { databaseUrl, embedded } = await resolveDatabase(config, log);
const db = createPool(databaseUrl, 2, 'onecard-reconcile');
// One bar for one cycle; several cycles (--pending) print their steps as lines.
const bar = process.stderr.isTTY && !values.pending
  ? new cliProgress.SingleBar({ format: 'reconcile [{bar}] {value}/{total} {step}', stream: process.stderr }, cliProgress.Presets.shades_classic)
  : null;
let code = 1;
try {
  await migrateUp(databaseUrl);
  const actor = { keyId: `cli:${process.env.USER ?? 'operator'}`, role: 'finance' };
  const deps = {
    db, now: () => new Date(),
    progress: (m: string) => { if (bar) bar.increment(1, { step: m }); else process.stderr.write(`${m}\n`); },
  };
  let results: ReconRunResult[];
  if (values.pending) {
    results = await reconcilePending(deps, actor);
    if (results.length === 0) process.stderr.write('nothing new to reconcile\n');
  } else {
    const cycleId = await cycleIdForDate(db, checkDate(values.date ?? ''));
    bar?.start(run_steps, 0, { step: '' });
    results = [await reconcileCycle(deps, cycleId, actor)];
    bar?.stop();
  }
  for (const r of results) process.stdout.write(`${JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}\n`);
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
