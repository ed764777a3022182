/**
 * Fuzzing the upload route with fast-check: random bytes, random JSON, bit-flipped protobuf, and
 * batches with random (often malformed) fields, in both formats. Whatever is sent, the engine
 * never answers 5xx; a refusal (4xx) writes nothing; an accepted upload keeps exactly one record
 * row per record sent and its receipt adds up.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeTapBatchProtobuf } from '../adapters/protobuf/tap-batch-codec.ts';
import type { TapBatchInput, TapRecordInput } from '../engine/ingest/index.ts';
import { Ledger } from '../ledger/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import {
  batchJson, batchOf, fundPurses, movableClock, rawUpload, seedTransit, shanghaiInstant, tap, transitApp, writtenCounts,
  type ReceiptJson, type TransitTestApp,
} from './support/transit-fixtures.ts';

let db: TestDb;
let t: TransitTestApp;
let token = '';
const clock = movableClock(shanghaiInstant('20261129100000'));
const cards = ['6217001234567890123', '6230580000000000018', '6217000000000000001'];
const terminals = ['420300000101', '420300000102'];
let batchSeq = 0;
const nextBatchId = () => `FUZZ-${batchSeq++}`;

beforeAll(async () => {
  db = await freshDatabase(6);
  await seedTransit(db.pool, {
    operators: [{ id: 'OPA' }], terminals: terminals.map((id) => ({ id, operatorId: 'OPA' })), cards: cards.map((cardNo) => ({ cardNo })),
  });
  await fundPurses(db.pool, cards.slice(0, 2).map((cardNo) => ({ cardNo, amountFen: 100_000n })));
  t = await transitApp(db.pool, clock);
  token = await t.token('operator', 'OPA');
});

afterAll(async () => {
  await t?.app.close();
  await db?.drop();
});

/** Sends, then checks the contract whatever the answer. */
async function sendAndCheck(body: Buffer | string, contentType: string, recordsSent: number | null): Promise<number> {
  const before = await writtenCounts(db.pool);
  const r = await rawUpload(t.app, token, body, contentType);
  expect(r.statusCode, r.body.slice(0, 500)).toBeLessThan(500);
  const after = await writtenCounts(db.pool);
  if (r.statusCode >= 400) {
    const e = r.json() as { code: unknown; message: unknown };
    expect(typeof e.code).toBe('string');
    expect(typeof e.message).toBe('string');
    expect(after).toEqual(before);
  } else {
    const receipt = r.json() as ReceiptJson;
    const added = after.records - before.records;
    // A replay of an earlier fuzz batch adds nothing; an applied batch adds every record.
    if (r.headers['idempotent-replayed'] === 'false') {
      expect(added).toBe(BigInt(receipt.acceptedCount + receipt.rejectedCount));
      if (recordsSent !== null) expect(receipt.acceptedCount + receipt.rejectedCount).toBe(recordsSent);
      expect(after.entries - before.entries).toBe(BigInt(receipt.acceptedCount));
    } else {
      expect(after).toEqual(before);
    }
    expect(receipt.rejections.length).toBe(receipt.rejectedCount);
  }
  return r.statusCode;
}

const weirdString = fc.oneof(
  fc.string({ maxLength: 24 }),
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.constantFrom('', '\u0000', 'A\tB\nC\\D', '"quoted"', '{1,2}', 'x'.repeat(65), '站点', '6217001234567890123', '420300000101', '20261129090000', 'ABCDEF01'),
);
const uint32ish = fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.constantFrom(0, 1, 6, 9, 255, 20_000, 20_001, 0xffff_ffff));

/** A record: mostly a genuine tap, with some fields replaced by random values. */
const recordArb: fc.Arbitrary<TapRecordInput> = fc.record({
  base: fc.record({ card: fc.integer({ min: 0, max: cards.length - 1 }), counter: fc.integer({ min: 1, max: 1_000_000 }), terminal: fc.integer({ min: 0, max: 1 }), seq: fc.integer({ min: 1, max: 1_000_000 }), amount: fc.integer({ min: 1, max: 500 }) }),
  // No change, only the free-text ids changed (the record may still be accepted), or any fields.
  overrides: fc.oneof(
    fc.constant({}),
    fc.record({ lineId: weirdString, stationId: weirdString, entryStationId: weirdString }, { requiredKeys: [] }),
    fc.record({
      cardNo: weirdString, cardCounter: uint32ish, txnType: uint32ish, amountFen: uint32ish, balanceBeforeFen: uint32ish,
      terminalId: weirdString, terminalSeq: uint32ish, localTime: weirdString, keyVersion: uint32ish, tac: weirdString,
      lineId: weirdString, stationId: weirdString, entryStationId: weirdString, entryLocalTime: weirdString,
    }, { requiredKeys: [] }),
  ),
}).map(({ base, overrides }) => ({
  ...tap({ cardNo: cards[base.card], cardCounter: base.counter, terminalId: terminals[base.terminal], terminalSeq: base.seq, localTime: '20261129090000', amountFen: base.amount }),
  ...overrides,
}));

const batchArb: fc.Arbitrary<TapBatchInput> = fc.record({
  records: fc.array(recordArb, { minLength: 0, maxLength: 6 }),
  countDelta: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -2, max: 2 })),
  totalDelta: fc.oneof(fc.constant(0n), fc.constant(0n), fc.bigInt({ min: -3n, max: 3n })),
  operatorId: fc.oneof(fc.constant('OPA'), fc.constant('OPA'), weirdString),
  createdAt: fc.oneof(fc.constant('2026-11-29T09:00:00+08:00'), weirdString),
}).map(({ records, countDelta, totalDelta, operatorId, createdAt }) => {
  const b = batchOf('OPA', nextBatchId(), records, createdAt);
  const total = b.totalAmountFen + totalDelta;
  return { ...b, operatorId, recordCount: Math.max(0, b.recordCount + countDelta), totalAmountFen: total < 0n ? 0n : total };
});

describe('the upload route under fuzzing', () => {
  it('random bytes as protobuf: never 5xx, nothing written on refusal', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (bytes) => {
      await sendAndCheck(Buffer.from(bytes), 'application/x-protobuf', null);
    }), { numRuns: 150 });
  });

  it('random JSON values: never 5xx, nothing written on refusal', async () => {
    await fc.assert(fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), async (v) => {
      await sendAndCheck(JSON.stringify(v) ?? 'null', 'application/json', null);
    }), { numRuns: 150 });
  });

  it('batches with random fields, in both formats: never 5xx; refusals write nothing; accepted uploads add up', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(fc.asyncProperty(batchArb, fc.boolean(), async (b, asJson) => {
      let body: Buffer | string;
      try {
        body = asJson ? batchJson(b) : encodeTapBatchProtobuf(b);
      } catch {
        return; // not representable in this format (e.g. a total over uint64)
      }
      const s = await sendAndCheck(body, asJson ? 'application/json' : 'application/x-protobuf', b.records.length);
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
    }), { numRuns: 300 });
    // The generator reaches both sides of the contract.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(10);
    expect([...statuses.keys()].some((s) => s >= 400)).toBe(true);
  });

  it('bit-flipped protobuf of a genuine batch: never 5xx, nothing written on refusal', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 7 }), async (positions, bit) => {
      const records = [0, 1, 2].map((i) => tap({ cardNo: cards[i % 2], cardCounter: 2_000_000 + batchSeq * 3 + i, terminalId: terminals[i % 2], terminalSeq: 2_000_000 + batchSeq * 3 + i, localTime: '20261129090000' }));
      const bytes = Buffer.from(encodeTapBatchProtobuf(batchOf('OPA', nextBatchId(), records)));
      for (const p of positions) bytes[p % bytes.length] ^= 1 << bit;
      await sendAndCheck(bytes, 'application/x-protobuf', null);
    }), { numRuns: 150 });
  });

  it('leaves a ledger that verifies, having accepted taps whose free-text ids needed escaping', async () => {
    const v = await new Ledger().verify(db.pool);
    expect(v.ok).toBe(true);
    const r = await db.pool.query<{ accepted: bigint; escaped: bigint }>(`
      SELECT count(*)::bigint AS accepted,
             count(*) FILTER (WHERE concat(line_id, station_id, entry_station_id) ~ '[\\t\\n\\\\"{},]')::bigint AS escaped
      FROM tap_record WHERE outcome = 'ACCEPTED'`);
    expect(r.rows[0].accepted).toBeGreaterThan(20n);
    expect(r.rows[0].escaped).toBeGreaterThan(0n);
  });
});
