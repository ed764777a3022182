/**
 * Who sees personal data in full, and why (the city regulation's "minimum necessary" rule).
 * A caller states a purpose (`X-Purpose` header or `purpose` query); the table below says which
 * fields that role may see unmasked for that purpose. Everything else is masked, and every read
 * is written to the audit log with the purpose and the fields revealed.
 *
 * | role | purpose | fields shown in full |
 * |---|---|---|
 * | admin (card service staff) | CARD_SERVICE | name, national_id, phone, address |
 * | admin | FRAUD_INVESTIGATION | name, national_id, phone, address |
 * | admin | COMPLAINT_HANDLING | name, phone, email, description |
 * | finance | FRAUD_INVESTIGATION | name, national_id, phone |
 * | auditor | AUDIT_REVIEW | name |
 * | any other role or purpose | | none |
 *
 * Pure: roles are plain strings here (the role list itself lives with the API keys).
 */
import { badRequest } from '../errors.ts';

export const purposes = ['CARD_SERVICE', 'FRAUD_INVESTIGATION', 'COMPLAINT_HANDLING', 'AUDIT_REVIEW'] as const;
export type Purpose = (typeof purposes)[number];

/** Personal fields the engine holds (a person's, and a complainant's contact details and text). */
export const pii_fields = ['name', 'national_id', 'phone', 'address', 'email', 'description'] as const;
export type PiiField = (typeof pii_fields)[number];

const person_all: readonly PiiField[] = ['name', 'national_id', 'phone', 'address'];

export const reveal_table: Readonly<Record<string, Readonly<Partial<Record<Purpose, readonly PiiField[]>>>>> = {
  admin: {
    CARD_SERVICE: person_all,
    FRAUD_INVESTIGATION: person_all,
    COMPLAINT_HANDLING: ['name', 'phone', 'email', 'description'],
  },
  finance: { FRAUD_INVESTIGATION: ['name', 'national_id', 'phone'] },
  auditor: { AUDIT_REVIEW: ['name'] },
};

export function isPurpose(s: string): s is Purpose {
  return (purposes as readonly string[]).includes(s);
}

/** A stated purpose, validated; undefined when none was stated. 400 PURPOSE_INVALID otherwise. */
export function parsePurpose(text: string | undefined): Purpose | undefined {
  if (text === undefined || text === '') return undefined;
  if (!isPurpose(text)) throw badRequest('PURPOSE_INVALID', `A purpose is one of ${purposes.join(', ')}.`);
  return text;
}

/** The fields `role` may see in full for `purpose` (none without a purpose). */
export function revealedFields(role: string, purpose: Purpose | undefined): readonly PiiField[] {
  if (purpose === undefined) return [];
  return reveal_table[role]?.[purpose] ?? [];
}

export type Masker = (value: string) => string;

/**
 * Each field shown either in full (if revealed) or through its mask; absent values stay null.
 * `masks` maps every field in `values` to its mask function.
 */
export function applyPolicy<F extends PiiField>(
  values: Readonly<Record<F, string | null>>,
  revealed: readonly PiiField[],
  masks: Readonly<Record<F, Masker>>,
): Record<F, string | null> {
  const out = {} as Record<F, string | null>;
  for (const k of Object.keys(values) as F[]) {
    const v = values[k];
    out[k] = v === null ? null : revealed.includes(k) ? v : masks[k](v);
  }
  return out;
}

/** Masks for fields engine/crypto has none for. */
export function maskAddress(address: string): string {
  // The district-level head (the first 6 characters) locates nobody; the rest does.
  const chars = Array.from(address);
  return chars.length <= 6 ? '*'.repeat(chars.length) : `${chars.slice(0, 6).join('')}${'*'.repeat(Math.min(chars.length - 6, 10))}`;
}

export function maskEmail(email: string): string {
  const at = email.indexOf('@');
  if (at <= 0) return '*'.repeat(Math.min(email.length, 10));
  return `${email[0]}***${email.slice(at)}`;
}

export function maskFreeText(text: string): string {
  return `[${Array.from(text).length} characters withheld]`;
}
