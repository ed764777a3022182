/**
 * Bulk imports: up to 10,000 rows, set-based (a fixed handful of statements whatever the row
 * count), all or nothing (one bad row and nothing is written; every bad row is reported by index
 * and code), idempotent (a replay counts rows as existing), and safe under concurrent imports of
 * the same rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { withTx, type Queryable } from '../adapters/postgres/db.ts';
import { importRows, type ImportResult } from '../adapters/reference/index.ts';
import { luhnCheckDigit } from '../engine/reference/index.ts';
import { bearer, buildTestApp, errorBody, mintKey, type TestApp } from './support/http.ts';
import { freshDatabase, type TestDb } from './support/db.ts';

let db: TestDb;
let t: TestApp;
let admin = '';

const bank = '102100099996';
beforeAll(async () => {
  db = await freshDatabase(6);
  t = await buildTestApp(db.pool, null);
  admin = (await mintKey(db.pool, 'admin')).token;
  const ctx = { actor: 'test', at: new Date() };
  await withTx(db.pool, async (tx) => {
    expect((await importRows(tx, 'banks', [{ code: bank, name: 'ICBC test' }], ctx)).errors).toEqual([]);
    expect((await importRows(tx, 'merchants', [
      { id: 'OPA', name: 'Bus A', kind: 'TRANSIT', is_operator: 'true', acquiring_bank: bank, settlement_account: '6222020000000001' },
      { id: 'OPB', name: 'Bus B', kind: 'TRANSIT', is_operator: 'true', acquiring_bank: bank, settlement_account: '6222020000000002' },
    ], ctx)).errors).toEqual([]);
  });
});
afterAll(async () => {
  await t?.app.close();
  await db?.drop();
});

const importTerminals = (items: unknown[]) => t.app.inject({ method: 'POST', url: '/v1/terminals/imports', headers: bearer(admin), payload: { items } });
const importCards = (items: unknown[]) => t.app.inject({ method: 'POST', url: '/v1/cards/imports', headers: bearer(admin), payload: { items } });

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const r = await db.pool.query<{ n: bigint }>(sql, params);
  return Number(r.rows[0].n);
}

const terminal = (n: number, merchant = 'OPA') => ({ id: `42030${String(n).padStart(7, '0')}`, merchant_id: merchant, line_id: `L${n % 40}`, station_id: `S${n % 97}`, latitude: '32.6', longitude: '110.8' });

/** A valid 19-digit card number for serial n. */
function cardNo(n: number): string {
  const partial = `621700${String(n).padStart(12, '0')}`;
  return `${partial}${luhnCheckDigit(partial)}`;
}

function refusal(r: LightMyRequestResponse): { index: number; code: string }[] {
  expect(r.statusCode, r.body).toBe(422);
  const b = errorBody(r);
  expect(b.code).toBe('IMPORT_REFUSED');
  const errors = (b.details?.errors ?? []) as { index: number; code: string }[];
  expect(b.details?.error_count).toBe(errors.length);
  return errors.map((e) => ({ index: e.index, code: e.code }));
}

describe('terminal imports', () => {
  it('imports 2,500 terminals, and a replay counts them all as existing', async () => {
    const items = Array.from({ length: 2_500 }, (_, i) => terminal(i));
    const r = await importTerminals(items);
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toEqual({ rows: 2_500, created: 2_500, existing: 0 });
    expect(await count(`SELECT count(*)::bigint AS n FROM terminal WHERE merchant_id = 'OPA'`)).toBe(2_500);
    expect(await count(`SELECT count(*)::bigint AS n FROM reference_event WHERE entity = 'terminal'`)).toBe(2_500);
    const again = await importTerminals(items);
    expect(again.json()).toEqual({ rows: 2_500, created: 0, existing: 2_500 });
    expect(await count(`SELECT count(*)::bigint AS n FROM reference_event WHERE entity = 'terminal'`)).toBe(2_500);
  });

  it('is all or nothing: every bad row is reported by index and code, nothing is written', async () => {
    const before = await count('SELECT count(*)::bigint AS n FROM terminal');
    const items: Record<string, unknown>[] = Array.from({ length: 1_000 }, (_, i) => terminal(10_000 + i));
    items[3] = { ...items[3], id: '12345' };
    items[10] = { ...items[10], merchant_id: 'NOPE' };
    items[20] = { ...terminal(10_005) };
    items[30] = { ...terminal(7), station_id: 'moved' };
    items[40] = { ...items[40], latitude: '32.6', longitude: null };
    items[50] = { ...items[50], colour: 'red' };
    items[60] = terminal(8);
    const errors = refusal(await importTerminals(items));
    expect(errors).toEqual([
      { index: 3, code: 'TERMINAL_ID_INVALID' },
      { index: 10, code: 'MERCHANT_NOT_FOUND' },
      { index: 20, code: 'DUPLICATE_IN_IMPORT' },
      { index: 30, code: 'TERMINAL_CONFLICT' },
      { index: 40, code: 'COORDINATES_INVALID' },
      { index: 50, code: 'FIELD_UNKNOWN' },
    ]);
    expect(await count('SELECT count(*)::bigint AS n FROM terminal')).toBe(before);
    // Without the bad rows the same import goes through (row 60 already exists identically).
    const good = items.filter((_, i) => ![3, 10, 20, 30, 40, 50].includes(i));
    const ok = await importTerminals(good);
    expect(ok.json()).toEqual({ rows: 994, created: 993, existing: 1 });
  });

  it('refuses more than 10,000 rows as a whole', async () => {
    const r = await importTerminals(Array.from({ length: 10_001 }, (_, i) => terminal(50_000 + i)));
    expect(r.statusCode).toBe(400);
    expect(errorBody(r).code).toBe('VALIDATION_FAILED');
  });

  it('writes with a fixed handful of statements, whatever the row count', async () => {
    const statements: string[] = [];
    const rows = (n: number, from: number) => Array.from({ length: n }, (_, i) => terminal(from + i, 'OPB'));
    for (const [n, from] of [[10, 100_000], [5_000, 200_000]] as const) {
      statements.length = 0;
      const result = await withTx(db.pool, async (tx) => {
        const counting: Queryable = { query: ((text: string, values?: unknown[]) => { statements.push(text); return tx.query(text, values); }) as Queryable['query'] } as Queryable;
        return importRows(counting, 'terminals', rows(n, from), { actor: 'test', at: new Date() });
      });
      expect(result).toEqual({ created: n, existing: 0, errors: [] });
      expect(statements.length, `${n} rows`).toBeLessThanOrEqual(4);
    }
  });

  it('two concurrent imports of the same new rows: both succeed, each row is created once', async () => {
    const items = Array.from({ length: 2_000 }, (_, i) => terminal(300_000 + i));
    const [a, b] = await Promise.all([importTerminals(items), importTerminals(items)]);
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
    const results = [a.json(), b.json()] as { created: number; existing: number }[];
    expect(results[0].created + results[1].created).toBe(2_000);
    expect(results[0].existing + results[1].existing).toBe(2_000);
    expect(await count(`SELECT count(*)::bigint AS n FROM reference_event WHERE entity = 'terminal' AND entity_id LIKE '4203003%'`)).toBe(2_000);
  });

  it('two concurrent imports of the same ids with different content: one wins whole, the other is refused whole', async () => {
    const a = Array.from({ length: 500 }, (_, i) => terminal(400_000 + i));
    const b = a.map((x) => ({ ...x, station_id: 'elsewhere' }));
    const [ra, rb] = await Promise.all([importTerminals(a), importTerminals(b)]);
    const statuses = [ra.statusCode, rb.statusCode].sort();
    expect(statuses[0]).toBe(200);
    expect([409, 422]).toContain(statuses[1]);
    const loser = ra.statusCode === 200 ? rb : ra;
    const code = errorBody(loser).code;
    expect(['TERMINAL_CONFLICT', 'IMPORT_REFUSED']).toContain(code);
    const stations = await db.pool.query<{ station_id: string; n: bigint }>(
      `SELECT station_id = 'elsewhere' AS station_id, count(*)::bigint AS n FROM terminal WHERE id = ANY ($1) GROUP BY 1`, [a.map((x) => x.id)]);
    expect(stations.rows).toHaveLength(1);
    expect(Number(stations.rows[0].n)).toBe(500);
  });
});

describe('card imports', () => {
  it('imports 10,000 cards with e-card twins anywhere in the import, histories included', async () => {
    const items: Record<string, unknown>[] = [];
    for (let i = 0; i < 5_000; i++) {
      const phys = cardNo(i * 2);
      const twin = { card_no: cardNo(i * 2 + 1), issuing_bank: bank, form: 'ECARD', linked_card_no: phys, issued_at: '2026-02-01T08:00:00+08:00' };
      const card = { card_no: phys, issuing_bank: bank, form: 'PHYSICAL', issued_at: '2026-01-01T08:00:00+08:00', activated_at: '2026-01-02T08:00:00+08:00' };
      // Half the twins come before their physical card: order within one import does not matter.
      if (i % 2 === 0) items.push(card, twin);
      else items.push(twin, card);
    }
    items[9_999] = { ...items[9_999], status: 'LOST_REPORTED', status_since: '2026-03-01T08:00:00+08:00' };
    const r = await importCards(items);
    expect(r.statusCode, r.body.slice(0, 500)).toBe(200);
    expect(r.json()).toEqual({ rows: 10_000, created: 10_000, existing: 0 });
    expect(await count(`SELECT count(*)::bigint AS n FROM card WHERE linked_card_no IS NOT NULL`)).toBe(5_000);
    expect(await count(`SELECT count(*)::bigint AS n FROM card_status_event`)).toBe(5_000 * 2 + 5_000 + 1);
    // Row 9,999 is a physical card (pair 4,999 puts the twin first), now reported lost.
    expect(items[9_999].form).toBe('PHYSICAL');
    expect(await count(`SELECT count(*)::bigint AS n FROM card WHERE status = 'ACTIVE'`)).toBe(4_999);
    expect(await count(`SELECT count(*)::bigint AS n FROM card WHERE status = 'ISSUED'`)).toBe(5_000);
    const lost = await db.pool.query(`SELECT status, status_since FROM card WHERE card_no = $1`, [items[9_999].card_no]);
    expect(lost.rows[0]).toEqual({ status: 'LOST_REPORTED', status_since: new Date('2026-03-01T00:00:00Z') });
    // Events of one card are recorded in history order (ids are the tie-break of equal times).
    const order = await db.pool.query<{ status: string }>(`SELECT status FROM card_status_event WHERE card_no = $1 ORDER BY id`, [items[9_999].card_no]);
    expect(order.rows.map((x) => x.status)[0]).toBe('ISSUED');
    expect(order.rows.map((x) => x.status).at(-1)).toBe('LOST_REPORTED');
    const again = await importCards(items.slice(0, 100));
    expect(again.json()).toEqual({ rows: 100, created: 0, existing: 100 });
  });

  it('refuses bad card rows together: format, bank, twin, time, conflict', async () => {
    const before = await count('SELECT count(*)::bigint AS n FROM card');
    const events = await count('SELECT count(*)::bigint AS n FROM card_status_event');
    const fresh = (n: number) => ({ card_no: cardNo(n), issuing_bank: bank, form: 'PHYSICAL' });
    const items: Record<string, unknown>[] = [
      fresh(90_000),
      { ...fresh(90_001), card_no: '123' },
      { ...fresh(90_002), issuing_bank: '999999999999' },
      { ...fresh(90_003), form: 'ECARD', linked_card_no: cardNo(99_999) },
      { ...fresh(90_004), form: 'ECARD', linked_card_no: cardNo(1) },
      { ...fresh(90_005), issued_at: '2099-01-01T00:00:00Z' },
      { card_no: cardNo(0), issuing_bank: bank, form: 'ECARD' },
      { ...fresh(90_007), daily_limit_fen: '1.5' },
    ];
    expect(refusal(await importCards(items))).toEqual([
      { index: 1, code: 'CARD_NO_INVALID' },
      { index: 2, code: 'BANK_NOT_FOUND' },
      { index: 3, code: 'LINKED_CARD_NOT_FOUND' },
      { index: 4, code: 'LINKED_CARD_INVALID' },
      { index: 5, code: 'CARD_TIME_INVALID' },
      { index: 6, code: 'CARD_CONFLICT' },
      { index: 7, code: 'DAILY_LIMIT_INVALID' },
    ]);
    expect(await count('SELECT count(*)::bigint AS n FROM card')).toBe(before);
    expect(await count('SELECT count(*)::bigint AS n FROM card_status_event')).toBe(events);
  });
});
