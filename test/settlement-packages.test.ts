/**
 * Settlement packages end to end through HTTP: an admin runs the clearing; each bank lists and
 * downloads only its own package (another bank's is 404), every file carries Repr-Digest and is
 * logged, both XML files validate against the ISO 20022 schemas, detail.csv's control sums equal
 * the manifest and pacs.009, a tampered file is refused with PACKAGE_CORRUPT, returns are
 * idempotent, and the cycle is SETTLED once every bank has sent ACSC.
 */
import { createHash } from 'node:crypto';
import { appendFile, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateXML } from 'xmllint-wasm';
import { buildPacs002, DETAIL_CSV_HEADER, formatYuan } from '../adapters/bankfiles/index.ts';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testConfig, testDeps } from './support/deps.ts';
import { bearer, mintKey } from './support/http.ts';
import { buildClearingApp } from './support/clearing-app.ts';
import { after_cutoff, banks, before_cutoff, entriesOf, idle_bank, medicalFunding, openCycle, postAll, randomTxns, seedReference, test_date } from './support/clearing-fixtures.ts';

const XSD_DIR = new URL('../adapters/bankfiles/xsd/', import.meta.url);
async function expectSchemaValid(schema: 'pacs.009.001.09' | 'camt.053.001.08', xml: string) {
  const result = await validateXML({
    xml: [{ fileName: `${schema}.xml`, contents: xml }],
    schema: [{ fileName: `${schema}.xsd`, contents: await readFile(new URL(`${schema}.xsd`, XSD_DIR), 'utf8') }],
  });
  expect(result.errors.map((e) => e.rawMessage)).toEqual([]);
  expect(result.valid).toBe(true);
}

let db: TestDb;
let app: FastifyInstance;
let dataDir: string;
const now = { t: after_cutoff };
const tokens: Record<string, string> = {};
let admin = '';
let finance = '';

beforeAll(async () => {
  db = await freshDatabase(6);
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'settlement-'));
  await seedReference(db.pool);
  const deps = testDeps(db.pool, { now: () => now.t, config: testConfig({ dataDir }) });
  app = await buildClearingApp(deps);
  for (const b of [...banks, idle_bank]) tokens[b] = (await mintKey(db.pool, 'bank', b)).token;
  admin = (await mintKey(db.pool, 'admin')).token;
  finance = (await mintKey(db.pool, 'finance')).token;
  const ledger = new Ledger();
  const cycle = await openCycle(db.pool, before_cutoff);
  await postAll(db.pool, ledger, medicalFunding(test_date, 'pk'));
  await postAll(db.pool, ledger, entriesOf(randomTxns(7, 300), test_date, 's'));
  const run = await app.inject({ method: 'POST', url: `/v1/clearing/cycles/${cycle.id}/runs`, headers: bearer(admin) });
  expect(run.statusCode, run.body).toBe(200);
  expect(run.json()).toMatchObject({ state: 'PUBLISHED', steps: ['CLOSED', 'CLEARED', 'PUBLISHED'] });
});
afterAll(async () => { await app?.close(); await db.drop(); });

const pkgId = (bank: string) => `CYC20261128-${bank}`;

describe('bank pull', () => {
  it('lists only my packages, with the files and their digests', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/settlement/packages?date=2026-11-28', headers: bearer(tokens[banks[0]]) });
    expect(r.statusCode).toBe(200);
    const items = r.json().items as { id: string; files: { name: string }[] }[];
    expect(items.map((i) => i.id)).toEqual([pkgId(banks[0])]);
    expect(items[0].files.map((f) => f.name).sort()).toEqual(['camt.053.xml', 'detail.csv', 'manifest.json', 'pacs.009.xml']);
    const idle = await app.inject({ method: 'GET', url: '/v1/settlement/packages', headers: bearer(tokens[idle_bank]) });
    expect(idle.json().items).toHaveLength(1);
  });

  it('serves valid, consistent files with Repr-Digest and logs each download', async () => {
    for (const bank of [...banks, idle_bank]) {
      const files: Record<string, string> = {};
      for (const name of ['manifest.json', 'detail.csv', 'pacs.009.xml', 'camt.053.xml']) {
        const r = await app.inject({ method: 'GET', url: `/v1/settlement/packages/${pkgId(bank)}/files/${name}`, headers: bearer(tokens[bank]) });
        expect(r.statusCode, r.body).toBe(200);
        const sha = createHash('sha256').update(r.rawPayload).digest('base64');
        expect(r.headers['repr-digest']).toBe(`sha-256=:${sha}:`);
        files[name] = r.body;
      }
      await expectSchemaValid('pacs.009.001.09', files['pacs.009.xml']);
      await expectSchemaValid('camt.053.001.08', files['camt.053.xml']);
      const manifest = JSON.parse(files['manifest.json']) as { netPositionFen: string; files: { name: string; sha256: string; recordCount: number; controlSums: Record<string, string> }[] };
      const rows = files['detail.csv'].split('\n').filter((l) => l !== '');
      expect(rows[0]).toBe(DETAIL_CSV_HEADER);
      let net = 0n;
      for (const row of rows.slice(1)) {
        const c = row.split(',');
        expect(c[4] === '' || /^\d{6}\*+\d{4}$/.test(c[4])).toBe(true);
        net += c[11] === 'RECEIVE' ? BigInt(c[10]) : -BigInt(c[10]);
      }
      expect(BigInt(manifest.netPositionFen)).toBe(net);
      const detail = manifest.files.find((f) => f.name === 'detail.csv')!;
      expect(detail.recordCount).toBe(rows.length - 1);
      expect(BigInt(detail.controlSums.netPositionFen)).toBe(net);
      expect(detail.sha256).toBe(createHash('sha256').update(files['detail.csv']).digest('hex'));
      const amount = /<IntrBkSttlmAmt Ccy="CNY">([0-9.]+)<\/IntrBkSttlmAmt>/.exec(files['pacs.009.xml'])![1];
      expect(amount).toBe(formatYuan(net < 0n ? -net : net));
      if (bank === idle_bank) expect(amount).toBe('0.00');
    }
    const logged = await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM package_download WHERE bank_code = $1`, [banks[0]]);
    expect(logged.rows[0].n).toBe(4n);
  });

  it("answers another bank's package as not found", async () => {
    const r = await app.inject({ method: 'GET', url: `/v1/settlement/packages/${pkgId(banks[1])}/files/detail.csv`, headers: bearer(tokens[banks[0]]) });
    expect(r.statusCode).toBe(404);
    expect(r.json().code).toBe('PACKAGE_NOT_FOUND');
    const ret = await app.inject({ method: 'POST', url: `/v1/settlement/packages/${pkgId(banks[1])}/returns/csv`, headers: { ...bearer(tokens[banks[0]]), 'content-type': 'text/csv' }, payload: 'txn_id,amount_fen,status,bank_ref,reason\n' });
    expect(ret.statusCode).toBe(404);
  });

  it('accepts return.csv idempotently and reconciles its lines', async () => {
    const bank = banks[1];
    const csv = (await app.inject({ method: 'GET', url: `/v1/settlement/packages/${pkgId(bank)}/files/detail.csv`, headers: bearer(tokens[bank]) })).body;
    const lines = csv.split('\n').slice(1).filter((l) => l !== '').map((l) => l.split(','));
    let body = 'txn_id,amount_fen,status,bank_ref,reason\n';
    for (const [i, c] of lines.entries()) body += i === 0 ? `${c[1]},${BigInt(c[8]) + 1n},POSTED,ref${i},\n` : `${c[1]},${c[8]},POSTED,ref${i},\n`;
    const send = () => app.inject({ method: 'POST', url: `/v1/settlement/packages/${pkgId(bank)}/returns/csv`, headers: { ...bearer(tokens[bank]), 'content-type': 'text/csv' }, payload: body });
    const first = await send();
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({ replayed: false, line_count: String(lines.length), matched_count: String(lines.length - 1), exception_count: '1' });
    const second = await send();
    expect(second.json()).toMatchObject({ replayed: true, return_id: first.json().return_id });
    const stored = await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM settlement_return_line WHERE bank_code = $1`, [bank]);
    expect(stored.rows[0].n).toBe(BigInt(lines.length));
  });

  it('settles on ACSC from every bank, posting each net once; RJCT leaves it partially settled', async () => {
    const pacs = (bank: string, status: string, n: number) => buildPacs002({
      messageId: `R${n}-${bank}`, createdAt: after_cutoff, originalMessageId: `P${pkgId(bank)}`, originalEndToEndId: pkgId(bank), status,
      ...(status === 'RJCT' ? { reasonCode: 'AM04' } : {}),
    });
    const post = (bank: string, xml: string) => app.inject({ method: 'POST', url: `/v1/settlement/packages/${pkgId(bank)}/returns/pacs002`, headers: { ...bearer(tokens[bank]), 'content-type': 'application/xml' }, payload: xml });
    const rj = await post(banks[0], pacs(banks[0], 'RJCT', 1));
    expect(rj.statusCode, rj.body).toBe(200);
    expect(rj.json().cycle_state).toBe('PARTIALLY_SETTLED');
    const all = [...banks, idle_bank];
    for (const [i, b] of all.entries()) {
      const r = await post(b, pacs(b, 'ACSC', 2));
      expect(r.statusCode, r.body).toBe(200);
      expect(r.json().cycle_state).toBe(i === all.length - 1 ? 'SETTLED' : 'PARTIALLY_SETTLED');
      expect((await post(b, pacs(b, 'ACSC', 2))).json().replayed).toBe(true);
    }
    const ledger = new Ledger();
    for (const b of all) {
      const acct = await ledger.account(db.pool, `bank:${b}:clearing`);
      expect(acct?.balanceFen ?? 0n).toBe(0n);
    }
    const settle = await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM ledger_entry WHERE kind = 'SETTLEMENT'`);
    const nonzero = await db.pool.query<{ n: bigint }>(`SELECT count(*)::bigint AS n FROM clearing_position WHERE net_fen <> 0`);
    expect(settle.rows[0].n).toBe(nonzero.rows[0].n);
    const cycle = await app.inject({ method: 'GET', url: '/v1/clearing/cycles/CYC20261128', headers: bearer(finance) });
    expect(cycle.json().state).toBe('SETTLED');
    expect(cycle.json().events.map((e: { to_state: string }) => e.to_state)).toEqual(['OPEN', 'CLOSED', 'CLEARED', 'PUBLISHED', 'PARTIALLY_SETTLED', 'SETTLED']);
  });

  it('refuses to serve a tampered file', async () => {
    const file = path.join(dataDir, 'packages', 'CYC20261128', banks[2], 'camt.053.xml');
    await appendFile(file, ' ');
    const r = await app.inject({ method: 'GET', url: `/v1/settlement/packages/${pkgId(banks[2])}/files/camt.053.xml`, headers: bearer(tokens[banks[2]]) });
    expect(r.statusCode).toBe(500);
    expect(r.json().code).toBe('PACKAGE_CORRUPT');
  });
});
