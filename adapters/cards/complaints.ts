/**
 * Complaints: filed by anyone (contact details and text sealed), handled by staff, answered
 * within the deadline; the complainant reads the answer with the access code given at filing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { conflict, notFound } from '../../engine/errors.ts';
import { applyPolicy, maskEmail, maskFreeText, revealedFields, type PiiField, type Purpose } from '../../engine/cards/index.ts';
import { complaintIdText, dueAt, isOverdue, planComplaintStep, type ComplaintStep } from '../../engine/complaints/index.ts';
import { canonicalJson, maskName, maskPhone, normalizePhone, type PiiKeyring } from '../crypto/index.ts';
import { appendAudit } from '../audit/index.ts';
import { withTx, type Db, type Queryable } from '../postgres/db.ts';
import type { Actor } from './common.ts';

export const complaint_list_page_max = 500;
/** 128 bits of the keyed digest, as 26 base32 characters. */
const access_code_bytes = 16;
const base32_alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export const public_actor: Actor = { keyId: 'public', role: 'public' };

export const plans = {
  by_request: `SELECT id, request_fingerprint, state, filed_at, due_at FROM complaint WHERE request_id = $1`,
  insert: `
    INSERT INTO complaint (request_id, request_fingerprint, complainant_kind, category, contact_name_sealed, contact_phone_sealed,
                           contact_email_sealed, description_sealed, pii_key_version, access_code_sha256, state, filed_at, due_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'OPEN', $11, $12) RETURNING id`,
  insert_event: `INSERT INTO complaint_event (complaint_id, from_state, to_state, actor, note, at) VALUES ($1, $2, $3, $4, $5, $6)`,
  lock: `SELECT id, state FROM complaint WHERE id = $1 FOR UPDATE`,
  assign: `UPDATE complaint SET state = 'ASSIGNED', assignee = $2 WHERE id = $1`,
  answer: `UPDATE complaint SET state = 'ANSWERED', answer = $2, answered_at = $3, answered_by = $4 WHERE id = $1`,
  public_view: `SELECT id, state, category, complainant_kind, filed_at, due_at, answer, answered_at, access_code_sha256 FROM complaint WHERE id = $1`,
  detail: `
    SELECT id, state, category, complainant_kind, contact_name_sealed, contact_phone_sealed, contact_email_sealed, description_sealed,
           assignee, answer, answered_at, answered_by, filed_at, due_at FROM complaint WHERE id = $1`,
  events_of: `SELECT from_state, to_state, actor, note, at FROM complaint_event WHERE complaint_id = $1 ORDER BY id LIMIT 1000`,
  list: `
    SELECT id, state, category, complainant_kind, assignee, filed_at, due_at, answered_at FROM complaint
    WHERE id > $1 AND ($2::text IS NULL OR state = $2) AND (NOT $3 OR (state <> 'ANSWERED' AND due_at < $4))
    ORDER BY id LIMIT $5`,
} as const;

function base32(bytes: Uint8Array): string {
  let bits = 0, value = 0, out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += base32_alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += base32_alphabet[(value << (5 - bits)) & 31];
  return out;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export interface ComplaintInput {
  requestId: string;
  complainantKind: string;
  category: string;
  contact: { name: string; phone?: string; email?: string };
  description: string;
}

export interface FiledComplaint {
  complaint_id: string;
  access_code: string;
  state: string;
  filed_at: string;
  due_at: string;
  replayed: boolean;
}

export async function fileComplaint(db: Db, pii: PiiKeyring, input: ComplaintInput, now: Date, deadlineDays: number): Promise<FiledComplaint> {
  const phone = input.contact.phone === undefined ? undefined : normalizePhone(input.contact.phone);
  const content = canonicalJson({ kind: input.complainantKind, category: input.category, name: input.contact.name, phone, email: input.contact.email, description: input.description });
  const fingerprint = pii.blindIndex('complaint', content);
  // Derived, not random, so a replayed filing gets the same code back; keyed, so nobody without
  // the index key can compute one. Only its SHA-256 is stored.
  const accessCode = base32(pii.blindIndex('complaint_access', `${input.requestId}:${fingerprint.toString('hex')}`).subarray(0, access_code_bytes));
  return withTx(db, async (tx) => {
    const prior = await tx.query<{ id: bigint; request_fingerprint: Buffer; state: string; filed_at: Date; due_at: Date }>(plans.by_request, [input.requestId]);
    if (prior.rows[0]) {
      const p = prior.rows[0];
      if (!p.request_fingerprint.equals(fingerprint)) throw conflict('IDEMPOTENCY_CONFLICT', 'This request id was already used for a different complaint.');
      return { complaint_id: complaintIdText(p.id), access_code: accessCode, state: p.state, filed_at: p.filed_at.toISOString(), due_at: p.due_at.toISOString(), replayed: true };
    }
    const v = pii.currentVersion();
    const due = dueAt(now, deadlineDays);
    const r = await tx.query<{ id: bigint }>(plans.insert, [
      input.requestId, fingerprint, input.complainantKind, input.category, pii.seal(input.contact.name, v),
      phone === undefined ? null : pii.seal(phone, v), input.contact.email === undefined ? null : pii.seal(input.contact.email, v),
      pii.seal(input.description, v), v, sha256(accessCode), now, due,
    ]);
    const id = r.rows[0].id;
    await tx.query(plans.insert_event, [String(id), null, 'OPEN', public_actor.keyId, null, now]);
    await appendAudit(tx, [{
      at: now, actor: public_actor.keyId, role: public_actor.role, purpose: null, action: 'COMPLAINT_FILE', subject: `complaint:${complaintIdText(id)}`,
      fields: [], details: { category: input.category, complainant_kind: input.complainantKind },
    }]);
    return { complaint_id: complaintIdText(id), access_code: accessCode, state: 'OPEN', filed_at: now.toISOString(), due_at: due.toISOString(), replayed: false };
  });
}

export interface PublicComplaintView {
  complaint_id: string;
  state: string;
  category: string;
  filed_at: string;
  due_at: string;
  overdue: boolean;
  answer: string | null;
  answered_at: string | null;
}

/** The complainant's view; an unknown id and a wrong code look the same (404). */
export async function getComplaintPublic(q: Queryable, id: bigint, accessCode: string, now: Date): Promise<PublicComplaintView> {
  const r = await q.query<{ id: bigint; state: string; category: string; filed_at: Date; due_at: Date; answer: string | null; answered_at: Date | null; access_code_sha256: Buffer }>(plans.public_view, [String(id)]);
  const row = r.rows[0];
  const presented = sha256(accessCode);
  const ok = timingSafeEqual(presented, row ? row.access_code_sha256 : Buffer.alloc(32));
  if (!row || !ok) throw notFound('COMPLAINT_NOT_FOUND', 'No complaint with this id and access code.');
  return {
    complaint_id: complaintIdText(row.id), state: row.state, category: row.category, filed_at: row.filed_at.toISOString(), due_at: row.due_at.toISOString(),
    overdue: isOverdue(row.state, row.due_at, now), answer: row.answer, answered_at: row.answered_at?.toISOString() ?? null,
  };
}

export interface ComplaintSummary {
  complaint_id: string;
  state: string;
  category: string;
  complainant_kind: string;
  assignee: string | null;
  filed_at: string;
  due_at: string;
  answered_at: string | null;
  overdue: boolean;
}

export async function listComplaints(q: Queryable, after: bigint, limit: number, f: { state?: string; overdue?: boolean }, now: Date): Promise<ComplaintSummary[]> {
  const r = await q.query<{ id: bigint; state: string; category: string; complainant_kind: string; assignee: string | null; filed_at: Date; due_at: Date; answered_at: Date | null }>(
    plans.list, [String(after), f.state ?? null, f.overdue === true, now, Math.min(limit, complaint_list_page_max)]);
  return r.rows.map((x) => ({
    complaint_id: complaintIdText(x.id), state: x.state, category: x.category, complainant_kind: x.complainant_kind, assignee: x.assignee,
    filed_at: x.filed_at.toISOString(), due_at: x.due_at.toISOString(), answered_at: x.answered_at?.toISOString() ?? null,
    overdue: isOverdue(x.state, x.due_at, now),
  }));
}

export interface ComplaintDetail extends ComplaintSummary {
  contact: { name: string | null; phone: string | null; email: string | null };
  description: string | null;
  answer: string | null;
  answered_by: string | null;
  events: { from_state: string | null; to_state: string; actor: string; note: string | null; at: string }[];
  revealed: string[];
  purpose: string | null;
}

const complaint_masks = { name: maskName, phone: maskPhone, email: maskEmail, description: maskFreeText };

/** Staff's view, through the masking policy; the read is audited in the same transaction. */
export async function getComplaintDetail(db: Db, pii: PiiKeyring, id: bigint, reader: Actor, purpose: Purpose | undefined, now: Date): Promise<ComplaintDetail> {
  return withTx(db, async (tx) => {
    const r = await tx.query<Record<string, unknown>>(plans.detail, [String(id)]);
    const row = r.rows[0];
    if (!row) throw notFound('COMPLAINT_NOT_FOUND', 'No such complaint.');
    const open = (b: unknown) => (b === null ? null : pii.open(b as Buffer));
    const values = { name: open(row.contact_name_sealed), phone: open(row.contact_phone_sealed), email: open(row.contact_email_sealed), description: open(row.description_sealed) };
    const revealed = revealedFields(reader.role, purpose);
    const shown = applyPolicy(values, revealed, complaint_masks);
    const revealedHere = (Object.keys(values) as (keyof typeof values)[]).filter((k) => values[k] !== null && revealed.includes(k as PiiField));
    const events = await tx.query<Record<string, unknown>>(plans.events_of, [String(id)]);
    await appendAudit(tx, [{ at: now, actor: reader.keyId, role: reader.role, purpose: purpose ?? null, action: 'COMPLAINT_READ', subject: `complaint:${complaintIdText(id)}`, fields: revealedHere, details: {} }]);
    const due = row.due_at as Date;
    return {
      complaint_id: complaintIdText(id), state: row.state as string, category: row.category as string, complainant_kind: row.complainant_kind as string,
      assignee: row.assignee as string | null, filed_at: (row.filed_at as Date).toISOString(), due_at: due.toISOString(),
      answered_at: (row.answered_at as Date | null)?.toISOString() ?? null, overdue: isOverdue(row.state as string, due, now),
      contact: { name: shown.name, phone: shown.phone, email: shown.email }, description: shown.description,
      answer: row.answer as string | null, answered_by: row.answered_by as string | null,
      events: events.rows.map((e) => ({ from_state: e.from_state as string | null, to_state: e.to_state as string, actor: e.actor as string, note: e.note as string | null, at: (e.at as Date).toISOString() })),
      revealed: revealedHere, purpose: purpose ?? null,
    };
  });
}

export async function stepComplaint(db: Db, id: bigint, s: ComplaintStep, text: string, actor: Actor, now: Date): Promise<void> {
  await withTx(db, async (tx) => {
    const r = await tx.query<{ id: bigint; state: string }>(plans.lock, [String(id)]);
    if (!r.rows[0]) throw notFound('COMPLAINT_NOT_FOUND', 'No such complaint.');
    const plan = planComplaintStep(r.rows[0].state, s);
    if (s === 'ASSIGN') await tx.query(plans.assign, [String(id), text]);
    else await tx.query(plans.answer, [String(id), text, now, actor.keyId]);
    await tx.query(plans.insert_event, [String(id), plan.from, plan.to, actor.keyId, s === 'ASSIGN' ? `assigned to ${text}`.slice(0, 500) : 'answered', now]);
    await appendAudit(tx, [{
      at: now, actor: actor.keyId, role: actor.role, purpose: null, action: `COMPLAINT_${s}`, subject: `complaint:${complaintIdText(id)}`, fields: [],
      details: { from_state: plan.from, to_state: plan.to, assignee: s === 'ASSIGN' ? text : null },
    }]);
  });
}
