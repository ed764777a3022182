/** `npm run ledger:verify`: recompute every balance and the trial balance; non-zero exit on any difference. */
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { resolveDatabase } from '../engine.ts';
import { createPool } from '../postgres/db.ts';
import { Ledger } from '../../ledger/index.ts';

const config = loadConfig();
const log = createLogger('warn');
const { databaseUrl, embedded } = await resolveDatabase(config, log);
const db = createPool(databaseUrl, 6, 'onecard-verify');
let code = 0;
try {
  process.stderr.write('verifying ledger: recomputing balances from postings…\n');
  const r = await new Ledger().verify(db);
  const t = r.trialBalance;
  process.stdout.write(`accounts: ${r.accounts}\n`);
  process.stdout.write(`trial balance: debits ${t.debitsFen} fen, credits ${t.creditsFen} fen (${t.debitsFen === t.creditsFen ? 'balanced' : 'UNBALANCED'})\n`);
  process.stdout.write(`pending: debits ${t.debitsPendingFen} fen, credits ${t.creditsPendingFen} fen (${t.debitsPendingFen === t.creditsPendingFen ? 'balanced' : 'UNBALANCED'})\n`);
  for (const m of r.mismatches) process.stdout.write(`MISMATCH ${m.code} ${m.field}: stored ${m.storedFen}, from postings ${m.recomputedFen}\n`);
  for (const a of r.negativeAccounts) process.stdout.write(`NEGATIVE no-negative account ${a}\n`);
  if (r.entriesWithoutLines > 0n) process.stdout.write(`EMPTY entries without lines: ${r.entriesWithoutLines}\n`);
  if (r.linesWithoutEntry > 0n) process.stdout.write(`ORPHAN lines without entry: ${r.linesWithoutEntry}\n`);
  process.stdout.write(r.ok ? 'ledger OK\n' : 'ledger FAILED verification\n');
  code = r.ok ? 0 : 1;
} finally {
  await db.end();
  await embedded?.stop();
}
process.exit(code);
