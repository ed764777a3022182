/**
 * The dashboard's figures, read from the small per-cycle tables the clearing run writes
 * (clearing_cycle, clearing_summary, clearing_position), never from the millions of ledger
 * postings: a page view costs three indexed reads whatever the volume.
 *
 * Volumes and amounts per business date are those of cleared cycles: transactions cleared
 * (clearing_summary), and the gross amount the banks paid into and received from the centre
 * (Σ pay_fen, Σ receive_fen over the cycle's positions). The open cycle is shown by its state and
 * the count of ledger entries posted to it so far (one index-only count over one business date).
 */
import { addDays, businessDateFor, parseCutoff } from '../../engine/clearing/calendar.ts';
import type { Queryable } from '../postgres/db.ts';

/** Days the volume chart covers, ending today. */
export const dashboard_days = 30;
/** Recent cycles listed with their states. */
export const dashboard_cycles_listed = 7;

export const plans = {
  recent_cycles: `
    SELECT id, business_date, state, opened_at, closed_at FROM clearing_cycle
    ORDER BY business_date DESC LIMIT $1`,
  daily: `
    SELECT c.business_date, c.id AS cycle_id, c.state,
           s.transactions, s.lines, s.fees_fen,
           coalesce(p.pay_fen, 0)::bigint AS pay_fen, coalesce(p.receive_fen, 0)::bigint AS receive_fen
    FROM clearing_cycle c
    JOIN clearing_summary s ON s.cycle_id = c.id
    LEFT JOIN LATERAL (
      SELECT sum(pay_fen)::bigint AS pay_fen, sum(receive_fen)::bigint AS receive_fen FROM clearing_position WHERE cycle_id = c.id
    ) p ON true
    WHERE c.business_date BETWEEN $1::date AND $2::date
    ORDER BY c.business_date`,
  latest_cleared: `
    SELECT id, business_date, state FROM clearing_cycle
    WHERE state IN ('CLEARED', 'PUBLISHED', 'PARTIALLY_SETTLED', 'SETTLED')
    ORDER BY business_date DESC LIMIT 1`,
  positions: `
    SELECT p.bank_code, b.name AS bank_name, p.line_count, p.pay_fen, p.receive_fen, p.fee_fen, p.net_fen
    FROM clearing_position p LEFT JOIN bank b ON b.code = p.bank_code
    WHERE p.cycle_id = $1 ORDER BY p.bank_code`,
  entries_of_date: `SELECT count(*)::bigint AS n FROM ledger_entry WHERE business_date = $1::date`,
  open_exceptions: `SELECT state, count(*)::bigint AS n FROM recon_exception WHERE state <> 'RESOLVED' GROUP BY state`,
  pending_adjustments: `SELECT count(*)::bigint AS n FROM adjustment WHERE state = 'PROPOSED'`,
} as const;

export interface CycleRow { id: string; business_date: string; state: string; opened_at: Date; closed_at: Date | null }
export interface DayFigures { businessDate: string; cycleId: string | null; state: string | null; transactions: bigint; lines: bigint; feesFen: bigint; payFen: bigint; receiveFen: bigint }
export interface PositionRow { bank_code: string; bank_name: string | null; line_count: bigint; pay_fen: bigint; receive_fen: bigint; fee_fen: bigint; net_fen: bigint }

export interface Dashboard {
  today: string;
  todayCycle: CycleRow | null;
  /** The cycle taking transactions now (after the cutoff and before the clearing run, still the previous date's). */
  openCycle: CycleRow | null;
  todayEntries: bigint;
  cycles: CycleRow[];
  /** One entry per day of the window, oldest first; days without a cleared cycle are zero. */
  days: DayFigures[];
  latestCleared: { id: string; business_date: string; state: string } | null;
  positions: PositionRow[];
  exceptionsOpen: bigint;
  exceptionsAssigned: bigint;
  adjustmentsPending: bigint;
}

/** The most recent cycles, newest first (the reports page offers their dates). */
export async function recentCycles(db: Queryable, limit: number): Promise<CycleRow[]> {
  return (await db.query<CycleRow>(plans.recent_cycles, [limit])).rows;
}

export async function loadDashboard(db: Queryable, now: Date, cutoff: string): Promise<Dashboard> {
  const today = businessDateFor(now, parseCutoff(cutoff));
  const from = addDays(today, -(dashboard_days - 1));
  const [cycles, daily, latest, entries, exceptions, pending] = await Promise.all([
    db.query<CycleRow>(plans.recent_cycles, [dashboard_cycles_listed]),
    db.query<{ business_date: string; cycle_id: string; state: string; transactions: bigint; lines: bigint; fees_fen: bigint; pay_fen: bigint; receive_fen: bigint }>(
      plans.daily, [from, today]),
    db.query<{ id: string; business_date: string; state: string }>(plans.latest_cleared),
    db.query<{ n: bigint }>(plans.entries_of_date, [today]),
    db.query<{ state: string; n: bigint }>(plans.open_exceptions),
    db.query<{ n: bigint }>(plans.pending_adjustments),
  ]);
  const byDate = new Map(daily.rows.map((r) => [r.business_date, r]));
  const days: DayFigures[] = [];
  for (let i = 0; i < dashboard_days; i++) {
    const d = addDays(from, i);
    const r = byDate.get(d);
    days.push(r === undefined
      ? { businessDate: d, cycleId: null, state: null, transactions: 0n, lines: 0n, feesFen: 0n, payFen: 0n, receiveFen: 0n }
      : { businessDate: d, cycleId: r.cycle_id, state: r.state, transactions: r.transactions, lines: r.lines, feesFen: r.fees_fen, payFen: r.pay_fen, receiveFen: r.receive_fen });
  }
  const latestCleared = latest.rows[0] ?? null;
  const positions = latestCleared === null ? [] : (await db.query<PositionRow>(plans.positions, [latestCleared.id])).rows;
  const countOf = (state: string) => exceptions.rows.find((r) => r.state === state)?.n ?? 0n;
  return {
    today,
    todayCycle: cycles.rows.find((c) => c.business_date === today) ?? null,
    openCycle: cycles.rows.find((c) => c.state === 'OPEN') ?? null,
    todayEntries: entries.rows[0]?.n ?? 0n,
    cycles: cycles.rows,
    days,
    latestCleared,
    positions,
    exceptionsOpen: countOf('OPEN'),
    exceptionsAssigned: countOf('ASSIGNED'),
    adjustmentsPending: pending.rows[0]?.n ?? 0n,
  };
}
