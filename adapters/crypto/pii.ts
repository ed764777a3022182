/**
 * Personal information at rest (CARD-SECURITY.md "Other national-crypto uses"): names, national
 * ID numbers and phone numbers are sealed with SM4-CTR under a random IV and authenticated with
 * HMAC-SM3, encrypt-then-MAC, and looked up through a keyed HMAC-SM3 "blind index", never
 * through plaintext. Also the display masks used wherever such values are shown.
 *
 * Sealed layout (self-describing, so old rows stay readable after a key rotation):
 *
 *   format (1) = 0x01 | key version (1) | IV (16) | ciphertext (n) | HMAC-SM3 (32)
 *
 * The MAC covers every byte before it, header included, so a row cannot be re-labelled with
 * another key version or format. From one 16-byte data key per version, three independent keys
 * are derived with HMAC-SM3 and distinct labels: encryption, MAC and blind index; no key is used
 * for two purposes.
 */
import { createCipheriv, createHmac, createSecretKey, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { DomainError } from '../../engine/errors.ts';
import { parseKeyConfig, validateKeyEntries } from './keys.ts';
import type { KeyConfigEntry } from './keys.ts';
import { constantTimeEqual, cryptoInputError, hmacSm3, sm3_digest_bytes, sm4_block_bytes, sm4_key_bytes } from './sm.ts';

// ---------------------------------------------------------------------------------------------
// Layout and limits
// ---------------------------------------------------------------------------------------------

export const pii_format_v1 = 0x01;
const format_offset = 0;
const key_version_offset = 1;
const iv_offset = 2;
const iv_bytes = sm4_block_bytes;
export const pii_header_bytes = iv_offset + iv_bytes;
export const pii_mac_bytes = sm3_digest_bytes;
/** The smallest sealed value: an empty plaintext. */
export const pii_sealed_bytes_min = pii_header_bytes + pii_mac_bytes;
/**
 * Names, ID numbers, phones and addresses are short; 4 KiB of UTF-8 is far above any of them
 * and keeps a bad caller from sealing a document into a person's row.
 */
export const pii_plaintext_bytes_max = 4096;
/** Blind index kinds are short snake_case labels such as `national_id` or `phone`. */
const kind_pattern = /^[a-z][a-z0-9_]{0,31}$/;
/** A lone UTF-16 surrogate cannot round-trip through UTF-8; it is refused instead of mangled. */
const lone_surrogate_pattern = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Labels of the derived keys: changing one would orphan every sealed row. */
const label_encryption = Buffer.from('onecard/pii/v1/encryption', 'ascii');
const label_mac = Buffer.from('onecard/pii/v1/mac', 'ascii');
const label_blind_index = Buffer.from('onecard/pii/v1/blind-index', 'ascii');

export const pii_error = {
  /** 500: a sealed value failed to open: altered, truncated, or sealed under a key we lack. */
  integrity: 'PII_INTEGRITY',
  /** 500: the PII key list in configuration is unusable. */
  config_invalid: 'KEY_CONFIG_INVALID',
} as const;

function integrityError(reason: string, details: Record<string, unknown> = {}): DomainError {
  return new DomainError(pii_error.integrity, 500, 'A sealed personal-data value failed its integrity check', {
    reason,
    ...details,
  });
}

// ---------------------------------------------------------------------------------------------
// The keyring
// ---------------------------------------------------------------------------------------------

export interface PiiKeyringConfig {
  keys: readonly KeyConfigEntry[];
  /** The version new values are sealed with; defaults to the highest configured version. */
  currentVersion?: number;
  /**
   * The version whose data key derives the blind-index key; defaults to the lowest configured
   * version. Pinned apart from `currentVersion` because an index value must stay the same
   * for the life of the data: rotating the sealing key re-seals rows, it must not break lookups.
   * Rotating the index key means recomputing every index column, a separate, deliberate job.
   */
  indexVersion?: number;
}

interface DerivedKeys {
  readonly encryption: KeyObject;
  readonly mac: KeyObject;
  readonly blindIndex: KeyObject;
}

function deriveKeys(dataKey: Buffer): DerivedKeys {
  return {
    encryption: createSecretKey(hmacSm3(dataKey, label_encryption).subarray(0, sm4_key_bytes)),
    mac: createSecretKey(hmacSm3(dataKey, label_mac)),
    blindIndex: createSecretKey(hmacSm3(dataKey, label_blind_index)),
  };
}

/** Versioned PII data keys, the current one for sealing and all of them for opening. */
export class PiiKeyring {
  readonly #keys = new Map<number, DerivedKeys>();
  readonly #current: number;
  readonly #index: number;

  constructor(config: PiiKeyringConfig) {
    validateKeyEntries(config.keys, 'PII keys');
    if (config.keys.length === 0) {
      throw new DomainError(pii_error.config_invalid, 500, 'PII keys: at least one key is required');
    }
    for (const { version, keyHex } of [...config.keys].sort((a, b) => a.version - b.version)) {
      const dataKey = Buffer.from(keyHex, 'hex');
      this.#keys.set(version, deriveKeys(dataKey));
      // Only the derived keys are kept, inside KeyObjects; no copy of the data key stays around.
      dataKey.fill(0);
    }
    const versions = this.keyVersions();
    this.#current = config.currentVersion ?? versions[versions.length - 1];
    this.#index = config.indexVersion ?? versions[0];
    for (const [what, version] of [['current', this.#current], ['index', this.#index]] as const) {
      if (!this.#keys.has(version)) {
        throw new DomainError(pii_error.config_invalid, 500, `PII keys: the ${what} version ${version} is not configured`, {
          version,
        });
      }
    }
  }

  /** From the configuration string PII_KEYS (`version:hex32,...`). */
  static fromConfigString(text: string | undefined, options: Omit<PiiKeyringConfig, 'keys'> = {}): PiiKeyring {
    return new PiiKeyring({ ...options, keys: parseKeyConfig(text, 'PII keys') });
  }

  keyVersions(): number[] {
    return [...this.#keys.keys()].sort((a, b) => a - b);
  }

  currentVersion(): number {
    return this.#current;
  }

  indexVersion(): number {
    return this.#index;
  }

  /** Seals a UTF-8 string under `keyVersion` (default: current) with a fresh random IV. */
  seal(plaintext: string, keyVersion: number = this.#current): Buffer {
    const keys = this.#keys.get(keyVersion);
    if (keys === undefined) throw cryptoInputError(`no PII key of version ${keyVersion}`, { keyVersion });
    if (typeof plaintext !== 'string' || lone_surrogate_pattern.test(plaintext)) {
      throw cryptoInputError('PII plaintext must be a well-formed string');
    }
    const data = Buffer.from(plaintext, 'utf8');
    if (data.byteLength > pii_plaintext_bytes_max) {
      throw cryptoInputError(`PII plaintext over ${pii_plaintext_bytes_max} bytes`, { bytes: data.byteLength });
    }
    const sealed = Buffer.alloc(pii_header_bytes + data.byteLength + pii_mac_bytes);
    sealed[format_offset] = pii_format_v1;
    sealed[key_version_offset] = keyVersion;
    const iv = randomBytes(iv_bytes);
    iv.copy(sealed, iv_offset);
    const cipher = createCipheriv('sm4-ctr', keys.encryption, iv);
    const head = cipher.update(data);
    const tail = cipher.final();
    head.copy(sealed, pii_header_bytes);
    tail.copy(sealed, pii_header_bytes + head.byteLength);
    const macOffset = sealed.byteLength - pii_mac_bytes;
    createHmac('sm3', keys.mac).update(sealed.subarray(0, macOffset)).digest().copy(sealed, macOffset);
    return sealed;
  }

  /**
   * Opens a sealed value: the MAC is checked first, in constant time, and nothing is decrypted
   * unless it holds. Any failure is PII_INTEGRITY (with a `reason`), never partial plaintext.
   */
  open(sealed: Uint8Array): string {
    const keys = this.#keysOf(sealed);
    const macOffset = sealed.byteLength - pii_mac_bytes;
    const expected = createHmac('sm3', keys.mac).update(sealed.subarray(0, macOffset)).digest();
    if (!constantTimeEqual(expected, sealed.subarray(macOffset))) throw integrityError('mac');
    const decipher = createCipheriv('sm4-ctr', keys.encryption, sealed.subarray(iv_offset, pii_header_bytes));
    const plain = Buffer.concat([decipher.update(sealed.subarray(pii_header_bytes, macOffset)), decipher.final()]);
    try {
      return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(plain);
    } catch {
      // Only reachable if something sealed non-UTF-8 bytes with our MAC key.
      throw integrityError('utf8');
    }
  }

  /** The key version a sealed value was made with (for the rotation job); checks the header only. */
  sealedKeyVersion(sealed: Uint8Array): number {
    this.#keysOf(sealed);
    return sealed[key_version_offset];
  }

  /** True if the value is sealed under an older key than the current one. */
  needsReseal(sealed: Uint8Array): boolean {
    return this.sealedKeyVersion(sealed) !== this.#current;
  }

  /** Opens (verifying) and seals again under the current key: one step of a rotation. */
  reseal(sealed: Uint8Array): Buffer {
    return this.seal(this.open(sealed), this.#current);
  }

  #keysOf(sealed: Uint8Array): DerivedKeys {
    if (!(sealed instanceof Uint8Array) || sealed.byteLength < pii_sealed_bytes_min) throw integrityError('length');
    if (sealed.byteLength > pii_sealed_bytes_min + pii_plaintext_bytes_max) throw integrityError('length');
    if (sealed[format_offset] !== pii_format_v1) throw integrityError('format');
    const keyVersion = sealed[key_version_offset];
    const keys = this.#keys.get(keyVersion);
    // Either altered, or sealed under a key since removed from configuration; the details tell
    // the operator which version to look for.
    if (keys === undefined) throw integrityError('unknown_key_version', { keyVersion });
    return keys;
  }

  /**
   * Keyed, deterministic lookup value (32 bytes) of an already normalized value: equal inputs of
   * the same kind give equal indexes, and the kind is part of the MAC input (length-prefixed),
   * so a phone number and an ID number with the same digits do not collide.
   */
  blindIndex(kind: string, normalizedValue: string): Buffer {
    if (!kind_pattern.test(kind)) throw cryptoInputError('blind index kind must be a short snake_case label');
    if (typeof normalizedValue !== 'string' || lone_surrogate_pattern.test(normalizedValue)) {
      throw cryptoInputError('blind index value must be a well-formed string');
    }
    const keys = this.#keys.get(this.#index);
    if (keys === undefined) throw new Error('PiiKeyring: index key missing (checked in the constructor)');
    return createHmac('sm3', keys.blindIndex)
      .update(Buffer.from([kind.length]))
      .update(kind, 'ascii')
      .update(normalizedValue, 'utf8')
      .digest();
  }

  // Redaction: versions only, never keys.
  toJSON(): Record<string, unknown> {
    return {
      kind: 'PiiKeyring',
      keyVersions: this.keyVersions(),
      currentVersion: this.#current,
      indexVersion: this.#index,
      keys: '[redacted]',
    };
  }

  toString(): string {
    return `PiiKeyring(versions ${this.keyVersions().join(',')}; current ${this.#current}; keys redacted)`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

// ---------------------------------------------------------------------------------------------
// Normalization before indexing
// ---------------------------------------------------------------------------------------------

/** National ID (GB 11643): no spaces, check character `x` uppercased. */
export function normalizeNationalId(value: string): string {
  return value.replace(/\s+/g, '').toUpperCase();
}

/** Mainland mobile numbers: digits only, without a +86 / 0086 country prefix. */
export function normalizePhone(value: string): string {
  const digits = value.replace(/[\s()-]/g, '');
  return digits.replace(/^(?:\+86|0086)/, '');
}

// ---------------------------------------------------------------------------------------------
// Display masks
// ---------------------------------------------------------------------------------------------

/** Keeps `head` leading and `tail` trailing characters, `*` for each one between; all `*` if too short. */
function maskMiddle(value: string, head: number, tail: number): string {
  const chars = Array.from(value);
  if (chars.length <= head + tail) return '*'.repeat(chars.length);
  return chars.slice(0, head).join('') + '*'.repeat(chars.length - head - tail) + chars.slice(chars.length - tail).join('');
}

/** Name: the first character and a single `*` (the length of a name is itself telling). */
export function maskName(name: string): string {
  const first = Array.from(name.trim())[0];
  return first === undefined ? '' : `${first}*`;
}

/** National ID: first 3 and last 4 characters. */
export function maskNationalId(nationalId: string): string {
  return maskMiddle(nationalId, 3, 4);
}

/** Phone: first 3 and last 4 digits (138****5678). */
export function maskPhone(phone: string): string {
  return maskMiddle(phone, 3, 4);
}

/** Card number: first 6 and last 4 digits, `*` between (SETTLEMENT-FILES.md). */
export function maskCardNo(cardNo: string): string {
  return maskMiddle(cardNo, 6, 4);
}
