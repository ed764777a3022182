/**
 * Reconciliation on a schedule: every `reconcile_every_minutes` a pg-boss cron (one job per slot
 * across all engine nodes, singleton queue) reconciles every cleared cycle that received a bank
 * return or operator totals since its last run. A bank's return is therefore matched within
 * minutes of its upload without anyone asking; finance staff can still run it at once by route or
 * CLI. Runs are idempotent, so a duplicate job files nothing twice.
 */
import type PgBoss from 'pg-boss';
import type { AppDeps } from '../http/context.ts';
import { reconcilePending } from './run.ts';

export const reconcile_queue = 'reconcile-pending';
export const reconcile_every_minutes = 15;
const reconcile_retry_limit = 3;
const reconcile_retry_delay_s = 60;
const reconcile_expire_s = 60 * 60;
export const reconcile_actor = { keyId: 'system:reconcile', role: 'system' } as const;

export async function startReconciliationSchedule(boss: PgBoss, deps: Pick<AppDeps, 'db' | 'now'>): Promise<void> {
  await boss.createQueue(reconcile_queue, {
    name: reconcile_queue, policy: 'singleton', retryLimit: reconcile_retry_limit, retryDelay: reconcile_retry_delay_s,
    expireInSeconds: reconcile_expire_s,
  });
  await boss.schedule(reconcile_queue, `*/${reconcile_every_minutes} * * * *`, {}, { tz: 'Asia/Shanghai', singletonKey: 'reconcile' });
  await boss.work(reconcile_queue, { batchSize: 1 }, async () => {
    await reconcilePending({ db: deps.db, now: deps.now }, reconcile_actor);
  });
}
