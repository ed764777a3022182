/**
 * PII key rotation: re-seal every sealed column under the keyring's current version, while the
 * engine runs. Short transactions of `batchRows` rows each, taken with FOR UPDATE SKIP LOCKED so
 * a row an engine transaction holds is simply picked up by a later batch; progress is the rows
 * still below the current version, so a killed run resumes where it stopped. Blind indexes are
 * not touched: their key version is pinned (PiiKeyring.indexVersion), so lookups keep working.
 *
 * Order of operations for a rotation: configure the new key everywhere with it as current (new
 * rows are then sealed with it), then run this job; retire the old key only once it reports
 * nothing left below the current version.
 */
import type { PiiKeyring } from '../crypto/index.ts';
import { withTx, type Db } from '../postgres/db.ts';

export const rotation_batch_rows_default = 500;
export const rotation_batch_rows_max = 10_000;
/** Rows locked by live transactions are retried after a pause, a bounded number of times. */
const locked_retry_pause_ms = 200;
const locked_retries_max = 50;

interface SealedTable {
  table: 'person' | 'complaint';
  columns: readonly string[];
}

/** Every table with sealed columns, and those columns. */
export const sealed_tables: readonly SealedTable[] = [
  { table: 'person', columns: ['name_sealed', 'national_id_sealed', 'phone_sealed', 'address_sealed'] },
  { table: 'complaint', columns: ['contact_name_sealed', 'contact_phone_sealed', 'contact_email_sealed', 'description_sealed'] },
];

function plansFor(t: SealedTable) {
  const cols = t.columns.join(', ');
  const sets = t.columns.map((c, i) => `${c} = u.c${i}`).join(', ');
  const unnestArgs = t.columns.map((_, i) => `$${i + 3}::bytea[]`).join(', ');
  const unnestCols = t.columns.map((_, i) => `c${i}`).join(', ');
  return {
    remaining: `SELECT count(*)::bigint AS n FROM ${t.table} WHERE pii_key_version < $1`,
    take: `SELECT id, ${cols} FROM ${t.table} WHERE pii_key_version < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`,
    update: `
      UPDATE ${t.table} SET ${sets}, pii_key_version = $2
      FROM unnest($1::bigint[], ${unnestArgs}) AS u(id, ${unnestCols}) WHERE ${t.table}.id = u.id`,
  };
}

export interface RotationProgress {
  table: string;
  done: number;
  total: number;
}

export interface RotationReport {
  currentVersion: number;
  resealed: Record<string, number>;
  remaining: Record<string, number>;
}

export async function remainingToRotate(db: Db, pii: PiiKeyring): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of sealed_tables) {
    const r = await db.query<{ n: bigint }>(plansFor(t).remaining, [pii.currentVersion()]);
    out[t.table] = Number(r.rows[0].n);
  }
  return out;
}

export async function rotatePii(db: Db, pii: PiiKeyring, opts: { batchRows?: number; onProgress?: (p: RotationProgress) => void } = {}): Promise<RotationReport> {
  const batchRows = Math.min(opts.batchRows ?? rotation_batch_rows_default, rotation_batch_rows_max);
  const current = pii.currentVersion();
  const report: RotationReport = { currentVersion: current, resealed: {}, remaining: {} };
  for (const t of sealed_tables) {
    const p = plansFor(t);
    const total = Number((await db.query<{ n: bigint }>(p.remaining, [current])).rows[0].n);
    let done = 0;
    let lockedRetries = 0;
    opts.onProgress?.({ table: t.table, done, total });
    for (;;) {
      const n = await withTx(db, async (tx) => {
        const rows = (await tx.query<Record<string, unknown>>(p.take, [current, batchRows])).rows;
        if (rows.length === 0) return 0;
        const columns = t.columns.map((c) => rows.map((r) => (r[c] === null ? null : pii.reseal(r[c] as Buffer))));
        await tx.query(p.update, [rows.map((r) => String(r.id)), current, ...columns]);
        return rows.length;
      });
      if (n > 0) {
        done += n;
        lockedRetries = 0;
        opts.onProgress?.({ table: t.table, done, total: Math.max(total, done) });
        continue;
      }
      const left = Number((await db.query<{ n: bigint }>(p.remaining, [current])).rows[0].n);
      if (left === 0 || lockedRetries >= locked_retries_max) break;
      lockedRetries++;
      await new Promise((r) => setTimeout(r, locked_retry_pause_ms));
    }
    report.resealed[t.table] = done;
  }
  report.remaining = await remainingToRotate(db, pii);
  return report;
}
