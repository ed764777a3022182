/**
 * pg-boss, started with the engine: the clearing calendar's cron, retries and dead letters.
 * Options are passed explicitly (pg-boss 10.x; archiveCompletedAfterSeconds below 60 silently
 * disables cron in this line, so it is kept well above).
 */
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';

export async function startQueue(databaseUrl: string, log: Logger, schedule: boolean): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: databaseUrl,
    schema: 'pgboss',
    application_name: 'onecard-jobs',
    max: 4,
    schedule,
    supervise: true,
    migrate: true,
    archiveCompletedAfterSeconds: 3600,
    archiveFailedAfterSeconds: 7 * 24 * 3600,
    deleteAfterDays: 30,
    maintenanceIntervalSeconds: 120,
    retryLimit: 3,
    retryDelay: 30,
    retryBackoff: true,
  });
  boss.on('error', (e: Error) => log.error({ err: { message: e.message } }, 'job queue error'));
  await boss.start();
  return boss;
}
