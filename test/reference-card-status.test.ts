/**
 * Card status events: `recordCardStatus` keeps every change as an inserted row with actor and
 * time, keeps `card.status` equal to the latest event, judges each change against the status in
 * force at its effective time, and serializes concurrent changes of one card. Ingestion reads
 * the histories of many cards in one query and asks `cardStatusAt` (property-tested here
 * against the database: the status at t is the latest stored event effective at or before t).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../adapters/postgres/db.ts';
import { cardStatusEvents, importRows, recordCardStatus } from '../adapters/reference/index.ts';
import { DomainError } from '../engine/errors.ts';
import { cardStatusAt, checkStatusChange, luhnCheckDigit } from '../engine/reference/index.ts';
import type { CardStatus, CardStatusEvent } from '../engine/reference/index.ts';
import { bearer, buildTestApp, errorBody, mintKey, type TestApp } from './support/http.ts';
import { freshDatabase, type TestDb } from './support/db.ts';

let db: TestDb;
let t: TestApp;
let admin = '';
const bank = '102100099996';
const t0 = Date.UTC(2026, 9, 1, 0, 0, 0);
const at = (minute: number) => new Date(t0 + minute * 60_000);
let serial = 0;

/** A fresh card, ISSUED at minute 0 and ACTIVE at minute 10. */
async function newCard(): Promise<string> {
  const partial = `622848${String(++serial).padStart(12, '0')}`;
  const cardNo = `${partial}${luhnCheckDigit(partial)}`;
  const r = await withTx(db.pool, (tx) => importRows(tx, 'cards', [{
    card_no: cardNo, issuing_bank: bank, form: 'PHYSICAL', issued_at: at(0).toISOString(), activated_at: at(10).toISOString(),
  }], { actor: 'test', at: new Date() }));
  expect(r.errors).toEqual([]);
  return cardNo;
}

beforeAll(async () => {
  db = await freshDatabase(12);
  t = await buildTestApp(db.pool, null);
  admin = (await mintKey(db.pool, 'admin')).token;
  await withTx(db.pool, (tx) => importRows(tx, 'banks', [{ code: bank, name: 'ABC test' }], { actor: 'test', at: new Date() }));
});
afterAll(async () => {
  await t?.app.close();
  await db?.drop();
});

async function cardRow(cardNo: string): Promise<{ status: string; status_since: Date }> {
  return (await db.pool.query<{ status: string; status_since: Date }>('SELECT status, status_since FROM card WHERE card_no = $1', [cardNo])).rows[0];
}

async function storedEvents(cardNo: string): Promise<CardStatusEvent[]> {
  return (await cardStatusEvents(db.pool, [cardNo])).get(cardNo) ?? [];
}

describe('recordCardStatus', () => {
  it('a back-dated loss report: the tap before it is ACTIVE, after it LOST_REPORTED; the card shows it', async () => {
    const cardNo = await newCard();
    const r = await withTx(db.pool, (tx) => recordCardStatus(tx, { cardNo, status: 'LOST_REPORTED', effectiveAt: at(100), actor: 'desk:7', reason: 'phoned in', recordedAt: at(160) }));
    expect(r.replayed).toBe(false);
    expect(r.event).toMatchObject({ cardNo, status: 'LOST_REPORTED', effectiveAt: at(100), actor: 'desk:7', reason: 'phoned in', recordedAt: at(160) });
    expect(r.card).toEqual({ status: 'LOST_REPORTED', statusSince: at(100) });
    expect(await cardRow(cardNo)).toEqual({ status: 'LOST_REPORTED', status_since: at(100) });
    const events = await storedEvents(cardNo);
    expect(events.map((e) => e.status)).toEqual(['ISSUED', 'ACTIVE', 'LOST_REPORTED']);
    expect(cardStatusAt(events, at(99))).toBe('ACTIVE');
    expect(cardStatusAt(events, at(100))).toBe('LOST_REPORTED');
    expect(cardStatusAt(events, at(-1))).toBeNull();
    // The same report again is a replay: no second row.
    const again = await withTx(db.pool, (tx) => recordCardStatus(tx, { cardNo, status: 'LOST_REPORTED', effectiveAt: at(100), actor: 'desk:8' }));
    expect(again.replayed).toBe(true);
    expect(again.event.id).toBe(r.event.id);
    expect(await storedEvents(cardNo)).toHaveLength(3);
  });

  it('an event effective before the latest one leaves the current status alone', async () => {
    const cardNo = await newCard();
    await withTx(db.pool, (tx) => recordCardStatus(tx, { cardNo, status: 'LOST_REPORTED', effectiveAt: at(300), actor: 'a' }));
    await withTx(db.pool, (tx) => recordCardStatus(tx, { cardNo, status: 'SUSPENDED', effectiveAt: at(200), actor: 'risk' }));
    expect(await cardRow(cardNo)).toEqual({ status: 'LOST_REPORTED', status_since: at(300) });
    const events = await storedEvents(cardNo);
    expect(cardStatusAt(events, at(250))).toBe('SUSPENDED');
    expect(cardStatusAt(events, at(350))).toBe('LOST_REPORTED');
  });

  it('refuses with stable codes, writing nothing', async () => {
    const cardNo = await newCard();
    const code = async (status: CardStatus, minute: number, card = cardNo) => {
      try {
        await withTx(db.pool, (tx) => recordCardStatus(tx, { cardNo: card, status, effectiveAt: at(minute), actor: 'x' }));
        return 'applied';
      } catch (e) {
        if (e instanceof DomainError) return `${e.status} ${e.code}`;
        throw e;
      }
    };
    expect(await code('ACTIVE', 20)).toBe('409 CARD_STATUS_TRANSITION_INVALID');
    expect(await code('LOST_REPORTED', -5)).toBe('422 CARD_STATUS_BEFORE_ISSUE');
    expect(await code('ISSUED', 20)).toBe('409 CARD_STATUS_TRANSITION_INVALID');
    expect(await code('ACTIVE', 20, '6228489999999999999')).toBe('404 CARD_NOT_FOUND');
    expect(await code('CANCELLED', 50)).toBe('applied');
    expect(await code('ACTIVE', 60)).toBe('409 CARD_CANCELLED');
    expect(await code('LOST_REPORTED', 40)).toBe('409 CARD_CANCELLED');
    expect((await storedEvents(cardNo)).map((e) => e.status)).toEqual(['ISSUED', 'ACTIVE', 'CANCELLED']);
    expect((await cardRow(cardNo)).status).toBe('CANCELLED');
  });

  it('the database refuses edits of status history', async () => {
    const cardNo = await newCard();
    const err = await db.pool.query(`UPDATE card_status_event SET status = 'ACTIVE' WHERE card_no = $1`, [cardNo]).then(() => null, (e: { message: string }) => e);
    expect(err?.message).toMatch(/immutable/);
    const del = await db.pool.query(`DELETE FROM card_status_event WHERE card_no = $1`, [cardNo]).then(() => null, (e: { message: string }) => e);
    expect(del?.message).toMatch(/immutable/);
  });

  it('property: any sequence of changes keeps the stored history valid, card.status its latest event, and cardStatusAt right at every minute', async () => {
    const statuses: CardStatus[] = ['ISSUED', 'ACTIVE', 'LOST_REPORTED', 'SUSPENDED', 'CANCELLED'];
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ status: fc.constantFrom(...statuses), minute: fc.integer({ min: -3, max: 40 }) }), { minLength: 1, maxLength: 12 }),
      async (changes) => {
        const cardNo = await newCard();
        const model: CardStatusEvent[] = [{ status: 'ISSUED', effectiveAt: at(0) }, { status: 'ACTIVE', effectiveAt: at(10) }];
        for (const c of changes) {
          const verdict = checkStatusChange(model, { status: c.status, effectiveAt: at(c.minute) });
          let outcome: string;
          try {
            const r = await withTx(db.pool, (tx) => recordCardStatus(tx, { cardNo, status: c.status, effectiveAt: at(c.minute), actor: 'prop' }));
            outcome = r.replayed ? 'replay' : 'apply';
          } catch (e) {
            if (!(e instanceof DomainError)) throw e;
            outcome = 'refuse';
          }
          expect(outcome).toBe(verdict.kind);
          if (verdict.kind === 'apply') model.push({ status: c.status, effectiveAt: at(c.minute) });
        }
        const stored = await storedEvents(cardNo);
        expect(stored.map((e) => [e.status, e.effectiveAt.getTime()])).toEqual(model.map((e) => [e.status, e.effectiveAt.getTime()]));
        // Independent of the engine's helpers: the latest stored event effective at or before t.
        for (let minute = -2; minute <= 42; minute++) {
          let expected: CardStatus | null = null;
          let best = -Infinity;
          for (const e of stored) if (e.effectiveAt.getTime() <= at(minute).getTime() && e.effectiveAt.getTime() >= best) { expected = e.status; best = e.effectiveAt.getTime(); }
          expect(cardStatusAt(stored, at(minute))).toBe(expected);
        }
        let latest = stored[0];
        for (const e of stored) if (e.effectiveAt.getTime() >= latest.effectiveAt.getTime()) latest = e;
        expect(await cardRow(cardNo)).toEqual({ status: latest.status, status_since: latest.effectiveAt });
      },
    ), { numRuns: 40 });
  });

  it('concurrent changes of one card are serialized: the result is a history each change was valid against', async () => {
    const cardNo = await newCard();
    const changes: { status: CardStatus; minute: number }[] = [
      { status: 'LOST_REPORTED', minute: 50 }, { status: 'LOST_REPORTED', minute: 40 }, { status: 'SUSPENDED', minute: 45 },
      { status: 'CANCELLED', minute: 60 }, { status: 'ACTIVE', minute: 55 }, { status: 'LOST_REPORTED', minute: 30 },
      { status: 'SUSPENDED', minute: 20 }, { status: 'CANCELLED', minute: 70 },
    ];
    await Promise.allSettled(changes.map((c) => withTx(db.pool, (tx) => recordCardStatus(tx, { cardNo, status: c.status, effectiveAt: at(c.minute), actor: 'race' }))));
    const rows = (await db.pool.query<{ id: bigint; status: CardStatus; effective_at: Date }>(
      'SELECT id, status, effective_at FROM card_status_event WHERE card_no = $1 ORDER BY id', [cardNo])).rows;
    const replayed: CardStatusEvent[] = [];
    for (const r of rows) {
      const e = { id: r.id, status: r.status, effectiveAt: r.effective_at };
      if (replayed.length >= 2) expect(checkStatusChange(replayed, e).kind, `${e.status} at ${e.effectiveAt.toISOString()}`).toBe('apply');
      replayed.push(e);
    }
    expect(rows.length).toBeGreaterThan(2);
    let latest = replayed[0];
    for (const e of replayed) if (e.effectiveAt.getTime() >= latest.effectiveAt.getTime()) latest = e;
    expect(await cardRow(cardNo)).toEqual({ status: latest.status, status_since: latest.effectiveAt });
  });

  it('reads the histories of many cards in one query', async () => {
    const a = await newCard();
    const b = await newCard();
    const m = await cardStatusEvents(db.pool, [a, b, a, '6228480000000000000']);
    expect([...m.keys()].sort()).toEqual([a, b].sort());
    expect(m.get(a)?.map((e) => e.status)).toEqual(['ISSUED', 'ACTIVE']);
  });
});

describe('POST /v1/cards/:cardNo/status-events', () => {
  const post = (cardNo: string, payload: object) => t.app.inject({ method: 'POST', url: `/v1/cards/${cardNo}/status-events`, headers: bearer(admin), payload });

  it('records a loss report (201), answers a replay with the first event (200), and lists the history', async () => {
    const cardNo = await newCard();
    const when = new Date(Date.now() - 3_600_000).toISOString();
    const r = await post(cardNo, { status: 'LOST_REPORTED', effective_at: when, reason: 'lost on bus 12' });
    expect(r.statusCode, r.body).toBe(201);
    const body = r.json() as { event: { id: string; status: string; actor: string; effective_at: string }; card: { status: string } };
    expect(body.card.status).toBe('LOST_REPORTED');
    expect(body.event.effective_at).toBe(when);
    const keyId = (await db.pool.query<{ id: string }>(`SELECT id FROM api_key WHERE role = 'admin'`)).rows[0].id;
    expect(body.event.actor).toBe(keyId);
    const again = await post(cardNo, { status: 'LOST_REPORTED', effective_at: when });
    expect(again.statusCode).toBe(200);
    expect(again.json().event.id).toBe(body.event.id);
    const list = await t.app.inject({ method: 'GET', url: `/v1/cards/${cardNo}/status-events?limit=2`, headers: bearer(admin) });
    expect(list.json().items.map((e: { status: string }) => e.status)).toEqual(['ISSUED', 'ACTIVE']);
    const rest = await t.app.inject({ method: 'GET', url: `/v1/cards/${cardNo}/status-events?limit=2&cursor=${list.json().next_cursor}`, headers: bearer(admin) });
    expect(rest.json()).toMatchObject({ items: [{ status: 'LOST_REPORTED', reason: 'lost on bus 12' }], next_cursor: null });
  });

  it('defaults the effective time to now, refuses the future, ISSUED, unknown cards and bad transitions', async () => {
    const cardNo = await newCard();
    const s = await post(cardNo, { status: 'SUSPENDED' });
    expect(s.statusCode, s.body).toBe(201);
    expect(Math.abs(Date.parse(s.json().event.effective_at) - Date.now())).toBeLessThan(60_000);
    const future = await post(cardNo, { status: 'ACTIVE', effective_at: new Date(Date.now() + 3_600_000).toISOString() });
    expect(future.statusCode).toBe(422);
    expect(errorBody(future).code).toBe('CARD_STATUS_FUTURE');
    expect(errorBody(await post(cardNo, { status: 'ISSUED' })).code).toBe('VALIDATION_FAILED');
    const unknown = await post('6228489999999999999', { status: 'LOST_REPORTED' });
    expect(unknown.statusCode).toBe(404);
    expect(errorBody(unknown).code).toBe('CARD_NOT_FOUND');
    const bad = await post(cardNo, { status: 'SUSPENDED' });
    expect(bad.statusCode).toBe(409);
    expect(errorBody(bad).code).toBe('CARD_STATUS_TRANSITION_INVALID');
    const early = await post(cardNo, { status: 'LOST_REPORTED', effective_at: '2020-01-01T00:00:00Z' });
    expect(early.statusCode).toBe(422);
    expect(errorBody(early).code).toBe('CARD_STATUS_BEFORE_ISSUE');
  });
});
