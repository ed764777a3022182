/**
 * Persons (cardholders): personal data sealed with the PII keyring, looked up by keyed blind
 * index, read through the masking policy, every read written to the audit log.
 */
import { notFound } from '../../engine/errors.ts';
import { applyPolicy, maskAddress, revealedFields, type PiiField, type Purpose } from '../../engine/cards/index.ts';
import { maskName, maskNationalId, maskPhone, normalizeNationalId, normalizePhone, type PiiKeyring } from '../crypto/index.ts';
import { appendAudit, type AuditEntry } from '../audit/index.ts';
import type { Queryable, Tx } from '../postgres/db.ts';
import { personIdText, type Actor } from './common.ts';

export const person_search_results_max = 20;

export const plans = {
  person_by_national_id_index: `SELECT id FROM person WHERE national_id_index = $1`,
  insert_person: `
    INSERT INTO person (name_sealed, national_id_sealed, phone_sealed, address_sealed, national_id_index, phone_index,
                        eligibility, eligibility_valid_until, pii_key_version, created_at, created_by)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT (national_id_index) DO NOTHING RETURNING id`,
  lock_person: `SELECT id FROM person WHERE id = $1 FOR UPDATE`,
  persons_by_ids: `
    SELECT id, name_sealed, national_id_sealed, phone_sealed, address_sealed, eligibility, eligibility_valid_until, created_at
    FROM person WHERE id = ANY ($1::bigint[]) ORDER BY id`,
  persons_by_phone_index: `SELECT id FROM person WHERE phone_index = $1 ORDER BY id LIMIT $2`,
  cards_of_persons: `
    SELECT person_id, card_no, form, linked_card_no, status, status_since, issuing_bank, replaced_by
    FROM card WHERE person_id = ANY ($1::bigint[]) ORDER BY person_id, created_at, card_no`,
  integrity_of_persons: `
    SELECT person_id, id, kind, case_id, at FROM integrity_record WHERE person_id = ANY ($1::bigint[]) ORDER BY person_id, id`,
} as const;

export interface PersonInput {
  name: string;
  /** Normalized. */
  nationalId: string;
  phone?: string;
  address?: string;
  eligibility: string;
  validUntil?: string;
}

/** Blind indexes of the two lookup keys (kinds fixed: changing one orphans every index value). */
export function nationalIdIndex(pii: PiiKeyring, nationalId: string): Buffer {
  return pii.blindIndex('national_id', normalizeNationalId(nationalId));
}

export function phoneIndex(pii: PiiKeyring, phone: string): Buffer {
  return pii.blindIndex('phone', normalizePhone(phone));
}

/**
 * The person with this national ID number, created if new; returns its id and whether it was
 * created. Locks the row: two applications of one person serialize here.
 */
export async function findOrCreatePerson(tx: Tx, pii: PiiKeyring, p: PersonInput, at: Date, actor: Actor): Promise<{ id: bigint; created: boolean }> {
  const idx = nationalIdIndex(pii, p.nationalId);
  const v = pii.currentVersion();
  const ins = await tx.query<{ id: bigint }>(plans.insert_person, [
    pii.seal(p.name, v), pii.seal(p.nationalId, v), p.phone === undefined ? null : pii.seal(p.phone, v),
    p.address === undefined ? null : pii.seal(p.address, v), idx, p.phone === undefined ? null : phoneIndex(pii, p.phone),
    p.eligibility, p.validUntil ?? null, v, at, actor.keyId,
  ]);
  if (ins.rows[0]) return { id: ins.rows[0].id, created: true };
  const found = await tx.query<{ id: bigint }>(plans.person_by_national_id_index, [idx]);
  const id = found.rows[0].id;
  await tx.query(plans.lock_person, [String(id)]);
  return { id, created: false };
}

export interface PersonView {
  person_id: string;
  name: string | null;
  national_id: string | null;
  phone: string | null;
  address: string | null;
  eligibility: string;
  eligibility_valid_until: string | null;
  created_at: string;
  cards: { card_no: string; form: string; linked_card_no: string | null; status: string; status_since: string; issuing_bank: string; replaced_by: string | null }[];
  integrity_records: { id: string; kind: string; case_id: string; at: string }[];
  /** Fields shown in full; the others are masked. */
  revealed: string[];
  purpose: string | null;
}

const person_masks = { name: maskName, national_id: maskNationalId, phone: maskPhone, address: maskAddress };

type PersonRow = {
  id: bigint; name_sealed: Buffer; national_id_sealed: Buffer; phone_sealed: Buffer | null; address_sealed: Buffer | null;
  eligibility: string; eligibility_valid_until: string | null; created_at: Date;
};

/**
 * Reads persons through the masking policy and appends one PERSON_READ audit record per person,
 * in the caller's transaction (so a read that cannot be audited is not answered).
 */
export async function readPersons(tx: Tx, pii: PiiKeyring, ids: readonly bigint[], reader: Actor, purpose: Purpose | undefined, at: Date, action = 'PERSON_READ'): Promise<PersonView[]> {
  if (ids.length === 0) return [];
  const idTexts = ids.map(String);
  // One client runs one query at a time: sequential, not Promise.all.
  const persons = await tx.query<PersonRow>(plans.persons_by_ids, [idTexts]);
  const cards = await tx.query<Record<string, unknown>>(plans.cards_of_persons, [idTexts]);
  const integrity = await tx.query<Record<string, unknown>>(plans.integrity_of_persons, [idTexts]);
  const revealed = revealedFields(reader.role, purpose);
  const views: PersonView[] = [];
  const audits: AuditEntry[] = [];
  for (const row of persons.rows) {
    const values = {
      name: pii.open(row.name_sealed),
      national_id: pii.open(row.national_id_sealed),
      phone: row.phone_sealed === null ? null : pii.open(row.phone_sealed),
      address: row.address_sealed === null ? null : pii.open(row.address_sealed),
    };
    const shown = applyPolicy(values, revealed, person_masks);
    const revealedHere = (Object.keys(values) as (keyof typeof values)[]).filter((k) => values[k] !== null && revealed.includes(k as PiiField));
    views.push({
      person_id: personIdText(row.id),
      ...shown,
      eligibility: row.eligibility,
      eligibility_valid_until: row.eligibility_valid_until,
      created_at: row.created_at.toISOString(),
      cards: cards.rows.filter((c) => c.person_id === row.id).map((c) => ({
        card_no: c.card_no as string, form: c.form as string, linked_card_no: c.linked_card_no as string | null, status: c.status as string,
        status_since: (c.status_since as Date).toISOString(), issuing_bank: c.issuing_bank as string, replaced_by: c.replaced_by as string | null,
      })),
      integrity_records: integrity.rows.filter((r) => r.person_id === row.id).map((r) => ({
        id: String(r.id), kind: r.kind as string, case_id: `case_${r.case_id}`, at: (r.at as Date).toISOString(),
      })),
      revealed: revealedHere,
      purpose: purpose ?? null,
    });
    audits.push({
      at, actor: reader.keyId, role: reader.role, purpose: purpose ?? null, action, subject: `person:${personIdText(row.id)}`,
      fields: revealedHere, details: {},
    });
  }
  await appendAudit(tx, audits);
  return views;
}

export async function readPerson(tx: Tx, pii: PiiKeyring, id: bigint, reader: Actor, purpose: Purpose | undefined, at: Date): Promise<PersonView> {
  const [view] = await readPersons(tx, pii, [id], reader, purpose, at);
  if (!view) throw notFound('PERSON_NOT_FOUND', 'No such person.');
  return view;
}

/** Person ids matching a national ID number (at most one) or a phone number (bounded). */
export async function findPersonIds(q: Queryable, pii: PiiKeyring, by: { nationalId?: string; phone?: string }): Promise<bigint[]> {
  if (by.nationalId !== undefined) {
    const r = await q.query<{ id: bigint }>(plans.person_by_national_id_index, [nationalIdIndex(pii, by.nationalId)]);
    return r.rows.map((x) => x.id);
  }
  if (by.phone !== undefined) {
    const r = await q.query<{ id: bigint }>(plans.persons_by_phone_index, [phoneIndex(pii, by.phone), person_search_results_max]);
    return r.rows.map((x) => x.id);
  }
  return [];
}
