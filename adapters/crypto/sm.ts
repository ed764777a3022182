/**
 * Low-level national-algorithm helpers (SM4 block cipher, SM3 hash, HMAC-SM3) over Node's
 * built-in OpenSSL 3, plus the BCD and hex codecs the card formats are written in.
 *
 * Everything here is pure and synchronous. The card formats (CARD-SECURITY.md) are fixed by
 * third parties, so these helpers do exactly one documented thing each and never guess: a
 * malformed input is refused, never silently padded or truncated.
 */
import { createCipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Cipher } from 'node:crypto';
import { inspect } from 'node:util';
import { DomainError } from '../../engine/errors.ts';

/** SM4 has a 128-bit key and a 128-bit block (GB/T 32907). */
export const sm4_key_bytes = 16;
export const sm4_block_bytes = 16;
/** SM3 digests are 256 bits (GB/T 32905). */
export const sm3_digest_bytes = 32;

const zero_iv = Buffer.alloc(sm4_block_bytes);

/** Refusal code for malformed inputs to the crypto helpers (a caller bug or bad data). */
export const crypto_input_invalid = 'CRYPTO_INPUT_INVALID';

/**
 * Made in one place so no helper is tempted to put the offending value in the message: the
 * values reaching these functions are keys, card numbers and personal data.
 */
export function cryptoInputError(message: string, details?: Record<string, unknown>): DomainError {
  return new DomainError(crypto_input_invalid, 400, message, details);
}

function assertKey16(key: Uint8Array, what: string): void {
  if (key.byteLength !== sm4_key_bytes) {
    throw cryptoInputError(`${what} must be ${sm4_key_bytes} bytes`, { bytes: key.byteLength });
  }
}

// ---------------------------------------------------------------------------------------------
// SM4
// ---------------------------------------------------------------------------------------------

/** SM4-ECB encryption of exactly one 16-byte block. */
export function sm4EcbEncryptBlock(key16: Uint8Array, block16: Uint8Array): Buffer {
  assertKey16(key16, 'SM4 key');
  if (block16.byteLength !== sm4_block_bytes) {
    throw cryptoInputError(`SM4 block must be ${sm4_block_bytes} bytes`, { bytes: block16.byteLength });
  }
  return sm4EcbEncrypt(key16, block16);
}

/** SM4-ECB encryption of whole blocks, no padding. */
export function sm4EcbEncrypt(key16: Uint8Array, blocks: Uint8Array): Buffer {
  assertKey16(key16, 'SM4 key');
  if (blocks.byteLength % sm4_block_bytes !== 0) {
    throw cryptoInputError('SM4-ECB input must be a whole number of blocks', { bytes: blocks.byteLength });
  }
  const cipher = createCipheriv('sm4-ecb', key16, null);
  cipher.setAutoPadding(false);
  const head = cipher.update(blocks);
  const tail = cipher.final();
  return tail.byteLength === 0 ? head : Buffer.concat([head, tail]);
}

/**
 * A long-lived SM4-ECB encryptor for one key. OpenSSL keeps no state between ECB blocks and,
 * without padding, `update` returns every whole block at once, so one cipher context can
 * encrypt block after block forever. That saves the key schedule and the context allocation
 * per call, which matters for key diversification under a master key on every cache miss.
 * `final()` is never called on purpose: it would end the context.
 */
export class Sm4EcbEncryptor {
  readonly #cipher: Cipher;

  constructor(key16: Uint8Array) {
    assertKey16(key16, 'SM4 key');
    this.#cipher = createCipheriv('sm4-ecb', key16, null);
    this.#cipher.setAutoPadding(false);
  }

  /** Encrypts whole blocks; returns a fresh buffer of the same length. */
  encrypt(blocks: Uint8Array): Buffer {
    if (blocks.byteLength === 0 || blocks.byteLength % sm4_block_bytes !== 0) {
      throw cryptoInputError('SM4-ECB input must be a whole number of blocks', { bytes: blocks.byteLength });
    }
    const out = this.#cipher.update(blocks);
    // Cannot happen with OpenSSL's ECB; checked because a short block here would be a wrong key.
    if (out.byteLength !== blocks.byteLength) throw new Error('SM4-ECB encryptor returned a short output');
    return out;
  }

  // The context holds the key schedule: keep it out of logs.
  toJSON(): Record<string, string> {
    return { kind: 'Sm4EcbEncryptor' };
  }
  [inspect.custom](): string {
    return 'Sm4EcbEncryptor { [redacted] }';
  }
}

/**
 * Padding of ISO/IEC 9797-1 method 2 (the PBOC MAC padding): one 0x80 byte, then 0x00 up to a
 * multiple of the block size. Always adds at least one byte, so no two messages pad alike.
 */
export function padIso9797M2(message: Uint8Array): Buffer {
  const padded = Buffer.alloc((Math.floor(message.byteLength / sm4_block_bytes) + 1) * sm4_block_bytes);
  padded.set(message, 0);
  padded[message.byteLength] = 0x80;
  return padded;
}

/**
 * SM4-CBC-MAC of already padded blocks with a zero IV: the last cipher block (16 bytes).
 * Callers truncate (the TAC keeps 4 bytes).
 */
export function sm4CbcMacLastBlock(key16: Uint8Array, paddedBlocks: Uint8Array): Buffer {
  assertKey16(key16, 'SM4 key');
  if (paddedBlocks.byteLength === 0 || paddedBlocks.byteLength % sm4_block_bytes !== 0) {
    throw cryptoInputError('SM4-CBC-MAC input must be a whole number of blocks', {
      bytes: paddedBlocks.byteLength,
    });
  }
  const cipher = createCipheriv('sm4-cbc', key16, zero_iv);
  cipher.setAutoPadding(false);
  const out = cipher.update(paddedBlocks);
  return out.subarray(out.byteLength - sm4_block_bytes);
}

/** SM4-CBC-MAC with ISO 9797-1 method 2 padding: the last cipher block (16 bytes). */
export function sm4CbcMac(key16: Uint8Array, message: Uint8Array): Buffer {
  return sm4CbcMacLastBlock(key16, padIso9797M2(message));
}

/** SM4-CTR (a stream mode: any length, no padding); encryption and decryption are the same. */
export function sm4Ctr(key16: Uint8Array, iv16: Uint8Array, data: Uint8Array): Buffer {
  assertKey16(key16, 'SM4 key');
  if (iv16.byteLength !== sm4_block_bytes) {
    throw cryptoInputError(`SM4-CTR IV must be ${sm4_block_bytes} bytes`, { bytes: iv16.byteLength });
  }
  const cipher = createCipheriv('sm4-ctr', key16, iv16);
  const head = cipher.update(data);
  const tail = cipher.final();
  return tail.byteLength === 0 ? head : Buffer.concat([head, tail]);
}

// ---------------------------------------------------------------------------------------------
// SM3 and HMAC-SM3
// ---------------------------------------------------------------------------------------------

/** SM3 digest (32 bytes) of the concatenation of `parts`. */
export function sm3(...parts: Uint8Array[]): Buffer {
  const hash = createHash('sm3');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

export function sm3Hex(...parts: Uint8Array[]): string {
  return sm3(...parts).toString('hex');
}

/** HMAC-SM3 (RFC 2104 over SM3, 32 bytes) of the concatenation of `parts`. */
export function hmacSm3(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  if (key.byteLength === 0) throw cryptoInputError('HMAC-SM3 key must not be empty');
  const hmac = createHmac('sm3', key);
  for (const part of parts) hmac.update(part);
  return hmac.digest();
}

/**
 * Constant-time equality of two byte strings. Lengths are not secret (they are fixed by the
 * formats), so a length mismatch returns early; equal lengths are compared in constant time.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return timingSafeEqual(a, b);
}

// ---------------------------------------------------------------------------------------------
// BCD and hex
// ---------------------------------------------------------------------------------------------

const char_0 = 0x30;
const char_9 = 0x39;

/**
 * Packs decimal digits into BCD (two digits a byte, first digit in the high nibble), left-padded
 * with 0 digits to fill `byteLength` bytes, written at `out[offset..offset+byteLength)`.
 * Returns false, having possibly written part of the range, if `digits` holds a non-digit or
 * more than `2 * byteLength` digits. No allocation: it runs for every tap.
 */
export function bcdEncodeInto(digits: string, out: Uint8Array, offset: number, byteLength: number): boolean {
  const nibbles = byteLength * 2;
  const pad = nibbles - digits.length;
  if (pad < 0) return false;
  for (let n = 0; n < nibbles; n += 2) {
    const hi = n < pad ? 0 : digits.charCodeAt(n - pad) - char_0;
    const lo = n + 1 < pad ? 0 : digits.charCodeAt(n + 1 - pad) - char_0;
    // charCodeAt past the end is NaN, and NaN fails both comparisons, so `!(x >= 0 && x <= 9)`.
    if (!(hi >= 0 && hi <= 9) || !(lo >= 0 && lo <= 9)) return false;
    out[offset + (n >> 1)] = (hi << 4) | lo;
  }
  return true;
}

/**
 * BCD of a digit string. `byteLength` defaults to the fewest bytes that hold all digits (an odd
 * count gets a leading 0 digit). Refuses non-digits and digit strings that do not fit.
 */
export function bcdEncode(digits: string, byteLength: number = Math.ceil(digits.length / 2)): Buffer {
  const out = Buffer.alloc(byteLength);
  if (!bcdEncodeInto(digits, out, 0, byteLength)) {
    // The digits may be a card number: report only the shape.
    throw cryptoInputError('BCD input must be decimal digits that fit the field', {
      chars: digits.length,
      bytes: byteLength,
    });
  }
  return out;
}

/** Decimal digits of BCD bytes (two per byte), or undefined if any nibble is above 9. */
export function bcdDecode(bytes: Uint8Array): string | undefined {
  let digits = '';
  for (let i = 0; i < bytes.byteLength; i++) {
    const hi = bytes[i] >> 4;
    const lo = bytes[i] & 0x0f;
    if (hi > 9 || lo > 9) return undefined;
    digits += String.fromCharCode(char_0 + hi, char_0 + lo);
  }
  return digits;
}

/** True if `s` is non-empty and all ASCII decimal digits. */
export function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < char_0 || c > char_9) return false;
  }
  return true;
}

const hex_pattern = /^(?:[0-9a-fA-F]{2})*$/;

/** Bytes of an even-length hex string (either case); refuses anything else. */
export function hexToBytes(hex: string): Buffer {
  if (!hex_pattern.test(hex)) throw cryptoInputError('expected an even number of hex characters', { chars: hex.length });
  return Buffer.from(hex, 'hex');
}
