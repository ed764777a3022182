// Proves the tap batch wire formats of TRANSIT-BATCH.md: protobuf tags and types, the JSON
// mapping, the content digest used for idempotency, whole-batch refusals and the MALFORMED rule.
// Pure: no database.
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../engine/errors.ts';
import {
  batch_records_max,
  checkRecordFormat,
  checkRecordFormats,
  checkWholeBatch,
  isRfc3339DateTime,
  localTimeEpochMs,
  parseLocalTime,
} from '../engine/ingest/tap-batch.ts';
import type { TapBatchInput, TapRecordFieldName, TapRecordInput } from '../engine/ingest/tap-batch.ts';
import {
  decodeTapBatchJson,
  decodeTapBatchJsonText,
  decodeTapBatchProtobuf,
  decodeTapReceiptProtobuf,
  encodeTapBatchProtobuf,
  encodeTapReceiptProtobuf,
  tapBatchDigest,
} from '../adapters/protobuf/tap-batch-codec.ts';

const body_bytes_max = 16 * 1024 * 1024;
const operator_id = 'OP-BUS-01';

function record(overrides: Partial<TapRecordInput> = {}): TapRecordInput {
  return {
    cardNo: '6214830012345678',
    cardCounter: 41,
    txnType: 9,
    amountFen: 200,
    balanceBeforeFen: 5_000,
    terminalId: '310100000123',
    terminalSeq: 7_001,
    localTime: '20240501083000',
    keyVersion: 3,
    tac: '1A2B3C4D',
    lineId: '',
    stationId: '',
    entryStationId: '',
    entryLocalTime: '',
    ...overrides,
  };
}

function batchOf(records: TapRecordInput[], overrides: Partial<TapBatchInput> = {}): TapBatchInput {
  let total = 0n;
  for (const r of records) total += BigInt(r.amountFen);
  return {
    operatorId: operator_id,
    batchId: 'B20240501-0001',
    createdAt: '2024-05-01T09:00:00+08:00',
    recordCount: records.length,
    totalAmountFen: total,
    records,
    ...overrides,
  };
}

/** A batch using every field, with values at the edges of their types. */
function fullBatch(): TapBatchInput {
  return batchOf([
    record({ lineId: 'L57', stationId: 'ST-0012', entryStationId: 'ST-0001', entryLocalTime: '20240501081500' }),
    record({
      cardNo: '6214830012345678901',
      cardCounter: 0xffff_ffff,
      txnType: 6,
      amountFen: 0xffff_ffff,
      balanceBeforeFen: 0xffff_ffff,
      terminalSeq: 0xffff_ffff,
      keyVersion: 255,
    }),
  ]);
}

/** The JSON a client would send for a batch (uint64 total as a decimal string). */
function toJson(b: TapBatchInput): Record<string, unknown> {
  return { ...b, totalAmountFen: b.totalAmountFen.toString(), records: b.records.map((r) => ({ ...r })) };
}

function thrown(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (e) {
    if (e instanceof DomainError) return e;
    throw new Error(`expected a DomainError, got ${String(e)}`);
  }
  throw new Error('expected a DomainError, nothing was thrown');
}

describe('protobuf', () => {
  it('round-trips every field, uint32 maxima and a uint64 total above 2^53 exactly', () => {
    const b = fullBatch();
    expect(decodeTapBatchProtobuf(encodeTapBatchProtobuf(b), body_bytes_max)).toEqual(b);
    const big = { ...b, totalAmountFen: 18_446_744_073_709_551_615n };
    expect(decodeTapBatchProtobuf(encodeTapBatchProtobuf(big), body_bytes_max).totalAmountFen).toBe(
      18_446_744_073_709_551_615n,
    );
    const justOverSafe = { ...b, totalAmountFen: 9_007_199_254_740_993n };
    expect(decodeTapBatchProtobuf(encodeTapBatchProtobuf(justOverSafe), body_bytes_max).totalAmountFen).toBe(
      9_007_199_254_740_993n,
    );
  });

  it('gives missing fields their proto3 defaults, as plain objects', () => {
    const w = protobuf.Writer.create();
    w.uint32((6 << 3) | 2).uint32(0); // one empty TapRecord
    const b = decodeTapBatchProtobuf(Buffer.from(w.finish()), body_bytes_max);
    expect(b).toEqual({
      operatorId: '',
      batchId: '',
      createdAt: '',
      recordCount: 0,
      totalAmountFen: 0n,
      records: [
        {
          cardNo: '',
          cardCounter: 0,
          txnType: 0,
          amountFen: 0,
          balanceBeforeFen: 0,
          terminalId: '',
          terminalSeq: 0,
          localTime: '',
          keyVersion: 0,
          tac: '',
          lineId: '',
          stationId: '',
          entryStationId: '',
          entryLocalTime: '',
        },
      ],
    });
    expect(Object.keys(b.records[0])).toHaveLength(14);
  });

  it('reads bytes hand-built from the spec tag numbers (wire compatibility)', () => {
    const ld = 2; // length-delimited wire type
    const vi = 0; // varint wire type
    const w = protobuf.Writer.create();
    w.uint32((1 << 3) | ld).string('OP-BUS-01');
    w.uint32((2 << 3) | ld).string('B-7');
    w.uint32((3 << 3) | ld).string('2024-05-01T01:00:00Z');
    w.uint32((4 << 3) | vi).uint32(1);
    // 9007199254740993 = 2^53 + 1 (not a JS number), as its low and high 32-bit halves.
    w.uint32((5 << 3) | vi).uint64({ low: 1, high: 0x20_0000, unsigned: true });
    w.uint32((99 << 3) | ld).string('an unknown field a newer client may send'); // skipped
    w.uint32((6 << 3) | ld).fork();
    w.uint32((1 << 3) | ld).string('6214830012345678');
    w.uint32((2 << 3) | vi).uint32(41);
    w.uint32((3 << 3) | vi).uint32(9);
    w.uint32((4 << 3) | vi).uint32(200);
    w.uint32((5 << 3) | vi).uint32(5000);
    w.uint32((6 << 3) | ld).string('310100000123');
    w.uint32((7 << 3) | vi).uint32(7001);
    w.uint32((8 << 3) | ld).string('20240501083000');
    w.uint32((9 << 3) | vi).uint32(3);
    w.uint32((10 << 3) | ld).string('1A2B3C4D');
    w.uint32((11 << 3) | ld).string('L57');
    w.uint32((12 << 3) | ld).string('ST-0012');
    w.uint32((13 << 3) | ld).string('ST-0001');
    w.uint32((14 << 3) | ld).string('20240501081500');
    w.ldelim();
    const b = decodeTapBatchProtobuf(Buffer.from(w.finish()), body_bytes_max);
    expect(b).toEqual({
      operatorId: 'OP-BUS-01',
      batchId: 'B-7',
      createdAt: '2024-05-01T01:00:00Z',
      recordCount: 1,
      totalAmountFen: 9_007_199_254_740_993n,
      records: [
        record({ lineId: 'L57', stationId: 'ST-0012', entryStationId: 'ST-0001', entryLocalTime: '20240501081500' }),
      ],
    });
  });

  it('treats a known tag with the wrong wire type as unknown, as protoc does', () => {
    const w = protobuf.Writer.create();
    w.uint32((1 << 3) | 0).uint32(5); // operator_id sent as a varint
    w.uint32((4 << 3) | 0).uint32(1);
    const b = decodeTapBatchProtobuf(Buffer.from(w.finish()), body_bytes_max);
    expect(b.operatorId).toBe('');
    expect(b.recordCount).toBe(1);
  });

  it.each([
    ['truncated', Buffer.from([0x0a, 0x05, 0x41])],
    ['invalid wire type', Buffer.from([0x0f])],
    ['field number 0', Buffer.from([0x02, 0x00])],
    ['invalid UTF-8 in a string', Buffer.from([0x0a, 0x02, 0xc3, 0x28])],
    ['a record truncated inside', Buffer.from([0x32, 0x04, 0x0a, 0x05, 0x41, 0x41])],
  ])('refuses a body that does not decode: %s', (_name, bytes) => {
    const e = thrown(() => decodeTapBatchProtobuf(bytes, body_bytes_max));
    expect(e.code).toBe('MALFORMED_BODY');
    expect(e.status).toBe(400);
  });

  it('refuses a body over the caller limit before decoding', () => {
    const bytes = encodeTapBatchProtobuf(fullBatch());
    const e = thrown(() => decodeTapBatchProtobuf(bytes, bytes.length - 1));
    expect(e.code).toBe('BODY_TOO_LARGE');
    expect(e.status).toBe(413);
    expect(e.details).toEqual({ expected: bytes.length - 1, actual: bytes.length });
    expect(() => decodeTapBatchProtobuf(bytes, bytes.length)).not.toThrow();
  });

  it('refuses more than 50,000 records before building them', () => {
    const w = protobuf.Writer.create();
    for (let i = 0; i < batch_records_max + 1; i++) w.uint32((6 << 3) | 2).uint32(0);
    const bytes = Buffer.from(w.finish());
    const e = thrown(() => decodeTapBatchProtobuf(bytes, body_bytes_max));
    expect(e.code).toBe('TOO_MANY_RECORDS');
    expect(e.status).toBe(413);
    expect(e.details).toEqual({ expected: batch_records_max, actual: batch_records_max + 1 });
  });

  it('decodes exactly 50,000 records', () => {
    const records = Array.from({ length: batch_records_max }, (_, i) => record({ cardCounter: i }));
    const b = batchOf(records);
    const decoded = decodeTapBatchProtobuf(encodeTapBatchProtobuf(b), body_bytes_max);
    expect(decoded.records).toHaveLength(batch_records_max);
    expect(() => checkWholeBatch(decoded, operator_id)).not.toThrow();
  });

  it('round-trips a receipt', () => {
    const receipt = {
      operatorId: operator_id,
      batchId: 'B-7',
      receivedAt: '2024-05-01T01:00:00Z',
      clearingCycleId: 'cyc_20240501',
      acceptedCount: 2,
      acceptedAmountFen: 400n,
      rejectedCount: 1,
      rejectedAmountFen: 18_446_744_073_709_551_615n,
      rejections: [{ index: 2, reason: 'BAD_TAC' }],
    };
    expect(decodeTapReceiptProtobuf(encodeTapReceiptProtobuf(receipt))).toEqual(receipt);
  });
});

describe('JSON', () => {
  it('decodes the lowerCamelCase form with the uint64 total as a number or a decimal string', () => {
    const b = fullBatch();
    const asString = toJson(b);
    const asNumber = { ...asString, totalAmountFen: Number(b.totalAmountFen) };
    expect(decodeTapBatchJson(asString)).toEqual(b);
    expect(decodeTapBatchJson(asNumber)).toEqual(b);
    expect(decodeTapBatchJsonText(JSON.stringify(asString), body_bytes_max)).toEqual(b);
    expect(decodeTapBatchJsonText(Buffer.from(JSON.stringify(asNumber)), body_bytes_max)).toEqual(b);
  });

  it('holds a total above 2^53 exactly when sent as a string, and refuses it as a (rounded) number', () => {
    const b = toJson(fullBatch());
    expect(decodeTapBatchJson({ ...b, totalAmountFen: '18446744073709551615' }).totalAmountFen).toBe(
      18_446_744_073_709_551_615n,
    );
    const e = thrown(() => decodeTapBatchJson({ ...b, totalAmountFen: 2 ** 53 }));
    expect(e.code).toBe('MALFORMED_BODY');
    expect(e.details).toMatchObject({ path: 'totalAmountFen' });
  });

  it('gives missing and null fields their proto3 defaults', () => {
    const b = decodeTapBatchJson({
      operatorId: operator_id,
      records: [{ cardNo: '6214830012345678', lineId: null, amountFen: null }],
    });
    expect(b).toEqual({
      operatorId: operator_id,
      batchId: '',
      createdAt: '',
      recordCount: 0,
      totalAmountFen: 0n,
      records: [
        {
          cardNo: '6214830012345678',
          cardCounter: 0,
          txnType: 0,
          amountFen: 0,
          balanceBeforeFen: 0,
          terminalId: '',
          terminalSeq: 0,
          localTime: '',
          keyVersion: 0,
          tac: '',
          lineId: '',
          stationId: '',
          entryStationId: '',
          entryLocalTime: '',
        },
      ],
    });
  });

  const valid = () => toJson(fullBatch());
  const withRecord = (patch: Record<string, unknown>) => {
    const b = valid();
    (b.records as Record<string, unknown>[])[1] = { ...(b.records as Record<string, unknown>[])[1], ...patch };
    return b;
  };
  it.each<[string, unknown, string | undefined]>([
    ['an array body', [], undefined],
    ['a string body', 'batch', undefined],
    ['null', null, undefined],
    ['an unknown batch field', { ...valid(), extra: 1 }, 'extra'],
    ['a snake_case name', { ...valid(), operator_id: operator_id }, 'operator_id'],
    ['operatorId as a number', { ...valid(), operatorId: 7 }, 'operatorId'],
    ['recordCount as a string', { ...valid(), recordCount: '2' }, 'recordCount'],
    ['recordCount negative', { ...valid(), recordCount: -1 }, 'recordCount'],
    ['recordCount fractional', { ...valid(), recordCount: 1.5 }, 'recordCount'],
    ['recordCount over uint32', { ...valid(), recordCount: 2 ** 32 }, 'recordCount'],
    ['totalAmountFen negative', { ...valid(), totalAmountFen: -5 }, 'totalAmountFen'],
    ['totalAmountFen a signed string', { ...valid(), totalAmountFen: '+5' }, 'totalAmountFen'],
    ['totalAmountFen with leading zero', { ...valid(), totalAmountFen: '05' }, 'totalAmountFen'],
    ['totalAmountFen over uint64', { ...valid(), totalAmountFen: '18446744073709551616' }, 'totalAmountFen'],
    ['totalAmountFen a boolean', { ...valid(), totalAmountFen: true }, 'totalAmountFen'],
    ['records an object', { ...valid(), records: {} }, 'records'],
    ['a record that is an array', { ...valid(), records: [[]] }, 'records[0]'],
    ['an unknown record field', withRecord({ psam: 'x' }), 'records[1].psam'],
    ['cardNo as a number', withRecord({ cardNo: 6214830012345678 }), 'records[1].cardNo'],
    ['amountFen as a string', withRecord({ amountFen: '200' }), 'records[1].amountFen'],
    ['a lone surrogate', withRecord({ lineId: 'L\ud800' }), 'records[1].lineId'],
  ])('refuses %s as MALFORMED_BODY', (_name, body, path) => {
    const e = thrown(() => decodeTapBatchJson(body));
    expect(e.code).toBe('MALFORMED_BODY');
    expect(e.status).toBe(400);
    expect(e.details?.path).toBe(path);
  });

  it('accepts a well-formed surrogate pair (an emoji) in free text', () => {
    expect(decodeTapBatchJson(withRecord({ lineId: 'L\u{1F68C}' })).records[1].lineId).toBe('L\u{1F68C}');
  });

  it.each([
    ['not JSON', '{"operatorId":'],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0x7d])],
  ])('refuses raw text that is %s', (_name, text) => {
    expect(thrown(() => decodeTapBatchJsonText(text, body_bytes_max)).code).toBe('MALFORMED_BODY');
  });

  it('refuses raw text over the caller limit before parsing', () => {
    const text = JSON.stringify(valid());
    const bytes = Buffer.byteLength(text);
    expect(thrown(() => decodeTapBatchJsonText(text, bytes - 1)).code).toBe('BODY_TOO_LARGE');
    expect(thrown(() => decodeTapBatchJsonText(Buffer.from(text), bytes - 1)).status).toBe(413);
    // Counted in UTF-8 bytes, not characters.
    const wide = JSON.stringify({ ...valid(), batchId: '车'.repeat(10) });
    expect(thrown(() => decodeTapBatchJsonText(wide, wide.length)).code).toBe('BODY_TOO_LARGE');
  });

  it('refuses more than 50,000 records before reading them', () => {
    const e = thrown(() => decodeTapBatchJson({ ...valid(), records: new Array(batch_records_max + 1).fill(7) }));
    expect(e.code).toBe('TOO_MANY_RECORDS');
    expect(e.status).toBe(413);
  });
});

describe('digest', () => {
  it('is the same for the same content sent as JSON or protobuf, with absent or empty optionals', () => {
    const b = fullBatch();
    const fromProto = decodeTapBatchProtobuf(encodeTapBatchProtobuf(b), body_bytes_max);
    const fromJson = decodeTapBatchJson(toJson(b));
    const json = toJson(b);
    for (const r of json.records as Record<string, unknown>[]) {
      for (const k of Object.keys(r)) if (r[k] === '') delete r[k];
    }
    const fromSparseJson = decodeTapBatchJsonText(JSON.stringify({ ...json, totalAmountFen: Number(b.totalAmountFen) }), body_bytes_max);
    const digest = tapBatchDigest(b);
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(tapBatchDigest(fromProto)).toBe(digest);
    expect(tapBatchDigest(fromJson)).toBe(digest);
    expect(tapBatchDigest(fromSparseJson)).toBe(digest);
  });

  const batchChanges: Array<[string, (b: TapBatchInput) => void]> = [
    ['operatorId', (b) => (b.operatorId = 'OP-BUS-02')],
    ['batchId', (b) => (b.batchId = 'B20240501-0002')],
    ['createdAt', (b) => (b.createdAt = '2024-05-01T09:00:01+08:00')],
    ['recordCount', (b) => (b.recordCount += 1)],
    ['totalAmountFen', (b) => (b.totalAmountFen += 1n)],
    ['record order', (b) => b.records.reverse()],
    ['a record dropped', (b) => b.records.pop()],
  ];
  const recordKeys: Array<keyof TapRecordInput> = [
    'cardNo', 'cardCounter', 'txnType', 'amountFen', 'balanceBeforeFen', 'terminalId', 'terminalSeq',
    'localTime', 'keyVersion', 'tac', 'lineId', 'stationId', 'entryStationId', 'entryLocalTime',
  ];
  for (const key of recordKeys) {
    batchChanges.push([
      `records[0].${key}`,
      (b) => {
        const r = b.records[0] as unknown as Record<string, string | number>;
        r[key] = typeof r[key] === 'number' ? (r[key] as number) + 1 : `${r[key]}0`;
      },
    ]);
  }
  it.each(batchChanges)('changes when %s changes', (_name, change) => {
    const b = fullBatch();
    const changed = fullBatch();
    change(changed);
    expect(tapBatchDigest(changed)).not.toBe(tapBatchDigest(b));
  });

  it('cannot be fooled by moving characters between adjacent fields', () => {
    const a = batchOf([record({ lineId: 'AB', stationId: 'C' })]);
    const b = batchOf([record({ lineId: 'A', stationId: 'BC' })]);
    expect(tapBatchDigest(a)).not.toBe(tapBatchDigest(b));
  });
});

describe('checkWholeBatch', () => {
  const ok = () => batchOf([record(), record({ cardCounter: 42, amountFen: 300 })]);
  it('passes a good batch', () => {
    expect(() => checkWholeBatch(ok(), operator_id)).not.toThrow();
  });

  it.each<[string, TapBatchInput, string, number, Record<string, unknown> | undefined]>([
    ['another operator', ok(), 'OPERATOR_MISMATCH', 403, undefined],
    ['an empty batch_id', { ...ok(), batchId: '' }, 'BATCH_ID_INVALID', 400, undefined],
    ['a batch_id of 65 chars', { ...ok(), batchId: 'a'.repeat(65) }, 'BATCH_ID_INVALID', 400, undefined],
    ['a batch_id with a dot', { ...ok(), batchId: 'B.1' }, 'BATCH_ID_INVALID', 400, undefined],
    ['no created_at', { ...ok(), createdAt: '' }, 'CREATED_AT_INVALID', 400, undefined],
    ['created_at without offset', { ...ok(), createdAt: '2024-05-01T09:00:00' }, 'CREATED_AT_INVALID', 400, undefined],
    ['no records', batchOf([]), 'EMPTY_BATCH', 400, { expected: 1, actual: 0 }],
    [
      'record_count off by one',
      { ...ok(), recordCount: 3 },
      'RECORD_COUNT_MISMATCH',
      400,
      { field: 'record_count', expected: 2, actual: 3 },
    ],
    [
      'total off by one fen',
      { ...ok(), totalAmountFen: 499n },
      'TOTAL_AMOUNT_MISMATCH',
      400,
      { field: 'total_amount_fen', expected: '500', actual: '499' },
    ],
  ])('refuses %s', (name, batch, code, status, details) => {
    const caller = name === 'another operator' ? 'OP-BUS-02' : operator_id;
    const e = thrown(() => checkWholeBatch(batch, caller));
    expect(e.code).toBe(code);
    expect(e.status).toBe(status);
    expect(e.message).toMatch(/^[A-Z].*\.$/);
    if (details !== undefined) expect(e.details).toEqual(details);
  });

  it('never lets an empty operator_id through, even for a caller without an id', () => {
    expect(thrown(() => checkWholeBatch({ ...ok(), operatorId: '' }, '')).code).toBe('OPERATOR_MISMATCH');
  });

  it('refuses more than 50,000 records however the batch was built', () => {
    const records = new Array<TapRecordInput>(batch_records_max + 1).fill(record());
    const e = thrown(() => checkWholeBatch(batchOf(records), operator_id));
    expect(e.code).toBe('TOO_MANY_RECORDS');
    expect(e.status).toBe(413);
  });

  it('sums amounts exactly at the extremes (50,000 x 2^32-1 fen)', () => {
    const records = new Array<TapRecordInput>(batch_records_max).fill(record({ amountFen: 0xffff_ffff }));
    const b = batchOf(records);
    expect(b.totalAmountFen).toBe(214_748_364_750_000n);
    expect(() => checkWholeBatch(b, operator_id)).not.toThrow();
    expect(thrown(() => checkWholeBatch({ ...b, totalAmountFen: b.totalAmountFen - 1n }, operator_id)).code).toBe(
      'TOTAL_AMOUNT_MISMATCH',
    );
  });

  it.each([
    ['2024-05-01T09:00:00Z', true],
    ['2024-05-01t09:00:00z', true],
    ['2024-05-01T09:00:00.123456789+08:00', true],
    ['2024-02-29T23:59:60-05:30', true],
    ['2023-02-29T09:00:00Z', false],
    ['2024-13-01T09:00:00Z', false],
    ['2024-05-01T24:00:00Z', false],
    ['2024-05-01T09:60:00Z', false],
    ['2024-05-01 09:00:00Z', false],
    ['2024-05-01T09:00:00+0800', false],
    ['2024-05-01T09:00:00+24:00', false],
    ['2024-05-01T09:00:00.1234567890Z', false],
    ['2024-05-01', false],
    ['２０２４-05-01T09:00:00Z', false],
  ])('RFC 3339: %s is %s', (s, expected) => {
    expect(isRfc3339DateTime(s)).toBe(expected);
  });
});

describe('checkRecordFormat (MALFORMED)', () => {
  it('passes a good record, with and without the optional fields', () => {
    expect(checkRecordFormat(record())).toBeNull();
    for (const r of fullBatch().records) expect(checkRecordFormat(r)).toBeNull();
  });

  it('leaves amount_fen = 0 to AMOUNT_OUT_OF_RANGE', () => {
    expect(checkRecordFormat(record({ amountFen: 0 }))).toBeNull();
  });

  it.each<[string, Partial<TapRecordInput>, TapRecordFieldName | null]>([
    ['card_no of 15 digits', { cardNo: '621483001234567' }, 'card_no'],
    ['card_no of 16 digits', { cardNo: '6214830012345678' }, null],
    ['card_no of 19 digits', { cardNo: '6214830012345678901' }, null],
    ['card_no of 20 digits', { cardNo: '62148300123456789012' }, 'card_no'],
    ['card_no with a letter', { cardNo: '621483001234567X' }, 'card_no'],
    ['card_no with a space', { cardNo: '6214 830012345678' }, 'card_no'],
    ['card_no with full-width digits', { cardNo: '６２１４８３００１２３４５６７８' }, 'card_no'],
    ['card_no empty', { cardNo: '' }, 'card_no'],
    ['card_counter max uint32', { cardCounter: 0xffff_ffff }, null],
    ['card_counter 0', { cardCounter: 0 }, null],
    ['card_counter over uint32', { cardCounter: 2 ** 32 }, 'card_counter'],
    ['card_counter negative', { cardCounter: -1 }, 'card_counter'],
    ['card_counter fractional', { cardCounter: 1.5 }, 'card_counter'],
    ['txn_type 6', { txnType: 6 }, null],
    ['txn_type 9', { txnType: 9 }, null],
    ['txn_type 0', { txnType: 0 }, 'txn_type'],
    ['txn_type 7', { txnType: 7 }, 'txn_type'],
    ['amount_fen NaN', { amountFen: Number.NaN }, 'amount_fen'],
    ['balance_before_fen negative', { balanceBeforeFen: -1 }, 'balance_before_fen'],
    ['terminal_id of 11 digits', { terminalId: '31010000012' }, 'terminal_id'],
    ['terminal_id of 13 digits', { terminalId: '3101000001234' }, 'terminal_id'],
    ['terminal_id with hex', { terminalId: '31010000012A' }, 'terminal_id'],
    ['terminal_seq max uint32', { terminalSeq: 0xffff_ffff }, null],
    ['terminal_seq over uint32', { terminalSeq: 2 ** 32 }, 'terminal_seq'],
    ['local_time empty', { localTime: '' }, 'local_time'],
    ['local_time of 13 digits', { localTime: '2024050108300' }, 'local_time'],
    ['local_time of 15 digits', { localTime: '202405010830000' }, 'local_time'],
    ['local_time with separators', { localTime: '2024-05-01 08:3' }, 'local_time'],
    ['local_time ISO', { localTime: '20240501T08300' }, 'local_time'],
    ['local_time on 29 Feb of a leap year', { localTime: '20240229235959' }, null],
    ['local_time on 29 Feb 2000', { localTime: '20000229000000' }, null],
    ['local_time on 29 Feb 1900', { localTime: '19000229000000' }, 'local_time'],
    ['local_time on 29 Feb 2023', { localTime: '20230229000000' }, 'local_time'],
    ['local_time on 31 April', { localTime: '20240431000000' }, 'local_time'],
    ['local_time month 00', { localTime: '20240001000000' }, 'local_time'],
    ['local_time month 13', { localTime: '20241301000000' }, 'local_time'],
    ['local_time day 00', { localTime: '20240500000000' }, 'local_time'],
    ['local_time hour 24', { localTime: '20240501240000' }, 'local_time'],
    ['local_time minute 60', { localTime: '20240501086000' }, 'local_time'],
    ['local_time second 60', { localTime: '20240501083060' }, 'local_time'],
    ['local_time year 0000', { localTime: '00000101000000' }, 'local_time'],
    ['local_time year 0001', { localTime: '00010101000000' }, null],
    ['key_version 0', { keyVersion: 0 }, 'key_version'],
    ['key_version 1', { keyVersion: 1 }, null],
    ['key_version 255', { keyVersion: 255 }, null],
    ['key_version 256', { keyVersion: 256 }, 'key_version'],
    ['tac lowercase', { tac: '1a2b3c4d' }, 'tac'],
    ['tac of 7 chars', { tac: '1A2B3C4' }, 'tac'],
    ['tac of 9 chars', { tac: '1A2B3C4D5' }, 'tac'],
    ['tac not hex', { tac: '1A2B3C4G' }, 'tac'],
    ['tac empty', { tac: '' }, 'tac'],
    ['line_id of 64 chars', { lineId: 'L'.repeat(64) }, null],
    ['line_id of 65 chars', { lineId: 'L'.repeat(65) }, 'line_id'],
    ['station_id of 64 chars', { stationId: 'S'.repeat(64) }, null],
    ['station_id of 65 chars', { stationId: 'S'.repeat(65) }, 'station_id'],
    ['entry_station_id of 64 chars', { entryStationId: 'E'.repeat(64) }, null],
    ['entry_station_id of 65 chars', { entryStationId: 'E'.repeat(65) }, 'entry_station_id'],
    ['entry_local_time absent', { entryLocalTime: '' }, null],
    ['entry_local_time valid', { entryLocalTime: '20240501081500' }, null],
    ['entry_local_time not a date', { entryLocalTime: '20240532081500' }, 'entry_local_time'],
    ['entry_local_time too short', { entryLocalTime: '202405010815' }, 'entry_local_time'],
    ['two bad fields: the first in tag order wins', { tac: 'x', cardNo: 'x' }, 'card_no'],
  ])('%s -> %s', (_name, patch, expected) => {
    expect(checkRecordFormat(record(patch))).toBe(expected);
  });

  it('checks a whole batch, index by index', () => {
    expect(checkRecordFormats([record(), record({ tac: 'bad' }), record()])).toEqual([null, 'tac', null]);
  });
});

describe('parseLocalTime', () => {
  it('reads Asia/Shanghai wall-clock time as UTC+8', () => {
    expect(parseLocalTime('20240501083000')).toBe(Date.UTC(2024, 4, 1, 0, 30, 0));
    expect(parseLocalTime('19700101080000')).toBe(0);
    expect(parseLocalTime('20000101000000')).toBe(Date.parse('1999-12-31T16:00:00Z'));
    // Midsummer: no daylight saving, the offset stays +8.
    expect(parseLocalTime('20230715120000')).toBe(Date.parse('2023-07-15T12:00:00+08:00'));
    expect(parseLocalTime('20241231235959')).toBe(Date.parse('2024-12-31T23:59:59+08:00'));
  });

  it('handles years below 100 without the Date.UTC 19xx trap', () => {
    const d = new Date(0);
    d.setUTCFullYear(1, 0, 1);
    d.setUTCHours(0, 0, 0, 0);
    expect(parseLocalTime('00010101080000')).toBe(d.getTime());
  });

  it('agrees with Date over many days', () => {
    for (let t = Date.UTC(1995, 0, 1); t < Date.UTC(2040, 0, 1); t += 86_400_000 * 7 + 3_661_000) {
      const wall = new Date(t + 8 * 3_600_000).toISOString(); // Shanghai wall clock
      const s = wall.slice(0, 19).replace(/[-T:]/g, '');
      expect(parseLocalTime(s)).toBe(t);
    }
  });

  it('returns null for a malformed time, and localTimeEpochMs throws for it', () => {
    expect(parseLocalTime('20240230000000')).toBeNull();
    expect(parseLocalTime('2024050108300a')).toBeNull();
    expect(() => localTimeEpochMs('nope')).toThrow(Error);
    expect(localTimeEpochMs('20240501083000')).toBe(Date.UTC(2024, 4, 1, 0, 30, 0));
  });
});
