/**
 * The console end to end in headless Chromium (Debian's package, driven by playwright-core):
 * a real cycle is cleared, bank A returns one line with a different amount, the reconciliation
 * run files it as AMOUNT_MISMATCH; then finance user A logs in, finds it in the queue, opens it,
 * assigns it, proposes a balanced adjustment and cannot approve it (no button, and a forged POST
 * is refused, as is a POST without the CSRF token); A logs out, user B logs in and approves it;
 * the ledger moved by exactly the amount and the exception is resolved.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clearCycle } from '../adapters/clearing/run.ts';
import { reconcileCycle } from '../adapters/recon/run.ts';
import { buildApp } from '../adapters/http/app.ts';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testConfig, testDeps } from './support/deps.ts';
import { bearer, mintKey } from './support/http.ts';
import {
  after_cutoff, banks, before_cutoff, clearingTestSettings, entriesOf, medicalFunding, openCycle, postAll, randomTxns, seedReference, test_date,
} from './support/clearing-fixtures.ts';

const chromium_path = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const screenshot_dir = path.join(process.cwd(), 'test-output');
const cycle_id = 'CYC20261128';
const bank_a = banks[0];
/** What bank A's return claims above the engine's amount for the planted line. */
const planted_difference_fen = 123n;

let db: TestDb;
let app: FastifyInstance;
let browser: Browser;
let base: string;
const ledger = new Ledger();
let userA: { keyId: string; token: string };
let userB: { keyId: string; token: string };
let plantedTxn: string;
let exceptionId: string;

async function balance(code: string): Promise<bigint> {
  return (await ledger.account(db.pool, code))?.balanceFen ?? 0n;
}

beforeAll(async () => {
  if (!existsSync(chromium_path)) {
    throw new Error(`Chromium is not installed at ${chromium_path}: install Debian's package (apt-get install -y chromium), as .ci/run does, or set CHROMIUM_PATH.`);
  }
  db = await freshDatabase(6);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'console-e2e-'));
  await seedReference(db.pool);
  await openCycle(db.pool, before_cutoff);
  await postAll(db.pool, ledger, medicalFunding(test_date, 'ce'));
  await postAll(db.pool, ledger, entriesOf(randomTxns(7, 120), test_date, 'ce'));
  const cleared = await clearCycle({ db: db.pool, ledger, settings: clearingTestSettings(dataDir) }, cycle_id, 'test', after_cutoff);
  expect(cleared.state).toBe('PUBLISHED');

  // The engine's clock for the browser session: the morning after the cutoff.
  const now = new Date(after_cutoff.getTime() + 3_600_000);
  app = await buildApp(testDeps(db.pool, { now: () => now, config: testConfig({ dataDir }) }), false);
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  // Bank A returns every line as posted, one of them with 1.23 yuan more than the engine cleared.
  const lines = (await db.pool.query<{ txn_id: string; amount_fen: bigint }>(
    `SELECT txn_id, amount_fen FROM clearing_line WHERE cycle_id = $1 AND bank_code = $2 ORDER BY entry_id, side`, [cycle_id, bank_a])).rows;
  const once = lines.filter((l) => lines.filter((m) => m.txn_id === l.txn_id).length === 1);
  expect(once.length).toBeGreaterThan(3);
  plantedTxn = once[1].txn_id;
  const csv = `txn_id,amount_fen,status,bank_ref,reason\n${lines.map((l, i) =>
    `${l.txn_id},${l.txn_id === plantedTxn ? l.amount_fen + planted_difference_fen : l.amount_fen},POSTED,BR${i},`).join('\n')}\n`;
  const bankKey = await mintKey(db.pool, 'bank', bank_a);
  const ret = await app.inject({
    method: 'POST', url: `/v1/settlement/packages/${cycle_id}-${bank_a}/returns/csv`, headers: { ...bearer(bankKey.token), 'content-type': 'text/csv' }, payload: csv,
  });
  expect(ret.statusCode, ret.body).toBe(200);
  const run = await reconcileCycle({ db: db.pool, now: () => now }, cycle_id, { keyId: 'system:test', role: 'finance' });
  expect(run.byType.AMOUNT_MISMATCH).toBe(1n);
  exceptionId = `exc_${(await db.pool.query<{ id: bigint }>(`SELECT id FROM recon_exception WHERE type = 'AMOUNT_MISMATCH'`)).rows[0].id}`;

  userA = await createFinance('Alice Zhang (finance)');
  userB = await createFinance('Bo Li (finance)');
  browser = await chromium.launch({ executablePath: chromium_path, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await db?.drop();
});

async function createFinance(label: string): Promise<{ keyId: string; token: string }> {
  const { createApiKey } = await import('../adapters/auth/api-keys.ts');
  return createApiKey(db.pool, 'finance', null, label, 'test');
}

async function login(page: Page, token: string): Promise<void> {
  await page.goto(`${base}/console/login`);
  await page.fill('#key', token);
  await Promise.all([page.waitForURL(`${base}/console/dashboard`), page.click('button[type=submit]')]);
}

async function logout(page: Page): Promise<void> {
  await Promise.all([page.waitForURL(`${base}/console/login`), page.click('form.logout button')]);
}

describe('the finance console in a browser', () => {
  it('A proposes an adjustment of a planted exception, cannot approve it; B approves it and the ledger moves', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    // Every resource a page asks for exists (stylesheet, icon): a 404 is a broken page.
    page.on('response', (r) => { if (r.status() === 404) errors.push(`404 ${r.url()}`); });

    // ---- user A
    await login(page, userA.token);
    await expect(page.locator('[data-testid=who]').textContent()).resolves.toBe('Alice Zhang (finance)');
    await expect(page.locator('[data-testid=today-cycle]').textContent()).resolves.toContain('2026-11-29');
    await expect(page.locator('[data-testid=positions]').textContent()).resolves.toContain(bank_a);
    // Two charts of 30 days; only the one cleared day has a bar of any height.
    await expect(page.locator('svg rect.bar').count()).resolves.toBe(60);
    const heights = await page.locator('figure.chart').first().locator('rect.bar').evaluateAll((els) => els.map((e) => Number(e.getAttribute('height'))));
    expect(heights.filter((h) => h > 0)).toHaveLength(1);
    expect(heights[heights.length - 2]).toBeGreaterThan(0);

    await page.click('nav >> text=Exceptions');
    await page.selectOption('select[name=type]', 'AMOUNT_MISMATCH');
    await page.fill('input[name=bank]', bank_a);
    await Promise.all([page.waitForURL(/type=AMOUNT_MISMATCH/), page.click('form.filters button')]);
    const row = page.locator('[data-testid=exceptions] tbody tr', { hasText: plantedTxn });
    await expect(row.count()).resolves.toBe(1);
    await expect(row.textContent()).resolves.toContain('1.23');
    await Promise.all([page.waitForURL(`${base}/console/exceptions/${exceptionId}`), row.locator('a').first().click()]);
    // Source lines side by side: the engine's line and the bank's, with their amounts.
    const sources = await page.locator('[data-testid=sources]').textContent();
    expect(sources).toContain(plantedTxn);
    expect(sources).toContain('POSTED');

    await Promise.all([page.waitForURL(/done=assigned/), page.click('[data-testid=assign]')]);
    await expect(page.locator('h1 .state').textContent()).resolves.toBe('ASSIGNED');

    const bankBefore = await balance(`bank:${bank_a}:clearing`);
    const suspenseBefore = await balance('centre:suspense');
    const propose = page.locator('[data-testid=propose]');
    await propose.locator('input[name=account_0]').fill(`bank:${bank_a}:clearing`);
    await propose.locator('select[name=side_0]').selectOption('DEBIT');
    await propose.locator('input[name=amount_0]').fill('1.23');
    await propose.locator('input[name=account_1]').fill('centre:suspense');
    await propose.locator('select[name=side_1]').selectOption('CREDIT');
    await propose.locator('input[name=amount_1]').fill('1.23');
    await propose.locator('textarea[name=memo]').fill('Bank A returned 1.23 more than cleared; booked to suspense pending the bank\'s correction');
    await mkdir(screenshot_dir, { recursive: true });
    await page.screenshot({ path: path.join(screenshot_dir, 'console-e2e-exception.png'), fullPage: true });
    await Promise.all([page.waitForURL(/\/console\/adjustments\/adj_[a-z0-9]+\?done=proposed$/), propose.locator('button[type=submit]').click()]);
    const adjustmentId = /\/console\/adjustments\/(adj_[a-z0-9]+)/.exec(page.url())![1];
    await expect(page.locator('[data-testid=adjustment-state]').textContent()).resolves.toBe('PROPOSED');

    // A's own proposal: no approve button, and the server refuses a forged approval.
    await expect(page.locator('[data-testid=approve]').count()).resolves.toBe(0);
    await expect(page.locator('[data-testid=own-proposal]').count()).resolves.toBe(1);
    const csrf = await page.locator('form.logout input[name=_csrf]').inputValue();
    const forged = await page.request.post(`${base}/console/adjustments/${adjustmentId}/approve`, { form: { _csrf: csrf }, headers: { origin: base }, maxRedirects: 0 });
    expect(forged.status()).toBe(403);
    expect(await forged.text()).toContain('data-code="ADJUSTMENT_SELF_APPROVAL"');
    const noToken = await page.request.post(`${base}/console/exceptions/${exceptionId}/comment`, { form: { note: 'no token' }, headers: { origin: base }, maxRedirects: 0 });
    expect(noToken.status()).toBe(403);
    expect(await noToken.text()).toContain('data-code="CSRF_REJECTED"');
    expect((await db.pool.query(`SELECT state FROM adjustment WHERE id = $1`, [adjustmentId])).rows[0].state).toBe('PROPOSED');
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM recon_exception_event WHERE note = 'no token'`)).rows[0].n).toBe(0);
    await logout(page);

    // ---- user B
    await login(page, userB.token);
    await page.click('nav >> text=Adjustments');
    const pending = page.locator('[data-testid=adjustments] tbody tr', { hasText: adjustmentId });
    await expect(pending.textContent()).resolves.toContain('Alice Zhang (finance)');
    await Promise.all([page.waitForURL(new RegExp(`/console/adjustments/${adjustmentId}$`)), pending.locator('a').first().click()]);
    await page.fill('textarea[name=note]', 'Checked against the bank statement');
    await Promise.all([page.waitForURL(/done=approved/), page.click('[data-testid=approve]')]);
    await expect(page.locator('[data-testid=adjustment-state]').textContent()).resolves.toBe('APPROVED');
    const shownEntry = await page.locator('[data-testid=entry-id]').textContent();

    await page.screenshot({ path: path.join(screenshot_dir, 'console-e2e.png'), fullPage: true });
    await page.click('nav >> text=Dashboard');
    await page.screenshot({ path: path.join(screenshot_dir, 'console-e2e-dashboard.png'), fullPage: true });

    // ---- the ledger moved
    const adj = (await db.pool.query<{ state: string; entry_id: bigint; proposed_by: string; decided_by: string }>(
      `SELECT state, entry_id, proposed_by, decided_by FROM adjustment WHERE id = $1`, [adjustmentId])).rows[0];
    expect(adj).toMatchObject({ state: 'APPROVED', proposed_by: userA.keyId, decided_by: userB.keyId });
    expect(shownEntry).toContain(String(adj.entry_id));
    const entry = (await db.pool.query<{ idem_key: string; kind: string }>(`SELECT idem_key, kind FROM ledger_entry WHERE id = $1`, [adj.entry_id])).rows[0];
    expect(entry).toEqual({ idem_key: `adj:${adjustmentId}`, kind: 'ADJUSTMENT' });
    const postings = (await db.pool.query<{ debit: string; credit: string; amount_fen: bigint }>(`
      SELECT d.code AS debit, c.code AS credit, p.amount_fen FROM ledger_posting p
      JOIN ledger_account d ON d.id = p.debit_account_id JOIN ledger_account c ON c.id = p.credit_account_id
      WHERE p.entry_id = $1`, [adj.entry_id])).rows;
    expect(postings).toEqual([{ debit: `bank:${bank_a}:clearing`, credit: 'centre:suspense', amount_fen: planted_difference_fen }]);
    // Both accounts are debit-normal: the debited bank's balance rises, the credited suspense falls, by exactly the amount.
    expect((await balance(`bank:${bank_a}:clearing`)) - bankBefore).toBe(planted_difference_fen);
    expect((await balance('centre:suspense')) - suspenseBefore).toBe(-planted_difference_fen);
    const x = (await db.pool.query<{ state: string; resolution: string; resolved_by: string }>(
      `SELECT state, resolution, resolved_by FROM recon_exception WHERE id = $1`, [exceptionId.slice(4)])).rows[0];
    expect(x).toEqual({ state: 'RESOLVED', resolution: 'ADJUSTMENT', resolved_by: userB.keyId });
    const audit = (await db.pool.query<{ action: string; actor: string }>(
      `SELECT action, actor FROM audit_log WHERE subject = $1 ORDER BY seq`, [`adjustment:${adjustmentId}`])).rows;
    expect(audit).toEqual([{ action: 'ADJUSTMENT_PROPOSE', actor: userA.keyId }, { action: 'ADJUSTMENT_APPROVE', actor: userB.keyId }]);
    expect(errors).toEqual([]);
    await context.close();
  }, 120_000);
});
