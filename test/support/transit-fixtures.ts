/**
 * Fixtures for the transit tap tests: reference rows inserted directly with SQL (banks, transit
 * operators, terminals, cards with status history), purses funded through the ledger, genuine
 * taps signed with the spec's public TAC test key, an in-process app with a movable clock, and
 * counts of everything an upload writes (to prove refusals write nothing).
 */
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../adapters/http/app.ts';
import type { AppDeps } from '../../adapters/http/context.ts';
import { createApiKey, type Role } from '../../adapters/auth/api-keys.ts';
import { ConfigKeyStore } from '../../adapters/crypto/index.ts';
import { withTx, type Db } from '../../adapters/postgres/db.ts';
import { encodeTapBatchProtobuf } from '../../adapters/protobuf/tap-batch-codec.ts';
import type { TapBatchInput, TapRecordInput } from '../../engine/ingest/index.ts';
import { Ledger } from '../../ledger/index.ts';
import { test_qr_master_keys, test_tac_master_keys, testConfig, testDeps } from './deps.ts';

export const bank_code = '102100099996';
/** The spec's TAC test master key is version 1 in the test key store. */
export const test_key_version = 1;
export const test_key_store = ConfigKeyStore.fromConfigStrings(test_tac_master_keys, test_qr_master_keys);

const shanghai_offset_ms = 8 * 3_600_000;

/** `YYYYMMDDhhmmss`, Asia/Shanghai wall clock, of an instant. */
export function shanghaiLocalTime(ms: number): string {
  const d = new Date(ms + shanghai_offset_ms).toISOString();
  return d.slice(0, 4) + d.slice(5, 7) + d.slice(8, 10) + d.slice(11, 13) + d.slice(14, 16) + d.slice(17, 19);
}

/** The instant of a Shanghai wall-clock `YYYYMMDDhhmmss`. */
export function shanghaiInstant(local: string): number {
  return Date.UTC(+local.slice(0, 4), +local.slice(4, 6) - 1, +local.slice(6, 8), +local.slice(8, 10), +local.slice(10, 12), +local.slice(12, 14)) - shanghai_offset_ms;
}

export interface Clock {
  now: () => Date;
  set(ms: number): void;
  advance(ms: number): void;
  ms(): number;
}

export function movableClock(startMs: number): Clock {
  let t = startMs;
  return { now: () => new Date(t), set: (ms) => { t = ms; }, advance: (ms) => { t += ms; }, ms: () => t };
}

export type CardStatus = 'ISSUED' | 'ACTIVE' | 'LOST_REPORTED' | 'SUSPENDED' | 'CANCELLED';

export interface TransitReference {
  operators?: { id: string; status?: 'ACTIVE' | 'SUSPENDED' | 'CLOSED'; isOperator?: boolean; kind?: string }[];
  terminals?: { id: string; operatorId: string }[];
  cards?: { cardNo: string; events?: { status: CardStatus; at: Date }[] }[];
}

/** Reference rows as the reference admin would have created them (set-based). */
export async function seedTransit(db: Db, ref: TransitReference): Promise<void> {
  await db.query(`INSERT INTO bank (code, name) VALUES ($1, 'Test bank') ON CONFLICT DO NOTHING`, [bank_code]);
  const ops = ref.operators ?? [];
  if (ops.length > 0) {
    await db.query(`
      INSERT INTO merchant (id, name, kind, is_operator, acquiring_bank, settlement_account, status)
      SELECT id, 'Operator ' || id, kind, is_op, $2, '6222000000001', status
      FROM unnest($1::text[], $3::text[], $4::boolean[], $5::text[]) AS m(id, kind, is_op, status)`,
    [ops.map((o) => o.id), bank_code, ops.map((o) => o.kind ?? 'TRANSIT'), ops.map((o) => o.isOperator ?? true), ops.map((o) => o.status ?? 'ACTIVE')]);
  }
  const terminals = ref.terminals ?? [];
  if (terminals.length > 0) {
    await db.query(`INSERT INTO terminal (id, merchant_id) SELECT * FROM unnest($1::text[], $2::text[])`,
      [terminals.map((t) => t.id), terminals.map((t) => t.operatorId)]);
  }
  const cards = ref.cards ?? [];
  if (cards.length > 0) {
    await db.query(`
      INSERT INTO card (card_no, issuing_bank, form, status, status_since)
      SELECT n, $2, 'PHYSICAL', 'ACTIVE', '2026-01-01T00:00:00Z' FROM unnest($1::text[]) n`, [cards.map((c) => c.cardNo), bank_code]);
    const evCard: string[] = [];
    const evStatus: string[] = [];
    const evAt: Date[] = [];
    for (const c of cards) {
      const events = c.events ?? [{ status: 'ACTIVE' as const, at: new Date('2026-01-01T00:00:00Z') }];
      for (const e of events) { evCard.push(c.cardNo); evStatus.push(e.status); evAt.push(e.at); }
    }
    await db.query(`
      INSERT INTO card_status_event (card_no, status, effective_at, actor)
      SELECT * , 'test' FROM unnest($1::text[], $2::text[], $3::timestamptz[])`, [evCard, evStatus, evAt]);
  }
}

/** A status change (loss report, cancellation...) effective at `at`. */
export async function addCardStatus(db: Db, cardNo: string, status: CardStatus, at: Date): Promise<void> {
  await db.query(`INSERT INTO card_status_event (card_no, status, effective_at, actor) VALUES ($1, $2, $3, 'test')`, [cardNo, status, at]);
}

/** Loads purses from the test bank (kind PURSE_LOAD), in one ledger batch. */
export async function fundPurses(db: Db, loads: { cardNo: string; amountFen: bigint; key?: string }[], businessDate = '2026-11-28'): Promise<void> {
  const ledger = new Ledger();
  await withTx(db, (tx) => ledger.postBatch(tx, loads.map((l, i) => ({
    idemKey: l.key ?? `test-load:${l.cardNo}:${i}:${l.amountFen}`, kind: 'PURSE_LOAD', businessDate,
    lines: [{ debit: `bank:${bank_code}:clearing`, credit: `card:${l.cardNo}:purse`, amountFen: l.amountFen }],
  }))));
}

export interface TapSpec {
  cardNo: string;
  cardCounter: number;
  terminalId: string;
  terminalSeq: number;
  localTime: string;
  amountFen?: number;
  balanceBeforeFen?: number;
  txnType?: number;
  keyVersion?: number;
  lineId?: string;
  stationId?: string;
}

/** A genuine tap: its TAC computed with the test key (unless the key version has no key). */
export function tap(s: TapSpec): TapRecordInput {
  const amountFen = s.amountFen ?? 200;
  const txnType = s.txnType ?? 9;
  const keyVersion = s.keyVersion ?? test_key_version;
  const fields = { amountFen, txnType, terminalId: s.terminalId, terminalSeq: s.terminalSeq, localTime: s.localTime };
  let tac = '00000000';
  // A record built to be malformed, or with a key version the store lacks, carries no valid TAC.
  try { if (test_key_store.hasTacKey(keyVersion)) tac = test_key_store.computeTac(keyVersion, s.cardNo, fields); } catch { /* keep the dummy */ }
  return {
    cardNo: s.cardNo, cardCounter: s.cardCounter, txnType, amountFen, balanceBeforeFen: s.balanceBeforeFen ?? 10_000,
    terminalId: s.terminalId, terminalSeq: s.terminalSeq, localTime: s.localTime, keyVersion, tac,
    lineId: s.lineId ?? '', stationId: s.stationId ?? '', entryStationId: '', entryLocalTime: '',
  };
}

export function batchOf(operatorId: string, batchId: string, records: TapRecordInput[], createdAt = '2026-11-28T09:00:00+08:00'): TapBatchInput {
  let total = 0n;
  for (const r of records) total += BigInt(r.amountFen);
  return { operatorId, batchId, createdAt, recordCount: records.length, totalAmountFen: total, records };
}

/** The batch in its JSON wire form (uint64 total as a string, as the proto3 mapping writes it). */
export function batchJson(b: TapBatchInput): string {
  return JSON.stringify({ ...b, totalAmountFen: b.totalAmountFen.toString() });
}

export interface TransitTestApp {
  app: FastifyInstance;
  deps: AppDeps;
  clock: Clock;
  token(role: Role, scopeId?: string | null): Promise<string>;
}

export async function transitApp(db: Db, clock: Clock, overrides: Partial<AppDeps> = {}): Promise<TransitTestApp> {
  const deps = testDeps(db, { now: clock.now, config: testConfig(), ...overrides });
  const app = await buildApp(deps, false);
  await app.ready();
  return {
    app, deps, clock,
    token: async (role, scopeId = null) => (await createApiKey(db, role, scopeId, `test ${role}`, 'test')).token,
  };
}

export function upload(app: FastifyInstance, token: string, batch: TapBatchInput, format: 'protobuf' | 'json' = 'protobuf', accept?: string): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (accept !== undefined) headers.accept = accept;
  if (format === 'protobuf') {
    headers['content-type'] = 'application/x-protobuf';
    return app.inject({ method: 'POST', url: '/v1/transit/batches', headers, payload: encodeTapBatchProtobuf(batch) });
  }
  headers['content-type'] = 'application/json';
  return app.inject({ method: 'POST', url: '/v1/transit/batches', headers, payload: batchJson(batch) });
}

export function rawUpload(app: FastifyInstance, token: string, body: Buffer | string, contentType: string): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/v1/transit/batches', headers: { authorization: `Bearer ${token}`, 'content-type': contentType }, payload: body });
}

export interface ReceiptJson {
  operatorId: string;
  batchId: string;
  receivedAt: string;
  clearingCycleId: string;
  acceptedCount: number;
  acceptedAmountFen: string;
  rejectedCount: number;
  rejectedAmountFen: string;
  rejections: { index: number; reason: string }[];
}

/** Everything an upload can write, counted: a refusal must leave all of these unchanged. */
export async function writtenCounts(db: Db): Promise<Record<string, bigint>> {
  const r = await db.query<Record<string, bigint>>(`
    SELECT (SELECT count(*) FROM tap_batch)::bigint AS batches,
           (SELECT count(*) FROM tap_record)::bigint AS records,
           (SELECT count(*) FROM ledger_entry WHERE kind = 'TRANSIT_TAP')::bigint AS entries,
           (SELECT count(*) FROM ledger_posting)::bigint AS postings,
           (SELECT count(*) FROM risk_case)::bigint AS cases,
           (SELECT count(*) FROM tap_seq_gap_event)::bigint AS gap_events`);
  return r.rows[0];
}

/** Balance (by normal side) of an account, 0n if it does not exist. */
export async function balanceFen(db: Db, code: string): Promise<bigint> {
  const a = await new Ledger().account(db, code);
  return a?.balanceFen ?? 0n;
}
