/**
 * Complaints: public filing (validated, contact sealed, rate-limited per address, idempotent by
 * request id), the complainant's view by access code, staff listing with the overdue filter
 * against a pinned clock, assignment, answer fed back to the complainant, masked details unless
 * the purpose is COMPLAINT_HANDLING, every read audited.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from './support/db.ts';
import { bearer, errorBody } from './support/http.ts';
import { buildCardsApp, type CardsApp } from './support/cards-app.ts';

let db: TestDb;
let a: CardsApp;
const day_ms = 86_400_000;

beforeAll(async () => {
  db = await freshDatabase(6);
  a = await buildCardsApp(db.pool, { options: { complaintDeadlineDays: 15, complaintFilingBucket: { capacity: 3, refillMs: 60_000, keysMax: 1000 } } });
});

afterAll(async () => {
  await a?.app.close();
  await db?.drop();
});

let n = 0;
const complaint = (extra: Record<string, unknown> = {}) => ({
  request_id: `complaint-${++n}-abcdef`, complainant_kind: 'CARDHOLDER', category: 'CARD_SERVICE',
  contact: { name: '王五', phone: '13800001111' }, description: 'The counter refused to replace my card.', ...extra,
});

async function file(body: unknown, ip = '10.0.0.1') {
  return a.app.inject({ method: 'POST', url: '/v1/complaints', remoteAddress: ip, payload: body as Record<string, unknown> });
}

describe('filing', () => {
  it('anyone can file; contact and text are sealed; the access code reads it back', async () => {
    const r = await file(complaint());
    expect(r.statusCode).toBe(201);
    const b = r.json();
    expect(b.complaint_id).toMatch(/^cmp_[0-9]+$/);
    expect(b.access_code).toMatch(/^[A-Z2-7]{26}$/);
    expect(Date.parse(b.due_at) - Date.parse(b.filed_at)).toBe(15 * day_ms);
    const row = (await db.pool.query(`SELECT * FROM complaint WHERE id = $1`, [b.complaint_id.slice(4)])).rows[0];
    const flat = JSON.stringify(row, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
    expect(flat).not.toContain('13800001111');
    expect(flat).not.toContain('refused to replace');
    expect(flat).not.toContain(b.access_code);

    const view = await a.app.inject({ method: 'GET', url: `/v1/complaints/${b.complaint_id}?access_code=${b.access_code}` });
    expect(view.statusCode).toBe(200);
    expect(view.json()).toMatchObject({ complaint_id: b.complaint_id, state: 'OPEN', answer: null, overdue: false });
    expect(view.body).not.toContain('13800001111');
    // A wrong code looks exactly like an unknown complaint.
    const wrong = await a.app.inject({ method: 'GET', url: `/v1/complaints/${b.complaint_id}?access_code=${'A'.repeat(26)}` });
    expect(wrong.statusCode).toBe(404);
    const unknown = await a.app.inject({ method: 'GET', url: `/v1/complaints/cmp_99999?access_code=${b.access_code}` });
    expect(unknown.statusCode).toBe(404);
    expect(errorBody(wrong)).toEqual(errorBody(unknown));
  });

  it('a replay of the same request returns the same complaint and code; different content is refused', async () => {
    const body = complaint();
    const first = await file(body, '10.0.0.2');
    const again = await file(body, '10.0.0.2');
    expect(again.statusCode).toBe(200);
    expect({ ...again.json(), replayed: false }).toEqual(first.json());
    const changed = await file({ ...body, description: 'Something else entirely, really.' }, '10.0.0.2');
    expect(changed.statusCode).toBe(409);
  });

  it('validates: a contact to answer, no control characters, known categories', async () => {
    expect((await file(complaint({ contact: { name: '匿名' } }), '10.0.0.3')).statusCode).toBe(400);
    expect(errorBody(await file(complaint({ description: 'bad \u0007 bell in the text' }), '10.0.0.4')).code).toBe('TEXT_INVALID');
    expect((await file(complaint({ category: 'NONSENSE' }), '10.0.0.5')).statusCode).toBe(400);
    expect((await file(complaint({ request_id: 'short' }), '10.0.0.6')).statusCode).toBe(400);
  });

  it('rate-limits filing per address, refilling over time', async () => {
    const ip = '10.9.9.9';
    for (let i = 0; i < 3; i++) expect((await file(complaint(), ip)).statusCode).toBe(201);
    const limited = await file(complaint(), ip);
    expect(limited.statusCode).toBe(429);
    expect(errorBody(limited).code).toBe('RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Another address is not affected.
    expect((await file(complaint(), '10.9.9.10')).statusCode).toBe(201);
    a.clock.advance(60_000);
    expect((await file(complaint(), ip)).statusCode).toBe(201);
    expect((await file(complaint(), ip)).statusCode).toBe(429);
  });
});

describe('handling', () => {
  let id: string;
  let code: string;
  beforeAll(async () => {
    const r = (await file(complaint({ contact: { name: '赵六', email: 'zhao.liu@example.cn', phone: '13900002222' } }), '10.1.1.1')).json();
    id = r.complaint_id;
    code = r.access_code;
  });

  it('lists overdue complaints once the deadline passes', async () => {
    const list = async (q = '') => (await a.app.inject({ method: 'GET', url: `/v1/complaints${q}`, headers: bearer(a.tokens.admin) })).json();
    expect((await list('?overdue=true')).items).toEqual([]);
    a.clock.advance(16 * day_ms);
    const overdue = (await list('?overdue=true')).items.map((c: { complaint_id: string }) => c.complaint_id);
    expect(overdue).toContain(id);
    expect((await list('?limit=2')).items).toHaveLength(2);
    expect((await list('?limit=2')).next_cursor).not.toBeNull();
    expect((await a.app.inject({ method: 'GET', url: '/v1/complaints', headers: bearer(a.tokens.finance) })).statusCode).toBe(403);
    expect((await a.app.inject({ method: 'GET', url: '/v1/complaints' })).statusCode).toBe(401);
  });

  it('details are masked without the handling purpose, full with it; both reads audited', async () => {
    const masked = (await a.app.inject({ method: 'GET', url: `/v1/complaints/${id}/details`, headers: bearer(a.tokens.admin) })).json();
    expect(masked.contact.name).toBe('赵*');
    expect(masked.contact.phone).toBe('139****2222');
    expect(masked.contact.email).toBe('z***@example.cn');
    expect(masked.description).toMatch(/characters withheld/);
    const full = (await a.app.inject({ method: 'GET', url: `/v1/complaints/${id}/details`, headers: { ...bearer(a.tokens.admin), 'x-purpose': 'COMPLAINT_HANDLING' } })).json();
    expect(full.contact).toEqual({ name: '赵六', phone: '13900002222', email: 'zhao.liu@example.cn' });
    expect(full.description).toBe('The counter refused to replace my card.');
    expect(full.revealed.sort()).toEqual(['description', 'email', 'name', 'phone']);
    const audits = (await db.pool.query(`SELECT purpose, fields FROM audit_log WHERE subject = $1 AND action = 'COMPLAINT_READ' ORDER BY seq`, [`complaint:${id}`])).rows;
    expect(audits.map((x) => [x.purpose, x.fields.length])).toEqual([[null, 0], ['COMPLAINT_HANDLING', 4]]);
  });

  it('assign, answer: the complainant sees the answer; an answered complaint is closed and no longer overdue', async () => {
    const asg = await a.app.inject({ method: 'POST', url: `/v1/complaints/${id}/assignment`, headers: bearer(a.tokens.admin), payload: { assignee: 'desk-3' } });
    expect(asg.statusCode).toBe(200);
    expect(asg.json()).toMatchObject({ state: 'ASSIGNED', assignee: 'desk-3' });
    const ans = await a.app.inject({ method: 'POST', url: `/v1/complaints/${id}/answer`, headers: bearer(a.tokens.admin), payload: { answer: 'We apologise; your card was replaced on 1 December.' } });
    expect(ans.statusCode).toBe(200);
    expect(ans.json().events.map((e: { to_state: string }) => e.to_state)).toEqual(['OPEN', 'ASSIGNED', 'ANSWERED']);
    const view = (await a.app.inject({ method: 'GET', url: `/v1/complaints/${id}?access_code=${code}` })).json();
    expect(view).toMatchObject({ state: 'ANSWERED', answer: 'We apologise; your card was replaced on 1 December.', overdue: false });
    const again = await a.app.inject({ method: 'POST', url: `/v1/complaints/${id}/answer`, headers: bearer(a.tokens.admin), payload: { answer: 'again' } });
    expect(again.statusCode).toBe(409);
    expect(errorBody(again).code).toBe('COMPLAINT_TRANSITION_INVALID');
    const overdue = (await a.app.inject({ method: 'GET', url: '/v1/complaints?overdue=true', headers: bearer(a.tokens.admin) })).json().items;
    expect(overdue.map((c: { complaint_id: string }) => c.complaint_id)).not.toContain(id);
  });
});

describe('services catalogue', () => {
  it('is public and states the configured complaint deadline', async () => {
    const r = await a.app.inject({ method: 'GET', url: '/v1/services' });
    expect(r.statusCode).toBe(200);
    const ids = r.json().items.map((s: { id: string }) => s.id);
    for (const s of ['apply', 'report-loss', 'unfreeze', 'replace', 'cancel', 'complain']) expect(ids).toContain(s);
    expect(r.json().items.find((s: { id: string }) => s.id === 'complain').time_limit).toContain('15 days');
  });
});

describe('OpenAPI', () => {
  it('documents every cards, cases, complaints and audit route; the guarded ones with bearer security, 401 and 403', async () => {
    const doc = (await a.app.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, Record<string, { security?: Record<string, unknown>[]; responses?: Record<string, unknown> }>> };
    const mine = Object.entries(doc.paths).filter(([p]) => /^\/v1\/(card-applications|cards\/|persons|hotlist|services|cases|complaints|audit-log)/.test(p));
    const ops = mine.flatMap(([p, o]) => Object.entries(o).map(([m, op]) => ({ id: `${m.toUpperCase()} ${p}`, op })));
    const ids = ops.map((x) => x.id);
    for (const expected of ['POST /v1/card-applications', 'POST /v1/cards/{cardNo}/loss-reports', 'POST /v1/cards/{cardNo}/replacements', 'GET /v1/hotlist',
      'GET /v1/persons/{personId}', 'POST /v1/cases/{id}/confirmation', 'POST /v1/complaints', 'GET /v1/audit-log', 'GET /v1/services']) {
      expect(ids).toContain(expected);
    }
    const publicOps = new Set(['GET /v1/services', 'POST /v1/complaints', 'GET /v1/complaints/{id}']);
    for (const { id, op } of ops) {
      const declared = (op.security ?? []).some((s) => 'bearer' in s);
      expect(declared, id).toBe(!publicOps.has(id));
      if (declared) {
        expect(op.responses, id).toHaveProperty('401');
        expect(op.responses, id).toHaveProperty('403');
      }
    }
  });
});
