/**
 * The e-card QR pay code (CARD-SECURITY.md): `SSC1.<base64url(body)>.<base64url(sig)>`, where
 * body = card number as 20 BCD digits (10 bytes) || issued-at Unix seconds u32 BE || 4-byte
 * nonce, and sig = the first 16 bytes of HMAC-SM3 under the card's QR key.
 *
 * This module proves a code authentic and fresh. It does not prove it unused: the single-use
 * rule must hold across restarts and nodes, so it belongs with the database. The caller stores
 * the returned `codeId` under a unique constraint and refuses the code as a replay on conflict.
 */
import { randomBytes } from 'node:crypto';
import { DomainError } from '../../engine/errors.ts';
import type { KeyStore } from './keys.ts';
import { card_no_digits_max, card_no_digits_min, qr_sig_bytes } from './keys.ts';
import { bcdDecode, bcdEncodeInto, cryptoInputError, sm3Hex } from './sm.ts';

export const qr_code_prefix = 'SSC1.';
const card_no_bcd_bytes = 10;
const issued_at_offset = 10;
const nonce_offset = 14;
export const qr_nonce_bytes = 4;
export const qr_body_bytes = 18;
/** base64url without padding: 18 bytes are exactly 24 characters, 16 bytes are 22. */
const body_b64_chars = 24;
const sig_b64_chars = 22;
export const qr_code_chars = qr_code_prefix.length + body_b64_chars + 1 + sig_b64_chars;

/** A code is accepted from issued-at − 5 s (phone clocks run a little ahead of ours) ... */
export const qr_clock_skew_s_max = 5;
/** ... to issued-at + 60 s (the app refreshes the code every few seconds; 60 s bounds replay). */
export const qr_validity_s = 60;

const uint32_max = 0xffff_ffff;

export const qr_error = {
  /** 400: not an SSC1 code of the right shape. */
  malformed: 'QR_MALFORMED',
  /** 403: the signature does not verify under the current or previous QR key. */
  bad_signature: 'QR_BAD_SIGNATURE',
  /** 403: presented more than 60 s after issued-at. */
  expired: 'QR_EXPIRED',
  /** 403: presented more than 5 s before issued-at. */
  not_yet_valid: 'QR_NOT_YET_VALID',
} as const;

export interface QrCodeInput {
  /** 16..19 digits, no leading zero (the 20-digit field is left-padded with zeros). */
  cardNo: string;
  /** Unix seconds, unsigned 32-bit. */
  issuedAtS: number;
  /** 4 bytes; random when omitted. Only tests pass it, to reproduce the spec's vectors. */
  nonce4?: Uint8Array;
}

export interface VerifiedQrCode {
  cardNo: string;
  issuedAtS: number;
  /** The nonce as 8 lowercase hex characters. */
  nonceHex: string;
  /** Stable id of the code for the single-use check: SM3 of the body, 64 lowercase hex. */
  codeId: string;
  /** The QR key version that verified the signature (current or previous). */
  keyVersion: number;
}

const card_no_pattern = new RegExp(`^[1-9][0-9]{${card_no_digits_min - 1},${card_no_digits_max - 1}}$`);
const code_pattern = new RegExp(
  `^${qr_code_prefix.replace('.', '\\.')}([A-Za-z0-9_-]{${body_b64_chars}})\\.([A-Za-z0-9_-]{${sig_b64_chars}})$`,
);

/** The 18-byte body. */
export function encodeQrBody(input: QrCodeInput): Buffer {
  const { cardNo, issuedAtS } = input;
  // A leading zero would not survive the zero-padded field, so such a number is refused here
  // rather than silently becoming another card number on the way back.
  if (typeof cardNo !== 'string' || !card_no_pattern.test(cardNo)) {
    throw cryptoInputError(`card number must be ${card_no_digits_min}..${card_no_digits_max} digits, no leading zero`);
  }
  if (!Number.isInteger(issuedAtS) || issuedAtS < 0 || issuedAtS > uint32_max) {
    throw cryptoInputError('issued-at must be Unix seconds in 0..2^32-1');
  }
  const nonce = input.nonce4 ?? randomBytes(qr_nonce_bytes);
  if (nonce.byteLength !== qr_nonce_bytes) throw cryptoInputError(`nonce must be ${qr_nonce_bytes} bytes`);
  const body = Buffer.alloc(qr_body_bytes);
  bcdEncodeInto(cardNo, body, 0, card_no_bcd_bytes);
  body.writeUInt32BE(issuedAtS, issued_at_offset);
  body.set(nonce, nonce_offset);
  return body;
}

/** A QR pay code for a card, signed with the store's current QR key (or `keyVersion`). */
export function encodeQrCode(store: KeyStore, input: QrCodeInput, keyVersion?: number): string {
  const body = encodeQrBody(input);
  const sig = store.qrSign(input.cardNo, body, keyVersion);
  return `${qr_code_prefix}${body.toString('base64url')}.${sig.toString('base64url')}`;
}

function malformed(reason: string): DomainError {
  // The code itself is not echoed: it is a bearer credential for the next 60 seconds.
  return new DomainError(qr_error.malformed, 400, 'Not a valid SSC1 pay code', { reason });
}

/**
 * Decodes base64url of exactly `bytes` bytes, or undefined. Non-canonical spellings (non-zero
 * unused bits in the last character) are refused so that one code has exactly one spelling.
 */
function decodeCanonicalB64url(text: string, bytes: number): Buffer | undefined {
  const decoded = Buffer.from(text, 'base64url');
  if (decoded.byteLength !== bytes || decoded.toString('base64url') !== text) return undefined;
  return decoded;
}

/**
 * Parses a presented code and checks its signature, then its validity window at `nowS` (Unix
 * seconds, the engine's clock). Throws QR_MALFORMED, QR_BAD_SIGNATURE, QR_EXPIRED or
 * QR_NOT_YET_VALID. The signature is checked before the window so an unauthenticated code
 * learns nothing about timing rules. Replay is the caller's check, on `codeId`.
 */
export function parseAndVerifyQrCode(store: KeyStore, code: string, nowS: number): VerifiedQrCode {
  if (!Number.isFinite(nowS)) throw cryptoInputError('now must be Unix seconds');
  if (typeof code !== 'string' || code.length !== qr_code_chars) throw malformed('length');
  const match = code_pattern.exec(code);
  if (match === null) throw malformed('shape');
  const body = decodeCanonicalB64url(match[1], qr_body_bytes);
  const sig = decodeCanonicalB64url(match[2], qr_sig_bytes);
  if (body === undefined || sig === undefined) throw malformed('base64url');
  const digits = bcdDecode(body.subarray(0, card_no_bcd_bytes));
  if (digits === undefined) throw malformed('card number is not BCD');
  const cardNo = digits.replace(/^0+/, '');
  if (!card_no_pattern.test(cardNo)) throw malformed('card number length');

  const keyVersion = store.qrVerify(cardNo, body, sig);
  if (keyVersion === undefined) {
    throw new DomainError(qr_error.bad_signature, 403, 'The pay code signature does not verify');
  }

  const issuedAtS = body.readUInt32BE(issued_at_offset);
  if (nowS > issuedAtS + qr_validity_s) {
    throw new DomainError(qr_error.expired, 403, 'The pay code has expired; refresh it in the app', {
      ageS: nowS - issuedAtS,
      validityS: qr_validity_s,
    });
  }
  if (nowS < issuedAtS - qr_clock_skew_s_max) {
    throw new DomainError(qr_error.not_yet_valid, 403, 'The pay code is not valid yet; check the phone clock', {
      earlyS: issuedAtS - nowS,
      skewSMax: qr_clock_skew_s_max,
    });
  }
  return {
    cardNo,
    issuedAtS,
    nonceHex: body.subarray(nonce_offset).toString('hex'),
    codeId: qrCodeId(body),
    keyVersion,
  };
}

/** The id a code is remembered by for the single-use check: SM3(body) as lowercase hex. */
export function qrCodeId(body: Uint8Array): string {
  return sm3Hex(body);
}
