// Whatever an operator's client sends, the batch decoders and checks answer with a 4xx
// DomainError or a batch, never another exception (a 500, or a crash of the upload route).
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../engine/errors.ts';
import { checkRecordFormats, checkWholeBatch } from '../engine/ingest/tap-batch.ts';
import type { TapBatchInput, TapRecordInput } from '../engine/ingest/tap-batch.ts';
import {
  decodeTapBatchJson,
  decodeTapBatchJsonText,
  decodeTapBatchProtobuf,
  encodeTapBatchProtobuf,
  tapBatchDigest,
} from '../adapters/protobuf/tap-batch-codec.ts';

const body_bytes_max = 64 * 1024;
const operator_id = 'OP-BUS-01';
const runs = 2_000;

function record(i: number): TapRecordInput {
  return {
    cardNo: '6214830012345678',
    cardCounter: 41 + i,
    txnType: 9,
    amountFen: 200 + i,
    balanceBeforeFen: 5_000,
    terminalId: '310100000123',
    terminalSeq: 7_001 + i,
    localTime: '20240501083000',
    keyVersion: 3,
    tac: '1A2B3C4D',
    lineId: 'L57',
    stationId: 'ST-0012',
    entryStationId: i % 2 === 0 ? 'ST-0001' : '',
    entryLocalTime: i % 2 === 0 ? '20240501081500' : '',
  };
}

function validBatch(): TapBatchInput {
  const records = [record(0), record(1), record(2)];
  return {
    operatorId: operator_id,
    batchId: 'B20240501-0001',
    createdAt: '2024-05-01T09:00:00+08:00',
    recordCount: 3,
    totalAmountFen: 603n,
    records,
  };
}

/** Everything after decoding that an upload runs before touching the database. */
function processDecoded(b: TapBatchInput): void {
  checkWholeBatch(b, operator_id);
  checkRecordFormats(b.records);
  tapBatchDigest(b);
}

/** Runs fn; passes if it returns or throws a DomainError with a 4xx status, fails otherwise. */
function onlyClientErrors(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof DomainError)) throw new Error(`not a DomainError: ${String(e)}`, { cause: e });
    expect(e.status).toBeGreaterThanOrEqual(400);
    expect(e.status).toBeLessThan(500);
    expect(typeof e.code).toBe('string');
    expect(JSON.stringify(e.details ?? {})).toBeTypeOf('string'); // details must be serializable
  }
}

function decodeProtobufAndProcess(bytes: Uint8Array): void {
  onlyClientErrors(() => {
    const b = decodeTapBatchProtobuf(Buffer.from(bytes), body_bytes_max);
    // A batch that decodes must be processable, even where the checks refuse it.
    onlyClientErrors(() => processDecoded(b));
  });
}

function decodeJsonAndProcess(body: unknown): void {
  onlyClientErrors(() => {
    const b = decodeTapBatchJson(body);
    onlyClientErrors(() => processDecoded(b));
  });
}

describe('protobuf decoder fuzz', () => {
  const valid = encodeTapBatchProtobuf(validBatch());

  it('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), decodeProtobufAndProcess), { numRuns: runs });
  });

  it('a valid batch with bytes overwritten, inserted or cut', () => {
    const mutation = fc.tuple(
      fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
      fc.nat(valid.length),
      fc.uint8Array({ maxLength: 16 }),
      fc.nat(valid.length),
    );
    fc.assert(
      fc.property(mutation, ([writes, insertAt, inserted, cutAt]) => {
        const bytes = Buffer.from(valid);
        for (const [at, byte] of writes) bytes[at] = byte;
        const spliced = Buffer.concat([bytes.subarray(0, insertAt), inserted, bytes.subarray(insertAt)]);
        decodeProtobufAndProcess(spliced);
        decodeProtobufAndProcess(bytes.subarray(0, cutAt));
      }),
      { numRuns: runs },
    );
  });

  it('random bytes after a prefix long enough to need the record-counting pass', () => {
    // An unknown field (tag 15) of 120,000 bytes: over 2 x 50,001 bytes, the size from which the
    // decoder counts records before decoding them.
    const padding = protobuf.Writer.create().uint32((15 << 3) | 2).bytes(new Uint8Array(120_000)).finish();
    const prefix = Buffer.concat([valid, padding]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => {
        const bytes = Buffer.concat([prefix, tail]);
        onlyClientErrors(() => decodeTapBatchProtobuf(bytes, 1024 * 1024));
      }),
      { numRuns: 300 },
    );
  });

  it('random field numbers and wire types after a valid prefix', () => {
    const field = fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 7 }), fc.uint8Array({ maxLength: 24 }));
    fc.assert(
      fc.property(fc.array(field, { maxLength: 8 }), (fields) => {
        const parts: Buffer[] = [valid];
        for (const [no, wire, payload] of fields) parts.push(Buffer.from([(no << 3) | wire]), Buffer.from([payload.length]), Buffer.from(payload));
        decodeProtobufAndProcess(Buffer.concat(parts));
      }),
      { numRuns: runs },
    );
  });
});

describe('JSON decoder fuzz', () => {
  it('any JSON value', () => {
    fc.assert(fc.property(fc.jsonValue(), decodeJsonAndProcess), { numRuns: runs });
  });

  it('any string as raw JSON text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.json()), (text) => {
        onlyClientErrors(() => processDecoded(decodeTapBatchJsonText(text, body_bytes_max)));
      }),
      { numRuns: runs },
    );
  });

  const batchKeys = ['operatorId', 'batchId', 'createdAt', 'recordCount', 'totalAmountFen', 'records'];
  const recordKeys = Object.keys(record(0));
  const anyValue = fc.oneof(
    fc.jsonValue(),
    fc.constantFrom(-1, 0, 1.5, 2 ** 32, 2 ** 53, -0, 1e308, '', '0', '-1', '18446744073709551616', null),
    fc.string({ unit: 'binary', maxLength: 80 }),
  );
  type Mutation =
    | { kind: 'set'; onRecord: number | null; key: string; value: unknown }
    | { kind: 'delete'; onRecord: number | null; key: string };
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({
      kind: fc.constant('set' as const),
      onRecord: fc.constant(null),
      key: fc.oneof(fc.constantFrom(...batchKeys), fc.string({ maxLength: 12 })),
      value: anyValue,
    }),
    fc.record({
      kind: fc.constant('set' as const),
      onRecord: fc.nat(3),
      key: fc.oneof(fc.constantFrom(...recordKeys), fc.string({ maxLength: 12 })),
      value: anyValue,
    }),
    fc.record({ kind: fc.constant('delete' as const), onRecord: fc.constant(null), key: fc.constantFrom(...batchKeys) }),
    fc.record({ kind: fc.constant('delete' as const), onRecord: fc.nat(3), key: fc.constantFrom(...recordKeys) }),
  );

  it('a valid batch with fields replaced, added or removed', () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 5 }), fc.boolean(), (mutations, viaText) => {
        const b = validBatch();
        const body: Record<string, unknown> = { ...b, totalAmountFen: b.totalAmountFen.toString() };
        const records = b.records.map((r) => ({ ...r }) as Record<string, unknown>);
        body.records = records;
        for (const m of mutations) {
          const target = m.onRecord === null ? body : records[m.onRecord % records.length];
          if (m.kind === 'set') target[m.key] = m.value;
          else delete target[m.key];
        }
        if (viaText) {
          // Round-trip through text too: __proto__ keys and lone surrogates survive differently.
          let text: string;
          try {
            text = JSON.stringify(body);
          } catch {
            return; // not representable as JSON text (cannot happen for jsonValue, kept for safety)
          }
          onlyClientErrors(() => processDecoded(decodeTapBatchJsonText(text, body_bytes_max)));
        } else {
          decodeJsonAndProcess(body);
        }
      }),
      { numRuns: runs },
    );
  });

  it('the same valid batch through both decoders gives one digest', () => {
    const b = validBatch();
    const fromProto = decodeTapBatchProtobuf(encodeTapBatchProtobuf(b), body_bytes_max);
    const fromJson = decodeTapBatchJson({ ...b, totalAmountFen: Number(b.totalAmountFen) });
    expect(tapBatchDigest(fromJson)).toBe(tapBatchDigest(fromProto));
  });
});
