/**
 * The clearing run of one cycle: close → clear → publish. Each step is one transaction guarded
 * by the cycle's state, so a run killed at any instant leaves the cycle in a state the next run
 * continues from (a step either committed whole or not at all), and a second run of a finished
 * cycle does nothing. Ledger entries carry deterministic keys (`fee:{cycle}:{merchant}`,
 * `sweep:{cycle}:{merchant}`) as a second guard. A session advisory lock per cycle makes
 * concurrent runs (two engine nodes, a CLI and the calendar) queue instead of racing.
 */
import { conflict, notFound } from '../../engine/errors.ts';
import { addDays, cutoffInstant, cycleIdFor, parseCutoff } from '../../engine/clearing/calendar.ts';
import { checkZeroSum } from '../../engine/clearing/netting.ts';
import { Ledger, type EntryInput } from '../../ledger/index.ts';
import { batch_entries_max } from '../../ledger/rules.ts';
import { plans as cyclePlans } from '../postgres/cycles.ts';
import { withTx, type Db, type Tx } from '../postgres/db.ts';
import { publishPackage } from './packages.ts';
import { plans } from './plans.ts';
import type { ClearingSettings } from './settings.ts';

export type CycleState = 'OPEN' | 'CLOSED' | 'CLEARED' | 'PUBLISHED' | 'SETTLED' | 'PARTIALLY_SETTLED';

export interface ClearingContext {
  readonly db: Db;
  readonly ledger?: Ledger;
  readonly settings: ClearingSettings;
  /** Progress lines (stderr in the CLI); never card numbers. */
  readonly progress?: (message: string) => void;
}

export interface ClearResult {
  cycleId: string;
  businessDate: string;
  state: CycleState;
  steps: string[];
  transactions?: bigint;
  lines?: bigint;
  packages?: number;
}

/** Per-statement memory of the set-based clearing (hash aggregates over the whole cycle). */
const clearing_work_mem = '256MB';
/** Statement timeout of the clearing transaction: far above the 60 s target at 5 M transactions. */
const clearing_timeout_ms = 30 * 60_000;

interface CycleRow { id: string; business_date: string; state: CycleState; closed_at?: Date | null }

export async function clearCycle(ctx: ClearingContext, cycleId: string, actor: string, now: Date): Promise<ClearResult> {
  const lockClient = await ctx.db.connect();
  let lockHeld = false;
  try {
    await lockClient.query(plans.run_lock, [cycleId]);
    lockHeld = true;
    return await runLocked(ctx, cycleId, actor, now);
  } finally {
    if (lockHeld) await lockClient.query(plans.run_unlock, [cycleId]).catch(() => undefined);
    lockClient.release();
  }
}

async function runLocked(ctx: ClearingContext, cycleId: string, actor: string, now: Date): Promise<ClearResult> {
  const ledger = ctx.ledger ?? new Ledger();
  const progress = ctx.progress ?? (() => undefined);
  const steps: string[] = [];
  let cycle = await readCycle(ctx.db, cycleId);
  const result: ClearResult = { cycleId, businessDate: cycle.business_date, state: cycle.state, steps };

  if (cycle.state === 'OPEN') {
    const due = cutoffInstant(cycle.business_date, parseCutoff(ctx.settings.cutoff));
    if (now.getTime() < due.getTime()) {
      throw conflict('CYCLE_NOT_DUE', 'The cycle is still open: it closes at its cutoff.', { cycle_id: cycleId, due_at: due.toISOString() });
    }
    progress(`closing ${cycleId}`);
    await closeCycle(ctx.db, cycle, actor, now);
    steps.push('CLOSED');
    cycle = await readCycle(ctx.db, cycleId);
  }
  if (cycle.state === 'CLOSED') {
    progress(`clearing ${cycleId}`);
    const t0 = performance.now();
    const c = await withTx(ctx.db, (tx) => clearClosed(tx, ledger, cycle, actor, now, progress));
    if (c !== null) {
      steps.push('CLEARED');
      result.transactions = c.transactions;
      result.lines = c.lines;
      progress(`cleared ${cycleId}: ${c.transactions} transactions, ${c.lines} lines in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    cycle = await readCycle(ctx.db, cycleId);
  }
  if (cycle.state === 'CLEARED') {
    const published = await publishCycle(ctx, cycle, actor, now);
    result.packages = published;
    steps.push('PUBLISHED');
    cycle = await readCycle(ctx.db, cycleId);
  }
  result.state = cycle.state;
  return result;
}

async function readCycle(db: Db | Tx, cycleId: string): Promise<CycleRow> {
  const r = await db.query<CycleRow>(plans.cycle_by_id, [cycleId]);
  if (r.rows.length === 0) throw notFound('CYCLE_NOT_FOUND', 'No such clearing cycle.', { cycle_id: cycleId });
  return r.rows[0];
}

/** OPEN → CLOSED and the next business date's cycle OPEN, in one transaction under the exclusive cycle lock. */
async function closeCycle(db: Db, cycle: CycleRow, actor: string, now: Date): Promise<void> {
  await withTx(db, async (tx) => {
    await tx.query(cyclePlans.lock_exclusive);
    const closed = await tx.query(plans.set_state, [cycle.id, 'CLOSED', ['OPEN'], now, 'OPEN', actor, null]);
    if (closed.rows.length === 0) return;
    const next = addDays(cycle.business_date, 1);
    await tx.query(cyclePlans.insert_open, [cycleIdFor(next), next, now, actor]);
  });
}

interface Cleared { transactions: bigint; lines: bigint }

async function clearClosed(tx: Tx, ledger: Ledger, cycle: CycleRow, actor: string, now: Date, progress: (m: string) => void): Promise<Cleared | null> {
  let t = performance.now();
  const step = (name: string) => { const n = performance.now(); progress(`  ${name}: ${((n - t) / 1000).toFixed(2)} s`); t = n; };
  const locked = await tx.query<CycleRow>(plans.cycle_by_id_for_update, [cycle.id]);
  if (locked.rows[0]?.state !== 'CLOSED') return null;
  await tx.query(`SET LOCAL work_mem = '${clearing_work_mem}'`);
  await tx.query(`SET LOCAL statement_timeout = ${clearing_timeout_ms}`);
  const date = cycle.business_date;
  await tx.query(plans.insert_lines, [cycle.id, date]);
  step('detail lines');

  const merchants = await tx.query<{ merchant_id: string; bank_code: string; fee_fen: bigint; sweep_fen: bigint }>(plans.merchant_totals, [cycle.id]);
  const entries: EntryInput[] = [];
  let feesFen = 0n;
  for (const m of merchants.rows) {
    const payable = `merchant:${m.merchant_id}:payable`;
    const clearing = `bank:${m.bank_code}:clearing`;
    feesFen += m.fee_fen;
    if (m.fee_fen > 0n) {
      entries.push({ idemKey: `fee:${cycle.id}:${m.merchant_id}`, kind: 'CLEARING_FEE', businessDate: date,
        metadata: { cycle_id: cycle.id, merchant_id: m.merchant_id }, lines: [{ debit: payable, credit: 'centre:fees', amountFen: m.fee_fen }] });
    }
    if (m.sweep_fen !== 0n) {
      const out = m.sweep_fen > 0n;
      entries.push({ idemKey: `sweep:${cycle.id}:${m.merchant_id}`, kind: 'CLEARING_SWEEP', businessDate: date,
        metadata: { cycle_id: cycle.id, merchant_id: m.merchant_id, bank_code: m.bank_code },
        lines: [{ debit: out ? payable : clearing, credit: out ? clearing : payable, amountFen: out ? m.sweep_fen : -m.sweep_fen }] });
    }
  }
  for (let i = 0; i < entries.length; i += batch_entries_max) await ledger.postBatch(tx, entries.slice(i, i + batch_entries_max));

  step('fees and sweeps');
  const positions = await tx.query<{ bank_code: string; net_fen: bigint }>(plans.insert_positions, [cycle.id, now]);
  const nets = new Map(positions.rows.map((p) => [p.bank_code, p.net_fen]));
  const moves = await tx.query<{ owner_type: string; owner_id: string; delta: bigint }>(plans.account_movements, [date]);
  step('positions and movements');
  let banksNet = 0n;
  let movedBankMerchant = 0n;
  for (const p of positions.rows) banksNet += p.net_fen;
  for (const m of moves.rows) {
    movedBankMerchant += m.delta;
    if (m.owner_type === 'merchant' && m.delta !== 0n) {
      throw new Error(`clearing left merchant ${m.owner_id}'s payable moved by ${m.delta} fen`);
    }
    if (m.owner_type === 'bank' && (nets.get(m.owner_id) ?? 0n) !== m.delta) {
      throw new Error(`bank ${m.owner_id}'s clearing account moved ${m.delta} fen but its position is ${nets.get(m.owner_id) ?? 'missing'}`);
    }
  }
  // Double entry: every fen the bank and merchant accounts gained, the centre's accounts gave.
  const centreNet = -movedBankMerchant;
  checkZeroSum(banksNet, centreNet);
  const counts = (await tx.query<{ n: bigint; lines: bigint }>(plans.count_transactions, [cycle.id])).rows[0];
  await tx.query(plans.insert_summary, [cycle.id, counts.n, counts.lines, banksNet, centreNet, feesFen, now, actor]);
  await tx.query(plans.set_state, [cycle.id, 'CLEARED', ['CLOSED'], now, 'CLOSED', actor,
    JSON.stringify({ transactions: String(counts.n), lines: String(counts.lines), banks_net_fen: String(banksNet), fees_fen: String(feesFen) })]);
  return { transactions: counts.n, lines: counts.lines };
}

/** One package per bank position; then CLEARED → PUBLISHED once none is missing. */
async function publishCycle(ctx: ClearingContext, cycle: CycleRow, actor: string, now: Date): Promise<number> {
  const progress = ctx.progress ?? (() => undefined);
  const summary = (await ctx.db.query<{ created_at: Date }>(plans.summary, [cycle.id])).rows[0];
  // The package's timestamps are those of the clearing, so a re-run writes identical bytes.
  const createdAt = summary.created_at;
  const positions = await ctx.db.query<{ bank_code: string; line_count: bigint; net_fen: bigint }>(plans.positions, [cycle.id]);
  let published = 0;
  for (const p of positions.rows) {
    const exists = await ctx.db.query(plans.package_exists, [p.bank_code, cycle.id]);
    if (exists.rows.length > 0) continue;
    const t0 = performance.now();
    await publishPackage(ctx.db, ctx.settings, { cycleId: cycle.id, businessDate: cycle.business_date, bankCode: p.bank_code, netFen: p.net_fen, lineCount: p.line_count, createdAt });
    published += 1;
    progress(`package ${cycle.id}/${p.bank_code}: ${p.line_count} lines in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  await withTx(ctx.db, async (tx) => {
    const missing = (await tx.query<{ n: bigint }>(plans.packages_missing, [cycle.id])).rows[0].n;
    if (missing !== 0n) throw new Error(`${missing} packages of ${cycle.id} are missing after publishing`);
    await tx.query(plans.set_state, [cycle.id, 'PUBLISHED', ['CLEARED'], now, 'CLEARED', actor, JSON.stringify({ packages: positions.rows.length })]);
  });
  return published;
}

/** The cycle of a business date, or 404. */
export async function cycleIdForDate(db: Db, businessDate: string): Promise<string> {
  const r = await db.query<{ id: string }>(plans.cycle_by_date, [businessDate]);
  if (r.rows.length === 0) throw notFound('CYCLE_NOT_FOUND', 'No clearing cycle for that business date.', { business_date: businessDate });
  return r.rows[0].id;
}
