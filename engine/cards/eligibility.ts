/**
 * Who may hold the city's social security card, and the checks made on an application before a
 * card is issued. Pure: today's date is passed in.
 *
 * Every person row records the basis it was issued on (`person.eligibility`):
 *
 * | basis | who | needs `valid_until` |
 * |---|---|---|
 * | LOCAL_HOUSEHOLD | household (hukou) registered in the city | no |
 * | RESIDENCE_PERMIT | holder of the city's residence permit | yes: the permit's expiry |
 * | INSURED_EMPLOYEE | enrolled in the city's employee social insurance through an employer | no |
 * | INSURED_RESIDENT | enrolled in the city's urban-rural residents' medical or pension insurance | no |
 * | HMT_RESIDENT | Hong Kong, Macao or Taiwan resident with a mainland residence permit (ID 81/82/83…) | yes |
 * | FOREIGN_PERMANENT_RESIDENT | foreigner with a permanent residence ID card (ID 9…) | yes |
 */
import { badRequest, unprocessable } from '../errors.ts';

export const eligibility_bases = [
  'LOCAL_HOUSEHOLD', 'RESIDENCE_PERMIT', 'INSURED_EMPLOYEE', 'INSURED_RESIDENT', 'HMT_RESIDENT', 'FOREIGN_PERMANENT_RESIDENT',
] as const;
export type EligibilityBasis = (typeof eligibility_bases)[number];

const bases_needing_validity: readonly EligibilityBasis[] = ['RESIDENCE_PERMIT', 'HMT_RESIDENT', 'FOREIGN_PERMANENT_RESIDENT'];

/** GB 11643-1999: 17 digits and a check character (0-9 or X). */
const national_id_pattern = /^[0-9]{17}[0-9X]$/;
const id_weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2] as const;
const id_check_chars = '10X98765432';
/** A person's name as written on the card: 1..50 characters, no control characters. */
export const person_name_chars_max = 50;
export const address_chars_max = 200;
const control_chars = /[\u0000-\u001f\u007f]/;
/** Mainland mobile numbers: 11 digits starting with 1. */
const phone_pattern = /^1[3-9][0-9]{9}$/;

/** The GB 11643 check character of the first 17 digits. */
export function nationalIdCheckChar(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * id_weights[i];
  return id_check_chars[sum % 11];
}

/** Birth date (YYYY-MM-DD) of a valid 18-character ID number, or null if it is not a real date. */
export function birthDateOf(nationalId: string): string | null {
  const y = nationalId.slice(6, 10), m = nationalId.slice(10, 12), d = nationalId.slice(12, 14);
  const iso = `${y}-${m}-${d}`;
  const ms = Date.parse(`${iso}T00:00:00Z`);
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== iso) return null;
  return iso;
}

/** True for a well-formed 18-character ID number with a correct check character and birth date. */
export function isValidNationalId(nationalId: string): boolean {
  if (!national_id_pattern.test(nationalId)) return false;
  if (nationalIdCheckChar(nationalId.slice(0, 17)) !== nationalId[17]) return false;
  return birthDateOf(nationalId) !== null;
}

export interface ApplicantInput {
  /** Normalized (engine/crypto normalizeNationalId): no spaces, X uppercased. */
  nationalId: string;
  name: string;
  /** Normalized mobile number, or undefined. */
  phone?: string;
  address?: string;
  basis: string;
  /** YYYY-MM-DD: the permit's or residence ID's expiry, for the bases that need one. */
  validUntil?: string;
}

/**
 * Checks an application; throws a 400 for malformed input, a 422 for a well-formed applicant who
 * is not eligible today. Returns the basis, typed.
 */
export function checkEligibility(a: ApplicantInput, today: string): EligibilityBasis {
  if (!(eligibility_bases as readonly string[]).includes(a.basis)) {
    throw badRequest('ELIGIBILITY_BASIS_INVALID', `The eligibility basis must be one of ${eligibility_bases.join(', ')}.`);
  }
  const basis = a.basis as EligibilityBasis;
  if (!isValidNationalId(a.nationalId)) {
    throw badRequest('NATIONAL_ID_INVALID', 'The national ID number is not a valid 18-character GB 11643 number.');
  }
  const name = a.name.trim();
  if (name.length === 0 || Array.from(name).length > person_name_chars_max || control_chars.test(name)) {
    throw badRequest('NAME_INVALID', `A name is 1..${person_name_chars_max} printable characters.`);
  }
  if (a.phone !== undefined && !phone_pattern.test(a.phone)) {
    throw badRequest('PHONE_INVALID', 'A phone number is an 11-digit mainland mobile number.');
  }
  if (a.address !== undefined && (a.address.length > address_chars_max || control_chars.test(a.address))) {
    throw badRequest('ADDRESS_INVALID', `An address is at most ${address_chars_max} printable characters.`);
  }
  const birth = birthDateOf(a.nationalId) as string;
  if (birth > today) throw badRequest('NATIONAL_ID_INVALID', 'The national ID number gives a birth date in the future.');

  const prefix = a.nationalId.slice(0, 2);
  const isHmt = prefix === '81' || prefix === '82' || prefix === '83';
  const isForeign = a.nationalId[0] === '9';
  if (basis === 'HMT_RESIDENT' && !isHmt) {
    throw unprocessable('NOT_ELIGIBLE', 'An HMT_RESIDENT applicant holds a residence permit number starting 81, 82 or 83.');
  }
  if (basis === 'FOREIGN_PERMANENT_RESIDENT' && !isForeign) {
    throw unprocessable('NOT_ELIGIBLE', 'A FOREIGN_PERMANENT_RESIDENT applicant holds a permanent residence ID starting 9.');
  }
  if ((basis === 'LOCAL_HOUSEHOLD') && (isHmt || isForeign)) {
    throw unprocessable('NOT_ELIGIBLE', 'A LOCAL_HOUSEHOLD applicant holds a mainland resident ID number.');
  }
  if (bases_needing_validity.includes(basis)) {
    if (a.validUntil === undefined) {
      throw badRequest('VALID_UNTIL_REQUIRED', `The ${basis} basis needs the document's expiry date (valid_until).`);
    }
    if (a.validUntil < today) {
      throw unprocessable('ELIGIBILITY_EXPIRED', `The ${basis} document expired on ${a.validUntil}.`);
    }
  }
  return basis;
}

export function needsValidity(basis: EligibilityBasis): boolean {
  return bases_needing_validity.includes(basis);
}
