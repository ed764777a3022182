/**
 * Personal data: sealed at rest (a pg_dump of the database holds no plaintext), looked up by
 * blind index, shown masked unless the role and the stated purpose allow the full value, every
 * read audited with its purpose and the fields revealed; and nothing personal in the logs of a
 * full flow (application, read with purpose, search, loss report, complaint).
 */
import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../adapters/logger.ts';
import { maskName, maskNationalId, maskPhone } from '../adapters/crypto/index.ts';
import { reveal_table } from '../engine/cards/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { bearer, errorBody } from './support/http.ts';
import { applyCard, buildCardsApp, cardAction, nationalId, type Applied, type CardsApp } from './support/cards-app.ts';

const run = promisify(execFile);

let db: TestDb;
let a: CardsApp;
const logLines: string[] = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    logLines.push(chunk.toString('utf8'));
    cb();
  },
});

const alice = { name: '张小明', national_id: nationalId('330106', '19851120', 17), phone: '13912345678', address: '浙江省杭州市西湖区文三路100号' };
const bob = { name: '李四', national_id: nationalId('330106', '19700304', 23), phone: '13912345678', address: '浙江省杭州市上城区某路1号' };
let aliceCards: Applied;
let bobCards: Applied;

beforeAll(async () => {
  db = await freshDatabase(6);
  a = await buildCardsApp(db.pool, { logger: createLogger('info', sink) });
  aliceCards = await applyCard(a, alice);
  bobCards = await applyCard(a, bob);
});

afterAll(async () => {
  await a?.app.close();
  await db?.drop();
});

async function readPerson(personId: string, token: string, purpose?: string, via: 'header' | 'query' = 'header') {
  const url = `/v1/persons/${personId}${purpose && via === 'query' ? `?purpose=${purpose}` : ''}`;
  return a.app.inject({ method: 'GET', url, headers: { ...bearer(token), ...(purpose && via === 'header' ? { 'x-purpose': purpose } : {}) } });
}

async function auditOf(subject: string) {
  return (await db.pool.query(`SELECT action, role, purpose, fields FROM audit_log WHERE subject = $1 ORDER BY seq`, [subject])).rows;
}

describe('masking by role and purpose', () => {
  it('admin without a purpose sees every field masked', async () => {
    const r = await readPerson(aliceCards.personId, a.tokens.admin);
    expect(r.statusCode).toBe(200);
    const p = r.json();
    expect(p.name).toBe(maskName(alice.name));
    expect(p.national_id).toBe(maskNationalId(alice.national_id));
    expect(p.phone).toBe(maskPhone(alice.phone));
    expect(p.address).not.toBe(alice.address);
    expect(p.address.startsWith(alice.address.slice(0, 6))).toBe(true);
    expect(p.revealed).toEqual([]);
    expect(p.cards.map((c: { card_no: string }) => c.card_no).sort()).toEqual([aliceCards.physical, aliceCards.ecard].sort());
  });

  it('admin with CARD_SERVICE sees everything, finance with FRAUD_INVESTIGATION sees what the table allows, via header or query', async () => {
    const full = (await readPerson(aliceCards.personId, a.tokens.admin, 'CARD_SERVICE')).json();
    expect([full.name, full.national_id, full.phone, full.address]).toEqual([alice.name, alice.national_id, alice.phone, alice.address]);
    expect(full.revealed.sort()).toEqual(['address', 'name', 'national_id', 'phone']);

    const fin = (await readPerson(aliceCards.personId, a.tokens.finance, 'FRAUD_INVESTIGATION', 'query')).json();
    expect(fin.name).toBe(alice.name);
    expect(fin.national_id).toBe(alice.national_id);
    expect(fin.phone).toBe(alice.phone);
    expect(fin.address).not.toBe(alice.address);
    expect(fin.revealed.sort()).toEqual([...reveal_table.finance.FRAUD_INVESTIGATION!].sort());

    // A purpose the role has no entry for reveals nothing.
    const finCard = (await readPerson(aliceCards.personId, a.tokens.finance, 'CARD_SERVICE')).json();
    expect(finCard.national_id).toBe(maskNationalId(alice.national_id));
    expect(finCard.revealed).toEqual([]);
    const aud = (await readPerson(aliceCards.personId, a.tokens.auditor, 'AUDIT_REVIEW')).json();
    expect(aud.name).toBe(alice.name);
    expect(aud.national_id).toBe(maskNationalId(alice.national_id));
  });

  it('refuses an unknown purpose and roles without access to persons', async () => {
    const bad = await readPerson(aliceCards.personId, a.tokens.admin, 'CURIOSITY');
    expect(bad.statusCode).toBe(400);
    for (const role of ['operator', 'bank'] as const) expect((await readPerson(aliceCards.personId, a.tokens[role])).statusCode).toBe(403);
    const missing = await readPerson('per_999999', a.tokens.admin);
    expect(missing.statusCode).toBe(404);
    expect(errorBody(missing).code).toBe('PERSON_NOT_FOUND');
  });

  it('every read is audited with role, purpose and the fields revealed', async () => {
    const rows = await auditOf(`person:${aliceCards.personId}`);
    const reads = rows.filter((r) => r.action === 'PERSON_READ');
    expect(reads.map((r) => [r.role, r.purpose, [...r.fields].sort()])).toEqual([
      ['admin', null, []],
      ['admin', 'CARD_SERVICE', ['address', 'name', 'national_id', 'phone']],
      ['finance', 'FRAUD_INVESTIGATION', ['name', 'national_id', 'phone']],
      ['finance', 'CARD_SERVICE', []],
      ['auditor', 'AUDIT_REVIEW', ['name']],
    ]);
  });
});

describe('lookups by blind index', () => {
  it('finds a person by national ID number (any spacing or case of X) and by phone, without plaintext in the database', async () => {
    const spaced = `${alice.national_id.slice(0, 6)} ${alice.national_id.slice(6).toLowerCase()}`;
    const r = await a.app.inject({ method: 'POST', url: '/v1/persons/search', headers: { ...bearer(a.tokens.admin), 'x-purpose': 'CARD_SERVICE' }, payload: { national_id: spaced } });
    expect(r.statusCode).toBe(200);
    expect(r.json().items.map((p: { person_id: string }) => p.person_id)).toEqual([aliceCards.personId]);
    expect(r.json().items[0].national_id).toBe(alice.national_id);

    // Alice and Bob share a phone number: both are found, masked without a purpose.
    const byPhone = await a.app.inject({ method: 'POST', url: '/v1/persons/search', headers: bearer(a.tokens.admin), payload: { phone: '+86 139-1234-5678' } });
    expect(byPhone.json().items.map((p: { person_id: string }) => p.person_id).sort()).toEqual([aliceCards.personId, bobCards.personId].sort());
    expect(byPhone.json().items.every((p: { phone: string }) => p.phone === maskPhone(alice.phone))).toBe(true);
    const searches = (await db.pool.query(`SELECT count(*)::int AS n FROM audit_log WHERE action = 'PERSON_SEARCH'`)).rows[0].n;
    expect(searches).toBe(3);

    const none = await a.app.inject({ method: 'POST', url: '/v1/persons/search', headers: bearer(a.tokens.admin), payload: { national_id: nationalId('330106', '19990101', 1) } });
    expect(none.json().items).toEqual([]);
    const both = await a.app.inject({ method: 'POST', url: '/v1/persons/search', headers: bearer(a.tokens.admin), payload: { national_id: alice.national_id, phone: alice.phone } });
    expect(both.statusCode).toBe(400);
  });

  it('a pg_dump of the whole database holds no plaintext name, national ID number, phone or address', async () => {
    const { stdout } = await run('pg_dump', ['--no-owner', '--data-only', db.url], { maxBuffer: 256 * 1024 * 1024 });
    expect(stdout).toContain('COPY public.person');
    expect(stdout).toContain('COPY public.audit_log');
    for (const p of [alice, bob]) {
      for (const v of [p.national_id, p.name, p.phone, p.address, p.national_id.slice(6, 14) + p.national_id.slice(14)]) expect(stdout).not.toContain(v);
    }
    // The dump does hold the sealed rows (hex bytea), so the check looked at the right data.
    const sealedRows = (await db.pool.query(`SELECT count(*)::int AS n FROM person`)).rows[0].n;
    expect(sealedRows).toBe(2);
  });
});

describe('logs', () => {
  it('a full flow logs requests but never a name, ID number, phone, address, access code or full card number', async () => {
    await readPerson(aliceCards.personId, a.tokens.admin, 'CARD_SERVICE');
    await cardAction(a, aliceCards.physical, 'activation');
    await cardAction(a, aliceCards.physical, 'loss-reports', { channel: 'PHONE', reason: 'lost' });
    await a.app.inject({ method: 'GET', url: `/v1/hotlist?cursor=${aliceCards.physical}`, headers: bearer(a.tokens.operator) });
    await a.app.inject({ method: 'GET', url: `/v1/cases?card_no=${aliceCards.physical}`, headers: bearer(a.tokens.admin) });
    const filed = await a.app.inject({ method: 'POST', url: '/v1/complaints', payload: {
      request_id: 'log-test-complaint', complainant_kind: 'CARDHOLDER', category: 'CARD_SERVICE',
      contact: { name: alice.name, phone: alice.phone }, description: `My card ${aliceCards.physical} was refused; ID ${alice.national_id}.` } });
    expect(filed.statusCode).toBe(201);
    const { complaint_id, access_code } = filed.json();
    expect((await a.app.inject({ method: 'GET', url: `/v1/complaints/${complaint_id}?access_code=${access_code}` })).statusCode).toBe(200);
    // A validation failure echoes nothing personal either.
    await a.app.inject({ method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens.admin), payload: { application_id: 'x', person: { name: alice.name, national_id: alice.national_id, phone: 'not a phone' } } });

    const text = logLines.join('');
    expect(text).toContain('incoming request');
    expect(text).toContain('/v1/cards/');
    for (const secret of [alice.name, alice.national_id, alice.phone, alice.address, aliceCards.physical, aliceCards.ecard, access_code, bobCards.physical]) {
      expect(text).not.toContain(secret);
    }
  });
});
