/**
 * Model-based property test of the ledger: random sequences of postings (some overdrawing a
 * no-negative purse), holds (create, post in full or in part, void, expire), reversals and
 * idempotent replays, run against the real database and against an in-memory model. After
 * every command the outcome (success or the exact refusal) and the rows written must match the
 * model; after every run the ledger must verify and every balance must equal the model's.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../adapters/postgres/db.ts';
import { DomainError } from '../engine/errors.ts';
import { Ledger, accountSpecFor, type EntryInput, type LineInput, type NormalSide } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';

let db: TestDb;
beforeAll(async () => { db = await freshDatabase(4); });
afterAll(async () => { await db.drop(); });

const business_date = '2026-11-28';
const t0 = Date.UTC(2030, 0, 1);
const minute = 60_000;
const at = (minutes: number) => new Date(t0 + minutes * minute);

// ---------------------------------------------------------------- model

interface ModelAccount { normalSide: NormalSide; noNegative: boolean; dr: bigint; cr: bigint; drPend: bigint; crPend: bigint }
interface ModelHold { holdId: bigint; idemKey: string; debit: string; credit: string; amountFen: bigint; kind: string; expiresMin: number; outcome: null | 'POSTED' | 'VOIDED' | 'EXPIRED'; postedAmountFen: bigint; postKey?: string; postEntryId?: bigint }
/** An entry as posted; a hold's posting entry carries its hold id (part of what a replay must repeat). */
interface ModelEntry { entryId: bigint; input: EntryInput & { holdId?: bigint }; reversed: boolean }

/** One model for the whole file (expireHolds is global, so holds of earlier runs matter too). */
const accounts = new Map<string, ModelAccount>();
const holds: ModelHold[] = [];

function acct(code: string): ModelAccount {
  let a = accounts.get(code);
  if (!a) {
    const s = accountSpecFor(code);
    a = { normalSide: s.normalSide, noNegative: s.noNegative, dr: 0n, cr: 0n, drPend: 0n, crPend: 0n };
    accounts.set(code, a);
  }
  return a;
}

/** What the no-negative rule protects: the balance less pending amounts that would reduce it. */
function available(a: ModelAccount): bigint {
  return a.normalSide === 'CREDIT' ? a.cr - a.dr - a.drPend : a.dr - a.cr - a.crPend;
}

type Delta = Map<string, { dr: bigint; cr: bigint; drPend: bigint; crPend: bigint }>;
function addDelta(d: Delta, code: string, f: 'dr' | 'cr' | 'drPend' | 'crPend', v: bigint): void {
  const x = d.get(code) ?? { dr: 0n, cr: 0n, drPend: 0n, crPend: 0n };
  x[f] += v;
  d.set(code, x);
}
function linesDelta(lines: LineInput[], d: Delta = new Map()): Delta {
  for (const l of lines) {
    addDelta(d, l.debit, 'dr', l.amountFen);
    addDelta(d, l.credit, 'cr', l.amountFen);
  }
  return d;
}
/** Would applying the delta take a no-negative account it touches below zero? */
function overdraws(d: Delta): boolean {
  for (const [code, x] of d) {
    const a = acct(code);
    const after = { ...a, dr: a.dr + x.dr, cr: a.cr + x.cr, drPend: a.drPend + x.drPend, crPend: a.crPend + x.crPend };
    if (a.noNegative && available(after) < 0n) return true;
  }
  return false;
}
function applyDelta(d: Delta): void {
  for (const [code, x] of d) {
    const a = acct(code);
    a.dr += x.dr; a.cr += x.cr; a.drPend += x.drPend; a.crPend += x.crPend;
  }
}
function releaseHold(h: ModelHold, outcome: 'POSTED' | 'VOIDED' | 'EXPIRED'): void {
  h.outcome = outcome;
  acct(h.debit).drPend -= h.amountFen;
  acct(h.credit).crPend -= h.amountFen;
}

// ---------------------------------------------------------------- commands

const lineArb = fc.record({ dr: fc.nat(20), cr: fc.nat(20), amt: fc.integer({ min: 1, max: 2_500 }) });
const commandArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('post' as const), entries: fc.array(fc.array(lineArb, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('hold' as const), dr: fc.nat(20), cr: fc.nat(20), amt: fc.integer({ min: 1, max: 2_500 }), expiresMin: fc.integer({ min: 1, max: 10 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('postHold' as const), h: fc.nat(), mode: fc.constantFrom('full', 'partial', 'over', 'zero', 'replay'), part: fc.nat(), nowMin: fc.integer({ min: 0, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('void' as const), h: fc.nat(), nowMin: fc.integer({ min: 0, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('expire' as const), nowMin: fc.integer({ min: 0, max: 12 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('reverse' as const), e: fc.nat(), sameKeyAsLast: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('replay' as const), e: fc.nat(), tamper: fc.constantFrom('none', 'amount', 'kind', 'account') }) },
);
type Command = typeof commandArb extends fc.Arbitrary<infer C> ? C : never;

const runArb = fc.record({
  // Initial purse loads (0 = none: an empty purse).
  funding: fc.array(fc.integer({ min: 0, max: 4_000 }), { minLength: 3, maxLength: 3 }),
  commands: fc.array(commandArb, { minLength: 5, maxLength: 30 }),
});

let runNo = 0;

async function counts(): Promise<{ entries: bigint; postings: bigint; holds: bigint; resolutions: bigint }> {
  const r = await db.pool.query<{ entries: bigint; postings: bigint; holds: bigint; resolutions: bigint }>(
    `SELECT (SELECT count(*) FROM ledger_entry)::bigint AS entries, (SELECT count(*) FROM ledger_posting)::bigint AS postings,
            (SELECT count(*) FROM ledger_hold)::bigint AS holds, (SELECT count(*) FROM ledger_hold_resolution)::bigint AS resolutions`);
  return r.rows[0];
}

/** Run fn; return the DomainError code it refused with, or 'OK' (any other error propagates). */
async function outcome<T>(fn: () => Promise<T>): Promise<{ code: string; value?: T }> {
  try {
    return { code: 'OK', value: await fn() };
  } catch (e) {
    if (e instanceof DomainError) return { code: e.code };
    throw e;
  }
}

/**
 * Reload the model's accounts and hold outcomes from the database. The end of every run compares
 * the two, so this changes nothing after a passing run; after a failing one it keeps the runs
 * fast-check replays while shrinking from inheriting a model that diverged mid-run.
 */
async function resyncModel(): Promise<void> {
  const r = await db.pool.query<{ code: string; debits_posted_fen: bigint; credits_posted_fen: bigint; debits_pending_fen: bigint; credits_pending_fen: bigint }>(
    'SELECT code, debits_posted_fen, credits_posted_fen, debits_pending_fen, credits_pending_fen FROM ledger_account');
  for (const x of r.rows) {
    const a = acct(x.code);
    a.dr = x.debits_posted_fen; a.cr = x.credits_posted_fen; a.drPend = x.debits_pending_fen; a.crPend = x.credits_pending_fen;
  }
  const out = await holdOutcomes();
  for (const h of holds) h.outcome = out.get(h.holdId) ?? null;
}

async function holdOutcomes(): Promise<Map<bigint, ModelHold['outcome']>> {
  const r = await db.pool.query<{ hold_id: bigint; outcome: ModelHold['outcome'] }>('SELECT hold_id, outcome FROM ledger_hold_resolution');
  return new Map(r.rows.map((x) => [x.hold_id, x.outcome]));
}

async function checkAllBalances(ledger: Ledger): Promise<void> {
  const r = await db.pool.query<{ code: string; debits_posted_fen: bigint; credits_posted_fen: bigint; debits_pending_fen: bigint; credits_pending_fen: bigint }>(
    'SELECT code, debits_posted_fen, credits_posted_fen, debits_pending_fen, credits_pending_fen FROM ledger_account');
  const stored = new Map(r.rows.map((x) => [x.code, x]));
  for (const [code, a] of accounts) {
    const s = stored.get(code);
    expect(s, code).toBeDefined();
    expect({ code, dr: s?.debits_posted_fen, cr: s?.credits_posted_fen, drPend: s?.debits_pending_fen, crPend: s?.credits_pending_fen })
      .toEqual({ code, dr: a.dr, cr: a.cr, drPend: a.drPend, crPend: a.crPend });
  }
  // And through the public view, for the accounts of the chart's kinds.
  for (const [code, a] of accounts) {
    const v = await ledger.account(db.pool, code);
    expect(v?.balanceFen, code).toBe(a.normalSide === 'CREDIT' ? a.cr - a.dr : a.dr - a.cr);
    expect(v?.availableFen, code).toBe(available(a));
    if (a.noNegative) {
      expect(v?.availableFen, code).toBeGreaterThanOrEqual(0n);
      expect(v?.balanceFen, code).toBeGreaterThanOrEqual(0n);
    }
  }
  // Every hold's resolution is the model's.
  const out = await holdOutcomes();
  expect(holds.map((h) => [h.holdId, out.get(h.holdId) ?? null])).toEqual(holds.map((h) => [h.holdId, h.outcome]));
}

describe('ledger model-based property', () => {
  it('random postings, holds, expiries, reversals and replays keep the ledger equal to the model and verifiable', async () => {
    let commandsRun = 0;
    const refusals = new Map<string, number>();
    await fc.assert(fc.asyncProperty(runArb, async ({ funding, commands }) => {
      const run = ++runNo;
      await resyncModel();
      const r6 = String(run).padStart(6, '0');
      const codes = [
        `card:6217${r6}000001:purse`, `card:6217${r6}000002:purse`, `card:6217${r6}0000003:purse`,
        `merchant:R${r6}M1:payable`, `merchant:R${r6}M2:payable`,
        `bank:1021${String(run).padStart(8, '0')}:clearing`, 'centre:suspense',
      ];
      const [bank] = [codes[5]];
      // A fresh Ledger per run (its account cache starts empty), with every account opened up front.
      const ledger = new Ledger();
      await withTx(db.pool, (tx) => ledger.accountIdsFor(tx, codes));
      for (const c of codes) acct(c);
      const entries: ModelEntry[] = [];
      const runHolds: ModelHold[] = [];
      let seq = 0;
      const key = (what: string) => `r${run}-${what}${++seq}`;
      let lastReversalKey: string | undefined;

      const loads = funding.map((f, i) => ({ f, i })).filter((x) => x.f > 0).map(({ f, i }) => ({
        idemKey: key('fund'), kind: 'PURSE_LOAD', businessDate: business_date,
        lines: [{ debit: bank, credit: codes[i], amountFen: BigInt(f) }],
      }));
      if (loads.length > 0) {
        const res = await withTx(db.pool, (tx) => ledger.postBatch(tx, loads));
        applyDelta(linesDelta(loads.flatMap((e) => e.lines)));
        res.forEach((r, i) => entries.push({ entryId: r.entryId, input: loads[i], reversed: false }));
      }

      const pick = (i: number) => codes[i % codes.length];
      const twoAccounts = (dr: number, cr: number): [string, string] => {
        const d = pick(dr);
        let c = pick(cr);
        if (c === d) c = pick(cr + 1);
        return [d, c];
      };

      for (const cmd of commands as Command[]) {
        commandsRun++;
        const before = await counts();
        const expectDelta = { entries: 0n, postings: 0n, holds: 0n, resolutions: 0n };
        let expected: string;
        let got: { code: string; value?: unknown };
        switch (cmd.t) {
          case 'post': {
            const batch: EntryInput[] = cmd.entries.map((ls) => ({
              idemKey: key('e'), kind: 'PURSE_PURCHASE', businessDate: business_date,
              lines: ls.map((l) => { const [debit, credit] = twoAccounts(l.dr, l.cr); return { debit, credit, amountFen: BigInt(l.amt) }; }),
            }));
            const d = linesDelta(batch.flatMap((e) => e.lines));
            expected = overdraws(d) ? 'INSUFFICIENT_FUNDS' : 'OK';
            got = await outcome(() => withTx(db.pool, (tx) => ledger.postBatch(tx, batch)));
            if (got.code === 'OK' && expected === 'OK') {
              applyDelta(d);
              const res = got.value as { entryId: bigint; replayed: boolean }[];
              res.forEach((r, i) => { expect(r.replayed).toBe(false); entries.push({ entryId: r.entryId, input: batch[i], reversed: false }); });
              expectDelta.entries = BigInt(batch.length);
              expectDelta.postings = BigInt(batch.reduce((a, e) => a + e.lines.length, 0));
            }
            break;
          }
          case 'hold': {
            const [debit, credit] = twoAccounts(cmd.dr, cmd.cr);
            const amountFen = BigInt(cmd.amt);
            const d: Delta = new Map();
            addDelta(d, debit, 'drPend', amountFen);
            addDelta(d, credit, 'crPend', amountFen);
            expected = overdraws(d) ? 'INSUFFICIENT_FUNDS' : 'OK';
            const idemKey = key('h');
            got = await outcome(() => withTx(db.pool, (tx) => ledger.createHold(tx, { idemKey, debit, credit, amountFen, kind: 'PURSE_PURCHASE', expiresAt: at(cmd.expiresMin) })));
            if (got.code === 'OK' && expected === 'OK') {
              const v = got.value as { holdId: bigint; replayed: boolean };
              expect(v.replayed).toBe(false);
              applyDelta(d);
              const h: ModelHold = { holdId: v.holdId, idemKey, debit, credit, amountFen, kind: 'PURSE_PURCHASE', expiresMin: cmd.expiresMin, outcome: null, postedAmountFen: 0n };
              holds.push(h);
              runHolds.push(h);
              expectDelta.holds = 1n;
            }
            break;
          }
          case 'postHold': {
            if (runHolds.length === 0) { commandsRun--; continue; }
            const h = runHolds[cmd.h % runHolds.length];
            let amountFen = h.amountFen;
            if (cmd.mode === 'partial') amountFen = 1n + (BigInt(cmd.part) % h.amountFen);
            if (cmd.mode === 'over') amountFen = h.amountFen + 1n + BigInt(cmd.part % 100);
            if (cmd.mode === 'zero') amountFen = 0n;
            if (cmd.mode === 'replay' && h.outcome === 'POSTED') amountFen = h.postedAmountFen;
            const idemKey = cmd.mode === 'replay' && h.postKey ? h.postKey : key('p');
            let replay = false;
            if (h.outcome === 'POSTED') {
              if (amountFen === h.postedAmountFen && idemKey === h.postKey) { expected = 'OK'; replay = true; }
              else expected = 'HOLD_ALREADY_RESOLVED';
            } else if (h.outcome !== null) expected = 'HOLD_ALREADY_RESOLVED';
            else if (h.expiresMin <= cmd.nowMin) expected = 'HOLD_EXPIRED';
            else if (amountFen <= 0n || amountFen > h.amountFen) expected = 'HOLD_AMOUNT_INVALID';
            else expected = 'OK';
            const lines = [{ debit: h.debit, credit: h.credit, amountFen }];
            if (expected === 'OK' && !replay) {
              // Releasing the hold and posting its amount never overdraws: the hold reserved it.
              const d: Delta = new Map();
              addDelta(d, h.debit, 'drPend', -h.amountFen);
              addDelta(d, h.credit, 'crPend', -h.amountFen);
              linesDelta(lines, d);
              expect(overdraws(d)).toBe(false);
            }
            got = await outcome(() => withTx(db.pool, (tx) => ledger.postHold(tx, h.holdId, amountFen, { idemKey, businessDate: business_date, actor: 'test', now: at(cmd.nowMin) })));
            if (got.code === 'OK' && expected === 'OK') {
              const v = got.value as { entryId: bigint; replayed: boolean };
              if (replay) {
                expect(v).toEqual({ idemKey, entryId: h.postEntryId, replayed: true });
              } else {
                expect(v.replayed).toBe(false);
                releaseHold(h, 'POSTED');
                h.postedAmountFen = amountFen;
                h.postKey = idemKey;
                h.postEntryId = v.entryId;
                applyDelta(linesDelta(lines));
                entries.push({ entryId: v.entryId, input: { idemKey, kind: h.kind, businessDate: business_date, holdId: h.holdId, lines }, reversed: false });
                expectDelta.entries = 1n; expectDelta.postings = 1n; expectDelta.resolutions = 1n;
              }
            }
            break;
          }
          case 'void': {
            if (runHolds.length === 0) { commandsRun--; continue; }
            const h = runHolds[cmd.h % runHolds.length];
            expected = h.outcome === null || h.outcome === 'VOIDED' ? 'OK' : 'HOLD_ALREADY_RESOLVED';
            got = await outcome(() => withTx(db.pool, (tx) => ledger.voidHold(tx, h.holdId, 'test', at(cmd.nowMin))));
            if (got.code === 'OK' && h.outcome === null) {
              releaseHold(h, 'VOIDED');
              expectDelta.resolutions = 1n;
            }
            break;
          }
          case 'expire': {
            const due = holds.filter((h) => h.outcome === null && h.expiresMin <= cmd.nowMin);
            expected = 'OK';
            got = await outcome(() => withTx(db.pool, (tx) => ledger.expireHolds(tx, at(cmd.nowMin))));
            if (got.code === 'OK') {
              expect(got.value).toBe(due.length);
              for (const h of due) releaseHold(h, 'EXPIRED');
              expectDelta.resolutions = BigInt(due.length);
            }
            break;
          }
          case 'reverse': {
            if (entries.length === 0) { commandsRun--; continue; }
            const target = entries[cmd.e % entries.length];
            // Sometimes retry with the key of the last reversal (a replay only if it reversed this entry).
            const idemKey = cmd.sameKeyAsLast && lastReversalKey ? lastReversalKey : key('rev');
            const lines = target.input.lines.map((l) => ({ debit: l.credit, credit: l.debit, amountFen: l.amountFen }));
            const input: EntryInput = { idemKey, kind: 'REVERSAL', businessDate: business_date, reversesEntryId: target.entryId, lines };
            const prior = entries.find((e) => e.input.idemKey === idemKey);
            let replayOf: ModelEntry | undefined;
            if (prior) {
              const same = prior.input.reversesEntryId === target.entryId;
              expected = same ? 'OK' : 'IDEMPOTENCY_CONFLICT';
              if (same) replayOf = prior;
            } else if (target.reversed) expected = 'ENTRY_ALREADY_REVERSED';
            else expected = overdraws(linesDelta(lines)) ? 'INSUFFICIENT_FUNDS' : 'OK';
            got = await outcome(() => withTx(db.pool, (tx) => ledger.reverse(tx, target.entryId, idemKey, business_date)));
            if (got.code === 'OK' && expected === 'OK') {
              const v = got.value as { entryId: bigint; replayed: boolean };
              if (replayOf) {
                expect(v).toEqual({ idemKey, entryId: replayOf.entryId, replayed: true });
              } else {
                expect(v.replayed).toBe(false);
                applyDelta(linesDelta(lines));
                target.reversed = true;
                entries.push({ entryId: v.entryId, input, reversed: false });
                lastReversalKey = idemKey;
                expectDelta.entries = 1n; expectDelta.postings = BigInt(lines.length);
              }
            }
            break;
          }
          case 'replay': {
            if (entries.length === 0) { commandsRun--; continue; }
            const target = entries[cmd.e % entries.length];
            const input = structuredClone(target.input);
            if (cmd.tamper === 'amount') input.lines[0].amountFen += 1n;
            if (cmd.tamper === 'kind') input.kind = input.kind === 'ADJUSTMENT' ? 'PURSE_PURCHASE' : 'ADJUSTMENT';
            if (cmd.tamper === 'account') {
              const l = input.lines[0];
              const other = codes.find((c) => c !== l.debit && c !== l.credit) as string;
              l.credit = other;
            }
            expected = cmd.tamper === 'none' ? 'OK' : 'IDEMPOTENCY_CONFLICT';
            // A replay batch also carries a fresh entry: on a conflict it must not be written either.
            const fresh: EntryInput = { idemKey: key('x'), kind: 'ADJUSTMENT', businessDate: business_date, lines: [{ debit: 'centre:suspense', credit: bank, amountFen: 1n }] };
            got = await outcome(() => withTx(db.pool, (tx) => ledger.postBatch(tx, [input, fresh])));
            if (got.code === 'OK' && expected === 'OK') {
              const v = got.value as { entryId: bigint; replayed: boolean }[];
              expect(v[0]).toEqual({ idemKey: input.idemKey, entryId: target.entryId, replayed: true });
              expect(v[1].replayed).toBe(false);
              applyDelta(linesDelta(fresh.lines));
              entries.push({ entryId: v[1].entryId, input: fresh, reversed: false });
              expectDelta.entries = 1n; expectDelta.postings = 1n;
            }
            break;
          }
        }
        expect({ cmd: cmd.t, code: got.code }).toEqual({ cmd: cmd.t, code: expected });
        if (expected !== 'OK') refusals.set(expected, (refusals.get(expected) ?? 0) + 1);
        // Exactly the rows the model expects were written: none at all for a refusal.
        const after = await counts();
        expect({
          entries: after.entries - before.entries, postings: after.postings - before.postings,
          holds: after.holds - before.holds, resolutions: after.resolutions - before.resolutions,
        }).toEqual(expectDelta);
      }

      const v = await ledger.verify(db.pool);
      expect(v.mismatches).toEqual([]);
      expect(v.negativeAccounts).toEqual([]);
      expect(v.trialBalance.debitsFen).toBe(v.trialBalance.creditsFen);
      expect(v.trialBalance.debitsPendingFen).toBe(v.trialBalance.creditsPendingFen);
      expect(v.ok).toBe(true);
      await checkAllBalances(ledger);
    }), { numRuns: 50 });
    // The generator really exercised the refusals (guards against a vacuous run).
    console.log(`${runNo} runs, ${commandsRun} commands; refusals: ${JSON.stringify(Object.fromEntries(refusals))}`);
    expect(refusals.get('INSUFFICIENT_FUNDS') ?? 0).toBeGreaterThan(0);
    expect(refusals.get('IDEMPOTENCY_CONFLICT') ?? 0).toBeGreaterThan(0);
    expect(commandsRun).toBeGreaterThan(250);
  }, 120_000);
});
