/**
 * Card applications: an eligible person gets a physical card (ISSUED) and a linked e-card, in one
 * transaction, idempotent by the application id.
 */
import { conflict, DomainError, unprocessable } from '../../engine/errors.ts';
import { cardNoFor, checkEligibility, type IssuedForm } from '../../engine/cards/index.ts';
import { shanghaiDate } from '../../engine/clearing/calendar.ts';
import { canonicalJson, normalizeNationalId, normalizePhone, type PiiKeyring } from '../crypto/index.ts';
import { appendAudit } from '../audit/index.ts';
import { withTx, type Db, type Queryable } from '../postgres/db.ts';
import { personIdText, plans as common_plans, writeReferenceEvents, writeStatusChanges, type Actor } from './common.ts';
import { findOrCreatePerson } from './persons.ts';

/** Drawing a number that an imported card already uses is possible but rare; a few tries settle it. */
const card_no_draws_max = 8;

export const plans = {
  lock_application: `SELECT pg_advisory_xact_lock(7310, hashtext($1))`,
  application_by_id: `
    SELECT id, person_id, eligibility, issuing_bank, physical_card_no, ecard_no, channel, request_fingerprint, created_at
    FROM card_application WHERE id = $1`,
  bank_exists: `SELECT 1 FROM bank WHERE code = $1`,
  person_name: `SELECT name_sealed FROM person WHERE id = $1`,
  live_physical_cards_of_person: `SELECT card_no FROM card WHERE person_id = $1 AND form = 'PHYSICAL' AND status <> 'CANCELLED' LIMIT 1`,
  insert_application: `
    INSERT INTO card_application (id, person_id, eligibility, issuing_bank, physical_card_no, ecard_no, channel, request_fingerprint, created_at, created_by)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
} as const;

export interface ApplicationInput {
  applicationId: string;
  person: { name: string; nationalId: string; phone?: string; address?: string };
  eligibility: { basis: string; validUntil?: string };
  issuingBank: string;
  channel: string;
}

export interface ApplicationResult {
  application_id: string;
  person_id: string;
  eligibility: string;
  issuing_bank: string;
  channel: string;
  cards: { card_no: string; form: 'PHYSICAL' | 'ECARD'; linked_card_no: string | null; status: 'ISSUED' }[];
  created_at: string;
  replayed: boolean;
}

function resultOf(row: Record<string, unknown>, replayed: boolean): ApplicationResult {
  const physical = row.physical_card_no as string;
  return {
    application_id: row.id as string,
    person_id: personIdText(row.person_id as bigint),
    eligibility: row.eligibility as string,
    issuing_bank: row.issuing_bank as string,
    channel: row.channel as string,
    cards: [
      { card_no: physical, form: 'PHYSICAL', linked_card_no: null, status: 'ISSUED' },
      { card_no: row.ecard_no as string, form: 'ECARD', linked_card_no: physical, status: 'ISSUED' },
    ],
    created_at: (row.created_at as Date).toISOString(),
    replayed,
  };
}

/** Inserts a new ISSUED card under a freshly drawn number. */
export async function issueCard(q: Queryable, form: IssuedForm, issuingBank: string, personId: bigint | null, linkedCardNo: string | null, at: Date): Promise<string> {
  for (let i = 0; i < card_no_draws_max; i++) {
    const s = await q.query<{ serial: bigint }>(common_plans.next_serial);
    const cardNo = cardNoFor(form, s.rows[0].serial);
    const ins = await q.query(common_plans.insert_card, [cardNo, issuingBank, form === 'PHYSICAL' ? 'PHYSICAL' : 'ECARD', linkedCardNo, personId === null ? null : String(personId), at]);
    if (ins.rows.length === 1) return cardNo;
  }
  throw new DomainError('CARD_NUMBER_EXHAUSTED', 500, 'No free card number could be drawn; the issuing range needs attention.');
}

export async function applyForCard(db: Db, pii: PiiKeyring, input: ApplicationInput, actor: Actor, now: Date): Promise<ApplicationResult> {
  const nationalId = normalizeNationalId(input.person.nationalId);
  const phone = input.person.phone === undefined ? undefined : normalizePhone(input.person.phone);
  const name = input.person.name.trim();
  const address = input.person.address?.trim();
  const basis = checkEligibility({ nationalId, name, phone, address, basis: input.eligibility.basis, validUntil: input.eligibility.validUntil }, shanghaiDate(now));
  // Keyed (blind-index key), so the fingerprint of a request full of personal data reveals none.
  const fingerprint = pii.blindIndex('card_application', canonicalJson({
    name, nationalId, phone, address, basis, validUntil: input.eligibility.validUntil, issuingBank: input.issuingBank, channel: input.channel,
  }));

  return withTx(db, async (tx) => {
    await tx.query(plans.lock_application, [input.applicationId]);
    const existing = await tx.query(plans.application_by_id, [input.applicationId]);
    if (existing.rows[0]) {
      if (!(existing.rows[0].request_fingerprint as Buffer).equals(fingerprint)) {
        throw conflict('IDEMPOTENCY_CONFLICT', 'This application id was already used for a different application.', { application_id: input.applicationId });
      }
      return resultOf(existing.rows[0], true);
    }
    const bank = await tx.query(plans.bank_exists, [input.issuingBank]);
    if (bank.rows.length === 0) throw unprocessable('BANK_UNKNOWN', 'The issuing bank is not a registered cooperating bank.');

    const person = await findOrCreatePerson(tx, pii, { name, nationalId, phone, address, eligibility: basis, validUntil: input.eligibility.validUntil }, now, actor);
    if (!person.created) {
      // The ID number is on record: the name given must be the one on record too, or this is a
      // typo or someone applying with another's number; staff correct the record first.
      const stored = await tx.query<{ name_sealed: Buffer }>(plans.person_name, [String(person.id)]);
      if (pii.open(stored.rows[0].name_sealed) !== name) {
        throw conflict('PERSON_MISMATCH', 'This national ID number is on record under another name.', { person_id: personIdText(person.id) });
      }
      const live = await tx.query(plans.live_physical_cards_of_person, [String(person.id)]);
      if (live.rows.length > 0) {
        throw conflict('CARD_ALREADY_HELD', 'This person already holds a valid card; ask for a replacement instead.', { person_id: personIdText(person.id) });
      }
    }
    const physical = await issueCard(tx, 'PHYSICAL', input.issuingBank, person.id, null, now);
    const ecard = await issueCard(tx, 'ECARD', input.issuingBank, person.id, physical, now);
    await writeStatusChanges(tx, [{ cardNo: physical, status: 'ISSUED' }, { cardNo: ecard, status: 'ISSUED' }], now, actor.keyId, `application ${input.applicationId}`);
    await writeReferenceEvents(tx, [{ cardNo: physical, action: 'CREATED', changes: null }, { cardNo: ecard, action: 'CREATED', changes: null }], actor.keyId, now);
    await tx.query(plans.insert_application, [
      input.applicationId, String(person.id), basis, input.issuingBank, physical, ecard, input.channel, fingerprint, now, actor.keyId,
    ]);
    const subject = `person:${personIdText(person.id)}`;
    await appendAudit(tx, [
      ...(person.created ? [{ at: now, actor: actor.keyId, role: actor.role, purpose: null, action: 'PERSON_CREATE', subject, fields: [], details: { eligibility: basis } }] : []),
      {
        at: now, actor: actor.keyId, role: actor.role, purpose: null, action: 'CARD_APPLICATION', subject,
        fields: [], details: { application_id: input.applicationId, physical_card_no: physical, ecard_no: ecard, channel: input.channel, issuing_bank: input.issuingBank },
      },
    ]);
    const row = (await tx.query(plans.application_by_id, [input.applicationId])).rows[0];
    return resultOf(row, false);
  });
}

export async function getApplication(q: Queryable, applicationId: string): Promise<ApplicationResult | null> {
  const r = await q.query(plans.application_by_id, [applicationId]);
  return r.rows[0] ? resultOf(r.rows[0], false) : null;
}
