/** A fresh, migrated database for one test file, cloned from the run's template. */
import crypto from 'node:crypto';
import pg from 'pg';
import { createPool, type Db } from '../../adapters/postgres/db.ts';
import { adminUrl, databaseUrlFor, templateDb } from './db-names.ts';

export interface TestDb {
  url: string;
  name: string;
  pool: Db;
  drop(): Promise<void>;
}

export async function freshDatabase(poolSize = 10): Promise<TestDb> {
  const name = `onecard_t_${crypto.randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    // CREATE DATABASE ... TEMPLATE fails while another session is connected to the template;
    // files start in parallel, so retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE ${templateDb()}`);
        break;
      } catch (e) {
        if (attempt > 50) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    await admin.end();
  }
  const url = databaseUrlFor(name);
  const pool = createPool(url, poolSize, 'onecard-test');
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end();
      const a = new pg.Client({ connectionString: adminUrl() });
      await a.connect();
      try {
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}

/**
 * Resolves once a session of this database waits for a lock while running a query that matches
 * `queryLike` (a LIKE pattern); throws `what` if none does within `withinMs`.
 */
export async function untilWaitingOnLock(pool: Db, queryLike: string, withinMs: number, what: string): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const waiting = await pool.query(
      `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`, [queryLike]);
    if (waiting.rows.length > 0) return;
    if (Date.now() > deadline) throw new Error(what);
    await new Promise((r) => setTimeout(r, 10));
  }
}
