/**
 * The clearing run of one cycle: close → clear → publish. Each step is guarded by the cycle's
 * state, so a run killed at any instant leaves the cycle in a state the next run continues from,
 * and a second run of a finished cycle does nothing. Clearing first builds the cycle's lines in a
 * table of their own, from two connections (the machine has two cores), chunk by chunk; that
 * table is invisible until one short transaction attaches it as the cycle's partition of
 * clearing_line together with the fees, sweeps, positions and the move to CLEARED, so the
 * lines appear with the rest of the clearing or not at all (a killed run's leftover table is
 * dropped and built again). Ledger entries carry deterministic keys (`fee:{cycle}:{merchant}`,
 * `sweep:{cycle}:{merchant}`) as a second guard. A session advisory lock per cycle makes
 * concurrent runs (two engine nodes, a CLI and the calendar) queue instead of racing.
 *
 * Measured at 5,000,000 transactions (6,250,000 lines) on 2 cores: see bench/clearing.ts and
 * the README (about 55 s to clear, 220,000 package lines/s).
 */
import { conflict, notFound } from '../../engine/errors.ts';
import { addDays, cutoffInstant, cycleIdFor, parseCutoff } from '../../engine/clearing/calendar.ts';
import { checkZeroSum } from '../../engine/clearing/netting.ts';
import { Ledger, type EntryInput } from '../../ledger/index.ts';
import { batch_entries_max } from '../../ledger/rules.ts';
import { plans as cyclePlans } from '../postgres/cycles.ts';
import { withTx, type Db, type Tx } from '../postgres/db.ts';
import { publishPackage } from './packages.ts';
import { lines_ddl, linesTableOf, plans } from './plans.ts';
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
/** Memory of the one sort that builds the lines' primary key (millions of short keys). */
const clearing_index_mem = '1GB';
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
    const c = await clearClosed(ctx.db, ledger, cycle, actor, now, progress);
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

/** Connections that build lines at once: the machine the bar is set on has two cores. */
export const clearing_workers_max = 2;
/**
 * Entry ids per chunk, at most: a chunk's hash tables and totals stay in memory (work_mem) and
 * its statement is short; 5,000,000 transactions make 8 chunks, which also balances two workers.
 */
const clearing_chunk_entries_max = 625_000n;
/** Chunks per worker, at least, so one slow chunk does not leave the other worker idle long. */
const clearing_chunks_per_worker_min = 2;

/** A chunk's line totals by bank, side, merchant and direction (its statement's answer). */
interface ChunkTotal { bank_code: string; side: 'ISSUER' | 'ACQUIRER'; merchant_id: string | null; direction: 'PAY' | 'RECEIVE'; kind: string; n: bigint; amount_fen: bigint; fee_fen: bigint; plain_n: bigint }
interface Built { totals: ChunkTotal[]; entries: bigint; movements: Map<string, bigint>; hiEntryId: bigint }

const ownerKey = (ownerType: string, ownerId: string) => `${ownerType}:${ownerId}`;

/**
 * The cycle's lines, built in its own table by up to two connections at once, each chunk of
 * entries committed on its own; with each chunk, the movements of the bank and merchant accounts
 * read straight from its postings. Nothing is visible until clearClosed attaches the table: a run
 * killed here leaves an unattached table that the next run drops and builds again.
 */
async function buildLines(db: Db, cycle: CycleRow, progress: (m: string) => void): Promise<Built> {
  const table = linesTableOf(cycle.id);
  await db.query(lines_ddl.drop(table));
  await db.query(lines_ddl.create(table, cycle.id));
  const range = (await db.query<{ lo: bigint | null; hi: bigint | null }>(plans.entry_range, [cycle.business_date])).rows[0];
  const built: Built = { totals: [], entries: 0n, movements: new Map(), hiEntryId: range.hi ?? 0n };
  if (range.lo !== null && range.hi !== null) {
    const poolMax = (db as unknown as { options?: { max?: number } }).options?.max ?? 2;
    // One connection of the pool holds the run lock.
    const workers = Math.max(1, Math.min(clearing_workers_max, poolMax - 1));
    const span = range.hi - range.lo + 1n;
    const bySize = Number((span + clearing_chunk_entries_max - 1n) / clearing_chunk_entries_max);
    const chunks = chunkRanges(range.lo, range.hi, Math.max(bySize, workers * clearing_chunks_per_worker_min));
    let next = 0;
    let done = 0;
    // Estimates of freshly loaded ledger rows can be far off: a nested loop over a side thought
    // to hold one row costs minutes, a hash join over a small side costs nothing. JIT compiling
    // these statements took about a second each and saved less than it cost.
    const settings = [`SET work_mem = '${clearing_work_mem}'`, `SET statement_timeout = ${clearing_timeout_ms}`, 'SET enable_nestloop = off', 'SET jit = off'];
    const work = () => withSession(db, settings, async (client) => {
      for (let i = next++; i < chunks.length; i = next++) {
        const [lo, hi] = chunks[i];
        const t0 = performance.now();
        const r = await client.query<ChunkTotal & { entries: bigint | null }>(plans.insert_lines_chunk.replace('$TABLE', table), [cycle.id, cycle.business_date, lo, hi]);
        for (const row of r.rows) {
          if (row.entries !== null) built.entries += row.entries;
          else built.totals.push(row);
        }
        const t1 = performance.now();
        const m = await client.query<{ owner_type: string; owner_id: string; delta: bigint }>(plans.account_movements, [cycle.business_date, lo, hi]);
        for (const row of m.rows) addTo(built.movements, ownerKey(row.owner_type, row.owner_id), row.delta);
        done += 1;
        progress(`  lines: chunk ${done}/${chunks.length} in ${seconds(t0, t1)} s, its movements in ${seconds(t1, performance.now())} s`);
      }
    });
    await Promise.all(Array.from({ length: workers }, work));
  }
  // One sort for the whole table, shared with parallel maintenance workers, rather than keeping
  // the key up to date line by line while the chunks are written.
  const tk = performance.now();
  await withSession(db, [`SET maintenance_work_mem = '${clearing_index_mem}'`, `SET max_parallel_maintenance_workers = ${clearing_workers_max}`,
    `SET statement_timeout = ${clearing_timeout_ms}`], (c) => c.query(lines_ddl.primary_key(table)));
  progress(`  lines: primary key in ${seconds(tk, performance.now())} s`);
  // Statistics for the plans of everything that reads the cycle's lines (packages, returns, reconciliation).
  await db.query(lines_ddl.analyze(table));
  return built;
}

/** Runs `fn` on one connection with session settings, reset before the connection goes back to the pool. */
async function withSession<T>(db: Db, settings: string[], fn: (c: Tx) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    for (const s of settings) await client.query(s);
    return await fn(client);
  } finally {
    await client.query('RESET ALL').catch(() => undefined);
    client.release();
  }
}

/** [lo, hi] cut into n contiguous ranges of ids (a date's entries are nearly contiguous). */
function chunkRanges(lo: bigint, hi: bigint, n: number): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  const span = hi - lo + 1n;
  const parts = BigInt(n) > span ? span : BigInt(n);
  for (let k = 0n; k < parts; k++) out.push([lo + (span * k) / parts, lo + (span * (k + 1n)) / parts - 1n]);
  return out;
}

const seconds = (from: number, to: number) => ((to - from) / 1000).toFixed(2);

function addTo(map: Map<string, bigint>, key: string, delta: bigint): void {
  map.set(key, (map.get(key) ?? 0n) + delta);
}

/** The table of a cycle's lines: a partition already (cleared), a leftover of a killed run, or none. */
async function linesTableState(db: Db | Tx, cycleId: string): Promise<'attached' | 'detached' | 'none'> {
  const r = await db.query<{ attached: boolean }>(plans.lines_table_state, [linesTableOf(cycleId)]);
  if (r.rows.length === 0) return 'none';
  return r.rows[0].attached ? 'attached' : 'detached';
}

async function clearClosed(db: Db, ledger: Ledger, cycle: CycleRow, actor: string, now: Date, progress: (m: string) => void): Promise<Cleared | null> {
  let t = performance.now();
  const step = (name: string) => { const n = performance.now(); progress(`  ${name}: ${((n - t) / 1000).toFixed(2)} s`); t = n; };
  if (await linesTableState(db, cycle.id) === 'attached') throw new Error(`cycle ${cycle.id} is CLOSED but its lines are attached`);
  const built = await buildLines(db, cycle, progress);
  step('detail lines');
  return withTx(db, async (tx) => {
    const locked = await tx.query<CycleRow>(plans.cycle_by_id_for_update, [cycle.id]);
    if (locked.rows[0]?.state !== 'CLOSED') return null;
    await tx.query(`SET LOCAL statement_timeout = ${clearing_timeout_ms}`);
    await tx.query('SET LOCAL jit = off');
    const date = cycle.business_date;
    const table = linesTableOf(cycle.id);
    await tx.query(lines_ddl.attach(table, cycle.id));

    // Fee and sweep per merchant, from its ACQUIRER lines; positions per bank from all lines.
    const merchants = new Map<string, { merchant_id: string; bank_code: string; fee_fen: bigint; sweep_fen: bigint }>();
    const banks = new Map<string, { n: bigint; pay: bigint; recv: bigint; fee: bigint }>();
    let lineCount = 0n;
    for (const x of built.totals) {
      lineCount += x.n;
      const net = x.side === 'ACQUIRER' ? x.amount_fen - x.fee_fen : x.amount_fen;
      const b = banks.get(x.bank_code) ?? { n: 0n, pay: 0n, recv: 0n, fee: 0n };
      b.n += x.n;
      b.fee += x.fee_fen;
      if (x.direction === 'PAY') b.pay += net; else b.recv += net;
      banks.set(x.bank_code, b);
      if (x.side === 'ACQUIRER') {
        if (x.merchant_id === null) throw new Error(`an ACQUIRER line of bank ${x.bank_code} names no merchant`);
        const key = `${x.merchant_id}\u0000${x.bank_code}`;
        const m = merchants.get(key) ?? { merchant_id: x.merchant_id, bank_code: x.bank_code, fee_fen: 0n, sweep_fen: 0n };
        m.fee_fen += x.fee_fen;
        m.sweep_fen += x.direction === 'RECEIVE' ? x.amount_fen - x.fee_fen : -x.amount_fen;
        merchants.set(key, m);
      }
    }
    // Per bank, kind, side and direction: what the packages' camt.053 and control sums state.
    const lineTotals = new Map<string, { bank: string; kind: string; side: string; direction: string; n: bigint; net: bigint; amount: bigint; fee: bigint; plain: bigint }>();
    for (const x of built.totals) {
      const key = `${x.bank_code}/${x.kind}/${x.side}/${x.direction}`;
      const t = lineTotals.get(key) ?? { bank: x.bank_code, kind: x.kind, side: x.side, direction: x.direction, n: 0n, net: 0n, amount: 0n, fee: 0n, plain: 0n };
      t.n += x.n;
      t.net += x.side === 'ACQUIRER' ? x.amount_fen - x.fee_fen : x.amount_fen;
      t.amount += x.amount_fen;
      t.fee += x.fee_fen;
      t.plain += x.plain_n;
      lineTotals.set(key, t);
    }
    const lt = [...lineTotals.values()];
    await tx.query(plans.insert_line_totals, [cycle.id, lt.map((t) => t.bank), lt.map((t) => t.kind), lt.map((t) => t.side), lt.map((t) => t.direction),
      lt.map((t) => String(t.n)), lt.map((t) => String(t.net)), lt.map((t) => String(t.amount)), lt.map((t) => String(t.fee)), lt.map((t) => String(t.plain))]);

    const entries: EntryInput[] = [];
    let feesFen = 0n;
    for (const m of [...merchants.values()].sort((a, b) => cmp(a.merchant_id, b.merchant_id) || cmp(a.bank_code, b.bank_code))) {
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

    const codes = [...banks.keys()];
    const positions = await tx.query<{ bank_code: string; net_fen: bigint; line_count: bigint }>(plans.insert_positions, [cycle.id, codes,
      codes.map((c) => String(banks.get(c)!.n)), codes.map((c) => String(banks.get(c)!.pay)), codes.map((c) => String(banks.get(c)!.recv)),
      codes.map((c) => String(banks.get(c)!.fee)), now]);
    const nets = new Map(positions.rows.map((p) => [p.bank_code, p.net_fen]));
    for (const code of codes) {
      if (!nets.has(code)) throw new Error(`lines name bank ${code}, which has no position`);
    }
    // The movements of entries posted after the lines were built: this transaction's fees and sweeps.
    const moves = new Map(built.movements);
    const after = await tx.query<{ owner_type: string; owner_id: string; delta: bigint }>(plans.account_movements, [date, built.hiEntryId + 1n, max_entry_id]);
    for (const row of after.rows) addTo(moves, ownerKey(row.owner_type, row.owner_id), row.delta);
    step('positions and movements');
    let banksNet = 0n;
    let movedBankMerchant = 0n;
    for (const p of positions.rows) banksNet += p.net_fen;
    for (const [key, delta] of moves) {
      movedBankMerchant += delta;
      const [ownerType, ownerId] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
      if (ownerType === 'merchant' && delta !== 0n) {
        throw new Error(`clearing left merchant ${ownerId}'s payable moved by ${delta} fen`);
      }
      if (ownerType === 'bank' && (nets.get(ownerId) ?? 0n) !== delta) {
        throw new Error(`bank ${ownerId}'s clearing account moved ${delta} fen but its position is ${nets.get(ownerId) ?? 'missing'}`);
      }
    }
    // Double entry: every fen the bank and merchant accounts gained, the centre's accounts gave.
    const centreNet = -movedBankMerchant;
    checkZeroSum(banksNet, centreNet);
    await tx.query(plans.insert_summary, [cycle.id, built.entries, lineCount, banksNet, centreNet, feesFen, now, actor]);
    await tx.query(plans.set_state, [cycle.id, 'CLEARED', ['CLOSED'], now, 'CLOSED', actor,
      JSON.stringify({ transactions: String(built.entries), lines: String(lineCount), banks_net_fen: String(banksNet), fees_fen: String(feesFen) })]);
    return { transactions: built.entries, lines: lineCount };
  });
}

/** Above any entry id: the open end of the last movement range. */
const max_entry_id = 2n ** 63n - 1n;
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** One package per bank position; then CLEARED → PUBLISHED once none is missing. */
async function publishCycle(ctx: ClearingContext, cycle: CycleRow, actor: string, now: Date): Promise<number> {
  const progress = ctx.progress ?? (() => undefined);
  const summary = (await ctx.db.query<{ created_at: Date }>(plans.summary, [cycle.id])).rows[0];
  // The package's timestamps are those of the clearing, so a re-run writes identical bytes.
  const createdAt = summary.created_at;
  const positions = await ctx.db.query<{ bank_code: string; line_count: bigint; net_fen: bigint }>(plans.positions, [cycle.id]);
  // Cycles cleared before line totals were kept have none: their packages sum their lines.
  const stored = (await ctx.db.query<{ n: bigint }>(plans.line_totals_count, [cycle.id])).rows[0].n;
  const lines = positions.rows.reduce((a, p) => a + p.line_count, 0n);
  const storedTotals = stored === lines && lines > 0n;
  let published = 0;
  // Two packages at a time: Postgres encodes one bank's lines while the engine digests another's.
  const poolMax = (ctx.db as unknown as { options?: { max?: number } }).options?.max ?? 2;
  const workers = Math.max(1, Math.min(clearing_workers_max, poolMax - 1));
  let next = 0;
  const work = async () => {
    for (let i = next++; i < positions.rows.length; i = next++) {
      const p = positions.rows[i];
      const exists = await ctx.db.query(plans.package_exists, [p.bank_code, cycle.id]);
      if (exists.rows.length > 0) continue;
      const t0 = performance.now();
      await publishPackage(ctx.db, ctx.settings, { cycleId: cycle.id, businessDate: cycle.business_date, bankCode: p.bank_code, netFen: p.net_fen, lineCount: p.line_count, createdAt, storedTotals });
      published += 1;
      progress(`package ${cycle.id}/${p.bank_code}: ${p.line_count} lines in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  };
  await Promise.all(Array.from({ length: workers }, work));
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
