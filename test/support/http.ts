/**
 * An in-process HTTP app over a fresh database, with its dependencies built the way
 * adapters/engine.ts builds them, plus small helpers for `app.inject` tests.
 */
import net from 'node:net';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type PgBoss from 'pg-boss';
import { buildApp } from '../../adapters/http/app.ts';
import type { AppDeps } from '../../adapters/http/context.ts';
import { createMetrics, ledgerObserver } from '../../adapters/metrics.ts';
import { ConfigKeyStore, PiiKeyring } from '../../adapters/crypto/index.ts';
import { createApiKey, type Role } from '../../adapters/auth/api-keys.ts';
import type { Db } from '../../adapters/postgres/db.ts';
import { Ledger } from '../../ledger/index.ts';
import { test_pii_keys, test_qr_master_keys, test_tac_master_keys, testConfig } from './deps.ts';

export interface TestApp {
  app: FastifyInstance;
  deps: AppDeps;
  /** What the readiness probe's queue getter returns from now on. */
  setQueue(boss: PgBoss | null): void;
}

/** Dependencies as startEngine assembles them (config stripped of key material). */
export function engineLikeDeps(db: Db, queue: () => PgBoss | null): AppDeps {
  const metrics = createMetrics();
  const config = testConfig();
  return {
    db,
    ledger: new Ledger(ledgerObserver(metrics)),
    metrics,
    queue,
    bodyBytesMax: config.bodyBytesMax,
    now: () => new Date(),
    config: { ...config, tacMasterKeys: undefined, qrMasterKeys: undefined, piiKeys: undefined },
    keyStore: ConfigKeyStore.fromConfigStrings(test_tac_master_keys, test_qr_master_keys),
    pii: PiiKeyring.fromConfigString(test_pii_keys),
  };
}

/** `beforeReady` may add test hooks (Fastify refuses hooks once the app is ready). */
export async function buildTestApp(db: Db, boss: PgBoss | null, beforeReady?: (app: FastifyInstance) => void): Promise<TestApp> {
  let current = boss;
  const deps = engineLikeDeps(db, () => current);
  const app = await buildApp(deps, false);
  beforeReady?.(app);
  await app.ready();
  return { app, deps, setQueue: (b) => { current = b; } };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** A key made directly in the database (not through the API under test). */
export async function mintKey(db: Db, role: Role, scopeId: string | null = null): Promise<{ keyId: string; token: string }> {
  return createApiKey(db, role, scopeId, `test ${role}`, 'test');
}

/** The `{code, message}` error body, asserted to have that shape. */
export function errorBody(r: LightMyRequestResponse): { code: string; message: string; details?: Record<string, unknown> } {
  const b = r.json() as { code?: unknown; message?: unknown; details?: Record<string, unknown> };
  if (typeof b.code !== 'string' || typeof b.message !== 'string' || b.message.length === 0) {
    throw new Error(`not an error body (status ${r.statusCode}): ${r.body.slice(0, 300)}`);
  }
  return b as { code: string; message: string; details?: Record<string, unknown> };
}

/** The value of one series (name and labels, as exposed) in a /metrics text; undefined when absent. */
export function metricSample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/**
 * Every (method, url) the app has registered, read from `printRoutes({ commonPrefix: false })`:
 * each line is a tree node whose depth is its indentation; a node's path is its ancestors'
 * segments joined. Each parsed pair is checked with `app.hasRoute`, so a parse slip fails loudly
 * (wildcard nodes excepted: the router prints them without their static prefix, e.g. the docs
 * UI's `/docs/static/*` shows as `*` under `/docs/`).
 */
export function registeredRoutes(app: FastifyInstance): { method: string; url: string }[] {
  const text = app.printRoutes({ commonPrefix: false });
  const stack: string[] = [];
  const out: { method: string; url: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^((?:[│ ] {3})*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) {
      if (line.trim() !== '') throw new Error(`unparsed printRoutes line: ${line}`);
      continue;
    }
    const depth = m[1].length / 4;
    stack.length = depth;
    stack.push(m[2]);
    if (!m[3]) continue;
    const url = stack.join('');
    for (const method of m[3].split(',').map((s) => s.trim())) {
      if (!url.includes('*') && !app.hasRoute({ method: method as 'GET', url })) throw new Error(`parsed ${method} ${url} but the app has no such route`);
      out.push({ method, url });
    }
  }
  return out;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
    sock.setTimeout(2000, () => { sock.destroy(); resolve(false); });
  });
}
