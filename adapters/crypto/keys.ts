/**
 * Master keys and card keys (CARD-SECURITY.md "Keys" and "Card key diversification").
 *
 * `KeyStore` is the narrow, HSM-shaped boundary the engine talks to: it is asked to compute or
 * verify a MAC for a card and a key version, and answers with the MAC or a yes/no. Master keys
 * never leave it, so a production HSM can implement the same interface. `ConfigKeyStore` is the
 * default implementation over versioned master keys from configuration (TAC_MASTER_KEYS,
 * QR_MASTER_KEYS: `version:hex32,version:hex32`); tests build it from the spec's test keys.
 *
 * Nothing here ever puts key material in an error message, a log line, `JSON.stringify` or
 * `util.inspect` output: master keys are held only inside OpenSSL cipher contexts after
 * construction, and the store redacts itself.
 */
import { inspect } from 'node:util';
import { DomainError } from '../../engine/errors.ts';
import {
  Sm4EcbEncryptor,
  bcdEncodeInto,
  constantTimeEqual,
  cryptoInputError,
  hmacSm3,
  sm4_block_bytes,
  sm4_key_bytes,
} from './sm.ts';
import { formatTacHex, parseTacHex, tac_padded_bytes, tacMacU32, writeTacBlock } from './tac.ts';
import type { TacMessageFields, TacRecord } from './tac.ts';

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/** A key version is one byte on the card, and 0 is never issued. */
export const key_version_min = 1;
export const key_version_max = 255;
/** Keys are 16 bytes written as 32 hex characters. */
export const key_hex_chars = 32;
/** At most one entry per possible version. */
export const key_config_entries_max = key_version_max;
/** Card numbers are ISO/IEC 7812 PANs, 16..19 digits; diversification uses the rightmost 16. */
export const card_no_digits_min = 16;
export const card_no_digits_max = 19;
const diversification_digits = 16;
const diversification_data_bytes = 8;

/**
 * Card keys cached per (TAC key version, card number). A card key costs one SM4 block under the
 * master key to derive; the cache saves that on the hot path, bounded because the card base is
 * millions. 200,000 covers a large city's daily active transit cards. The keys sit in one slab
 * (16 bytes each, 3.2 MB at the limit) and the map holds only slot numbers, because a Buffer
 * per key costs ~200 bytes of heap and GC work; a full cache is ~30 MB of heap, mostly the
 * map's key strings.
 */
export const card_key_cache_entries_max = 200_000;

// ---------------------------------------------------------------------------------------------
// Refusal codes
// ---------------------------------------------------------------------------------------------

export const key_error = {
  /** 500: a key list in configuration is malformed (the operator's mistake, found at start). */
  config_invalid: 'KEY_CONFIG_INVALID',
  /** 422: no master key of that version (TRANSIT-BATCH.md's per-record code for taps). */
  unknown_key_version: 'UNKNOWN_KEY_VERSION',
  /** 503: QR pay codes need a QR master key and none is configured. */
  qr_keys_not_configured: 'QR_KEYS_NOT_CONFIGURED',
} as const;

function configError(message: string, details?: Record<string, unknown>): DomainError {
  return new DomainError(key_error.config_invalid, 500, message, details);
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/** One versioned master key as configured. `keyHex` is secret: never log this object. */
export interface KeyConfigEntry {
  version: number;
  keyHex: string;
}

export interface KeyStoreConfig {
  tac: readonly KeyConfigEntry[];
  qr: readonly KeyConfigEntry[];
  /** The QR key new codes are signed with; defaults to the highest configured QR version. */
  qrCurrentVersion?: number;
  /** A smaller card key cache than `card_key_cache_entries_max` (tests use a tiny one to exercise eviction). */
  cardKeyCacheEntriesMax?: number;
}

const version_pattern = /^[0-9]{1,3}$/;
const key_hex_pattern = /^[0-9A-Fa-f]{32}$/;

/**
 * Parses `version:hex32,version:hex32` (as in TAC_MASTER_KEYS). Blank or undefined is an empty
 * list; spaces around entries are tolerated. Errors name the entry position and what is wrong,
 * never the text of the entry: it is a key.
 */
export function parseKeyConfig(text: string | undefined, what = 'key list'): KeyConfigEntry[] {
  if (text === undefined || text.trim() === '') return [];
  const parts = text.split(',');
  if (parts.length > key_config_entries_max) {
    throw configError(`${what}: more than ${key_config_entries_max} entries`, { entries: parts.length });
  }
  const entries: KeyConfigEntry[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i].trim();
    const colon = part.indexOf(':');
    if (colon < 0) throw configError(`${what}: entry ${i + 1} is not "version:hex"`, { entry: i + 1 });
    const versionText = part.slice(0, colon).trim();
    const keyHex = part.slice(colon + 1).trim();
    if (!version_pattern.test(versionText)) {
      throw configError(`${what}: entry ${i + 1} has a version that is not a number 1..255`, { entry: i + 1 });
    }
    entries.push({ version: Number(versionText), keyHex });
  }
  validateKeyEntries(entries, what);
  return entries;
}

/** Checks versions (1..255, unique) and key shapes (exactly 32 hex characters). */
export function validateKeyEntries(entries: readonly KeyConfigEntry[], what = 'key list'): void {
  if (entries.length > key_config_entries_max) {
    throw configError(`${what}: more than ${key_config_entries_max} entries`, { entries: entries.length });
  }
  const seen = new Set<number>();
  for (let i = 0; i < entries.length; i++) {
    const { version, keyHex } = entries[i];
    if (!Number.isInteger(version) || version < key_version_min || version > key_version_max) {
      throw configError(`${what}: entry ${i + 1} has a version outside ${key_version_min}..${key_version_max}`, {
        entry: i + 1,
      });
    }
    if (seen.has(version)) throw configError(`${what}: version ${version} appears twice`, { version });
    seen.add(version);
    if (typeof keyHex !== 'string' || !key_hex_pattern.test(keyHex)) {
      // The length is safe to report and is what the operator usually got wrong.
      throw configError(`${what}: the key of version ${version} must be exactly ${key_hex_chars} hex characters`, {
        version,
        chars: typeof keyHex === 'string' ? keyHex.length : undefined,
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Card key diversification
// ---------------------------------------------------------------------------------------------

/** True if `cardNo` is 16..19 decimal digits. */
export function isCardNo(cardNo: string): boolean {
  if (typeof cardNo !== 'string' || cardNo.length < card_no_digits_min || cardNo.length > card_no_digits_max) {
    return false;
  }
  for (let i = 0; i < cardNo.length; i++) {
    const c = cardNo.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * Writes D = data8 || ~data8 (16 bytes) into `out`, where data8 is the BCD of the rightmost 16
 * digits of the card number. Returns false for a card number that is not 16..19 digits.
 */
export function writeDiversificationData(cardNo: string, out: Uint8Array): boolean {
  if (!isCardNo(cardNo)) return false;
  const tail = cardNo.length === diversification_digits ? cardNo : cardNo.slice(-diversification_digits);
  if (!bcdEncodeInto(tail, out, 0, diversification_data_bytes)) return false;
  for (let i = 0; i < diversification_data_bytes; i++) out[diversification_data_bytes + i] = out[i] ^ 0xff;
  return true;
}

/** D for a card number (16 bytes); refuses a malformed card number. */
export function diversificationData(cardNo: string): Buffer {
  const d = Buffer.alloc(sm4_block_bytes);
  if (!writeDiversificationData(cardNo, d)) {
    throw cryptoInputError(`card number must be ${card_no_digits_min}..${card_no_digits_max} digits`);
  }
  return d;
}

/**
 * K_card = SM4-ECB(master, D). For tests and card-personalization tools that hold a master key;
 * the engine derives inside the key store.
 */
export function diversifyCardKey(masterKey16: Uint8Array, cardNo: string): Buffer {
  if (masterKey16.byteLength !== sm4_key_bytes) throw cryptoInputError('master key must be 16 bytes');
  return new Sm4EcbEncryptor(masterKey16).encrypt(diversificationData(cardNo));
}

// ---------------------------------------------------------------------------------------------
// A bounded LRU
// ---------------------------------------------------------------------------------------------

/**
 * Least-recently-used map with a hard entry limit. A Map iterates in insertion order, so
 * re-inserting on a hit keeps the least recently used entry first, where eviction takes it.
 */
export class BoundedLru<V> {
  readonly #map = new Map<string, V>();
  readonly #entriesMax: number;

  constructor(entriesMax: number) {
    if (!Number.isInteger(entriesMax) || entriesMax < 1) throw new RangeError('BoundedLru needs entriesMax >= 1');
    this.#entriesMax = entriesMax;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }

  set(key: string, value: V): void {
    if (this.#map.has(key)) this.#map.delete(key);
    else if (this.#map.size >= this.#entriesMax) {
      const oldest = this.#map.keys().next();
      if (oldest.done !== true) this.#map.delete(oldest.value);
    }
    this.#map.set(key, value);
  }

  /** Removes and returns the least recently used value (the caller recycles what it owns). */
  evictOldest(): V | undefined {
    const oldest = this.#map.entries().next();
    if (oldest.done === true) return undefined;
    this.#map.delete(oldest.value[0]);
    return oldest.value[1];
  }

  clear(): void {
    this.#map.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// The key store boundary
// ---------------------------------------------------------------------------------------------

/**
 * What the engine may ask of the keys. Derive + MAC only: no method returns a master key or a
 * card key, so an HSM-backed implementation fits the same shape.
 */
export interface KeyStore {
  /** True if a TAC master key of this version is configured (else: UNKNOWN_KEY_VERSION). */
  hasTacKey(keyVersion: number): boolean;
  /** Configured TAC key versions, ascending. */
  tacKeyVersions(): number[];
  /**
   * The TAC (8 uppercase hex) of a tap. Throws UNKNOWN_KEY_VERSION, or CRYPTO_INPUT_INVALID for
   * a malformed card number or field.
   */
  computeTac(keyVersion: number, cardNo: string, fields: TacMessageFields): string;
  /** True iff `tac` is the tap's TAC. False (never a throw) for unknown versions or bad fields. */
  verifyTac(keyVersion: number, cardNo: string, fields: TacMessageFields, tac: string): boolean;
  /** `verifyTac` over a batch, `result[i]` for `records[i]`. */
  verifyTacs(records: readonly TacRecord[]): boolean[];

  /** Configured QR key versions, ascending. */
  qrKeyVersions(): number[];
  /** The QR key version new codes are signed with, or undefined if none is configured. */
  qrCurrentVersion(): number | undefined;
  /**
   * sig = first 16 bytes of HMAC-SM3(K_card, body), K_card diversified from the QR master key
   * of `keyVersion` (default: current). Throws QR_KEYS_NOT_CONFIGURED or UNKNOWN_KEY_VERSION.
   */
  qrSign(cardNo: string, body: Uint8Array, keyVersion?: number): Buffer;
  /**
   * Checks `sig` against the current QR key and, so codes shown just before a rotation still
   * work, the previous one. Returns the version that verified, or undefined. Throws
   * QR_KEYS_NOT_CONFIGURED when there is no QR key at all (a configuration fault, not a forgery).
   */
  qrVerify(cardNo: string, body: Uint8Array, sig: Uint8Array): number | undefined;
}

/** The QR signature is HMAC-SM3 truncated to 16 bytes. */
export const qr_sig_bytes = 16;

interface MasterKey {
  readonly version: number;
  /** The master key lives only inside this OpenSSL context after construction. */
  readonly encryptor: Sm4EcbEncryptor;
}

function loadMasterKeys(entries: readonly KeyConfigEntry[], what: string): Map<number, MasterKey> {
  validateKeyEntries(entries, what);
  const keys = new Map<number, MasterKey>();
  for (const { version, keyHex } of [...entries].sort((a, b) => a.version - b.version)) {
    const raw = Buffer.from(keyHex, 'hex');
    keys.set(version, { version, encryptor: new Sm4EcbEncryptor(raw) });
    // Do not leave a copy of the key in the JS heap; the cipher context has its own.
    raw.fill(0);
  }
  return keys;
}

export interface KeyStoreStats {
  cardKeyCacheEntries: number;
  cardKeyCacheHits: number;
  cardKeyCacheMisses: number;
}

/** The default key store: versioned master keys from configuration. */
export class ConfigKeyStore implements KeyStore {
  readonly #tac: Map<number, MasterKey>;
  readonly #qr: Map<number, MasterKey>;
  readonly #qrCurrent: number | undefined;
  /** Current first, then the previous version (if any): the rotation window. */
  readonly #qrVerifyOrder: readonly number[];
  /** (version:cardNo) -> slot in `#cardKeySlab`; slots are handed out in order, then recycled. */
  readonly #cardKeys: BoundedLru<number>;
  readonly #cardKeySlab: Buffer;
  readonly #cardKeyEntriesMax: number;
  /** Scratch for D and the padded TAC message; JavaScript is single-threaded and nothing here awaits. */
  readonly #d = Buffer.alloc(sm4_block_bytes);
  readonly #block = Buffer.alloc(tac_padded_bytes);
  #hits = 0;
  #misses = 0;

  constructor(config: KeyStoreConfig) {
    this.#tac = loadMasterKeys(config.tac, 'TAC master keys');
    this.#qr = loadMasterKeys(config.qr, 'QR master keys');
    const qrVersions = [...this.#qr.keys()];
    const current = config.qrCurrentVersion ?? qrVersions[qrVersions.length - 1];
    if (current !== undefined && !this.#qr.has(current)) {
      throw configError(`QR master keys: the current version ${current} is not configured`, { version: current });
    }
    this.#qrCurrent = current;
    const previous = current === undefined ? undefined : qrVersions.filter((v) => v < current).pop();
    this.#qrVerifyOrder = [current, previous].filter((v): v is number => v !== undefined);
    this.#cardKeyEntriesMax = config.cardKeyCacheEntriesMax ?? card_key_cache_entries_max;
    // Smaller is allowed (tests, small nodes); larger would break the memory bound stated above.
    const entriesMax = this.#cardKeyEntriesMax;
    if (!Number.isInteger(entriesMax) || entriesMax < 1 || entriesMax > card_key_cache_entries_max) {
      throw configError(`card key cache size must be 1..${card_key_cache_entries_max}`, { entries: entriesMax });
    }
    this.#cardKeys = new BoundedLru<number>(this.#cardKeyEntriesMax);
    this.#cardKeySlab = Buffer.alloc(this.#cardKeyEntriesMax * sm4_key_bytes);
  }

  /** From the configuration strings (TAC_MASTER_KEYS, QR_MASTER_KEYS). */
  static fromConfigStrings(tacKeys: string | undefined, qrKeys: string | undefined): ConfigKeyStore {
    return new ConfigKeyStore({
      tac: parseKeyConfig(tacKeys, 'TAC master keys'),
      qr: parseKeyConfig(qrKeys, 'QR master keys'),
    });
  }

  hasTacKey(keyVersion: number): boolean {
    return this.#tac.has(keyVersion);
  }

  tacKeyVersions(): number[] {
    return [...this.#tac.keys()];
  }

  qrKeyVersions(): number[] {
    return [...this.#qr.keys()];
  }

  qrCurrentVersion(): number | undefined {
    return this.#qrCurrent;
  }

  stats(): KeyStoreStats {
    return { cardKeyCacheEntries: this.#cardKeys.size, cardKeyCacheHits: this.#hits, cardKeyCacheMisses: this.#misses };
  }

  /**
   * The TAC card key, cached; undefined for a malformed card number. The result is a view into
   * the slab, valid until the next call (its slot may be recycled): use it at once.
   */
  #tacCardKey(master: MasterKey, cardNo: string): Buffer | undefined {
    const cacheKey = `${master.version}:${cardNo}`;
    let slot = this.#cardKeys.get(cacheKey);
    if (slot !== undefined) {
      this.#hits++;
    } else {
      if (!writeDiversificationData(cardNo, this.#d)) return undefined;
      this.#misses++;
      // Slots are only ever freed by eviction, so while not full the next free slot is `size`.
      slot = this.#cardKeys.size < this.#cardKeyEntriesMax ? this.#cardKeys.size : this.#cardKeys.evictOldest();
      if (slot === undefined) throw new Error('card key cache: no slot to recycle');
      master.encryptor.encrypt(this.#d).copy(this.#cardKeySlab, slot * sm4_key_bytes);
      this.#cardKeys.set(cacheKey, slot);
    }
    const offset = slot * sm4_key_bytes;
    return this.#cardKeySlab.subarray(offset, offset + sm4_key_bytes);
  }

  /** The TAC as a uint32, or -1 if the record cannot carry one (unknown version, bad fields). */
  #tacU32(keyVersion: number, cardNo: string, fields: TacMessageFields): number {
    const master = this.#tac.get(keyVersion);
    if (master === undefined) return -1;
    if (!writeTacBlock(fields, this.#block)) return -1;
    const cardKey = this.#tacCardKey(master, cardNo);
    if (cardKey === undefined) return -1;
    return tacMacU32(cardKey, this.#block);
  }

  computeTac(keyVersion: number, cardNo: string, fields: TacMessageFields): string {
    if (!this.#tac.has(keyVersion)) throw unknownKeyVersion('TAC', keyVersion);
    if (!isCardNo(cardNo)) {
      throw cryptoInputError(`card number must be ${card_no_digits_min}..${card_no_digits_max} digits`);
    }
    const mac = this.#tacU32(keyVersion, cardNo, fields);
    if (mac < 0) {
      throw cryptoInputError('TAC fields out of range: amount and seq are uint32, type a byte, ' +
        'terminal id 12 digits, local time YYYYMMDDhhmmss');
    }
    return formatTacHex(mac);
  }

  verifyTac(keyVersion: number, cardNo: string, fields: TacMessageFields, tac: string): boolean {
    const expected = parseTacHex(tac);
    if (expected < 0) return false;
    // Comparing two small integers takes the same time whatever bits differ.
    return this.#tacU32(keyVersion, cardNo, fields) === expected;
  }

  verifyTacs(records: readonly TacRecord[]): boolean[] {
    const results = new Array<boolean>(records.length);
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      const expected = parseTacHex(r.tac);
      results[i] = expected >= 0 && this.#tacU32(r.keyVersion, r.cardNo, r) === expected;
    }
    return results;
  }

  #qrCardKey(master: MasterKey, cardNo: string): Buffer {
    // QR codes are presented one at a time online, so no cache: one SM4 block per code.
    return master.encryptor.encrypt(diversificationData(cardNo));
  }

  qrSign(cardNo: string, body: Uint8Array, keyVersion?: number): Buffer {
    const version = keyVersion ?? this.#qrCurrent;
    if (version === undefined) throw qrKeysNotConfigured();
    const master = this.#qr.get(version);
    if (master === undefined) throw unknownKeyVersion('QR', version);
    return hmacSm3(this.#qrCardKey(master, cardNo), body).subarray(0, qr_sig_bytes);
  }

  qrVerify(cardNo: string, body: Uint8Array, sig: Uint8Array): number | undefined {
    if (this.#qrVerifyOrder.length === 0) throw qrKeysNotConfigured();
    if (sig.byteLength !== qr_sig_bytes || !isCardNo(cardNo)) return undefined;
    for (const version of this.#qrVerifyOrder) {
      const master = this.#qr.get(version);
      if (master === undefined) continue;
      const expected = hmacSm3(this.#qrCardKey(master, cardNo), body).subarray(0, qr_sig_bytes);
      if (constantTimeEqual(expected, sig)) return version;
    }
    return undefined;
  }

  // Redaction: whatever logs or serializes the store sees versions, never keys.
  toJSON(): Record<string, unknown> {
    return {
      kind: 'ConfigKeyStore',
      tacKeyVersions: this.tacKeyVersions(),
      qrKeyVersions: this.qrKeyVersions(),
      qrCurrentVersion: this.#qrCurrent ?? null,
      keys: '[redacted]',
    };
  }

  toString(): string {
    return `ConfigKeyStore(tac versions ${this.tacKeyVersions().join(',') || 'none'}; ` +
      `qr versions ${this.qrKeyVersions().join(',') || 'none'}; keys redacted)`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

function unknownKeyVersion(what: 'TAC' | 'QR', keyVersion: number): DomainError {
  return new DomainError(key_error.unknown_key_version, 422, `No ${what} master key of version ${keyVersion}`, {
    keyVersion,
  });
}

function qrKeysNotConfigured(): DomainError {
  return new DomainError(key_error.qr_keys_not_configured, 503, 'No QR master key is configured');
}
