/**
 * `npm run pii:rotate`: re-seal every person's (and complainant's) personal data under the
 * current PII key version (PII_KEYS, the highest version unless configured otherwise), while the
 * engine keeps running. Short batches with SKIP LOCKED; resumable (run it again after a stop, it
 * continues with the rows still under an older key); a progress bar on stderr. Blind indexes are
 * unchanged, so lookups keep working throughout.
 *
 *   --batch <rows>   rows per transaction (default 500)
 */
import cliProgress from 'cli-progress';
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { resolveDatabase } from '../engine.ts';
import { createPool } from '../postgres/db.ts';
import { PiiKeyring } from '../crypto/index.ts';
import { resolveMasterKeys } from '../crypto/master-keys-file.ts';
import { rotatePii, rotation_batch_rows_default } from '../cards/index.ts';

const argv = process.argv.slice(2);
const bi = argv.indexOf('--batch');
const batchRows = bi >= 0 ? Number(argv[bi + 1]) : rotation_batch_rows_default;
if (!Number.isInteger(batchRows) || batchRows < 1 || batchRows > 10_000) {
  process.stderr.write('usage: pii-rotate [--batch <1..10000>]\n');
  process.exit(2);
}

const config = loadConfig();
const log = createLogger('warn');
const keys = resolveMasterKeys(config, config.dataDir);
const pii = PiiKeyring.fromConfigString(keys.piiKeys);
const { databaseUrl, embedded } = await resolveDatabase(config, log);
const db = createPool(databaseUrl, 2, 'onecard-pii-rotate');
let code = 0;
const bar = new cliProgress.SingleBar({
  stream: process.stderr, format: 're-sealing {table} [{bar}] {value}/{total} rows', hideCursor: true,
}, cliProgress.Presets.shades_classic);
let barTable: string | null = null;
try {
  process.stderr.write(`re-sealing personal data under PII key version ${pii.currentVersion()} (blind-index version ${pii.indexVersion()} unchanged)\n`);
  const r = await rotatePii(db, pii, {
    batchRows,
    onProgress: (p) => {
      if (barTable !== p.table) {
        if (barTable !== null) bar.stop();
        bar.start(p.total, p.done, { table: p.table });
        barTable = p.table;
      }
      bar.setTotal(p.total);
      bar.update(p.done, { table: p.table });
    },
  });
  if (barTable !== null) bar.stop();
  for (const [table, n] of Object.entries(r.resealed)) process.stdout.write(`${table}: ${n} rows re-sealed, ${r.remaining[table]} left under an older key\n`);
  const left = Object.values(r.remaining).reduce((a, b) => a + b, 0);
  if (left > 0) {
    process.stdout.write('some rows stayed locked by running transactions; run again to finish\n');
    code = 1;
  } else {
    process.stdout.write(`all personal data is sealed under key version ${r.currentVersion}\n`);
  }
} finally {
  await db.end();
  await embedded?.stop();
}
process.exit(code);
