/**
 * The console's pages and forms through `app.inject`: hostile text from every source (a user's
 * display name, an exception's keys and details, comments, memos) is shown escaped and with card
 * numbers masked; the queue's filters and cursor; assign, comment, resolve; the adjustment form
 * (unbalanced and incomplete lines refused with nothing written, a double submit proposing once);
 * reject by another user, refusal to the proposer; report downloads in three formats.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../adapters/http/app.ts';
import { createApiKey } from '../adapters/auth/api-keys.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testDeps } from './support/deps.ts';
import { before_cutoff, openCycle, seedReference, test_date } from './support/clearing-fixtures.ts';
import { Browser, csrfOf, pageCode } from './support/console-session.ts';

let db: TestDb;
let app: FastifyInstance;
let a: Browser;
let b: Browser;
let keyA: string;

const hostile_name = '<img src=x onerror=alert(1)>"Mallory\'';
const hostile = '<script>alert("x")</script>';
const card_no = '6217000000000001234';
const masked_card = '621700*********1234';

async function plant(opts: { type?: string; source: string; date?: string; bank?: string | null; txn?: string | null; details?: Record<string, unknown>; cardNo?: string | null }): Promise<string> {
  const r = await db.pool.query<{ id: bigint }>(`
    INSERT INTO recon_exception (type, source_key, business_date, bank_code, txn_id, card_no, engine_amount_fen, other_amount_fen, details, opened_at)
    VALUES ($1, $2, $3, $4, $5, $6, 1000, 1250, $7, $8) RETURNING id`,
  [opts.type ?? 'AMOUNT_MISMATCH', opts.source, opts.date ?? test_date, opts.bank ?? null, opts.txn ?? null, opts.cardNo ?? null,
    JSON.stringify(opts.details ?? {}), before_cutoff]);
  return `exc_${r.rows[0].id}`;
}

async function formOn(browser: Browser, url: string): Promise<string> {
  const page = await browser.get(url);
  expect(page.statusCode, page.body.slice(0, 500)).toBe(200);
  return csrfOf(page.body);
}

beforeAll(async () => {
  db = await freshDatabase(4);
  await seedReference(db.pool);
  await openCycle(db.pool, before_cutoff);
  app = await buildApp(testDeps(db.pool, { now: () => new Date('2026-11-28T04:00:00Z') }), false);
  await app.ready();
  const ka = await createApiKey(db.pool, 'finance', null, hostile_name, 'test');
  keyA = ka.keyId;
  const kb = await createApiKey(db.pool, 'finance', null, 'Bo Li', 'test');
  a = new Browser(app);
  b = new Browser(app);
  expect((await a.login(ka.token)).statusCode).toBe(303);
  expect((await b.login(kb.token)).statusCode).toBe(303);
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('hostile text', () => {
  it('is escaped on every page and card numbers are masked wherever they appear', async () => {
    const id = await plant({
      source: `${hostile}:${card_no}`, bank: '102100000011', txn: `tap:${card_no}:7:${hostile}`, cardNo: card_no,
      details: { remark: `${hostile} card ${card_no}` },
    });
    const token = await formOn(a, `/console/exceptions/${id}`);
    expect((await a.post(`/console/exceptions/${id}/comment`, { _csrf: token, note: `${hostile} about ${card_no}` })).statusCode).toBe(303);

    for (const url of ['/console/dashboard', '/console/exceptions', `/console/exceptions/${id}`]) {
      const page = await a.get(url);
      expect(page.statusCode, url).toBe(200);
      expect(page.body, url).not.toContain('<script>alert');
      expect(page.body, url).not.toContain('<img src=x');
      expect(page.body, url).not.toContain(card_no);
      expect(page.body, url).toContain('&lt;img src=x onerror=alert(1)&gt;&quot;Mallory&#39;');
    }
    const detail = (await a.get(`/console/exceptions/${id}`)).body;
    expect(detail).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(detail).toContain(masked_card);
  });

  it('an adjustment\'s memo and accounts are escaped and masked too', async () => {
    await db.pool.query(`INSERT INTO card (card_no, issuing_bank, form, status, status_since) VALUES ($1, '102100000011', 'PHYSICAL', 'ACTIVE', now()) ON CONFLICT DO NOTHING`, [card_no]);
    const id = await plant({ source: 'memo-escape' });
    const token = await formOn(a, `/console/exceptions/${id}`);
    const res = await a.post(`/console/exceptions/${id}/adjustments`, {
      _csrf: token, idem: 'a'.repeat(24), memo: `${hostile} refund ${card_no}`,
      account_0: `card:${card_no}:purse`, side_0: 'CREDIT', amount_0: '2.50', account_1: 'centre:suspense', side_1: 'DEBIT', amount_1: '2.5',
    });
    expect(res.statusCode, res.body).toBe(303);
    const page = await b.get(res.headers.location as string);
    expect(page.body).not.toContain('<script>alert');
    expect(page.body).not.toContain(card_no);
    expect(page.body).toContain(`card:${masked_card}:purse`);
    expect(page.body).toContain('2.50');

    // A refusal naming the account (an unregistered card) masks it too.
    const other = await plant({ source: 'unknown-card' });
    const unknownCard = '6217999900001111222';
    const refused = await a.post(`/console/exceptions/${other}/adjustments`, {
      _csrf: await formOn(a, `/console/exceptions/${other}`), idem: 'd'.repeat(24), memo: 'x',
      account_0: `card:${unknownCard}:purse`, side_0: 'CREDIT', amount_0: '1', account_1: 'centre:suspense', side_1: 'DEBIT', amount_1: '1',
    });
    expect(refused.statusCode).toBe(422);
    expect(pageCode(refused.body)).toBe('ACCOUNT_UNKNOWN');
    expect(refused.body).not.toContain(unknownCard);
    expect(refused.body).toContain('621799*********1222');
  });
});

describe('the exceptions queue', () => {
  it('filters by state, type, business date and bank, and pages with a cursor', async () => {
    for (let i = 0; i < 55; i++) await plant({ type: 'MISSING_AT_BANK', source: `page:${i}`, bank: '103100000022', date: '2026-11-27' });
    await plant({ type: 'REJECTED_BY_BANK', source: 'other-type', bank: '103100000022', date: '2026-11-27' });
    const rows = (html: string) => (html.match(/<a href="\/console\/exceptions\/exc_[0-9]+">/g) ?? []).length;

    const first = await a.get('/console/exceptions?state=OPEN&type=MISSING_AT_BANK&business_date=2026-11-27&bank=103100000022');
    expect(first.statusCode).toBe(200);
    expect(rows(first.body)).toBe(50);
    const next = /href="(\/console\/exceptions\?[^"]*cursor=[0-9]+)"/.exec(first.body)![1].replaceAll('&amp;', '&');
    const second = await a.get(next);
    expect(rows(second.body)).toBe(5);
    expect(second.body).not.toContain('Next page');
    expect(rows((await a.get('/console/exceptions?type=REJECTED_BY_BANK')).body)).toBe(1);
    expect(rows((await a.get('/console/exceptions?bank=104100000033')).body)).toBe(0);
    // Empty choices of the filter form mean "any".
    expect(rows((await a.get('/console/exceptions?state=&type=&business_date=2026-11-27&bank=')).body)).toBe(50);
    const bad = await a.get('/console/exceptions?state=LOST');
    expect(bad.statusCode).toBe(400);
    expect(pageCode(bad.body)).toBe('VALIDATION_FAILED');
  });

  it('assign to me, comment, resolve: each recorded with its actor', async () => {
    const id = await plant({ source: 'workflow' });
    let token = await formOn(a, `/console/exceptions/${id}`);
    const assigned = await a.post(`/console/exceptions/${id}/assign`, { _csrf: token });
    expect(assigned.headers.location).toBe(`/console/exceptions/${id}?done=assigned`);
    token = await formOn(a, `/console/exceptions/${id}`);
    expect((await a.post(`/console/exceptions/${id}/resolve`, { _csrf: token, resolution: 'EXPLAINED', note: 'timing difference, seen next day' })).statusCode).toBe(303);
    const row = (await db.pool.query(`SELECT state, assignee, resolution, resolved_by FROM recon_exception WHERE id = $1`, [id.slice(4)])).rows[0];
    expect(row).toEqual({ state: 'RESOLVED', assignee: keyA, resolution: 'EXPLAINED', resolved_by: keyA });
    const page = (await a.get(`/console/exceptions/${id}`)).body;
    expect(page).not.toContain('data-testid="propose"');
    expect(page).not.toContain('/resolve"');
    // Resolving twice is the workflow's conflict, shown as a page with its code.
    const again = await a.post(`/console/exceptions/${id}/resolve`, { _csrf: token, resolution: 'WRITE_OFF', note: 'again' });
    expect(again.statusCode).toBe(409);
    expect(pageCode(again.body)).toBe('EXCEPTION_TRANSITION_INVALID');
    // ADJUSTMENT is not a resolution one picks by hand.
    const byHand = await a.post(`/console/exceptions/${id}/resolve`, { _csrf: token, resolution: 'ADJUSTMENT', note: 'x' });
    expect(byHand.statusCode).toBe(400);
  });
});

describe('adjustments', () => {
  const count = async () => (await db.pool.query(`SELECT count(*)::int AS n FROM adjustment`)).rows[0].n as number;

  it('an unbalanced or incomplete form is refused and writes nothing; a double submit proposes once', async () => {
    const id = await plant({ source: 'adjust-form' });
    const token = await formOn(a, `/console/exceptions/${id}`);
    const before = await count();
    const base = { _csrf: token, idem: 'b'.repeat(24), memo: 'correction' };
    const unbalanced = await a.post(`/console/exceptions/${id}/adjustments`, {
      ...base, account_0: 'centre:suspense', side_0: 'DEBIT', amount_0: '1.00', account_1: 'centre:writeoff', side_1: 'CREDIT', amount_1: '2.00',
    });
    expect(unbalanced.statusCode).toBe(422);
    expect(pageCode(unbalanced.body)).toBe('ADJUSTMENT_UNBALANCED');
    const incomplete = await a.post(`/console/exceptions/${id}/adjustments`, { ...base, account_0: 'centre:suspense', side_0: 'DEBIT', amount_0: '1.00', account_1: 'centre:writeoff', amount_1: '1.00' });
    expect(incomplete.statusCode).toBe(400);
    expect(pageCode(incomplete.body)).toBe('ADJUSTMENT_LINE_INCOMPLETE');
    const badAmount = await a.post(`/console/exceptions/${id}/adjustments`, { ...base, account_0: 'centre:suspense', side_0: 'DEBIT', amount_0: '1.005', account_1: 'centre:writeoff', side_1: 'CREDIT', amount_1: '1.005' });
    expect(pageCode(badAmount.body)).toBe('AMOUNT_INVALID');
    expect(await count()).toBe(before);

    const good = { ...base, account_0: 'centre:suspense', side_0: 'DEBIT', amount_0: '1', account_1: 'centre:writeoff', side_1: 'CREDIT', amount_1: '1.00' };
    const first = await a.post(`/console/exceptions/${id}/adjustments`, good);
    const second = await a.post(`/console/exceptions/${id}/adjustments`, good);
    expect(first.statusCode).toBe(303);
    expect(second.headers.location).toBe(first.headers.location);
    expect(await count()).toBe(before + 1);
    const adjId = /adj_[a-z0-9]+/.exec(first.headers.location as string)![0];
    expect((await db.pool.query(`SELECT total_fen FROM adjustment WHERE id = $1`, [adjId])).rows[0].total_fen).toBe(100n);
  });

  it('the proposer sees no decision buttons and is refused; another user rejects, nothing posts, the exception stays open', async () => {
    const id = await plant({ source: 'reject-me' });
    let token = await formOn(a, `/console/exceptions/${id}`);
    const proposed = await a.post(`/console/exceptions/${id}/adjustments`, {
      _csrf: token, idem: 'c'.repeat(24), memo: 'write the difference off',
      account_0: 'centre:writeoff', side_0: 'DEBIT', amount_0: '2.50', account_1: 'centre:suspense', side_1: 'CREDIT', amount_1: '2.50',
    });
    const url = proposed.headers.location as string;
    const adjId = /adj_[a-z0-9]+/.exec(url)![0];
    const own = await a.get(url);
    expect(own.body).not.toContain('data-testid="approve"');
    expect(own.body).not.toContain('data-testid="reject"');
    expect(own.body).toContain('data-testid="own-proposal"');
    token = csrfOf(own.body);
    const selfReject = await a.post(`/console/adjustments/${adjId}/reject`, { _csrf: token, note: 'changed my mind' });
    expect(selfReject.statusCode).toBe(403);
    expect(pageCode(selfReject.body)).toBe('ADJUSTMENT_SELF_REJECTION');

    const entriesBefore = (await db.pool.query(`SELECT count(*)::int AS n FROM ledger_entry`)).rows[0].n as number;
    const list = await b.get('/console/adjustments');
    expect(list.body).toContain(adjId);
    const page = await b.get(`/console/adjustments/${adjId}`);
    expect(page.body).toContain('data-testid="approve"');
    const noReason = await b.post(`/console/adjustments/${adjId}/reject`, { _csrf: csrfOf(page.body), note: '' });
    expect(noReason.statusCode).toBe(400);
    const rejected = await b.post(`/console/adjustments/${adjId}/reject`, { _csrf: csrfOf(page.body), note: 'the bank corrected it' });
    expect(rejected.headers.location).toBe(`/console/adjustments/${adjId}?done=rejected`);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ledger_entry`)).rows[0].n).toBe(entriesBefore);
    expect((await db.pool.query(`SELECT state FROM recon_exception WHERE id = $1`, [id.slice(4)])).rows[0].state).toBe('OPEN');
    expect((await b.get(`/console/adjustments/${adjId}`)).body).toContain('REJECTED');
    // The queue of approvals no longer lists it; the "any state" view does.
    expect((await b.get('/console/adjustments')).body).not.toContain(adjId);
    expect((await b.get('/console/adjustments?state=')).body).toContain(adjId);
  });
});

describe('report downloads', () => {
  it('the daily report of a date as HTML (printable, no script), CSV and JSON', async () => {
    const page = await a.get(`/console/reports?date=${test_date}`);
    expect(page.statusCode).toBe(200);
    for (const f of ['html', 'csv', 'json']) expect(page.body).toContain(`/console/reports/daily/${test_date}/${f}`);

    const html = await a.get(`/console/reports/daily/${test_date}/html`);
    expect(html.statusCode).toBe(200);
    expect(html.headers['content-type']).toMatch(/^text\/html/);
    expect(html.headers['content-security-policy']).toContain("default-src 'none'");
    expect(html.headers['content-security-policy']).not.toContain('script-src');
    expect(html.body).toContain(`Daily report ${test_date}`);
    expect(html.body).not.toMatch(/<script/i);

    const csv = await a.get(`/console/reports/daily/${test_date}/csv`);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    expect(csv.headers['content-disposition']).toBe(`attachment; filename="daily-report-${test_date}.csv"`);
    expect(csv.body.split('\n')[0]).toContain('section');

    const json = await a.get(`/console/reports/daily/${test_date}/json`);
    expect(json.headers['content-type']).toMatch(/^application\/json/);
    expect(json.json()).toMatchObject({ business_date: test_date });

    const none = await a.get('/console/reports/daily/2020-01-01/json');
    expect(none.statusCode).toBe(404);
    expect(pageCode(none.body)).toBe('REPORT_NOT_FOUND');
    // Without a session, no report.
    expect((await new Browser(app).get(`/console/reports/daily/${test_date}/csv`)).statusCode).toBe(303);
  });
});
