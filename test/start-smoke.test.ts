/**
 * Fresh-clone smoke test: `adapters/cli/start.ts` with no DATABASE_URL starts its own embedded
 * Postgres under a new data directory, migrates, writes a bootstrap admin token, becomes ready,
 * stops cleanly on SIGTERM (Postgres included), and starts again on the same data with
 * everything kept.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, portOpen } from './support/http.ts';

const repo_root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ready_timeout_ms = 90_000;
const exit_timeout_ms = 30_000;

interface Run {
  child: ChildProcess;
  url: string;
  logs: Record<string, unknown>[];
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let dataDir: string;
let pgPort: number;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'onecard-smoke-'));
  // mkdtemp makes the directory 0700. Running as root, the embedded Postgres runs as a separate
  // `postgres` user that must be able to traverse the data directory to reach <dataDir>/pg.
  fs.chmodSync(dataDir, 0o755);
  pgPort = await freePort();
});

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) c.kill('SIGKILL');
  }
  // If a run was killed, its Postgres (started by it, pid in postmaster.pid) may be left behind.
  const pidFile = dataDir ? path.join(dataDir, 'pg', 'postmaster.pid') : '';
  if (pidFile && fs.existsSync(pidFile)) {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
    if (Number.isInteger(pid) && pid > 1) {
      try { process.kill(pid, 'SIGINT'); } catch { /* already gone */ }
      for (let i = 0; i < 50 && fs.existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

function startEngine(): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  Object.assign(env, {
    ONECARD_DATA_DIR: dataDir,
    PORT: '0',
    HOST: '127.0.0.1',
    EMBEDDED_PG_PORT: String(pgPort),
    LOG_LEVEL: 'info',
  });
  const child = spawn(process.execPath, ['--import', 'tsx', 'adapters/cli/start.ts'], { cwd: repo_root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise<Run>((resolve, reject) => {
    let pending = '';
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${why}\n--- stdout ---\n${out.slice(-4000)}\n--- stderr ---\n${err.slice(-4000)}`));
    };
    const timer = setTimeout(() => fail(`engine not ready within ${ready_timeout_ms} ms`), ready_timeout_ms);
    child.stderr!.on('data', (d: Buffer) => { err += d.toString('utf8'); });
    child.stdout!.on('data', (d: Buffer) => {
      const text = d.toString('utf8');
      out += text;
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        let rec: Record<string, unknown>;
        try { rec = JSON.parse(line) as Record<string, unknown>; } catch { continue; }
        logs.push(rec);
        if (rec.msg === 'engine ready' && !settled) {
          settled = true;
          clearTimeout(timer);
          resolve({ child, url: String(rec.url), logs, stdout: () => out, stderr: () => err, exited });
        }
      }
    });
    void exited.then(({ code, signal }) => fail(`engine exited before ready (code ${code}, signal ${signal})`));
  });
}

async function stopWithSigterm(run: Run): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const started = Date.now();
  run.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no exit within ${exit_timeout_ms} ms of SIGTERM\n${run.stdout().slice(-3000)}`)), exit_timeout_ms);
  });
  try {
    const r = await Promise.race([run.exited, timeout]);
    return { ...r, ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

async function getJson(url: string, token?: string): Promise<{ status: number; body: unknown }> {
  const r = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

describe('start.ts on embedded Postgres', () => {
  let token = '';
  let tokenMtimeMs = 0;
  let extraKeyId = '';

  it('first start: initialises Postgres, migrates, writes a 0600 bootstrap token, is ready, stops on SIGTERM', async () => {
    expect(await portOpen(pgPort)).toBe(false);
    const run = await startEngine();
    expect(run.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const ready = run.logs.find((l) => l.msg === 'engine ready');
    expect(ready?.embeddedPostgres).toBe(true);
    expect(run.logs.some((l) => l.msg === 'initialising embedded Postgres')).toBe(true);
    expect(run.logs.some((l) => l.msg === 'migrations applied')).toBe(true);
    expect(fs.existsSync(path.join(dataDir, 'pg', 'PG_VERSION'))).toBe(true);
    expect(await portOpen(pgPort)).toBe(true);

    const readyz = await getJson(`${run.url}/readyz`);
    expect(readyz).toEqual({ status: 200, body: { status: 'ready', checks: { database: 'ok', migrations: 'ok', queue: 'ok' } } });

    const file = path.join(dataDir, 'bootstrap-admin.token');
    const st = fs.statSync(file);
    expect(st.mode & 0o777).toBe(0o600);
    tokenMtimeMs = st.mtimeMs;
    token = fs.readFileSync(file, 'utf8').trim();
    expect(token).toMatch(/^ock_key_[a-z0-9]{16}_[A-Za-z0-9_-]{43}$/);
    // The token is written to the file, never to the logs.
    expect(run.stdout()).not.toContain(token);
    expect(run.stderr()).not.toContain(token);

    const keys = await getJson(`${run.url}/v1/admin/api-keys`, token);
    expect(keys.status).toBe(200);
    const items = (keys.body as { items: { id: string; role: string; revoked_at: string | null }[] }).items;
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ id: token.slice(4, 24), role: 'admin', revoked_at: null });
    expect((await getJson(`${run.url}/v1/admin/api-keys`)).status).toBe(401);

    // Something to find again after the restart.
    const created = await fetch(`${run.url}/v1/admin/api-keys`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ role: 'auditor', label: 'survives restart' }),
    });
    expect(created.status).toBe(201);
    extraKeyId = ((await created.json()) as { key_id: string }).key_id;

    const port = Number(new URL(run.url).port);
    const stopped = await stopWithSigterm(run);
    expect(stopped).toMatchObject({ code: 0, signal: null });
    expect(run.logs.some((l) => l.msg === 'stopped')).toBe(true);
    expect(await portOpen(port)).toBe(false);
    expect(await portOpen(pgPort)).toBe(false);
    // A clean Postgres shutdown removes its pid file.
    expect(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);
  }, 150_000);

  it('second start on the same data directory: no re-initialisation, same token, data kept', async () => {
    expect(token).not.toBe('');
    const run = await startEngine();
    expect(run.logs.some((l) => l.msg === 'initialising embedded Postgres')).toBe(false);
    expect(run.logs.some((l) => l.msg === 'migrations applied')).toBe(false);
    expect(run.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('bootstrap admin key was created'))).toBe(false);

    expect((await getJson(`${run.url}/readyz`)).status).toBe(200);
    const file = path.join(dataDir, 'bootstrap-admin.token');
    expect(fs.readFileSync(file, 'utf8').trim()).toBe(token);
    expect(fs.statSync(file).mtimeMs).toBe(tokenMtimeMs);

    const keys = await getJson(`${run.url}/v1/admin/api-keys`, token);
    expect(keys.status).toBe(200);
    const items = (keys.body as { items: { id: string; role: string; label: string }[] }).items;
    expect(items.map((k) => k.id).sort()).toEqual([token.slice(4, 24), extraKeyId].sort());
    expect(items.find((k) => k.id === extraKeyId)).toMatchObject({ role: 'auditor', label: 'survives restart' });

    const stopped = await stopWithSigterm(run);
    expect(stopped).toMatchObject({ code: 0, signal: null });
    expect(await portOpen(pgPort)).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);
  }, 150_000);
});
