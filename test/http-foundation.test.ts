/**
 * The HTTP foundation, in process (`app.inject`) over a fresh database and a real pg-boss:
 * health and readiness, Prometheus metrics, the OpenAPI document, authentication and roles,
 * API key administration, and the ledger routes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type PgBoss from 'pg-boss';
import { startQueue } from '../adapters/jobs/queue.ts';
import { createLogger } from '../adapters/logger.ts';
import { createPool } from '../adapters/postgres/db.ts';
import { buildApp } from '../adapters/http/app.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { bearer, buildTestApp, engineLikeDeps, errorBody, metricSample, mintKey, registeredRoutes, type TestApp } from './support/http.ts';

let db: TestDb;
let boss: PgBoss;
let t: TestApp;
let app: FastifyInstance;
let admin: string;
const tokens: Record<'finance' | 'auditor' | 'operator' | 'bank', string> = { finance: '', auditor: '', operator: '', bank: '' };
/** Every response body seen by the tests, to check no secret hash ever left the engine. */
const bodies: string[] = [];

beforeAll(async () => {
  db = await freshDatabase(6);
  boss = await startQueue(db.url, createLogger('silent'), false);
  t = await buildTestApp(db.pool, boss, (a) => {
    a.addHook('onSend', async (_req, _reply, payload) => {
      bodies.push(typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : '');
      return payload;
    });
  });
  app = t.app;
  admin = (await mintKey(db.pool, 'admin')).token;
  tokens.finance = (await mintKey(db.pool, 'finance')).token;
  tokens.auditor = (await mintKey(db.pool, 'auditor')).token;
  tokens.operator = (await mintKey(db.pool, 'operator', 'OP1')).token;
  tokens.bank = (await mintKey(db.pool, 'bank', '102100099996')).token;
});

afterAll(async () => {
  await app?.close();
  await boss?.stop({ graceful: false, close: true, wait: true });
  await db?.drop();
});

const bank = 'bank:102100099996:clearing';
const cardA = 'card:6217001234567890123:purse';
const cardB = 'card:6217001234567890124:purse';
const merchant = 'merchant:M1:payable';

type Line = { debit: string; credit: string; amount_fen: string };
const entry = (idem_key: string, lines: Line[], kind = 'PURSE_LOAD', extra: Record<string, unknown> = {}) =>
  ({ idem_key, kind, business_date: '2026-11-28', lines, ...extra });

async function postBatch(entries: unknown[], token = admin) {
  return app.inject({ method: 'POST', url: '/v1/ledger/batches', headers: bearer(token), payload: { entries } });
}

async function count(sql: string): Promise<number> {
  const r = await db.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${sql}`);
  return Number(r.rows[0].n);
}

async function balance(code: string): Promise<string | null> {
  const r = await app.inject({ method: 'GET', url: `/v1/ledger/accounts/${encodeURIComponent(code)}`, headers: bearer(admin) });
  if (r.statusCode === 404) return null;
  expect(r.statusCode).toBe(200);
  return (r.json() as { balance_fen: string }).balance_fen;
}

describe('health and readiness', () => {
  it('/healthz answers 200 without a credential', async () => {
    const r = await app.inject({ method: 'GET', url: '/healthz' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'ok' });
  });

  it('/readyz is 200 with database, migrations and queue all ok', async () => {
    const r = await app.inject({ method: 'GET', url: '/readyz' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'ready', checks: { database: 'ok', migrations: 'ok', queue: 'ok' } });
  });

  it('/readyz is 503 while the queue getter returns null, and 200 again once it is back', async () => {
    t.setQueue(null);
    try {
      const r = await app.inject({ method: 'GET', url: '/readyz' });
      expect(r.statusCode).toBe(503);
      const b = r.json() as { status: string; checks: Record<string, string> };
      expect(b.status).toBe('not ready');
      expect(b.checks.queue).not.toBe('ok');
      expect(b.checks.database).toBe('ok');
    } finally {
      t.setQueue(boss);
    }
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });

  it('/readyz is 503 when a migration of this build is not applied', async () => {
    const r0 = await db.pool.query<{ id: number; name: string; run_on: Date }>('SELECT id, name, run_on FROM schema_migrations ORDER BY id DESC LIMIT 1');
    const last = r0.rows[0];
    await db.pool.query('DELETE FROM schema_migrations WHERE id = $1', [last.id]);
    try {
      const r = await app.inject({ method: 'GET', url: '/readyz' });
      expect(r.statusCode).toBe(503);
      expect((r.json() as { checks: Record<string, string> }).checks.migrations).toBe('1 pending');
    } finally {
      await db.pool.query('INSERT INTO schema_migrations (id, name, run_on) VALUES ($1, $2, $3)', [last.id, last.name, last.run_on]);
    }
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });

  it('/readyz is 503 when the database is unreachable', async () => {
    const dead = createPool('postgres://postgres@127.0.0.1:1/none', 1, 'onecard-test-dead');
    const other = await buildApp(engineLikeDeps(dead, () => boss), false);
    try {
      const r = await other.inject({ method: 'GET', url: '/readyz' });
      expect(r.statusCode).toBe(503);
      expect((r.json() as { checks: Record<string, string> }).checks.database).toBe('unreachable');
    } finally {
      await other.close();
      await dead.end();
    }
  });
});

describe('metrics', () => {
  it('/metrics exposes process metrics and the ledger counter and histograms, which move when a batch is posted', async () => {
    const before = await app.inject({ method: 'GET', url: '/metrics' });
    expect(before.statusCode).toBe(200);
    expect(before.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      expect(before.body).toContain(`# TYPE ${name} `);
    }
    expect(before.body).toContain('# TYPE onecard_ledger_entries_posted_total counter');
    expect(before.body).toContain('# TYPE onecard_ledger_batch_duration_seconds histogram');
    expect(before.body).toContain('# TYPE onecard_ledger_batch_entries histogram');
    expect(before.body).toContain('# TYPE onecard_http_request_duration_seconds histogram');
    const postedBefore = metricSample(before.body, 'onecard_ledger_entries_posted_total{kind="METRICS_PROBE"}') ?? 0;
    const batchesBefore = metricSample(before.body, 'onecard_ledger_batch_duration_seconds_count') ?? 0;
    const entriesSumBefore = metricSample(before.body, 'onecard_ledger_batch_entries_sum') ?? 0;

    const r = await postBatch([
      entry('metrics-1', [{ debit: bank, credit: cardA, amount_fen: '5' }], 'METRICS_PROBE'),
      entry('metrics-2', [{ debit: bank, credit: cardA, amount_fen: '6' }], 'METRICS_PROBE'),
    ]);
    expect(r.statusCode).toBe(200);
    // A replay writes nothing: the counter must not count it.
    expect((await postBatch([entry('metrics-1', [{ debit: bank, credit: cardA, amount_fen: '5' }], 'METRICS_PROBE')])).statusCode).toBe(200);

    const after = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metricSample(after.body, 'onecard_ledger_entries_posted_total{kind="METRICS_PROBE"}')).toBe(postedBefore + 2);
    expect(metricSample(after.body, 'onecard_ledger_batch_duration_seconds_count')).toBe(batchesBefore + 2);
    expect(metricSample(after.body, 'onecard_ledger_batch_entries_sum')).toBe(entriesSumBefore + 3);
    expect(after.body).toMatch(/onecard_http_request_duration_seconds_count\{method="POST",route="\/v1\/ledger\/batches",status="200"\} [1-9]/);
  });
});

describe('OpenAPI document', () => {
  type Operation = { security?: Record<string, unknown>[]; responses?: Record<string, unknown> };
  let doc: { openapi: string; paths: Record<string, Record<string, Operation>>; components?: { securitySchemes?: Record<string, { type: string; scheme?: string }> } };

  beforeAll(async () => {
    const r = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(r.statusCode).toBe(200);
    doc = r.json();
  });

  it('is OpenAPI 3 and documents exactly the registered API routes', () => {
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.components?.securitySchemes?.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    const routes = registeredRoutes(app)
      // The documentation UI's own routes are hidden from the document by design; HEAD is implied by GET.
      .filter((r) => r.method !== 'HEAD' && r.url !== '/docs' && !r.url.startsWith('/docs/'))
      .map((r) => `${r.method} ${r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`)
      .sort();
    // Guard against a vacuous parse: the routes this foundation is known to have.
    for (const known of ['GET /healthz', 'GET /readyz', 'GET /metrics', 'POST /v1/ledger/batches', 'GET /v1/ledger/accounts/{code}', 'DELETE /v1/admin/api-keys/{id}']) {
      expect(routes).toContain(known);
    }
    const documented = Object.entries(doc.paths)
      .flatMap(([p, ops]) => Object.keys(ops).filter((m) => m !== 'parameters').map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    expect(documented).toEqual(routes);
  });

  it('every route that refuses an anonymous caller declares bearer security and documents 401, 403 and its error body', async () => {
    let guarded = 0;
    const open: string[] = [];
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const url = p.replace(/\{code\}/g, 'centre%3Afees').replace(/\{id\}/g, 'key_0000000000000000').replace(/\{[^}]+\}/g, 'x');
        const r = await app.inject({ method: method.toUpperCase() as 'GET', url });
        const declared = (op.security ?? []).some((s) => 'bearer' in s);
        if (r.statusCode === 401) {
          guarded++;
          expect(declared, `${method} ${p} refuses anonymous callers but declares no bearer security`).toBe(true);
          expect(op.responses, `${method} ${p}`).toHaveProperty('401');
          expect(op.responses, `${method} ${p}`).toHaveProperty('403');
          const schema = (op.responses?.['401'] as { content?: Record<string, { schema?: { required?: string[] } }> }).content?.['application/json']?.schema;
          expect(schema?.required).toEqual(['code', 'message']);
        } else {
          open.push(`${method} ${p}`);
          expect(declared, `${method} ${p} declares bearer security but answered ${r.statusCode} without a credential`).toBe(false);
        }
      }
    }
    for (const p of ['get /healthz', 'get /readyz', 'get /metrics']) expect(open).toContain(p);
    expect(guarded).toBeGreaterThanOrEqual(8);
  });
});

describe('authentication and roles', () => {
  const guarded = '/v1/ledger/accounts';

  it('no Authorization header: 401 UNAUTHENTICATED with a {code, message} body', async () => {
    const r = await app.inject({ method: 'GET', url: guarded });
    expect(r.statusCode).toBe(401);
    expect(errorBody(r).code).toBe('UNAUTHENTICATED');
  });

  it('malformed, wrong-scheme, unknown and wrong-secret tokens: 401 UNAUTHENTICATED', async () => {
    const realId = admin.slice(4, 4 + 20);
    const bad = [
      'Bearer ',
      'Bearer not-a-token',
      `Basic ${admin}`,
      `bearer${admin}`,
      `Bearer ock_key_0000000000000000_${'A'.repeat(43)}`,
      `Bearer ock_${realId}_${'A'.repeat(43)}`,
      `Bearer ${admin}x`,
      `Bearer ${admin.slice(0, -1)}`,
    ];
    for (const authorization of bad) {
      const r = await app.inject({ method: 'GET', url: guarded, headers: { authorization } });
      expect(r.statusCode, authorization).toBe(401);
      expect(errorBody(r).code).toBe('UNAUTHENTICATED');
    }
    // The real token works on the same route: the refusals above are about the credential.
    expect((await app.inject({ method: 'GET', url: guarded, headers: bearer(admin) })).statusCode).toBe(200);
  });

  it('a role the route does not allow: 403 FORBIDDEN_ROLE', async () => {
    const r1 = await app.inject({ method: 'GET', url: guarded, headers: bearer(tokens.operator) });
    expect(r1.statusCode).toBe(403);
    expect(errorBody(r1).code).toBe('FORBIDDEN_ROLE');
    const r2 = await app.inject({ method: 'GET', url: '/v1/admin/api-keys', headers: bearer(tokens.finance) });
    expect(r2.statusCode).toBe(403);
    expect(errorBody(r2).code).toBe('FORBIDDEN_ROLE');
    const r3 = await app.inject({ method: 'POST', url: '/v1/ledger/batches', headers: bearer(tokens.auditor), payload: { entries: [entry('forbidden-1', [{ debit: bank, credit: cardA, amount_fen: '1' }])] } });
    expect(r3.statusCode).toBe(403);
    expect(errorBody(r3).code).toBe('FORBIDDEN_ROLE');
    expect(await count(`ledger_entry WHERE idem_key = 'forbidden-1'`)).toBe(0);
  });
});

describe('API key administration', () => {
  it('admin creates, lists and revokes a key; the revoked key is refused at once; no secret is ever shown', async () => {
    const created = await app.inject({ method: 'POST', url: '/v1/admin/api-keys', headers: bearer(admin), payload: { role: 'finance', label: 'month-end' } });
    expect(created.statusCode).toBe(201);
    const { key_id, token } = created.json() as { key_id: string; token: string };
    expect(key_id).toMatch(/^key_[a-z0-9]{16}$/);
    expect(token.startsWith(`ock_${key_id}_`)).toBe(true);

    // The new key authenticates with its role.
    expect((await app.inject({ method: 'GET', url: '/v1/ledger/accounts', headers: bearer(token) })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/admin/api-keys', headers: bearer(token) })).statusCode).toBe(403);

    const scoped = await app.inject({ method: 'POST', url: '/v1/admin/api-keys', headers: bearer(admin), payload: { role: 'operator', scope_id: 'OP9', label: 'depot' } });
    expect(scoped.statusCode).toBe(201);

    const list = await app.inject({ method: 'GET', url: '/v1/admin/api-keys', headers: bearer(admin) });
    expect(list.statusCode).toBe(200);
    const items = (list.json() as { items: Record<string, unknown>[] }).items;
    const mine = items.find((k) => k.id === key_id);
    expect(mine).toMatchObject({ id: key_id, role: 'finance', scope_id: null, label: 'month-end', revoked_at: null });
    expect(items.find((k) => k.id === (scoped.json() as { key_id: string }).key_id)).toMatchObject({ role: 'operator', scope_id: 'OP9' });
    for (const k of items) expect(Object.keys(k).sort()).toEqual(['created_at', 'created_by', 'id', 'label', 'revoked_at', 'role', 'scope_id']);
    expect(list.body).not.toContain(token.slice(`ock_${key_id}_`.length));

    const del = await app.inject({ method: 'DELETE', url: `/v1/admin/api-keys/${key_id}`, headers: bearer(admin) });
    expect(del.statusCode).toBe(204);
    const refused = await app.inject({ method: 'GET', url: '/v1/ledger/accounts', headers: bearer(token) });
    expect(refused.statusCode).toBe(401);
    expect(errorBody(refused).code).toBe('UNAUTHENTICATED');
    const after = (await app.inject({ method: 'GET', url: '/v1/admin/api-keys', headers: bearer(admin) })).json() as { items: { id: string; revoked_at: string | null }[] };
    expect(after.items.find((k) => k.id === key_id)?.revoked_at).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    // Revoking again is harmless; an unknown id is 404; a malformed id is a validation error.
    expect((await app.inject({ method: 'DELETE', url: `/v1/admin/api-keys/${key_id}`, headers: bearer(admin) })).statusCode).toBe(204);
    const unknown = await app.inject({ method: 'DELETE', url: '/v1/admin/api-keys/key_0000000000000000', headers: bearer(admin) });
    expect(unknown.statusCode).toBe(404);
    expect(errorBody(unknown).code).toBe('KEY_NOT_FOUND');
    const malformed = await app.inject({ method: 'DELETE', url: '/v1/admin/api-keys/nope', headers: bearer(admin) });
    expect(malformed.statusCode).toBe(400);
    expect(errorBody(malformed).code).toBe('VALIDATION_FAILED');
  });

  it('refuses invalid key requests with stable codes', async () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [{ role: 'wizard', label: 'x' }, 400, 'VALIDATION_FAILED'],
      [{ role: 'finance' }, 400, 'VALIDATION_FAILED'],
      [{ role: 'finance', label: 'x', extra: 1 }, 400, 'VALIDATION_FAILED'],
      [{ role: 'operator', label: 'x' }, 400, 'SCOPE_REQUIRED'],
      [{ role: 'finance', label: 'x', scope_id: 'S1' }, 400, 'SCOPE_NOT_ALLOWED'],
      [{ role: 'bank', label: 'x', scope_id: 'has space' }, 400, 'VALIDATION_FAILED'],
    ];
    const keysBefore = await count('api_key');
    for (const [payload, status, code] of cases) {
      const r = await app.inject({ method: 'POST', url: '/v1/admin/api-keys', headers: bearer(admin), payload });
      expect(r.statusCode, JSON.stringify(payload)).toBe(status);
      expect(errorBody(r).code).toBe(code);
    }
    expect(await count('api_key')).toBe(keysBefore);
  });
});

describe('ledger routes', () => {
  it('posts a batch; a replay returns the same ids with replayed=true and writes nothing', async () => {
    const entries = [
      entry('load-1', [{ debit: bank, credit: cardA, amount_fen: '1000' }]),
      entry('buy-1', [{ debit: cardA, credit: merchant, amount_fen: '250' }], 'PURSE_PURCHASE', { description: 'bus 12', metadata: { route: '12' } }),
    ];
    const cardBefore = BigInt((await balance(cardA)) ?? '0');
    const r1 = await postBatch(entries);
    expect(r1.statusCode).toBe(200);
    const res1 = (r1.json() as { results: { idem_key: string; entry_id: string; replayed: boolean }[] }).results;
    expect(res1.map((x) => [x.idem_key, x.replayed])).toEqual([['load-1', false], ['buy-1', false]]);
    for (const x of res1) expect(x.entry_id).toMatch(/^[1-9][0-9]*$/);
    const entriesAfterFirst = await count('ledger_entry');

    const r2 = await postBatch(entries);
    expect(r2.statusCode).toBe(200);
    const res2 = (r2.json() as { results: { idem_key: string; entry_id: string; replayed: boolean }[] }).results;
    expect(res2).toEqual(res1.map((x) => ({ ...x, replayed: true })));
    expect(await count('ledger_entry')).toBe(entriesAfterFirst);
    expect(await balance(cardA)).toBe(String(cardBefore + 1000n - 250n));
    expect(await balance(merchant)).toBe('250');
  });

  it('a conflicting replay is 409 IDEMPOTENCY_CONFLICT and nothing of the batch is written', async () => {
    const entriesBefore = await count('ledger_entry');
    const cardBefore = await balance(cardA);
    const r = await postBatch([
      entry('fresh-in-conflict', [{ debit: bank, credit: cardB, amount_fen: '77' }]),
      entry('load-1', [{ debit: bank, credit: cardA, amount_fen: '1001' }]),
    ]);
    expect(r.statusCode).toBe(409);
    expect(errorBody(r)).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT', details: { idemKey: 'load-1' } });
    expect(await count('ledger_entry')).toBe(entriesBefore);
    expect(await count(`ledger_entry WHERE idem_key = 'fresh-in-conflict'`)).toBe(0);
    expect(await balance(cardA)).toBe(cardBefore);
    expect(await balance(cardB)).toBeNull();
  });

  it('invalid batches are refused with stable 4xx codes and write nothing', async () => {
    const ok: Line = { debit: bank, credit: cardB, amount_fen: '1' };
    const cases: [unknown, number, string][] = [
      [{ entries: [] }, 400, 'VALIDATION_FAILED'],
      [{}, 400, 'VALIDATION_FAILED'],
      [{ entries: [entry('v1', [])] }, 400, 'VALIDATION_FAILED'],
      [{ entries: [entry('v2', [{ ...ok, amount_fen: '0' }])] }, 400, 'VALIDATION_FAILED'],
      [{ entries: [entry('v3', [{ ...ok, amount_fen: '-5' }])] }, 400, 'VALIDATION_FAILED'],
      [{ entries: [entry('v4', [{ ...ok, amount_fen: '1.5' }])] }, 400, 'VALIDATION_FAILED'],
      [{ entries: [entry('v5', [{ debit: bank, amount_fen: '1' } as Line])] }, 400, 'VALIDATION_FAILED'],
      [{ entries: [entry('v6', [ok], 'lower_case')] }, 400, 'VALIDATION_FAILED'],
      [{ entries: [entry('v7', [ok], 'PURSE_LOAD', { business_date: '2026-13-01' })] }, 400, 'VALIDATION_FAILED'],
      [{ entries: [entry('v8', [ok], 'PURSE_LOAD', { surprise: true })] }, 400, 'VALIDATION_FAILED'],
      [{ entries: [entry('v9', [{ ...ok, amount_fen: '9999999999999999' }])] }, 400, 'ENTRY_AMOUNT_INVALID'],
      [{ entries: [entry('v10', [{ debit: cardB, credit: cardB, amount_fen: '1' }])] }, 400, 'ENTRY_SAME_ACCOUNT'],
      [{ entries: [entry('v11', [{ debit: 'bank:nope:clearing', credit: cardB, amount_fen: '1' }])] }, 400, 'ACCOUNT_CODE_INVALID'],
      [{ entries: [entry('v12', [ok]), entry('v12', [ok])] }, 409, 'IDEMPOTENCY_KEY_REPEATED'],
    ];
    const entriesBefore = await count('ledger_entry');
    const accountsBefore = await count('ledger_account');
    for (const [payload, status, code] of cases) {
      const r = await app.inject({ method: 'POST', url: '/v1/ledger/batches', headers: bearer(admin), payload: payload as object });
      expect(r.statusCode, JSON.stringify(payload)).toBe(status);
      expect(errorBody(r).code, JSON.stringify(payload)).toBe(code);
    }
    const notJson = await app.inject({ method: 'POST', url: '/v1/ledger/batches', headers: { ...bearer(admin), 'content-type': 'application/json' }, payload: '{"entries": [' });
    expect(notJson.statusCode).toBe(400);
    errorBody(notJson);
    const wrongType = await app.inject({ method: 'POST', url: '/v1/ledger/batches', headers: { ...bearer(admin), 'content-type': 'text/csv' }, payload: 'a,b' });
    expect(wrongType.statusCode).toBe(415);
    expect(errorBody(wrongType).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(await count('ledger_entry')).toBe(entriesBefore);
    expect(await count('ledger_account')).toBe(accountsBefore);
  });

  it('a batch that would overdraw a purse is 422 INSUFFICIENT_FUNDS and writes nothing', async () => {
    const entriesBefore = await count('ledger_entry');
    const cardBefore = await balance(cardA);
    const r = await postBatch([
      entry('pay-ok', [{ debit: cardA, credit: merchant, amount_fen: '1' }], 'PURSE_PURCHASE'),
      entry('pay-too-much', [{ debit: cardA, credit: merchant, amount_fen: '100000' }], 'PURSE_PURCHASE'),
    ]);
    expect(r.statusCode).toBe(422);
    expect(errorBody(r).code).toBe('INSUFFICIENT_FUNDS');
    expect(await count('ledger_entry')).toBe(entriesBefore);
    expect(await balance(cardA)).toBe(cardBefore);
  });

  it('GET /v1/ledger/accounts: finance and auditor allowed, operator and bank refused', async () => {
    for (const role of ['finance', 'auditor'] as const) {
      const r = await app.inject({ method: 'GET', url: '/v1/ledger/accounts', headers: bearer(tokens[role]) });
      expect(r.statusCode, role).toBe(200);
      expect((r.json() as { items: { code: string }[] }).items.map((a) => a.code)).toContain(cardA);
    }
    for (const role of ['operator', 'bank'] as const) {
      const r = await app.inject({ method: 'GET', url: '/v1/ledger/accounts', headers: bearer(tokens[role]) });
      expect(r.statusCode, role).toBe(403);
      expect(errorBody(r).code).toBe('FORBIDDEN_ROLE');
    }
  });

  it('GET /v1/ledger/accounts/:code returns balances; an unknown code is 404 ACCOUNT_NOT_FOUND', async () => {
    const r = await app.inject({ method: 'GET', url: `/v1/ledger/accounts/${encodeURIComponent(merchant)}`, headers: bearer(tokens.auditor) });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ code: merchant, owner_type: 'merchant', owner_id: 'M1', normal_side: 'CREDIT', balance_fen: '250', credits_posted_fen: '250', debits_posted_fen: '0' });
    const missing = await app.inject({ method: 'GET', url: `/v1/ledger/accounts/${encodeURIComponent('merchant:NOPE:payable')}`, headers: bearer(tokens.auditor) });
    expect(missing.statusCode).toBe(404);
    expect(errorBody(missing).code).toBe('ACCOUNT_NOT_FOUND');
  });

  it('cursor pagination over accounts returns every account exactly once, in code order', async () => {
    const loads = Array.from({ length: 23 }, (_, i) =>
      entry(`page-${i}`, [{ debit: bank, credit: `card:62170000000000${String(i).padStart(5, '0')}:purse`, amount_fen: String(i + 1) }]));
    expect((await postBatch(loads)).statusCode).toBe(200);
    const all = (await db.pool.query<{ code: string }>('SELECT code FROM ledger_account ORDER BY code')).rows.map((r) => r.code);
    expect(all.length).toBeGreaterThan(25);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const r = await app.inject({ method: 'GET', url: `/v1/ledger/accounts?limit=4${q}`, headers: bearer(tokens.finance) });
      expect(r.statusCode).toBe(200);
      const b = r.json() as { items: { code: string }[]; next_cursor: string | null };
      expect(b.items.length).toBeLessThanOrEqual(4);
      seen.push(...b.items.map((a) => a.code));
      cursor = b.next_cursor;
      pages++;
      expect(pages).toBeLessThan(100);
    } while (cursor !== null);
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(all.length / 4));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(all);

    const cards = await app.inject({ method: 'GET', url: '/v1/ledger/accounts?owner_type=card&limit=500', headers: bearer(tokens.finance) });
    const cardCodes = (cards.json() as { items: { code: string; owner_type: string }[] }).items;
    expect(cardCodes.length).toBe(all.filter((c) => c.startsWith('card:')).length);
    expect(cardCodes.every((a) => a.owner_type === 'card')).toBe(true);

    const tooBig = await app.inject({ method: 'GET', url: '/v1/ledger/accounts?limit=501', headers: bearer(tokens.finance) });
    expect(tooBig.statusCode).toBe(400);
    expect(errorBody(tooBig).code).toBe('VALIDATION_FAILED');
  });

  it('cursor pagination over entries returns every entry exactly once, newest first, with its lines', async () => {
    const all = (await db.pool.query<{ id: string }>('SELECT e.id::text AS id FROM ledger_entry e ORDER BY e.id DESC')).rows.map((r) => r.id);
    expect(all.length).toBeGreaterThan(20);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor === null ? '' : `&cursor=${cursor}`;
      const r = await app.inject({ method: 'GET', url: `/v1/ledger/entries?limit=7${q}`, headers: bearer(tokens.auditor) });
      expect(r.statusCode).toBe(200);
      const b = r.json() as { items: { id: string; lines: Line[] }[]; next_cursor: string | null };
      for (const e of b.items) expect(e.lines.length).toBeGreaterThan(0);
      seen.push(...b.items.map((e) => e.id));
      cursor = b.next_cursor;
      pages++;
      expect(pages).toBeLessThan(100);
    } while (cursor !== null);
    expect(seen).toEqual(all);

    const forMerchant = await app.inject({ method: 'GET', url: `/v1/ledger/entries?account=${encodeURIComponent(merchant)}`, headers: bearer(tokens.auditor) });
    const items = (forMerchant.json() as { items: { idem_key: string; description: string | null; metadata: unknown; lines: Line[] }[] }).items;
    expect(items.map((e) => e.idem_key)).toEqual(['buy-1']);
    expect(items[0]).toMatchObject({ description: 'bus 12', metadata: { route: '12' }, lines: [{ debit: cardA, credit: merchant, amount_fen: '250' }] });
  });

  it('GET /v1/ledger/verification reports a consistent ledger', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/ledger/verification', headers: bearer(tokens.finance) });
    expect(r.statusCode).toBe(200);
    const v = r.json() as { ok: boolean; accounts: number; trialBalance: { debitsFen: string; creditsFen: string }; mismatches: unknown[] };
    expect(v.ok).toBe(true);
    expect(v.mismatches).toEqual([]);
    expect(v.accounts).toBe(await count('ledger_account'));
    expect(v.trialBalance.debitsFen).toBe(v.trialBalance.creditsFen);
    const total = (await db.pool.query<{ s: string }>('SELECT sum(amount_fen)::text AS s FROM ledger_posting')).rows[0].s;
    expect(v.trialBalance.debitsFen).toBe(total);
    expect((await app.inject({ method: 'GET', url: '/v1/ledger/verification', headers: bearer(tokens.operator) })).statusCode).toBe(403);
  });
});

describe('secrets in responses', () => {
  it('no response body ever carried a stored secret hash', async () => {
    const r = await db.pool.query<{ secret_sha256: Buffer }>('SELECT secret_sha256 FROM api_key');
    expect(r.rows.length).toBeGreaterThan(5);
    expect(bodies.length).toBeGreaterThan(20);
    const all = bodies.join('\n');
    for (const { secret_sha256: h } of r.rows) {
      for (const form of [h.toString('hex'), h.toString('base64'), h.toString('base64url'), `\\x${h.toString('hex')}`]) {
        expect(all).not.toContain(form);
      }
    }
    expect(all).not.toMatch(/secret_sha256|"secret"/);
    // The recorder did see the tokens handed out at creation, so its silence about hashes means something.
    expect(bodies.some((b) => /"token":"ock_key_[a-z0-9]{16}_/.test(b))).toBe(true);
  });
});
