/**
 * The ledger's Postgres side. A batch of entries is written by one data-modifying statement
 * (entries and their lines from unnest arrays); the database's statement triggers then update
 * each touched account's balance once per batch, in account-id order.
 */
import { conflict, notFound, unprocessable, DomainError } from '../engine/errors.ts';
import * as plans from './plans.ts';
import { accountSpecFor, balanceOf, batch_entries_max, entryFingerprint, validateEntry } from './rules.ts';
import type { EntryInput, LineInput, NormalSide } from './rules.ts';

/** Anything that can run a query: a pool, or a client inside the caller's transaction. */
export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
  /** A named statement is prepared once per connection (pg's query config). */
  query<R extends Record<string, unknown> = Record<string, unknown>>(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: R[]; rowCount: number | null }>;
}

export interface PostResult {
  idemKey: string;
  entryId: bigint;
  /** True when this key had already been posted with identical content: nothing was written. */
  replayed: boolean;
}

export interface AccountView {
  id: bigint;
  code: string;
  ownerType: string;
  ownerId: string;
  purpose: string;
  currency: string;
  normalSide: NormalSide;
  noNegative: boolean;
  balanceFen: bigint;
  pendingDebitsFen: bigint;
  pendingCreditsFen: bigint;
  availableFen: bigint;
  debitsPostedFen: bigint;
  creditsPostedFen: bigint;
}

export interface HoldInput {
  idemKey: string;
  debit: string;
  credit: string;
  amountFen: bigint;
  kind: string;
  expiresAt: Date;
  metadata?: Record<string, unknown>;
}

export interface VerifyReport {
  ok: boolean;
  accounts: number;
  trialBalance: { debitsFen: bigint; creditsFen: bigint; debitsPendingFen: bigint; creditsPendingFen: bigint };
  mismatches: { code: string; field: string; storedFen: bigint; recomputedFen: bigint }[];
  negativeAccounts: string[];
  entriesWithoutLines: bigint;
  linesWithoutEntry: bigint;
}

const account_cache_entries_max = 2_000_000;
const expire_holds_batch_max = 10_000;

type Row = Record<string, unknown>;

/** Told about every batch written (for metrics); must not throw. */
export interface LedgerObserver {
  batchPosted(stats: { entries: number; written: number; seconds: number; writtenByKind: Map<string, number> }): void;
}

export class Ledger {
  constructor(private readonly observer?: LedgerObserver) {}

  // Account code → id never changes once an account exists and is committed, so the cache needs
  // no invalidation; it is only bounded. Ids of accounts opened by a still-open transaction are
  // not cached (that transaction may roll back).
  private readonly accountIds = new Map<string, bigint>();

  /** Resolve account codes to ids, opening (per the chart of accounts) any that do not exist yet. */
  async accountIdsFor(q: Queryable, codes: Iterable<string>): Promise<Map<string, bigint>> {
    const out = new Map<string, bigint>();
    const missing = new Set<string>();
    for (const code of codes) {
      if (out.has(code)) continue;
      const id = this.accountIds.get(code);
      if (id !== undefined) out.set(code, id);
      else missing.add(code);
    }
    if (missing.size === 0) return out;
    const specs = [...missing].map(accountSpecFor);
    // One round trip: the existing accounts are read, only the others are opened.
    const r = await q.query<{ id: bigint; code: string; mine: boolean }>({
      name: 'ledger_find_or_open_accounts', text: plans.find_or_open_accounts,
      values: [specs.map((s) => s.code), specs.map((s) => s.ownerType), specs.map((s) => s.ownerId),
        specs.map((s) => s.purpose), specs.map((s) => s.normalSide), specs.map((s) => s.noNegative)],
    });
    const rows = r.rows;
    if (rows.length < specs.length) {
      // Opened concurrently by a transaction that committed after this statement's snapshot
      // (ON CONFLICT waited for it, then skipped the row): read those now, in a new snapshot.
      const seen = new Set(rows.map((row) => row.code));
      const late = specs.map((s) => s.code).filter((c) => !seen.has(c));
      rows.push(...(await q.query<{ id: bigint; code: string; mine: boolean }>(plans.account_ids_by_codes, [late])).rows);
    }
    if (this.accountIds.size + rows.length > account_cache_entries_max) this.accountIds.clear();
    for (const row of rows) {
      if (!row.mine) this.accountIds.set(row.code, row.id);
      out.set(row.code, row.id);
    }
    return out;
  }

  /**
   * Ids read from committed ledger_account rows by another statement (an account's id never
   * changes), so a later post needs no round trip to look them up.
   */
  rememberAccountIds(pairs: Iterable<readonly [string, bigint]>): void {
    for (const [code, id] of pairs) {
      if (this.accountIds.size >= account_cache_entries_max) this.accountIds.clear();
      this.accountIds.set(code, id);
    }
  }

  /**
   * For a caller that posts inside a statement of its own (one round trip): the arguments of
   * ledger_post_new_entries (0017_one_round_trip_posting.sql, types `new_entries_argument_types`)
   * that post `entries`, every one of them new. A key that was posted before fails the statement
   * (unique violation), and with it the caller's transaction; such a batch goes through
   * postBatch, which tells a replay from a conflict. Null when an account's id is not known on
   * this node yet (postBatch opens accounts). Report what committed with `newEntriesCommitted`.
   */
  newEntriesArguments(entries: readonly EntryInput[]): unknown[] | null {
    if (entries.length === 0) return null;
    const ids = new Map<string, bigint>();
    for (const code of checkBatch(entries)) {
      const id = this.accountIds.get(code);
      if (id === undefined) return null;
      ids.set(code, id);
    }
    return batchColumns(entries, ids);
  }

  /** Metrics for a statement with `newEntriesArguments` whose transaction committed. */
  newEntriesCommitted(entries: readonly EntryInput[], seconds: number): void {
    this.observe(entries, entries.length, seconds);
  }

  private observe(written: readonly EntryInput[], asked: number, seconds: number): void {
    if (!this.observer) return;
    const writtenByKind = new Map<string, number>();
    for (const e of written) writtenByKind.set(e.kind, (writtenByKind.get(e.kind) ?? 0) + 1);
    this.observer.batchPosted({ entries: asked, written: written.length, seconds, writtenByKind });
  }

  /**
   * Post a batch of entries in the caller's transaction. Entries whose key was already posted
   * with the same content are replays (nothing written); a key reused with different content
   * refuses the whole batch (the caller's transaction must then roll back).
   */
  async postBatch(q: Queryable, entries: readonly (EntryInput & { holdId?: bigint })[]): Promise<PostResult[]> {
    if (entries.length === 0) return [];
    const ids = await this.accountIdsFor(q, checkBatch(entries));
    const n = entries.length;
    let inserted: { id: bigint; idem_key: string; line_count: number }[];
    const started = process.hrtime.bigint();
    try {
      // Named, so each connection plans it once: its plan is the same for any batch.
      const r = await q.query<{ id: bigint; idem_key: string; line_count: number }>({
        name: 'ledger_insert_entries_with_lines', text: plans.insert_entries_with_lines, values: batchColumns(entries, ids),
      });
      inserted = r.rows;
    } catch (e) {
      throw translatePgError(e);
    }
    const results = new Map<string, PostResult>();
    for (const row of inserted) results.set(row.idem_key, { idemKey: row.idem_key, entryId: row.id, replayed: false });
    if (this.observer) this.observe(entries.filter((e) => results.has(e.idemKey)), n, Number(process.hrtime.bigint() - started) / 1e9);
    if (results.size < n) {
      const replayKeys = entries.filter((e) => !results.has(e.idemKey)).map((e) => e.idemKey);
      const existing = await q.query<Row>(plans.existing_entries_by_keys, [replayKeys]);
      const byKey = new Map(existing.rows.map((r) => [r.idem_key as string, r]));
      for (const e of entries) {
        if (results.has(e.idemKey)) continue;
        const row = byKey.get(e.idemKey);
        if (!row) throw new DomainError('LEDGER_INTERNAL', 500, 'An entry that conflicted could not be read back.');
        const stored = entryFingerprint({
          kind: row.kind as string,
          businessDate: row.business_date as string,
          description: row.description as string | null,
          metadata: row.metadata,
          reversesEntryId: row.reverses_entry_id as bigint | null,
          holdId: row.hold_id as bigint | null,
          lines: (row.debits as string[]).map((d, i) => ({ debit: d, credit: (row.credits as string[])[i], amountFen: BigInt((row.amounts as (string | bigint)[])[i]) })),
        });
        if (stored !== entryFingerprint(e)) {
          throw conflict('IDEMPOTENCY_CONFLICT', 'This idempotency key was already used for a different entry.', { idemKey: e.idemKey });
        }
        results.set(e.idemKey, { idemKey: e.idemKey, entryId: row.id as bigint, replayed: true });
      }
    }
    return entries.map((e) => results.get(e.idemKey) as PostResult);
  }

  /** Reverse a posted entry in full: every line swapped, pointing at the original. */
  async reverse(q: Queryable, entryId: bigint, idemKey: string, businessDate: string, description?: string): Promise<PostResult> {
    const r = await q.query<Row>(
      `SELECT da.code AS debit, ca.code AS credit, p.amount_fen FROM ledger_posting p
       JOIN ledger_account da ON da.id = p.debit_account_id JOIN ledger_account ca ON ca.id = p.credit_account_id
       WHERE p.entry_id = $1 ORDER BY p.line_no`, [String(entryId)]);
    if (r.rows.length === 0) throw notFound('ENTRY_NOT_FOUND', 'No such ledger entry.');
    const lines: LineInput[] = r.rows.map((x) => ({ debit: x.credit as string, credit: x.debit as string, amountFen: x.amount_fen as bigint }));
    const [res] = await this.postBatch(q, [{ idemKey, kind: 'REVERSAL', businessDate, description, reversesEntryId: entryId, lines }]);
    return res;
  }

  /** Reserve an amount (pending) from `debit` to `credit`. Idempotent by key. */
  async createHold(q: Queryable, h: HoldInput): Promise<{ holdId: bigint; replayed: boolean }> {
    if (h.amountFen <= 0n) throw unprocessable('ENTRY_AMOUNT_INVALID', 'A hold amount must be positive.');
    const ids = await this.accountIdsFor(q, [h.debit, h.credit]);
    try {
      const r = await q.query<{ id: bigint }>(plans.insert_hold, [
        h.idemKey, String(ids.get(h.debit)), String(ids.get(h.credit)), String(h.amountFen), h.kind,
        h.metadata === undefined ? null : JSON.stringify(h.metadata), h.expiresAt,
      ]);
      if (r.rows.length === 1) return { holdId: r.rows[0].id, replayed: false };
    } catch (e) {
      throw translatePgError(e);
    }
    const ex = await q.query<Row>(plans.hold_by_key, [h.idemKey]);
    const row = ex.rows[0];
    if (!row || row.debit !== h.debit || row.credit !== h.credit || row.amount_fen !== h.amountFen || row.kind !== h.kind) {
      throw conflict('IDEMPOTENCY_CONFLICT', 'This idempotency key was already used for a different hold.', { idemKey: h.idemKey });
    }
    return { holdId: row.id as bigint, replayed: true };
  }

  /**
   * Post a hold, in full or in part: its whole pending amount is released and `amountFen`
   * (≤ the hold) is posted by an entry carrying the hold id. Exactly once per hold.
   */
  async postHold(q: Queryable, holdId: bigint, amountFen: bigint, opts: { idemKey: string; businessDate: string; actor: string; now: Date; description?: string }): Promise<PostResult> {
    const hold = await this.lockHold(q, holdId);
    if (hold.outcome === 'POSTED') {
      if (hold.posted_amount_fen !== amountFen) throw conflict('HOLD_ALREADY_RESOLVED', 'This hold was already posted with another amount.');
      const [res] = await this.postBatch(q, [this.holdEntry(hold, amountFen, opts)]);
      return res;
    }
    if (hold.outcome !== null) throw conflict('HOLD_ALREADY_RESOLVED', `This hold is already ${String(hold.outcome).toLowerCase()}.`);
    if ((hold.expires_at as Date).getTime() <= opts.now.getTime()) throw conflict('HOLD_EXPIRED', 'This hold has expired.');
    if (amountFen <= 0n || amountFen > (hold.amount_fen as bigint)) {
      throw unprocessable('HOLD_AMOUNT_INVALID', 'A hold is posted for a positive amount no larger than the hold.');
    }
    const won = await q.query(plans.insert_resolution, [String(holdId), 'POSTED', String(amountFen), opts.actor, opts.now]);
    // The expiry job does not take the hold's lock; if it resolved the hold first, we lost.
    if (won.rows.length === 0) throw conflict('HOLD_ALREADY_RESOLVED', 'This hold was resolved while it was being posted.');
    const [res] = await this.postBatch(q, [this.holdEntry(hold, amountFen, opts)]);
    return res;
  }

  async voidHold(q: Queryable, holdId: bigint, actor: string, now: Date): Promise<void> {
    const hold = await this.lockHold(q, holdId);
    if (hold.outcome === 'VOIDED') return;
    if (hold.outcome !== null) throw conflict('HOLD_ALREADY_RESOLVED', `This hold is already ${String(hold.outcome).toLowerCase()}.`);
    const won = await q.query(plans.insert_resolution, [String(holdId), 'VOIDED', '0', actor, now]);
    if (won.rows.length === 0) throw conflict('HOLD_ALREADY_RESOLVED', 'This hold was resolved while it was being voided.');
  }

  /** Release every hold past its expiry (bounded per call); returns how many expired. */
  async expireHolds(q: Queryable, now: Date): Promise<number> {
    const r = await q.query(plans.expire_holds, [now, expire_holds_batch_max]);
    return r.rowCount ?? 0;
  }

  async account(q: Queryable, code: string): Promise<AccountView | undefined> {
    const r = await q.query<Row>(plans.account_by_code, [code]);
    return r.rows[0] ? toAccountView(r.rows[0]) : undefined;
  }

  async listAccounts(q: Queryable, after: string | null, ownerType: string | null, limit: number): Promise<AccountView[]> {
    const r = await q.query<Row>(plans.list_accounts, [after, ownerType, limit]);
    return r.rows.map(toAccountView);
  }

  async listEntries(q: Queryable, beforeId: bigint | null, accountCode: string | null, limit: number): Promise<Row[]> {
    let accountId: string | null = null;
    if (accountCode !== null) {
      const a = await this.account(q, accountCode);
      if (!a) return [];
      accountId = String(a.id);
    }
    const r = await q.query<Row>(plans.list_entries, [beforeId === null ? null : String(beforeId), accountId, limit]);
    return r.rows;
  }

  /** Recompute every balance from postings and holds, and the trial balance. */
  async verify(q: Queryable): Promise<VerifyReport> {
    const [mm, tb, neg, ewl, lwe] = await Promise.all([
      q.query<Row>(plans.verify_balances),
      q.query<Row>(plans.trial_balance),
      q.query<{ code: string }>(plans.negative_no_negative_accounts),
      q.query<{ n: bigint }>(plans.entries_without_lines),
      q.query<{ n: bigint }>(plans.lines_without_entry),
    ]);
    const mismatches: VerifyReport['mismatches'] = [];
    for (const r of mm.rows) {
      const pairs: [string, string, string][] = [
        ['debits_posted_fen', 'debits_posted_fen', 'debits_from_postings'],
        ['credits_posted_fen', 'credits_posted_fen', 'credits_from_postings'],
        ['debits_pending_fen', 'debits_pending_fen', 'debits_pending_from_holds'],
        ['credits_pending_fen', 'credits_pending_fen', 'credits_pending_from_holds'],
      ];
      for (const [field, stored, recomputed] of pairs) {
        if (BigInt(r[stored] as bigint) !== BigInt(r[recomputed] as bigint)) {
          mismatches.push({ code: r.code as string, field, storedFen: BigInt(r[stored] as bigint), recomputedFen: BigInt(r[recomputed] as bigint) });
        }
      }
    }
    const t = tb.rows[0];
    const trialBalance = {
      debitsFen: BigInt(t.debits_fen as bigint), creditsFen: BigInt(t.credits_fen as bigint),
      debitsPendingFen: BigInt(t.debits_pending_fen as bigint), creditsPendingFen: BigInt(t.credits_pending_fen as bigint),
    };
    const report: VerifyReport = {
      ok: false,
      accounts: Number(t.accounts),
      trialBalance,
      mismatches,
      negativeAccounts: neg.rows.map((x) => x.code),
      entriesWithoutLines: BigInt(ewl.rows[0].n),
      linesWithoutEntry: BigInt(lwe.rows[0].n),
    };
    report.ok = mismatches.length === 0 && report.negativeAccounts.length === 0 && report.entriesWithoutLines === 0n &&
      report.linesWithoutEntry === 0n && trialBalance.debitsFen === trialBalance.creditsFen &&
      trialBalance.debitsPendingFen === trialBalance.creditsPendingFen;
    return report;
  }

  private async lockHold(q: Queryable, holdId: bigint): Promise<Row> {
    // Serialize resolutions of one hold: the resolution row's primary key makes it exactly once,
    // the advisory lock makes the loser see the winner's outcome instead of an error.
    await q.query('SELECT pg_advisory_xact_lock(7001, hashint8($1::bigint))', [String(holdId)]);
    const r = await q.query<Row>(plans.hold_by_id, [String(holdId)]);
    if (!r.rows[0]) throw notFound('HOLD_NOT_FOUND', 'No such hold.');
    return r.rows[0];
  }

  private holdEntry(hold: Row, amountFen: bigint, opts: { idemKey: string; businessDate: string; description?: string }): EntryInput & { holdId: bigint } {
    return {
      idemKey: opts.idemKey, kind: hold.kind as string, businessDate: opts.businessDate, description: opts.description,
      holdId: hold.id as bigint, lines: [{ debit: hold.debit as string, credit: hold.credit as string, amountFen }],
    };
  }
}

function toAccountView(r: Row): AccountView {
  const normalSide = r.normal_side as NormalSide;
  const dp = r.debits_posted_fen as bigint, cp = r.credits_posted_fen as bigint;
  const dpe = r.debits_pending_fen as bigint, cpe = r.credits_pending_fen as bigint;
  const balanceFen = balanceOf(normalSide, dp, cp);
  return {
    id: r.id as bigint, code: r.code as string, ownerType: r.owner_type as string, ownerId: r.owner_id as string,
    purpose: r.purpose as string, currency: (r.currency as string).trim(), normalSide, noNegative: r.no_negative as boolean,
    balanceFen, pendingDebitsFen: dpe, pendingCreditsFen: cpe,
    availableFen: normalSide === 'CREDIT' ? balanceFen - dpe : balanceFen - cpe,
    debitsPostedFen: dp, creditsPostedFen: cp,
  };
}

/** Database refusals that mean "the caller asked for something impossible" become 4xx errors. */
/** Checks a batch (size, each entry, keys once) and returns the account codes it names. */
function checkBatch(entries: readonly EntryInput[]): Set<string> {
  if (entries.length > batch_entries_max) {
    throw unprocessable('BATCH_TOO_LARGE', `A ledger batch holds at most ${batch_entries_max} entries.`);
  }
  const seen = new Set<string>();
  const codes = new Set<string>();
  for (const e of entries) {
    validateEntry(e);
    if (seen.has(e.idemKey)) throw conflict('IDEMPOTENCY_KEY_REPEATED', 'An idempotency key appears twice in one batch.', { idemKey: e.idemKey });
    seen.add(e.idemKey);
    for (const l of e.lines) {
      codes.add(l.debit);
      codes.add(l.credit);
    }
  }
  return codes;
}

/** The Postgres types of batchColumns' arrays, in order (ledger_post_new_entries' arguments). */
export const new_entries_argument_types = [
  'text[]', 'text[]', 'date[]', 'text[]', 'jsonb[]', 'bigint[]', 'bigint[]', 'text[]', 'int[]', 'bigint[]', 'bigint[]', 'bigint[]',
] as const;

/**
 * A batch as the insert's twelve column arrays: entries (key, kind, date, description,
 * metadata, reversed entry, hold), then lines (entry key, line number, debit and credit account
 * ids, amount).
 */
function batchColumns(entries: readonly (EntryInput & { holdId?: bigint })[], ids: Map<string, bigint>): [
  string[], string[], string[], (string | null)[], (string | null)[], (string | null)[], (string | null)[],
  string[], number[], string[], string[], string[],
] {
  let lineCount = 0;
  for (const e of entries) lineCount += e.lines.length;
  const n = entries.length;
  const eKey = new Array<string>(n), eKind = new Array<string>(n), eDate = new Array<string>(n);
  const eDesc = new Array<string | null>(n), eMeta = new Array<string | null>(n);
  const eRev = new Array<string | null>(n), eHold = new Array<string | null>(n);
  const lKey = new Array<string>(lineCount), lNo = new Array<number>(lineCount);
  const lDr = new Array<string>(lineCount), lCr = new Array<string>(lineCount), lAmt = new Array<string>(lineCount);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const e = entries[i];
    eKey[i] = e.idemKey;
    eKind[i] = e.kind;
    eDate[i] = e.businessDate;
    eDesc[i] = e.description ?? null;
    eMeta[i] = e.metadata === undefined ? null : JSON.stringify(e.metadata);
    eRev[i] = e.reversesEntryId === undefined ? null : String(e.reversesEntryId);
    eHold[i] = e.holdId === undefined ? null : String(e.holdId);
    for (let j = 0; j < e.lines.length; j++) {
      const l = e.lines[j];
      lKey[k] = e.idemKey;
      lNo[k] = j;
      lDr[k] = String(ids.get(l.debit));
      lCr[k] = String(ids.get(l.credit));
      lAmt[k] = String(l.amountFen);
      k++;
    }
  }
  return [eKey, eKind, eDate, eDesc, eMeta, eRev, eHold, lKey, lNo, lDr, lCr, lAmt];
}

export function translatePgError(e: unknown): unknown {
  const err = e as { code?: string; constraint?: string; message?: string };
  if (err?.code === '23514' && err.constraint === 'ledger_account_no_negative') {
    return unprocessable('INSUFFICIENT_FUNDS', 'The batch would take a no-negative account below zero; nothing was posted.');
  }
  if (err?.code === '23505' && err.constraint === 'ledger_entry_one_reversal') {
    return conflict('ENTRY_ALREADY_REVERSED', 'This entry has already been reversed.');
  }
  if (err?.code === '23505' && err.constraint === 'ledger_entry_one_per_hold') {
    return conflict('HOLD_ALREADY_RESOLVED', 'This hold has already been posted.');
  }
  return e;
}
