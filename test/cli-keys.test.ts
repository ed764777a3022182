/**
 * `npm run keys`: create prints a working token once, revoke makes it fail at once, list never
 * prints a secret, and bad arguments exit non-zero with a message saying what is wrong.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate } from '../adapters/auth/api-keys.ts';
import { freshDatabase, type TestDb } from './support/db.ts';

const repo_root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let db: TestDb;
beforeAll(async () => { db = await freshDatabase(2); });
afterAll(async () => { await db?.drop(); });

/** Runs the package script exactly as an operator would: `npm run keys -- <args>`. */
function keys(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: db.url };
  delete env.ONECARD_DATA_DIR;
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', '--silent', 'keys', '--', ...args], { cwd: repo_root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString('utf8'); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`keys ${args.join(' ')} timed out\n${stdout}\n${stderr}`)); }, 60_000);
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

function parseCreated(stdout: string): { keyId: string; token: string } {
  const id = /^key id: (key_[a-z0-9]{16})$/m.exec(stdout);
  const token = /^token \(shown once, store it now\): (ock_\S+)$/m.exec(stdout);
  if (!id || !token) throw new Error(`unexpected create output:\n${stdout}`);
  return { keyId: id[1], token: token[1] };
}

describe('npm run keys', () => {
  let operator = { keyId: '', token: '' };
  let finance = { keyId: '', token: '' };

  it('create prints a key id and a token that authenticates with the given role and scope', async () => {
    const r = await keys('create', '--role', 'operator', '--scope', 'OP1', '--label', 'x');
    expect(r.code, r.stderr).toBe(0);
    operator = parseCreated(r.stdout);
    expect(operator.token.startsWith(`ock_${operator.keyId}_`)).toBe(true);
    expect(await authenticate(db.pool, operator.token)).toEqual({ keyId: operator.keyId, role: 'operator', scopeId: 'OP1' });

    const f = await keys('create', '--role', 'finance', '--label', 'month end');
    expect(f.code, f.stderr).toBe(0);
    finance = parseCreated(f.stdout);
    expect(await authenticate(db.pool, finance.token)).toEqual({ keyId: finance.keyId, role: 'finance', scopeId: null });

    const row = await db.pool.query<{ label: string; created_by: string }>('SELECT label, created_by FROM api_key WHERE id = $1', [operator.keyId]);
    expect(row.rows[0].label).toBe('x');
    expect(row.rows[0].created_by).toMatch(/^cli:/);
  });

  it('list shows every key and its state, never a token or a secret hash', async () => {
    const r = await keys('list');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines).toContain(`${operator.keyId}\toperator\tOP1\tactive\tx`);
    expect(lines).toContain(`${finance.keyId}\tfinance\t-\tactive\tmonth end`);
    const out = r.stdout + r.stderr;
    expect(out).not.toContain('ock_');
    for (const t of [operator.token, finance.token]) expect(out).not.toContain(t.slice('ock_key_0123456789abcdef_'.length));
    const hashes = await db.pool.query<{ secret_sha256: Buffer }>('SELECT secret_sha256 FROM api_key');
    for (const { secret_sha256: h } of hashes.rows) {
      for (const form of [h.toString('hex'), h.toString('base64'), h.toString('base64url')]) expect(out).not.toContain(form);
    }
  });

  it('revoke --id makes the token fail at once; the other key is untouched', async () => {
    const r = await keys('revoke', '--id', operator.keyId);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`revoked ${operator.keyId}`);
    expect(await authenticate(db.pool, operator.token)).toBeNull();
    expect(await authenticate(db.pool, finance.token)).not.toBeNull();
    const l = await keys('list');
    expect(l.stdout).toContain(`${operator.keyId}\toperator\tOP1\tREVOKED\tx`);
    expect(l.stdout).toContain(`${finance.keyId}\tfinance\t-\tactive\tmonth end`);
    const events = await db.pool.query<{ event: string }>('SELECT event FROM api_key_event WHERE key_id = $1 ORDER BY event', [operator.keyId]);
    expect(events.rows.map((e) => e.event)).toEqual(['CREATED', 'REVOKED']);
  });

  it('bad arguments exit non-zero with a clear message and create nothing', async () => {
    const before = (await db.pool.query('SELECT 1 FROM api_key')).rows.length;
    const cases: [string[], number, RegExp][] = [
      [[], 2, /^usage: npm run keys -- create --role ROLE/m],
      [['frobnicate'], 2, /^usage: npm run keys/m],
      [['create', '--role', 'wizard', '--label', 'x'], 1, /^ROLE_INVALID: Role must be one of admin, operator/m],
      [['create', '--label', 'no role'], 1, /^ROLE_INVALID: /m],
      [['create', '--role', 'operator', '--label', 'x'], 1, /^SCOPE_REQUIRED: /m],
      [['create', '--role', 'bank', '--scope', 'has space', '--label', 'x'], 1, /^SCOPE_REQUIRED: /m],
      [['create', '--role', 'auditor', '--scope', 'A1', '--label', 'x'], 1, /^SCOPE_NOT_ALLOWED: /m],
      [['revoke'], 1, /^KEY_NOT_FOUND: /m],
      [['revoke', '--id', 'key_0000000000000000'], 1, /^KEY_NOT_FOUND: No such API key/m],
      [['list', '--bogus'], 1, /Unknown option '--bogus'/],
    ];
    // Independent invocations: run them side by side.
    const results = await Promise.all(cases.map(([args]) => keys(...args)));
    for (const [i, [args, code, message]] of cases.entries()) {
      const r = results[i];
      expect(r.code, `keys ${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr, `keys ${args.join(' ')}`).toMatch(message);
      expect(r.stdout, `keys ${args.join(' ')}`).not.toContain('ock_');
    }
    expect((await db.pool.query('SELECT 1 FROM api_key')).rows.length).toBe(before);
  });
});
