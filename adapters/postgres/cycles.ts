/**
 * Which clearing cycle a write belongs to. Every writer of accepted transactions (tap batches,
 * payments, loads, disbursements) calls `openCycleForWrite` inside its transaction: it takes the
 * cycle lock in shared mode, so writers run concurrently with each other, while closing a cycle
 * (which takes it exclusively, then closes the cycle and opens the next in one transaction)
 * waits for in-flight writers and is waited for by new ones. A transaction therefore lands in
 * exactly one cycle, and a closed cycle never changes.
 */
import { businessDateFor, cycleIdFor } from '../../engine/clearing/calendar.ts';
import type { Queryable } from './db.ts';

/** Advisory lock key (two int4) of the cycle boundary. */
export const cycle_lock_key: readonly [number, number] = [7100, 1];

export interface OpenCycle {
  id: string;
  businessDate: string;
}

export const plans = {
  lock_shared: `SELECT pg_advisory_xact_lock_shared(${cycle_lock_key[0]}, ${cycle_lock_key[1]})`,
  lock_exclusive: `SELECT pg_advisory_xact_lock(${cycle_lock_key[0]}, ${cycle_lock_key[1]})`,
  open_cycle: `SELECT id, business_date FROM clearing_cycle WHERE state = 'OPEN'`,
  // ON CONFLICT without a target: either the date's row or another open cycle already exists.
  insert_open: `
    WITH c AS (
      INSERT INTO clearing_cycle (id, business_date, state, opened_at) VALUES ($1, $2, 'OPEN', $3)
      ON CONFLICT DO NOTHING RETURNING id)
    INSERT INTO clearing_cycle_event (cycle_id, from_state, to_state, actor, at)
    SELECT id, NULL, 'OPEN', $4, $3 FROM c`,
};

/**
 * The open cycle, in the caller's transaction, holding the shared cycle lock until it commits.
 * If no cycle was ever opened, the first one is opened for the business date of `now`.
 */
export async function openCycleForWrite(tx: Queryable, now: Date, cutoffMinutes: number): Promise<OpenCycle> {
  await tx.query(plans.lock_shared);
  return currentOpenCycle(tx, now, cutoffMinutes);
}

/** The open cycle (opening the first one if there is none). Callers hold the cycle lock. */
export async function currentOpenCycle(tx: Queryable, now: Date, cutoffMinutes: number): Promise<OpenCycle> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await tx.query<{ id: string; business_date: string }>(plans.open_cycle);
    if (r.rows[0]) return { id: r.rows[0].id, businessDate: r.rows[0].business_date };
    const businessDate = businessDateFor(now, cutoffMinutes);
    await tx.query(plans.insert_open, [cycleIdFor(businessDate), businessDate, now, 'system:calendar']);
  }
  throw new Error('no open clearing cycle could be found or opened');
}
