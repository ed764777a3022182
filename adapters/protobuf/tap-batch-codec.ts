/**
 * Wire formats of a transit tap batch (TRANSIT-BATCH.md): protobuf (`tap_batch.proto`) and JSON
 * (the same fields in lowerCamelCase). Both decode to the one `TapBatchInput` of
 * engine/ingest/tap-batch.ts, so nothing after this module knows which format arrived, and
 * `tapBatchDigest` gives the same batch the same digest either way (the idempotency check).
 *
 * Decoding never throws anything but a 4xx DomainError on bad input, and bounds its work before
 * it starts: the body size is checked against the caller's limit before a byte is read, and the
 * record count before any record object is built.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import type { Type } from 'protobufjs';
import { DomainError } from '../../engine/errors.ts';
import {
  batch_records_max,
  bodyTooLarge,
  malformedBody,
  tooManyRecords,
  uint32_max,
  uint64_max,
} from '../../engine/ingest/tap-batch.ts';
import type { TapBatchInput, TapRecordInput } from '../../engine/ingest/tap-batch.ts';

export const tap_batch_protobuf_content_type = 'application/x-protobuf';

/**
 * Suggested body limits for the route (the caller passes its configured one). A record with
 * every field at its longest well-formed length is 307 protobuf bytes (the 64-char optional ids
 * dominate), so 50,000 of them fit 15.4 MB; 16 MiB leaves room for the header. The same record
 * as JSON is about 515 bytes, 640 with pretty-printing: 32 MiB.
 */
export const suggested_protobuf_body_bytes_max = 16 * 1024 * 1024;
export const suggested_json_body_bytes_max = 32 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Schema, loaded once
// ---------------------------------------------------------------------------------------------

// Parsed from the .proto text ourselves rather than with protobuf.loadSync, whose file access
// goes through protobufjs' own fs detection; a URL relative to this module works under node,
// tsx and vitest alike. Field names become lowerCamelCase, the JSON names of the spec.
const proto_source = readFileSync(new URL('./tap_batch.proto', import.meta.url), 'utf8');
const proto_root = protobuf.parse(proto_source, { keepCase: false }).root;
proto_root.resolveAll();

const TapBatchType: Type = proto_root.lookupType('onecard.transit.v1.TapBatch');
const TapRecordType: Type = proto_root.lookupType('onecard.transit.v1.TapRecord');
const TapReceiptType: Type = proto_root.lookupType('onecard.transit.v1.TapReceipt');
const TapRejectionType: Type = proto_root.lookupType('onecard.transit.v1.TapRejection');

/** Tag of `TapBatch.records`. */
const records_tag = 6;

/**
 * The spec's tags and types (and the receipt's), restated and checked against the .proto at
 * load: the casts from decoded messages to the Wire* interfaces below are only sound if the
 * schema is exactly this, and a renumbered tag would silently break every operator's client.
 */
const expected_schema: ReadonlyArray<readonly [Type, ReadonlyArray<readonly [string, number, string, boolean]>]> = [
  [
    TapBatchType,
    [
      ['operatorId', 1, 'string', false],
      ['batchId', 2, 'string', false],
      ['createdAt', 3, 'string', false],
      ['recordCount', 4, 'uint32', false],
      ['totalAmountFen', 5, 'uint64', false],
      ['records', records_tag, 'TapRecord', true],
    ],
  ],
  [
    TapRecordType,
    [
      ['cardNo', 1, 'string', false],
      ['cardCounter', 2, 'uint32', false],
      ['txnType', 3, 'uint32', false],
      ['amountFen', 4, 'uint32', false],
      ['balanceBeforeFen', 5, 'uint32', false],
      ['terminalId', 6, 'string', false],
      ['terminalSeq', 7, 'uint32', false],
      ['localTime', 8, 'string', false],
      ['keyVersion', 9, 'uint32', false],
      ['tac', 10, 'string', false],
      ['lineId', 11, 'string', false],
      ['stationId', 12, 'string', false],
      ['entryStationId', 13, 'string', false],
      ['entryLocalTime', 14, 'string', false],
    ],
  ],
  [
    TapReceiptType,
    [
      ['operatorId', 1, 'string', false],
      ['batchId', 2, 'string', false],
      ['receivedAt', 3, 'string', false],
      ['clearingCycleId', 4, 'string', false],
      ['acceptedCount', 5, 'uint32', false],
      ['acceptedAmountFen', 6, 'uint64', false],
      ['rejectedCount', 7, 'uint32', false],
      ['rejectedAmountFen', 8, 'uint64', false],
      ['rejections', 9, 'TapRejection', true],
    ],
  ],
  [
    TapRejectionType,
    [
      ['index', 1, 'uint32', false],
      ['reason', 2, 'string', false],
    ],
  ],
];
for (const [type, fields] of expected_schema) {
  if (type.fieldsArray.length !== fields.length) {
    throw new Error(`tap_batch.proto: ${type.name} has ${type.fieldsArray.length} fields, expected ${fields.length}`);
  }
  for (const [name, id, fieldType, repeated] of fields) {
    const f = type.fields[name];
    if (f === undefined || f.id !== id || f.type !== fieldType || f.repeated !== repeated) {
      throw new Error(`tap_batch.proto: ${type.name}.${name} must be ${repeated ? 'repeated ' : ''}${fieldType} = ${id}`);
    }
  }
}
// Without the `long` package protobufjs reads a uint64 as a lossy JS number; totals must be exact.
if (!protobuf.util.Long) throw new Error('protobufjs cannot hold uint64 exactly: the long package is missing');

/** A uint64 as protobufjs hands it over: a Long (low/high 32-bit halves) when `long` is present. */
type WireUint64 = number | { low: number; high: number };

/** A decoded TapBatch message (own fields, or proto3 defaults inherited from its prototype). */
interface WireTapBatch {
  operatorId: string;
  batchId: string;
  createdAt: string;
  recordCount: number;
  totalAmountFen: WireUint64;
  records: TapRecordInput[];
}

// ---------------------------------------------------------------------------------------------
// Protobuf
// ---------------------------------------------------------------------------------------------

/**
 * Every record costs at least 2 bytes on the wire (tag and length), so a body shorter than this
 * cannot hold more than batch_records_max records and needs no counting pass.
 */
const record_wire_bytes_min = 2;
const count_pass_body_bytes_min = (batch_records_max + 1) * record_wire_bytes_min;

/**
 * Decodes an `application/x-protobuf` TapBatch. Refuses a body over `bodyBytesMax` before
 * reading it (BODY_TOO_LARGE), and more than batch_records_max records before building any
 * (TOO_MANY_RECORDS): protobufjs' generated decoder has no limit on a repeated field and would
 * push every record into one array, so a first pass over the top-level fields counts the records
 * by skipping their bytes, and only a batch within the limit is decoded.
 * Unknown fields are skipped, as proto3 requires; a known tag with the wrong wire type is treated
 * as unknown (protoc does the same), so the field keeps its default. Strings must be valid UTF-8.
 */
export function decodeTapBatchProtobuf(buf: Uint8Array, bodyBytesMax: number): TapBatchInput {
  if (!(buf instanceof Uint8Array)) throw malformedBody('the body is not binary data');
  if (buf.length > bodyBytesMax) throw bodyTooLarge(buf.length, bodyBytesMax);
  if (buf.length >= count_pass_body_bytes_min) {
    const recordsOnWire = countWireRecords(buf);
    if (recordsOnWire > batch_records_max) throw tooManyRecords(recordsOnWire);
  }
  let message: WireTapBatch;
  try {
    // Sound by the schema check at load: the message has exactly the WireTapBatch fields.
    message = TapBatchType.decode(buf) as unknown as WireTapBatch;
  } catch (e) {
    throw malformedBody(`not a protobuf TapBatch (${wireErrorReason(e)})`);
  }
  return fromWire(message);
}

/**
 * Number of `records` fields in a TapBatch body (each occurrence is one record to the decoder),
 * skipping their bytes unread: about 0.6 ms for a 5 MB body, so it counts to the end and the
 * refusal can state the exact number.
 */
function countWireRecords(buf: Uint8Array): number {
  const reader = protobuf.Reader.create(buf);
  let count = 0;
  try {
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      const field = tag >>> 3;
      const wireType = tag & 7;
      if (field === records_tag && wireType === 2) count++;
      reader.skipType(wireType, 0, field);
    }
  } catch (e) {
    throw malformedBody(`not a protobuf TapBatch (${wireErrorReason(e)})`);
  }
  return count;
}

function fromWire(m: WireTapBatch): TapBatchInput {
  const wireRecords = m.records;
  const n = wireRecords.length;
  // Copied to plain objects: a decoded message keeps proto3 defaults on its prototype, which a
  // spread or Object.keys would silently drop further down the line.
  const records = new Array<TapRecordInput>(n);
  for (let i = 0; i < n; i++) {
    const w = wireRecords[i];
    records[i] = {
      cardNo: w.cardNo,
      cardCounter: w.cardCounter,
      txnType: w.txnType,
      amountFen: w.amountFen,
      balanceBeforeFen: w.balanceBeforeFen,
      terminalId: w.terminalId,
      terminalSeq: w.terminalSeq,
      localTime: w.localTime,
      keyVersion: w.keyVersion,
      tac: w.tac,
      lineId: w.lineId,
      stationId: w.stationId,
      entryStationId: w.entryStationId,
      entryLocalTime: w.entryLocalTime,
    };
  }
  return {
    operatorId: m.operatorId,
    batchId: m.batchId,
    createdAt: m.createdAt,
    recordCount: m.recordCount,
    totalAmountFen: uint64ToBigint(m.totalAmountFen),
    records,
  };
}

function uint64ToBigint(v: WireUint64): bigint {
  if (typeof v === 'number') return BigInt(v);
  return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
}

function bigintToUint64(v: bigint, name: string): { low: number; high: number; unsigned: true } {
  if (v < 0n || v > uint64_max) throw new RangeError(`${name} is not a uint64: ${v}`);
  return { low: Number(v & 0xffff_ffffn) | 0, high: Number(v >> 32n) | 0, unsigned: true };
}

/** protobufjs' reason (index out of range, invalid wire type, invalid utf8...), kept short. */
function wireErrorReason(e: unknown): string {
  const text = e instanceof Error ? e.message : 'undecodable';
  return text.length > 120 ? `${text.slice(0, 120)}...` : text;
}

/** Encodes a batch as protobuf: for tests, benchmarks and client examples. */
export function encodeTapBatchProtobuf(batch: TapBatchInput): Buffer {
  const message = {
    operatorId: batch.operatorId,
    batchId: batch.batchId,
    createdAt: batch.createdAt,
    recordCount: batch.recordCount,
    totalAmountFen: bigintToUint64(batch.totalAmountFen, 'totalAmountFen'),
    records: batch.records,
  };
  const bytes = TapBatchType.encode(message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

const batch_json_keys: ReadonlySet<string> = new Set([
  'operatorId',
  'batchId',
  'createdAt',
  'recordCount',
  'totalAmountFen',
  'records',
]);
const record_json_keys: ReadonlySet<string> = new Set([
  'cardNo',
  'cardCounter',
  'txnType',
  'amountFen',
  'balanceBeforeFen',
  'terminalId',
  'terminalSeq',
  'localTime',
  'keyVersion',
  'tac',
  'lineId',
  'stationId',
  'entryStationId',
  'entryLocalTime',
]);

/** The spec allows a 64-bit number as a JSON string; only plain decimal digits, no sign. */
const uint64_decimal_pattern = /^(?:0|[1-9][0-9]{0,19})$/;
/**
 * A lone UTF-16 surrogate: legal in a JSON string, impossible in UTF-8 and so in protobuf, and
 * mangled by Postgres. Refused so that both formats carry exactly the same set of strings.
 */
const lone_surrogate_pattern = /\p{Cs}/u;

const utf8_strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes an `application/json` body given as raw text or bytes: refuses it over `bodyBytesMax`
 * before parsing, then as decodeTapBatchJson. Bytes must be valid UTF-8 (as protobuf strings must).
 */
export function decodeTapBatchJsonText(text: string | Uint8Array, bodyBytesMax: number): TapBatchInput {
  let source: string;
  if (typeof text === 'string') {
    // A UTF-16 length over the limit is already too many UTF-8 bytes; only count when it may fit.
    const bytes = text.length > bodyBytesMax ? text.length : Buffer.byteLength(text, 'utf8');
    if (bytes > bodyBytesMax) throw bodyTooLarge(bytes, bodyBytesMax);
    source = text;
  } else if (text instanceof Uint8Array) {
    if (text.length > bodyBytesMax) throw bodyTooLarge(text.length, bodyBytesMax);
    try {
      source = utf8_strict.decode(text);
    } catch {
      throw malformedBody('the body is not valid UTF-8');
    }
  } else {
    throw malformedBody('the body is not text');
  }
  let body: unknown;
  try {
    body = JSON.parse(source);
  } catch {
    throw malformedBody('the body is not valid JSON');
  }
  return decodeTapBatchJson(body);
}

/**
 * Decodes an already-parsed JSON body (e.g. by fastify, which enforces its own bodyLimit).
 * Strict where the spec is: lowerCamelCase names only (an unknown or snake_case name is refused,
 * naming it, rather than silently read as a default), uint32 fields as JSON integers, and
 * total_amount_fen as a JSON integer or a decimal string. Liberal where proto3 JSON is: a missing
 * field or a null takes the proto3 default ('' or 0). A JSON number above 2^53 - 1 is refused,
 * because JSON.parse has already rounded it and the exact total cannot be known.
 */
export function decodeTapBatchJson(body: unknown): TapBatchInput {
  const o = asObject(body, 'the body');
  for (const key in o) {
    if (!batch_json_keys.has(key)) throw unknownField(key, undefined);
  }
  const operatorId = jsonString(o.operatorId, 'operatorId', -1);
  const batchId = jsonString(o.batchId, 'batchId', -1);
  const createdAt = jsonString(o.createdAt, 'createdAt', -1);
  const recordCount = jsonUint32(o.recordCount, 'recordCount', -1);
  const totalAmountFen = jsonUint64(o.totalAmountFen, 'totalAmountFen');

  const rawRecords = o.records;
  let records: TapRecordInput[];
  if (rawRecords === undefined || rawRecords === null) {
    records = [];
  } else if (Array.isArray(rawRecords)) {
    if (rawRecords.length > batch_records_max) throw tooManyRecords(rawRecords.length);
    const n = rawRecords.length;
    records = new Array<TapRecordInput>(n);
    for (let i = 0; i < n; i++) records[i] = jsonRecord(rawRecords[i], i);
  } else {
    throw malformedBody('expected an array of records', 'records');
  }
  return { operatorId, batchId, createdAt, recordCount, totalAmountFen, records };
}

function jsonRecord(value: unknown, i: number): TapRecordInput {
  const r = asObject(value, `records[${i}]`);
  for (const key in r) {
    if (!record_json_keys.has(key)) throw unknownField(key, i);
  }
  return {
    cardNo: jsonString(r.cardNo, 'cardNo', i),
    cardCounter: jsonUint32(r.cardCounter, 'cardCounter', i),
    txnType: jsonUint32(r.txnType, 'txnType', i),
    amountFen: jsonUint32(r.amountFen, 'amountFen', i),
    balanceBeforeFen: jsonUint32(r.balanceBeforeFen, 'balanceBeforeFen', i),
    terminalId: jsonString(r.terminalId, 'terminalId', i),
    terminalSeq: jsonUint32(r.terminalSeq, 'terminalSeq', i),
    localTime: jsonString(r.localTime, 'localTime', i),
    keyVersion: jsonUint32(r.keyVersion, 'keyVersion', i),
    tac: jsonString(r.tac, 'tac', i),
    lineId: jsonString(r.lineId, 'lineId', i),
    stationId: jsonString(r.stationId, 'stationId', i),
    entryStationId: jsonString(r.entryStationId, 'entryStationId', i),
    entryLocalTime: jsonString(r.entryLocalTime, 'entryLocalTime', i),
  };
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw malformedBody('expected a JSON object', what === 'the body' ? undefined : what);
  }
  return value as Record<string, unknown>;
}

/** `records[i].key`, or `key` for a batch field (recordIndex -1). Built only on the error path. */
function jsonPath(key: string, recordIndex: number): string {
  return recordIndex < 0 ? key : `records[${recordIndex}].${key}`;
}

function unknownField(key: string, recordIndex: number | undefined): DomainError {
  // The key is the sender's text: cut it short before it goes back in the error body.
  const shown = key.length > 40 ? `${key.slice(0, 40)}...` : key;
  const where = recordIndex === undefined ? 'the batch' : `records[${recordIndex}]`;
  return malformedBody(
    `unknown field "${shown}" in ${where} (fields are the spec's names in lowerCamelCase, e.g. operatorId, cardNo)`,
    recordIndex === undefined ? shown : `records[${recordIndex}].${shown}`,
  );
}

function jsonString(value: unknown, key: string, recordIndex: number): string {
  if (typeof value === 'string') {
    if (value.length !== 0 && lone_surrogate_pattern.test(value)) {
      throw malformedBody('the string is not valid Unicode (a lone surrogate)', jsonPath(key, recordIndex));
    }
    return value;
  }
  if (value === undefined || value === null) return '';
  throw malformedBody('expected a string', jsonPath(key, recordIndex));
}

function jsonUint32(value: unknown, key: string, recordIndex: number): number {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0 && value <= uint32_max) return value;
    throw malformedBody('expected an integer from 0 to 4294967295', jsonPath(key, recordIndex));
  }
  if (value === undefined || value === null) return 0;
  throw malformedBody('expected a JSON number (an unsigned 32-bit integer)', jsonPath(key, recordIndex));
}

function jsonUint64(value: unknown, key: string): bigint {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return BigInt(value);
    throw malformedBody(
      'expected a non-negative integer; send values above 9007199254740991 as a decimal string',
      key,
    );
  }
  if (typeof value === 'string') {
    if (uint64_decimal_pattern.test(value)) {
      const v = BigInt(value);
      if (v <= uint64_max) return v;
    }
    throw malformedBody('expected a decimal string of an integer from 0 to 18446744073709551615', key);
  }
  if (value === undefined || value === null) return 0n;
  throw malformedBody('expected a number or a decimal string', key);
}

// ---------------------------------------------------------------------------------------------
// Digest (idempotency)
// ---------------------------------------------------------------------------------------------

/**
 * Names the canonical encoding. Stored digests compare equal only under the same version: a
 * change to the encoding below must change this, never silently alter old digests.
 */
export const tap_batch_digest_version = 'onecard.transit.v1.TapBatch/sha256-json-1';

/**
 * SHA-256 (hex) of a canonical encoding of every field of the batch in tag order. The batch is
 * normalized first by a decoder, so JSON and protobuf uploads of the same content get the same
 * digest, and a missing optional field equals an empty one (as proto3 has it).
 *
 * The encoding is a JSON array of arrays (strings, integers, and the uint64 total as a decimal
 * string): JSON.stringify output is fixed by ECMA-262, escapes every string, and parses back to
 * the same values, so two different batches can never share an encoding. We do not hash the
 * received bytes (field order, defaults and whitespace vary) nor protobufjs' re-encoding (its
 * choices may change with a library upgrade and would turn every replay into a 409).
 */
export function tapBatchDigest(batch: TapBatchInput): string {
  const records = batch.records;
  const rows = new Array<ReadonlyArray<string | number>>(records.length);
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    rows[i] = [
      r.cardNo,
      r.cardCounter,
      r.txnType,
      r.amountFen,
      r.balanceBeforeFen,
      r.terminalId,
      r.terminalSeq,
      r.localTime,
      r.keyVersion,
      r.tac,
      r.lineId,
      r.stationId,
      r.entryStationId,
      r.entryLocalTime,
    ];
  }
  const canonical = JSON.stringify([
    tap_batch_digest_version,
    batch.operatorId,
    batch.batchId,
    batch.createdAt,
    batch.recordCount,
    batch.totalAmountFen.toString(),
    rows,
  ]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Receipt (optional protobuf response)
// ---------------------------------------------------------------------------------------------

/** The receipt as `TapReceipt` carries it; the JSON receipt is built by the upload route. */
export interface TapReceiptWire {
  operatorId: string;
  batchId: string;
  receivedAt: string;
  clearingCycleId: string;
  acceptedCount: number;
  acceptedAmountFen: bigint;
  rejectedCount: number;
  rejectedAmountFen: bigint;
  rejections: ReadonlyArray<{ index: number; reason: string }>;
}

export function encodeTapReceiptProtobuf(receipt: TapReceiptWire): Buffer {
  const message = {
    ...receipt,
    acceptedAmountFen: bigintToUint64(receipt.acceptedAmountFen, 'acceptedAmountFen'),
    rejectedAmountFen: bigintToUint64(receipt.rejectedAmountFen, 'rejectedAmountFen'),
  };
  const bytes = TapReceiptType.encode(message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** For clients and tests reading a protobuf receipt. Throws MALFORMED_BODY on bad bytes. */
export function decodeTapReceiptProtobuf(buf: Uint8Array): TapReceiptWire {
  let m: Omit<TapReceiptWire, 'acceptedAmountFen' | 'rejectedAmountFen'> & {
    acceptedAmountFen: WireUint64;
    rejectedAmountFen: WireUint64;
  };
  try {
    m = TapReceiptType.decode(buf) as unknown as typeof m;
  } catch (e) {
    throw malformedBody(`not a protobuf TapReceipt (${wireErrorReason(e)})`);
  }
  const rejections = new Array<{ index: number; reason: string }>(m.rejections.length);
  for (let i = 0; i < m.rejections.length; i++) {
    rejections[i] = { index: m.rejections[i].index, reason: m.rejections[i].reason };
  }
  return {
    operatorId: m.operatorId,
    batchId: m.batchId,
    receivedAt: m.receivedAt,
    clearingCycleId: m.clearingCycleId,
    acceptedCount: m.acceptedCount,
    acceptedAmountFen: uint64ToBigint(m.acceptedAmountFen),
    rejectedCount: m.rejectedCount,
    rejectedAmountFen: uint64ToBigint(m.rejectedAmountFen),
    rejections,
  };
}
