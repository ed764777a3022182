/**
 * detail.csv encoded by Postgres (COPY of copyDetailLines) is byte for byte what the engine's
 * encoder (adapters/bankfiles/detail-csv.ts) writes for the same lines: random lines with quotes,
 * commas, non-ASCII ids, empty and long card numbers, every kind, side and direction, amounts up
 * to the ceiling and instants across the day, as a cycle's partition of clearing_line. Lines COPY would escape
 * (a backslash or a control character in an id) or the encoder would refuse go through the
 * encoder instead, which names the refused line as before.
 */
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DETAIL_AMOUNT_FEN_MAX, DETAIL_KINDS, writeDetailCsv, type DetailLine } from '../adapters/bankfiles/index.ts';
import { writeBankDetailCsv } from '../adapters/clearing/packages.ts';
import { lines_ddl, linesTableOf } from '../adapters/clearing/plans.ts';
import { freshDatabase, type TestDb } from './support/db.ts';

let db: TestDb;
beforeAll(async () => { db = await freshDatabase(2); });
afterAll(async () => { await db.drop(); });

const bank = '102100000011';
const sink = () => {
  const parts: Buffer[] = [];
  const out = new Writable({ write(chunk: Buffer, _e, done) { parts.push(chunk); done(); } });
  return { out, bytes: () => Buffer.concat(parts) };
};

interface Row {
  txnId: string; kind: string; side: 'ISSUER' | 'ACQUIRER'; cardNo: string | null; merchantId: string | null; terminalId: string | null;
  txnTimeMs: number; amountFen: bigint; feeFen: bigint; direction: 'PAY' | 'RECEIVE';
}

const idChars = fc.constantFrom(...'abcXYZ019_-:/., "\'é中€'.split(''));
const id = (min: number, max: number) => fc.array(idChars, { minLength: min, maxLength: max }).map((a) => a.join(''));
const row = (weird: boolean): fc.Arbitrary<Row> => fc.record({
  txnId: weird ? fc.constantFrom('a\\b', 'tab\there', 'line\nbreak', 'cr\rx') : id(1, 64),
  kind: fc.constantFrom(...DETAIL_KINDS),
  side: fc.constantFrom('ISSUER' as const, 'ACQUIRER' as const),
  cardNo: fc.oneof(fc.constant(null), fc.constant(''), fc.integer({ min: 11, max: 19 }).chain((n) => fc.array(fc.integer({ min: 0, max: 9 }), { minLength: n, maxLength: n }).map((d) => d.join('')))),
  merchantId: fc.oneof(fc.constant(null), id(0, 64)),
  terminalId: fc.oneof(fc.constant(null), id(0, 64)),
  txnTimeMs: fc.integer({ min: Date.UTC(2026, 10, 27, 15), max: Date.UTC(2026, 10, 28, 16) }).map((ms) => ms - (ms % 1000)),
  amountFen: fc.bigInt({ min: 0n, max: DETAIL_AMOUNT_FEN_MAX }),
  feeFen: fc.bigInt({ min: 0n, max: 100_000n }),
  direction: fc.constantFrom('PAY' as const, 'RECEIVE' as const),
});

const shanghai = (ms: number) => new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19) + '+08:00';

let cycleNo = 0;
/** The rows as a fresh cycle's lines table; returns the cycle id. */
async function load(rows: Row[]): Promise<string> {
  const cycleId = `CYCSQL${++cycleNo}`;
  const table = linesTableOf(cycleId);
  await db.pool.query(lines_ddl.create(table, cycleId));
  await db.pool.query(`
    INSERT INTO ${table} (cycle_id, bank_code, entry_id, side, kind, txn_id, card_no, merchant_id, terminal_id, txn_time, amount_fen, fee_fen, direction)
    SELECT $1, $2, x.entry_id, x.side, x.kind, x.txn_id, x.card_no, x.merchant_id, x.terminal_id, to_timestamp(x.ms / 1000.0), x.amount_fen, x.fee_fen, x.direction
    FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[])
      AS x(entry_id, side, kind, txn_id, card_no, merchant_id, terminal_id, ms, amount_fen, fee_fen, direction)`,
  [cycleId, bank, rows.map((_, i) => String(1000 - i)), rows.map((r) => r.side), rows.map((r) => r.kind), rows.map((r) => r.txnId),
    rows.map((r) => r.cardNo), rows.map((r) => r.merchantId), rows.map((r) => r.terminalId), rows.map((r) => String(r.txnTimeMs)),
    rows.map((r) => String(r.amountFen)), rows.map((r) => String(r.feeFen)), rows.map((r) => r.direction)]);
  await db.pool.query(lines_ddl.attach(table, cycleId));
  return cycleId;
}

/** What the engine's encoder writes for the rows, in the package's order (entry id, then side). */
async function reference(rows: Row[]) {
  const ordered = rows.map((r, i) => ({ r, entryId: 1000 - i })).sort((a, b) => a.entryId - b.entryId || (a.r.side < b.r.side ? -1 : a.r.side > b.r.side ? 1 : 0));
  const lines: DetailLine[] = ordered.map(({ r }) => ({
    txnId: r.txnId, kind: r.kind as DetailLine['kind'], side: r.side, cardNo: r.cardNo ?? '', merchantId: r.merchantId ?? '', terminalId: r.terminalId ?? '',
    txnTime: shanghai(r.txnTimeMs), amountFen: r.amountFen, feeFen: r.feeFen, direction: r.direction,
  }));
  const s = sink();
  const summary = await writeDetailCsv(lines, s.out);
  return { bytes: s.bytes(), summary };
}

async function viaBank(cycleId: string) {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const s = sink();
    const r = await writeBankDetailCsv(client, cycleId, bank, s.out);
    await client.query('COMMIT');
    return { ...r, bytes: s.bytes() };
  } catch (e) {
    await client.query('ROLLBACK');
    throw e;
  } finally {
    client.release();
  }
}

describe('detail.csv encoded by Postgres', () => {
  it('equals the encoder byte for byte, with the same digests and control sums', async () => {
    await fc.assert(fc.asyncProperty(fc.array(row(false), { minLength: 0, maxLength: 40 }), async (rows) => {
      const cycleId = await load(rows);
      const got = await viaBank(cycleId);
      const want = await reference(rows);
      expect(got.encodedBy).toBe('postgres');
      expect(got.bytes.toString('utf8')).toBe(want.bytes.toString('utf8'));
      expect(got.summary).toEqual(want.summary);
      let count = 0;
      for (const a of got.aggregates.values()) count += a.count;
      expect(count).toBe(rows.length);
    }), { numRuns: 60 });
  });

  it('leaves lines COPY would escape to the encoder, with the same bytes', async () => {
    await fc.assert(fc.asyncProperty(fc.array(row(false), { maxLength: 10 }), row(true), async (rows, weird) => {
      const all = [...rows, weird];
      const cycleId = await load(all);
      const got = await viaBank(cycleId);
      const want = await reference(all);
      expect(got.encodedBy).toBe('engine');
      expect(got.bytes.equals(want.bytes)).toBe(true);
      expect(got.summary).toEqual(want.summary);
    }), { numRuns: 15 });
  });

  it('refuses a line the encoder refuses, naming it', async () => {
    const cycleId = await load([
      { txnId: 'ok1', kind: 'QR_PAYMENT', side: 'ISSUER', cardNo: '6217000000000001', merchantId: 'M1', terminalId: null, txnTimeMs: Date.UTC(2026, 10, 28, 2), amountFen: 10n, feeFen: 0n, direction: 'PAY' },
      { txnId: 'bad', kind: 'NEW_KIND', side: 'ISSUER', cardNo: '6217000000000001', merchantId: 'M1', terminalId: null, txnTimeMs: Date.UTC(2026, 10, 28, 3), amountFen: 10n, feeFen: 0n, direction: 'PAY' },
    ]);
    await expect(viaBank(cycleId)).rejects.toMatchObject({ code: 'DETAIL_LINE_INVALID', details: { lineNo: 1, column: 'kind' } });
  });
});
