/**
 * Card numbers the engine issues. 19 digits:
 *
 *     BIN (6) = 623198 | form (1): 1 physical, 2 e-card | serial (11) | Luhn check digit (1)
 *
 * 623198 is the issuing range assigned to the city's one-card programme in this deployment (a
 * constant here so a deployment with another range changes one line). Serials come from one
 * database sequence, so numbers never repeat; the form digit keeps a physical card's and an
 * e-card's numbers visibly apart at a service desk.
 */
export const card_bin = '623198';
export const card_no_digits = 19;
export const card_serial_digits = 11;
export const card_serial_max = 10n ** BigInt(card_serial_digits) - 1n;
export const card_form_digit = { PHYSICAL: '1', ECARD: '2' } as const;
export type IssuedForm = keyof typeof card_form_digit;

/** Luhn (ISO/IEC 7812) check digit of `payload` (digits only). */
export function luhnCheckDigit(payload: string): string {
  let sum = 0;
  // Doubling starts from the rightmost payload digit (the check digit will sit to its right).
  for (let i = payload.length - 1, double = true; i >= 0; i--, double = !double) {
    let d = payload.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

export function isLuhnValid(cardNo: string): boolean {
  return /^[0-9]{2,}$/.test(cardNo) && luhnCheckDigit(cardNo.slice(0, -1)) === cardNo[cardNo.length - 1];
}

/** The card number of serial `serial` (1..10^11-1) in `form`. */
export function cardNoFor(form: IssuedForm, serial: bigint): string {
  if (serial < 1n || serial > card_serial_max) throw new RangeError(`card serial ${serial} out of range`);
  const payload = `${card_bin}${card_form_digit[form]}${serial.toString().padStart(card_serial_digits, '0')}`;
  return payload + luhnCheckDigit(payload);
}
