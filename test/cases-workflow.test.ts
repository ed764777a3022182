/**
 * Misuse signals and the case workflow: the daily job raises IMPOSSIBLE_TRAVEL and
 * ABNORMAL_TAP_COUNT cases once per card and date (from an input array, and set-based from a
 * table of accepted taps); cases are listed, assigned, confirmed (suspending the card and writing
 * the integrity record) or dismissed, every step an event row; a FRAUD case books the amount and
 * a 2×–5× fine as a receivable, and collections reduce it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { raiseMisuseCases } from '../adapters/cards/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { bearer, errorBody } from './support/http.ts';
import { applyCard, buildCardsApp, cardAction, nationalId, test_bank, type Applied, type CardsApp } from './support/cards-app.ts';

let db: TestDb;
let a: CardsApp;

// The table stands in for transit ingestion's accepted taps (its real migration is its owner's).
const tap_source = {
  table: 'public.test_accepted_tap',
  sql: `SELECT t.card_no, t.terminal_id, t.local_time, term.latitude::text AS latitude, term.longitude::text AS longitude
        FROM test_accepted_tap t JOIN terminal term ON term.id = t.terminal_id WHERE t.business_date = $1`,
};

beforeAll(async () => {
  db = await freshDatabase(8);
  a = await buildCardsApp(db.pool, { tapSource: tap_source });
  await db.pool.query(`INSERT INTO merchant (id, name, kind, is_operator, acquiring_bank, settlement_account) VALUES ('OP1', 'Bus Co', 'TRANSIT', true, $1, '6222000000001')`, [test_bank]);
  // Two stations about 33 km apart, and one 300 m from the first.
  await db.pool.query(`INSERT INTO terminal (id, merchant_id, station_id, latitude, longitude) VALUES
    ('420300000101', 'OP1', 'S1', 30.000000, 114.000000),
    ('420300000102', 'OP1', 'S2', 30.300000, 114.000000),
    ('420300000103', 'OP1', 'S3', 30.002700, 114.000000)`);
  await db.pool.query(`CREATE TABLE test_accepted_tap (card_no text, terminal_id text, local_time text, business_date date)`);
});

afterAll(async () => {
  await a?.app.close();
  await db?.drop();
});

const person = (seq: number) => ({ name: `案件${seq}`, national_id: nationalId('420106', '19750505', seq), phone: `1357777${String(seq).padStart(4, '0')}` });

async function get(url: string, token = a.tokens.admin) {
  return a.app.inject({ method: 'GET', url, headers: bearer(token) });
}
async function post(url: string, payload: unknown, token = a.tokens.admin) {
  return a.app.inject({ method: 'POST', url, headers: bearer(token), payload: payload as Record<string, unknown> });
}

describe('misuse detection', () => {
  it('raises one case per signal and card, idempotently (input array)', async () => {
    const c1 = await applyCard(a, person(1));
    const c2 = await applyCard(a, person(2));
    const t0 = Date.parse('2026-11-28T00:00:00Z');
    const at = (min: number) => new Date(t0 + min * 60_000);
    const S1 = { terminalId: '420300000101', latitude: 30, longitude: 114 };
    const S2 = { terminalId: '420300000102', latitude: 30.3, longitude: 114 };
    const taps = [
      // c1: S1 then S2 (33 km) in 10 minutes: 200 km/h.
      { cardNo: c1.physical, ...S1, at: at(0) }, { cardNo: c1.physical, ...S2, at: at(10) },
      // c2: the same trip in 40 minutes (50 km/h): plausible; but 31 taps in the day.
      { cardNo: c2.physical, ...S1, at: at(0) }, { cardNo: c2.physical, ...S2, at: at(40) },
      ...Array.from({ length: 29 }, (_, i) => ({ cardNo: c2.physical, ...S2, at: at(60 + i) })),
    ];
    const run = await raiseMisuseCases(db.pool, '2026-11-28', taps, a.deps.cardsOptions.misuse, a.clock.now());
    expect(run).toMatchObject({ taps: 33, impossibleTravel: 1, abnormalCounts: 1, casesRaised: 2 });
    const again = await raiseMisuseCases(db.pool, '2026-11-28', taps, a.deps.cardsOptions.misuse, a.clock.now());
    expect(again.casesRaised).toBe(0);
    const travel = (await get(`/v1/cases?kind=IMPOSSIBLE_TRAVEL`)).json().items;
    expect(travel.map((c: { card_no: string }) => c.card_no)).toEqual([c1.physical]);
    expect(travel[0].details).toMatchObject({ from_terminal: '420300000101', to_terminal: '420300000102', speed_kmh_max: 120 });
    expect(travel[0].details.speed_kmh).toBeGreaterThan(190);
    const counts = (await get(`/v1/cases?kind=ABNORMAL_TAP_COUNT`)).json().items;
    expect(counts.map((c: { card_no: string; details: { taps: number } }) => [c.card_no, c.details.taps])).toEqual([[c2.physical, 31]]);
    const ev = (await db.pool.query(`SELECT to_state, actor FROM risk_case_event WHERE case_id = $1`, [travel[0].case_id.slice(5)])).rows;
    expect(ev).toEqual([{ to_state: 'OPEN', actor: 'system:misuse-job' }]);
  });

  it('reads a date\'s accepted taps set-based with station coordinates (POST /v1/cases/detections)', async () => {
    const c = await applyCard(a, person(3));
    const near = await applyCard(a, person(4));
    await db.pool.query(`INSERT INTO test_accepted_tap VALUES
      ($1, '420300000101', '20261129080000', '2026-11-29'), ($1, '420300000102', '20261129080500', '2026-11-29'),
      ($2, '420300000101', '20261129080000', '2026-11-29'), ($2, '420300000103', '20261129080000', '2026-11-29'),
      ($1, '420300000102', '20261130080000', '2026-11-30')`, [c.physical, near.physical]);
    const r = await post('/v1/cases/detections', { business_date: '2026-11-29' });
    expect(r.statusCode).toBe(200);
    // Same-instant taps 300 m apart are under the noise floor; c's 33 km in 5 minutes is not.
    expect(r.json()).toEqual({ business_date: '2026-11-29', taps: 4, impossible_travel: 1, abnormal_counts: 0, cases_raised: 1 });
    const items = (await get(`/v1/cases?card_no=${c.physical}`)).json().items;
    expect(items).toHaveLength(1);
    expect(items[0].source_ref).toBe(`misuse:2026-11-29:${c.physical}`);
    expect((await post('/v1/cases/detections', { business_date: '2026-11-29' })).json().cases_raised).toBe(0);
  });
});

describe('case workflow', () => {
  let card: Applied;
  let caseId: string;
  beforeAll(async () => {
    card = await applyCard(a, person(10));
    await cardAction(a, card.physical, 'activation');
    const r = await post('/v1/cases', { kind: 'IMPOSSIBLE_TRAVEL', source_ref: 'manual-1', card_no: card.physical, note: 'seen twice' });
    expect(r.statusCode).toBe(201);
    caseId = r.json().case_id;
  });

  it('opening is idempotent by (kind, source_ref)', async () => {
    const r = await post('/v1/cases', { kind: 'IMPOSSIBLE_TRAVEL', source_ref: 'manual-1', card_no: card.physical, note: 'again' });
    expect(r.statusCode).toBe(200);
    expect(r.json().case_id).toBe(caseId);
  });

  it('assign, then confirm with suspension and an integrity record; a decided case is final', async () => {
    const asg = await post(`/v1/cases/${caseId}/assignment`, { assignee: 'investigator-wang' });
    expect(asg.statusCode).toBe(200);
    expect(asg.json()).toMatchObject({ state: 'ASSIGNED', assignee: 'investigator-wang' });
    expect((await get(`/v1/cases?assignee=investigator-wang&state=ASSIGNED`)).json().items.map((c: { case_id: string }) => c.case_id)).toEqual([caseId]);

    // finance may read but not decide.
    expect((await get(`/v1/cases/${caseId}`, a.tokens.finance)).statusCode).toBe(200);
    expect((await post(`/v1/cases/${caseId}/confirmation`, { note: 'x' }, a.tokens.finance)).statusCode).toBe(403);

    const conf = await post(`/v1/cases/${caseId}/confirmation`, {
      note: 'card lent to a ticket tout', suspend_card: { request_id: 'suspend-for-case', reason: 'lent out for profit' }, integrity_kind: 'CARD_LENDING_FOR_PROFIT' });
    expect(conf.statusCode).toBe(200);
    const b = conf.json();
    expect(b.state).toBe('CONFIRMED');
    expect(b.suspension).toMatchObject({ card_no: card.physical, to_status: 'SUSPENDED' });
    expect(b.events.map((e: { to_state: string }) => e.to_state)).toEqual(['OPEN', 'ASSIGNED', 'CONFIRMED']);
    expect(b.integrity_records.map((i: { kind: string }) => i.kind)).toEqual(['CARD_LENDING_FOR_PROFIT']);
    expect((await db.pool.query(`SELECT status FROM card WHERE card_no = $1`, [card.physical])).rows[0].status).toBe('SUSPENDED');
    const action = (await db.pool.query(`SELECT case_id, channel FROM card_action WHERE card_no = $1 AND action = 'SUSPEND'`, [card.physical])).rows[0];
    expect(`case_${action.case_id}`).toBe(caseId);
    // The integrity record is on the person's file.
    const p = (await get(`/v1/persons/${card.personId}`)).json();
    expect(p.integrity_records.map((i: { kind: string; case_id: string }) => [i.kind, i.case_id])).toEqual([['CARD_LENDING_FOR_PROFIT', caseId]]);

    for (const [path, body] of [['confirmation', { note: 'again' }], ['dismissal', { note: 'no' }], ['assignment', { assignee: 'x' }]] as const) {
      const r = await post(`/v1/cases/${caseId}/${path}`, body);
      expect(r.statusCode).toBe(409);
      expect(errorBody(r).code).toBe('CASE_TRANSITION_INVALID');
    }
  });

  it('dismissal closes a case without touching the card', async () => {
    const c = await applyCard(a, person(11));
    await cardAction(a, c.physical, 'activation');
    const opened = (await post('/v1/cases', { kind: 'ABNORMAL_TAP_COUNT', source_ref: 'manual-2', card_no: c.physical, note: 'many taps' })).json();
    const r = await post(`/v1/cases/${opened.case_id}/dismissal`, { note: 'a school trip' });
    expect(r.json().state).toBe('DISMISSED');
    expect((await db.pool.query(`SELECT status FROM card WHERE card_no = $1`, [c.physical])).rows[0].status).toBe('ACTIVE');
    expect((await get(`/v1/cases?state=DISMISSED`)).json().items.map((x: { case_id: string }) => x.case_id)).toContain(opened.case_id);
  });
});

describe('fraud recovery', () => {
  let card: Applied;
  let caseId: string;
  beforeAll(async () => {
    card = await applyCard(a, person(20));
    caseId = (await post('/v1/cases', { kind: 'FRAUD', source_ref: 'impersonation-1', card_no: card.physical, note: 'medical claims under another\'s card' })).json().case_id;
  });

  async function balance(code: string): Promise<bigint> {
    return (await a.deps.ledger.account(db.pool, code))?.balanceFen ?? 0n;
  }

  it('refuses a fine multiple outside 2–5 and a confirmation without terms', async () => {
    for (const m of ['1.99', '5.01', '5.0001', '0', 'abc', '2.5e0', '-3', '']) {
      const r = await post(`/v1/cases/${caseId}/confirmation`, { note: 'fraud', amount_fen: '1000', fine_multiple: m });
      expect(r.statusCode).toBe(400);
      expect(errorBody(r).code).toBe('FINE_MULTIPLE_OUT_OF_RANGE');
    }
    const none = await post(`/v1/cases/${caseId}/confirmation`, { note: 'fraud' });
    expect(none.statusCode).toBe(400);
    expect(errorBody(none).code).toBe('RECOVERY_TERMS_REQUIRED');
    expect((await get(`/v1/cases/${caseId}`)).json().state).toBe('OPEN');
  });

  it('books amount and fine (round half up) as a receivable against centre:suspense, then collects', async () => {
    const suspenseBefore = await balance('centre:suspense');
    const r = await post(`/v1/cases/${caseId}/confirmation`, { note: 'confirmed by investigation', amount_fen: '1001', fine_multiple: '2.5', integrity_kind: 'IMPERSONATION' });
    expect(r.statusCode).toBe(200);
    // 1001 × 2.5 = 2502.5 → 2503.
    expect(r.json().recovery).toMatchObject({ amount_fen: '1001', fine_fen: '2503', due_fen: '3504', collected_fen: '0', outstanding_fen: '3504' });
    const receivable = `cardholder:${card.physical}:receivable`;
    expect(await balance(receivable)).toBe(3504n);
    // Suspense is debit-normal: credits of 3504 take it down by that much.
    expect(await balance('centre:suspense')).toBe(suspenseBefore - 3504n);
    const kinds = (await db.pool.query(`SELECT kind FROM ledger_entry WHERE idem_key LIKE $1 ORDER BY id`, [`fraud-recovery:${caseId.slice(5)}:%`])).rows.map((x) => x.kind);
    expect(kinds).toEqual(['FRAUD_RECOVERY_DUE', 'FRAUD_FINE_DUE']);

    const c1 = await post(`/v1/cases/${caseId}/collections`, { collection_id: 'col-1', amount_fen: '1500', bank_code: test_bank }, a.tokens.finance);
    expect(c1.statusCode).toBe(200);
    expect(c1.json()).toEqual({ collected_fen: '1500', due_fen: '3504', outstanding_fen: '2004', replayed: false });
    const replay = await post(`/v1/cases/${caseId}/collections`, { collection_id: 'col-1', amount_fen: '1500', bank_code: test_bank });
    expect(replay.json()).toMatchObject({ collected_fen: '1500', replayed: true });
    const clash = await post(`/v1/cases/${caseId}/collections`, { collection_id: 'col-1', amount_fen: '1400', bank_code: test_bank });
    expect(clash.statusCode).toBe(409);
    const over = await post(`/v1/cases/${caseId}/collections`, { collection_id: 'col-2', amount_fen: '2005', bank_code: test_bank });
    expect(over.statusCode).toBe(422);
    expect(errorBody(over).code).toBe('COLLECTION_EXCEEDS_DUE');
    const rest = await post(`/v1/cases/${caseId}/collections`, { collection_id: 'col-3', amount_fen: '2004', bank_code: test_bank });
    expect(rest.json().outstanding_fen).toBe('0');
    expect(await balance(receivable)).toBe(0n);
    const detail = (await get(`/v1/cases/${caseId}`)).json();
    expect(detail.recovery.collections.map((c: { collection_id: string }) => c.collection_id)).toEqual(['col-1', 'col-3']);
    expect((await a.deps.ledger.verify(db.pool)).ok).toBe(true);
  });

  it('non-FRAUD cases take no recovery terms; a case without a recovery has nothing to collect', async () => {
    const other = (await post('/v1/cases', { kind: 'CLONE_SUSPECT', source_ref: 'clone-1', card_no: card.physical, note: 'x' })).json().case_id;
    const r = await post(`/v1/cases/${other}/confirmation`, { note: 'x', amount_fen: '10', fine_multiple: '2' });
    expect(r.statusCode).toBe(400);
    expect(errorBody(r).code).toBe('RECOVERY_NOT_APPLICABLE');
    const col = await post(`/v1/cases/${other}/collections`, { collection_id: 'c', amount_fen: '10', bank_code: test_bank });
    expect(col.statusCode).toBe(404);
  });
});
