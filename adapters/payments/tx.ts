/**
 * A transaction whose first request also opens it. The payment hot path sends BEGIN together
 * with its first statement (one round trip instead of two), which `withTx` cannot do: it always
 * sends BEGIN alone. Same contract otherwise: commit, or roll back and retry the whole
 * transaction after a deadlock or serialization failure, a bounded number of times.
 */
import { isRetryable, type Db, type Tx } from '../postgres/db.ts';

/** Attempts of a transaction that lost a deadlock (as `withTx`). */
const tx_attempts_max = 8;

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
    // Jittered back-off so the losers of a deadlock do not collide again in lock step.
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 10 * attempt)));
  }
}
