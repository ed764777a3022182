/**
 * A transaction whose first request also opens it. The payment hot path sends BEGIN together
 * with its first statement (one round trip instead of two), which `withTx` cannot do: it always
 * sends BEGIN alone. Same contract otherwise: commit, or roll back and retry the whole
 * transaction after a deadlock or serialization failure, a bounded number of times.
 */
import type { QueryResult } from 'pg';
import { isRetryable, retryBackOff, tx_attempts_max, type Db, type Tx } from '../postgres/db.ts';

/**
 * `fn` must start with a request that begins with BEGIN; this commits (or rolls back) for it.
 * `fn` may leave a last statement (simple protocol, no parameters) to travel with the COMMIT.
 */
export async function inSelfOpenedTransaction<T>(db: Db, fn: (tx: Tx) => Promise<{ value: T; lastStatement?: string }>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const client = await db.connect();
    let broken = false;
    try {
      const { value, lastStatement } = await fn(client);
      await client.query(lastStatement === undefined ? 'COMMIT' : `${lastStatement}; COMMIT`);
      return value;
    } catch (e) {
      // Harmless when the failure came before BEGIN; a connection that cannot roll back is discarded.
      broken = await client.query('ROLLBACK').then(() => false, () => true);
      if (!isRetryable(e) || attempt >= tx_attempts_max) throw e;
    } finally {
      client.release(broken);
    }
    await retryBackOff(attempt);
  }
}

/**
 * A whole transaction as one request (simple protocol): `text` begins with BEGIN and ends with
 * COMMIT. Answers each statement's result. On failure the transaction is rolled back (the
 * connection discarded if it cannot be) and, when `retry` is set, a deadlock or serialization
 * failure is tried again, as `inSelfOpenedTransaction` does.
 */
export async function transactionInOneRequest(db: Db, text: string, retry: boolean): Promise<QueryResult[]> {
  for (let attempt = 1; ; attempt++) {
    const client = await db.connect();
    let broken = false;
    try {
      return (await client.query(text)) as unknown as QueryResult[];
    } catch (e) {
      broken = await client.query('ROLLBACK').then(() => false, () => true);
      if (!retry || !isRetryable(e) || attempt >= tx_attempts_max) throw e;
    } finally {
      client.release(broken);
    }
    await retryBackOff(attempt);
  }
}
