/**
 * Child process for test/ledger-crash.test.ts: posts one large batch (entries_per_batch entries)
 * in a single transaction. Usage: node --import tsx test/support/ledger-crash-poster.ts <dbUrl> <batchNo>
 *
 * Prints "ready" once its accounts are open, "posting" right before the batch INSERT, and
 * "committed <new> <replayed>" after COMMIT. The parent SIGKILLs it at random moments.
 */
import { createPool, withTx } from '../../adapters/postgres/db.ts';
import { Ledger, type EntryInput } from '../../ledger/index.ts';

export const entries_per_batch = 5_000;
export const crash_bank = 'bank:102100000777:clearing';
export const crash_cards = 50;
export const crashCard = (i: number) => `card:62170777${String(i).padStart(8, '0')}:purse`;
export const crashKeyPrefix = (batchNo: number) => `crash-b${batchNo}-`;
/** Deterministic amount of entry i of a batch, so a re-run posts identical content. */
export const crashAmount = (batchNo: number, i: number) => BigInt(1 + ((batchNo * 7919 + i * 104729) % 997));

export function crashBatch(batchNo: number): EntryInput[] {
  const out: EntryInput[] = [];
  for (let i = 0; i < entries_per_batch; i++) {
    out.push({
      idemKey: `${crashKeyPrefix(batchNo)}${i}`, kind: 'PURSE_LOAD', businessDate: '2026-11-28',
      lines: [{ debit: crash_bank, credit: crashCard(i % crash_cards), amountFen: crashAmount(batchNo, i) }],
    });
  }
  return out;
}

async function main(): Promise<void> {
  const [url, batchArg] = process.argv.slice(2);
  const batchNo = Number(batchArg);
  if (!url || !Number.isInteger(batchNo)) throw new Error('usage: ledger-crash-poster.ts <dbUrl> <batchNo>');
  const pool = createPool(url, 2, `ledger-crash-poster-${batchNo}`);
  const ledger = new Ledger();
  const entries = crashBatch(batchNo);
  const codes = [crash_bank, ...Array.from({ length: crash_cards }, (_, i) => crashCard(i))];
  // Open the accounts in their own transaction, so that inside the batch transaction the next
  // statement after "posting" is the batch INSERT itself (the account ids are then cached).
  await withTx(pool, (tx) => ledger.accountIdsFor(tx, codes));
  process.stdout.write('ready\n');
  const results = await withTx(pool, async (tx) => {
    process.stdout.write('posting\n');
    return ledger.postBatch(tx, entries);
  });
  const replayed = results.filter((r) => r.replayed).length;
  process.stdout.write(`committed ${results.length - replayed} ${replayed}\n`);
  await pool.end();
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
