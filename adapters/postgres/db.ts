/**
 * The Postgres connection pool and the one way to run a transaction. Transactions that lose a
 * deadlock or a serialization race are retried whole, a bounded number of times, so callers
 * never see those errors (hot accounts make them possible under concurrent batches).
 */
import pg from 'pg';

export type Db = pg.Pool;
export type Tx = pg.PoolClient;
export type Queryable = pg.Pool | pg.PoolClient | pg.Client;

// bigint columns come back as strings by default; int8 is money here, so parse it to BigInt
// rather than to a lossy JS number.
pg.types.setTypeParser(20, (v: string) => BigInt(v));
// `date` stays a plain 'YYYY-MM-DD' string: business dates are calendar dates, not instants.
pg.types.setTypeParser(1082, (v: string) => v);

/** Attempts of a transaction that lost a deadlock or a serialization failure. */
export const tx_attempts_max = 8;
const retryable_sqlstates = new Set(['40P01', '40001']);

/** How long a pooled connection lives before it is replaced (see createPool). */
export const connection_lifetime_s = 30 * 60;

export function createPool(databaseUrl: string, max: number, applicationName = 'onecard'): Db {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max,
    application_name: applicationName,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    // A session keeps the generic plans it made; one opened while a table was nearly empty may
    // hold a plan made for that size. Connections are replaced after this long, so every plan
    // is remade from current statistics at least that often.
    maxLifetimeSeconds: connection_lifetime_s,
  });
  // An idle client's network error must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  return pool;
}

export function isRetryable(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && retryable_sqlstates.has(code);
}

/** Jittered back-off before attempt `attempt + 1`, so the losers of a deadlock do not collide again in lock step. */
export function retryBackOff(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.floor(Math.random() * 10 * attempt)));
}

/**
 * `attempt` run again, after a jittered back-off, while it fails with a deadlock or a
 * serialization failure, at most tx_attempts_max times in all; any other error at once.
 */
async function retried<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (e) {
      if (!isRetryable(e) || n >= tx_attempts_max) throw e;
    }
    await retryBackOff(n);
  }
}

export function withTx<T>(db: Db, fn: (tx: Tx) => Promise<T>, isolation: 'READ COMMITTED' | 'SERIALIZABLE' = 'READ COMMITTED'): Promise<T> {
  return retried(async () => {
    const client = await db.connect();
    try {
      await client.query(`BEGIN ISOLATION LEVEL ${isolation}`);
      const result = await fn(client);
      await client.query('COMMIT');
      client.release();
      return result;
    } catch (e) {
      try {
        await client.query('ROLLBACK');
        client.release();
      } catch {
        client.release(true);
      }
      throw e;
    }
  });
}

/**
 * One statement sent alone, outside any transaction block: Postgres runs it as its own
 * transaction (committed before it answers, or rolled back whole). Retried as withTx retries,
 * after a deadlock or a serialization failure; nothing of the failed attempt was written.
 */
export function statementInOwnTx<R extends pg.QueryResultRow>(db: Db, statement: pg.QueryConfig): Promise<pg.QueryResult<R>> {
  return retried(() => db.query<R>(statement));
}
