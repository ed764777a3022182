/**
 * The daily report on a really cleared cycle that carries approved adjustments: clearing still
 * nets to zero and agrees with the netting model; every figure of the report is recomputed here
 * from the raw ledger postings (in TypeScript, not with the report's queries) and must be equal;
 * CSV and HTML carry the same figures, hostile names are escaped, and only finance and auditors
 * may read it.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clearCycle } from '../adapters/clearing/run.ts';
import { buildApp } from '../adapters/http/app.ts';
import type { AppDeps } from '../adapters/http/context.ts';
import { approveAdjustment, proposeAdjustment, type AdjustmentLeg } from '../adapters/recon/adjustments.ts';
import { buildDailyReport, escapeHtml, formatYuan, reportToCsv, reportToHtml, report_csv_columns, type DailyReport } from '../adapters/recon/reports.ts';
import { clearing_entry_kinds } from '../engine/clearing/kinds.ts';
import { netCycle, type CycleEntry } from '../engine/clearing/netting.ts';
import { ageDays } from '../engine/recon/index.ts';
import { linesFromLegs } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testDeps } from './support/deps.ts';
import { bearer, errorBody, mintKey } from './support/http.ts';
import {
  after_cutoff, banks, before_cutoff, clearingTestSettings, entriesOf, idle_bank, medicalFunding, merchants, openCycle, postAll, randomTxns, refs,
  seedReference, test_date,
} from './support/clearing-fixtures.ts';

let db: TestDb;
let app: FastifyInstance;
let deps: AppDeps;
let report: DailyReport;
let model: CycleEntry[];
const keys: Record<string, { keyId: string; token: string }> = {};
const hostile_name = '=HYPERLINK("http://x") <script>alert("pwned")</script> & \'Co\'';
const adjustmentIds: string[] = [];
const openedExceptions: { type: string; state: string; openedAt: Date; resolvedAt: Date | null; engine: bigint }[] = [];

async function exceptionAt(type: string, openedAt: Date, resolvedAt: Date | null = null): Promise<bigint> {
  const r = await db.pool.query<{ id: bigint }>(
    `INSERT INTO recon_exception (type, source_key, cycle_id, business_date, engine_amount_fen, other_amount_fen, opened_at, state, resolution, resolved_at, resolved_by)
     VALUES ($1, $2, 'CYC20261128', $3, 500, 450, $4, $5, $6, $7, $8) RETURNING id`,
    [type, `rep:${openedExceptions.length}`, test_date, openedAt, resolvedAt ? 'RESOLVED' : 'OPEN', resolvedAt ? 'EXPLAINED' : null, resolvedAt, resolvedAt ? 'test' : null]);
  openedExceptions.push({ type, state: resolvedAt ? 'RESOLVED' : 'OPEN', openedAt, resolvedAt, engine: 500n });
  return r.rows[0].id;
}

const hoursBefore = (h: number) => new Date(after_cutoff.getTime() - h * 3_600_000);

beforeAll(async () => {
  db = await freshDatabase(6);
  await seedReference(db.pool);
  await db.pool.query(`UPDATE merchant SET name = $1 WHERE id = $2`, [hostile_name, merchants[1].id]);
  deps = testDeps(db.pool, { now: () => before_cutoff });
  const cycle = await openCycle(db.pool, before_cutoff);
  await postAll(db.pool, deps.ledger, medicalFunding(test_date, 'rep'));
  model = await postAll(db.pool, deps.ledger, entriesOf(randomTxns(7, 300), test_date, 'r'));
  for (const [name, role, scope] of [['a', 'finance', null], ['b', 'finance', null], ['auditor', 'auditor', null],
    ['merchant', 'merchant', merchants[1].id], ['bank', 'bank', banks[0]], ['admin', 'admin', null]] as const) {
    keys[name] = await mintKey(db.pool, role, scope);
  }

  // Exceptions of every age bucket, one resolved; two of them corrected by approved adjustments.
  const e1 = await exceptionAt('OPERATOR_TOTAL_MISMATCH', hoursBefore(20));
  await exceptionAt('OPERATOR_TOTAL_MISMATCH', hoursBefore(24 * 3));
  const e3 = await exceptionAt('MISSING_AT_BANK', hoursBefore(24 * 10));
  await exceptionAt('MISSING_AT_BANK', hoursBefore(24 * 40));
  await exceptionAt('AMOUNT_MISMATCH', hoursBefore(24 * 5), hoursBefore(24 * 4));
  const adjustments: [bigint, AdjustmentLeg[]][] = [
    // Money owed to a merchant that the operator's totals showed: the clearing prices it like a sale.
    [e1, [{ account: 'centre:suspense', side: 'DEBIT', amountFen: 5_000n }, { account: `merchant:${merchants[1].id}:payable`, side: 'CREDIT', amountFen: 5_000n }]],
    // A bank owes the centre for a line it never received: three legs.
    [e3, [{ account: `bank:${banks[2]}:clearing`, side: 'DEBIT', amountFen: 300n }, { account: 'centre:suspense', side: 'CREDIT', amountFen: 200n },
      { account: 'centre:writeoff', side: 'CREDIT', amountFen: 100n }]],
  ];
  const proposer = { keyId: keys.a.keyId, role: 'finance' };
  const approver = { keyId: keys.b.keyId, role: 'finance' };
  for (const [ex, legs] of adjustments) {
    const { adjustment } = await proposeAdjustment(deps, { exceptionId: ex, lines: legs, memo: `=SUM(A1) <b>fix</b> ${ex}` }, proposer);
    const { adjustment: approved } = await approveAdjustment(deps, adjustment.id, approver);
    adjustmentIds.push(adjustment.id);
    model.push({ entryId: approved.entryId as bigint, kind: 'ADJUSTMENT', postings: linesFromLegs(legs) });
  }

  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'recon-reports-'));
  const res = await clearCycle({ db: db.pool, ledger: deps.ledger, settings: clearingTestSettings(dataDir) }, cycle.id, 'test', after_cutoff);
  expect(res.state).toBe('PUBLISHED');
  report = await buildDailyReport(db.pool, test_date, { now: after_cutoff });

  app = await buildApp(testDeps(db.pool, { now: () => after_cutoff }), false);
  await app.ready();
}, 120_000);

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

interface RawLine { entry_id: bigint; kind: string; idem_key: string; debit: string; credit: string; amount_fen: bigint }

async function rawPostings(): Promise<RawLine[]> {
  return (await db.pool.query<RawLine>(`
    SELECT e.id AS entry_id, e.kind, e.idem_key, da.code AS debit, ca.code AS credit, p.amount_fen
    FROM ledger_entry e, ledger_posting p, ledger_account da, ledger_account ca
    WHERE p.entry_id = e.id AND da.id = p.debit_account_id AND ca.id = p.credit_account_id AND e.business_date = $1`, [test_date])).rows;
}

function add<K>(m: Map<K, bigint>, k: K, v: bigint) { m.set(k, (m.get(k) ?? 0n) + v); }

describe('clearing a cycle that holds approved adjustments', () => {
  it('still agrees with the netting model, sums to zero and leaves the ledger verified', async () => {
    const expected = netCycle(model, refs, [...banks, idle_bank]);
    const positions = (await db.pool.query<{ bank_code: string; net_fen: bigint; fee_fen: bigint }>(`SELECT bank_code, net_fen, fee_fen FROM clearing_position WHERE cycle_id = 'CYC20261128' ORDER BY bank_code`)).rows;
    for (const p of positions) expect({ bank: p.bank_code, net: p.net_fen, fee: p.fee_fen }).toEqual({ bank: p.bank_code, net: expected.positions.get(p.bank_code)!.netFen, fee: expected.positions.get(p.bank_code)!.feeFen });
    const adjLines = (await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM clearing_line WHERE cycle_id = 'CYC20261128' AND kind = 'ADJUSTMENT'`)).rows[0].n;
    expect(adjLines).toBe(2n); // the merchant credit (ACQUIRER) and the bank debit (ISSUER)
    const summary = (await db.pool.query<{ banks_net_fen: bigint; centre_net_fen: bigint }>(`SELECT banks_net_fen, centre_net_fen FROM clearing_summary WHERE cycle_id = 'CYC20261128'`)).rows[0];
    expect(summary.banks_net_fen + summary.centre_net_fen).toBe(0n);
    expect(summary.centre_net_fen).toBe(expected.centreNetFen);
    expect((await deps.ledger.verify(db.pool)).ok).toBe(true);
  });
});

describe('the daily report ties to the ledger', () => {
  it('entries by kind, totals and fees equal the postings', async () => {
    const raw = await rawPostings();
    const count = new Map<string, Set<bigint>>();
    const amount = new Map<string, bigint>();
    let feeFen = 0n;
    const feeEntries = new Set<bigint>();
    for (const l of raw) {
      if (l.kind === 'CLEARING_FEE') { feeFen += l.amount_fen; feeEntries.add(l.entry_id); }
      if ((clearing_entry_kinds as readonly string[]).includes(l.kind)) continue;
      if (!count.has(l.kind)) count.set(l.kind, new Set());
      count.get(l.kind)!.add(l.entry_id);
      add(amount, l.kind, l.amount_fen);
    }
    const want = [...count.keys()].sort().map((k) => ({ kind: k, count: BigInt(count.get(k)!.size), amountFen: amount.get(k)! }));
    expect(report.kinds).toEqual(want);
    expect(report.kinds.map((k) => k.kind)).toEqual(expect.arrayContaining(['ADJUSTMENT', 'PURSE_LOAD', 'TRANSIT_TAP', 'QR_PAYMENT']));
    expect(report.totals).toEqual({ count: want.reduce((a, k) => a + k.count, 0n), amountFen: want.reduce((a, k) => a + k.amountFen, 0n) });
    expect(report.fees).toEqual({ entries: BigInt(feeEntries.size), amountFen: feeFen });
    expect(feeFen).toBeGreaterThan(0n);
    expect(report.cycle).toMatchObject({ id: 'CYC20261128', state: 'PUBLISHED', cleared: true });
  });

  it('each bank\'s net, pay, receive and fees equal its clearing account\'s movements and its merchants\' postings', async () => {
    const raw = await rawPostings();
    const acquirer = new Map<string, string>(merchants.map((m) => [m.id, m.bank]));
    const bankDelta = new Map<string, bigint>(); // per bank, credits − debits over the date (settlement excluded)
    const perEntryBank = new Map<string, bigint>(); // `${entry}|${bank}` over transaction entries
    const perEntryMerchant = new Map<string, bigint>();
    const merchantFee = new Map<string, bigint>();
    const merchantSweep = new Map<string, bigint>();
    for (const l of raw) {
      const sides: [string, bigint][] = [[l.debit, -l.amount_fen], [l.credit, l.amount_fen]];
      for (const [code, amt] of sides) {
        const bank = /^bank:([0-9]{12}):clearing$/.exec(code)?.[1];
        const merchant = /^merchant:(.+):payable$/.exec(code)?.[1];
        if (bank && l.kind !== 'SETTLEMENT') add(bankDelta, bank, amt);
        if ((clearing_entry_kinds as readonly string[]).includes(l.kind)) {
          if (merchant && l.kind === 'CLEARING_FEE') add(merchantFee, merchant, -amt);
          if (merchant && l.kind === 'CLEARING_SWEEP') add(merchantSweep, merchant, -amt);
          continue;
        }
        if (bank) add(perEntryBank, `${l.entry_id}|${bank}`, amt);
        if (merchant) add(perEntryMerchant, `${l.entry_id}|${merchant}`, amt);
      }
    }
    const want = new Map<string, { lines: bigint; pay: bigint; receive: bigint; fee: bigint }>();
    const of = (b: string) => want.get(b) ?? (want.set(b, { lines: 0n, pay: 0n, receive: 0n, fee: 0n }), want.get(b)!);
    for (const [k, d] of perEntryBank) {
      if (d === 0n) continue;
      const w = of(k.split('|')[1]);
      w.lines += 1n;
      if (d > 0n) w.receive += d; else w.pay -= d;
    }
    for (const [k, d] of perEntryMerchant) {
      if (d === 0n) continue;
      const w = of(acquirer.get(k.split('|')[1])!);
      w.lines += 1n;
      if (d > 0n) w.receive += d; else w.pay -= d;
    }
    for (const [m, fee] of merchantFee) { const w = of(acquirer.get(m)!); w.fee += fee; w.receive -= fee; }

    expect(report.banks.map((b) => b.bankCode)).toEqual([...banks, idle_bank].sort());
    for (const b of report.banks) {
      const w = want.get(b.bankCode) ?? { lines: 0n, pay: 0n, receive: 0n, fee: 0n };
      expect({ bank: b.bankCode, net: b.netFen, lines: b.lineCount, pay: b.payFen, receive: b.receiveFen, fee: b.feeFen })
        .toEqual({ bank: b.bankCode, net: bankDelta.get(b.bankCode) ?? 0n, lines: w.lines, pay: w.pay, receive: w.receive, fee: w.fee });
    }
    expect(report.banks.find((b) => b.bankCode === idle_bank)).toMatchObject({ netFen: 0n, lineCount: 0n });
    // Zero-sum, read from the ledger: what the banks' accounts gained, the centre's accounts gave.
    const banksNet = report.banks.reduce((a, b) => a + b.netFen, 0n);
    expect(banksNet + (report.cycle.centreNetFen as bigint)).toBe(0n);

    expect(report.merchants.map((m) => m.merchantId)).toEqual([...new Set([...perEntryMerchant.keys()].map((k) => k.split('|')[1]))].sort());
    for (const m of report.merchants) {
      let count = 0n, receive = 0n, pay = 0n;
      for (const [k, d] of perEntryMerchant) {
        if (k.split('|')[1] !== m.merchantId || d === 0n) continue;
        count += 1n;
        if (d > 0n) receive += d; else pay -= d;
      }
      expect({ id: m.merchantId, count: m.count, receive: m.receiveFen, pay: m.payFen, fee: m.feeFen, net: m.netFen, bank: m.acquiringBank })
        .toEqual({ id: m.merchantId, count, receive, pay, fee: merchantFee.get(m.merchantId) ?? 0n, net: merchantSweep.get(m.merchantId) ?? 0n, bank: acquirer.get(m.merchantId) });
    }
    expect(report.merchants.find((m) => m.merchantId === merchants[1].id)?.name).toBe(hostile_name);
  });

  it('adjustments posted equal the ADJUSTMENT entries; exceptions are counted by type, state and age', async () => {
    const raw = await rawPostings();
    const byKey = new Map<string, { entryId: bigint; fen: bigint }>();
    for (const l of raw) {
      if (l.kind !== 'ADJUSTMENT') continue;
      const e = byKey.get(l.idem_key) ?? { entryId: l.entry_id, fen: 0n };
      e.fen += l.amount_fen;
      byKey.set(l.idem_key, e);
    }
    expect(report.adjustments.map((a) => a.id).sort()).toEqual([...adjustmentIds].sort());
    for (const a of report.adjustments) {
      expect({ entry: a.entryId, fen: a.totalFen }).toEqual({ entry: byKey.get(`adj:${a.id}`)!.entryId, fen: byKey.get(`adj:${a.id}`)!.fen });
      expect(a).toMatchObject({ proposedBy: keys.a.keyId, decidedBy: keys.b.keyId });
    }
    expect(report.adjustments.reduce((s, a) => s + a.totalFen, 0n)).toBe(report.kinds.find((k) => k.kind === 'ADJUSTMENT')!.amountFen);

    const bucket = (d: number) => (d <= 1 ? '0-1' : d <= 7 ? '2-7' : d <= 30 ? '8-30' : '>30');
    const rows = (await db.pool.query<{ type: string; state: string; opened_at: Date; resolved_at: Date | null; engine_amount_fen: bigint; other_amount_fen: bigint }>(
      `SELECT type, state, opened_at, resolved_at, engine_amount_fen, other_amount_fen FROM recon_exception WHERE business_date = $1`, [test_date])).rows;
    const want = new Map<string, { count: bigint; engine: bigint; other: bigint }>();
    for (const r of rows) {
      const k = `${r.type}|${r.state}|${bucket(ageDays(r.opened_at, r.resolved_at, after_cutoff))}`;
      const w = want.get(k) ?? { count: 0n, engine: 0n, other: 0n };
      w.count += 1n; w.engine += r.engine_amount_fen; w.other += r.other_amount_fen;
      want.set(k, w);
    }
    const got = new Map(report.exceptions.map((x) => [`${x.type}|${x.state}|${x.ageBucket}`, { count: x.count, engine: x.engineAmountFen, other: x.otherAmountFen }]));
    expect(got).toEqual(want);
    // The planted ages reach every bucket; the two adjusted exceptions are resolved now.
    expect(new Set(report.exceptions.map((x) => x.ageBucket))).toEqual(new Set(['0-1', '2-7', '8-30', '>30']));
    expect(got.get('OPERATOR_TOTAL_MISMATCH|RESOLVED|0-1')?.count).toBe(1n);
    expect(got.get('MISSING_AT_BANK|RESOLVED|8-30')?.count).toBe(1n);
  });
});

describe('formats', () => {
  it('CSV: one header, a section column, the same figures, formula-looking text neutralised', () => {
    const csv = reportToCsv(report);
    const records = parse(csv, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
    expect(Object.keys(records[0])).toEqual([...report_csv_columns]);
    const section = (s: string) => records.filter((r) => r.section === s);
    expect(section('report')[0]).toMatchObject({ key: test_date, name: 'CYC20261128', state: 'PUBLISHED' });
    expect(section('kind').map((r) => [r.key, r.count, r.amount_fen])).toEqual(report.kinds.map((k) => [k.kind, String(k.count), String(k.amountFen)]));
    expect(section('bank').map((r) => [r.key, r.net_fen, r.fee_fen])).toEqual(report.banks.map((b) => [b.bankCode, String(b.netFen), String(b.feeFen)]));
    expect(section('merchant').map((r) => [r.key, r.count, r.receive_fen, r.pay_fen, r.fee_fen, r.net_fen]))
      .toEqual(report.merchants.map((m) => [m.merchantId, String(m.count), String(m.receiveFen), String(m.payFen), String(m.feeFen), String(m.netFen)]));
    expect(section('exception').reduce((a, r) => a + Number(r.count), 0)).toBe(openedExceptions.length);
    expect(section('adjustment').map((r) => r.key).sort()).toEqual([...adjustmentIds].sort());
    expect(section('fees')[0].fee_fen).toBe(String(report.fees.amountFen));
    // A spreadsheet must not run a merchant's name or a memo as a formula.
    expect(section('merchant').find((r) => r.key === merchants[1].id)?.name).toBe(`'${hostile_name}`);
    for (const r of section('adjustment')) expect(r.name.startsWith("'=")).toBe(true);
    // Negative amounts are numbers, not text.
    expect(section('bank').some((r) => r.net_fen.startsWith('-'))).toBe(true);
  });

  it('HTML: printable, self-contained, every hostile value escaped', () => {
    const html = reportToHtml(report);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('@media print');
    expect(html).not.toMatch(/<script|<link|src=|href=/i);
    expect(html).not.toContain('<b>fix</b>');
    expect(html).toContain(escapeHtml(hostile_name));
    expect(html).toContain('&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &#39;Co&#39;');
    for (const b of report.banks) expect(html).toContain(`<td class="n">${formatYuan(b.netFen)}</td>`);
    expect(formatYuan(-123456789n)).toBe('-1,234,567.89');
    expect(formatYuan(5n)).toBe('0.05');
  });
});

describe('GET /v1/reports/daily/:date', () => {
  it('answers JSON, CSV and HTML by ?format= or Accept, with a filename', async () => {
    const url = `/v1/reports/daily/${test_date}`;
    const json = await app.inject({ method: 'GET', url, headers: bearer(keys.a.token) });
    expect(json.statusCode).toBe(200);
    expect(json.headers['content-type']).toMatch(/^application\/json/);
    expect(json.headers['content-disposition']).toBe(`attachment; filename="daily-report-${test_date}.json"`);
    const body = json.json() as { banks: { bank_code: string; net_fen: string }[]; kinds: { kind: string; amount_fen: string }[]; adjustments: unknown[] };
    expect(body.banks.map((b) => [b.bank_code, b.net_fen])).toEqual(report.banks.map((b) => [b.bankCode, String(b.netFen)]));
    expect(body.kinds.map((k) => [k.kind, k.amount_fen])).toEqual(report.kinds.map((k) => [k.kind, String(k.amountFen)]));
    expect(body.adjustments).toHaveLength(2);

    const csv = await app.inject({ method: 'GET', url: `${url}?format=csv`, headers: bearer(keys.auditor.token) });
    expect(csv.statusCode).toBe(200);
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.headers['content-disposition']).toBe(`attachment; filename="daily-report-${test_date}.csv"`);
    expect(csv.body.split('\r\n')[0]).toBe(report_csv_columns.join(','));

    const html = await app.inject({ method: 'GET', url, headers: { ...bearer(keys.a.token), accept: 'text/html,application/xhtml+xml;q=0.9' } });
    expect(html.statusCode).toBe(200);
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.headers['content-disposition']).toBe(`inline; filename="daily-report-${test_date}.html"`);
    expect(html.headers['content-security-policy']).toContain("default-src 'none'");
    expect(html.body).toContain('&lt;script&gt;');
    const byAccept = await app.inject({ method: 'GET', url, headers: { ...bearer(keys.a.token), accept: 'text/csv' } });
    expect(byAccept.headers['content-type']).toBe('text/csv; charset=utf-8');
  });

  it('refuses other roles, impossible dates and dates without a cycle', async () => {
    for (const who of ['merchant', 'bank', 'admin']) {
      const r = await app.inject({ method: 'GET', url: `/v1/reports/daily/${test_date}`, headers: bearer(keys[who].token) });
      expect(r.statusCode, who).toBe(403);
      expect(errorBody(r).code).toBe('FORBIDDEN_ROLE');
    }
    const bad = await app.inject({ method: 'GET', url: '/v1/reports/daily/2026-02-30', headers: bearer(keys.a.token) });
    expect(bad.statusCode).toBe(400);
    expect(errorBody(bad).code).toBe('BUSINESS_DATE_INVALID');
    const none = await app.inject({ method: 'GET', url: '/v1/reports/daily/2020-01-01', headers: bearer(keys.a.token) });
    expect(none.statusCode).toBe(404);
    expect(errorBody(none).code).toBe('REPORT_NOT_FOUND');
    const format = await app.inject({ method: 'GET', url: `/v1/reports/daily/${test_date}?format=pdf`, headers: bearer(keys.a.token) });
    expect(format.statusCode).toBe(400);
  });

  it('an open day reports its entries and says positions come with clearing', async () => {
    const open = await buildDailyReport(db.pool, '2026-11-29', { now: after_cutoff });
    expect(open.cycle).toMatchObject({ id: 'CYC20261129', state: 'OPEN', cleared: false, banksNetFen: null });
    expect(open.banks).toEqual([]);
    expect(open.merchants).toEqual([]);
    expect(reportToHtml(open)).toContain('The cycle is OPEN: positions appear once it is cleared.');
  });
});
