/**
 * The principal cache serves a busy key from memory, yet a revocation still takes effect at once:
 * from another process (the notification), through the admin route of this node, and while the
 * listening connection is down (the cache is then not used at all). A look-up that raced with a
 * revocation is not cached; a wrong secret for a cached key id is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildApp } from '../adapters/http/app.ts';
import { revokeApiKey } from '../adapters/auth/api-keys.ts';
import type { Principal } from '../adapters/auth/api-keys.ts';
import { listenForRevocations, PrincipalCache, principal_cache_ttl_ms } from '../adapters/auth/principal-cache.ts';
import { createPool, type Db } from '../adapters/postgres/db.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testDeps } from './support/deps.ts';
import { bearer, mintKey } from './support/http.ts';

let db: TestDb;
let other: Db;
let app: FastifyInstance;
let cache: PrincipalCache;
let listener: { stop(): Promise<void> };
// The cache's clock stands still unless a test moves it: an entry can only leave by revocation.
let cacheNowMs = Date.parse('2026-11-28T02:00:00Z');
const url = '/v1/ledger/verification';

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const status = async (token: string) => (await app.inject({ method: 'GET', url, headers: bearer(token) })).statusCode;

/** Revoked in the table only, without the notification: what only a direct database edit could do. */
async function revokeSilently(keyId: string): Promise<void> {
  await other.query(`UPDATE api_key SET revoked_at = now(), revoked_by = 'test' WHERE id = $1`, [keyId]);
}

beforeAll(async () => {
  db = await freshDatabase(4);
  other = createPool(db.url, 2, 'onecard-test-other-node');
  cache = new PrincipalCache({ now: () => cacheNowMs });
  listener = listenForRevocations(db.url, cache, pino({ level: 'silent' }));
  app = await buildApp(testDeps(db.pool, { principalCache: cache }), false);
  await app.ready();
  await until('the revocation listener', async () => cache.enabled);
});

afterAll(async () => {
  await listener?.stop();
  await app?.close();
  await other?.end();
  await db?.drop();
});

/** Look-ups that answer only when the test says so: each one's answer, by the order they began. */
function heldLookUps() {
  type P = Principal | null;
  const answers: ((p: P) => void)[] = [];
  return {
    lookUp: () => new Promise<P>((r) => { answers.push(r); }),
    count: () => answers.length,
    answer: (n: number, p: P) => answers[n](p),
    answerLatest: (p: P) => answers[answers.length - 1](p),
  };
}

describe('principal cache', () => {
  it('serves a key from memory once looked up (a silent revocation is not seen until the TTL passes)', async () => {
    const k = await mintKey(db.pool, 'finance');
    expect(await status(k.token)).toBe(200);
    await revokeSilently(k.keyId);
    expect(await status(k.token)).toBe(200);
    cacheNowMs += principal_cache_ttl_ms;
    expect(await status(k.token)).toBe(401);
  });

  it('a revocation by another process (as `npm run keys -- revoke`) is refused at once on this node', async () => {
    const k = await mintKey(db.pool, 'finance');
    expect(await status(k.token)).toBe(200);
    expect(await status(k.token)).toBe(200);
    await revokeApiKey(other, k.keyId, 'test');
    await until('the revoked key to be refused', async () => (await status(k.token)) === 401, 2_000);
    // Not the TTL: the cache's clock has not moved.
    expect(await status(k.token)).toBe(401);
  });

  it('a revocation through this node\'s admin route is refused on the very next request', async () => {
    const admin = await mintKey(db.pool, 'admin');
    const k = await mintKey(db.pool, 'finance');
    expect(await status(k.token)).toBe(200);
    const r = await app.inject({ method: 'DELETE', url: `/v1/admin/api-keys/${k.keyId}`, headers: bearer(admin.token) });
    expect(r.statusCode).toBe(204);
    expect(await status(k.token)).toBe(401);
  });

  it('a wrong secret for a cached key id is refused', async () => {
    const k = await mintKey(db.pool, 'finance');
    expect(await status(k.token)).toBe(200);
    const forged = `${k.token.slice(0, -4)}${k.token.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    expect(await status(forged)).toBe(401);
    expect(await status(k.token)).toBe(200);
  });

  it('a look-up that raced with a revocation is not cached', async () => {
    const k = await mintKey(db.pool, 'finance');
    const before = cache.generation;
    cache.forgetKey('key_0000000000000000');
    cache.set(k.token, { keyId: k.keyId, role: 'finance', scopeId: null }, before);
    expect(cache.get(k.token)).toBeNull();
  });

  it('concurrent misses of one token share one look-up; a request after a revocation does not join it', async () => {
    const c = new PrincipalCache({ now: () => cacheNowMs });
    const principal = { keyId: 'key_1111111111111111', role: 'finance' as const, scopeId: null };
    const held = heldLookUps();
    const lookUp = held.lookUp;
    const waiting = Array.from({ length: 50 }, () => c.resolve('tok.en', lookUp));
    expect(held.count()).toBe(1);
    held.answerLatest(principal);
    expect(await Promise.all(waiting)).toEqual(Array.from({ length: 50 }, () => principal));
    // Remembered: no look-up until the TTL passes.
    expect(await c.resolve('tok.en', lookUp)).toEqual(principal);
    expect(held.count()).toBe(1);

    cacheNowMs += principal_cache_ttl_ms;
    const beforeRevocation = c.resolve('tok.en', lookUp);
    expect(held.count()).toBe(2);
    c.forgetKey(principal.keyId);
    const afterRevocation = c.resolve('tok.en', lookUp);
    expect(held.count()).toBe(3);
    held.answerLatest(null);
    held.answer(1, principal);
    expect(await afterRevocation).toBeNull();
    // The look-up that began before the revocation answers its own callers but is not remembered.
    expect(await beforeRevocation).toEqual(principal);
    expect(c.get('tok.en')).toBeNull();
  });

  it('a busy key is refreshed in the background before it expires; a key found revoked then is forgotten', async () => {
    const c = new PrincipalCache({ now: () => cacheNowMs });
    const principal = { keyId: 'key_2222222222222222', role: 'finance' as const, scopeId: null };
    const held = heldLookUps();
    const lookUp = held.lookUp;
    const first = c.resolve('tok.en2', lookUp);
    held.answerLatest(principal);
    expect(await first).toEqual(principal);
    // Past every possible refresh time, before expiry: answered at once from memory, one look-up started.
    cacheNowMs += Math.ceil(principal_cache_ttl_ms * 0.8);
    const during = await Promise.all([c.resolve('tok.en2', lookUp), c.resolve('tok.en2', lookUp)]);
    expect(during).toEqual([principal, principal]);
    expect(held.count()).toBe(2);
    // The refresh finds the key revoked (silently, in the table only): the entry goes.
    held.answerLatest(null);
    await new Promise((r) => setImmediate(r));
    expect(c.get('tok.en2')).toBeNull();
    const after = c.resolve('tok.en2', lookUp);
    expect(held.count()).toBe(3);
    held.answerLatest(null);
    expect(await after).toBeNull();
  });

  it('while the listening connection is down the cache is not used; it comes back when listening resumes', async () => {
    const k = await mintKey(db.pool, 'finance');
    expect(await status(k.token)).toBe(200);
    await other.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                       WHERE datname = current_database() AND application_name = 'onecard-revocations'`);
    await until('the cache to be disabled', async () => !cache.enabled);
    await revokeSilently(k.keyId);
    expect(await status(k.token)).toBe(401);
    await until('the listener to be back', async () => cache.enabled);
    const k2 = await mintKey(db.pool, 'finance');
    expect(await status(k2.token)).toBe(200);
    await revokeApiKey(other, k2.keyId, 'test');
    await until('the revoked key to be refused after listening resumed', async () => (await status(k2.token)) === 401, 2_000);
  });
});
