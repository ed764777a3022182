/**
 * The role matrix: every route of the full app × every role (and no credential), the expected
 * answer generated from the roles each route declares, so a new route is in the matrix the day it
 * is added. A denied role gets 403 FORBIDDEN_ROLE, no credential 401 (public routes excepted); an
 * allowed role gets past the gate (the request may still be refused for its content, or for its
 * scope: that is the handler's business, and a few scope cases are proven at the end).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../adapters/http/app.ts';
import { declaredRoutes, type DeclaredRoute } from '../adapters/http/plugins/auth.ts';
import { roles, scoped_roles, type Role } from '../adapters/auth/api-keys.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testDeps } from './support/deps.ts';
import { bearer, errorBody, mintKey, registeredRoutes } from './support/http.ts';
import { fillPath, sampleFor } from './support/security-routes.ts';

let db: TestDb;
let app: FastifyInstance;
const tokens = {} as Record<Role, string>;

const bank_a = '102100099996';
const bank_b = '103100000026';
// Every scoped role gets a scope here; a new scoped role without one fails key creation loudly.
const scope_of: Partial<Record<Role, string>> = { operator: 'OPA', bank: bank_a, programme: 'PRG1', merchant: 'MA' };
/** Fewer routes than this means the registry lost some: the app had 76 distinct routes when written. */
const routes_min = 60;

beforeAll(async () => {
  db = await freshDatabase(4);
  app = await buildApp(testDeps(db.pool), false);
  await app.ready();
  for (const role of roles) {
    const scope = scoped_roles.includes(role) ? scope_of[role] ?? null : null;
    tokens[role] = (await mintKey(db.pool, role, scope)).token;
  }
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

/**
 * HEAD twins of GET routes share the GET's config (and have no body to read a code from). The
 * console's routes authenticate by session cookie, not Bearer key: test/console-sessions.test.ts
 * proves their gate over every declared console route.
 */
function matrixRoutes(): DeclaredRoute[] {
  return declaredRoutes(app).filter((r) => r.method !== 'HEAD' && !r.url.startsWith('/console'));
}

async function call(r: DeclaredRoute, token: string | null): Promise<LightMyRequestResponse> {
  const hasBody = r.method === 'POST' || r.method === 'PATCH' || r.method === 'PUT';
  return app.inject({
    method: r.method as 'GET', url: fillPath(r.url, r.params), headers: token === null ? {} : bearer(token),
    ...(hasBody ? { payload: {} } : {}),
  });
}

/** The error code of a refusal; null for anything else (readiness answers 503 with its own body). */
function codeOf(res: LightMyRequestResponse): string | null {
  if (res.statusCode < 400) return null;
  try {
    const b = res.json() as { code?: unknown };
    return typeof b.code === 'string' ? b.code : null;
  } catch {
    return null;
  }
}

describe('route table', () => {
  it('every route the router knows declares its roles, and the table is not trivially small', () => {
    const declared = new Set(declaredRoutes(app).map((r) => `${r.method} ${r.url}`));
    // The OpenAPI UI (registered before auth, public static files) is the only exception.
    const known = registeredRoutes(app).filter((r) => !r.url.startsWith('/docs'));
    const undeclared = known.filter((r) => !declared.has(`${r.method} ${r.url}`));
    expect(undeclared).toEqual([]);
    expect(matrixRoutes().length).toBeGreaterThan(routes_min);
    for (const r of declaredRoutes(app)) {
      for (const role of r.roles) expect(roles).toContain(role);
    }
  });

  it('path placeholders satisfy their schema patterns', () => {
    expect(sampleFor('^per_[1-9][0-9]{0,17}$')).toBe('per_1');
    expect(sampleFor('^[0-9]{16,19}$')).toBe('0000000000000000');
    expect(sampleFor('^key_[a-z0-9]{16}$')).toMatch(/^key_[a-z0-9]{16}$/);
    expect(() => sampleFor('^(a|b)$')).toThrow();
  });
});

describe('role matrix', () => {
  it('each route × role answers as its declared roles say', async () => {
    const mismatches: string[] = [];
    let checked = 0;
    for (const r of matrixRoutes()) {
      const isPublic = r.roles.length === 0;
      const none = await call(r, null);
      checked++;
      if (isPublic) {
        if (none.statusCode === 401 || none.statusCode === 403) mismatches.push(`${r.method} ${r.url} public but ${none.statusCode} without credential`);
      } else if (none.statusCode !== 401 || codeOf(none) !== 'UNAUTHENTICATED') {
        mismatches.push(`${r.method} ${r.url} without credential: ${none.statusCode} ${none.body.slice(0, 120)}`);
      }
      for (const role of roles) {
        const res = await call(r, tokens[role]);
        checked++;
        const allowed = isPublic || r.roles.includes(role);
        const code = codeOf(res);
        if (allowed) {
          if (res.statusCode === 401 || code === 'FORBIDDEN_ROLE') mismatches.push(`${r.method} ${r.url} as ${role}: allowed but ${res.statusCode} ${code}`);
          // Past the gate, a placeholder request must be refused politely, never crash the handler.
          if (res.statusCode === 500) mismatches.push(`${r.method} ${r.url} as ${role}: 500 ${res.body.slice(0, 200)}`);
        } else if (res.statusCode !== 403 || code !== 'FORBIDDEN_ROLE') {
          mismatches.push(`${r.method} ${r.url} as ${role}: denied but ${res.statusCode} ${code}`);
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(checked).toBe(matrixRoutes().length * (roles.length + 1));
  }, 120_000);

  it('the gate runs before validation: a denied role learns nothing about the body', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/ledger/batches', headers: bearer(tokens.finance), payload: { not: 'valid' } });
    expect(r.statusCode).toBe(403);
    expect(errorBody(r).code).toBe('FORBIDDEN_ROLE');
    const none = await app.inject({ method: 'POST', url: '/v1/ledger/batches', payload: { not: 'valid' } });
    expect(none.statusCode).toBe(401);
  });
});

describe('scopes: a scoped key acts only for its own operator or bank', () => {
  beforeAll(async () => {
    await db.pool.query(`INSERT INTO bank (code, name) VALUES ($1, 'Bank A'), ($2, 'Bank B')`, [bank_a, bank_b]);
    // A receipt of operator OPB's batch, as transit ingestion stores it.
    await db.pool.query(`
      INSERT INTO tap_batch (operator_id, batch_id, digest, operator_created_at, body_format, received_at, cycle_id, business_date,
        record_count, accepted_count, accepted_amount_fen, rejected_count, rejected_amount_fen, rejected_index, rejected_reason, actor)
      VALUES ('OPB', 'b-1', repeat('a', 64), '2026-11-28T08:00:00+08:00', 'JSON', '2026-11-28T00:00:00Z', 'cyc_2026-11-28', '2026-11-28',
        1, 1, 200, 0, 0, '{}', '{}', 'key_test')`);
    await db.pool.query(`
      INSERT INTO card (card_no, issuing_bank, form, status, status_since, daily_limit_fen)
      VALUES ('6210000000000000001', $1, 'ECARD', 'ACTIVE', '2026-01-01T00:00:00Z', 500000)`, [bank_b]);
    await db.pool.query(`INSERT INTO card_status_event (card_no, status, effective_at, actor) VALUES ('6210000000000000001', 'ACTIVE', '2026-01-01T00:00:00Z', 'test')`);
  });

  it('operator A cannot read operator B\'s batch receipt or sequence gaps; B can', async () => {
    const opB = (await mintKey(db.pool, 'operator', 'OPB')).token;
    const get = (url: string, token: string) => app.inject({ method: 'GET', url, headers: bearer(token) });

    const own = await get('/v1/transit/batches/b-1', opB);
    expect(own.statusCode).toBe(200);
    expect(own.json()).toMatchObject({ operatorId: 'OPB', batchId: 'b-1', acceptedCount: 1 });
    expect((await get('/v1/transit/operators/OPB/batches/b-1', opB)).statusCode).toBe(200);

    // To A the batch does not exist, however it is asked for.
    for (const url of ['/v1/transit/batches/b-1', '/v1/transit/batches/b-1?operator_id=OPB', '/v1/transit/operators/OPB/batches/b-1']) {
      const r = await get(url, tokens.operator);
      expect(r.statusCode, url).toBe(404);
      expect(JSON.stringify(r.json())).not.toContain('"acceptedCount"');
    }
    const gaps = await get('/v1/transit/operators/OPB/sequence-gaps', tokens.operator);
    expect(gaps.statusCode).toBe(403);
    expect(errorBody(gaps).code).toBe('FORBIDDEN_SCOPE');
    expect((await get('/v1/transit/operators/OPB/sequence-gaps', opB)).statusCode).toBe(200);
  });

  it('bank A cannot load the purse of a card bank B issued; bank B can', async () => {
    const load = (token: string, ref: string) => app.inject({
      method: 'POST', url: '/v1/cards/6210000000000000001/purse-loads', headers: bearer(token), payload: { bank_reference: ref, amount_fen: '1000' },
    });
    const before = (await db.pool.query(`SELECT count(*)::int AS n FROM ledger_entry`)).rows[0].n as number;
    const refused = await load(tokens.bank, 'ref-a-1');
    expect(refused.statusCode).toBe(404);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ledger_entry`)).rows[0].n).toBe(before);
    const bankB = (await mintKey(db.pool, 'bank', bank_b)).token;
    const ok = await load(bankB, 'ref-b-1');
    expect(ok.statusCode).toBeLessThan(300);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ledger_entry`)).rows[0].n).toBe(before + 1);
  });
});
