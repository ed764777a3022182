/**
 * The terminals' hotlist: every move into or out of LOST_REPORTED / SUSPENDED / CANCELLED bumps
 * a gapless version (whoever writes card.status), the full list at a version, the delta since a
 * version, JSON and protobuf, roles, and versions that stay gapless and ordered under concurrency.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHotlistDelta, decodeHotlistPage } from '../adapters/protobuf/hotlist-codec.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { bearer, errorBody } from './support/http.ts';
import { applyCard, buildCardsApp, cardAction, nationalId, type CardsApp } from './support/cards-app.ts';

let db: TestDb;
let a: CardsApp;

beforeAll(async () => {
  db = await freshDatabase(10);
  a = await buildCardsApp(db.pool);
});

afterAll(async () => {
  await a?.app.close();
  await db?.drop();
});

const person = (seq: number) => ({ name: `热名单${seq}`, national_id: nationalId('420300', '19900215', seq), phone: `1391111${String(seq).padStart(4, '0')}` });

async function get(url: string, token = a.tokens.operator, accept?: string) {
  return a.app.inject({ method: 'GET', url, headers: { ...bearer(token), ...(accept ? { accept } : {}) } });
}

type Delta = { from_version: string; to_version: string; more: boolean; changes: { version: string; card_no: string; op: string; status: string }[] };

describe('hotlist', () => {
  it('versions every add and remove, serves full list and delta, in JSON and protobuf', async () => {
    const start = await get('/v1/hotlist');
    expect(start.statusCode).toBe(200);
    const v0 = BigInt(start.json().version);

    const c1 = await applyCard(a, person(1));
    const c2 = await applyCard(a, person(2));
    const c3 = await applyCard(a, person(3));
    // Issuing and activating do not touch the hotlist.
    await cardAction(a, c1.physical, 'activation');
    expect(BigInt((await get('/v1/hotlist')).json().version)).toBe(v0);

    await cardAction(a, c1.physical, 'loss-reports', { channel: 'PHONE' });
    await cardAction(a, c2.physical, 'loss-reports', { channel: 'APP' });
    await cardAction(a, c1.physical, 'unfreeze', { reason: 'found' });
    await cardAction(a, c3.physical, 'cancellation', { reason: 'moving away' });

    const delta = await get(`/v1/hotlist?since_version=${v0}`);
    expect(delta.statusCode).toBe(200);
    const d = delta.json() as Delta;
    // c3's cancellation also cancels its e-card: 5 changes.
    expect(d.changes).toHaveLength(5);
    expect(d.changes.slice(0, 3).map((c) => [c.card_no, c.op, c.status])).toEqual([
      [c1.physical, 'ADD', 'LOST_REPORTED'], [c2.physical, 'ADD', 'LOST_REPORTED'], [c1.physical, 'REMOVE', 'ACTIVE']]);
    expect(new Set(d.changes.slice(3).map((c) => c.card_no))).toEqual(new Set([c3.physical, c3.ecard]));
    expect(d.changes.map((c) => BigInt(c.version))).toEqual([1n, 2n, 3n, 4n, 5n].map((i) => v0 + i));
    expect(d.to_version).toBe(String(v0 + 5n));
    expect(d.more).toBe(false);

    // The full list is the current state: c1 is off again, c2 and c3 (with its e-card) on.
    const full = (await get('/v1/hotlist')).json() as { version: string; entries: { card_no: string; status: string }[]; next_cursor: string | null };
    expect(full.version).toBe(String(v0 + 5n));
    expect(full.entries.map((e) => e.card_no).sort()).toEqual([c2.physical, c3.physical, c3.ecard].sort());
    expect(full.next_cursor).toBeNull();

    // Paging the full list by card number.
    const p1 = (await get('/v1/hotlist?limit=2')).json();
    expect(p1.entries).toHaveLength(2);
    expect(p1.next_cursor).toBe(p1.entries[1].card_no);
    const p2 = (await get(`/v1/hotlist?limit=2&cursor=${p1.next_cursor}`)).json();
    expect([...p1.entries, ...p2.entries].map((e: { card_no: string }) => e.card_no)).toEqual(full.entries.map((e) => e.card_no));
    expect(p2.next_cursor).toBeNull();

    // Delta paging.
    const dp = (await get(`/v1/hotlist?since_version=${v0}&limit=2`)).json() as Delta;
    expect(dp.changes).toHaveLength(2);
    expect(dp.more).toBe(true);
    expect(dp.to_version).toBe(String(v0 + 2n));

    // Protobuf: the same content.
    const pb = await get(`/v1/hotlist?since_version=${v0}`, a.tokens.operator, 'application/x-protobuf');
    expect(pb.statusCode).toBe(200);
    expect(pb.headers['content-type']).toContain('application/x-protobuf');
    const decoded = decodeHotlistDelta(pb.rawPayload);
    expect(decoded.changes.map((c) => [c.version, c.card_no, c.op, c.status])).toEqual(d.changes.map((c) => [c.version, c.card_no, c.op, c.status]));
    expect(decoded.to_version).toBe(d.to_version);
    const pbFull = decodeHotlistPage((await get('/v1/hotlist', a.tokens.admin, 'application/x-protobuf')).rawPayload);
    expect(pbFull.version).toBe(full.version);
    expect(pbFull.entries.map((e) => [e.card_no, e.status])).toEqual(full.entries.map((e) => [e.card_no, e.status]));

    // Nothing personal in the hotlist.
    for (const body of [delta.body, JSON.stringify(full)]) {
      for (const p of [person(1), person(2), person(3)]) {
        expect(body).not.toContain(p.national_id);
        expect(body).not.toContain(p.phone);
        expect(body).not.toContain(p.name);
      }
    }
  });

  it('a version never issued is refused, so a terminal reloads the full list', async () => {
    const r = await get('/v1/hotlist?since_version=999999999');
    expect(r.statusCode).toBe(409);
    expect(errorBody(r).code).toBe('HOTLIST_VERSION_UNKNOWN');
  });

  it('is open to operators and admins only', async () => {
    for (const role of ['finance', 'auditor', 'bank'] as const) expect((await get('/v1/hotlist', a.tokens[role])).statusCode).toBe(403);
    expect((await a.app.inject({ method: 'GET', url: '/v1/hotlist' })).statusCode).toBe(401);
  });

  it('tracks status changes made by any writer of card.status (the trigger, not the route)', async () => {
    const c = await applyCard(a, person(20));
    const before = BigInt((await get('/v1/hotlist')).json().version);
    await db.pool.query(`UPDATE card SET status = 'SUSPENDED', status_since = now() WHERE card_no = $1`, [c.physical]);
    const d = (await get(`/v1/hotlist?since_version=${before}`)).json() as Delta;
    expect(d.changes.map((x) => [x.card_no, x.op, x.status])).toEqual([[c.physical, 'ADD', 'SUSPENDED']]);
  });

  it('versions stay gapless and in commit order under concurrent loss reports', async () => {
    const cards = [];
    for (let i = 0; i < 12; i++) cards.push(await applyCard(a, person(100 + i)));
    const before = BigInt((await get('/v1/hotlist')).json().version);
    const rs = await Promise.all(cards.map((c) => cardAction(a, c.physical, 'loss-reports', { channel: 'PHONE' })));
    expect(rs.every((r) => r.statusCode === 201)).toBe(true);
    const d = (await get(`/v1/hotlist?since_version=${before}&limit=100`)).json() as Delta;
    expect(d.changes.map((c) => BigInt(c.version))).toEqual(cards.map((_, i) => before + BigInt(i + 1)));
    expect(new Set(d.changes.map((c) => c.card_no))).toEqual(new Set(cards.map((c) => c.physical)));
    // Each action's answer carries a hotlist version that includes its own change.
    const byCard = new Map(d.changes.map((c) => [c.card_no, BigInt(c.version)]));
    for (const r of rs) expect(BigInt(r.json().hotlist_version)).toBeGreaterThanOrEqual(byCard.get(r.json().card_no)!);
  });
});
