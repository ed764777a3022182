/**
 * Child process for test/clearing-crash.test.ts: clears one cycle, as the calendar would.
 * Usage: node --import tsx test/support/clearing-crash-runner.ts <dbUrl> <cycleId> <dataDir> <nowIso>
 * Prints "start" when connected, right before clearing, and "cleared <state>" after the run; the
 * parent SIGKILLs it at random moments in between.
 */
import { clearCycle } from '../../adapters/clearing/run.ts';
import { createPool } from '../../adapters/postgres/db.ts';
import { Ledger } from '../../ledger/index.ts';
import { clearingTestSettings } from './clearing-fixtures.ts';

const [dbUrl, cycleId, dataDir, nowIso] = process.argv.slice(2);
const db = createPool(dbUrl, 4, 'clearing-crash-runner');
try {
  await db.query('SELECT 1');
  process.stdout.write('start\n');
  const r = await clearCycle({ db, ledger: new Ledger(), settings: clearingTestSettings(dataDir) }, cycleId, 'test:crash', new Date(nowIso));
  process.stdout.write(`cleared ${r.state}\n`);
} finally {
  await db.end();
}
