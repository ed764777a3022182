/**
 * Repeated failed authentication is rate-limited: per client IP (and, more loosely, per key id a
 * token names), past the limit 429 AUTH_RATE_LIMITED with Retry-After, even for a valid key, until
 * the window has passed on the engine's clock; other IPs are unaffected. Keys are revocable with
 * immediate effect. The limiter itself is checked against a naive model with fast-check.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../adapters/http/app.ts';
import { revokeApiKey } from '../adapters/auth/api-keys.ts';
import { FailureWindows } from '../adapters/auth/failure-limiter.ts';
import { auth_failures_per_key_factor } from '../adapters/http/plugins/auth.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testConfig, testDeps } from './support/deps.ts';
import { bearer, errorBody, mintKey } from './support/http.ts';

let db: TestDb;
let app: FastifyInstance;
let t = Date.parse('2026-11-28T02:00:00Z');
const config = testConfig();
const failures_max = config.authFailuresMax;
const window_ms = config.authFailureWindowMs;
let finance: { keyId: string; token: string };

beforeAll(async () => {
  db = await freshDatabase(4);
  app = await buildApp(testDeps(db.pool, { now: () => new Date(t), config }), false);
  await app.ready();
  finance = await mintKey(db.pool, 'finance');
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

const url = '/v1/ledger/verification';
const bad_token = `ock_key_0000000000000000_${'A'.repeat(43)}`;

function get(token: string | null, ip: string) {
  return app.inject({ method: 'GET', url, headers: token === null ? {} : bearer(token), remoteAddress: ip });
}

describe('failed authentication limit (HTTP)', () => {
  it('uses the documented defaults', () => {
    expect(failures_max).toBe(20);
    expect(window_ms).toBe(60_000);
  });

  it(`${failures_max} bad tokens get 401; then 429 with Retry-After even for a valid key; another IP works; after the window it works again`, async () => {
    const ip = '198.51.100.7';
    expect((await get(finance.token, ip)).statusCode).toBe(200);
    for (let i = 0; i < failures_max; i++) {
      // Malformed and well-formed-but-unknown tokens both count.
      const r = await get(i % 2 === 0 ? bad_token : `garbage-${i}`, ip);
      expect(r.statusCode).toBe(401);
      expect(errorBody(r).code).toBe('UNAUTHENTICATED');
      t += 100;
    }
    const limited = await get(finance.token, ip);
    expect(limited.statusCode).toBe(429);
    expect(errorBody(limited).code).toBe('AUTH_RATE_LIMITED');
    const retryAfterS = Number(limited.headers['retry-after']);
    // The first failure was 1.9 s ago on the engine's clock: it ages out in 58.1 s.
    expect(retryAfterS).toBe(Math.ceil((window_ms - (failures_max - 1) * 100 - 100) / 1000));
    expect(errorBody(limited).details).toEqual({ retry_after_s: retryAfterS });

    // A valid key from elsewhere is not held back, and its success does not clear the first IP.
    expect((await get(finance.token, '198.51.100.8')).statusCode).toBe(200);
    expect((await get(finance.token, ip)).statusCode).toBe(429);
    // A missing credential guesses nothing: still plain 401, not counted, not limited.
    expect((await get(null, '198.51.100.9')).statusCode).toBe(401);

    t += retryAfterS * 1000;
    expect((await get(finance.token, ip)).statusCode).toBe(200);
  });

  it('the limited IP is refused before the token is looked up (no database read)', async () => {
    const ip = '198.51.100.20';
    for (let i = 0; i < failures_max; i++) await get(bad_token, ip);
    const queries: string[] = [];
    const orig = db.pool.query.bind(db.pool);
    (db.pool as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
      queries.push(String(a[0]));
      return (orig as (...b: unknown[]) => unknown)(...a);
    };
    try {
      expect((await get(finance.token, ip)).statusCode).toBe(429);
    } finally {
      (db.pool as unknown as { query: unknown }).query = orig;
    }
    expect(queries.filter((q) => q.includes('api_key'))).toEqual([]);
    t += window_ms;
  });

  it('one key id attacked from many IPs is limited at the looser per-key limit, other keys are not', async () => {
    const victim = await mintKey(db.pool, 'finance');
    const wrongSecret = `ock_${victim.keyId}_${'B'.repeat(43)}`;
    const perKey = failures_max * auth_failures_per_key_factor;
    for (let i = 0; i < perKey; i++) {
      expect((await get(wrongSecret, `203.0.113.${i % 250}`)).statusCode).toBe(401);
    }
    const r = await get(victim.token, '192.0.2.1');
    expect(r.statusCode).toBe(429);
    expect(errorBody(r).code).toBe('AUTH_RATE_LIMITED');
    expect((await get(finance.token, '192.0.2.1')).statusCode).toBe(200);
    t += window_ms;
    expect((await get(victim.token, '192.0.2.1')).statusCode).toBe(200);
  });

  it('a revoked key is refused on the very next request', async () => {
    const k = await mintKey(db.pool, 'auditor');
    const ip = '198.51.100.30';
    expect((await get(k.token, ip)).statusCode).toBe(200);
    await revokeApiKey(db.pool, k.keyId, 'test');
    const r = await get(k.token, ip);
    expect(r.statusCode).toBe(401);
    expect(errorBody(r).code).toBe('UNAUTHENTICATED');
  });
});

describe('FailureWindows', () => {
  it('matches a naive model: blocked exactly when the last window holds failuresMax failures', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 1000 }),
      fc.array(fc.record({ key: fc.constantFrom('a', 'b', 'c'), dt: fc.integer({ min: 0, max: 400 }), fail: fc.boolean() }), { maxLength: 200 }),
      (failuresMax, windowMs, ops) => {
        const w = new FailureWindows({ failuresMax, windowMs, keysMax: 10 });
        const model = new Map<string, number[]>();
        let now = 0;
        for (const op of ops) {
          now += op.dt;
          const live = (model.get(op.key) ?? []).filter((x) => x > now - windowMs);
          const expectBlocked = live.length >= failuresMax;
          const wait = w.blockedForMs(op.key, now);
          if ((wait > 0) !== expectBlocked) return false;
          if (expectBlocked) {
            // The wait ends exactly when the failuresMax-th newest failure leaves the window.
            const oldestCounted = live[live.length - failuresMax];
            if (wait !== Math.max(1, oldestCounted + windowMs - now)) return false;
          } else if (op.fail) {
            w.recordFailure(op.key, now);
            model.set(op.key, [...live, now]);
          }
        }
        return true;
      }), { numRuns: 300 });
  });

  it('keeps at most keysMax keys, forgetting the least recently failed', () => {
    const w = new FailureWindows({ failuresMax: 1, windowMs: 1000, keysMax: 3 });
    for (const k of ['a', 'b', 'c']) w.recordFailure(k, 0);
    w.recordFailure('a', 1);
    w.recordFailure('d', 2);
    expect(w.size).toBe(3);
    expect(w.blockedForMs('b', 3)).toBe(0);
    expect(w.blockedForMs('a', 3)).toBeGreaterThan(0);
    expect(w.blockedForMs('c', 3)).toBeGreaterThan(0);
    expect(w.blockedForMs('d', 3)).toBeGreaterThan(0);
    // Per key, memory is bounded by failuresMax timestamps however many failures are recorded.
    const one = new FailureWindows({ failuresMax: 2, windowMs: 10_000, keysMax: 1 });
    for (let i = 0; i < 10_000; i++) one.recordFailure('x', i);
    expect(one.blockedForMs('x', 10_000)).toBe(Math.max(1, 9_998 + 10_000 - 10_000));
  });

  it('refuses nonsensical limits', () => {
    expect(() => new FailureWindows({ failuresMax: 0, windowMs: 1, keysMax: 1 })).toThrow(RangeError);
    expect(() => new FailureWindows({ failuresMax: 1, windowMs: 0, keysMax: 1 })).toThrow(RangeError);
  });
});
