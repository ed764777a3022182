/**
 * Operator daily totals through the route: both formats (docs/OPERATOR-TOTALS.md's examples
 * among them), idempotency by exact bytes (200 with the first receipt), a different upload for the
 * date superseding the earlier one, every refusal with its stable code and nothing written, and
 * scope: an operator uploads and sees only its own; a non-transit merchant cannot upload.
 */
import { readFile } from 'node:fs/promises';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../adapters/http/app.ts';
import { operator_total_lines_max } from '../engine/recon/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testDeps } from './support/deps.ts';
import { bearer, mintKey } from './support/http.ts';
import { seedTransit } from './support/transit-fixtures.ts';

let db: TestDb;
let app: FastifyInstance;
const tok: Record<string, string> = {};
const t = (i: number) => `42030200000${i}`;
const header = 'business_date,terminal_id,tap_count,amount_fen';

beforeAll(async () => {
  db = await freshDatabase(4);
  await seedTransit(db.pool, {
    operators: [{ id: 'OPA' }, { id: 'OPB' }, { id: 'SHOP1', kind: 'RETAIL', isOperator: false }],
    terminals: [{ id: t(1), operatorId: 'OPA' }, { id: t(2), operatorId: 'OPA' }, { id: t(3), operatorId: 'OPA' }, { id: t(9), operatorId: 'OPB' },
      { id: '420300000101', operatorId: 'OPA' }, { id: '420300000102', operatorId: 'OPA' }],
  });
  app = await buildApp(testDeps(db.pool), false);
  await app.ready();
  tok.opA = (await mintKey(db.pool, 'operator', 'OPA')).token;
  tok.opB = (await mintKey(db.pool, 'operator', 'OPB')).token;
  tok.shop = (await mintKey(db.pool, 'operator', 'SHOP1')).token;
  tok.finance = (await mintKey(db.pool, 'finance')).token;
  tok.auditor = (await mintKey(db.pool, 'auditor')).token;
  tok.bank = (await mintKey(db.pool, 'bank', '102100099996')).token;
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

function send(token: string, body: string | Buffer, contentType: string): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/v1/operator-totals', headers: { ...bearer(token), 'content-type': contentType }, payload: body });
}
const csv = (token: string, body: string | Buffer) => send(token, body, 'text/csv');
const json = (token: string, doc: unknown) => send(token, JSON.stringify(doc), 'application/json');

async function written(): Promise<Record<string, number>> {
  const r = await db.pool.query(`
    SELECT (SELECT count(*) FROM operator_total_upload)::int AS uploads, (SELECT count(*) FROM operator_total_line)::int AS lines,
      (SELECT count(*) FROM audit_log WHERE action = 'OPERATOR_TOTALS_UPLOAD')::int AS audits`);
  return r.rows[0];
}

describe('uploads', () => {
  let firstId = '';

  it('accepts CSV, stores the lines and totals, and answers the same bytes with the first receipt', async () => {
    const body = `${header}\n2026-11-28,${t(1)},120,36000\n2026-11-28,${t(2)},80,16000\r\n`;
    const r = await csv(tok.opA, body);
    expect(r.statusCode, r.body).toBe(201);
    const u = r.json();
    expect(u).toMatchObject({ operator_id: 'OPA', business_date: '2026-11-28', format: 'CSV', line_count: 2, tap_count: '200', amount_fen: '52000' });
    expect(u.upload_id).toMatch(/^otu_[0-9]+$/);
    firstId = u.upload_id;
    const lines = await db.pool.query(`SELECT terminal_id, tap_count, amount_fen FROM operator_total_line ORDER BY terminal_id`);
    expect(lines.rows).toEqual([{ terminal_id: t(1), tap_count: 120n, amount_fen: 36000n }, { terminal_id: t(2), tap_count: 80n, amount_fen: 16000n }]);
    const before = await written();
    const again = await csv(tok.opA, body);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(u);
    expect(await written()).toEqual(before);
  });

  it('accepts JSON (numbers or digit strings); a different upload for the date supersedes the earlier', async () => {
    const r = await json(tok.opA, { operator_id: 'OPA', business_date: '2026-11-28', terminals: [
      { terminal_id: t(1), tap_count: 121, amount_fen: '36200' }, { terminal_id: t(3), tap_count: 0, amount_fen: 0 }] });
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json()).toMatchObject({ format: 'JSON', line_count: 2, tap_count: '121', amount_fen: '36200' });
    const list = await app.inject({ method: 'GET', url: '/v1/operator-totals?business_date=2026-11-28', headers: bearer(tok.opA) });
    expect(list.statusCode).toBe(200);
    const items = list.json().items as { upload_id: string; superseded: boolean }[];
    expect(items.map((i) => [i.upload_id, i.superseded])).toEqual([[r.json().upload_id, false], [firstId, true]]);
    // The first file again is a retry of it: its receipt, and the newest upload stays the newest.
    const retry = await csv(tok.opA, `${header}\n2026-11-28,${t(1)},120,36000\n2026-11-28,${t(2)},80,16000\r\n`);
    expect(retry.statusCode).toBe(200);
    expect(retry.json().upload_id).toBe(firstId);
    const after = await app.inject({ method: 'GET', url: '/v1/operator-totals?business_date=2026-11-28', headers: bearer(tok.opA) });
    expect(after.json().items.map((i: { upload_id: string; superseded: boolean }) => [i.upload_id, i.superseded])).toEqual([[r.json().upload_id, false], [firstId, true]]);
  });

  it('accepts the examples of docs/OPERATOR-TOTALS.md', async () => {
    const doc = await readFile(new URL('../docs/OPERATOR-TOTALS.md', import.meta.url), 'utf8');
    const blocks = [...doc.matchAll(/```(csv|json)\n([\s\S]*?)```/g)];
    expect(blocks.map((b) => b[1])).toEqual(['csv', 'json']);
    const c = await csv(tok.opA, blocks[0][2]);
    expect(c.statusCode, c.body).toBe(201);
    const j = await send(tok.opA, blocks[1][2], 'application/json');
    expect(j.statusCode, j.body).toBe(201);
  });
});

describe('refusals write nothing', () => {
  const d = '2026-11-29';
  const cases: [string, () => Promise<LightMyRequestResponse>, number, string][] = [
    ['wrong header', () => csv(tok.opA, `date,terminal,taps,fen\n${d},${t(1)},1,1\n`), 400, 'OPERATOR_TOTALS_MALFORMED'],
    ['header only', () => csv(tok.opA, `${header}\n`), 400, 'OPERATOR_TOTALS_EMPTY'],
    ['another operator\'s terminal', () => csv(tok.opA, `${header}\n${d},${t(1)},1,1\n${d},${t(9)},1,1\n`), 400, 'OPERATOR_TOTALS_TERMINAL_UNKNOWN'],
    ['an unknown terminal', () => csv(tok.opA, `${header}\n${d},420399999999,1,1\n`), 400, 'OPERATOR_TOTALS_TERMINAL_UNKNOWN'],
    ['a terminal id of 11 digits', () => csv(tok.opA, `${header}\n${d},42030200000,1,1\n`), 400, 'OPERATOR_TOTALS_TERMINAL_INVALID'],
    ['a negative count', () => csv(tok.opA, `${header}\n${d},${t(1)},-1,1\n`), 400, 'OPERATOR_TOTALS_VALUE_INVALID'],
    ['a fractional amount', () => csv(tok.opA, `${header}\n${d},${t(1)},1,1.5\n`), 400, 'OPERATOR_TOTALS_VALUE_INVALID'],
    ['a leading zero', () => csv(tok.opA, `${header}\n${d},${t(1)},01,1\n`), 400, 'OPERATOR_TOTALS_VALUE_INVALID'],
    ['a missing field', () => csv(tok.opA, `${header}\n${d},${t(1)},1\n`), 400, 'OPERATOR_TOTALS_MALFORMED'],
    ['a terminal twice', () => csv(tok.opA, `${header}\n${d},${t(1)},1,1\n${d},${t(1)},2,2\n`), 400, 'OPERATOR_TOTALS_DUPLICATE_TERMINAL'],
    ['two dates', () => csv(tok.opA, `${header}\n${d},${t(1)},1,1\n2026-11-30,${t(2)},1,1\n`), 400, 'OPERATOR_TOTALS_MIXED_DATES'],
    ['an impossible date', () => csv(tok.opA, `${header}\n2026-02-30,${t(1)},1,1\n`), 400, 'OPERATOR_TOTALS_DATE_INVALID'],
    ['invalid UTF-8', () => csv(tok.opA, Buffer.concat([Buffer.from(`${header}\n${d},${t(1)},1,1\n`), Buffer.from([0xff, 0xfe])])), 400, 'OPERATOR_TOTALS_MALFORMED'],
    ['too many lines', () => csv(tok.opA, `${header}\n${Array.from({ length: operator_total_lines_max + 1 }, (_, i) => `${d},${String(i).padStart(12, '0')},1,1`).join('\n')}\n`), 400, 'OPERATOR_TOTALS_TOO_MANY_LINES'],
    ['JSON for another operator', () => json(tok.opA, { operator_id: 'OPB', business_date: d, terminals: [{ terminal_id: t(9), tap_count: 1, amount_fen: 1 }] }), 400, 'OPERATOR_TOTALS_OPERATOR_MISMATCH'],
    ['a JSON fraction', () => json(tok.opA, { operator_id: 'OPA', business_date: d, terminals: [{ terminal_id: t(1), tap_count: 1.5, amount_fen: 1 }] }), 400, 'OPERATOR_TOTALS_VALUE_INVALID'],
    ['an unknown JSON field', () => json(tok.opA, { operator_id: 'OPA', business_date: d, terminals: [], note: 'x' }), 400, 'OPERATOR_TOTALS_MALFORMED'],
    ['JSON without terminals', () => json(tok.opA, { operator_id: 'OPA', business_date: d, terminals: [] }), 400, 'OPERATOR_TOTALS_EMPTY'],
    ['not JSON', () => send(tok.opA, '{"operator_id": ', 'application/json'), 400, 'OPERATOR_TOTALS_MALFORMED'],
    ['another content type', () => send(tok.opA, 'x', 'text/plain'), 415, 'CONTENT_TYPE_INVALID'],
    ['a merchant that is not a transit operator', () => csv(tok.shop, `${header}\n${d},${t(1)},1,1\n`), 403, 'OPERATOR_NOT_TRANSIT'],
  ];
  for (const [name, call, status, code] of cases) {
    it(`refuses ${name} (${code})`, async () => {
      const before = await written();
      const r = await call();
      expect(r.statusCode, r.body).toBe(status);
      expect(r.json().code).toBe(code);
      expect(await written()).toEqual(before);
    });
  }
});

describe('scope', () => {
  it('an operator sees only its own uploads; staff name the operator; banks are refused', async () => {
    const b = await csv(tok.opB, `${header}\n2026-11-28,${t(9)},5,1000\n`);
    expect(b.statusCode, b.body).toBe(201);
    const mine = await app.inject({ method: 'GET', url: '/v1/operator-totals', headers: bearer(tok.opB) });
    expect(mine.json().items.map((i: { operator_id: string }) => i.operator_id)).toEqual(['OPB']);
    const other = await app.inject({ method: 'GET', url: '/v1/operator-totals?operator_id=OPA', headers: bearer(tok.opB) });
    expect(other.statusCode).toBe(403);
    expect(other.json().code).toBe('FORBIDDEN_SCOPE');
    const staff = await app.inject({ method: 'GET', url: '/v1/operator-totals?operator_id=OPA&limit=2', headers: bearer(tok.auditor) });
    expect(staff.statusCode).toBe(200);
    expect(staff.json().items).toHaveLength(2);
    expect(staff.json().next_cursor).not.toBeNull();
    const next = await app.inject({ method: 'GET', url: `/v1/operator-totals?operator_id=OPA&limit=2&cursor=${staff.json().next_cursor}`, headers: bearer(tok.auditor) });
    expect(next.json().items.every((i: { operator_id: string }) => i.operator_id === 'OPA')).toBe(true);
    expect((await app.inject({ method: 'GET', url: '/v1/operator-totals', headers: bearer(tok.finance) })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v1/operator-totals', headers: bearer(tok.bank) })).statusCode).toBe(403);
    const upload = await csv(tok.finance, `${header}\n2026-11-28,${t(1)},1,1\n`);
    expect(upload.statusCode).toBe(403);
    expect(upload.json().code).toBe('FORBIDDEN_ROLE');
  });
});
