/**
 * Idempotency and refusals: replays write nothing, conflicting reuse of a key refuses the whole
 * batch, concurrent identical submissions apply once, unbalanced legs are refused, the database
 * itself refuses edits of history and of balances, and holds/reversals resolve exactly once.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../adapters/postgres/db.ts';
import { DomainError } from '../engine/errors.ts';
import { Ledger, linesFromLegs, type EntryInput } from '../ledger/index.ts';
import { freshDatabase, untilWaitingOnLock, type TestDb } from './support/db.ts';

let db: TestDb;
const ledger = new Ledger();
beforeAll(async () => { db = await freshDatabase(12); });
afterAll(async () => { await db.drop(); });

const bd = '2026-11-28';
const bank = 'bank:102100000010:clearing';
let cardNo = 0;
/** A fresh card purse per test, so tests never share balances. */
const newCard = () => `card:62174${String(++cardNo).padStart(14, '0')}:purse`;
const merchant = 'merchant:IDEM1:payable';
const merchant2 = 'merchant:IDEM2:payable';

async function fundedCard(amountFen: bigint): Promise<string> {
  const card = newCard();
  await withTx(db.pool, (tx) => ledger.postBatch(tx, [{ idemKey: `load-${card}`, kind: 'PURSE_LOAD', businessDate: bd, lines: [{ debit: bank, credit: card, amountFen }] }]));
  return card;
}

interface Snapshot { entries: bigint; postings: bigint; holds: bigint; resolutions: bigint; totals: Record<string, string> }
/** Row counts of every ledger table and every account's four totals. */
async function snapshot(): Promise<Snapshot> {
  const c = await db.pool.query<{ entries: bigint; postings: bigint; holds: bigint; resolutions: bigint }>(
    `SELECT (SELECT count(*) FROM ledger_entry)::bigint AS entries, (SELECT count(*) FROM ledger_posting)::bigint AS postings,
            (SELECT count(*) FROM ledger_hold)::bigint AS holds, (SELECT count(*) FROM ledger_hold_resolution)::bigint AS resolutions`);
  const a = await db.pool.query<{ code: string; t: string }>(
    `SELECT code, concat_ws('/', debits_posted_fen, credits_posted_fen, debits_pending_fen, credits_pending_fen) AS t FROM ledger_account ORDER BY code`);
  return { ...c.rows[0], totals: Object.fromEntries(a.rows.map((r) => [r.code, r.t])) };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DomainError) return e.code;
    throw e;
  }
  throw new Error('expected a refusal, but it succeeded');
}

/** A raw SQL statement must be refused by the database with this message. */
async function expectDbRefuses(sql: string, params: unknown[], message: RegExp, sqlstate: string): Promise<void> {
  const err = await db.pool.query(sql, params).then(() => undefined, (e: unknown) => e as { code?: string; message?: string });
  expect(err, `${sql} was not refused`).toBeDefined();
  expect(err?.message).toMatch(message);
  expect(err?.code).toBe(sqlstate);
}

async function expectVerifies(): Promise<void> {
  const v = await ledger.verify(db.pool);
  expect(v.mismatches).toEqual([]);
  expect(v.ok).toBe(true);
}

describe('idempotent posting', () => {
  it('same key + same content is a replay: same entry ids, replayed=true, nothing written', async () => {
    const card = await fundedCard(10_000n);
    const batch: EntryInput[] = [
      { idemKey: 'rp-1', kind: 'PURSE_PURCHASE', businessDate: bd, description: 'bus', metadata: { line: 5, stop: { b: 2, a: 1 } }, lines: [{ debit: card, credit: merchant, amountFen: 200n }] },
      { idemKey: 'rp-2', kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: merchant, amountFen: 50n }, { debit: card, credit: merchant2, amountFen: 25n }] },
    ];
    const first = await withTx(db.pool, (tx) => ledger.postBatch(tx, batch));
    expect(first.map((r) => r.replayed)).toEqual([false, false]);
    const before = await snapshot();

    // Same content, metadata keys in another order (the content is the same JSON value).
    const again = batch.map((e) => (e.metadata ? { ...e, metadata: { stop: { a: 1, b: 2 }, line: 5 } } : e));
    const second = await withTx(db.pool, (tx) => ledger.postBatch(tx, again));
    expect(second).toEqual(first.map((r) => ({ ...r, replayed: true })));
    expect(await snapshot()).toEqual(before);
    expect((await ledger.account(db.pool, card))?.balanceFen).toBe(10_000n - 275n);

    // A replay alongside a new entry: only the new entry is written.
    const mixed = await withTx(db.pool, (tx) => ledger.postBatch(tx, [batch[1],
      { idemKey: 'rp-3', kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: merchant, amountFen: 5n }] }]));
    expect(mixed[0]).toEqual({ ...first[1], replayed: true });
    expect(mixed[1].replayed).toBe(false);
    const after = await snapshot();
    expect([after.entries - before.entries, after.postings - before.postings]).toEqual([1n, 1n]);
    expect((await ledger.account(db.pool, card))?.balanceFen).toBe(10_000n - 280n);
    await expectVerifies();
  });

  it('same key + different content → IDEMPOTENCY_CONFLICT, for every part of the content', async () => {
    const card = await fundedCard(10_000n);
    const base: EntryInput = { idemKey: 'cf-1', kind: 'PURSE_PURCHASE', businessDate: bd, description: 'd', metadata: { a: 1 }, lines: [{ debit: card, credit: merchant, amountFen: 100n }] };
    await withTx(db.pool, (tx) => ledger.postBatch(tx, [base]));
    const before = await snapshot();
    const variants: [string, EntryInput][] = [
      ['amount', { ...base, lines: [{ ...base.lines[0], amountFen: 101n }] }],
      ['debit account', { ...base, lines: [{ ...base.lines[0], debit: newCard() }] }],
      ['credit account', { ...base, lines: [{ ...base.lines[0], credit: merchant2 }] }],
      ['extra line', { ...base, lines: [...base.lines, { debit: card, credit: merchant2, amountFen: 1n }] }],
      ['kind', { ...base, kind: 'ADJUSTMENT' }],
      ['business date', { ...base, businessDate: '2026-11-29' }],
      ['description', { ...base, description: 'other' }],
      ['no description', { ...base, description: undefined }],
      ['metadata', { ...base, metadata: { a: 2 } }],
    ];
    for (const [what, v] of variants) {
      expect([what, await refusal(withTx(db.pool, (tx) => ledger.postBatch(tx, [v])))]).toEqual([what, 'IDEMPOTENCY_CONFLICT']);
    }
    expect(await snapshot()).toEqual(before);
  });

  it('a conflicting key in a batch with new entries refuses the whole batch: nothing of it is written', async () => {
    const card = await fundedCard(10_000n);
    await withTx(db.pool, (tx) => ledger.postBatch(tx, [{ idemKey: 'cb-old', kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: merchant, amountFen: 100n }] }]));
    const before = await snapshot();
    const newCardInBatch = newCard();
    const code = await refusal(withTx(db.pool, (tx) => ledger.postBatch(tx, [
      { idemKey: 'cb-new-1', kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: merchant, amountFen: 7n }] },
      { idemKey: 'cb-new-2', kind: 'PURSE_LOAD', businessDate: bd, lines: [{ debit: bank, credit: newCardInBatch, amountFen: 9n }] },
      { idemKey: 'cb-old', kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: merchant, amountFen: 999n }] },
      { idemKey: 'cb-new-3', kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: merchant2, amountFen: 3n }] },
    ])));
    expect(code).toBe('IDEMPOTENCY_CONFLICT');
    const r = await db.pool.query(`SELECT idem_key FROM ledger_entry WHERE idem_key LIKE 'cb-new-%'`);
    expect(r.rows).toEqual([]);
    // Nothing at all: no rows, no balance moved, not even the account the batch would have opened.
    expect(await snapshot()).toEqual(before);
    expect(await ledger.account(db.pool, newCardInBatch)).toBeUndefined();
    await expectVerifies();
  });

  it('5 concurrent identical submissions of a batch apply it exactly once', async () => {
    const card = await fundedCard(100_000n);
    const fresh = Array.from({ length: 5 }, () => newCard()); // accounts the batch itself opens
    const batch: EntryInput[] = Array.from({ length: 60 }, (_, i) => ({
      idemKey: `cc-${i}`, kind: 'PURSE_PURCHASE', businessDate: bd,
      lines: i % 3 === 0 ? [{ debit: bank, credit: fresh[i % 5], amountFen: 11n }] : [{ debit: card, credit: i % 2 ? merchant : merchant2, amountFen: BigInt(100 + i) }],
    }));
    const before = await snapshot();
    // Each submission as its own client process would make it: own Ledger, own transaction.
    const results = await Promise.all(Array.from({ length: 5 }, () => withTx(db.pool, (tx) => new Ledger().postBatch(tx, batch))));
    for (let i = 0; i < batch.length; i++) {
      const forEntry = results.map((r) => r[i]);
      expect(new Set(forEntry.map((r) => r.entryId)).size).toBe(1);
      expect(forEntry.filter((r) => !r.replayed)).toHaveLength(1);
    }
    const after = await snapshot();
    expect([after.entries - before.entries, after.postings - before.postings]).toEqual([60n, 60n]);
    const spent = batch.filter((e) => e.lines[0].debit === card).reduce((a, e) => a + e.lines[0].amountFen, 0n);
    expect((await ledger.account(db.pool, card))?.balanceFen).toBe(100_000n - spent);
    for (let k = 0; k < 5; k++) {
      const loads = batch.filter((e) => e.lines[0].credit === fresh[k]).length;
      expect((await ledger.account(db.pool, fresh[k]))?.balanceFen).toBe(11n * BigInt(loads));
    }
    await expectVerifies();
  });

  it('an honest retry of an entry whose metadata has an undefined field is a replay, not a conflict', async () => {
    const card = await fundedCard(1_000n);
    // What a caller builds from an optional field: `{ terminal, operator: input.operator }`.
    const entry: EntryInput = { idemKey: 'md-undef', kind: 'PURSE_PURCHASE', businessDate: bd, metadata: { terminal: 'T1', operator: undefined }, lines: [{ debit: card, credit: merchant, amountFen: 10n }] };
    const first = await withTx(db.pool, (tx) => ledger.postBatch(tx, [entry]));
    const before = await snapshot();
    // The very same object, retried after a timeout.
    const second = await withTx(db.pool, (tx) => ledger.postBatch(tx, [entry]));
    expect(second).toEqual([{ ...first[0], replayed: true }]);
    expect(await snapshot()).toEqual(before);
  });
});

describe('balanced entries', () => {
  it('unbalanced legs via linesFromLegs → ENTRY_UNBALANCED, and the transaction writes nothing', async () => {
    const card = await fundedCard(5_000n);
    const before = await snapshot();
    const code = await refusal(withTx(db.pool, async (tx) => {
      // A valid entry earlier in the same transaction must be rolled back with it.
      await ledger.postBatch(tx, [{ idemKey: 'ub-ok', kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: merchant, amountFen: 10n }] }]);
      const lines = linesFromLegs([
        { account: card, side: 'DEBIT', amountFen: 300n },
        { account: merchant, side: 'CREDIT', amountFen: 200n },
        { account: merchant2, side: 'CREDIT', amountFen: 99n },
      ]);
      return ledger.postBatch(tx, [{ idemKey: 'ub-bad', kind: 'PURSE_PURCHASE', businessDate: bd, lines }]);
    }));
    expect(code).toBe('ENTRY_UNBALANCED');
    expect(await snapshot()).toEqual(before);
    expect(() => linesFromLegs([])).toThrow(expect.objectContaining({ code: 'ENTRY_UNBALANCED' }));
    expect(() => linesFromLegs([{ account: card, side: 'DEBIT', amountFen: 5n }])).toThrow(expect.objectContaining({ code: 'ENTRY_UNBALANCED' }));
    expect(() => linesFromLegs([{ account: card, side: 'DEBIT', amountFen: 0n }, { account: merchant, side: 'CREDIT', amountFen: 0n }]))
      .toThrow(expect.objectContaining({ code: 'ENTRY_AMOUNT_INVALID' }));

    // Balanced legs become lines that move exactly the legs' amounts.
    const lines = linesFromLegs([
      { account: card, side: 'DEBIT', amountFen: 300n },
      { account: merchant, side: 'CREDIT', amountFen: 200n },
      { account: merchant2, side: 'CREDIT', amountFen: 100n },
    ]);
    const m1 = (await ledger.account(db.pool, merchant))?.balanceFen ?? 0n;
    const m2 = (await ledger.account(db.pool, merchant2))?.balanceFen ?? 0n;
    await withTx(db.pool, (tx) => ledger.postBatch(tx, [{ idemKey: 'ub-good', kind: 'PURSE_PURCHASE', businessDate: bd, lines }]));
    expect((await ledger.account(db.pool, card))?.balanceFen).toBe(4_700n);
    expect((await ledger.account(db.pool, merchant))?.balanceFen).toBe(m1 + 200n);
    expect((await ledger.account(db.pool, merchant2))?.balanceFen).toBe(m2 + 100n);
  });

  it('a zero or negative line amount is refused by the ledger (ENTRY_AMOUNT_INVALID) and nothing is written', async () => {
    const card = await fundedCard(100n);
    const before = await snapshot();
    for (const amountFen of [0n, -5n]) {
      expect(await refusal(withTx(db.pool, (tx) => ledger.postBatch(tx, [
        { idemKey: `za-ok-${amountFen}`, kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: merchant, amountFen: 1n }] },
        { idemKey: `za-${amountFen}`, kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: merchant, amountFen }] },
      ])))).toBe('ENTRY_AMOUNT_INVALID');
    }
    expect(await snapshot()).toEqual(before);
  });
});

describe('the database refuses what must never happen (raw SQL)', () => {
  let entryId: bigint;
  let card: string;
  beforeAll(async () => {
    card = await fundedCard(1_000n);
    const [r] = await withTx(db.pool, (tx) => ledger.postBatch(tx, [{ idemKey: 'raw-target', kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: merchant, amountFen: 40n }] }]));
    entryId = r.entryId;
  });

  it('UPDATE, DELETE and TRUNCATE of ledger_posting and ledger_entry are refused; the rows stay as they were', async () => {
    const before = await snapshot();
    const rowsBefore = await db.pool.query('SELECT * FROM ledger_posting WHERE entry_id = $1', [String(entryId)]);
    const entryBefore = await db.pool.query('SELECT * FROM ledger_entry WHERE id = $1', [String(entryId)]);
    const immutable = /ledger history is immutable/;
    await expectDbRefuses('UPDATE ledger_posting SET amount_fen = amount_fen + 1 WHERE entry_id = $1', [String(entryId)], immutable, 'P0001');
    await expectDbRefuses('DELETE FROM ledger_posting WHERE entry_id = $1', [String(entryId)], immutable, 'P0001');
    await expectDbRefuses('TRUNCATE ledger_posting', [], immutable, 'P0001');
    await expectDbRefuses(`UPDATE ledger_entry SET description = 'edited' WHERE id = $1`, [String(entryId)], immutable, 'P0001');
    await expectDbRefuses(`UPDATE ledger_entry SET business_date = '2020-01-01' WHERE id = $1`, [String(entryId)], immutable, 'P0001');
    await expectDbRefuses('DELETE FROM ledger_entry WHERE id = $1', [String(entryId)], immutable, 'P0001');
    await expectDbRefuses('TRUNCATE ledger_entry', [], immutable, 'P0001');
    await expectDbRefuses('TRUNCATE ledger_entry, ledger_posting', [], immutable, 'P0001');
    await expectDbRefuses('TRUNCATE ledger_hold_resolution', [], immutable, 'P0001');
    expect((await db.pool.query('SELECT * FROM ledger_posting WHERE entry_id = $1', [String(entryId)])).rows).toEqual(rowsBefore.rows);
    expect((await db.pool.query('SELECT * FROM ledger_entry WHERE id = $1', [String(entryId)])).rows).toEqual(entryBefore.rows);
    expect(await snapshot()).toEqual(before);
  });

  it('a direct change of an account balance is refused, also through the delta function', async () => {
    const before = await snapshot();
    const balances = /ledger balances change only through postings/;
    await expectDbRefuses('UPDATE ledger_account SET credits_posted_fen = credits_posted_fen + 100 WHERE code = $1', [card], balances, 'P0001');
    await expectDbRefuses('UPDATE ledger_account SET debits_posted_fen = 0 WHERE code = $1', [card], balances, 'P0001');
    await expectDbRefuses('UPDATE ledger_account SET debits_pending_fen = debits_pending_fen + 1 WHERE code = $1', [card], balances, 'P0001');
    await expectDbRefuses(`UPDATE ledger_account SET normal_side = 'DEBIT' WHERE code = $1`, [card], balances, 'P0001');
    await expectDbRefuses(
      `SELECT ledger_apply_deltas(ARRAY[id], ARRAY[0::bigint], ARRAY[100::bigint], ARRAY[0::bigint], ARRAY[0::bigint]) FROM ledger_account WHERE code = $1`,
      [card], balances, 'P0001');
    await expectDbRefuses('DELETE FROM ledger_account WHERE code = $1', [card], /never deleted/, 'P0001');
    expect(await snapshot()).toEqual(before);
  });

  it('an entry without lines is refused; a line of amount 0 is refused; a well-formed raw entry is accepted', async () => {
    const before = await snapshot();
    await expectDbRefuses(`INSERT INTO ledger_entry (idem_key, kind, business_date) VALUES ('raw-empty', 'ADJUSTMENT', '2026-11-28')`, [],
      /has no posting lines/, '23514');
    const ids = await db.pool.query<{ dr: bigint; cr: bigint }>(
      `SELECT (SELECT id FROM ledger_account WHERE code = $1) AS dr, (SELECT id FROM ledger_account WHERE code = $2) AS cr`, [card, merchant]);
    const { dr, cr } = ids.rows[0];
    const withLine = (key: string, amount: number) => db.pool.query(
      `WITH e AS (INSERT INTO ledger_entry (idem_key, kind, business_date) VALUES ($1, 'ADJUSTMENT', '2026-11-28') RETURNING id)
       INSERT INTO ledger_posting (entry_id, line_no, debit_account_id, credit_account_id, amount_fen) SELECT id, 0, $2, $3, $4 FROM e`,
      [key, String(dr), String(cr), amount]);
    const zero = await withLine('raw-zero', 0).then(() => undefined, (e: { code?: string; constraint?: string }) => e);
    expect(zero).toMatchObject({ code: '23514', constraint: 'ledger_posting_amount_fen_check' });
    const negative = await withLine('raw-negative', -3).then(() => undefined, (e: { code?: string; constraint?: string }) => e);
    expect(negative).toMatchObject({ code: '23514', constraint: 'ledger_posting_amount_fen_check' });
    expect(await snapshot()).toEqual(before);

    // Control: the same statement with a positive amount is accepted and moves the balances,
    // so the refusals above are the constraints' doing, not a malformed statement's.
    await withLine('raw-good', 3);
    const after = await snapshot();
    expect([after.entries - before.entries, after.postings - before.postings]).toEqual([1n, 1n]);
    expect((await ledger.account(db.pool, card))?.balanceFen).toBe(1_000n - 40n - 3n);
    await expectVerifies();
  });
});

describe('holds and reversals resolve exactly once', () => {
  const later = () => new Date(Date.now() + 3_600_000);
  const postOpts = (idemKey: string, now = new Date()) => ({ idemKey, businessDate: bd, actor: 'test', now });

  it('creating a hold twice with the same key is a replay; with other content, a conflict', async () => {
    const card = await fundedCard(1_000n);
    const h = { idemKey: `hc-${card}`, debit: card, credit: merchant, amountFen: 300n, kind: 'PURSE_PURCHASE', expiresAt: later() };
    const first = await withTx(db.pool, (tx) => ledger.createHold(tx, h));
    const before = await snapshot();
    expect(await withTx(db.pool, (tx) => ledger.createHold(tx, h))).toEqual({ holdId: first.holdId, replayed: true });
    expect(await refusal(withTx(db.pool, (tx) => ledger.createHold(tx, { ...h, amountFen: 301n })))).toBe('IDEMPOTENCY_CONFLICT');
    expect(await refusal(withTx(db.pool, (tx) => ledger.createHold(tx, { ...h, credit: merchant2 })))).toBe('IDEMPOTENCY_CONFLICT');
    expect(await snapshot()).toEqual(before);
    expect(await ledger.account(db.pool, card)).toMatchObject({ balanceFen: 1_000n, pendingDebitsFen: 300n, availableFen: 700n });
  });

  it('posting a hold twice: same key and amount is a replay; another key or amount is HOLD_ALREADY_RESOLVED', async () => {
    const card = await fundedCard(1_000n);
    const { holdId } = await withTx(db.pool, (tx) => ledger.createHold(tx, { idemKey: `hp-${card}`, debit: card, credit: merchant, amountFen: 300n, kind: 'PURSE_PURCHASE', expiresAt: later() }));
    const first = await withTx(db.pool, (tx) => ledger.postHold(tx, holdId, 250n, postOpts(`hp-post-${card}`)));
    expect(first.replayed).toBe(false);
    expect(await ledger.account(db.pool, card)).toMatchObject({ balanceFen: 750n, pendingDebitsFen: 0n, availableFen: 750n });
    const before = await snapshot();
    expect(await withTx(db.pool, (tx) => ledger.postHold(tx, holdId, 250n, postOpts(`hp-post-${card}`)))).toEqual({ ...first, replayed: true });
    expect(await refusal(withTx(db.pool, (tx) => ledger.postHold(tx, holdId, 250n, postOpts(`hp-other-${card}`))))).toBe('HOLD_ALREADY_RESOLVED');
    expect(await refusal(withTx(db.pool, (tx) => ledger.postHold(tx, holdId, 300n, postOpts(`hp-post-${card}`))))).toBe('HOLD_ALREADY_RESOLVED');
    expect(await refusal(withTx(db.pool, (tx) => ledger.voidHold(tx, holdId, 'test', new Date())))).toBe('HOLD_ALREADY_RESOLVED');
    expect(await snapshot()).toEqual(before);
    await expectVerifies();
  });

  it('a post key already used for another (identical) hold does not resolve the second hold without posting it', async () => {
    // Two identical holds on one purse (two bus fares of the same amount). The client posts the
    // second with the key it used for the first (a retry bug, or a key derived from card+amount).
    const card = await fundedCard(1_000n);
    const h = { debit: card, credit: merchant, amountFen: 100n, kind: 'PURSE_PURCHASE', expiresAt: later() };
    const h1 = await withTx(db.pool, (tx) => ledger.createHold(tx, { ...h, idemKey: `hk1-${card}` }));
    const h2 = await withTx(db.pool, (tx) => ledger.createHold(tx, { ...h, idemKey: `hk2-${card}` }));
    const p1 = await withTx(db.pool, (tx) => ledger.postHold(tx, h1.holdId, 100n, postOpts(`hk-post-${card}`)));
    const second = await withTx(db.pool, (tx) => ledger.postHold(tx, h2.holdId, 100n, postOpts(`hk-post-${card}`))).then(
      (r) => ({ ok: r }), (e: unknown) => ({ refused: e instanceof DomainError ? e.code : String(e) }));
    const state = await db.pool.query<{ outcome: string | null; entries: bigint }>(
      `SELECT r.outcome, (SELECT count(*) FROM ledger_entry e WHERE e.hold_id = h.id)::bigint AS entries
       FROM ledger_hold h LEFT JOIN ledger_hold_resolution r ON r.hold_id = h.id WHERE h.id = $1`, [String(h2.holdId)]);
    const acct = await ledger.account(db.pool, card);
    if ('ok' in second) {
      // Accepted: then hold 2 must really have been posted by its own entry, and the purse charged twice.
      expect(second.ok.entryId).not.toBe(p1.entryId);
      expect(state.rows[0]).toEqual({ outcome: 'POSTED', entries: 1n });
      expect(acct?.balanceFen).toBe(800n);
    } else {
      // Refused: then hold 2 is still pending, untouched.
      expect(state.rows[0]).toEqual({ outcome: null, entries: 0n });
      expect(acct).toMatchObject({ balanceFen: 900n, pendingDebitsFen: 100n });
    }
  });

  it('posting above the hold amount (or zero) → HOLD_AMOUNT_INVALID, nothing written, the hold stays postable', async () => {
    const card = await fundedCard(1_000n);
    const { holdId } = await withTx(db.pool, (tx) => ledger.createHold(tx, { idemKey: `ha-${card}`, debit: card, credit: merchant, amountFen: 300n, kind: 'PURSE_PURCHASE', expiresAt: later() }));
    const before = await snapshot();
    expect(await refusal(withTx(db.pool, (tx) => ledger.postHold(tx, holdId, 301n, postOpts(`ha-over-${card}`))))).toBe('HOLD_AMOUNT_INVALID');
    expect(await refusal(withTx(db.pool, (tx) => ledger.postHold(tx, holdId, 0n, postOpts(`ha-zero-${card}`))))).toBe('HOLD_AMOUNT_INVALID');
    expect(await snapshot()).toEqual(before);
    expect(await ledger.account(db.pool, card)).toMatchObject({ balanceFen: 1_000n, pendingDebitsFen: 300n });
    await withTx(db.pool, (tx) => ledger.postHold(tx, holdId, 300n, postOpts(`ha-full-${card}`)));
    expect(await ledger.account(db.pool, card)).toMatchObject({ balanceFen: 700n, pendingDebitsFen: 0n });
  });

  it('posting after expiry → HOLD_EXPIRED (nothing written); once expired by expireHolds → HOLD_ALREADY_RESOLVED', async () => {
    const card = await fundedCard(1_000n);
    const expiresAt = new Date(Date.UTC(2040, 0, 1));
    const { holdId } = await withTx(db.pool, (tx) => ledger.createHold(tx, { idemKey: `he-${card}`, debit: card, credit: merchant, amountFen: 300n, kind: 'PURSE_PURCHASE', expiresAt }));
    const before = await snapshot();
    expect(await refusal(withTx(db.pool, (tx) => ledger.postHold(tx, holdId, 300n, postOpts(`he-post-${card}`, expiresAt))))).toBe('HOLD_EXPIRED');
    expect(await refusal(withTx(db.pool, (tx) => ledger.postHold(tx, holdId, 100n, postOpts(`he-post-${card}`, new Date(expiresAt.getTime() + 1)))))).toBe('HOLD_EXPIRED');
    expect(await snapshot()).toEqual(before);
    expect(await ledger.account(db.pool, card)).toMatchObject({ balanceFen: 1_000n, pendingDebitsFen: 300n, availableFen: 700n });

    // expireHolds is global (other tests' holds may expire too), so look at this hold's resolution.
    const resolution = async () => (await db.pool.query<{ outcome: string; actor: string }>(
      'SELECT outcome, actor FROM ledger_hold_resolution WHERE hold_id = $1', [String(holdId)])).rows;
    await withTx(db.pool, (tx) => ledger.expireHolds(tx, new Date(expiresAt.getTime() - 1)));
    expect(await resolution()).toEqual([]);
    expect(await withTx(db.pool, (tx) => ledger.expireHolds(tx, expiresAt))).toBeGreaterThanOrEqual(1);
    expect(await resolution()).toEqual([{ outcome: 'EXPIRED', actor: 'system:expiry' }]);
    expect(await ledger.account(db.pool, card)).toMatchObject({ balanceFen: 1_000n, pendingDebitsFen: 0n, availableFen: 1_000n });
    const mid = await snapshot();
    expect(await refusal(withTx(db.pool, (tx) => ledger.postHold(tx, holdId, 300n, postOpts(`he-post-${card}`, new Date(2000, 0, 1)))))).toBe('HOLD_ALREADY_RESOLVED');
    expect(await refusal(withTx(db.pool, (tx) => ledger.voidHold(tx, holdId, 'test', new Date())))).toBe('HOLD_ALREADY_RESOLVED');
    expect(await withTx(db.pool, (tx) => ledger.expireHolds(tx, expiresAt))).toBe(0); // nothing left to expire at that instant
    expect(await snapshot()).toEqual(mid);
    await expectVerifies();
  });

  it('a hold that expires while it is being posted ends posted or expired, never both', async () => {
    // The expiry job (its clock at the expiry instant) and a post (its clock a second earlier)
    // race: the job inserts the EXPIRED resolution first; the post has already read the hold as
    // open and waits on that row.
    const card = await fundedCard(1_000n);
    const expiresAt = new Date(Date.UTC(2041, 0, 1));
    const { holdId } = await withTx(db.pool, (tx) => ledger.createHold(tx, { idemKey: `hr-${card}`, debit: card, credit: merchant, amountFen: 300n, kind: 'PURSE_PURCHASE', expiresAt }));
    const job = new pg.Client({ connectionString: db.url, application_name: 'ledger-test-expiry-job' });
    await job.connect();
    let post: Promise<{ code: string }>;
    try {
      await job.query('BEGIN');
      expect(await ledger.expireHolds(job, expiresAt)).toBeGreaterThanOrEqual(1);
      post = withTx(db.pool, (tx) => ledger.postHold(tx, holdId, 300n, postOpts(`hr-post-${card}`, new Date(expiresAt.getTime() - 1000))))
        .then(() => ({ code: 'OK' }), (e: unknown) => ({ code: e instanceof DomainError ? e.code : String(e) }));
      // Wait until the post is blocked on the job's uncommitted resolution.
      await untilWaitingOnLock(db.pool, '%ledger_hold_resolution%', 5_000, 'the post never waited on the expiry');
      await job.query('COMMIT');
    } finally {
      await job.end();
    }
    const result = await post;
    const state = await db.pool.query<{ outcome: string; entries: bigint }>(
      `SELECT r.outcome, (SELECT count(*) FROM ledger_entry e WHERE e.hold_id = r.hold_id)::bigint AS entries FROM ledger_hold_resolution r WHERE r.hold_id = $1`, [String(holdId)]);
    const acct = await ledger.account(db.pool, card);
    if (result.code === 'OK') {
      expect(state.rows).toEqual([{ outcome: 'POSTED', entries: 1n }]);
      expect(acct?.balanceFen).toBe(700n);
    } else {
      expect(result.code).toMatch(/^HOLD_(EXPIRED|ALREADY_RESOLVED)$/);
      expect(state.rows).toEqual([{ outcome: 'EXPIRED', entries: 0n }]);
      expect(acct).toMatchObject({ balanceFen: 1_000n, pendingDebitsFen: 0n });
    }
  });

  it('reversing an entry twice → ENTRY_ALREADY_REVERSED; the same reversal key is a replay', async () => {
    const card = await fundedCard(1_000n);
    const [e] = await withTx(db.pool, (tx) => ledger.postBatch(tx, [{ idemKey: `rv-${card}`, kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: merchant, amountFen: 120n }, { debit: card, credit: merchant2, amountFen: 30n }] }]));
    expect((await ledger.account(db.pool, card))?.balanceFen).toBe(850n);
    const rev = await withTx(db.pool, (tx) => ledger.reverse(tx, e.entryId, `rv-rev-${card}`, bd));
    expect(rev.replayed).toBe(false);
    expect((await ledger.account(db.pool, card))?.balanceFen).toBe(1_000n);
    const stored = await db.pool.query(`SELECT kind, reverses_entry_id FROM ledger_entry WHERE id = $1`, [String(rev.entryId)]);
    expect(stored.rows).toEqual([{ kind: 'REVERSAL', reverses_entry_id: e.entryId }]);
    const before = await snapshot();
    expect(await withTx(db.pool, (tx) => ledger.reverse(tx, e.entryId, `rv-rev-${card}`, bd))).toEqual({ ...rev, replayed: true });
    expect(await refusal(withTx(db.pool, (tx) => ledger.reverse(tx, e.entryId, `rv-rev2-${card}`, bd)))).toBe('ENTRY_ALREADY_REVERSED');
    expect(await refusal(withTx(db.pool, (tx) => ledger.reverse(tx, 987_654_321n, `rv-none-${card}`, bd)))).toBe('ENTRY_NOT_FOUND');
    expect(await snapshot()).toEqual(before);
    expect((await ledger.account(db.pool, card))?.balanceFen).toBe(1_000n);
    await expectVerifies();
  });
});

describe('a refused transaction leaves no trace', () => {
  it('a batch refused for insufficient funds that opened a new account does not break later postings to that account', async () => {
    // Same Ledger instance throughout, as in a long-running server process.
    const server = new Ledger();
    const card = newCard(); // empty, not yet opened
    const shop = 'merchant:FIRSTSALE:payable'; // not yet opened
    expect(await refusal(withTx(db.pool, (tx) => server.postBatch(tx, [
      { idemKey: 'nt-spend', kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: shop, amountFen: 50n }] }])))).toBe('INSUFFICIENT_FUNDS');
    // The card is then loaded, and the same sale goes through.
    await withTx(db.pool, (tx) => server.postBatch(tx, [
      { idemKey: 'nt-load', kind: 'PURSE_LOAD', businessDate: bd, lines: [{ debit: bank, credit: card, amountFen: 100n }] },
      { idemKey: 'nt-spend', kind: 'PURSE_PURCHASE', businessDate: bd, lines: [{ debit: card, credit: shop, amountFen: 50n }] },
    ]));
    expect((await server.account(db.pool, card))?.balanceFen).toBe(50n);
    expect((await server.account(db.pool, shop))?.balanceFen).toBe(50n);
    await expectVerifies();
  });
});
