/**
 * `npm run audit:verify [-- --anchor <seq>:<hash>]`: recompute the audit log's hash chain from
 * genesis. Exits 0 when it holds; 1 naming the first broken record (deleted, inserted or altered).
 * With --anchor (a seq and hash published outside the database earlier), also checks that record
 * is still there unchanged, which catches records cut off the end.
 */
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { resolveDatabase } from '../engine.ts';
import { createPool } from '../postgres/db.ts';
import { verifyAuditChain } from '../audit/index.ts';

function parseAnchor(argv: readonly string[]): { seq: bigint; hash: string } | undefined {
  const i = argv.indexOf('--anchor');
  if (i < 0) return undefined;
  const m = /^([1-9][0-9]{0,18}):([0-9a-f]{64})$/.exec(argv[i + 1] ?? '');
  if (!m) {
    process.stderr.write('usage: audit-verify [--anchor <seq>:<64 hex hash>]\n');
    process.exit(2);
  }
  return { seq: BigInt(m[1]), hash: m[2] };
}

const anchor = parseAnchor(process.argv.slice(2));
const config = loadConfig();
const log = createLogger('warn');
const { databaseUrl, embedded } = await resolveDatabase(config, log);
const db = createPool(databaseUrl, 2, 'onecard-audit-verify');
let code = 0;
try {
  process.stderr.write('verifying the audit log: recomputing the hash chain from genesis…\n');
  const r = await verifyAuditChain(db, { anchor, onProgress: (n) => process.stderr.write(`\r${n} records checked`) });
  process.stderr.write('\n');
  if (r.ok) {
    process.stdout.write(`audit log OK: ${r.records} records, head ${r.headSeq} ${r.headHash}\n`);
  } else {
    const b = r.firstBreak!;
    process.stdout.write(`audit log BROKEN at record ${b.seq} (${b.reason}): ${b.message}\n`);
    process.stdout.write(`records verified before the break: ${r.records}\n`);
    code = 1;
  }
} finally {
  await db.end();
  await embedded?.stop();
}
process.exit(code);
