/**
 * Child process for test/transit-crash.test.ts: applies one large tap batch through the same
 * pipeline the upload route uses, in one transaction.
 * Usage: node --import tsx test/support/transit-crash-uploader.ts <dbUrl> <batchNo> <baseMs>
 *
 * Prints "uploading" right before the upload and "committed <replayed> <receipt JSON>" after it.
 * The parent SIGKILLs it at random moments. The batch is a pure function of (batchNo, baseMs), so
 * a re-run sends the very same batch (same digest) and must replay or complete it.
 */
import { ConfigKeyStore } from '../../adapters/crypto/index.ts';
import { uploadTapBatch } from '../../adapters/ingest/index.ts';
import { createPool } from '../../adapters/postgres/db.ts';
import { encodeTapBatchProtobuf } from '../../adapters/protobuf/tap-batch-codec.ts';
import { parseCutoff } from '../../engine/clearing/calendar.ts';
import type { TapBatchInput, TapRecordInput } from '../../engine/ingest/index.ts';
import { Ledger } from '../../ledger/index.ts';
import { test_qr_master_keys, test_tac_master_keys } from './deps.ts';

export const crash_operator = 'OPCRASH';
export const crash_cards = 2_000;
export const crash_terminals = 20;
export const crash_taps_per_batch = 20_000;
export const crashCard = (i: number) => `62170777${String(i).padStart(11, '0')}`;
export const crashTerminal = (i: number) => `4203777${String(i).padStart(5, '0')}`;
export const crashBatchId = (batchNo: number) => `CRASH-${batchNo}`;

function shanghaiLocalTime(ms: number): string {
  const d = new Date(ms + 8 * 3_600_000).toISOString();
  return d.slice(0, 4) + d.slice(5, 7) + d.slice(8, 10) + d.slice(11, 13) + d.slice(14, 16) + d.slice(17, 19);
}

export function crashBatch(batchNo: number, baseMs: number): TapBatchInput {
  const keys = ConfigKeyStore.fromConfigStrings(test_tac_master_keys, test_qr_master_keys);
  const records: TapRecordInput[] = [];
  let total = 0n;
  for (let k = 0; k < crash_taps_per_batch; k++) {
    const cardNo = crashCard(k % crash_cards);
    const terminalId = crashTerminal(k % crash_terminals);
    const amountFen = 100 + ((batchNo * 31 + k) % 200);
    const terminalSeq = batchNo * 100_000 + Math.floor(k / crash_terminals) + 1;
    const localTime = shanghaiLocalTime(baseMs + k * 100);
    const fields = { amountFen, txnType: 9, terminalId, terminalSeq, localTime };
    records.push({
      cardNo, cardCounter: batchNo * 1_000 + Math.floor(k / crash_cards) + 1, txnType: 9, amountFen, balanceBeforeFen: 100_000,
      terminalId, terminalSeq, localTime, keyVersion: 1, tac: keys.computeTac(1, cardNo, fields),
      lineId: 'L1', stationId: '', entryStationId: '', entryLocalTime: '',
    });
    total += BigInt(amountFen);
  }
  return { operatorId: crash_operator, batchId: crashBatchId(batchNo), createdAt: '2026-11-29T09:00:00+08:00', recordCount: records.length, totalAmountFen: total, records };
}

async function main(): Promise<void> {
  const [url, batchArg, baseArg] = process.argv.slice(2);
  const batchNo = Number(batchArg);
  const baseMs = Number(baseArg);
  if (!url || !Number.isInteger(batchNo) || !Number.isFinite(baseMs)) throw new Error('usage: transit-crash-uploader.ts <dbUrl> <batchNo> <baseMs>');
  const db = createPool(url, 2, `transit-crash-${batchNo}`);
  const body = encodeTapBatchProtobuf(crashBatch(batchNo, baseMs));
  const deps = {
    db, ledger: new Ledger(), keyStore: ConfigKeyStore.fromConfigStrings(test_tac_master_keys, test_qr_master_keys), now: () => new Date(),
    cutoffMinutes: parseCutoff('23:00'), limits: { amountFenMax: 20_000, ageDaysMax: 30 }, bodyBytesMax: 16 * 1024 * 1024,
  };
  process.stdout.write('uploading\n');
  const result = await uploadTapBatch(deps, { operatorId: crash_operator, keyId: 'key_crashtest00000' }, body, 'PROTOBUF');
  process.stdout.write(`committed ${result.replayed} ${JSON.stringify(result.receipt, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}\n`);
  await db.end();
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
