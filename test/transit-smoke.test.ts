import { afterAll, beforeAll, expect, it } from 'vitest';
import { freshDatabase, type TestDb } from './support/db.ts';
import { batchOf, fundPurses, movableClock, seedTransit, shanghaiInstant, tap, transitApp, upload } from './support/transit-fixtures.ts';

let db: TestDb;
beforeAll(async () => { db = await freshDatabase(4); });
afterAll(async () => { await db.drop(); });

it('smoke', async () => {
  await seedTransit(db.pool, { operators: [{ id: 'OPA' }], terminals: [{ id: '420300000101', operatorId: 'OPA' }], cards: [{ cardNo: '6217001234567890123' }] });
  await fundPurses(db.pool, [{ cardNo: '6217001234567890123', amountFen: 1000n }]);
  const clock = movableClock(shanghaiInstant('20261128080000'));
  const t = await transitApp(db.pool, clock);
  const tok = await t.token('operator', 'OPA');
  const r = tap({ cardNo: '6217001234567890123', cardCounter: 1, txnType: 6, amountFen: 200, terminalId: '420300000101', terminalSeq: 1, localTime: '20261128073015' });
  expect(r.tac).toBe('5B0D231C');
  const res = await upload(t.app, tok, batchOf('OPA', 'B1', [r, { ...r, cardCounter: 2, terminalSeq: 5 }]));
  console.log(res.statusCode, res.body);
  const res2 = await upload(t.app, tok, batchOf('OPA', 'B1', [r, { ...r, cardCounter: 2, terminalSeq: 5 }]), 'json');
  console.log(res2.statusCode, res2.headers, res2.body);
  console.log((await db.pool.query('select * from tap_record')).rows);
  console.log((await db.pool.query('select * from tap_seq_gap_event')).rows);
  await t.app.close();
});
