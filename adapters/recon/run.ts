/**
 * A reconciliation run of one cycle (CLEARED or later): the engine's clearing lines against the
 * banks' returns (return.csv lines one-to-one by bank and txn id, pacs.002 whole-package
 * status), the operators' daily totals against the cycle's accepted taps, and ingestion's risk
 * signals, all filed into one exceptions queue.
 *
 * Set-based and in one transaction: each source is one INSERT … SELECT into a temporary table of
 * differences, then one INSERT … ON CONFLICT (type, source_key) DO NOTHING files them. Running
 * again never duplicates an exception; an exception that is no longer true stays as it is, for a
 * person to resolve. Every run is a `recon_run` row with its counts. Runs of one cycle are
 * serialized by an advisory lock, so two at once file each difference once.
 */
import { appendAudit } from '../audit/index.ts';
import { withTx, type Db } from '../postgres/db.ts';
import { conflict, notFound } from '../../engine/errors.ts';
import { exception_types, type ExceptionType } from '../../engine/recon/index.ts';
import type { ReconActor } from './exceptions.ts';
import { plans } from './plans.ts';

/** States of a cycle whose lines exist (cleared) and may have returns. */
export const reconcilable_states = ['CLEARED', 'PUBLISHED', 'PARTIALLY_SETTLED', 'SETTLED'] as const;

export interface RunDeps {
  db: Db;
  now: () => Date;
  /** Progress lines for a terminal (the CLI); silent by default. */
  progress?: (message: string) => void;
}

export interface ReconRunResult {
  runId: bigint;
  cycleId: string;
  businessDate: string;
  engineLines: bigint;
  bankLines: bigint;
  /** Engine lines of banks that returned, whose (bank, txn id) group has no difference. */
  matched: bigint;
  /** Exceptions this run filed for the first time. */
  exceptionsNew: bigint;
  /** Differences this run found (new or already filed). */
  exceptionsTotal: bigint;
  /** Found per type (every type present, zero included). */
  byType: Record<ExceptionType, bigint>;
  newByType: Record<ExceptionType, bigint>;
  startedAt: Date;
  finishedAt: Date;
}

function zeroByType(): Record<ExceptionType, bigint> {
  return Object.fromEntries(exception_types.map((t) => [t, 0n])) as Record<ExceptionType, bigint>;
}

export async function reconcileCycle(deps: RunDeps, cycleId: string, actor: ReconActor): Promise<ReconRunResult> {
  const say = deps.progress ?? (() => undefined);
  const cycle = (await deps.db.query<{ id: string; business_date: string; state: string }>(plans.cycle_by_id, [cycleId])).rows[0];
  if (cycle === undefined) throw notFound('CYCLE_NOT_FOUND', 'No such clearing cycle.');
  if (!(reconcilable_states as readonly string[]).includes(cycle.state)) {
    throw conflict('CYCLE_NOT_CLEARED', `Cycle ${cycleId} is ${cycle.state}: only a cleared cycle is reconciled.`, { state: cycle.state });
  }
  return withTx(deps.db, async (tx) => {
    await tx.query(plans.run_lock, [cycleId]);
    const startedAt = deps.now();
    const runId = (await tx.query<{ id: bigint }>(plans.insert_run, [cycleId, cycle.business_date, startedAt, actor.keyId])).rows[0].id;
    await tx.query(plans.run_work_mem);
    await tx.query(plans.run_jit_off);
    await tx.query(plans.create_found);
    const perBank = (await tx.query<{ bank_code: string; n: bigint }>(plans.engine_lines_per_bank, [cycleId])).rows;
    const returns = (await tx.query<{ bank_code: string; line_count: bigint }>(plans.latest_csv_returns, [cycleId])).rows;
    const returned = new Set(returns.map((r) => r.bank_code));
    const engineLines = perBank.reduce((a, r) => a + r.n, 0n);
    // Only lines a bank has answered for can be matched; the others are still awaited.
    const answerableLines = perBank.filter((r) => returned.has(r.bank_code)).reduce((a, r) => a + r.n, 0n);
    const bankLines = returns.reduce((a, r) => a + r.line_count, 0n);
    say(`reconcile ${cycleId}: ${engineLines} engine lines, ${bankLines} returned lines from ${returns.length} banks`);
    await tx.query(plans.find_bank_differences, [cycleId]);
    say('bank returns matched');
    await tx.query(plans.find_rejected_packages, [cycleId]);
    await tx.query(plans.find_operator_differences, [cycleId, cycle.business_date]);
    say('operator totals compared');
    await tx.query(plans.find_risk_signals, [cycleId]);
    await tx.query(plans.find_sequence_gaps, [cycleId]);
    await tx.query(plans.find_chain_breaks, [cycle.business_date]);
    say('ingestion signals collected');
    const found = (await tx.query<{ type: ExceptionType; n: bigint; engine_lines: bigint }>(plans.found_by_type)).rows;
    const filed = (await tx.query<{ type: ExceptionType; n: bigint }>(plans.file_found, [cycleId, cycle.business_date, startedAt, runId, actor.keyId])).rows;
    const byType = zeroByType();
    const newByType = zeroByType();
    let total = 0n;
    let unmatchedEngineLines = 0n;
    // Only bank differences carry engine lines (the other sources leave the count at zero).
    for (const f of found) { byType[f.type] = f.n; total += f.n; unmatchedEngineLines += f.engine_lines; }
    let fresh = 0n;
    for (const f of filed) { newByType[f.type] = f.n; fresh += f.n; }
    const matched = answerableLines - unmatchedEngineLines;
    const finishedAt = deps.now();
    await tx.query(plans.finish_run, [runId, engineLines, bankLines, matched, fresh, total, finishedAt]);
    await appendAudit(tx, [{
      at: finishedAt, actor: actor.keyId, role: actor.role, purpose: null, action: 'RECON_RUN', subject: `recon_run:${runId}`, fields: [],
      details: { cycle_id: cycleId, engine_lines: String(engineLines), bank_lines: String(bankLines), exceptions_new: String(fresh), exceptions_total: String(total) },
    }]);
    say(`reconcile ${cycleId}: ${total} differences, ${fresh} new exceptions`);
    return {
      runId, cycleId, businessDate: cycle.business_date, engineLines, bankLines, matched, exceptionsNew: fresh, exceptionsTotal: total,
      byType, newByType, startedAt, finishedAt,
    };
  });
}

export interface RunView {
  id: string; cycle_id: string; business_date: string; engine_lines: string; bank_lines: string; matched: string; exceptions_new: string;
  exceptions_total: string; started_at: string; finished_at: string | null; actor: string;
}

export const run_list_page_max = 200;

/** Runs, newest first, optionally of one cycle; the cursor is the last id of the previous page. */
export async function listRuns(db: Db, f: { cycleId?: string; cursor?: string | null; limit: number }): Promise<{ items: RunView[]; nextCursor: string | null }> {
  const limit = Math.min(Math.max(1, f.limit), run_list_page_max);
  const r = await db.query<Record<string, unknown>>(plans.list_runs, [f.cycleId ?? null, f.cursor ?? null, limit]);
  const items = r.rows.map((x) => ({
    id: String(x.id), cycle_id: x.cycle_id as string, business_date: x.business_date as string, engine_lines: String(x.engine_lines),
    bank_lines: String(x.bank_lines), matched: String(x.matched), exceptions_new: String(x.exceptions_new), exceptions_total: String(x.exceptions_total),
    started_at: (x.started_at as Date).toISOString(), finished_at: x.finished_at === null ? null : (x.finished_at as Date).toISOString(), actor: x.actor as string,
  }));
  return { items, nextCursor: items.length === limit ? items[items.length - 1].id : null };
}

/** Cycles reconciled per call of reconcilePending, at most (older first; the next call goes on). */
export const pending_cycles_max = 31;

/**
 * Reconciles every cleared cycle that received a bank return or operator totals since its last
 * run (the automatic follow-up of an upload, for a scheduler or `npm run reconcile -- --pending`).
 */
export async function reconcilePending(deps: RunDeps, actor: ReconActor): Promise<ReconRunResult[]> {
  const ids = (await deps.db.query<{ id: string }>(plans.cycles_pending, [[...reconcilable_states], pending_cycles_max])).rows.map((r) => r.id);
  const out: ReconRunResult[] = [];
  for (const id of ids) out.push(await reconcileCycle(deps, id, actor));
  return out;
}
