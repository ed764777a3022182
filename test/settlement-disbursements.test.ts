/**
 * Programme funds: finance records a deposit; the programme disburses a batch with per-record
 * refusals (unknown or cancelled card, amount out of range, insufficient funds), idempotent by
 * batch id; purse payouts post at once; bank-account payouts become DISBURSEMENT lines of the
 * issuing bank's package after clearing.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testConfig, testDeps } from './support/deps.ts';
import { bearer, mintKey } from './support/http.ts';
import { buildClearingApp } from './support/clearing-app.ts';
import { after_cutoff, banks, before_cutoff, cards, openCycle, seedReference } from './support/clearing-fixtures.ts';

let db: TestDb;
let app: FastifyInstance;
let dataDir: string;
const clock = { t: before_cutoff };
let programme = '';
let finance = '';
let admin = '';
const ledger = new Ledger();

beforeAll(async () => {
  db = await freshDatabase(6);
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'disb-'));
  await seedReference(db.pool);
  await db.pool.query(`UPDATE card SET status = 'CANCELLED' WHERE card_no = $1`, [cards[3].cardNo]);
  app = await buildClearingApp(testDeps(db.pool, { now: () => clock.t, config: testConfig({ dataDir }) }));
  programme = (await mintKey(db.pool, 'programme', 'ELDER')).token;
  finance = (await mintKey(db.pool, 'finance')).token;
  admin = (await mintKey(db.pool, 'admin')).token;
  await openCycle(db.pool, before_cutoff);
});
afterAll(async () => { await app?.close(); await db.drop(); });

describe('disbursements', () => {
  it('funds, disburses with per-record results, replays, and lists bank payouts in the package', async () => {
    const dep = await app.inject({ method: 'POST', url: '/v1/programmes/ELDER/deposits', headers: bearer(finance), payload: { deposit_id: 'd1', bank_code: banks[0], amount_fen: '10000' } });
    expect(dep.statusCode, dep.body).toBe(201);
    const records = [
      { card_no: cards[0].cardNo, amount_fen: '3000', purpose: 'elder allowance', destination: 'PURSE' },
      { card_no: cards[1].cardNo, amount_fen: '4000', purpose: 'elder allowance', destination: 'BANK_ACCOUNT' },
      { card_no: '6217999999999999', amount_fen: '100', purpose: 'x', destination: 'PURSE' },
      { card_no: cards[3].cardNo, amount_fen: '100', purpose: 'x', destination: 'PURSE' },
      { card_no: cards[4].cardNo, amount_fen: '0', purpose: 'x', destination: 'PURSE' },
      { card_no: cards[5].cardNo, amount_fen: '5000', purpose: 'x', destination: 'PURSE' },
    ];
    const send = (payload: Record<string, unknown>, token = programme, url = '/v1/programmes/ELDER/disbursement-batches') =>
      app.inject({ method: 'POST', url, headers: bearer(token), payload: payload as Record<string, string> });
    const r = await send({ batch_id: 'b1', records });
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json().results.map((x: { reason: string | null }) => x.reason)).toEqual([null, null, 'UNKNOWN_CARD', 'CARD_CANCELLED', 'AMOUNT_OUT_OF_RANGE', 'INSUFFICIENT_PROGRAMME_FUNDS']);
    expect(r.json()).toMatchObject({ accepted_count: 2, accepted_fen: '7000', replayed: false });
    const again = await send({ batch_id: 'b1', records });
    expect(again.json()).toMatchObject({ replayed: true, accepted_fen: '7000' });
    expect(again.json().results).toEqual(r.json().results);
    expect((await send({ batch_id: 'b1', records: records.slice(0, 1) })).statusCode).toBe(409);
    expect((await send({ batch_id: 'b2', records }, programme, '/v1/programmes/OTHER/disbursement-batches')).statusCode).toBe(403);
    expect((await ledger.account(db.pool, `card:${cards[0].cardNo}:purse`))?.balanceFen).toBe(3000n);
    expect((await ledger.account(db.pool, 'programme:ELDER:fund'))?.balanceFen).toBe(3000n);

    clock.t = after_cutoff;
    const run = await app.inject({ method: 'POST', url: '/v1/clearing/cycles/CYC20261128/runs', headers: bearer(admin) });
    expect(run.statusCode, run.body).toBe(200);
    const bankOfCard1 = cards[1].bank;
    const csv = await readFile(path.join(dataDir, 'packages', 'CYC20261128', bankOfCard1, 'detail.csv'), 'utf8');
    const disb = csv.split('\n').filter((l) => l.includes(',DISBURSEMENT,'));
    expect(disb).toHaveLength(1);
    expect(disb[0]).toMatch(/,DISBURSEMENT,ISSUER,\d{6}\*+\d{4},,,[^,]+,4000,0,4000,RECEIVE$/);
    const deposit = csv.split('\n').filter((l) => l.includes(',ADJUSTMENT,'));
    if (bankOfCard1 === banks[0]) expect(deposit).toHaveLength(1);
  });
});
