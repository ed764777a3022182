/**
 * The clearing calendar on pg-boss, as two engine nodes run it: one schedule at the cutoff in
 * Asia/Shanghai, and calendar jobs fired on both nodes clear the due cycle once.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type PgBoss from 'pg-boss';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clearing_queue, cutoffCron, startClearingCalendar } from '../adapters/clearing/calendar.ts';
import { startQueue } from '../adapters/jobs/queue.ts';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testConfig, testDeps } from './support/deps.ts';
import { after_cutoff, before_cutoff, entriesOf, medicalFunding, openCycle, postAll, randomTxns, seedReference, test_date } from './support/clearing-fixtures.ts';

let db: TestDb;
const nodes: PgBoss[] = [];

beforeAll(async () => { db = await freshDatabase(8); });
afterAll(async () => {
  await Promise.all(nodes.map((b) => b.stop({ graceful: false, close: true, wait: true })));
  await db.drop();
});

describe('clearing calendar', () => {
  it('has one cron at the cutoff in Asia/Shanghai however many nodes start it, and two nodes firing clear a cycle once', async () => {
    expect(cutoffCron('23:00')).toBe('0 23 * * *');
    expect(cutoffCron('18:30')).toBe('30 18 * * *');
    await seedReference(db.pool);
    const cycle = await openCycle(db.pool, before_cutoff);
    const ledger = new Ledger();
    await postAll(db.pool, ledger, medicalFunding(test_date, 'cal'));
    await postAll(db.pool, ledger, entriesOf(randomTxns(11, 120), test_date, 'c'));

    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'clearing-calendar-'));
    const log = pino({ level: 'silent' });
    for (let i = 0; i < 2; i++) {
      const boss = await startQueue(db.url, log, true);
      nodes.push(boss);
      // Each node's clock is past the cutoff of the open cycle's business date.
      await startClearingCalendar(boss, testDeps(db.pool, { config: testConfig({ dataDir }), now: () => after_cutoff }));
    }
    const schedules = await nodes[0].getSchedules();
    expect(schedules.map((s) => ({ name: s.name, cron: s.cron, tz: s.options?.tz }))).toEqual([{ name: clearing_queue, cron: '0 23 * * *', tz: 'Asia/Shanghai' }]);

    // What the cron sends at the cutoff, sent by both nodes at once.
    await Promise.all(nodes.map((b) => b.send(clearing_queue, {})));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await db.pool.query<{ state: string }>('SELECT state FROM clearing_cycle WHERE id = $1', [cycle.id]);
      const active = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND state IN ('created', 'retry', 'active')`, [clearing_queue]);
      if (r.rows[0].state === 'PUBLISHED' && active.rows[0].n === 0) break;
      if (Date.now() > deadline) throw new Error(`cycle still ${r.rows[0].state}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const steps = await db.pool.query<{ to_state: string; n: number }>(
      `SELECT to_state, count(*)::int AS n FROM clearing_cycle_event WHERE cycle_id = $1 GROUP BY 1 ORDER BY 1`, [cycle.id]);
    expect(steps.rows).toEqual([{ to_state: 'CLEARED', n: 1 }, { to_state: 'CLOSED', n: 1 }, { to_state: 'OPEN', n: 1 }, { to_state: 'PUBLISHED', n: 1 }]);
    const fees = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledger_entry WHERE idem_key LIKE $1`, [`fee:${cycle.id}:%`]);
    const merchantsWithActivity = await db.pool.query<{ n: number }>(`SELECT count(DISTINCT merchant_id)::int AS n FROM clearing_line WHERE cycle_id = $1 AND merchant_id IS NOT NULL AND fee_fen > 0`, [cycle.id]);
    expect(fees.rows[0].n).toBe(merchantsWithActivity.rows[0].n);
    expect((await ledger.verify(db.pool)).ok).toBe(true);
  }, 120_000);
});
