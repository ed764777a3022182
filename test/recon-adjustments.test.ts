/**
 * Maker-checker adjustments: a balanced entry proposed by one finance user against an exception
 * posts only when a different finance user approves it, exactly once even when two approve at
 * the same moment; a rejection posts nothing; every step leaves an exception event and an audit
 * record, and the ledger still verifies.
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAudit, verifyAuditChain } from '../adapters/audit/index.ts';
import { buildApp } from '../adapters/http/app.ts';
import type { AppDeps } from '../adapters/http/context.ts';
import {
  approveAdjustment, checkAdjustmentLegs, getAdjustment, listAdjustments, proposeAdjustment, rejectAdjustment, type AdjustmentLeg,
} from '../adapters/recon/adjustments.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testDeps } from './support/deps.ts';
import { bearer, errorBody, mintKey } from './support/http.ts';
import { banks, before_cutoff, merchants, openCycle, seedReference, test_date } from './support/clearing-fixtures.ts';

let db: TestDb;
let app: FastifyInstance;
let deps: AppDeps;
const keys: Record<string, { keyId: string; token: string }> = {};
let exceptionSeq = 0;

const merchant = merchants[1].id;
const bank = banks[1];
const legs = (amount: bigint): AdjustmentLeg[] => [
  { account: 'centre:suspense', side: 'DEBIT', amountFen: amount },
  { account: `merchant:${merchant}:payable`, side: 'CREDIT', amountFen: amount },
];
const body = (exceptionId: bigint, amount: string, memo = 'short-paid tap batch') => ({
  exception_id: `exc_${exceptionId}`, memo,
  lines: [{ account: 'centre:suspense', side: 'DEBIT', amount_fen: amount }, { account: `merchant:${merchant}:payable`, side: 'CREDIT', amount_fen: amount }],
});

async function newException(type = 'OPERATOR_TOTAL_MISMATCH'): Promise<bigint> {
  exceptionSeq += 1;
  const r = await db.pool.query<{ id: bigint }>(
    `INSERT INTO recon_exception (type, source_key, cycle_id, business_date, operator_id, engine_amount_fen, other_amount_fen, opened_at)
     VALUES ($1, $2, 'CYC20261128', $3, 'MT1', 1000, 1250, $4) RETURNING id`,
    [type, `test:${exceptionSeq}`, test_date, before_cutoff]);
  return r.rows[0].id;
}

async function entriesOfAdjustment(id: string): Promise<{ id: bigint; kind: string; business_date: string }[]> {
  return (await db.pool.query<{ id: bigint; kind: string; business_date: string }>(`SELECT id, kind, business_date FROM ledger_entry WHERE idem_key = $1`, [`adj:${id}`])).rows;
}

async function balance(code: string): Promise<bigint> {
  return (await deps.ledger.account(db.pool, code))?.balanceFen ?? 0n;
}

const actor = (name: string) => ({ keyId: keys[name].keyId, role: 'finance' });

beforeAll(async () => {
  db = await freshDatabase(8);
  await seedReference(db.pool);
  deps = testDeps(db.pool, { now: () => before_cutoff });
  await openCycle(db.pool, before_cutoff);
  app = await buildApp(deps, false);
  await app.ready();
  for (const [name, role, scope] of [['a', 'finance', null], ['b', 'finance', null], ['c', 'finance', null], ['auditor', 'auditor', null],
    ['merchant', 'merchant', merchant], ['bank', 'bank', bank], ['admin', 'admin', null]] as const) {
    keys[name] = await mintKey(db.pool, role, scope);
  }
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('the balance rule', () => {
  it('accepts exactly the sets of legs whose debits equal their credits (and are not zero)', () => {
    const accounts = ['centre:suspense', 'centre:fees', 'centre:writeoff', `merchant:${merchant}:payable`, `bank:${bank}:clearing`, 'centre:settlement'];
    fc.assert(fc.property(
      fc.uniqueArray(fc.record({ account: fc.constantFrom(...accounts), side: fc.constantFrom('DEBIT' as const, 'CREDIT' as const), amountFen: fc.bigInt({ min: 1n, max: 10_000n }) }),
        { minLength: 2, maxLength: 6, selector: (l) => l.account }),
      (ls) => {
        const dr = ls.filter((l) => l.side === 'DEBIT').reduce((a, l) => a + l.amountFen, 0n);
        const cr = ls.filter((l) => l.side === 'CREDIT').reduce((a, l) => a + l.amountFen, 0n);
        if (dr === cr && dr > 0n) expect(checkAdjustmentLegs(ls)).toBe(dr);
        else expect(() => checkAdjustmentLegs(ls)).toThrow(expect.objectContaining({ code: 'ADJUSTMENT_UNBALANCED' }));
      }), { numRuns: 300 });
  });

  it('refuses a repeated account, a non-positive amount and an account outside the chart', () => {
    expect(() => checkAdjustmentLegs([...legs(5n), { account: 'centre:suspense', side: 'CREDIT', amountFen: 1n }]))
      .toThrow(expect.objectContaining({ code: 'ADJUSTMENT_ACCOUNT_REPEATED' }));
    expect(() => checkAdjustmentLegs(legs(0n))).toThrow(expect.objectContaining({ code: 'ADJUSTMENT_AMOUNT_INVALID' }));
    expect(() => checkAdjustmentLegs([{ account: 'centre:petty-cash', side: 'DEBIT', amountFen: 5n }, legs(5n)[1]]))
      .toThrow(expect.objectContaining({ code: 'ACCOUNT_CODE_INVALID' }));
  });
});

describe('proposing', () => {
  it('refuses unbalanced, unknown and misshapen entries over HTTP, writing nothing', async () => {
    const ex = await newException();
    const post = (payload: Record<string, unknown>) => app.inject({ method: 'POST', url: '/v1/adjustments', headers: bearer(keys.a.token), payload });
    const unbalanced = await post({ ...body(ex, '100'), lines: [{ account: 'centre:suspense', side: 'DEBIT', amount_fen: '100' }, { account: `merchant:${merchant}:payable`, side: 'CREDIT', amount_fen: '99' }] });
    expect(unbalanced.statusCode).toBe(422);
    expect(errorBody(unbalanced).code).toBe('ADJUSTMENT_UNBALANCED');
    const unregistered = await post({ ...body(ex, '100'), lines: [{ account: 'centre:suspense', side: 'DEBIT', amount_fen: '100' }, { account: 'merchant:NOBODY:payable', side: 'CREDIT', amount_fen: '100' }] });
    expect(unregistered.statusCode).toBe(422);
    expect(errorBody(unregistered).code).toBe('ACCOUNT_UNKNOWN');
    const shape = await post({ ...body(ex, '100'), lines: [{ account: 'centre:suspense', side: 'DEBIT', amount_fen: '100' }, { account: 'vault:1', side: 'CREDIT', amount_fen: '100' }] });
    expect(shape.statusCode).toBe(400);
    expect(errorBody(shape).code).toBe('ACCOUNT_CODE_INVALID');
    const missing = await post(body(999_999n, '100'));
    expect(missing.statusCode).toBe(404);
    expect(errorBody(missing).code).toBe('EXCEPTION_NOT_FOUND');
    const negative = await post({ ...body(ex, '100'), lines: [{ account: 'centre:suspense', side: 'DEBIT', amount_fen: '-5' }, { account: `merchant:${merchant}:payable`, side: 'CREDIT', amount_fen: '-5' }] });
    expect(negative.statusCode).toBe(400);
    const n = (await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM adjustment WHERE exception_id = $1`, [String(ex)])).rows[0].n;
    expect(n).toBe(0n);
  });

  it('is idempotent by the Idempotency-Key header and allows one pending proposal per exception', async () => {
    const ex = await newException();
    const headers = { ...bearer(keys.a.token), 'idempotency-key': 'prop-1' };
    const first = await app.inject({ method: 'POST', url: '/v1/adjustments', headers, payload: body(ex, '250') });
    expect(first.statusCode).toBe(201);
    const a = first.json() as { id: string; state: string; total_fen: string; proposed_by: string; exception_id: string };
    expect(a).toMatchObject({ state: 'PROPOSED', total_fen: '250', proposed_by: keys.a.keyId, exception_id: `exc_${ex}` });
    expect(a.id).toMatch(/^adj_[a-z0-9]{16,32}$/);

    const replay = await app.inject({ method: 'POST', url: '/v1/adjustments', headers, payload: body(ex, '250') });
    expect(replay.statusCode).toBe(200);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect((replay.json() as { id: string }).id).toBe(a.id);

    const reused = await app.inject({ method: 'POST', url: '/v1/adjustments', headers, payload: body(ex, '251') });
    expect(reused.statusCode).toBe(409);
    expect(errorBody(reused).code).toBe('IDEMPOTENCY_CONFLICT');

    // Another proposer's identical key is theirs, not a replay of A's.
    const second = await app.inject({ method: 'POST', url: '/v1/adjustments', headers: { ...bearer(keys.b.token), 'idempotency-key': 'prop-1' }, payload: body(ex, '250') });
    expect(second.statusCode).toBe(409);
    expect(errorBody(second)).toMatchObject({ code: 'ADJUSTMENT_ALREADY_PROPOSED', details: { adjustment_id: a.id } });

    const rows = (await db.pool.query<{ id: string }>(`SELECT id FROM adjustment WHERE exception_id = $1`, [String(ex)])).rows;
    expect(rows.map((r) => r.id)).toEqual([a.id]);
    const events = (await db.pool.query<{ event: string; actor: string }>(`SELECT event, actor FROM recon_exception_event WHERE exception_id = $1 ORDER BY id`, [String(ex)])).rows;
    expect(events).toEqual([{ event: 'ADJUSTMENT_PROPOSED', actor: keys.a.keyId }]);
    const audit = await listAudit(db.pool, 0n, 100, { subject: `adjustment:${a.id}` });
    expect(audit.map((r) => [r.action, r.actor])).toEqual([['ADJUSTMENT_PROPOSE', keys.a.keyId]]);
    expect(audit[0].details).toMatchObject({ exception_id: `exc_${ex}`, total_fen: '250' });
  });
});

describe('deciding', () => {
  it('refuses the proposer\'s own approval and rejection, and a rejection posts nothing', async () => {
    const ex = await newException();
    const { adjustment: a } = await proposeAdjustment(deps, { exceptionId: ex, lines: legs(700n), memo: 'fix' }, actor('a'));
    const entriesBefore = (await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ledger_entry`)).rows[0].n;

    const self = await app.inject({ method: 'POST', url: `/v1/adjustments/${a.id}/approve`, headers: bearer(keys.a.token), payload: {} });
    expect(self.statusCode).toBe(403);
    expect(errorBody(self).code).toBe('ADJUSTMENT_SELF_APPROVAL');
    await expect(rejectAdjustment(deps, a.id, actor('a'), 'never mind')).rejects.toMatchObject({ code: 'ADJUSTMENT_SELF_REJECTION', status: 403 });

    const rejected = await app.inject({ method: 'POST', url: `/v1/adjustments/${a.id}/reject`, headers: bearer(keys.b.token), payload: { note: 'wrong merchant' } });
    expect(rejected.statusCode).toBe(200);
    expect(rejected.json()).toMatchObject({ state: 'REJECTED', decided_by: keys.b.keyId, decision_note: 'wrong merchant', entry_id: null });
    // Deciding again is refused; the same rejection again is a replay.
    const approveAfter = await app.inject({ method: 'POST', url: `/v1/adjustments/${a.id}/approve`, headers: bearer(keys.c.token), payload: {} });
    expect(approveAfter.statusCode).toBe(409);
    expect(errorBody(approveAfter).code).toBe('ADJUSTMENT_ALREADY_DECIDED');
    expect((await rejectAdjustment(deps, a.id, actor('b'), 'wrong merchant')).replayed).toBe(true);

    expect(await entriesOfAdjustment(a.id)).toEqual([]);
    expect((await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ledger_entry`)).rows[0].n).toBe(entriesBefore);
    const exRow = (await db.pool.query<{ state: string }>(`SELECT state FROM recon_exception WHERE id = $1`, [String(ex)])).rows[0];
    expect(exRow.state).toBe('OPEN');
    const events = (await db.pool.query<{ event: string; actor: string }>(`SELECT event, actor FROM recon_exception_event WHERE exception_id = $1 ORDER BY id`, [String(ex)])).rows;
    expect(events).toEqual([{ event: 'ADJUSTMENT_PROPOSED', actor: keys.a.keyId }, { event: 'ADJUSTMENT_REJECTED', actor: keys.b.keyId }]);
    const audit = await listAudit(db.pool, 0n, 100, { subject: `adjustment:${a.id}` });
    expect(audit.map((r) => r.action)).toEqual(['ADJUSTMENT_PROPOSE', 'ADJUSTMENT_REJECT']);

    // The exception is open again for a new proposal.
    const again = await proposeAdjustment(deps, { exceptionId: ex, lines: legs(700n), memo: 'fix, right merchant' }, actor('a'));
    expect(again.adjustment.state).toBe('PROPOSED');
  });

  it('two approvers at once: one wins, the entry posts once, the exception is resolved, audit and ledger hold', async () => {
    const ex = await newException();
    const { adjustment: a } = await proposeAdjustment(deps, { exceptionId: ex, lines: legs(1_234n), memo: 'operator under-reported' }, actor('a'));
    const suspenseBefore = await balance('centre:suspense');
    const payableBefore = await balance(`merchant:${merchant}:payable`);

    const results = await Promise.allSettled([
      approveAdjustment(deps, a.id, actor('b'), 'checked against the operator\'s file'),
      approveAdjustment(deps, a.id, actor('c'), 'checked too'),
      approveAdjustment(deps, a.id, actor('b'), 'checked against the operator\'s file'),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    // B's two calls are one approval and its replay, or C won and both of B's are refused.
    for (const l of lost) expect(l.reason).toMatchObject({ code: 'ADJUSTMENT_ALREADY_DECIDED', status: 409 });
    expect(won.length).toBeGreaterThanOrEqual(1);
    const fresh = won.filter((r) => !(r as PromiseFulfilledResult<{ replayed: boolean }>).value.replayed);
    expect(fresh.length).toBe(1);

    const entries = await entriesOfAdjustment(a.id);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ kind: 'ADJUSTMENT', business_date: test_date });
    expect(await balance('centre:suspense')).toBe(suspenseBefore + 1_234n); // DEBIT-normal
    expect(await balance(`merchant:${merchant}:payable`)).toBe(payableBefore + 1_234n); // CREDIT-normal

    const stored = await getAdjustment(db.pool, a.id);
    expect(stored.state).toBe('APPROVED');
    expect(stored.entryId).toBe(entries[0].id);
    expect(stored.postedBusinessDate).toBe(test_date);
    expect([keys.b.keyId, keys.c.keyId]).toContain(stored.decidedBy);
    const exRow = (await db.pool.query<{ state: string; resolution: string; resolved_by: string }>(`SELECT state, resolution, resolved_by FROM recon_exception WHERE id = $1`, [String(ex)])).rows[0];
    expect(exRow).toEqual({ state: 'RESOLVED', resolution: 'ADJUSTMENT', resolved_by: stored.decidedBy });
    const events = (await db.pool.query<{ event: string }>(`SELECT event FROM recon_exception_event WHERE exception_id = $1 ORDER BY id`, [String(ex)])).rows.map((r) => r.event);
    expect(events).toEqual(['ADJUSTMENT_PROPOSED', 'ADJUSTMENT_APPROVED', 'RESOLVED']);
    const exAudit = await listAudit(db.pool, 0n, 100, { subject: `recon_exception:exc_${ex}` });
    expect(exAudit.map((r) => [r.action, r.details.resolution, r.details.adjustment_id])).toEqual([['RECON_EXCEPTION_RESOLVED', 'ADJUSTMENT', a.id]]);
    const audit = await listAudit(db.pool, 0n, 100, { subject: `adjustment:${a.id}` });
    expect(audit.map((r) => r.action)).toEqual(['ADJUSTMENT_PROPOSE', 'ADJUSTMENT_APPROVE']);
    expect(audit[1].details).toMatchObject({ entry_id: String(entries[0].id), total_fen: '1234', cycle_id: 'CYC20261128' });

    // A resolved exception takes no new proposal.
    await expect(proposeAdjustment(deps, { exceptionId: ex, lines: legs(1n), memo: 'more' }, actor('c'))).rejects.toMatchObject({ code: 'EXCEPTION_ALREADY_RESOLVED' });
    expect((await deps.ledger.verify(db.pool)).ok).toBe(true);
    expect((await verifyAuditChain(db.pool)).ok).toBe(true);
  });

  it('an approval that would overdraw a purse posts nothing and leaves the proposal pending', async () => {
    const ex = await newException();
    const card = '6217000000000001';
    const { adjustment: a } = await proposeAdjustment(deps, { exceptionId: ex, memo: 'take back a load', lines: [
      { account: `card:${card}:purse`, side: 'DEBIT', amountFen: 10n ** 9n }, { account: 'centre:suspense', side: 'CREDIT', amountFen: 10n ** 9n }] }, actor('a'));
    await expect(approveAdjustment(deps, a.id, actor('b'))).rejects.toMatchObject({ code: 'INSUFFICIENT_FUNDS' });
    expect(await entriesOfAdjustment(a.id)).toEqual([]);
    expect((await getAdjustment(db.pool, a.id)).state).toBe('PROPOSED');
    expect((await db.pool.query<{ state: string }>(`SELECT state FROM recon_exception WHERE id = $1`, [String(ex)])).rows[0].state).toBe('OPEN');
    await rejectAdjustment(deps, a.id, actor('b'), 'purse cannot cover it');
  });
});

describe('reading and roles', () => {
  it('lists by state with a cursor; auditors read; merchants and banks are refused; auditors cannot decide', async () => {
    const ex1 = await newException();
    const ex2 = await newException();
    const ex3 = await newException();
    const made = [];
    for (const ex of [ex1, ex2, ex3]) made.push((await proposeAdjustment(deps, { exceptionId: ex, lines: legs(10n), memo: 'queue' }, actor('c'))).adjustment.id);

    const all: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await listAdjustments(db.pool, { state: 'PROPOSED', limit: 2, cursor: cursor ?? undefined });
      expect(page.items.length).toBeLessThanOrEqual(2);
      for (const it of page.items) expect(it.state).toBe('PROPOSED');
      all.push(...page.items.map((x) => x.id));
      cursor = page.nextCursor;
    } while (cursor !== null);
    expect(new Set(all).size).toBe(all.length);
    for (const id of made) expect(all).toContain(id);

    const byAuditor = await app.inject({ method: 'GET', url: '/v1/adjustments?state=PROPOSED&limit=1', headers: bearer(keys.auditor.token) });
    expect(byAuditor.statusCode).toBe(200);
    const page = byAuditor.json() as { items: { id: string }[]; next_cursor: string | null };
    expect(page.items).toHaveLength(1);
    expect(page.next_cursor).not.toBeNull();
    const next = await app.inject({ method: 'GET', url: `/v1/adjustments?state=PROPOSED&limit=1&cursor=${page.next_cursor}`, headers: bearer(keys.auditor.token) });
    expect((next.json() as { items: { id: string }[] }).items[0].id).not.toBe(page.items[0].id);
    const one = await app.inject({ method: 'GET', url: `/v1/adjustments/${made[0]}`, headers: bearer(keys.auditor.token) });
    expect(one.json()).toMatchObject({ id: made[0], exception_id: `exc_${ex1}`, exception_type: 'OPERATOR_TOTAL_MISMATCH', lines: [
      { account: 'centre:suspense', side: 'DEBIT', amount_fen: '10' }, { account: `merchant:${merchant}:payable`, side: 'CREDIT', amount_fen: '10' }] });
    const missing = await app.inject({ method: 'GET', url: '/v1/adjustments/adj_0000000000000000', headers: bearer(keys.a.token) });
    expect(missing.statusCode).toBe(404);

    for (const who of ['merchant', 'bank', 'admin']) {
      const r = await app.inject({ method: 'GET', url: '/v1/adjustments', headers: bearer(keys[who].token) });
      expect(r.statusCode, who).toBe(403);
      expect(errorBody(r).code).toBe('FORBIDDEN_ROLE');
    }
    for (const action of ['approve', 'reject']) {
      const r = await app.inject({ method: 'POST', url: `/v1/adjustments/${made[0]}/${action}`, headers: bearer(keys.auditor.token), payload: { note: 'x' } });
      expect(r.statusCode).toBe(403);
      expect(errorBody(r).code).toBe('FORBIDDEN_ROLE');
    }
    const byAuditorPropose = await app.inject({ method: 'POST', url: '/v1/adjustments', headers: bearer(keys.auditor.token), payload: body(ex1, '5') });
    expect(byAuditorPropose.statusCode).toBe(403);
    // Approval over HTTP without a body works (the note is optional).
    const ok = await app.inject({ method: 'POST', url: `/v1/adjustments/${made[0]}/approve`, headers: bearer(keys.a.token) });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toMatchObject({ state: 'APPROVED', decided_by: keys.a.keyId, exception_state: 'RESOLVED' });
    expect((await deps.ledger.verify(db.pool)).ok).toBe(true);
  });
});
