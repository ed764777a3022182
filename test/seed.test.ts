/**
 * The demo city seed: deterministic (same seed → same rows and balances; a second run writes
 * nothing), different seeds make different cards, a differently seeded database is refused
 * whole, the ledger verifies and every card's balances are what the plan and the summary say,
 * TAC vectors in the summary are genuine, demo keys are written privately and reused, and
 * `npm run seed` does all of it without printing a token.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate } from '../adapters/auth/api-keys.ts';
import { ConfigKeyStore, diversifyCardKey, tacWithCardKey } from '../adapters/crypto/index.ts';
import { ensureSeedKeys, seedCity, writeSeedSummary, type SeedSummary } from '../adapters/reference/index.ts';
import { DomainError } from '../engine/errors.ts';
import { planCards, planCity, seed_cards_per_chunk } from '../engine/reference/index.ts';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { test_qr_master_keys, test_tac_master_keys } from './support/deps.ts';

const repo_root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Two chunks (one full, one partial), so concurrent chunk writing and the partial deposit are exercised. */
const cards = seed_cards_per_chunk + 100;
const keyStore = ConfigKeyStore.fromConfigStrings(test_tac_master_keys, test_qr_master_keys);
const ledger = new Ledger();

let db: TestDb;
let other: TestDb;
let dir = '';
beforeAll(async () => {
  [db, other] = await Promise.all([freshDatabase(6), freshDatabase(4)]);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onecard-seed-'));
});
afterAll(async () => {
  await Promise.all([db?.drop(), other?.drop()]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const tables = ['bank', 'merchant', 'merchant_fee_schedule', 'terminal', 'card', 'card_status_event', 'reference_event', 'ledger_account', 'ledger_entry', 'ledger_posting'];

interface Snapshot { counts: Record<string, number>; balances: Record<string, string> }
async function snapshot(q: TestDb): Promise<Snapshot> {
  const counts: Record<string, number> = {};
  for (const t of tables) counts[t] = Number((await q.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ${t}`)).rows[0].n);
  const a = await q.pool.query<{ code: string; b: string }>(`SELECT code, concat_ws('/', debits_posted_fen, credits_posted_fen) AS b FROM ledger_account ORDER BY code`);
  return { counts, balances: Object.fromEntries(a.rows.map((r) => [r.code, r.b])) };
}

async function balances(q: TestDb, like: string): Promise<Map<string, bigint>> {
  const r = await q.pool.query<{ code: string; c: bigint; d: bigint }>(`SELECT code, credits_posted_fen AS c, debits_posted_fen AS d FROM ledger_account WHERE code LIKE $1`, [like]);
  return new Map(r.rows.map((x) => [x.code, x.c - x.d]));
}

const withoutRun = (s: SeedSummary) => ({ ...s, run: undefined });

describe('seedCity', () => {
  let first: SeedSummary;
  let firstSnapshot: Snapshot;

  it('seeds a small city', async () => {
    first = await seedCity(db.pool, { seed: 42, cards, keyStore, ledger, chunksInFlight: 2 });
    expect(first.run.cards_created).toBe(cards);
    expect(first.run.entries_replayed).toBe(0);
    firstSnapshot = await snapshot(db);
    expect(firstSnapshot.counts).toMatchObject({ bank: 6, merchant: 50, merchant_fee_schedule: 50, terminal: 2_048, card: cards });
    expect(firstSnapshot.counts.ledger_entry).toBe(first.run.entries_written);
    const operators = await db.pool.query(`SELECT id FROM merchant WHERE kind = 'TRANSIT' AND is_operator ORDER BY id`);
    expect(operators.rows.map((r) => r.id)).toEqual(first.operators.map((o) => o.id));
    const busTerminals = await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM terminal t JOIN merchant m ON m.id = t.merchant_id WHERE m.is_operator AND t.line_id IS NOT NULL AND t.station_id IS NOT NULL AND t.latitude IS NOT NULL`);
    expect(Number(busTerminals.rows[0].n)).toBe(2_000);
    const statuses = await db.pool.query<{ status: string; n: bigint }>(`SELECT status, count(*)::bigint AS n FROM card GROUP BY status`);
    expect(Object.fromEntries(statuses.rows.map((r) => [r.status, Number(r.n)]))).toEqual(first.totals.cards_by_status);
    // Every card has ISSUED then ACTIVE; lost and cancelled ones a third event, which is their status.
    const histories = await db.pool.query<{ card_no: string; h: string[]; status: string }>(
      `SELECT c.card_no, c.status, array_agg(e.status ORDER BY e.id) AS h FROM card c JOIN card_status_event e USING (card_no) GROUP BY c.card_no, c.status`);
    expect(histories.rows).toHaveLength(cards);
    for (const r of histories.rows) {
      expect(r.h.slice(0, 2)).toEqual(['ISSUED', 'ACTIVE']);
      expect(r.h.at(-1)).toBe(r.status);
    }
  });

  it('a second run with the same seed writes nothing: same rows, same balances, no new ledger entries', async () => {
    const second = await seedCity(db.pool, { seed: 42, cards, keyStore, ledger });
    expect(second.run).toMatchObject({ reference_created: 0, cards_created: 0, cards_existing: cards, entries_written: 0, entries_replayed: first.run.entries_written });
    expect(await snapshot(db)).toEqual(firstSnapshot);
    expect(withoutRun(second)).toEqual(withoutRun(first));
  });

  it('the ledger verifies and every balance is what the plan and the summary say', async () => {
    const v = await ledger.verify(db.pool);
    expect(v.ok, JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x)).slice(0, 500)).toBe(true);
    const plan = planCity({ seed: 42, cards });
    const planned = planCards(plan, 0, cards);
    const purses = await balances(db, 'card:%:purse');
    const medical = await balances(db, 'card:%:medical');
    for (const c of planned) {
      expect(purses.get(`card:${c.record.cardNo}:purse`) ?? 0n, c.record.cardNo).toBe(c.purseFen);
      expect(medical.get(`card:${c.record.cardNo}:medical`) ?? 0n, c.record.cardNo).toBe(c.medicalFen);
    }
    expect(purses.size).toBe(first.totals.purse_accounts);
    expect([...purses.values()].reduce((a, b) => a + b, 0n)).toBe(BigInt(first.totals.purse_fen));
    expect([...medical.values()].reduce((a, b) => a + b, 0n)).toBe(BigInt(first.totals.medical_fen));
    for (const s of first.sample_cards) {
      expect(purses.get(`card:${s.card_no}:purse`) ?? 0n).toBe(BigInt(s.purse_fen));
      expect(medical.get(`card:${s.card_no}:medical`) ?? 0n).toBe(BigInt(s.medical_fen));
    }
    expect(first.sample_cards.filter((s) => s.status === 'ACTIVE').length).toBeGreaterThanOrEqual(10);
    const fund = await balances(db, first.medical_programme.fund_account);
    expect(fund.get(first.medical_programme.fund_account)).toBe(BigInt(first.totals.programme_fund_fen));
    expect(BigInt(first.totals.programme_fund_fen)).toBeGreaterThanOrEqual(0n);
    // Each bank's clearing position: what it loaded into its cardholders' purses (+ the insurer's deposits).
    const banksBal = await db.pool.query<{ code: string; d: bigint; c: bigint }>(`SELECT code, debits_posted_fen AS d, credits_posted_fen AS c FROM ledger_account WHERE owner_type = 'bank'`);
    for (const b of banksBal.rows) {
      const code = b.code.split(':')[1];
      let expected = planned.filter((c) => c.record.issuingBank === code).reduce((a, c) => a + c.purseFen, 0n);
      if (code === first.medical_programme.bank_code) expected += BigInt(first.totals.programme_deposits_fen);
      expect(b.d - b.c, b.code).toBe(expected);
    }
  });

  it('grows the same city with more cards without re-funding: card i is the same whatever the size', async () => {
    const grown = await seedCity(db.pool, { seed: 42, cards: cards + 200, keyStore, ledger });
    expect(grown.run.cards_created).toBe(200);
    const fundCode = grown.medical_programme.fund_account;
    const deposits = await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ledger_entry WHERE kind = 'PROGRAMME_DEPOSIT'`);
    expect(Number(deposits.rows[0].n)).toBe(2);
    expect((await balances(db, fundCode)).get(fundCode)).toBe(BigInt(grown.totals.programme_fund_fen));
    expect((await ledger.verify(db.pool)).ok).toBe(true);
  });

  it('a different seed makes different cards, and is refused whole on a database seeded otherwise', async () => {
    const s43 = await seedCity(other.pool, { seed: 43, cards: 300, ledger });
    const ours = new Set((await db.pool.query<{ card_no: string }>('SELECT card_no FROM card')).rows.map((r) => r.card_no));
    const theirs = (await other.pool.query<{ card_no: string }>('SELECT card_no FROM card')).rows.map((r) => r.card_no);
    expect(theirs).toHaveLength(300);
    expect(theirs.filter((c) => ours.has(c))).toEqual([]);
    expect(s43.banks.map((b) => b.code)).not.toEqual(first.banks.map((b) => b.code));
    const before = await snapshot(db);
    const err = await seedCity(db.pool, { seed: 43, cards: 300, ledger }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).code).toBe('SEED_CONFLICT');
    expect(await snapshot(db)).toEqual(before);
  });

  it('carries genuine TAC vectors for sample taps', () => {
    expect(first.tac_vectors).toHaveLength(3);
    const master = Buffer.from(test_tac_master_keys.split(':')[1], 'hex');
    for (const v of first.tac_vectors) {
      expect(v.key_version).toBe(1);
      const fields = { amountFen: v.amount_fen, txnType: v.txn_type, terminalId: v.terminal_id, terminalSeq: v.terminal_seq, localTime: v.local_time };
      expect(tacWithCardKey(diversifyCardKey(master, v.card_no), fields)).toBe(v.tac);
      expect(first.operators[0].terminal_ids).toContain(v.terminal_id);
    }
  });
});

describe('demo keys and files', () => {
  it('writes private credential and summary files; a second run keeps the same keys', async () => {
    const summary = await seedCity(db.pool, { seed: 42, cards, ledger });
    const file = path.join(dir, 'seed-credentials.json');
    const k1 = await ensureSeedKeys(db.pool, summary, file, 'seed:42');
    expect(k1.created).toBe(2 + 6 + 2 + 1 + 2 + 1);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const creds = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown> & { _keys: Record<string, { role: string; scope_id: string | null }> };
    const expectRole = async (name: string, role: string, scope: string | null) => {
      const p = await authenticate(db.pool, creds[name] as string);
      expect(p, name).toMatchObject({ role, scopeId: scope });
      expect(creds._keys[name]).toMatchObject({ role, scope_id: scope });
    };
    await expectRole('operator_OPBUS01', 'operator', 'OPBUS01');
    await expectRole(`bank_${summary.banks[5].code}`, 'bank', summary.banks[5].code);
    await expectRole('merchant_HOSP01', 'merchant', 'HOSP01');
    await expectRole('merchant_UTIL_WATER', 'merchant', 'UTIL-WATER');
    await expectRole('programme_MEDICAL_INSURANCE', 'programme', 'MEDICAL_INSURANCE');
    await expectRole('finance_1', 'finance', null);
    await expectRole('finance_2', 'finance', null);
    await expectRole('auditor', 'auditor', null);
    expect(Object.keys(creds).some((k) => k.startsWith('admin'))).toBe(false);
    const k2 = await ensureSeedKeys(db.pool, summary, file, 'seed:42');
    expect(k2).toMatchObject({ created: 0, reused: k1.created });
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual(creds);
    const summaryFile = writeSeedSummary(dir, summary);
    expect(fs.statSync(summaryFile).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(summaryFile, 'utf8'))).toEqual(JSON.parse(JSON.stringify(summary)));
  });

  it('npm run seed seeds, writes both files and prints how to use them without a token', async () => {
    const target = await freshDatabase(2);
    const dataDir = path.join(dir, 'cli-data');
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: target.url, ONECARD_DATA_DIR: dataDir };
      delete env.TAC_MASTER_KEYS;
      delete env.QR_MASTER_KEYS;
      delete env.PII_KEYS;
      const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn('npm', ['run', '--silent', 'seed', '--', '--seed', '7', '--cards', '250', '--verify'], { cwd: repo_root, env, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => { stdout += d.toString('utf8'); });
        child.stderr.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
        const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`seed timed out\n${stdout}\n${stderr}`)); }, 120_000);
        child.on('error', reject);
        child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
      });
      expect(r.code, r.stderr).toBe(0);
      const credFile = path.join(dataDir, 'seed-credentials.json');
      expect(r.stdout).toContain(credFile);
      expect(r.stdout).toContain(path.join(dataDir, 'seed-summary.json'));
      expect(r.stdout).toMatch(/curl -H "Authorization: Bearer \$\(jq -r \.finance_1/);
      expect(r.stdout).toMatch(/ledger OK/);
      expect(r.stderr).toMatch(/seeding cards/);
      const creds = JSON.parse(fs.readFileSync(credFile, 'utf8')) as Record<string, unknown>;
      for (const [name, token] of Object.entries(creds)) {
        if (typeof token === 'string') expect(`${r.stdout}${r.stderr}`, name).not.toContain(token.slice(-20));
      }
      const summary = JSON.parse(fs.readFileSync(path.join(dataDir, 'seed-summary.json'), 'utf8')) as SeedSummary;
      expect(summary).toMatchObject({ seed: 7, cards: 250 });
      expect(summary.tac_vectors).toHaveLength(3);
      expect(Number((await target.pool.query<{ n: bigint }>('SELECT count(*)::bigint AS n FROM card')).rows[0].n)).toBe(250);
      // The engine's own key store (master-keys.env in the data dir) made those vectors.
      expect(fs.existsSync(path.join(dataDir, 'master-keys.env'))).toBe(true);
    } finally {
      await target.drop();
    }
  });
});
