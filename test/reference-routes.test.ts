/**
 * Reference data over HTTP: create (201), replay (200, same record), conflict (409 *_CONFLICT),
 * validation and reference codes, updates kept as reference events, cursor pagination, the key
 * versions route, and roles: admin writes, finance and auditor read, operator and bank keys are
 * refused everywhere here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { bearer, buildTestApp, errorBody, mintKey, registeredRoutes, type TestApp } from './support/http.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { test_qr_master_keys, test_tac_master_keys } from './support/deps.ts';

let db: TestDb;
let t: TestApp;
const tokens: Record<'admin' | 'finance' | 'auditor' | 'operator' | 'bank', string> = { admin: '', finance: '', auditor: '', operator: '', bank: '' };

beforeAll(async () => {
  db = await freshDatabase(4);
  t = await buildTestApp(db.pool, null);
  tokens.admin = (await mintKey(db.pool, 'admin')).token;
  tokens.finance = (await mintKey(db.pool, 'finance')).token;
  tokens.auditor = (await mintKey(db.pool, 'auditor')).token;
  tokens.operator = (await mintKey(db.pool, 'operator', 'OPR1')).token;
  tokens.bank = (await mintKey(db.pool, 'bank', '102100099996')).token;
});
afterAll(async () => {
  await t?.app.close();
  await db?.drop();
});

type Who = keyof typeof tokens;
function call(who: Who | null, method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown): Promise<LightMyRequestResponse> {
  return t.app.inject({ method, url, headers: who === null ? {} : bearer(tokens[who]), ...(payload === undefined ? {} : { payload: payload as object }) });
}
const post = (url: string, payload: unknown, who: Who = 'admin') => call(who, 'POST', url, payload);
const get = (url: string, who: Who = 'admin') => call(who, 'GET', url);

async function count(table: string): Promise<number> {
  const r = await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ${table}`);
  return Number(r.rows[0].n);
}

const bank = { code: '102100099996', name: '中国工商银行测试支行' };
const bank2 = { code: '105100099990', name: 'CCB test branch' };
const operator = { id: 'OPR1', name: 'Test Bus Co', kind: 'TRANSIT', is_operator: true, acquiring_bank: bank.code, settlement_account: '6222020000000001' };
const hospital = { id: 'HOSP1', name: 'Test Hospital', kind: 'MEDICAL', acquiring_bank: bank2.code, settlement_account: '6217000000000002' };

describe('banks', () => {
  it('create is 201, the same again is 200 with the same record, a different name is 409 BANK_CONFLICT', async () => {
    const first = await post('/v1/banks', bank);
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json()).toMatchObject(bank);
    const again = await post('/v1/banks', bank);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(first.json());
    const other = await post('/v1/banks', { ...bank, name: 'Another name' });
    expect(other.statusCode).toBe(409);
    expect(errorBody(other).code).toBe('BANK_CONFLICT');
    expect((await get(`/v1/banks/${bank.code}`)).json().name).toBe(bank.name);
    expect((await post('/v1/banks', bank2)).statusCode).toBe(201);
  });

  it('refuses a malformed code before touching the database', async () => {
    const r = await post('/v1/banks', { code: '10210009999', name: 'x' });
    expect(r.statusCode).toBe(400);
    expect(errorBody(r).code).toBe('VALIDATION_FAILED');
    expect(errorBody(await get('/v1/banks/999999999999')).code).toBe('BANK_NOT_FOUND');
  });

  it('a rename is a PATCH, and creation and change are reference events with actor and time', async () => {
    const admin = await db.pool.query<{ id: string }>(`SELECT id FROM api_key WHERE role = 'admin'`);
    const r = await call('admin', 'PATCH', `/v1/banks/${bank2.code}`, { name: 'CCB renamed' });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().name).toBe('CCB renamed');
    const ev = await get(`/v1/reference-events?entity=bank&entity_id=${bank2.code}`, 'auditor');
    expect(ev.statusCode).toBe(200);
    const items = ev.json().items as { action: string; actor: string; changes: unknown }[];
    expect(items.map((e) => e.action)).toEqual(['CREATED', 'UPDATED']);
    expect(items.every((e) => e.actor === admin.rows[0].id)).toBe(true);
    expect(items[1].changes).toEqual({ name: ['CCB test branch', 'CCB renamed'] });
    // Renaming to the same name changes nothing and records nothing.
    await call('admin', 'PATCH', `/v1/banks/${bank2.code}`, { name: 'CCB renamed' });
    expect((await get(`/v1/reference-events?entity=bank&entity_id=${bank2.code}`)).json().items).toHaveLength(2);
  });
});

describe('merchants and fee schedules', () => {
  it('registers a transit operator and a hospital without posting anything', async () => {
    const accounts = await count('ledger_account');
    const r = await post('/v1/merchants', operator);
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json()).toMatchObject({ ...operator, status: 'ACTIVE' });
    expect((await post('/v1/merchants', operator)).statusCode).toBe(200);
    const h = await post('/v1/merchants', hospital);
    expect(h.json()).toMatchObject({ is_operator: false, kind: 'MEDICAL' });
    expect(await count('ledger_account')).toBe(accounts);
    expect(await count('ledger_entry')).toBe(0);
  });

  it('refuses conflicts, an operator that is not TRANSIT and an unknown acquiring bank', async () => {
    const c = await post('/v1/merchants', { ...operator, settlement_account: '6222020000000999' });
    expect(c.statusCode).toBe(409);
    expect(errorBody(c).code).toBe('MERCHANT_CONFLICT');
    const op = await post('/v1/merchants', { ...hospital, id: 'HOSP2', is_operator: true });
    expect(op.statusCode).toBe(422);
    expect(errorBody(op).code).toBe('OPERATOR_KIND_INVALID');
    const nb = await post('/v1/merchants', { ...hospital, id: 'HOSP3', acquiring_bank: '999999999999' });
    expect(nb.statusCode).toBe(422);
    expect(errorBody(nb).code).toBe('BANK_NOT_FOUND');
    expect(errorBody(await post('/v1/merchants', { ...hospital, id: 'HOSP4', kind: 'BAKERY' })).code).toBe('VALIDATION_FAILED');
    expect(errorBody(await get('/v1/merchants/HOSP3')).code).toBe('MERCHANT_NOT_FOUND');
  });

  it('suspends a merchant with PATCH; kind cannot be patched', async () => {
    const r = await call('admin', 'PATCH', '/v1/merchants/HOSP1', { status: 'SUSPENDED' });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().status).toBe('SUSPENDED');
    expect((await get('/v1/merchants?status=SUSPENDED', 'finance')).json().items.map((m: { id: string }) => m.id)).toEqual(['HOSP1']);
    expect(errorBody(await call('admin', 'PATCH', '/v1/merchants/HOSP1', { kind: 'RETAIL' })).code).toBe('VALIDATION_FAILED');
    expect(errorBody(await call('admin', 'PATCH', '/v1/merchants/HOSP1', { acquiring_bank: '999999999999' })).code).toBe('BANK_NOT_FOUND');
    expect((await get('/v1/merchants/HOSP1')).json().acquiring_bank).toBe(bank2.code);
    const filtered = await get('/v1/merchants?is_operator=true');
    expect(filtered.json().items.map((m: { id: string }) => m.id)).toEqual(['OPR1']);
  });

  it('adds fee schedule versions: replay 200, other terms 409, bad terms 422, unknown merchant 404', async () => {
    const url = '/v1/merchants/OPR1/fee-schedules';
    const sched = { effective_from: '2026-12-01', rate: '0.003', min_fen: '0', max_fen: '50' };
    const r = await post(url, sched);
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json()).toMatchObject({ merchant_id: 'OPR1', ...sched });
    // The same terms written another way (trailing zeros) are the same schedule.
    expect((await post(url, { ...sched, rate: '0.00300' })).statusCode).toBe(200);
    const c = await post(url, { ...sched, max_fen: '60' });
    expect(c.statusCode).toBe(409);
    expect(errorBody(c).code).toBe('FEE_SCHEDULE_CONFLICT');
    expect(errorBody(await post(url, { ...sched, effective_from: '2027-01-01', rate: '1' })).code).toBe('FEE_RATE_INVALID');
    expect(errorBody(await post(url, { ...sched, effective_from: '2027-01-01', rate: '0.3%' })).code).toBe('VALIDATION_FAILED');
    const mm = await post(url, { ...sched, effective_from: '2027-01-01', min_fen: '100' });
    expect(mm.statusCode).toBe(422);
    expect(errorBody(mm).code).toBe('FEE_MIN_ABOVE_MAX');
    const nm = await post('/v1/merchants/NOPE/fee-schedules', sched);
    expect(nm.statusCode).toBe(404);
    expect(errorBody(nm).code).toBe('MERCHANT_NOT_FOUND');
    expect((await post(url, { ...sched, effective_from: '2027-01-01', rate: '0.0025' })).statusCode).toBe(201);
    const list = await get(`${url}?limit=1`, 'auditor');
    expect(list.json().items.map((f: { effective_from: string }) => f.effective_from)).toEqual(['2026-12-01']);
    const page2 = await get(`${url}?limit=1&cursor=${list.json().next_cursor}`, 'auditor');
    expect(page2.json().items.map((f: { rate: string }) => f.rate)).toEqual(['0.0025']);
  });

  it('refuses a schedule reaching back into a closed clearing cycle', async () => {
    await db.pool.query(`INSERT INTO clearing_cycle (id, business_date, state, opened_at, closed_at) VALUES ('CYC20261210', '2026-12-10', 'CLOSED', now(), now())`);
    const r = await post('/v1/merchants/OPR1/fee-schedules', { effective_from: '2026-12-10', rate: '0.002', min_fen: '0', max_fen: '50' });
    expect(r.statusCode).toBe(422);
    expect(errorBody(r).code).toBe('FEE_SCHEDULE_BACKDATED');
    // A replay of a schedule that already exists is still a replay.
    expect((await post('/v1/merchants/OPR1/fee-schedules', { effective_from: '2026-12-01', rate: '0.003', min_fen: '0', max_fen: '50' })).statusCode).toBe(200);
    expect((await post('/v1/merchants/OPR1/fee-schedules', { effective_from: '2026-12-11', rate: '0.002', min_fen: '0', max_fen: '50' })).statusCode).toBe(201);
  });
});

describe('terminals', () => {
  const term = { id: '420300000101', merchant_id: 'OPR1', line_id: 'B001', station_id: 'B001-S01', latitude: '32.629630', longitude: '110.798' };

  it('create, replay, conflict and unknown merchant', async () => {
    const r = await post('/v1/terminals', term);
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json()).toMatchObject({ ...term, longitude: '110.798000', status: 'ACTIVE' });
    expect((await post('/v1/terminals', { ...term, longitude: '110.798000' })).statusCode).toBe(200);
    expect(errorBody(await post('/v1/terminals', { ...term, station_id: 'B001-S02' })).code).toBe('TERMINAL_CONFLICT');
    const nm = await post('/v1/terminals', { ...term, id: '420300000102', merchant_id: 'NOPE' });
    expect(nm.statusCode).toBe(422);
    expect(errorBody(nm).code).toBe('MERCHANT_NOT_FOUND');
    expect(errorBody(await post('/v1/terminals', { ...term, id: '42030000010' })).code).toBe('VALIDATION_FAILED');
    expect(errorBody(await post('/v1/terminals', { ...term, id: '420300000103', latitude: '95' })).code).toBe('COORDINATES_INVALID');
  });

  it('moves and retires a terminal with PATCH, kept as reference events', async () => {
    const r = await call('admin', 'PATCH', `/v1/terminals/${term.id}`, { station_id: 'B001-S07', latitude: null, longitude: null });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ station_id: 'B001-S07', latitude: null, longitude: null });
    expect((await call('admin', 'PATCH', `/v1/terminals/${term.id}`, { status: 'RETIRED' })).json().status).toBe('RETIRED');
    expect(errorBody(await call('admin', 'PATCH', `/v1/terminals/${term.id}`, { latitude: '10' })).code).toBe('COORDINATES_INVALID');
    expect(errorBody(await call('admin', 'PATCH', '/v1/terminals/420399999999', { status: 'RETIRED' })).code).toBe('TERMINAL_NOT_FOUND');
    const ev = (await get(`/v1/reference-events?entity=terminal&entity_id=${term.id}`)).json().items as { action: string; changes: Record<string, unknown> | null }[];
    expect(ev.map((e) => e.action)).toEqual(['CREATED', 'UPDATED', 'UPDATED']);
    expect(ev[1].changes).toEqual({ station_id: ['B001-S01', 'B001-S07'], latitude: ['32.629630', null], longitude: ['110.798000', null] });
    expect(ev[2].changes).toEqual({ status: ['ACTIVE', 'RETIRED'] });
  });

  it('lists with a cursor: pages cover every row once, in order, and end with a null cursor', async () => {
    for (let i = 0; i < 7; i++) {
      expect((await post('/v1/terminals', { id: `4203990000${String(i).padStart(2, '0')}`, merchant_id: 'HOSP1' })).statusCode).toBe(201);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await get(`/v1/terminals?merchant_id=HOSP1&limit=3${cursor ? `&cursor=${cursor}` : ''}`, 'finance');
      expect(r.statusCode, r.body).toBe(200);
      const body = r.json() as { items: { id: string }[]; next_cursor: string | null };
      expect(body.items.length).toBeLessThanOrEqual(3);
      seen.push(...body.items.map((x) => x.id));
      cursor = body.next_cursor;
      pages++;
    } while (cursor !== null && pages < 10);
    const expected = Array.from({ length: 7 }, (_, i) => `4203990000${String(i).padStart(2, '0')}`);
    expect(seen).toEqual(expected);
    expect(pages).toBe(3);
    expect(errorBody(await get('/v1/terminals?limit=501')).code).toBe('VALIDATION_FAILED');
    expect(errorBody(await get('/v1/terminals?limit=0')).code).toBe('VALIDATION_FAILED');
  });
});

describe('cards', () => {
  const phys = { card_no: '6217001234567890123', issuing_bank: bank.code, form: 'PHYSICAL', issued_at: '2026-01-05T09:00:00+08:00', activated_at: '2026-01-05T10:00:00+08:00' };
  const ecard = { card_no: '6217001234567890131', issuing_bank: bank.code, form: 'ECARD', linked_card_no: phys.card_no };

  it('create with history, replay 200 (history not compared), identity conflict 409, unknown bank 422', async () => {
    const r = await post('/v1/cards', phys);
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json()).toMatchObject({ card_no: phys.card_no, status: 'ACTIVE', status_since: '2026-01-05T02:00:00.000Z', daily_limit_fen: '500000', linked_card_no: null });
    expect((await post('/v1/cards', { ...phys, activated_at: undefined })).statusCode).toBe(200);
    const c = await post('/v1/cards', { ...phys, issuing_bank: bank2.code });
    expect(c.statusCode).toBe(409);
    expect(errorBody(c).code).toBe('CARD_CONFLICT');
    const nb = await post('/v1/cards', { ...phys, card_no: '6217001234567890149', issuing_bank: '999999999999' });
    expect(nb.statusCode).toBe(422);
    expect(errorBody(nb).code).toBe('BANK_NOT_FOUND');
    const e = await post('/v1/cards', ecard);
    expect(e.statusCode, e.body).toBe(201);
    expect(e.json()).toMatchObject({ form: 'ECARD', linked_card_no: phys.card_no, status: 'ISSUED' });
    const nl = await post('/v1/cards', { ...ecard, card_no: '6217001234567890156', linked_card_no: '6217009999999999999' });
    expect(errorBody(nl).code).toBe('LINKED_CARD_NOT_FOUND');
    const el = await post('/v1/cards', { ...ecard, card_no: '6217001234567890164', linked_card_no: ecard.card_no });
    expect(errorBody(el).code).toBe('LINKED_CARD_INVALID');
    expect(errorBody(await post('/v1/cards', { ...phys, card_no: '621700123456789' })).code).toBe('VALIDATION_FAILED');
    const events = await db.pool.query(`SELECT status FROM card_status_event WHERE card_no = $1 ORDER BY id`, [phys.card_no]);
    expect(events.rows.map((x) => x.status)).toEqual(['ISSUED', 'ACTIVE']);
    expect((await get(`/v1/cards/${phys.card_no}`, 'auditor')).json().status).toBe('ACTIVE');
    expect(errorBody(await get('/v1/cards/6217009999999999999')).code).toBe('CARD_NOT_FOUND');
    const list = await get(`/v1/cards?issuing_bank=${bank.code}&form=ECARD`, 'finance');
    expect(list.json().items.map((x: { card_no: string }) => x.card_no)).toEqual([ecard.card_no]);
  });
});

describe('key versions', () => {
  it('lists configured versions only, never key material', async () => {
    const r = await get('/v1/keys', 'auditor');
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ tac: { versions: [1] }, qr: { versions: [1], current_version: 1 } });
    for (const k of [test_tac_master_keys, test_qr_master_keys]) expect(r.body.toUpperCase()).not.toContain(k.split(':')[1]);
  });
});

describe('roles', () => {
  const mine = /^\/v1\/(banks|merchants|terminals|cards|keys|reference-events)/;
  const sample: Record<string, string> = { ':code': bank.code, ':id': 'OPR1', ':cardNo': '6217001234567890123' };
  const concrete = (url: string) => url.replace(/:[A-Za-z]+/g, (m) => (m === ':id' && url.startsWith('/v1/terminals') ? '420300000101' : sample[m] ?? 'x'));

  it('operator and bank keys get 403 on every reference route; no key gets 401', async () => {
    const routes = registeredRoutes(t.app).filter((r) => mine.test(r.url) && r.method !== 'HEAD');
    // Other engineers' routes may share a prefix (/v1/cards/:cardNo/...): only this plugin's.
    const ours = routes.filter((r) => !/purse-loads|\/v1\/cards\/:cardNo\/(?!status-events)/.test(r.url));
    expect(ours.length).toBeGreaterThanOrEqual(20);
    for (const r of ours) {
      for (const who of ['operator', 'bank'] as const) {
        const res = await call(who, r.method as 'GET', concrete(r.url), r.method === 'GET' ? undefined : {});
        expect(res.statusCode, `${who} ${r.method} ${r.url}`).toBe(403);
        expect(errorBody(res).code).toBe('FORBIDDEN_ROLE');
      }
      const anon = await call(null, r.method as 'GET', concrete(r.url), r.method === 'GET' ? undefined : {});
      expect(anon.statusCode, `anonymous ${r.method} ${r.url}`).toBe(401);
    }
  });

  it('finance and auditor read but cannot write', async () => {
    for (const who of ['finance', 'auditor'] as const) {
      expect((await get('/v1/banks', who)).statusCode).toBe(200);
      expect((await get('/v1/merchants/OPR1', who)).statusCode).toBe(200);
      const w = await post('/v1/banks', { code: '301100099991', name: 'x' }, who);
      expect(w.statusCode).toBe(403);
      expect(errorBody(w).code).toBe('FORBIDDEN_ROLE');
      expect((await call(who, 'PATCH', '/v1/merchants/OPR1', { name: 'y' })).statusCode).toBe(403);
      expect((await post('/v1/cards/imports', { items: [{ card_no: '1' }] }, who)).statusCode).toBe(403);
    }
    expect(errorBody(await get('/v1/banks/301100099991')).code).toBe('BANK_NOT_FOUND');
  });

  it('every reference route is in the OpenAPI document with its security and error responses', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>> };
    for (const p of ['/v1/banks', '/v1/merchants/{id}/fee-schedules', '/v1/terminals/imports', '/v1/cards/imports', '/v1/cards/{cardNo}/status-events', '/v1/keys']) {
      const ops = doc.paths[p];
      expect(ops, p).toBeDefined();
      for (const op of Object.values(ops)) {
        expect(op.security).toEqual([{ bearer: [] }]);
        expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '401', '403', '422']));
      }
    }
  });
});
