/**
 * `npm run refdata`: imports banks, merchants and terminals from CSV files exactly as an operator
 * would run it (a real child process on DATABASE_URL), refuses a file with a bad row naming its
 * line and writing nothing, re-imports as a no-op, and lists what it imported. JSON files and
 * files larger than one import chunk (all or nothing across chunks) run in-process.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRefdata } from '../adapters/reference/refdata.ts';
import { luhnCheckDigit } from '../engine/reference/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';

const repo_root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let db: TestDb;
let dir = '';
beforeAll(async () => {
  db = await freshDatabase(4);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onecard-refdata-'));
});
afterAll(async () => {
  await db?.drop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function refdata(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: db.url };
  delete env.ONECARD_DATA_DIR;
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', '--silent', 'refdata', '--', ...args], { cwd: repo_root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString('utf8'); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`refdata ${args.join(' ')} timed out\n${stdout}\n${stderr}`)); }, 60_000);
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

async function count(table: string): Promise<number> {
  return Number((await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ${table}`)).rows[0].n);
}

const terminalsCsv = (n: number, from = 0, prefix = '42030100') =>
  ['id,merchant_id,line_id,station_id,latitude,longitude',
    ...Array.from({ length: n }, (_, i) => `${prefix}${String(from + i).padStart(12 - prefix.length, '0')},OPCSV,B${(from + i) % 30},B${(from + i) % 30}-S${(from + i) % 17},32.6${i % 10},110.8${i % 7}`)].join('\n');

describe('npm run refdata (CSV, child process)', () => {
  it('imports banks and merchants, then 1,200 terminals; a re-import changes nothing', async () => {
    const banks = file('banks.csv', 'code,name\n102100099996,"ICBC, test branch"\n105100099990,CCB test\n');
    const merchants = file('merchants.csv', [
      'id,name,kind,is_operator,acquiring_bank,settlement_account',
      'OPCSV,CSV Bus Co,TRANSIT,true,102100099996,6222020000000001',
      'HOSPCSV,CSV Hospital,MEDICAL,,105100099990,6217000000000002',
    ].join('\n'));
    let r = await refdata('import', 'banks', '--file', banks);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/imported banks from .*banks\.csv: 2 rows, 2 created, 0 already registered/);
    r = await refdata('import', 'merchants', '--file', merchants, '--actor', 'ops:alice');
    expect(r.code, r.stderr).toBe(0);
    const m = await db.pool.query(`SELECT id, is_operator FROM merchant ORDER BY id`);
    expect(m.rows).toEqual([{ id: 'HOSPCSV', is_operator: false }, { id: 'OPCSV', is_operator: true }]);
    const actors = await db.pool.query(`SELECT DISTINCT actor FROM reference_event WHERE entity = 'merchant'`);
    expect(actors.rows).toEqual([{ actor: 'ops:alice' }]);

    const terms = file('terminals.csv', terminalsCsv(1_200));
    r = await refdata('import', 'terminals', '--file', terms);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/1200 rows, 1200 created, 0 already registered/);
    expect(await count('terminal')).toBe(1_200);
    const one = await db.pool.query(`SELECT merchant_id, line_id, station_id, latitude::text, longitude::text FROM terminal WHERE id = '420301000013'`);
    expect(one.rows[0]).toEqual({ merchant_id: 'OPCSV', line_id: 'B13', station_id: 'B13-S13', latitude: '32.630000', longitude: '110.860000' });
    const createdBy = await db.pool.query(`SELECT DISTINCT actor FROM reference_event WHERE entity = 'terminal'`);
    expect(createdBy.rows[0].actor).toMatch(/^cli:/);

    r = await refdata('import', 'terminals', '--file', terms);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/1200 rows, 0 created, 1200 already registered/);
    expect(await count('reference_event')).toBe(2 + 2 + 1_200);
  });

  it('refuses a file with bad rows, naming row and line, and writes nothing', async () => {
    const lines = terminalsCsv(50, 5_000).split('\n');
    lines[3] = lines[3].replace(/^42030100/, '4203010');
    lines[7] = lines[7].replace(',OPCSV,', ',NOPE,');
    const before = await count('terminal');
    const r = await refdata('import', 'terminals', '--file', file('bad.csv', lines.join('\n')));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused: 2 rows of .*bad\.csv/);
    expect(r.stderr).toMatch(/row 3 \(line 4\): TERMINAL_ID_INVALID \[id\]/);
    expect(r.stderr).toMatch(/row 7 \(line 8\): MERCHANT_NOT_FOUND \[merchant_id\]/);
    expect(await count('terminal')).toBe(before);
  });

  it('lists what it imported as CSV that reads back the same', async () => {
    const r = await refdata('list', 'terminals');
    expect(r.code, r.stderr).toBe(0);
    const rows = parse(r.stdout, { columns: true }) as Record<string, string>[];
    expect(rows).toHaveLength(1_200);
    expect(rows[13]).toEqual({ id: '420301000013', merchant_id: 'OPCSV', station_id: 'B13-S13', line_id: 'B13', latitude: '32.630000', longitude: '110.860000', status: 'ACTIVE' });
    const u = await refdata('frobnicate', 'terminals');
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/usage/);
  });
});

describe('refdata in-process (JSON, big files)', () => {
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { db: db.pool, out: (s: string) => { out.push(s); }, err: (s: string) => { err.push(s); }, now: () => new Date(), actor: 'test' } };
  };
  const cardNo = (n: number) => {
    const partial = `621700${String(n).padStart(12, '0')}`;
    return `${partial}${luhnCheckDigit(partial)}`;
  };

  it('imports cards from JSON ({"items": [...]}) and lists them as JSON lines', async () => {
    const items = [
      { card_no: cardNo(1), issuing_bank: '102100099996', form: 'PHYSICAL', issued_at: '2026-01-01T00:00:00Z', activated_at: '2026-01-01T01:00:00Z' },
      { card_no: cardNo(2), issuing_bank: '102100099996', form: 'ECARD', linked_card_no: cardNo(1), daily_limit_fen: 100000 },
    ];
    const x = io();
    expect(await runRefdata(['import', 'cards', '--file', file('cards.json', JSON.stringify({ items }))], x.io)).toBe(0);
    expect(x.out.join('')).toMatch(/2 rows, 2 created/);
    const y = io();
    expect(await runRefdata(['list', 'cards', '--format', 'json'], y.io)).toBe(0);
    const listed = y.out.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(listed.map((c) => [c.card_no, c.status, c.daily_limit_fen, c.linked_card_no])).toEqual([
      [cardNo(1), 'ACTIVE', '500000', null], [cardNo(2), 'ISSUED', '100000', cardNo(1)],
    ]);
  });

  it('a file larger than one chunk is all or nothing: a bad row in the second chunk undoes the first', async () => {
    const before = await count('terminal');
    const lines = terminalsCsv(10_050, 20_000, '4203020').split('\n');
    lines[10_040] = lines[10_040].replace(',OPCSV,', ',GHOST,');
    const x = io();
    expect(await runRefdata(['import', 'terminals', '--file', file('big.csv', lines.join('\n'))], x.io)).toBe(1);
    expect(x.err.join('')).toMatch(/row 10040 \(line 10041\): MERCHANT_NOT_FOUND/);
    expect(await count('terminal')).toBe(before);
    lines[10_040] = lines[10_040].replace(',GHOST,', ',OPCSV,');
    const y = io();
    expect(await runRefdata(['import', 'terminals', '--file', file('big.csv', lines.join('\n'))], y.io)).toBe(0);
    expect(y.out.join('')).toMatch(/10050 rows, 10050 created/);
    expect(await count('terminal')).toBe(before + 10_050);
  });

  it('says what is wrong with a file that is not rows', async () => {
    const x = io();
    expect(await runRefdata(['import', 'banks', '--file', file('nope.json', '{"banks": 1}')], x.io)).toBe(1);
    expect(x.err.join('')).toMatch(/FILE_MALFORMED/);
    const y = io();
    expect(await runRefdata(['import', 'banks', '--file', file('rows.txt', 'x')], y.io)).toBe(1);
    expect(y.err.join('')).toMatch(/FILE_TYPE_INVALID/);
    const z = io();
    expect(await runRefdata(['import', 'banks'], z.io)).toBe(2);
  });
});
