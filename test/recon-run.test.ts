/**
 * Reconciliation of a really cleared cycle, end to end through HTTP: tap batches uploaded by an
 * operator (with a sequence gap, a clone, a purse shortfall and a balance-chain break), payments
 * posted to the ledger, the cycle cleared and published, banks pulling detail.csv and uploading
 * return.csv with planted differences (and one pacs.002 RJCT), the operator uploading its daily
 * totals. Every exception type is raised by its planted difference and by nothing else; the SQL
 * agrees with the pure matching model; two runs at once and runs again file nothing twice; a
 * difference that goes away stays for a person to resolve. Then the exceptions workflow: filters
 * and cursor, source lines side by side, assign, comment, resolve, refused transitions, roles.
 */
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPacs002 } from '../adapters/bankfiles/index.ts';
import { reconcilePending } from '../adapters/recon/run.ts';
import { reconcile_actor, reconcile_every_minutes, reconcile_queue, startReconciliationSchedule } from '../adapters/recon/schedule.ts';
import { startQueue } from '../adapters/jobs/queue.ts';
import pino from 'pino';
import { exception_types, matchBankLines, type ExceptionType } from '../engine/recon/index.ts';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testConfig, testDeps } from './support/deps.ts';
import { bearer, mintKey } from './support/http.ts';
import { buildClearingApp } from './support/clearing-app.ts';
import { after_cutoff, banks, before_cutoff, entriesOf, medicalFunding, openCycle, postAll, randomTxns, seedReference, test_date } from './support/clearing-fixtures.ts';
import { bank_code as transit_bank, batchOf, fundPurses, movableClock, seedTransit, tap, upload } from './support/transit-fixtures.ts';

let db: TestDb;
let app: FastifyInstance;
const clock = movableClock(before_cutoff.getTime());
const tok = { admin: '', finance: '', finance2: '', auditor: '', opA: '', operator: '' } as Record<string, string>;
const bankTok: Record<string, string> = {};
const cycle_id = 'CYC20261128';
const pkgId = (bank: string) => `${cycle_id}-${bank}`;
const card = (i: number) => `62170600000${String(i).padStart(8, '0')}`;
const term = (i: number) => `42030100000${i}`;

interface DetailLine { txnId: string; amountFen: bigint }
const detail: Record<string, DetailLine[]> = {};
/** What was planted in bank A's return, by type: txn ids. */
const planted: Partial<Record<ExceptionType, string[]>> = {};
const bank_a = banks[0];
const bank_b = banks[1];
const bank_silent = banks[2];
let latestUpload = '';

function post(url: string, token: string, payload?: unknown, contentType = 'application/json') {
  return app.inject({ method: 'POST', url, headers: { ...bearer(token), 'content-type': contentType }, payload: payload === undefined ? {} : (payload as string) });
}
function get(url: string, token: string) {
  return app.inject({ method: 'GET', url, headers: bearer(token) });
}

async function downloadDetail(bank: string): Promise<DetailLine[]> {
  const r = await get(`/v1/settlement/packages/${pkgId(bank)}/files/detail.csv`, bankTok[bank]);
  expect(r.statusCode, r.body).toBe(200);
  const rows = r.body.split('\n').filter((l) => l !== '').slice(1).map((l) => l.split(','));
  return rows.map((f) => ({ txnId: f[1], amountFen: BigInt(f[8]) }));
}

function returnCsv(lines: { txnId: string; amountFen: bigint; status?: 'POSTED' | 'REJECTED'; reason?: string }[]): string {
  return `txn_id,amount_fen,status,bank_ref,reason\n${lines.map((l, i) => `${l.txnId},${l.amountFen},${l.status ?? 'POSTED'},BR${i},${l.reason ?? ''}`).join('\n')}\n`;
}

async function uploadReturn(bank: string, body: string): Promise<void> {
  const r = await post(`/v1/settlement/packages/${pkgId(bank)}/returns/csv`, bankTok[bank], body, 'text/csv');
  expect(r.statusCode, r.body).toBe(200);
}

async function reconcile(token = tok.finance) {
  const r = await post(`/v1/cycles/${cycle_id}/reconciliation`, token);
  expect(r.statusCode, r.body).toBe(200);
  return r.json() as { run_id: string; engine_lines: string; bank_lines: string; matched: string; exceptions_new: string; exceptions_total: string; by_type: Record<string, string> };
}

async function filed(): Promise<{ id: bigint; type: string; source_key: string; bank_code: string | null; txn_id: string | null; state: string }[]> {
  return (await db.pool.query(`SELECT id, type, source_key, bank_code, txn_id, state FROM recon_exception ORDER BY type, source_key`)).rows;
}

beforeAll(async () => {
  db = await freshDatabase(6);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'recon-'));
  await seedReference(db.pool);
  const cards = Array.from({ length: 7 }, (_, i) => ({ cardNo: card(i + 1) }));
  await seedTransit(db.pool, {
    operators: [{ id: 'OPA' }, { id: 'OPB' }],
    terminals: [1, 2, 3, 4, 5].map((i) => ({ id: term(i), operatorId: 'OPA' })).concat([{ id: term(9), operatorId: 'OPB' }]),
    cards,
  });
  await fundPurses(db.pool, [1, 2, 3, 4, 5].map((i) => ({ cardNo: card(i), amountFen: 1_000_000n })), test_date);
  // Card 6 holds less than its tap: the shortfall comes from suspense and raises a risk case.
  await fundPurses(db.pool, [{ cardNo: card(6), amountFen: 100n }], test_date);
  const deps = testDeps(db.pool, { now: clock.now, config: testConfig({ dataDir }) });
  app = await buildClearingApp(deps);
  for (const k of ['admin', 'finance', 'auditor'] as const) tok[k] = (await mintKey(db.pool, k)).token;
  tok.finance2 = (await mintKey(db.pool, 'finance')).token;
  tok.opA = (await mintKey(db.pool, 'operator', 'OPA')).token;
  for (const b of [...banks, transit_bank]) bankTok[b] = (await mintKey(db.pool, 'bank', b)).token;

  await openCycle(db.pool, before_cutoff);
  const ledger = new Ledger();
  await postAll(db.pool, ledger, medicalFunding(test_date, 'rc'));
  await postAll(db.pool, ledger, entriesOf(randomTxns(11, 160), test_date, 'r'));

  const b1 = await upload(app, tok.opA, batchOf('OPA', 'RC-1', [
    tap({ cardNo: card(1), cardCounter: 1, terminalId: term(1), terminalSeq: 1, localTime: '20261128090000', amountFen: 200, balanceBeforeFen: 10_000 }),
    tap({ cardNo: card(1), cardCounter: 2, terminalId: term(1), terminalSeq: 2, localTime: '20261128090500', amountFen: 300, balanceBeforeFen: 9_800 }),
    tap({ cardNo: card(2), cardCounter: 1, terminalId: term(2), terminalSeq: 1, localTime: '20261128091000', amountFen: 150, balanceBeforeFen: 5_000 }),
    // Card 2's second tap claims 4000 before, where 4850 was left: a balance-chain break.
    tap({ cardNo: card(2), cardCounter: 2, terminalId: term(2), terminalSeq: 2, localTime: '20261128091500', amountFen: 150, balanceBeforeFen: 4_000 }),
    // Terminal 1 jumps from 2 to 5: sequence numbers 3..4 are missing.
    tap({ cardNo: card(3), cardCounter: 1, terminalId: term(1), terminalSeq: 5, localTime: '20261128092000', amountFen: 250, balanceBeforeFen: 7_000 }),
    tap({ cardNo: card(6), cardCounter: 1, terminalId: term(3), terminalSeq: 1, localTime: '20261128092500', amountFen: 500, balanceBeforeFen: 10_000 }),
  ]));
  expect(b1.statusCode, b1.body).toBe(200);
  expect(b1.json()).toMatchObject({ acceptedCount: 6 });
  const b2 = await upload(app, tok.opA, batchOf('OPA', 'RC-2', [
    tap({ cardNo: card(4), cardCounter: 1, terminalId: term(4), terminalSeq: 1, localTime: '20261128093000', amountFen: 100, balanceBeforeFen: 3_000 }),
    // Card 1's counter 1 again, elsewhere and later: a clone suspect.
    tap({ cardNo: card(1), cardCounter: 1, terminalId: term(4), terminalSeq: 2, localTime: '20261128093500', amountFen: 200, balanceBeforeFen: 10_000 }),
  ]));
  expect(b2.statusCode, b2.body).toBe(200);
  expect(b2.json()).toMatchObject({ acceptedCount: 1, rejections: [{ index: 1, reason: 'CLONE_SUSPECT' }] });

  // Before the cycle is cleared there is nothing to reconcile.
  const early = await post(`/v1/cycles/${cycle_id}/reconciliation`, tok.finance);
  expect(early.statusCode).toBe(409);
  expect(early.json().code).toBe('CYCLE_NOT_CLEARED');

  clock.set(after_cutoff.getTime());
  const run = await post(`/v1/clearing/cycles/${cycle_id}/runs`, tok.admin);
  expect(run.statusCode, run.body).toBe(200);
  expect(run.json().state).toBe('PUBLISHED');

  for (const b of [bank_a, bank_b, bank_silent, transit_bank]) detail[b] = await downloadDetail(b);
  // Bank A: every line POSTED except one of each planted difference, on txn ids that occur once.
  const counts = new Map<string, number>();
  for (const l of detail[bank_a]) counts.set(l.txnId, (counts.get(l.txnId) ?? 0) + 1);
  const singles = detail[bank_a].filter((l) => counts.get(l.txnId) === 1);
  expect(singles.length).toBeGreaterThan(10);
  const [missing, mismatch, duplicate, rejected] = singles;
  planted.MISSING_AT_BANK = [missing.txnId];
  planted.AMOUNT_MISMATCH = [mismatch.txnId];
  planted.DUPLICATE_AT_BANK = [duplicate.txnId];
  planted.REJECTED_BY_BANK = [rejected.txnId];
  planted.UNKNOWN_AT_ENGINE = ['BANKONLY-1'];
  const linesA: { txnId: string; amountFen: bigint; status?: 'POSTED' | 'REJECTED'; reason?: string }[] = [];
  for (const l of detail[bank_a]) {
    if (l.txnId === missing.txnId) continue;
    if (l.txnId === mismatch.txnId) linesA.push({ ...l, amountFen: l.amountFen + 7n });
    else if (l.txnId === rejected.txnId) linesA.push({ ...l, status: 'REJECTED', reason: 'account closed' });
    else linesA.push(l);
    if (l.txnId === duplicate.txnId) linesA.push(l);
  }
  linesA.push({ txnId: 'BANKONLY-1', amountFen: 999n });
  await uploadReturn(bank_a, returnCsv(linesA));
  // Bank B returns exactly its lines; the silent bank returns nothing (its lines are awaited,
  // not missing); the transit bank returns its lines but rejects the whole instruction.
  await uploadReturn(bank_b, returnCsv(detail[bank_b]));
  await uploadReturn(transit_bank, returnCsv(detail[transit_bank]));
  const rj = await post(`/v1/settlement/packages/${pkgId(transit_bank)}/returns/pacs002`, bankTok[transit_bank], buildPacs002({
    messageId: 'RJ-1', createdAt: after_cutoff, originalMessageId: `P${pkgId(transit_bank)}`, originalEndToEndId: pkgId(transit_bank), status: 'RJCT', reasonCode: 'AM04',
  }), 'application/xml');
  expect(rj.statusCode, rj.body).toBe(200);

  // The operator's totals: a first upload, then a corrected one that supersedes it. Engine:
  // terminal 1 3 taps 750, terminal 2 2 taps 300, terminal 3 1 tap 500, terminal 4 1 tap 100.
  const first = await post('/v1/operator-totals', tok.opA, `business_date,terminal_id,tap_count,amount_fen\n${test_date},${term(1)},1,1\n`, 'text/csv');
  expect(first.statusCode, first.body).toBe(201);
  const latest = await post('/v1/operator-totals', tok.opA, JSON.stringify({
    operator_id: 'OPA', business_date: test_date, terminals: [
      { terminal_id: term(1), tap_count: 3, amount_fen: 750 }, { terminal_id: term(2), tap_count: 2, amount_fen: 310 },
      { terminal_id: term(4), tap_count: 1, amount_fen: '100' }, { terminal_id: term(5), tap_count: 4, amount_fen: 800 },
    ] }));
  expect(latest.statusCode, latest.body).toBe(201);
  latestUpload = latest.json().upload_id;
}, 120_000);

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('a reconciliation run', () => {
  let firstRuns: Awaited<ReturnType<typeof reconcile>>[] = [];

  it('two runs at once file every difference once', async () => {
    firstRuns = await Promise.all([reconcile(), reconcile(tok.finance2)]);
    const rows = await filed();
    expect(rows.length).toBeGreaterThan(0);
    expect(new Set(rows.map((r) => `${r.type}|${r.source_key}`)).size).toBe(rows.length);
    expect(firstRuns.map((r) => BigInt(r.exceptions_new)).reduce((a, b) => a + b, 0n)).toBe(BigInt(rows.length));
    expect(firstRuns[0].exceptions_total).toBe(String(rows.length));
    expect(firstRuns[1].exceptions_total).toBe(String(rows.length));
    const opened = await db.pool.query(`SELECT count(*)::int AS n FROM recon_exception_event WHERE event = 'OPENED'`);
    expect(opened.rows[0].n).toBe(rows.length);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM recon_run WHERE finished_at IS NOT NULL`)).rows[0].n).toBe(2);
  });

  it('raises each planted bank difference as its type, and agrees with the pure model', async () => {
    const rows = await filed();
    const bankTypes = ['MISSING_AT_BANK', 'UNKNOWN_AT_ENGINE', 'AMOUNT_MISMATCH', 'DUPLICATE_AT_BANK', 'REJECTED_BY_BANK'];
    const lineRows = rows.filter((r) => bankTypes.includes(r.type) && !r.source_key.startsWith('package:'));
    // Bank A's planted lines exactly; nothing for bank B (returned exactly) or the silent bank.
    expect(lineRows.map((r) => [r.type, r.bank_code, r.txn_id]).sort()).toEqual(
      Object.entries(planted).map(([type, ids]) => [type, bank_a, ids![0]]).sort());
    for (const r of lineRows) expect(r.source_key).toBe(`${r.bank_code}:${r.txn_id}`);
    // The pure model over the same stored lines gives the same set.
    const engine = (await db.pool.query<{ bank_code: string; txn_id: string; amount_fen: bigint }>(
      `SELECT bank_code, txn_id, amount_fen FROM clearing_line WHERE cycle_id = $1`, [cycle_id])).rows;
    const returned = (await db.pool.query<{ bank_code: string; txn_id: string; amount_fen: bigint; status: 'POSTED' | 'REJECTED' }>(
      `SELECT bank_code, txn_id, amount_fen, status FROM settlement_return_line`)).rows;
    const model = matchBankLines(engine.map((l) => ({ bankCode: l.bank_code, txnId: l.txn_id, amountFen: l.amount_fen })),
      returned.map((l) => ({ bankCode: l.bank_code, txnId: l.txn_id, amountFen: l.amount_fen, status: l.status })), new Set([bank_a, bank_b, transit_bank]));
    expect(model.map((d) => [d.type, d.bankCode, d.txnId]).sort()).toEqual(lineRows.map((r) => [r.type, r.bank_code, r.txn_id]).sort());
    // The rejected instruction is one exception for the package.
    expect(rows.filter((r) => r.source_key.startsWith('package:')).map((r) => [r.type, r.source_key])).toEqual([
      ['REJECTED_BY_BANK', `package:${transit_bank}:${pkgId(transit_bank)}`]]);
  });

  it('raises operator total mismatches against the newest upload only', async () => {
    const rows = (await filed()).filter((r) => r.type === 'OPERATOR_TOTAL_MISMATCH');
    expect(rows.map((r) => r.source_key).sort()).toEqual([`OPA:${term(2)}:${test_date}`, `OPA:${term(3)}:${test_date}`, `OPA:${term(5)}:${test_date}`]);
    const t2 = await db.pool.query(`SELECT engine_amount_fen, other_amount_fen, details FROM recon_exception WHERE source_key = $1`, [`OPA:${term(2)}:${test_date}`]);
    expect(t2.rows[0]).toMatchObject({ engine_amount_fen: 300n, other_amount_fen: 310n });
    expect(t2.rows[0].details).toMatchObject({ operator_tap_count: '2', engine_tap_count: '2' });
  });

  it('brings ingestion signals into the queue: clone, shortfall, sequence gap, balance-chain break', async () => {
    const rows = await filed();
    const cases = (await db.pool.query<{ id: bigint; kind: string }>(`SELECT id, kind FROM risk_case ORDER BY id`)).rows;
    expect(cases.map((c) => c.kind).sort()).toEqual(['CLONE_SUSPECT', 'PURSE_SHORTFALL']);
    expect(rows.filter((r) => r.type === 'CLONE_SUSPECT').map((r) => r.source_key)).toEqual([`risk_case:${cases.find((c) => c.kind === 'CLONE_SUSPECT')!.id}`]);
    expect(rows.filter((r) => r.type === 'SUSPENSE_SHORTFALL').map((r) => r.source_key)).toEqual([`risk_case:${cases.find((c) => c.kind === 'PURSE_SHORTFALL')!.id}`]);
    const gaps = (await db.pool.query<{ terminal_id: string; from_seq: bigint; to_seq: bigint }>(`SELECT terminal_id, from_seq, to_seq FROM tap_seq_gap ORDER BY 1, 2`)).rows;
    expect(gaps).toContainEqual({ terminal_id: term(1), from_seq: 3n, to_seq: 4n });
    expect(rows.filter((r) => r.type === 'TERMINAL_SEQUENCE_GAP').map((r) => r.source_key).sort())
      .toEqual(gaps.map((g) => `gap:${g.terminal_id}:${g.from_seq}-${g.to_seq}`).sort());
    const chain = await db.pool.query(`SELECT card_no, engine_amount_fen, other_amount_fen, details FROM recon_exception WHERE type = 'BALANCE_CHAIN_BREAK'`);
    expect(chain.rows).toHaveLength(1);
    expect(chain.rows[0]).toMatchObject({ card_no: card(2), engine_amount_fen: 4_850n, other_amount_fen: 4_000n });
    expect(chain.rows[0].details).toMatchObject({ card_counter: '2', difference_fen: '-850' });
    // Every type the queue knows was raised by this cycle.
    expect(new Set(rows.map((r) => r.type))).toEqual(new Set(exception_types));
  });

  it('runs again without filing anything twice, and records each run', async () => {
    const before = await filed();
    const again = await reconcile();
    expect(again.exceptions_new).toBe('0');
    expect(again.exceptions_total).toBe(String(before.length));
    expect(again.by_type).toEqual(firstRuns[0].by_type);
    expect(await filed()).toEqual(before);
    const runs = await get(`/v1/reconciliation/runs?cycle_id=${cycle_id}`, tok.auditor);
    expect(runs.statusCode).toBe(200);
    expect(runs.json().items).toHaveLength(3);
    expect(runs.json().items[0]).toMatchObject({ id: again.run_id, exceptions_new: '0', exceptions_total: String(before.length) });
    // Engine lines, returned lines and matches are counted: bank A's four planted lines and the
    // silent bank's lines are not matched.
    const engineLines = Object.values(detail).reduce((a, d) => a + d.length, 0);
    expect(again.engine_lines).toBe(String(engineLines));
    expect(again.bank_lines).toBe(String(detail[bank_a].length + 1 + detail[bank_b].length + detail[transit_bank].length));
    expect(again.matched).toBe(String(engineLines - detail[bank_silent].length - 4));
  });

  it('keeps an exception that is no longer true for a person to resolve', async () => {
    const before = await filed();
    // Bank A corrects its return: now every line is POSTED with the engine's amount.
    await uploadReturn(bank_a, returnCsv(detail[bank_a]));
    const r = await reconcile();
    expect(r.exceptions_new).toBe('0');
    expect(BigInt(r.exceptions_total)).toBe(BigInt(before.length) - 5n);
    expect(r.by_type.AMOUNT_MISMATCH).toBe('0');
    expect(await filed()).toEqual(before);
  });

  it('runs from the command line by business date, and refuses a date without a cycle', async () => {
    const cli = (date: string) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: db.url };
      delete env.ONECARD_DATA_DIR;
      const child = spawn('npm', ['run', '--silent', 'reconcile', '--', '--date', date], { cwd: new URL('..', import.meta.url).pathname, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString('utf8'); });
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`reconcile timed out\n${stderr}`)); }, 60_000);
      child.on('error', reject);
      child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    });
    const before = await filed();
    const ok = await cli(test_date);
    expect(ok.code, ok.stderr).toBe(0);
    const out = JSON.parse(ok.stdout.trim().split('\n').pop()!);
    expect(out).toMatchObject({ cycleId: cycle_id, exceptionsNew: '0', exceptionsTotal: String(BigInt(before.length) - 5n) });
    expect(ok.stderr).toContain('differences');
    expect(await filed()).toEqual(before);
    const none = await cli('2020-01-01');
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('CYCLE_NOT_FOUND');
  }, 120_000);

  it('reconciles pending cycles: only those that received a return or totals since their last run', async () => {
    const deps = { db: db.pool, now: clock.now };
    const actor = { keyId: 'scheduler', role: 'finance' };
    // The command-line run just now saw everything uploaded so far.
    expect(await reconcilePending(deps, actor)).toEqual([]);
    clock.set(Date.now() + 3_600_000);
    // The same figures as the latest upload, now as CSV: new bytes, the same differences.
    const again = await post('/v1/operator-totals', tok.opA, `business_date,terminal_id,tap_count,amount_fen\n${
      [[1, 3, 750], [2, 2, 310], [4, 1, 100], [5, 4, 800]].map(([t, n, a]) => `${test_date},${term(t)},${n},${a}`).join('\n')}\n`, 'text/csv');
    expect(again.statusCode, again.body).toBe(201);
    const runs = await reconcilePending(deps, actor);
    expect(runs.map((r) => [r.cycleId, r.exceptionsNew])).toEqual([[cycle_id, 0n]]);
    expect(await reconcilePending(deps, actor)).toEqual([]);
    clock.set(after_cutoff.getTime());
  });

  it('runs on a schedule: a pg-boss cron every 15 minutes (Asia/Shanghai) whose job reconciles what is pending', async () => {
    const boss = await startQueue(db.url, pino({ level: 'silent' }), true);
    try {
      await startReconciliationSchedule(boss, { db: db.pool, now: clock.now });
      const schedules = await boss.getSchedules();
      expect(schedules).toEqual(expect.arrayContaining([expect.objectContaining({
        name: reconcile_queue, cron: `*/${reconcile_every_minutes} * * * *`, options: expect.objectContaining({ tz: 'Asia/Shanghai' }),
      })]));
      const runs = async () => Number((await db.pool.query(`SELECT count(*) AS n FROM recon_run WHERE cycle_id = $1`, [cycle_id])).rows[0].n);
      const before = await runs();
      clock.set(Date.now() + 7_200_000);
      const again = await post('/v1/operator-totals', tok.opA, `business_date,terminal_id,tap_count,amount_fen\n${
        [[1, 3, 750], [2, 2, 310], [4, 1, 100], [5, 4, 801]].map(([t, n, a]) => `${test_date},${term(t)},${n},${a}`).join('\n')}\n`, 'text/csv');
      expect(again.statusCode, again.body).toBe(201);
      await boss.send(reconcile_queue, {});
      const deadline = Date.now() + 60_000;
      while ((await runs()) === before) {
        if (Date.now() > deadline) throw new Error('the scheduled job did not reconcile the pending cycle');
        await new Promise((r) => setTimeout(r, 200));
      }
      const last = (await db.pool.query(`SELECT actor FROM recon_run WHERE cycle_id = $1 ORDER BY id DESC LIMIT 1`, [cycle_id])).rows[0];
      expect(last.actor).toContain(reconcile_actor.keyId);
      expect(await reconcilePending({ db: db.pool, now: clock.now }, { keyId: 'scheduler', role: 'finance' })).toEqual([]);
    } finally {
      await boss.stop({ graceful: false, close: true, wait: true });
      clock.set(after_cutoff.getTime());
    }
  }, 90_000);

  it('refuses unknown cycles and other roles', async () => {
    expect((await post('/v1/cycles/CYC20200101/reconciliation', tok.finance)).statusCode).toBe(404);
    const denied = await post(`/v1/cycles/${cycle_id}/reconciliation`, tok.auditor);
    expect(denied.statusCode).toBe(403);
    expect(denied.json().code).toBe('FORBIDDEN_ROLE');
  });
});

describe('the exceptions workflow', () => {
  const idOf = async (type: string) => `exc_${(await db.pool.query(`SELECT id FROM recon_exception WHERE type = $1 ORDER BY id LIMIT 1`, [type])).rows[0].id}`;

  it('lists with filters and a cursor, oldest first, with age', async () => {
    const all: { id: string; type: string; age_days: number; card_no: string | null }[] = [];
    let cursor: string | null = null;
    do {
      const r = await get(`/v1/exceptions?limit=4${cursor === null ? '' : `&cursor=${cursor}`}`, tok.auditor);
      expect(r.statusCode, r.body).toBe(200);
      all.push(...r.json().items);
      cursor = r.json().next_cursor;
    } while (cursor !== null);
    expect(all.length).toBe((await filed()).length);
    const ids = all.map((x) => BigInt(x.id.slice(4)));
    expect([...ids].sort((a, b) => (a < b ? -1 : 1))).toEqual(ids);
    expect(all.every((x) => x.age_days === 0)).toBe(true);
    // Card numbers are masked.
    expect(all.find((x) => x.type === 'BALANCE_CHAIN_BREAK')!.card_no).toBe(`${card(2).slice(0, 6)}*********${card(2).slice(-4)}`);
    expect(JSON.stringify(all)).not.toContain(card(2));

    const byBank = await get(`/v1/exceptions?bank_code=${bank_a}&type=AMOUNT_MISMATCH&business_date=${test_date}&state=OPEN`, tok.finance);
    expect(byBank.json().items.map((x: { txn_id: string }) => x.txn_id)).toEqual(planted.AMOUNT_MISMATCH);
    const none = await get(`/v1/exceptions?business_date=2026-01-01`, tok.finance);
    expect(none.json()).toEqual({ items: [], next_cursor: null });
    expect((await get('/v1/exceptions?type=NOPE', tok.finance)).statusCode).toBe(400);
    expect((await get('/v1/exceptions', tok.opA)).statusCode).toBe(403);

    // Age counts whole days from opening.
    clock.set(after_cutoff.getTime() + 3 * 86_400_000 + 1000);
    const aged = await get(`/v1/exceptions?type=AMOUNT_MISMATCH`, tok.finance);
    expect(aged.json().items[0].age_days).toBe(3);
  });

  it('shows the source lines side by side', async () => {
    const r = await get(`/v1/exceptions/${await idOf('AMOUNT_MISMATCH')}`, tok.auditor);
    expect(r.statusCode, r.body).toBe(200);
    const x = r.json();
    const engineAmount = detail[bank_a].find((l) => l.txnId === planted.AMOUNT_MISMATCH![0])!.amountFen;
    expect(x.sources.engine_lines.map((l: { txn_id: string; amount_fen: string }) => [l.txn_id, l.amount_fen])).toEqual([[planted.AMOUNT_MISMATCH![0], String(engineAmount)]]);
    expect(x.sources.bank_lines.map((l: { txn_id: string; amount_fen: string }) => [l.txn_id, l.amount_fen])).toEqual([[planted.AMOUNT_MISMATCH![0], String(engineAmount + 7n)]]);
    expect(x).toMatchObject({ difference_fen: '7', engine_amount_fen: String(engineAmount), state: 'OPEN' });
    expect(x.events.map((e: { event: string }) => e.event)).toEqual(['OPENED']);

    const dup = (await get(`/v1/exceptions/${await idOf('DUPLICATE_AT_BANK')}`, tok.finance)).json();
    expect(dup.sources.engine_lines).toHaveLength(1);
    expect(dup.sources.bank_lines).toHaveLength(2);
    const rejected = (await get(`/v1/exceptions/${await idOf('REJECTED_BY_BANK')}`, tok.finance)).json();
    expect(rejected.details.reason).toBe('account closed');
    expect(rejected.sources.bank_lines.map((l: { status: string }) => l.status)).toEqual(['REJECTED']);
    const unknown = (await get(`/v1/exceptions/${await idOf('UNKNOWN_AT_ENGINE')}`, tok.finance)).json();
    expect(unknown.sources.engine_lines).toEqual([]);
    expect(unknown.sources.bank_lines.map((l: { txn_id: string }) => l.txn_id)).toEqual(['BANKONLY-1']);
    const op = (await get(`/v1/exceptions/${(await db.pool.query(`SELECT id FROM recon_exception WHERE source_key = $1`, [`OPA:${term(2)}:${test_date}`])).rows[0].id.toString().replace(/^/, 'exc_')}`, tok.finance)).json();
    expect(op.sources.operator_totals).toMatchObject({ upload_id: latestUpload, operator: { tap_count: '2', amount_fen: '310' }, engine: { tap_count: '2', amount_fen: '300' } });
    const clone = (await get(`/v1/exceptions/${await idOf('CLONE_SUSPECT')}`, tok.finance)).json();
    expect(clone.details).toMatchObject({ case_id: `case_${clone.source_key.split(':')[1]}`, risk_kind: 'CLONE_SUSPECT', batch_id: 'RC-2' });
    expect((await get('/v1/exceptions/exc_999999', tok.finance)).statusCode).toBe(404);
  });

  it('assigns, comments and resolves, with an event and an audit record for each', async () => {
    const id = await idOf('MISSING_AT_BANK');
    const auditBefore = (await db.pool.query(`SELECT count(*)::int AS n FROM audit_log WHERE subject = $1`, [`recon_exception:${id}`])).rows[0].n;
    const a = await post(`/v1/exceptions/${id}/assign`, tok.finance, { assignee: 'li.wei' });
    expect(a.statusCode, a.body).toBe(200);
    expect(a.json()).toMatchObject({ state: 'ASSIGNED', assignee: 'li.wei' });
    const re = await post(`/v1/exceptions/${id}/assign`, tok.finance2, { assignee: 'zhang.min' });
    expect(re.json()).toMatchObject({ state: 'ASSIGNED', assignee: 'zhang.min' });
    const c = await post(`/v1/exceptions/${id}/comments`, tok.finance, { note: 'Bank says the line is in tomorrow\'s file.' });
    expect(c.statusCode).toBe(200);
    expect(c.json().state).toBe('ASSIGNED');
    const adj = await post(`/v1/exceptions/${id}/resolve`, tok.finance, { resolution: 'ADJUSTMENT', note: 'adjusted' });
    expect(adj.statusCode).toBe(409);
    expect(adj.json().code).toBe('ADJUSTMENT_NOT_APPROVED');
    const bad = await post(`/v1/exceptions/${id}/resolve`, tok.finance, { resolution: 'FORGOTTEN', note: 'x' });
    expect(bad.statusCode).toBe(400);
    const r = await post(`/v1/exceptions/${id}/resolve`, tok.finance, { resolution: 'RE_PRESENTED', note: 'In the next cycle.' });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ state: 'RESOLVED', resolution: 'RE_PRESENTED', resolution_note: 'In the next cycle.' });
    expect(r.json().events.map((e: { event: string; from_state: string | null; to_state: string | null }) => [e.event, e.from_state, e.to_state])).toEqual([
      ['OPENED', null, 'OPEN'], ['ASSIGNED', 'OPEN', 'ASSIGNED'], ['ASSIGNED', 'ASSIGNED', 'ASSIGNED'], ['COMMENTED', null, null], ['RESOLVED', 'ASSIGNED', 'RESOLVED'],
    ]);
    const audit = (await db.pool.query(`SELECT action FROM audit_log WHERE subject = $1 ORDER BY seq`, [`recon_exception:${id}`])).rows.map((x) => x.action);
    expect(audit.length - auditBefore).toBe(4);
    expect(audit.slice(-4)).toEqual(['RECON_EXCEPTION_ASSIGNED', 'RECON_EXCEPTION_ASSIGNED', 'RECON_EXCEPTION_COMMENTED', 'RECON_EXCEPTION_RESOLVED']);
  });

  it('refuses transitions out of RESOLVED with 409 and writes nothing', async () => {
    const id = await idOf('MISSING_AT_BANK');
    const events = async () => (await db.pool.query(`SELECT count(*)::int AS n FROM recon_exception_event`)).rows[0].n;
    const before = await events();
    for (const [url, body, code] of [
      [`/v1/exceptions/${id}/assign`, { assignee: 'x' }, 'EXCEPTION_TRANSITION_INVALID'],
      [`/v1/exceptions/${id}/resolve`, { resolution: 'WRITE_OFF', note: 'again' }, 'EXCEPTION_TRANSITION_INVALID'],
      [`/v1/exceptions/${id}/comments`, { note: 'late' }, 'EXCEPTION_RESOLVED'],
    ] as const) {
      const r = await post(url, tok.finance, body);
      expect(r.statusCode, url).toBe(409);
      expect(r.json().code).toBe(code);
    }
    expect(await events()).toBe(before);
    // An open exception may be resolved directly; an auditor may not act.
    const open = await idOf('UNKNOWN_AT_ENGINE');
    expect((await post(`/v1/exceptions/${open}/resolve`, tok.auditor, { resolution: 'EXPLAINED', note: 'n' })).statusCode).toBe(403);
    const w = await post(`/v1/exceptions/${open}/resolve`, tok.finance, { resolution: 'WRITE_OFF', note: 'Bank test line.' });
    expect(w.json()).toMatchObject({ state: 'RESOLVED', resolution: 'WRITE_OFF' });
  });

  it('resolves by ADJUSTMENT once an adjustment of the exception is approved', async () => {
    const id = await idOf('AMOUNT_MISMATCH');
    const n = BigInt(id.slice(4));
    await db.pool.query(`
      INSERT INTO adjustment (id, exception_id, lines, total_fen, memo, state, proposed_by, proposed_at, decided_by, decided_at, entry_id)
      VALUES ('adj_0000000000000001', $1, '[]', 7, 'bank amount', 'APPROVED', 'key_a', now(), 'key_b', now(), 1)`, [n]);
    const r = await post(`/v1/exceptions/${id}/resolve`, tok.finance, { resolution: 'ADJUSTMENT', note: 'Adjusted by adj_0000000000000001.' });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ state: 'RESOLVED', resolution: 'ADJUSTMENT' });
  });

  it('a resolved exception stays resolved when the run finds it again', async () => {
    await reconcile();
    const r = (await db.pool.query(`SELECT state FROM recon_exception WHERE type = 'MISSING_AT_BANK'`)).rows;
    expect(r).toEqual([{ state: 'RESOLVED' }]);
  });
});
