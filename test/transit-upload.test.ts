/**
 * Transit tap batch upload through the HTTP route (`app.inject`) over a fresh database: the spec's
 * TAC test vectors, every per-record reason code and their order, whole-batch refusals that write
 * nothing, idempotent replays (sequential and concurrent), concurrent batches sharing a tap or a
 * terminal sequence number, roles, clearing cycle membership, the hotlist boundary, the purse
 * shortfall rule, the risk-signal routes, metrics, and a ledger that verifies after all of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeTapReceiptProtobuf, encodeTapBatchProtobuf } from '../adapters/protobuf/tap-batch-codec.ts';
import type { TapRecordInput } from '../engine/ingest/index.ts';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import {
  addCardStatus, balanceFen, batchJson, batchOf, fundPurses, movableClock, rawUpload, seedTransit, shanghaiInstant,
  shanghaiLocalTime, tap, transitApp, upload, writtenCounts, type ReceiptJson, type TransitTestApp,
} from './support/transit-fixtures.ts';

let db: TestDb;
let t: TransitTestApp;
const clock = movableClock(shanghaiInstant('20261129100000'));
const tok = { opA: '', opB: '', opSuspended: '', opUnknown: '', retail: '', finance: '', auditor: '', admin: '', bank: '' };

/** Card numbers for the tests: 19 digits, distinct per scenario. */
const cardN = (i: number) => `62170500000${String(i).padStart(8, '0')}`;
const v_card_1 = '6217001234567890123';
const v_card_2 = '6230580000000000018';
const card_cancelled = cardN(900);
const card_lost = cardN(901);
const card_lost_long_ago = cardN(902);
const card_unknown = '6217059999999999999';
const tA = (i: number) => `4203002${String(i).padStart(5, '0')}`;
const terminal_b = '420300000901';

beforeAll(async () => {
  db = await freshDatabase(12);
  const cards: { cardNo: string; events?: { status: 'ACTIVE' | 'CANCELLED' | 'LOST_REPORTED'; at: Date }[] }[] = [
    { cardNo: v_card_1 }, { cardNo: v_card_2 },
    { cardNo: card_cancelled, events: [{ status: 'ACTIVE', at: new Date('2026-01-01T00:00:00Z') }, { status: 'CANCELLED', at: new Date(shanghaiInstant('20261101000000')) }] },
    { cardNo: card_lost, events: [{ status: 'ACTIVE', at: new Date('2026-01-01T00:00:00Z') }, { status: 'LOST_REPORTED', at: new Date(shanghaiInstant('20261129080000')) }] },
    { cardNo: card_lost_long_ago, events: [{ status: 'ACTIVE', at: new Date('2026-01-01T00:00:00Z') }, { status: 'LOST_REPORTED', at: new Date(shanghaiInstant('20261001000000')) }] },
  ];
  for (let i = 1; i < 200; i++) cards.push({ cardNo: cardN(i) });
  const terminals = [
    { id: '420300000101', operatorId: 'OPA' }, { id: '420300000102', operatorId: 'OPA' }, { id: '000000000001', operatorId: 'OPA' },
    { id: terminal_b, operatorId: 'OPB' },
  ];
  for (let i = 1; i < 60; i++) terminals.push({ id: tA(i), operatorId: 'OPA' });
  await seedTransit(db.pool, {
    operators: [{ id: 'OPA' }, { id: 'OPB' }, { id: 'OPS', status: 'SUSPENDED' }, { id: 'SHOP1', kind: 'RETAIL', isOperator: false }],
    terminals, cards,
  });
  // Purses hold plenty, except the cards the shortfall tests use (150 and up).
  await fundPurses(db.pool, [v_card_1, v_card_2, card_lost, card_cancelled, ...Array.from({ length: 99 }, (_, i) => cardN(i + 1))]
    .map((cardNo) => ({ cardNo, amountFen: 1_000_000n })));
  t = await transitApp(db.pool, clock);
  tok.opA = await t.token('operator', 'OPA');
  tok.opB = await t.token('operator', 'OPB');
  tok.opSuspended = await t.token('operator', 'OPS');
  tok.opUnknown = await t.token('operator', 'NOPE');
  tok.retail = await t.token('operator', 'SHOP1');
  tok.finance = await t.token('finance');
  tok.auditor = await t.token('auditor');
  tok.admin = await t.token('admin');
  tok.bank = await t.token('bank', '102100099996');
});

afterAll(async () => {
  await t?.app.close();
  await db?.drop();
});

function receipt(r: { statusCode: number; body: string; json: () => unknown }): ReceiptJson {
  expect(r.statusCode, r.body).toBe(200);
  return r.json() as ReceiptJson;
}

async function get(url: string, token: string, accept?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (accept) headers.accept = accept;
  return t.app.inject({ method: 'GET', url, headers });
}

async function entryLines(idemKey: string): Promise<{ debit: string; credit: string; amount_fen: bigint }[]> {
  const r = await db.pool.query<{ debit: string; credit: string; amount_fen: bigint }>(`
    SELECT da.code AS debit, ca.code AS credit, p.amount_fen FROM ledger_entry e JOIN ledger_posting p ON p.entry_id = e.id
    JOIN ledger_account da ON da.id = p.debit_account_id JOIN ledger_account ca ON ca.id = p.credit_account_id
    WHERE e.idem_key = $1 ORDER BY p.line_no`, [idemKey]);
  return r.rows;
}

function vectorRecord(over: Partial<TapRecordInput> & Pick<TapRecordInput, 'cardNo' | 'amountFen' | 'txnType' | 'terminalId' | 'terminalSeq' | 'localTime' | 'tac'>): TapRecordInput {
  return { cardCounter: 1, balanceBeforeFen: 10_000, keyVersion: 1, lineId: '', stationId: '', entryStationId: '', entryLocalTime: '', ...over };
}

// The spec's public TAC test vectors (CARD-SECURITY.md), as operators would send them.
const vector1 = vectorRecord({ cardNo: v_card_1, cardCounter: 1, amountFen: 200, txnType: 6, terminalId: '420300000101', terminalSeq: 1, localTime: '20261128073015', tac: '5B0D231C' });
const vector2 = vectorRecord({ cardNo: v_card_1, cardCounter: 2, amountFen: 150, txnType: 9, terminalId: '420300000102', terminalSeq: 4294967295, localTime: '20261128235959', tac: 'A2EE02B4' });
const vector3 = vectorRecord({ cardNo: v_card_2, cardCounter: 1, amountFen: 1, txnType: 6, terminalId: '000000000001', terminalSeq: 77, localTime: '20270101000000', tac: '5FF23AFA' });

describe('TAC test vectors', () => {
  it('every public vector is accepted and posted purse → operator payable', async () => {
    clock.set(shanghaiInstant('20261129000500'));
    const r1 = receipt(await upload(t.app, tok.opA, batchOf('OPA', 'VEC-1', [vector1, vector2])));
    expect(r1).toMatchObject({ acceptedCount: 2, acceptedAmountFen: '350', rejectedCount: 0, rejections: [] });
    clock.set(shanghaiInstant('20270101000500'));
    const r3 = receipt(await upload(t.app, tok.opA, batchOf('OPA', 'VEC-3', [vector3]), 'json'));
    expect(r3).toMatchObject({ acceptedCount: 1, acceptedAmountFen: '1', rejectedCount: 0 });
    expect(await entryLines(`tap:${v_card_1}:1:6`)).toEqual([{ debit: `card:${v_card_1}:purse`, credit: 'merchant:OPA:payable', amount_fen: 200n }]);
    expect(await entryLines(`tap:${v_card_1}:2:9`)).toEqual([{ debit: `card:${v_card_1}:purse`, credit: 'merchant:OPA:payable', amount_fen: 150n }]);
    expect(await entryLines(`tap:${v_card_2}:1:6`)).toEqual([{ debit: `card:${v_card_2}:purse`, credit: 'merchant:OPA:payable', amount_fen: 1n }]);
    expect(await balanceFen(db.pool, `card:${v_card_1}:purse`)).toBe(1_000_000n - 350n);
    const kinds = await db.pool.query(`SELECT DISTINCT kind FROM ledger_entry WHERE idem_key LIKE 'tap:%'`);
    expect(kinds.rows).toEqual([{ kind: 'TRANSIT_TAP' }]);
  });

  it('a vector with any TAC-covered field altered, or its TAC altered, is BAD_TAC; an unknown key version is UNKNOWN_KEY_VERSION', async () => {
    clock.set(shanghaiInstant('20261129000500'));
    const altered: TapRecordInput[] = [];
    let counter = 100;
    for (const v of [vector1, vector2]) {
      const base = { ...v, cardCounter: counter };
      altered.push({ ...base, cardCounter: counter++, amountFen: v.amountFen + 1 });
      altered.push({ ...base, cardCounter: counter++, txnType: v.txnType === 6 ? 9 : 6 });
      altered.push({ ...base, cardCounter: counter++, terminalId: v.terminalId === '420300000101' ? '420300000102' : '420300000101' });
      altered.push({ ...base, cardCounter: counter++, terminalSeq: (v.terminalSeq + 1) % 4294967296 });
      altered.push({ ...base, cardCounter: counter++, localTime: `${v.localTime.slice(0, 13)}${v.localTime[13] === '9' ? '8' : '9'}` });
      altered.push({ ...base, cardCounter: counter++, tac: `${v.tac.slice(0, 7)}${v.tac[7] === '0' ? '1' : '0'}` });
      altered.push({ ...base, cardCounter: counter++, cardNo: v_card_2 });
    }
    altered.push({ ...vector1, cardCounter: counter++, keyVersion: 2 });
    const before = await writtenCounts(db.pool);
    const r = receipt(await upload(t.app, tok.opA, batchOf('OPA', 'VEC-ALTERED', altered)));
    const expected = altered.map((_, i) => ({ index: i, reason: i === altered.length - 1 ? 'UNKNOWN_KEY_VERSION' : 'BAD_TAC' }));
    expect(r.rejections).toEqual(expected);
    expect(r.acceptedCount).toBe(0);
    const after = await writtenCounts(db.pool);
    expect(after.entries).toBe(before.entries);
    expect(after.records).toBe(before.records + BigInt(altered.length));
  });
});

describe('per-record outcomes through the route', () => {
  it('gives every reason code, the first failing check when several fail, keeps every record, posts only accepted ones', async () => {
    clock.set(shanghaiInstant('20261129100000'));
    const at = (local: string) => local;
    const first = tap({ cardNo: cardN(10), cardCounter: 1, terminalId: tA(1), terminalSeq: 1, localTime: at('20261129090000') });
    receipt(await upload(t.app, tok.opA, batchOf('OPA', 'REASONS-0', [first])));

    const clone = tap({ cardNo: cardN(10), cardCounter: 1, terminalId: tA(1), terminalSeq: 2, localTime: at('20261129090500') });
    const futureLocal = shanghaiLocalTime(clock.ms() + 11 * 60_000);
    const staleLocal = shanghaiLocalTime(clock.ms() - 31 * 86_400_000);
    const records: TapRecordInput[] = [
      { ...tap({ cardNo: cardN(11), cardCounter: 1, terminalId: tA(1), terminalSeq: 50, localTime: '20261129090000' }), cardNo: '12345' },     // 0 MALFORMED
      tap({ cardNo: cardN(11), cardCounter: 2, terminalId: tA(1), terminalSeq: 51, localTime: '20261129090000', amountFen: 20_001, balanceBeforeFen: 30_000 }), // 1
      tap({ cardNo: cardN(11), cardCounter: 3, terminalId: tA(1), terminalSeq: 52, localTime: '20261129090000', amountFen: 500, balanceBeforeFen: 499 }), // 2
      tap({ cardNo: cardN(11), cardCounter: 4, terminalId: terminal_b, terminalSeq: 53, localTime: '20261129090000' }),  // 3 other operator's terminal
      tap({ cardNo: cardN(11), cardCounter: 5, terminalId: '420399999999', terminalSeq: 54, localTime: '20261129090000' }), // 4 unregistered terminal
      tap({ cardNo: card_unknown, cardCounter: 6, terminalId: tA(1), terminalSeq: 55, localTime: '20261129090000' }),  // 5 UNKNOWN_CARD
      tap({ cardNo: cardN(11), cardCounter: 7, terminalId: tA(1), terminalSeq: 56, localTime: '20261129090000', keyVersion: 2 }), // 6
      { ...tap({ cardNo: cardN(11), cardCounter: 8, terminalId: tA(1), terminalSeq: 57, localTime: '20261129090000' }), amountFen: 201 }, // 7 BAD_TAC
      tap({ cardNo: cardN(11), cardCounter: 9, terminalId: tA(1), terminalSeq: 58, localTime: futureLocal }),          // 8 FUTURE_TAP
      tap({ cardNo: cardN(11), cardCounter: 10, terminalId: tA(1), terminalSeq: 59, localTime: staleLocal }),          // 9 STALE_TAP
      tap({ cardNo: card_cancelled, cardCounter: 1, terminalId: tA(1), terminalSeq: 60, localTime: '20261129090000' }), // 10
      tap({ cardNo: card_lost, cardCounter: 1, terminalId: tA(1), terminalSeq: 61, localTime: '20261129090000' }),     // 11
      { ...first },                                                                                                    // 12 DUPLICATE
      clone,                                                                                                           // 13 CLONE_SUSPECT
      tap({ cardNo: cardN(12), cardCounter: 1, terminalId: tA(1), terminalSeq: 1, localTime: '20261129091000' }),      // 14 DUPLICATE_TERMINAL_SEQ
      tap({ cardNo: cardN(12), cardCounter: 2, terminalId: tA(1), terminalSeq: 3, localTime: '20261129091500' }),      // 15 accepted
      tap({ cardNo: cardN(11), cardCounter: 11, terminalId: terminal_b, terminalSeq: 62, localTime: '20261129090000', amountFen: 0 }), // 16 amount before terminal
      { ...tap({ cardNo: card_unknown, cardCounter: 12, terminalId: tA(1), terminalSeq: 63, localTime: '20261129090000' }), tac: 'FFFFFFFF' }, // 17 card before TAC
      { ...tap({ cardNo: cardN(11), cardCounter: 13, terminalId: tA(1), terminalSeq: 64, localTime: futureLocal }), tac: 'FFFFFFFF' }, // 18 TAC before time
      tap({ cardNo: card_lost_long_ago, cardCounter: 2, terminalId: tA(1), terminalSeq: 65, localTime: staleLocal }),  // 19 stale before hotlist
      { ...tap({ cardNo: cardN(11), cardCounter: 14, terminalId: tA(1), terminalSeq: 66, localTime: '20261129090000' }), stationId: 'S\u0000\t\n\\' }, // 20 MALFORMED
      tap({ cardNo: cardN(11), cardCounter: 15, terminalId: '42030000010', terminalSeq: 67, localTime: '20261129090000' }), // 21 MALFORMED (terminal id of 11 digits)
    ];
    const before = await writtenCounts(db.pool);
    const r = receipt(await upload(t.app, tok.opA, batchOf('OPA', 'REASONS-1', records)));
    const reasons = ['MALFORMED', 'AMOUNT_OUT_OF_RANGE', 'INSUFFICIENT_PURSE', 'UNKNOWN_TERMINAL', 'UNKNOWN_TERMINAL', 'UNKNOWN_CARD',
      'UNKNOWN_KEY_VERSION', 'BAD_TAC', 'FUTURE_TAP', 'STALE_TAP', 'CARD_CANCELLED', 'CARD_HOTLISTED', 'DUPLICATE', 'CLONE_SUSPECT',
      'DUPLICATE_TERMINAL_SEQ', null, 'AMOUNT_OUT_OF_RANGE', 'UNKNOWN_CARD', 'BAD_TAC', 'STALE_TAP', 'MALFORMED', 'MALFORMED'];
    expect(r.rejections).toEqual(reasons.flatMap((reason, index) => (reason === null ? [] : [{ index, reason }])));
    expect(r.acceptedCount).toBe(1);
    expect(r.acceptedAmountFen).toBe(String(records[15].amountFen));
    const rejectedSum = records.reduce((a, x, i) => a + (i === 15 ? 0 : x.amountFen), 0);
    expect(r.rejectedAmountFen).toBe(String(rejectedSum));

    // Every record kept, in order, with its reason; malformed ones as their bytes.
    const rows = await db.pool.query<{ idx: number; outcome: string; reason: string | null; card_no: string | null; raw: Buffer | null }>(`
      SELECT r.idx, r.outcome, r.reason, r.card_no, r.raw FROM tap_record r JOIN tap_batch b ON b.batch_no = r.batch_no
      WHERE b.operator_id = 'OPA' AND b.batch_id = 'REASONS-1' ORDER BY r.idx`);
    expect(rows.rows.map((x) => x.reason)).toEqual(reasons);
    expect(rows.rows[15]).toMatchObject({ outcome: 'ACCEPTED', card_no: cardN(12), raw: null });
    expect(rows.rows[0].card_no).toBeNull();
    expect(JSON.parse((rows.rows[20].raw as Buffer).toString('utf8')).stationId).toBe('S\u0000\t\n\\');
    expect(JSON.parse((rows.rows[0].raw as Buffer).toString('utf8')).cardNo).toBe('12345');
    const after = await writtenCounts(db.pool);
    expect(after.records - before.records).toBe(BigInt(records.length));
    expect(after.entries - before.entries).toBe(1n);
    expect(await entryLines(`tap:${cardN(12)}:2:9`)).toHaveLength(1);
    expect(await entryLines(`tap:${cardN(12)}:1:9`)).toHaveLength(0);

    // The clone is a risk case pointing at the first acceptance.
    const cases = await db.pool.query<{ kind: string; source_ref: string; card_no: string; merchant_id: string; details: Record<string, unknown>; state: string }>(
      `SELECT kind, source_ref, card_no, merchant_id, details, state FROM risk_case WHERE kind = 'CLONE_SUSPECT'`);
    expect(cases.rows).toHaveLength(1);
    expect(cases.rows[0]).toMatchObject({ source_ref: `${cardN(10)}:1:9`, card_no: cardN(10), merchant_id: 'OPA', state: 'OPEN' });
    expect(cases.rows[0].details).toMatchObject({ batch_id: 'REASONS-1', index: 13, first_accepted: { index: 0, terminal_seq: 1 } });
    const events = await db.pool.query(`SELECT to_state FROM risk_case_event e JOIN risk_case c ON c.id = e.case_id WHERE c.kind = 'CLONE_SUSPECT'`);
    expect(events.rows).toEqual([{ to_state: 'OPEN' }]);
  });
});

describe('whole-batch refusals', () => {
  const good = () => batchOf('OPA', 'REFUSE-1', [tap({ cardNo: cardN(20), cardCounter: 1, terminalId: tA(2), terminalSeq: 1, localTime: '20261129090000' })]);

  it('write nothing, with a stable code and a human message', async () => {
    clock.set(shanghaiInstant('20261129100000'));
    receipt(await upload(t.app, tok.opA, batchOf('OPA', 'CONFLICT-1', [tap({ cardNo: cardN(21), cardCounter: 1, terminalId: tA(2), terminalSeq: 2, localTime: '20261129090000' })])));
    const big = tap({ cardNo: cardN(22), cardCounter: 1, terminalId: tA(2), terminalSeq: 3, localTime: '20261129090000' });
    const tooMany = batchOf('OPA', 'TOO-MANY', Array.from({ length: 50_001 }, () => big));
    const cases: [string, () => Promise<{ statusCode: number; json: () => unknown; body: string }>, number, string][] = [
      ['garbage protobuf', () => rawUpload(t.app, tok.opA, Buffer.from([0x0a, 0xff, 0xff, 0xff]), 'application/x-protobuf'), 400, 'MALFORMED_BODY'],
      ['invalid JSON', () => rawUpload(t.app, tok.opA, '{"operatorId": "OPA",', 'application/json'), 400, 'MALFORMED_BODY'],
      ['snake_case JSON field', () => rawUpload(t.app, tok.opA, JSON.stringify({ operator_id: 'OPA' }), 'application/json'), 400, 'MALFORMED_BODY'],
      ['JSON not UTF-8', () => rawUpload(t.app, tok.opA, Buffer.from([0x7b, 0xff, 0x7d]), 'application/json'), 400, 'MALFORMED_BODY'],
      ['another operator in the batch', () => upload(t.app, tok.opA, { ...good(), operatorId: 'OPB' }), 403, 'OPERATOR_MISMATCH'],
      ['unregistered operator', () => upload(t.app, tok.opUnknown, { ...good(), operatorId: 'NOPE' }), 403, 'OPERATOR_UNKNOWN'],
      ['a merchant that is not a transit operator', () => upload(t.app, tok.retail, { ...good(), operatorId: 'SHOP1' }), 403, 'OPERATOR_UNKNOWN'],
      ['suspended operator', () => upload(t.app, tok.opSuspended, { ...good(), operatorId: 'OPS' }), 403, 'OPERATOR_INACTIVE'],
      ['record_count off by one', () => upload(t.app, tok.opA, { ...good(), recordCount: 2 }), 400, 'RECORD_COUNT_MISMATCH'],
      ['total_amount_fen off by one', () => upload(t.app, tok.opA, { ...good(), totalAmountFen: 1n }), 400, 'TOTAL_AMOUNT_MISMATCH'],
      ['no records', () => upload(t.app, tok.opA, batchOf('OPA', 'EMPTY', [])), 400, 'EMPTY_BATCH'],
      ['batch_id with a slash', () => upload(t.app, tok.opA, { ...good(), batchId: 'a/b' }), 400, 'BATCH_ID_INVALID'],
      ['created_at not RFC 3339', () => upload(t.app, tok.opA, { ...good(), createdAt: '2026-11-29 09:00' }), 400, 'CREATED_AT_INVALID'],
      ['50,001 records', () => upload(t.app, tok.opA, tooMany), 413, 'TOO_MANY_RECORDS'],
      ['batch_id reused with other content', () => upload(t.app, tok.opA, { ...good(), batchId: 'CONFLICT-1' }), 409, 'BATCH_ID_CONFLICT'],
      ['text/plain', () => rawUpload(t.app, tok.opA, 'hello', 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['finance may not upload', () => upload(t.app, tok.finance, good()), 403, 'FORBIDDEN_ROLE'],
      ['a bank may not upload', () => upload(t.app, tok.bank, good()), 403, 'FORBIDDEN_ROLE'],
      ['no credential', () => t.app.inject({ method: 'POST', url: '/v1/transit/batches', headers: { 'content-type': 'application/x-protobuf' }, payload: encodeTapBatchProtobuf(good()) }), 401, 'UNAUTHENTICATED'],
    ];
    for (const [name, send, status, code] of cases) {
      const before = await writtenCounts(db.pool);
      const r = await send();
      expect(r.statusCode, `${name}: ${r.body.slice(0, 300)}`).toBe(status);
      const body = r.json() as { code: string; message: string };
      expect(body.code, name).toBe(code);
      expect(body.message.length, name).toBeGreaterThan(10);
      expect(await writtenCounts(db.pool), name).toEqual(before);
    }
    // The refused batch_id is still free.
    receipt(await upload(t.app, tok.opA, good()));
  });

  it('a body over the configured size is 413 BODY_TOO_LARGE, in either format, and writes nothing', async () => {
    const small = await transitApp(db.pool, clock, { bodyBytesMax: 2048 });
    try {
      const records = Array.from({ length: 40 }, (_, i) => tap({ cardNo: cardN(23), cardCounter: i + 1, terminalId: tA(2), terminalSeq: 100 + i, localTime: '20261129090000' }));
      const b = batchOf('OPA', 'TOO-BIG', records);
      const before = await writtenCounts(db.pool);
      for (const format of ['protobuf', 'json'] as const) {
        const r = await upload(small.app, tok.opA, b, format);
        expect(r.statusCode, r.body).toBe(413);
        expect((r.json() as { code: string }).code).toBe('BODY_TOO_LARGE');
      }
      expect(await writtenCounts(db.pool)).toEqual(before);
    } finally {
      await small.app.close();
    }
  });
});

describe('idempotency', () => {
  it('a re-upload returns the same receipt, in JSON or protobuf, and changes nothing', async () => {
    clock.set(shanghaiInstant('20261129100000'));
    const b = batchOf('OPA', 'IDEM-1', [
      tap({ cardNo: cardN(30), cardCounter: 1, terminalId: tA(3), terminalSeq: 1, localTime: '20261129090000' }),
      tap({ cardNo: cardN(30), cardCounter: 2, terminalId: tA(3), terminalSeq: 2, localTime: '20261129090100', amountFen: 0 }),
    ]);
    const first = await upload(t.app, tok.opA, b, 'json');
    expect(first.headers['idempotent-replayed']).toBe('false');
    const r1 = receipt(first);
    const counts = await writtenCounts(db.pool);
    clock.advance(60_000);
    for (const format of ['protobuf', 'json'] as const) {
      const again = await upload(t.app, tok.opA, b, format);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.body).toBe(first.body);
    }
    const pb = await upload(t.app, tok.opA, b, 'protobuf', 'application/x-protobuf');
    expect(pb.headers['content-type']).toContain('application/x-protobuf');
    const decoded = decodeTapReceiptProtobuf(pb.rawPayload);
    expect({ ...decoded, acceptedAmountFen: String(decoded.acceptedAmountFen), rejectedAmountFen: String(decoded.rejectedAmountFen) }).toEqual(r1);
    expect(await writtenCounts(db.pool)).toEqual(counts);
    expect(r1.receivedAt).toBe(new Date(shanghaiInstant('20261129100000')).toISOString());
    // Read back later: the same receipt.
    const got = await get('/v1/transit/batches/IDEM-1', tok.opA);
    expect(got.body).toBe(first.body);
  });

  it('8 concurrent uploads of one batch apply it exactly once and all get the same receipt', async () => {
    const records = Array.from({ length: 300 }, (_, i) => tap({ cardNo: cardN(31 + (i % 5)), cardCounter: 1 + Math.floor(i / 5), terminalId: tA(4), terminalSeq: i + 1, localTime: '20261129090000' }));
    const b = batchOf('OPA', 'IDEM-CONCURRENT', records);
    const before = await writtenCounts(db.pool);
    const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => upload(t.app, tok.opA, b, i % 2 === 0 ? 'protobuf' : 'json')));
    for (const r of responses) expect(r.statusCode, r.body).toBe(200);
    expect(new Set(responses.map((r) => r.body)).size).toBe(1);
    expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'false')).toHaveLength(1);
    expect(receipt(responses[0]).acceptedCount).toBe(300);
    const after = await writtenCounts(db.pool);
    expect(after.batches - before.batches).toBe(1n);
    expect(after.records - before.records).toBe(300n);
    expect(after.entries - before.entries).toBe(300n);
  });
});

describe('concurrent batches', () => {
  it('a tap sent in two different batches at once is accepted once; the other batch marks it DUPLICATE', async () => {
    for (let round = 0; round < 6; round++) {
      const shared = tap({ cardNo: cardN(40 + round), cardCounter: 1, terminalId: tA(5), terminalSeq: 1 + round * 10, localTime: '20261129090000' });
      const own = (k: number) => tap({ cardNo: cardN(50 + round), cardCounter: 1 + k, terminalId: tA(6 + k), terminalSeq: 1 + round, localTime: '20261129090000' });
      const a = batchOf('OPA', `RACE-${round}-A`, [own(0), shared]);
      const b = batchOf('OPA', `RACE-${round}-B`, [shared, own(1)]);
      const [ra, rb] = await Promise.all([upload(t.app, tok.opA, a), upload(t.app, tok.opA, b)]);
      const ja = receipt(ra);
      const jb = receipt(rb);
      const sharedOutcomes = [ja.rejections.find((x) => x.index === 1)?.reason ?? 'ACCEPTED', jb.rejections.find((x) => x.index === 0)?.reason ?? 'ACCEPTED'].sort();
      expect(sharedOutcomes).toEqual(['ACCEPTED', 'DUPLICATE']);
      expect(ja.acceptedCount + jb.acceptedCount).toBe(3);
      expect(await entryLines(`tap:${shared.cardNo}:1:9`)).toHaveLength(1);
    }
  });

  it('one terminal sequence number in two batches at once (different cards) is accepted once; the other is DUPLICATE_TERMINAL_SEQ', async () => {
    for (let round = 0; round < 6; round++) {
      const a = batchOf('OPA', `SEQRACE-${round}-A`, [tap({ cardNo: cardN(60 + round), cardCounter: 1, terminalId: tA(9), terminalSeq: 1000 + round, localTime: '20261129090000' })]);
      const b = batchOf('OPA', `SEQRACE-${round}-B`, [tap({ cardNo: cardN(70 + round), cardCounter: 1, terminalId: tA(9), terminalSeq: 1000 + round, localTime: '20261129090000' })]);
      const [ra, rb] = await Promise.all([upload(t.app, tok.opA, a), upload(t.app, tok.opA, b)]);
      const outcomes = [receipt(ra), receipt(rb)].map((x) => x.rejections[0]?.reason ?? 'ACCEPTED').sort();
      expect(outcomes).toEqual(['ACCEPTED', 'DUPLICATE_TERMINAL_SEQ']);
    }
  });
});

describe('roles and scopes', () => {
  it('an operator reads its own receipts only; staff name the operator', async () => {
    const mine = await get('/v1/transit/batches/IDEM-1', tok.opA);
    expect(mine.statusCode).toBe(200);
    for (const [url, token] of [
      ['/v1/transit/batches/IDEM-1', tok.opB],
      ['/v1/transit/batches/IDEM-1?operator_id=OPA', tok.opB],
      ['/v1/transit/operators/OPA/batches/IDEM-1', tok.opB],
      ['/v1/transit/batches/NO-SUCH-BATCH', tok.opA],
      ['/v1/transit/operators/OPB/batches/IDEM-1', tok.finance],
    ] as const) {
      const r = await get(url, token);
      expect(r.statusCode, url).toBe(404);
      expect((r.json() as { code: string }).code).toBe('BATCH_NOT_FOUND');
    }
    for (const token of [tok.finance, tok.auditor, tok.admin]) {
      expect((await get('/v1/transit/batches/IDEM-1?operator_id=OPA', token)).body).toBe(mine.body);
      expect((await get('/v1/transit/operators/OPA/batches/IDEM-1', token)).body).toBe(mine.body);
    }
    expect((await get('/v1/transit/operators/OPA/batches/IDEM-1', tok.opA)).body).toBe(mine.body);
    const noOperator = await get('/v1/transit/batches/IDEM-1', tok.finance);
    expect(noOperator.statusCode).toBe(400);
    expect((noOperator.json() as { code: string }).code).toBe('OPERATOR_ID_REQUIRED');
    expect((await get('/v1/transit/batches/IDEM-1?operator_id=OPA', tok.bank)).statusCode).toBe(403);
    const pb = await get('/v1/transit/batches/IDEM-1', tok.opA, 'application/x-protobuf');
    expect(decodeTapReceiptProtobuf(pb.rawPayload).batchId).toBe('IDEM-1');
  });

  it('risk signals: an operator sees only its own gaps; chain breaks are for staff', async () => {
    expect((await get('/v1/transit/operators/OPA/sequence-gaps', tok.opB)).statusCode).toBe(403);
    expect((await get('/v1/transit/operators/OPA/sequence-gaps', tok.opA)).statusCode).toBe(200);
    expect((await get(`/v1/transit/balance-chain-breaks?card_no=${cardN(1)}`, tok.opA)).statusCode).toBe(403);
    expect((await get(`/v1/transit/balance-chain-breaks?card_no=${cardN(1)}`, tok.bank)).statusCode).toBe(403);
  });
});

describe('clearing cycles', () => {
  it('accepted records land in the cycle open when the batch was accepted; after a close, in the next one', async () => {
    clock.set(shanghaiInstant('20261129100000'));
    const open = (await db.pool.query<{ id: string; business_date: string }>(`SELECT id, business_date FROM clearing_cycle WHERE state = 'OPEN'`)).rows[0];
    const r1 = receipt(await upload(t.app, tok.opA, batchOf('OPA', 'CYCLE-1', [tap({ cardNo: cardN(80), cardCounter: 1, terminalId: tA(10), terminalSeq: 1, localTime: '20261129090000' })])));
    expect(r1.clearingCycleId).toBe(open.id);
    const e1 = await db.pool.query(`SELECT business_date FROM ledger_entry WHERE idem_key = $1`, [`tap:${cardN(80)}:1:9`]);
    expect(e1.rows[0].business_date).toBe(open.business_date);
    const rec1 = await db.pool.query(`SELECT DISTINCT r.business_date FROM tap_record r JOIN tap_batch b USING (batch_no) WHERE b.batch_id = 'CYCLE-1'`);
    expect(rec1.rows).toEqual([{ business_date: open.business_date }]);

    // The clearing calendar closes the cycle and opens the next, atomically, under the cycle lock.
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(7100, 1)');
      await client.query(`UPDATE clearing_cycle SET state = 'CLOSED', closed_at = now() WHERE id = $1`, [open.id]);
      await client.query(`INSERT INTO clearing_cycle (id, business_date, state, opened_at) VALUES ('CYC20991231', '2099-12-31', 'OPEN', now())`);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const r2 = receipt(await upload(t.app, tok.opA, batchOf('OPA', 'CYCLE-2', [tap({ cardNo: cardN(80), cardCounter: 2, terminalId: tA(10), terminalSeq: 2, localTime: '20261129090500' })])));
    expect(r2.clearingCycleId).toBe('CYC20991231');
    const e2 = await db.pool.query(`SELECT business_date FROM ledger_entry WHERE idem_key = $1`, [`tap:${cardN(80)}:2:9`]);
    expect(e2.rows[0].business_date).toBe('2099-12-31');
    // The closed cycle's batch is unchanged, and its replay still names the cycle it landed in.
    const replay = receipt(await upload(t.app, tok.opA, batchOf('OPA', 'CYCLE-1', [tap({ cardNo: cardN(80), cardCounter: 1, terminalId: tA(10), terminalSeq: 1, localTime: '20261129090000' })])));
    expect(replay).toEqual(r1);
  });
});

describe('card status boundary', () => {
  it('a tap before the loss report is accepted, at or after it refused; after reactivation accepted again', async () => {
    clock.set(shanghaiInstant('20261129120000'));
    const c = cardN(90);
    await addCardStatus(db.pool, c, 'LOST_REPORTED', new Date(shanghaiInstant('20261129093000')));
    await addCardStatus(db.pool, c, 'ACTIVE', new Date(shanghaiInstant('20261129110000')));
    const cc = cardN(91);
    await addCardStatus(db.pool, cc, 'CANCELLED', new Date(shanghaiInstant('20261129100000')));
    const times = ['20261129092959', '20261129093000', '20261129100000', '20261129105959', '20261129110000', '20261129113000'];
    const records = times.map((lt, i) => tap({ cardNo: c, cardCounter: i + 1, terminalId: tA(11), terminalSeq: i + 1, localTime: lt }));
    records.push(tap({ cardNo: cc, cardCounter: 1, terminalId: tA(11), terminalSeq: 20, localTime: '20261129095959' }));
    records.push(tap({ cardNo: cc, cardCounter: 2, terminalId: tA(11), terminalSeq: 21, localTime: '20261129100000' }));
    const r = receipt(await upload(t.app, tok.opA, batchOf('OPA', 'HOTLIST-1', records)));
    expect(r.rejections).toEqual([
      { index: 1, reason: 'CARD_HOTLISTED' }, { index: 2, reason: 'CARD_HOTLISTED' }, { index: 3, reason: 'CARD_HOTLISTED' },
      { index: 7, reason: 'CARD_CANCELLED' },
    ]);
  });
});

describe('purse shortfall', () => {
  it('posts what the purse lacks from suspense, in card_counter order, and raises a risk case per short tap', async () => {
    clock.set(shanghaiInstant('20261129120000'));
    const s = cardN(150);
    const never = cardN(151);
    await fundPurses(db.pool, [{ cardNo: s, amountFen: 500n }]);
    const suspenseBefore = await balanceFen(db.pool, 'centre:suspense');
    const payableBefore = await balanceFen(db.pool, 'merchant:OPA:payable');
    const records = [
      tap({ cardNo: s, cardCounter: 3, terminalId: tA(12), terminalSeq: 3, localTime: '20261129110300', amountFen: 300 }),
      tap({ cardNo: s, cardCounter: 1, terminalId: tA(12), terminalSeq: 1, localTime: '20261129110100', amountFen: 300 }),
      tap({ cardNo: s, cardCounter: 2, terminalId: tA(12), terminalSeq: 2, localTime: '20261129110200', amountFen: 300 }),
      tap({ cardNo: never, cardCounter: 1, terminalId: tA(12), terminalSeq: 4, localTime: '20261129110400', amountFen: 120 }),
    ];
    const r = receipt(await upload(t.app, tok.opA, batchOf('OPA', 'SHORT-1', records)));
    expect(r).toMatchObject({ acceptedCount: 4, rejectedCount: 0 });
    const purse = `card:${s}:purse`;
    expect(await entryLines(`tap:${s}:1:9`)).toEqual([{ debit: purse, credit: 'merchant:OPA:payable', amount_fen: 300n }]);
    expect(await entryLines(`tap:${s}:2:9`)).toEqual([
      { debit: purse, credit: 'merchant:OPA:payable', amount_fen: 200n }, { debit: 'centre:suspense', credit: 'merchant:OPA:payable', amount_fen: 100n },
    ]);
    expect(await entryLines(`tap:${s}:3:9`)).toEqual([{ debit: 'centre:suspense', credit: 'merchant:OPA:payable', amount_fen: 300n }]);
    expect(await entryLines(`tap:${never}:1:9`)).toEqual([{ debit: 'centre:suspense', credit: 'merchant:OPA:payable', amount_fen: 120n }]);
    expect(await balanceFen(db.pool, purse)).toBe(0n);
    expect(await balanceFen(db.pool, 'centre:suspense') - suspenseBefore).toBe(520n);
    expect(await balanceFen(db.pool, 'merchant:OPA:payable') - payableBefore).toBe(1020n);
    const cases = await db.pool.query<{ source_ref: string; amount_fen: bigint; card_no: string; details: Record<string, unknown> }>(
      `SELECT source_ref, amount_fen, card_no, details FROM risk_case WHERE kind = 'PURSE_SHORTFALL' ORDER BY source_ref`);
    expect(cases.rows.map((c) => [c.source_ref, c.amount_fen])).toEqual([[`${s}:2:9`, 100n], [`${s}:3:9`, 300n], [`${never}:1:9`, 120n]]);
    expect(cases.rows[0].details).toMatchObject({ batch_id: 'SHORT-1', index: 2, covered_fen: '200', shortfall_fen: '100' });
    const shortfalls = await db.pool.query(`SELECT r.idx, r.shortfall_fen FROM tap_record r JOIN tap_batch b USING (batch_no) WHERE b.batch_id = 'SHORT-1' ORDER BY r.idx`);
    expect(shortfalls.rows).toEqual([{ idx: 0, shortfall_fen: 300n }, { idx: 1, shortfall_fen: null }, { idx: 2, shortfall_fen: 100n }, { idx: 3, shortfall_fen: 120n }]);
  });
});

describe('terminal sequence gaps', () => {
  async function gaps(token: string, query = 'limit=1000') {
    const r = await get(`/v1/transit/operators/OPA/sequence-gaps?${query}`, token);
    expect(r.statusCode, r.body).toBe(200);
    return r.json() as { items: { terminal_id: string; from_seq: number; to_seq: number; missing_count: number }[]; next_cursor: string | null };
  }
  const term = tA(13);
  const mine = (items: { terminal_id: string; from_seq: number; to_seq: number }[]) => items.filter((g) => g.terminal_id === term).map((g) => [g.from_seq, g.to_seq]);

  it('lists the missing numbers between accepted records and closes them as records arrive', async () => {
    clock.set(shanghaiInstant('20261129120000'));
    const seqTap = (seq: number, counter: number) => tap({ cardNo: cardN(95), cardCounter: counter, terminalId: term, terminalSeq: seq, localTime: '20261129110000' });
    receipt(await upload(t.app, tok.opA, batchOf('OPA', 'GAPS-1', [seqTap(9, 1), seqTap(1, 2), seqTap(5, 3), seqTap(2, 4)])));
    expect(mine((await gaps(tok.opA)).items)).toEqual([[3, 4], [6, 8]]);
    receipt(await upload(t.app, tok.opA, batchOf('OPA', 'GAPS-2', [seqTap(7, 5), seqTap(12, 6)])));
    expect(mine((await gaps(tok.finance)).items)).toEqual([[3, 4], [6, 6], [8, 8], [10, 11]]);
    // A rejected record does not close a gap.
    const bad = { ...seqTap(3, 7), tac: '00000000' };
    receipt(await upload(t.app, tok.opA, batchOf('OPA', 'GAPS-3', [bad, seqTap(4, 8)])));
    expect(mine((await gaps(tok.auditor)).items)).toEqual([[3, 3], [6, 6], [8, 8], [10, 11]]);
    receipt(await upload(t.app, tok.opA, batchOf('OPA', 'GAPS-4', [seqTap(3, 9), seqTap(6, 10), seqTap(8, 11), seqTap(10, 12), seqTap(11, 13)])));
    expect(mine((await gaps(tok.opA)).items)).toEqual([]);
    const events = await db.pool.query<{ event: string; n: string }>(`SELECT event, count(*)::text AS n FROM tap_seq_gap_event WHERE terminal_id = $1 GROUP BY event ORDER BY event`, [term]);
    // Opened: [3,4] [6,8]; then [6,6] [8,8] [10,11]; then [3,3]. Closed: [6,8]; [3,4]; [3,3] [6,6] [8,8] [10,11].
    expect(events.rows).toEqual([{ event: 'CLOSED', n: '6' }, { event: 'OPENED', n: '6' }]);
  });

  it('pages with a cursor', async () => {
    const seqTap = (seq: number, counter: number) => tap({ cardNo: cardN(96), cardCounter: counter, terminalId: tA(14), terminalSeq: seq, localTime: '20261129110000' });
    receipt(await upload(t.app, tok.opA, batchOf('OPA', 'GAPS-PAGE', [seqTap(1, 1), seqTap(3, 2), seqTap(5, 3), seqTap(7, 4)])));
    const all = (await gaps(tok.opA)).items;
    const seen: typeof all = [];
    let cursor: string | null = null;
    do {
      const page = await gaps(tok.opA, cursor === null ? 'limit=2' : `limit=2&cursor=${cursor}`);
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor !== null);
    expect(seen).toEqual(all);
    expect(all.filter((g) => g.terminal_id === tA(14)).map((g) => g.missing_count)).toEqual([1, 1, 1]);
  });
});

describe('purse balance chain breaks', () => {
  it('lists breaks per card, ignoring a break across a purse load; full card numbers for finance only', async () => {
    // Loads are stamped by the database clock: the taps straddle the real now.
    const now = Date.now();
    clock.set(now + 5 * 60_000);
    const c = cardN(160);
    const lt = (ms: number) => shanghaiLocalTime(ms);
    const chain = [
      tap({ cardNo: c, cardCounter: 1, terminalId: tA(15), terminalSeq: 1, localTime: lt(now - 3 * 3_600_000), amountFen: 200, balanceBeforeFen: 1000 }),
      tap({ cardNo: c, cardCounter: 2, terminalId: tA(15), terminalSeq: 2, localTime: lt(now - 2 * 3_600_000), amountFen: 100, balanceBeforeFen: 800 }),
      tap({ cardNo: c, cardCounter: 3, terminalId: tA(15), terminalSeq: 3, localTime: lt(now - 3_600_000), amountFen: 50, balanceBeforeFen: 650 }),
      tap({ cardNo: c, cardCounter: 4, terminalId: tA(15), terminalSeq: 4, localTime: lt(now + 2 * 60_000), amountFen: 100, balanceBeforeFen: 5000 }),
    ];
    receipt(await upload(t.app, tok.opA, batchOf('OPA', 'CHAIN-1', chain)));
    const breaks = async (token: string, extra = '') => {
      const r = await get(`/v1/transit/balance-chain-breaks?card_no=${c}${extra}`, token);
      expect(r.statusCode, r.body).toBe(200);
      return r.json() as { card_no: string; items: { previous: { card_counter: number }; next: { card_counter: number }; expected_balance_before_fen: string; difference_fen: string }[]; next_cursor: string | null };
    };
    const pairs = (b: Awaited<ReturnType<typeof breaks>>) => b.items.map((x) => [x.previous.card_counter, x.next.card_counter, x.expected_balance_before_fen]);
    expect(pairs(await breaks(tok.finance))).toEqual([[2, 3, '700'], [3, 4, '600']]);
    // A load between taps 3 and 4 explains the jump.
    await fundPurses(db.pool, [{ cardNo: c, amountFen: 4_400n, key: `chain-load:${c}` }]);
    const f = await breaks(tok.finance);
    expect(pairs(f)).toEqual([[2, 3, '700']]);
    expect(f.items[0].difference_fen).toBe('-50');
    expect(f.card_no).toBe(c);
    receipt(await upload(t.app, tok.opA, batchOf('OPA', 'CHAIN-2', [
      tap({ cardNo: c, cardCounter: 5, terminalId: tA(15), terminalSeq: 5, localTime: lt(now + 3 * 60_000), amountFen: 100, balanceBeforeFen: 4000 }),
    ])));
    const a = await breaks(tok.auditor);
    expect(pairs(a)).toEqual([[2, 3, '700'], [4, 5, '4900']]);
    expect(a.card_no).toBe(`${c.slice(0, 6)}*********${c.slice(-4)}`);
    expect(JSON.stringify(a)).not.toContain(c);
    // Paging by two taps at a time finds the same breaks.
    const seen: unknown[] = [];
    let cursor: string | null = null;
    do {
      const page = await breaks(tok.finance, cursor === null ? '&limit=2' : `&limit=2&cursor=${cursor}`);
      seen.push(...pairs(page));
      cursor = page.next_cursor;
    } while (cursor !== null);
    expect(seen).toEqual([[2, 3, '700'], [4, 5, '4900']]);
  });
});

describe('formats, metrics and the ledger', () => {
  it('a JSON upload is applied like a protobuf one', async () => {
    clock.set(shanghaiInstant('20261129120000'));
    const b = batchOf('OPA', 'JSON-1', [tap({ cardNo: cardN(97), cardCounter: 1, terminalId: tA(16), terminalSeq: 1, localTime: '20261129110000', lineId: 'L57', stationId: '站 7' })]);
    const r = await rawUpload(t.app, tok.opA, batchJson(b), 'application/json; charset=utf-8');
    expect(receipt(r).acceptedCount).toBe(1);
    const row = await db.pool.query(`SELECT line_id, station_id, entry_station_id FROM tap_record WHERE card_no = $1`, [cardN(97)]);
    expect(row.rows).toEqual([{ line_id: 'L57', station_id: '站 7', entry_station_id: null }]);
  });

  it('counts taps and batches in the metrics', async () => {
    const m = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(m.body).toMatch(/onecard_transit_taps_total\{outcome="ACCEPTED"\} [1-9]/);
    expect(m.body).toMatch(/onecard_transit_taps_total\{outcome="BAD_TAC"\} [1-9]/);
    expect(m.body).toMatch(/onecard_transit_batches_total\{result="replayed"\} [1-9]/);
    expect(m.body).toMatch(/onecard_transit_batch_refusals_total\{code="BATCH_ID_CONFLICT"\} [1-9]/);
    expect(m.body).toMatch(/onecard_transit_purse_shortfalls_total [1-9]/);
  });

  it('the ledger verifies, every accepted tap has exactly one entry, and history is immutable', async () => {
    const v = await new Ledger().verify(db.pool);
    expect(v.ok, JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x))).toBe(true);
    const r = await db.pool.query<{ accepted: bigint; entries: bigint; orphans: bigint }>(`
      SELECT (SELECT count(*) FROM tap_record WHERE outcome = 'ACCEPTED')::bigint AS accepted,
             (SELECT count(*) FROM ledger_entry WHERE kind = 'TRANSIT_TAP')::bigint AS entries,
             (SELECT count(*) FROM tap_record r WHERE r.outcome = 'ACCEPTED' AND NOT EXISTS (
                SELECT 1 FROM ledger_entry e WHERE e.idem_key = 'tap:' || r.card_no || ':' || r.card_counter || ':' || r.txn_type))::bigint AS orphans`);
    expect(r.rows[0].accepted).toBe(r.rows[0].entries);
    expect(r.rows[0].orphans).toBe(0n);
    await expect(db.pool.query(`UPDATE tap_record SET reason = NULL WHERE idx = 0`)).rejects.toThrow(/immutable/);
    await expect(db.pool.query(`DELETE FROM tap_batch`)).rejects.toThrow(/immutable/);
  });
});
