/**
 * The clearing calendar on pg-boss: a cron at the cutoff (Asia/Shanghai) sends one job per
 * minute slot across all engine nodes (pg-boss keeps schedules in the database), the queue's
 * `singleton` policy lets only one such job be active, and clearCycle's per-cycle lock and
 * state guards make any duplicate a no-op. The handler also finishes cycles an earlier run left
 * CLOSED or CLEARED (a node died mid-run), so a crash is repaired at the next tick.
 */
import type PgBoss from 'pg-boss';
import { parseCutoff } from '../../engine/clearing/calendar.ts';
import type { AppDeps } from '../http/context.ts';
import { clearCycle } from './run.ts';
import { clearingSettings } from './settings.ts';

export const clearing_queue = 'clearing-cycle-close';
/** A failed run is retried: each retry continues where the last one stopped. */
const clearing_retry_limit = 5;
const clearing_retry_delay_s = 60;
/** Long enough for the 5 M-transaction cycle and its packages, with margin. */
const clearing_expire_s = 3 * 60 * 60;

/** `MM HH * * *` of the configured cutoff. */
export function cutoffCron(cutoff: string): string {
  const minutes = parseCutoff(cutoff);
  return `${minutes % 60} ${Math.floor(minutes / 60)} * * *`;
}

/** Cycles the calendar should (re)run now: the open one past its cutoff, and any left unfinished. */
export async function dueCycles(deps: Pick<AppDeps, 'db'>): Promise<string[]> {
  const r = await deps.db.query<{ id: string }>(
    `SELECT id FROM clearing_cycle WHERE state IN ('OPEN', 'CLOSED', 'CLEARED') ORDER BY business_date`);
  return r.rows.map((x) => x.id);
}

export async function runCalendarTick(deps: Pick<AppDeps, 'db' | 'ledger' | 'config' | 'now'>, actor = 'system:calendar'): Promise<string[]> {
  const settings = clearingSettings(deps.config);
  const cleared: string[] = [];
  for (const id of await dueCycles(deps)) {
    try {
      const r = await clearCycle({ db: deps.db, ledger: deps.ledger, settings }, id, actor, deps.now());
      if (r.steps.length > 0) cleared.push(id);
    } catch (e) {
      // The open cycle before its cutoff is simply not due yet.
      if ((e as { code?: string }).code === 'CYCLE_NOT_DUE') continue;
      throw e;
    }
  }
  return cleared;
}

export async function startClearingCalendar(boss: PgBoss, deps: AppDeps): Promise<void> {
  await boss.createQueue(clearing_queue, {
    name: clearing_queue, policy: 'singleton', retryLimit: clearing_retry_limit, retryDelay: clearing_retry_delay_s,
    expireInSeconds: clearing_expire_s,
  });
  await boss.schedule(clearing_queue, cutoffCron(deps.config.clearingCutoff), {}, { tz: 'Asia/Shanghai', singletonKey: 'clearing' });
  await boss.work(clearing_queue, { batchSize: 1 }, async () => {
    await runCalendarTick(deps);
  });
}
