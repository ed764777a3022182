/**
 * The TAC (transaction authorization cryptogram) of an offline tap, CARD-SECURITY.md: the
 * 22-byte PBOC purchase message M, ISO 9797-1 method 2 padding, SM4-CBC under the card key with
 * a zero IV, and the first 4 bytes of the last cipher block as 8 uppercase hex characters.
 *
 * This runs for every tap of every batch (25,000+ a second on a 2-core box), so the hot path
 * (`writeTacBlock`, `parseTacHex`, `tacMacU32`) allocates nothing of its own besides the
 * OpenSSL context, works on integers rather than hex strings, and never throws: a record that
 * cannot be encoded simply cannot carry a valid TAC. The key handling (master keys, card key
 * cache) lives behind the `KeyStore` of keys.ts.
 */
import { createCipheriv } from 'node:crypto';
import type { KeyStore } from './keys.ts';
import { bcdEncodeInto, cryptoInputError, sm4_block_bytes } from './sm.ts';

/** The fields of M, in the units of the tap record (TRANSIT-BATCH.md). */
export interface TacMessageFields {
  /** Unsigned 32-bit. */
  amountFen: number;
  /** One byte: 0x06 purse purchase, 0x09 compound (transit) purchase. */
  txnType: number;
  /** Exactly 12 decimal digits. */
  terminalId: string;
  /** The PSAM sequence, unsigned 32-bit. */
  terminalSeq: number;
  /** Terminal wall clock (Asia/Shanghai), `YYYYMMDDhhmmss`. */
  localTime: string;
}

export interface TacFields extends TacMessageFields {
  /** 16..19 digits; the card key is diversified from the rightmost 16. */
  cardNo: string;
}

/** A tap as far as its TAC is concerned; a decoded `TapRecordInput` is one. */
export interface TacRecord extends TacFields {
  /** Version of the TAC master key the card was personalized with, 1..255. */
  keyVersion: number;
  /** 8 uppercase hex characters. */
  tac: string;
}

/** Layout of M (the spec's table), byte offsets and lengths. */
export const tac_message_bytes = 22;
const amount_offset = 0;
const txn_type_offset = 4;
const terminal_id_offset = 5;
const terminal_id_bcd_bytes = 6;
const terminal_id_digits = 12;
const terminal_seq_offset = 11;
/** Date (4 bytes) and time (3 bytes) are adjacent, so `YYYYMMDDhhmmss` packs as one BCD run. */
const local_time_offset = 15;
const local_time_bcd_bytes = 7;
const local_time_digits = 14;
/** 22 bytes + 0x80 + zeros: two SM4 blocks. */
export const tac_padded_bytes = 2 * sm4_block_bytes;
/** The TAC is the first 4 bytes of the last block, as 8 hex characters. */
export const tac_bytes = 4;
export const tac_hex_chars = 8;

const uint32_max = 0xffff_ffff;
const uint8_max = 0xff;
const zero_iv = Buffer.alloc(sm4_block_bytes);

function isUint32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= uint32_max;
}

/**
 * Writes M and its padding into `out[0..32)`. Returns false if a field is out of its range or
 * has the wrong shape; `out` then holds garbage. Allocation-free: `out` is the caller's scratch.
 */
export function writeTacBlock(fields: TacMessageFields, out: Uint8Array): boolean {
  const { amountFen, txnType, terminalId, terminalSeq, localTime } = fields;
  if (!isUint32(amountFen) || !isUint32(terminalSeq)) return false;
  if (!Number.isInteger(txnType) || txnType < 0 || txnType > uint8_max) return false;
  if (typeof terminalId !== 'string' || terminalId.length !== terminal_id_digits) return false;
  if (typeof localTime !== 'string' || localTime.length !== local_time_digits) return false;
  out[amount_offset] = amountFen >>> 24;
  out[amount_offset + 1] = (amountFen >>> 16) & 0xff;
  out[amount_offset + 2] = (amountFen >>> 8) & 0xff;
  out[amount_offset + 3] = amountFen & 0xff;
  out[txn_type_offset] = txnType;
  if (!bcdEncodeInto(terminalId, out, terminal_id_offset, terminal_id_bcd_bytes)) return false;
  out[terminal_seq_offset] = terminalSeq >>> 24;
  out[terminal_seq_offset + 1] = (terminalSeq >>> 16) & 0xff;
  out[terminal_seq_offset + 2] = (terminalSeq >>> 8) & 0xff;
  out[terminal_seq_offset + 3] = terminalSeq & 0xff;
  if (!bcdEncodeInto(localTime, out, local_time_offset, local_time_bcd_bytes)) return false;
  // ISO/IEC 9797-1 padding method 2: 0x80, then zeros to the block boundary.
  out[tac_message_bytes] = 0x80;
  out.fill(0, tac_message_bytes + 1, tac_padded_bytes);
  return true;
}

/** M, the 22-byte message (unpadded), for tests and diagnostics. Refuses malformed fields. */
export function tacMessage(fields: TacMessageFields): Buffer {
  const block = Buffer.alloc(tac_padded_bytes);
  if (!writeTacBlock(fields, block)) {
    throw cryptoInputError('TAC fields out of range: amount and seq are uint32, type a byte, ' +
      'terminal id 12 digits, local time YYYYMMDDhhmmss');
  }
  return block.subarray(0, tac_message_bytes);
}

/**
 * The TAC as a uint32 from the padded block, under the card key. One SM4-CBC context over both
 * blocks; the TAC is bytes 16..19 of the output (the first 4 bytes of the last block).
 *
 * Measured on Node 20 / OpenSSL 3, one core, the cipher step alone over 2,000 card keys: this
 * form ~365,000/s; with a `final()` call ~315,000/s; two ECB calls with a manual XOR
 * (`ECB(K, P1)`, then `ECB(K, C1 xor P2)`) ~295,000/s, since it crosses into OpenSSL twice;
 * a `KeyObject` instead of raw key bytes ~345,000/s (and 4x the memory per cached card). A
 * long-lived ECB context per card would be ~2x faster still, but costs ~1 KB of native memory
 * per cached card (200 MB at the cache limit) and only pays off for cards seen again while
 * still in the cache. Most of the remaining time is Node's cipher object set-up and its GC,
 * which no API of Node's `crypto` avoids. `final()` is skipped on purpose:
 * with padding off and whole blocks, `update` has already returned every byte.
 */
export function tacMacU32(cardKey16: Uint8Array, paddedBlock32: Uint8Array): number {
  const cipher = createCipheriv('sm4-cbc', cardKey16, zero_iv);
  cipher.setAutoPadding(false);
  return cipher.update(paddedBlock32).readUInt32BE(sm4_block_bytes);
}

/**
 * The uint32 value of an 8-character uppercase hex TAC, or -1 if it is not one. Lowercase is
 * refused: the spec writes TACs in uppercase and ingest refuses anything else as MALFORMED.
 */
export function parseTacHex(tac: string): number {
  if (typeof tac !== 'string' || tac.length !== tac_hex_chars) return -1;
  let value = 0;
  for (let i = 0; i < tac_hex_chars; i++) {
    const c = tac.charCodeAt(i);
    let nibble: number;
    if (c >= 0x30 && c <= 0x39) nibble = c - 0x30;
    else if (c >= 0x41 && c <= 0x46) nibble = c - 0x41 + 10;
    else return -1;
    // Multiply, not shift: a shift would go negative past bit 31.
    value = value * 16 + nibble;
  }
  return value;
}

/** 8 uppercase hex characters of a uint32 TAC. */
export function formatTacHex(tacU32: number): string {
  return (tacU32 >>> 0).toString(16).toUpperCase().padStart(tac_hex_chars, '0');
}

/**
 * The TAC under a given card key, for tests and tools that hold a card key (a card simulator).
 * The engine itself goes through `KeyStore.computeTac`, which never exposes keys.
 */
export function tacWithCardKey(cardKey16: Uint8Array, fields: TacMessageFields): string {
  const block = Buffer.alloc(tac_padded_bytes);
  if (!writeTacBlock(fields, block)) {
    throw cryptoInputError('TAC fields out of range: amount and seq are uint32, type a byte, ' +
      'terminal id 12 digits, local time YYYYMMDDhhmmss');
  }
  if (cardKey16.byteLength !== 16) throw cryptoInputError('card key must be 16 bytes');
  return formatTacHex(tacMacU32(cardKey16, block));
}

/**
 * Verifies a batch of taps: `result[i]` is true iff record i's TAC verifies under its key
 * version. False also for an unknown key version or a malformed field; callers that must tell
 * UNKNOWN_KEY_VERSION from BAD_TAC ask `store.hasTacKey(version)` first.
 */
export function verifyTacs(store: KeyStore, records: readonly TacRecord[]): boolean[] {
  return store.verifyTacs(records);
}
