/**
 * Bank returns for a package: the pacs.002 status of the settlement instruction, and return.csv
 * with one line per detail line the bank processed. Both are keyed by the SHA-256 of their
 * exact bytes, so the same upload twice is one row and one answer. An ACSC posts the bank's net
 * between its clearing account and `centre:settlement` (key `settle:{cycle}:{bank}`, once); the
 * cycle becomes SETTLED when every bank's latest pacs.002 is ACSC, PARTIALLY_SETTLED before.
 */
import { createHash } from 'node:crypto';
import { badRequest, notFound } from '../../engine/errors.ts';
import { parsePacs002, parseReturnCsv, type ReturnRow } from '../bankfiles/index.ts';
import type { Ledger } from '../../ledger/index.ts';
import { withTx, type Db, type Tx } from '../postgres/db.ts';
import { endToEndId } from '../bankfiles/index.ts';
import { plans } from './plans.ts';

export interface ReturnResult {
  replayed: boolean;
  returnId: bigint;
  status: string | null;
  lineCount: bigint;
  matchedCount: bigint;
  exceptionCount: bigint;
  cycleState: string;
}

interface PackageRow { id: string; cycle_id: string; bank_code: string; net_fen: bigint; business_date: string }

async function packageOf(q: Db | Tx, bankCode: string, packageId: string): Promise<PackageRow> {
  const r = await q.query<PackageRow>(plans.package_by_id, [bankCode, packageId]);
  // Another bank's package answers exactly like one that does not exist.
  if (r.rows.length === 0) throw notFound('PACKAGE_NOT_FOUND', 'No such settlement package.');
  return r.rows[0];
}

const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export async function receivePacs002(db: Db, ledger: Ledger, bankCode: string, packageId: string, body: Buffer, actor: string, now: Date): Promise<ReturnResult> {
  const pkg = await packageOf(db, bankCode, packageId);
  const status = parsePacs002(body);
  if (status.originalEndToEndId !== undefined && status.originalEndToEndId !== endToEndId(pkg.cycle_id, bankCode)) {
    throw badRequest('RETURN_PACKAGE_MISMATCH', 'The status report names another settlement instruction.', { original_end_to_end_id: status.originalEndToEndId });
  }
  const digest = sha256Hex(body);
  return withTx(db, async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(7103, hashtext($1))`, [pkg.cycle_id]);
    const existing = await tx.query<{ id: bigint; status: string | null; line_count: bigint; matched_count: bigint; exception_count: bigint }>(
      plans.return_by_digest, [bankCode, packageId, 'PACS002', digest]);
    if (existing.rows.length > 0) {
      const e = existing.rows[0];
      return { replayed: true, returnId: e.id, status: e.status, lineCount: 0n, matchedCount: 0n, exceptionCount: 0n, cycleState: await cycleState(tx, pkg.cycle_id) };
    }
    const reason = status.status === 'ACSC' ? null : [status.reasonCode, status.reasonText].filter(Boolean).join(': ') || null;
    const ins = await tx.query<{ id: bigint }>(plans.insert_return, [bankCode, packageId, pkg.cycle_id, 'PACS002', digest, status.status, reason, 0, 0, 0, now, actor]);
    if (status.status === 'ACSC' && pkg.net_fen !== 0n) {
      // The bank settled its net: its clearing position goes to the centre's settlement account.
      const clearing = `bank:${bankCode}:clearing`;
      const receive = pkg.net_fen > 0n;
      await ledger.postBatch(tx, [{
        idemKey: `settle:${pkg.cycle_id}:${bankCode}`, kind: 'SETTLEMENT', businessDate: pkg.business_date,
        metadata: { cycle_id: pkg.cycle_id, bank_code: bankCode, package_id: packageId },
        lines: [{ debit: receive ? clearing : 'centre:settlement', credit: receive ? 'centre:settlement' : clearing, amountFen: receive ? pkg.net_fen : -pkg.net_fen }],
      }]);
    }
    const state = await updateCycleSettlement(tx, pkg.cycle_id, actor, now);
    return { replayed: false, returnId: ins.rows[0].id, status: status.status, lineCount: 0n, matchedCount: 0n, exceptionCount: 0n, cycleState: state };
  });
}

/** Rows of a return.csv per insert: bounded memory for any file size. */
const return_rows_per_insert = 10_000;

export async function receiveReturnCsv(db: Db, bankCode: string, packageId: string, body: Buffer, actor: string, now: Date): Promise<ReturnResult> {
  const pkg = await packageOf(db, bankCode, packageId);
  const digest = sha256Hex(body);
  return withTx(db, async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(7104, hashtext($1))`, [`${bankCode}/${packageId}/${digest}`]);
    const existing = await tx.query<{ id: bigint; status: string | null; line_count: bigint; matched_count: bigint; exception_count: bigint }>(
      plans.return_by_digest, [bankCode, packageId, 'CSV', digest]);
    if (existing.rows.length > 0) {
      const e = existing.rows[0];
      return { replayed: true, returnId: e.id, status: null, lineCount: e.line_count, matchedCount: e.matched_count, exceptionCount: e.exception_count, cycleState: await cycleState(tx, pkg.cycle_id) };
    }
    // Counts are known only after the lines: insert the return first with zeros is not possible
    // (immutable rows), so the lines are parsed, matched and counted, then the return row written.
    const staged: ReturnRow[][] = [];
    let chunk: ReturnRow[] = [];
    for await (const row of parseReturnCsv([body])) {
      chunk.push(row);
      if (chunk.length === return_rows_per_insert) { staged.push(chunk); chunk = []; }
    }
    if (chunk.length > 0) staged.push(chunk);
    const lineCount = staged.reduce((a, c) => a + c.length, 0);
    const id = (await tx.query<{ id: bigint }>(`SELECT nextval(pg_get_serial_sequence('settlement_return', 'id')) AS id`)).rows[0].id;
    let matched = 0n;
    let exceptions = 0n;
    for (const c of staged) {
      const r = await tx.query<{ outcome: string }>(plans.insert_return_lines, [
        bankCode, id, pkg.cycle_id, c.map((x) => x.lineNo), c.map((x) => x.txnId), c.map((x) => String(x.amountFen)), c.map((x) => x.status),
        c.map((x) => x.bankRef), c.map((x) => x.reason),
      ]);
      for (const o of r.rows) if (o.outcome === 'MATCHED') matched += 1n; else exceptions += 1n;
    }
    await tx.query(`INSERT INTO settlement_return (id, bank_code, package_id, cycle_id, format, sha256, status, reason, line_count, matched_count, exception_count, received_at, actor)
      OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, 'CSV', $5, NULL, NULL, $6, $7, $8, $9, $10)`,
    [id, bankCode, packageId, pkg.cycle_id, digest, lineCount, matched, exceptions, now, actor]);
    return { replayed: false, returnId: id, status: null, lineCount: BigInt(lineCount), matchedCount: matched, exceptionCount: exceptions, cycleState: await cycleState(tx, pkg.cycle_id) };
  });
}

async function cycleState(tx: Tx, cycleId: string): Promise<string> {
  return (await tx.query<{ state: string }>(plans.cycle_by_id, [cycleId])).rows[0].state;
}

/** PUBLISHED/PARTIALLY_SETTLED → SETTLED when every bank's latest pacs.002 is ACSC, else PARTIALLY_SETTLED. */
async function updateCycleSettlement(tx: Tx, cycleId: string, actor: string, now: Date): Promise<string> {
  const rows = (await tx.query<{ bank_code: string; status: string | null }>(plans.cycle_confirmations, [cycleId])).rows;
  const all = rows.length > 0 && rows.every((r) => r.status === 'ACSC');
  const target = all ? 'SETTLED' : 'PARTIALLY_SETTLED';
  const current = await cycleState(tx, cycleId);
  if (current !== target && (current === 'PUBLISHED' || current === 'PARTIALLY_SETTLED')) {
    await tx.query(plans.set_state, [cycleId, target, [current], now, current, actor,
      JSON.stringify({ confirmed: rows.filter((r) => r.status === 'ACSC').length, banks: rows.length })]);
    return target;
  }
  return current;
}
