/**
 * A statement sent alone is its own transaction (statementInOwnTx): over real Postgres, one that
 * loses a deadlock is rolled back whole and sent again, so its effect lands exactly once; any
 * other error reaches the caller at once, with nothing written.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { statementInOwnTx, type Db } from '../adapters/postgres/db.ts';
import { freshDatabase, untilWaitingOnLock, type TestDb } from './support/db.ts';

let db: TestDb;

beforeAll(async () => {
  db = await freshDatabase(4);
  await db.pool.query('CREATE TABLE retry_probe (id int PRIMARY KEY, v int NOT NULL)');
  // Row 2 first, then row 1: the order that deadlocks against a transaction holding row 1 and
  // asking for row 2.
  await db.pool.query(`
    CREATE FUNCTION retry_probe_add(n int) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE retry_probe SET v = v + n WHERE id = 2;
      UPDATE retry_probe SET v = v + n WHERE id = 1;
    END $$`);
});

afterAll(async () => {
  await db?.drop();
});

beforeEach(async () => {
  await db.pool.query('TRUNCATE retry_probe');
  await db.pool.query('INSERT INTO retry_probe (id, v) VALUES (1, 0), (2, 0)');
});

/** The pool, counting the statements sent through it. */
function counting(pool: Db): { db: Db; sent: () => number } {
  let sent = 0;
  const proxy = new Proxy(pool, {
    get(target, prop, receiver) {
      if (prop === 'query') return (...args: unknown[]) => { sent++; return (target.query as (...a: unknown[]) => unknown).apply(target, args); };
      return Reflect.get(target, prop, receiver);
    },
  });
  return { db: proxy, sent: () => sent };
}

async function values(): Promise<number[]> {
  return (await db.pool.query<{ v: number }>('SELECT v FROM retry_probe ORDER BY id')).rows.map((r) => r.v);
}

it('a statement that loses a deadlock is rolled back and sent again: its effect lands once', async () => {
  const holder = await db.pool.connect();
  try {
    await holder.query('BEGIN');
    // The holder waits long before looking for deadlocks, so the statement (the server's default,
    // 1 s) is the one Postgres aborts.
    await holder.query(`SET LOCAL deadlock_timeout = '20s'`);
    await holder.query('UPDATE retry_probe SET v = v + 1 WHERE id = 1');
    const c = counting(db.pool);
    const statement = statementInOwnTx(c.db, { text: 'SELECT retry_probe_add($1)', values: [10] });
    // Wait until the statement holds row 2 and waits for row 1, then ask for row 2: a deadlock.
    await untilWaitingOnLock(db.pool, 'SELECT retry_probe_add%', 4_000, 'the statement never waited for the row');
    // Postgres aborts the statement (40P01); the holder then gets row 2.
    await holder.query('UPDATE retry_probe SET v = v + 1 WHERE id = 2');
    await holder.query('COMMIT');
    await statement;
    expect(c.sent()).toBe(2);
    expect(await values()).toEqual([11, 11]);
  } finally {
    holder.release();
  }
});

it('any other error reaches the caller at once, with nothing written', async () => {
  // Row 2 takes the amount, then row 1 overflows: the whole statement fails.
  await db.pool.query('UPDATE retry_probe SET v = 1 WHERE id = 1');
  const c = counting(db.pool);
  await expect(statementInOwnTx(c.db, { text: 'SELECT retry_probe_add($1)', values: [2 ** 31 - 1] })).rejects.toMatchObject({ code: '22003' });
  expect(c.sent()).toBe(1);
  expect(await values()).toEqual([1, 0]);
});
