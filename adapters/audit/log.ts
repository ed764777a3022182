/**
 * The audit log: append-only and hash-chained (CARD-SECURITY.md). Each record's hash is
 * SM3(previous hash ‖ canonical JSON of the record), adapters/crypto/audit-chain.ts. Appends take
 * a transaction-level advisory lock and draw `seq` as last + 1, so the chain is one line with no
 * gaps, in commit order; the database refuses UPDATE, DELETE and TRUNCATE (0007_cards.sql).
 *
 * What the chain proves: any change, removal or insertion inside the stored history, and the
 * removal of records after the last one whose hash was published (`verifyAuditChain`'s anchor).
 * What it cannot prove on its own: that someone able to write the table did not append a
 * well-formed record at the end; publishing the head hash (seq, hash) somewhere outside the
 * database closes that gap.
 */
import { audit_chain_genesis_hash_hex, chainHash } from '../crypto/index.ts';
import type { Queryable, Tx } from '../postgres/db.ts';

/** Advisory lock (two int4) serializing appends. */
export const audit_lock_key: readonly [number, number] = [7200, 1];
export const audit_append_batch_max = 1_000;
export const audit_verify_page_rows = 10_000;
export const audit_list_page_max = 500;

/** Small, flat facts only: values survive a jsonb round trip exactly, so the hash recomputes. */
export type AuditDetails = Record<string, string | boolean | null>;

export interface AuditEntry {
  at: Date;
  /** The API key id (or `system:<job>`) that acted. */
  actor: string;
  role: string;
  /** The stated purpose of a read of personal data; null for other actions. */
  purpose: string | null;
  /** UPPER_SNAKE: PERSON_READ, CARD_LOSS_REPORT, CASE_CONFIRM, … */
  action: string;
  /** What was acted on: `person:per_12`, `card:<card number>`, `case:case_3`, `complaint:cmp_4`. */
  subject: string;
  /** Names of the personal fields revealed in full (empty when none). */
  fields: string[];
  details: AuditDetails;
}

export interface StoredAuditRecord extends AuditEntry {
  seq: bigint;
  prevHash: string;
  hash: string;
}

export const plans = {
  lock: `SELECT pg_advisory_xact_lock(${audit_lock_key[0]}, ${audit_lock_key[1]})`,
  head: `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`,
  insert: `
    INSERT INTO audit_log (seq, at, actor, role, purpose, action, subject, fields, details, prev_hash, hash)
    SELECT u.seq, u.at, u.actor, u.role, u.purpose, u.action, u.subject,
           ARRAY(SELECT jsonb_array_elements_text(u.fields)), u.details, u.prev_hash, u.hash
    FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[], $9::jsonb[], $10::text[], $11::text[])
      AS u(seq, at, actor, role, purpose, action, subject, fields, details, prev_hash, hash)`,
  page_after: `
    SELECT seq, at, actor, role, purpose, action, subject, fields, details, prev_hash, hash
    FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`,
  list: `
    SELECT seq, at, actor, role, purpose, action, subject, fields, details, prev_hash, hash
    FROM audit_log
    WHERE seq > $1 AND ($2::text IS NULL OR subject = $2) AND ($3::text IS NULL OR action = $3)
    ORDER BY seq LIMIT $4`,
  by_seq: `SELECT seq, hash FROM audit_log WHERE seq = $1`,
} as const;

/** The canonical record a hash covers: every column but the hashes themselves. */
export function auditRecordForHash(seq: bigint, e: AuditEntry): Record<string, unknown> {
  return {
    seq: seq.toString(), at: e.at.toISOString(), actor: e.actor, role: e.role, purpose: e.purpose,
    action: e.action, subject: e.subject, fields: e.fields, details: e.details,
  };
}

/**
 * Appends records in the caller's transaction (which must be open: the lock is held until it
 * commits, so the chain stays linear). The transaction must be READ COMMITTED (withTx's default):
 * the head is read by a statement that starts after the lock is granted, so it sees the previous
 * append; an older snapshot would draw a seq already used and fail on the primary key. Call it last in a transaction, after the row locks of the
 * action being audited, so lock order is always "domain rows, then audit".
 */
export async function appendAudit(tx: Tx, entries: readonly AuditEntry[]): Promise<StoredAuditRecord[]> {
  if (entries.length === 0) return [];
  if (entries.length > audit_append_batch_max) throw new RangeError(`at most ${audit_append_batch_max} audit records per append`);
  await tx.query(plans.lock);
  const head = await tx.query<{ seq: bigint; hash: string }>(plans.head);
  let seq = head.rows[0]?.seq ?? 0n;
  let prev = head.rows[0]?.hash ?? audit_chain_genesis_hash_hex;
  const out: StoredAuditRecord[] = [];
  for (const e of entries) {
    seq += 1n;
    const hash = chainHash(prev, auditRecordForHash(seq, e));
    out.push({ ...e, seq, prevHash: prev, hash });
    prev = hash;
  }
  await tx.query(plans.insert, [
    out.map((r) => r.seq.toString()), out.map((r) => r.at), out.map((r) => r.actor), out.map((r) => r.role),
    out.map((r) => r.purpose), out.map((r) => r.action), out.map((r) => r.subject),
    out.map((r) => JSON.stringify(r.fields)), out.map((r) => JSON.stringify(r.details)),
    out.map((r) => r.prevHash), out.map((r) => r.hash),
  ]);
  return out;
}

type Row = {
  seq: bigint; at: Date; actor: string; role: string; purpose: string | null; action: string; subject: string;
  fields: string[]; details: AuditDetails; prev_hash: string; hash: string;
};

function fromRow(r: Row): StoredAuditRecord {
  return {
    seq: r.seq, at: r.at, actor: r.actor, role: r.role, purpose: r.purpose, action: r.action, subject: r.subject,
    fields: r.fields, details: r.details, prevHash: r.prev_hash, hash: r.hash,
  };
}

export async function listAudit(q: Queryable, after: bigint, limit: number, filter: { subject?: string; action?: string } = {}): Promise<StoredAuditRecord[]> {
  const r = await q.query<Row>(plans.list, [after.toString(), filter.subject ?? null, filter.action ?? null, Math.min(limit, audit_list_page_max)]);
  return r.rows.map(fromRow);
}

export interface ChainBreak {
  seq: bigint;
  reason: 'missing' | 'prev_hash' | 'hash' | 'anchor';
  message: string;
}

export interface ChainReport {
  ok: boolean;
  records: number;
  headSeq: bigint;
  headHash: string;
  firstBreak: ChainBreak | null;
}

/**
 * Recomputes the whole chain from genesis, a page at a time, and names the first broken record:
 * a seq missing from the sequence (a deleted record), a stored prev_hash that is not the previous
 * record's hash (a record inserted or reordered), or a hash that does not match the record's
 * content (a record altered). With `anchor` (a seq and hash published earlier), also checks that
 * record is still there with that hash (the tail was not cut off).
 */
export async function verifyAuditChain(
  q: Queryable,
  opts: { anchor?: { seq: bigint; hash: string }; pageRows?: number; onProgress?: (records: number) => void } = {},
): Promise<ChainReport> {
  const pageRows = opts.pageRows ?? audit_verify_page_rows;
  let expectedSeq = 1n;
  let prev = audit_chain_genesis_hash_hex;
  let after = 0n;
  let records = 0;
  let anchorSeen = false;
  const report = (firstBreak: ChainBreak | null): ChainReport => ({ ok: firstBreak === null, records, headSeq: expectedSeq - 1n, headHash: prev, firstBreak });
  for (;;) {
    const page = await q.query<Row>(plans.page_after, [after.toString(), pageRows]);
    for (const row of page.rows) {
      const r = fromRow(row);
      if (r.seq !== expectedSeq) {
        return report({ seq: expectedSeq, reason: 'missing', message: `audit record ${expectedSeq} is missing (the next stored record is ${r.seq}): a record was deleted` });
      }
      if (r.prevHash !== prev) {
        return report({ seq: r.seq, reason: 'prev_hash', message: `audit record ${r.seq} does not chain from record ${r.seq - 1n}: a record was inserted, replaced or reordered` });
      }
      const h = chainHash(prev, auditRecordForHash(r.seq, r));
      if (h !== r.hash) {
        return report({ seq: r.seq, reason: 'hash', message: `audit record ${r.seq} does not match its hash: its content was altered` });
      }
      if (opts.anchor && r.seq === opts.anchor.seq) {
        if (r.hash !== opts.anchor.hash) {
          return report({ seq: r.seq, reason: 'anchor', message: `audit record ${r.seq} has hash ${r.hash}, not the published ${opts.anchor.hash}: the log was rewritten` });
        }
        anchorSeen = true;
      }
      prev = r.hash;
      expectedSeq = r.seq + 1n;
      records++;
    }
    opts.onProgress?.(records);
    if (page.rows.length < pageRows) break;
    after = page.rows[page.rows.length - 1].seq;
  }
  if (opts.anchor && !anchorSeen) {
    return report({ seq: opts.anchor.seq, reason: 'anchor', message: `published audit record ${opts.anchor.seq} is not in the log: records at the end were deleted` });
  }
  return report(null);
}
