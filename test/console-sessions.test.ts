/**
 * The console's doors, through `app.inject`: login with a finance key (and only a finance key),
 * the session cookie's flags, CSRF refusals (token and origin), the failed-login limit, logout,
 * idle and absolute expiry, a revoked key ending its sessions, security headers, and the gate of
 * every declared console route (no session, or a Bearer key instead of a session, opens nothing).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../adapters/http/app.ts';
import { declaredRoutes } from '../adapters/http/plugins/auth.ts';
import { revokeApiKey } from '../adapters/auth/api-keys.ts';
import { session_absolute_timeout_ms, session_idle_timeout_ms } from '../adapters/console/sessions.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testConfig, testDeps } from './support/deps.ts';
import { bearer, mintKey } from './support/http.ts';
import { fillPath } from './support/security-routes.ts';
import { Browser, csrfOf, pageCode, test_origin } from './support/console-session.ts';

let db: TestDb;
let app: FastifyInstance;
let clockMs = Date.parse('2026-11-28T02:00:00Z');
const failures_max = 4;
let financeA: { keyId: string; token: string };

beforeAll(async () => {
  db = await freshDatabase(4);
  app = await buildApp(testDeps(db.pool, {
    now: () => new Date(clockMs),
    config: testConfig({ authFailuresMax: failures_max, authFailureWindowMs: 60_000 }),
  }), false);
  await app.ready();
  financeA = await mintKey(db.pool, 'finance');
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('login and the session cookie', () => {
  it('a finance key opens a session: HttpOnly, SameSite=Strict, Path=/console cookie; only its hash is stored', async () => {
    const b = new Browser(app);
    const form = await b.get('/console/login');
    expect(form.statusCode).toBe(200);
    expect(form.headers['content-type']).toMatch(/^text\/html/);
    const res = await b.post('/console/login', { key: financeA.token, _csrf: csrfOf(form.body) });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/console/dashboard');
    const set = ([] as string[]).concat(res.headers['set-cookie'] as string | string[]);
    const session = set.find((c) => c.startsWith('ock_console='));
    expect(session).toBeDefined();
    expect(session).toMatch(/; HttpOnly/i);
    expect(session).toMatch(/; SameSite=Strict/i);
    expect(session).toMatch(/; Path=\/console/);
    // Plain HTTP and no configuration asking for it: not Secure (a browser would drop it on http).
    expect(session).not.toMatch(/; Secure/i);
    const secret = b.jar.get('ock_console')!;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const rows = (await db.pool.query<{ key_id: string; hash: string }>(`SELECT key_id, encode(secret_sha256, 'hex') AS hash FROM console_session`)).rows;
    expect(rows.map((r) => r.key_id)).toContain(financeA.keyId);
    expect(JSON.stringify(rows)).not.toContain(secret);

    const dash = await b.get('/console/dashboard');
    expect(dash.statusCode).toBe(200);
    expect(dash.body).toContain('test finance');
    const audit = (await db.pool.query<{ action: string; actor: string }>(`SELECT action, actor FROM audit_log WHERE action = 'CONSOLE_LOGIN'`)).rows;
    expect(audit).toContainEqual({ action: 'CONSOLE_LOGIN', actor: financeA.keyId });
  });

  it('the cookie is Secure when the request came over TLS, or when configured', async () => {
    const secureApp = await buildApp(testDeps(db.pool, { console: { cookieSecurity: 'always' } } as never), false);
    await secureApp.ready();
    try {
      const b = new Browser(secureApp);
      const res = await b.login(financeA.token);
      expect(res.statusCode).toBe(303);
      const set = ([] as string[]).concat(res.headers['set-cookie'] as string | string[]);
      expect(set.find((c) => c.startsWith('ock_console='))).toMatch(/; Secure/i);
      // Behind a TLS-terminating proxy the browser's origin is https although the request arrives as http.
      const token = csrfOf((await b.get('/console/dashboard')).body);
      const viaProxy = await secureApp.inject({
        method: 'POST', url: '/console/logout', payload: new URLSearchParams({ _csrf: token }).toString(),
        headers: { host: 'console.example', origin: 'https://console.example', cookie: b.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(viaProxy.statusCode, pageCode(viaProxy.body) ?? '').toBe(303);
    } finally {
      await secureApp.close();
    }
  });

  it('a key of another role, a wrong key and a revoked key do not log in', async () => {
    const admin = await mintKey(db.pool, 'admin');
    const b = new Browser(app);
    const asAdmin = await b.login(admin.token);
    expect(asAdmin.statusCode).toBe(403);
    expect(pageCode(asAdmin.body)).toBe('LOGIN_ROLE_NOT_ALLOWED');
    expect(b.jar.has('ock_console')).toBe(false);
    const wrong = await b.login(`${financeA.token.slice(0, -2)}xx`);
    expect(wrong.statusCode).toBe(401);
    expect(pageCode(wrong.body)).toBe('LOGIN_FAILED');
    expect(b.jar.has('ock_console')).toBe(false);
    expect((await b.get('/console/dashboard')).headers.location).toBe('/console/login');
  });

  it('no session: pages redirect to the login form, forms are refused', async () => {
    const b = new Browser(app);
    const page = await b.get('/console/exceptions');
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe('/console/login');
    const form = await b.post('/console/exceptions/exc_1/comment', { note: 'x', _csrf: 'x' });
    expect(form.statusCode).toBe(403);
    expect(pageCode(form.body)).toBe('CONSOLE_SESSION_REQUIRED');
  });
});

describe('CSRF', () => {
  it('a POST without the token, with another session\'s token, or from another origin is refused 403 CSRF_REJECTED and changes nothing', async () => {
    const a = new Browser(app);
    await a.login(financeA.token);
    const other = new Browser(app);
    await other.login(financeA.token);
    const otherToken = csrfOf((await other.get('/console/dashboard')).body);
    const token = csrfOf((await a.get('/console/dashboard')).body);
    expect(otherToken).not.toBe(token);

    const sessionsBefore = (await db.pool.query(`SELECT count(*)::int AS n FROM console_session WHERE revoked_at IS NULL`)).rows[0].n as number;
    const attempts = [
      await a.post('/console/logout', {}),
      await a.post('/console/logout', { _csrf: '' }),
      await a.post('/console/logout', { _csrf: otherToken }),
      await a.post('/console/logout', { _csrf: token }, { origin: 'http://evil.example' }),
      // Without the proxy setting, https is another origin than this plain-http console.
      await a.post('/console/logout', { _csrf: token }, { origin: 'https://localhost' }),
      await a.post('/console/logout', { _csrf: token }, { origin: 'http://localhost:8081' }),
      await a.post('/console/logout', { _csrf: token }, { origin: null, referer: 'http://evil.example/console/dashboard' }),
      await a.post('/console/logout', { _csrf: token }, { origin: null }),
    ];
    for (const r of attempts) {
      expect(r.statusCode).toBe(403);
      expect(pageCode(r.body)).toBe('CSRF_REJECTED');
    }
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM console_session WHERE revoked_at IS NULL`)).rows[0].n).toBe(sessionsBefore);
    expect((await a.get('/console/dashboard')).statusCode).toBe(200);

    // The same form with its token from this origin (or, without Origin, a same-origin Referer) works.
    const ok = await a.post('/console/logout', { _csrf: token }, { origin: null, referer: `${test_origin}/console/dashboard` });
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe('/console/login');
  });

  it('the login form needs its own token, bound to its cookie', async () => {
    const b = new Browser(app);
    await b.get('/console/login');
    const r = await b.post('/console/login', { key: financeA.token, _csrf: 'forged' });
    expect(r.statusCode).toBe(403);
    expect(pageCode(r.body)).toBe('CSRF_REJECTED');
    const foreign = await b.post('/console/login', { key: financeA.token, _csrf: csrfOf((await new Browser(app).get('/console/login')).body) });
    expect(foreign.statusCode).toBe(403);
    expect(b.jar.has('ock_console')).toBe(false);
  });
});

describe('the failed-login limit', () => {
  it('past AUTH_FAILURES_MAX failures from one client, even the right key is answered 429 until the window passes', async () => {
    const ip = '10.9.8.7';
    const form = await app.inject({ method: 'GET', url: '/console/login', remoteAddress: ip });
    const loginCookie = form.cookies.find((c) => c.name === 'ock_console_login')!.value;
    const token = csrfOf(form.body);
    const attempt = (key: string) => app.inject({
      method: 'POST', url: '/console/login', remoteAddress: ip,
      headers: { origin: test_origin, host: 'localhost:80', cookie: `ock_console_login=${loginCookie}`, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ key, _csrf: token }).toString(),
    });
    for (let i = 0; i < failures_max; i++) expect((await attempt(`ock_key_000000000000000${i}_${'A'.repeat(43)}`)).statusCode).toBe(401);
    const limited = await attempt(financeA.token);
    expect(limited.statusCode).toBe(429);
    expect(pageCode(limited.body)).toBe('AUTH_RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.cookies.find((c) => c.name === 'ock_console')).toBeUndefined();
    // Another client is not affected.
    expect((await new Browser(app).login(financeA.token)).statusCode).toBe(303);
    clockMs += 61_000;
    expect((await attempt(financeA.token)).statusCode).toBe(303);
  });
});

describe('the end of a session', () => {
  it('logout revokes the session at once: the old cookie opens nothing', async () => {
    const b = new Browser(app);
    await b.login(financeA.token);
    const secret = b.jar.get('ock_console')!;
    const token = csrfOf((await b.get('/console/dashboard')).body);
    expect((await b.post('/console/logout', { _csrf: token })).statusCode).toBe(303);
    expect(b.jar.has('ock_console')).toBe(false);
    const replay = await app.inject({ method: 'GET', url: '/console/dashboard', headers: { cookie: `ock_console=${secret}` } });
    expect(replay.statusCode).toBe(303);
    expect(replay.headers.location).toBe('/console/login');
    const row = (await db.pool.query<{ revoked_reason: string }>(`SELECT revoked_reason FROM console_session ORDER BY id DESC LIMIT 1`)).rows[0];
    expect(row.revoked_reason).toBe('LOGOUT');
  });

  it('an idle session ends after the idle timeout; a busy one at the absolute timeout', async () => {
    const idle = new Browser(app);
    await idle.login(financeA.token);
    clockMs += session_idle_timeout_ms - 60_000;
    expect((await idle.get("/console/dashboard")).statusCode).toBe(200);
    clockMs += session_idle_timeout_ms + 1_000;
    expect((await idle.get('/console/dashboard')).headers.location).toBe('/console/login');

    const busy = new Browser(app);
    await busy.login(financeA.token);
    const step = session_idle_timeout_ms / 2;
    let elapsed = 0;
    while (elapsed + step < session_absolute_timeout_ms) {
      clockMs += step;
      elapsed += step;
      expect((await busy.get('/console/dashboard')).statusCode, `after ${elapsed} ms`).toBe(200);
    }
    clockMs += step;
    expect((await busy.get('/console/dashboard')).headers.location).toBe('/console/login');
  });

  it('revoking the API key ends its console sessions at the next request', async () => {
    const k = await mintKey(db.pool, 'finance');
    const b = new Browser(app);
    await b.login(k.token);
    expect((await b.get('/console/exceptions')).statusCode).toBe(200);
    await revokeApiKey(db.pool, k.keyId, 'test');
    const after = await b.get('/console/exceptions');
    expect(after.statusCode).toBe(303);
    expect(after.headers.location).toBe('/console/login');
  });
});

describe('headers and the route gate', () => {
  it('console pages carry a CSP without inline script, no framing, no caching, no referrer leaks', async () => {
    const b = new Browser(app);
    await b.login(financeA.token);
    for (const url of ['/console/login', '/console/dashboard', '/console/exceptions', '/console/adjustments']) {
      const r = await b.get(url);
      const csp = r.headers['content-security-policy'] as string;
      expect(csp, url).toContain("default-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(r.headers['x-frame-options']).toBe('DENY');
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.headers['referrer-policy']).toBe('same-origin');
      expect(r.body).not.toMatch(/<script/i);
      expect(r.body).not.toMatch(/ style="/i);
    }
  });

  it('the JSON API is unchanged: no form bodies, JSON errors', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/ledger/batches', headers: { ...bearer(financeA.token), 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=1' });
    expect(r.statusCode).toBe(403);
    expect(r.json()).toMatchObject({ code: 'FORBIDDEN_ROLE' });
  });

  it('every declared console route: without a session or with only a Bearer key, GET redirects to login and POST is refused', async () => {
    const routes = declaredRoutes(app).filter((r) => r.url.startsWith('/console') && r.method !== 'HEAD');
    expect(routes.length).toBeGreaterThanOrEqual(14);
    const open = new Set(['GET /console/login', 'GET /console/assets/console.css', 'GET /console/assets/favicon.svg', 'GET /console', 'POST /console/login']);
    const admin = await mintKey(db.pool, 'admin');
    for (const r of routes) {
      expect(r.roles).toEqual([]);
      if (open.has(`${r.method} ${r.url}`)) continue;
      for (const headers of [{}, bearer(financeA.token), bearer(admin.token)]) {
        const res = await app.inject({
          method: r.method as 'GET', url: fillPath(r.url, r.params),
          headers: { ...headers, origin: test_origin, host: 'localhost:80', ...(r.method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
          ...(r.method === 'POST' ? { payload: '_csrf=x' } : {}),
        });
        if (r.method === 'GET') {
          expect(res.statusCode, `${r.method} ${r.url}`).toBe(303);
          expect(res.headers.location).toBe('/console/login');
        } else {
          expect(res.statusCode, `${r.method} ${r.url}`).toBe(403);
          expect(pageCode(res.body)).toBe('CONSOLE_SESSION_REQUIRED');
        }
      }
    }
  });
});
