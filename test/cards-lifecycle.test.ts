/**
 * The card lifecycle over HTTP against real Postgres: applications (eligibility, idempotency, one
 * card per person), activation, loss report (effective at once), unfreeze, replacement (new
 * number, balances moved in the ledger, e-card relinked), cancellation (refund through the
 * issuing bank, card_refund row), suspension with a case and reinstatement, invalid transitions,
 * roles, and a replayed request under concurrency.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../adapters/postgres/db.ts';
import { card_bin, isLuhnValid } from '../engine/cards/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { bearer, errorBody } from './support/http.ts';
import { applyCard, buildCardsApp, cardAction, nationalId, rid, test_bank, type CardsApp } from './support/cards-app.ts';

let db: TestDb;
let a: CardsApp;

beforeAll(async () => {
  db = await freshDatabase(8);
  a = await buildCardsApp(db.pool);
});

afterAll(async () => {
  await a?.app.close();
  await db?.drop();
});

async function card(cardNo: string) {
  const r = await db.pool.query(`SELECT status, status_since, replaced_by, linked_card_no, person_id, form FROM card WHERE card_no = $1`, [cardNo]);
  return r.rows[0];
}

async function events(cardNo: string) {
  const r = await db.pool.query<{ status: string; effective_at: Date; actor: string; reason: string | null }>(
    `SELECT status, effective_at, actor, reason FROM card_status_event WHERE card_no = $1 ORDER BY id`, [cardNo]);
  return r.rows;
}

async function balance(code: string): Promise<bigint> {
  const acc = await a.deps.ledger.account(db.pool, code);
  return acc?.balanceFen ?? 0n;
}

async function load(cardNo: string, purpose: 'purse' | 'medical', amountFen: bigint): Promise<void> {
  await withTx(db.pool, (tx) => a.deps.ledger.postBatch(tx, [{
    idemKey: `load-${cardNo}-${purpose}-${amountFen}-${rid()}`, kind: 'PURSE_LOAD', businessDate: '2026-11-28',
    lines: [{ debit: `bank:${test_bank}:clearing`, credit: `card:${cardNo}:${purpose}`, amountFen }],
  }]));
}

const person = (seq: number) => ({ name: `测试人${seq}`, national_id: nationalId('110105', '19800101', seq), phone: `1380000${String(seq).padStart(4, '0')}`, address: `北京市朝阳区某街道${seq}号` });

describe('applications', () => {
  it('issues a physical card and a linked e-card, both ISSUED, numbered in the BIN with a Luhn digit', async () => {
    const p = person(1);
    const r = await a.app.inject({ method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens.admin), payload: {
      application_id: 'app-first', person: p, eligibility: { basis: 'LOCAL_HOUSEHOLD' }, issuing_bank: test_bank, channel: 'COUNTER' } });
    expect(r.statusCode).toBe(201);
    const b = r.json();
    expect(b.replayed).toBe(false);
    expect(b.cards).toHaveLength(2);
    const [phys, ecard] = b.cards;
    expect(phys.form).toBe('PHYSICAL');
    expect(ecard.form).toBe('ECARD');
    expect(ecard.linked_card_no).toBe(phys.card_no);
    for (const c of b.cards) {
      expect(c.card_no).toMatch(/^[0-9]{19}$/);
      expect(c.card_no.startsWith(card_bin)).toBe(true);
      expect(isLuhnValid(c.card_no)).toBe(true);
      expect((await card(c.card_no)).status).toBe('ISSUED');
      expect((await events(c.card_no)).map((e) => e.status)).toEqual(['ISSUED']);
    }
    expect((await card(ecard.card_no)).linked_card_no).toBe(phys.card_no);
    // The person row holds no plaintext.
    const row = (await db.pool.query(`SELECT * FROM person WHERE id = $1`, [b.person_id.slice(4)])).rows[0];
    const flat = JSON.stringify(row, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
    expect(flat).not.toContain(p.national_id);
    expect(flat).not.toContain(p.phone);
    expect(Buffer.from(row.name_sealed).toString('utf8')).not.toContain(p.name);

    // The same application again is a replay with the same answer and nothing new.
    const cardsBefore = (await db.pool.query(`SELECT count(*)::int AS n FROM card`)).rows[0].n;
    const again = await a.app.inject({ method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens.admin), payload: {
      application_id: 'app-first', person: p, eligibility: { basis: 'LOCAL_HOUSEHOLD' }, issuing_bank: test_bank, channel: 'COUNTER' } });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ ...b, replayed: true });
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM card`)).rows[0].n).toBe(cardsBefore);

    // The same id with different content is refused.
    const changed = await a.app.inject({ method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens.admin), payload: {
      application_id: 'app-first', person: { ...p, address: 'elsewhere 1' }, eligibility: { basis: 'LOCAL_HOUSEHOLD' }, issuing_bank: test_bank, channel: 'COUNTER' } });
    expect(changed.statusCode).toBe(409);
    expect(errorBody(changed).code).toBe('IDEMPOTENCY_CONFLICT');
  });

  it('refuses a second card for a person who holds a valid one, an invalid ID, and an expired permit', async () => {
    const p = person(2);
    await applyCard(a, p);
    const second = await a.app.inject({ method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens.admin), payload: {
      application_id: 'app-second', person: p, eligibility: { basis: 'LOCAL_HOUSEHOLD' }, issuing_bank: test_bank, channel: 'COUNTER' } });
    expect(second.statusCode).toBe(409);
    expect(errorBody(second).code).toBe('CARD_ALREADY_HELD');

    // The same ID number under another name is refused, whether or not a card is held.
    const other = await a.app.inject({ method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens.admin), payload: {
      application_id: 'app-other-name', person: { ...p, name: '冒名者' }, eligibility: { basis: 'LOCAL_HOUSEHOLD' }, issuing_bank: test_bank, channel: 'COUNTER' } });
    expect(other.statusCode).toBe(409);
    expect(errorBody(other).code).toBe('PERSON_MISMATCH');

    const badId = p.national_id.slice(0, 17) + (p.national_id[17] === '0' ? '1' : '0');
    const bad = await a.app.inject({ method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens.admin), payload: {
      application_id: 'app-bad-id', person: { ...p, national_id: badId }, eligibility: { basis: 'LOCAL_HOUSEHOLD' }, issuing_bank: test_bank, channel: 'COUNTER' } });
    expect(bad.statusCode).toBe(400);
    expect(errorBody(bad).code).toBe('NATIONAL_ID_INVALID');

    const expired = await a.app.inject({ method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens.admin), payload: {
      application_id: 'app-expired', person: person(3), eligibility: { basis: 'RESIDENCE_PERMIT', valid_until: '2026-11-27' }, issuing_bank: test_bank, channel: 'COUNTER' } });
    expect(expired.statusCode).toBe(422);
    expect(errorBody(expired).code).toBe('ELIGIBILITY_EXPIRED');

    const unknownBank = await a.app.inject({ method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens.admin), payload: {
      application_id: 'app-bank', person: person(4), eligibility: { basis: 'LOCAL_HOUSEHOLD' }, issuing_bank: '999999999999', channel: 'COUNTER' } });
    expect(unknownBank.statusCode).toBe(422);
    expect(errorBody(unknownBank).code).toBe('BANK_UNKNOWN');
    // Nothing of the refused applications was kept.
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM card_application WHERE id IN ('app-bad-id', 'app-expired', 'app-bank')`)).rows[0].n).toBe(0);
  });

  it('is open to card service staff (admin) only', async () => {
    for (const role of ['finance', 'auditor', 'operator', 'bank'] as const) {
      const r = await a.app.inject({ method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens[role]), payload: {
        application_id: `app-role-${role}`, person: person(5), eligibility: { basis: 'LOCAL_HOUSEHOLD' }, issuing_bank: test_bank, channel: 'COUNTER' } });
      expect(r.statusCode).toBe(403);
    }
  });

  it('two concurrent applications of one person issue exactly one card', async () => {
    const p = person(6);
    const rs = await Promise.all([1, 2, 3].map((i) => a.app.inject({ method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens.admin), payload: {
      application_id: `app-race-${i}`, person: p, eligibility: { basis: 'LOCAL_HOUSEHOLD' }, issuing_bank: test_bank, channel: 'APP' } })));
    expect(rs.map((r) => r.statusCode).sort()).toEqual([201, 409, 409]);
    const persons = (await db.pool.query(`SELECT count(*)::int AS n FROM card_application WHERE id LIKE 'app-race-%'`)).rows[0].n;
    expect(persons).toBe(1);
  });
});

describe('lifecycle actions', () => {
  it('activate, report loss (effective at once), unfreeze: status events with actor, reason and time', async () => {
    const c = await applyCard(a, person(10));
    const act = await cardAction(a, c.physical, 'activation');
    expect(act.statusCode).toBe(201);
    expect(act.json()).toMatchObject({ from_status: 'ISSUED', to_status: 'ACTIVE', action: 'ACTIVATE' });

    a.clock.advance(60_000);
    const lossAt = a.clock.now();
    const loss = await cardAction(a, c.physical, 'loss-reports', { channel: 'PHONE', reason: 'lost on the bus' });
    expect(loss.statusCode).toBe(201);
    expect(loss.json()).toMatchObject({ from_status: 'ACTIVE', to_status: 'LOST_REPORTED', effective_at: lossAt.toISOString(), channel: 'PHONE' });
    const row = await card(c.physical);
    expect(row.status).toBe('LOST_REPORTED');
    expect((row.status_since as Date).toISOString()).toBe(lossAt.toISOString());
    const ev = await events(c.physical);
    expect(ev.map((e) => e.status)).toEqual(['ISSUED', 'ACTIVE', 'LOST_REPORTED']);
    expect(ev[2].effective_at.toISOString()).toBe(lossAt.toISOString());
    expect(ev[2].actor).toBe(a.adminKeyId);
    expect(ev[2].reason).toBe('lost on the bus');
    // The e-card is untouched by the physical card's loss.
    expect((await card(c.ecard)).status).toBe('ISSUED');

    const again = await cardAction(a, c.physical, 'loss-reports', { channel: 'PHONE' });
    expect(again.statusCode).toBe(409);
    expect(errorBody(again).code).toBe('CARD_TRANSITION_INVALID');

    const unfreeze = await cardAction(a, c.physical, 'unfreeze', { reason: 'found at home' });
    expect(unfreeze.statusCode).toBe(201);
    expect((await card(c.physical)).status).toBe('ACTIVE');

    const actions = (await db.pool.query(`SELECT action, channel, actor FROM card_action WHERE card_no = $1 ORDER BY id`, [c.physical])).rows;
    expect(actions.map((x) => x.action)).toEqual(['ACTIVATE', 'REPORT_LOSS', 'UNFREEZE']);
    expect(actions[1].channel).toBe('PHONE');
  });

  it('replays a lifecycle request by its request id, also when sent concurrently', async () => {
    const c = await applyCard(a, person(11));
    const body = { request_id: 'loss-once', channel: 'APP' };
    const rs = await Promise.all([1, 2, 3, 4].map(() => a.app.inject({ method: 'POST', url: `/v1/cards/${c.physical}/loss-reports`, headers: bearer(a.tokens.admin), payload: body })));
    expect(rs.map((r) => r.statusCode).sort()).toEqual([200, 200, 200, 201]);
    const first = rs.find((r) => r.statusCode === 201)!.json();
    for (const r of rs) expect({ ...r.json(), replayed: false }).toEqual(first);
    expect((await events(c.physical)).filter((e) => e.status === 'LOST_REPORTED')).toHaveLength(1);
    const conflicting = await a.app.inject({ method: 'POST', url: `/v1/cards/${c.physical}/loss-reports`, headers: bearer(a.tokens.admin), payload: { ...body, channel: 'WEB' } });
    expect(conflicting.statusCode).toBe(409);
    expect(errorBody(conflicting).code).toBe('IDEMPOTENCY_CONFLICT');
  });

  it('replacement: a new card number, purse and medical balances moved by CARD_REPLACEMENT entries, the old card cancelled and linked, the e-card relinked', async () => {
    const c = await applyCard(a, person(12));
    await cardAction(a, c.physical, 'activation');
    await load(c.physical, 'purse', 12_345n);
    await load(c.physical, 'medical', 500n);
    await cardAction(a, c.physical, 'loss-reports', { channel: 'PHONE' });
    const r = await cardAction(a, c.physical, 'replacements', { reason: 'lost' });
    expect(r.statusCode).toBe(201);
    const b = r.json();
    const newNo = b.new_card_no as string;
    expect(newNo).toMatch(/^[0-9]{19}$/);
    expect(newNo).not.toBe(c.physical);
    expect(isLuhnValid(newNo)).toBe(true);
    expect(b.to_status).toBe('CANCELLED');
    expect(await balance(`card:${c.physical}:purse`)).toBe(0n);
    expect(await balance(`card:${c.physical}:medical`)).toBe(0n);
    expect(await balance(`card:${newNo}:purse`)).toBe(12_345n);
    expect(await balance(`card:${newNo}:medical`)).toBe(500n);
    const entries = (await db.pool.query(`SELECT kind, business_date FROM ledger_entry WHERE idem_key LIKE $1 ORDER BY id`, [`card-replacement:${c.physical}:%`])).rows;
    expect(entries.map((e) => e.kind)).toEqual(['CARD_REPLACEMENT', 'CARD_REPLACEMENT']);
    // Posted in the open clearing cycle.
    const cycle = (await db.pool.query(`SELECT business_date FROM clearing_cycle WHERE state = 'OPEN'`)).rows[0];
    expect(entries[0].business_date).toBe(cycle.business_date);
    const old = await card(c.physical);
    expect(old.status).toBe('CANCELLED');
    expect(old.replaced_by).toBe(newNo);
    const fresh = await card(newNo);
    expect(fresh.status).toBe('ISSUED');
    expect(fresh.person_id).toBe(old.person_id);
    expect((await card(c.ecard)).linked_card_no).toBe(newNo);
    expect(b.also_changed).toEqual([{ card_no: c.ecard, to_status: null, linked_card_no: newNo }]);
    expect(b.moved).toHaveLength(2);
    const verify = await a.deps.ledger.verify(db.pool);
    expect(verify.ok).toBe(true);

    // A replaced card is final.
    const twice = await cardAction(a, c.physical, 'replacements', { reason: 'again' });
    expect(twice.statusCode).toBe(409);
    expect(errorBody(twice).code).toBe('CARD_TRANSITION_INVALID');
  });

  it('cancellation refunds purse balances to the issuing bank (CARD_CANCEL_REFUND), records card_refund rows, and cancels the e-card too', async () => {
    const c = await applyCard(a, person(13));
    await cardAction(a, c.physical, 'activation');
    await load(c.physical, 'purse', 7_000n);
    await load(c.ecard, 'purse', 300n);
    const bankBefore = await balance(`bank:${test_bank}:clearing`);
    const r = await cardAction(a, c.physical, 'cancellation', { reason: 'holder moved away' });
    expect(r.statusCode).toBe(201);
    expect(await balance(`card:${c.physical}:purse`)).toBe(0n);
    expect(await balance(`card:${c.ecard}:purse`)).toBe(0n);
    // Bank clearing is debit-normal (positive: the bank owes the centre); a refund credits it.
    expect(await balance(`bank:${test_bank}:clearing`)).toBe(bankBefore - 7_300n);
    const refunds = (await db.pool.query(`SELECT card_no, account_purpose, issuing_bank, amount_fen, cycle_id FROM card_refund WHERE card_no = ANY($1) ORDER BY amount_fen DESC`, [[c.physical, c.ecard]])).rows;
    expect(refunds.map((x) => [x.card_no, x.account_purpose, x.issuing_bank, x.amount_fen])).toEqual([
      [c.physical, 'purse', test_bank, 7_000n], [c.ecard, 'purse', test_bank, 300n]]);
    expect(refunds[0].cycle_id).toMatch(/^CYC[0-9]{8}$/);
    expect((await card(c.physical)).status).toBe('CANCELLED');
    expect((await card(c.ecard)).status).toBe('CANCELLED');
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ledger_entry WHERE kind = 'CARD_CANCEL_REFUND' AND idem_key LIKE ANY($1)`, [[`%${c.physical}%`, `%${c.ecard}%`]])).rows[0].n).toBe(2);
    expect((await a.deps.ledger.verify(db.pool)).ok).toBe(true);
    // The same person may apply again once the card is cancelled: same person, new cards.
    const again = await applyCard(a, person(13));
    expect(again.personId).toBe(c.personId);
    expect(again.physical).not.toBe(c.physical);
  });

  it('suspension needs a case on the same card; a suspended card cannot be replaced or cancelled until reinstated', async () => {
    const c = await applyCard(a, person(14));
    await cardAction(a, c.physical, 'activation');
    const noCase = await cardAction(a, c.physical, 'suspensions', { reason: 'lent out' });
    expect(noCase.statusCode).toBe(400);
    const opened = await a.app.inject({ method: 'POST', url: '/v1/cases', headers: bearer(a.tokens.admin), payload: { kind: 'FRAUD', source_ref: `lend-${c.physical}`, card_no: c.physical, note: 'reported lending' } });
    expect(opened.statusCode).toBe(201);
    const caseId = opened.json().case_id as string;
    const missingCase = await cardAction(a, c.physical, 'suspensions', { reason: 'lent out', case_id: 'case_999999' });
    expect(missingCase.statusCode).toBe(404);
    const s = await cardAction(a, c.physical, 'suspensions', { reason: 'lent out for profit', case_id: caseId });
    expect(s.statusCode).toBe(201);
    expect((await card(c.physical)).status).toBe('SUSPENDED');
    const action = (await db.pool.query(`SELECT case_id, reason FROM card_action WHERE card_no = $1 AND action = 'SUSPEND'`, [c.physical])).rows[0];
    expect(`case_${action.case_id}`).toBe(caseId);
    for (const path of ['replacements', 'cancellation', 'unfreeze']) {
      const r = await cardAction(a, c.physical, path, { reason: 'try' });
      expect(r.statusCode).toBe(409);
      expect(errorBody(r).code).toBe('CARD_TRANSITION_INVALID');
    }
    const back = await cardAction(a, c.physical, 'reinstatement', { reason: 'case closed' });
    expect(back.statusCode).toBe(201);
    expect((await card(c.physical)).status).toBe('ACTIVE');
  });

  it('an unknown card is 404 and an e-card cannot be replaced', async () => {
    const r = await cardAction(a, '6231981999999999999', 'loss-reports');
    expect(r.statusCode).toBe(404);
    const c = await applyCard(a, person(15));
    const e = await cardAction(a, c.ecard, 'replacements', { reason: 'x' });
    expect(e.statusCode).toBe(409);
  });

  it('cards created here are in the reference history (the ingestion caches\' invalidation feed) when that table exists', async () => {
    const present = (await db.pool.query(`SELECT to_regclass('public.reference_event') IS NOT NULL AS p`)).rows[0].p;
    if (!present) return;
    const c = await applyCard(a, person(16));
    await cardAction(a, c.physical, 'replacements', { reason: 'damaged' });
    const newNo = (await card(c.physical)).replaced_by as string;
    const ev = (await db.pool.query(`SELECT entity_id, action, changes FROM reference_event WHERE entity = 'card' AND entity_id = ANY($1) ORDER BY id`, [[c.physical, c.ecard, newNo]])).rows;
    expect(ev.map((e) => [e.entity_id, e.action])).toEqual([
      [c.physical, 'CREATED'], [c.ecard, 'CREATED'], [newNo, 'CREATED'], [c.physical, 'UPDATED'], [c.ecard, 'UPDATED']]);
    expect(ev[3].changes).toEqual({ replaced_by: [null, newNo] });
  });

  it('every action appended an audit record naming the actor', async () => {
    const r = await db.pool.query(`SELECT action, actor, role FROM audit_log WHERE action LIKE 'CARD_%' ORDER BY seq`);
    const actions = new Set(r.rows.map((x) => x.action));
    for (const x of ['CARD_APPLICATION', 'CARD_ACTIVATE', 'CARD_REPORT_LOSS', 'CARD_UNFREEZE', 'CARD_REPLACE', 'CARD_CANCEL', 'CARD_SUSPEND', 'CARD_REINSTATE']) {
      expect(actions.has(x)).toBe(true);
    }
    for (const row of r.rows) {
      expect(row.actor).toBe(a.adminKeyId);
      expect(row.role).toBe('admin');
    }
  });
});
