/**
 * National-algorithm crypto of the engine (CARD-SECURITY.md), the public face of this folder:
 * tap TAC verification, e-card QR pay codes, sealing of personal data, and the audit hash chain.
 * Pure: no database, no network, only Node's built-in `crypto` (OpenSSL 3's SM3 and SM4).
 *
 * Keys stay inside a `KeyStore` (TAC and QR master keys) or a `PiiKeyring` (personal-data keys);
 * nothing exported here hands a master key back to a caller.
 */
export {
  BoundedLru,
  ConfigKeyStore,
  card_key_cache_entries_max,
  card_no_digits_max,
  card_no_digits_min,
  diversificationData,
  diversifyCardKey,
  isCardNo,
  key_error,
  key_hex_chars,
  key_version_max,
  key_version_min,
  parseKeyConfig,
  qr_sig_bytes,
  validateKeyEntries,
} from './keys.ts';
export type { KeyConfigEntry, KeyStore, KeyStoreConfig, KeyStoreStats } from './keys.ts';

export {
  formatTacHex,
  parseTacHex,
  tac_bytes,
  tac_hex_chars,
  tac_message_bytes,
  tacMessage,
  tacWithCardKey,
  verifyTacs,
} from './tac.ts';
export type { TacFields, TacMessageFields, TacRecord } from './tac.ts';

export {
  encodeQrBody,
  encodeQrCode,
  parseAndVerifyQrCode,
  qr_body_bytes,
  qr_clock_skew_s_max,
  qr_code_prefix,
  qr_error,
  qr_validity_s,
  qrCodeId,
} from './qr.ts';
export type { QrCodeInput, VerifiedQrCode } from './qr.ts';

export {
  PiiKeyring,
  maskCardNo,
  maskName,
  maskNationalId,
  maskPhone,
  normalizeNationalId,
  normalizePhone,
  pii_error,
  pii_plaintext_bytes_max,
} from './pii.ts';
export type { PiiKeyringConfig } from './pii.ts';

export {
  audit_chain_genesis_hash_hex,
  audit_error,
  canonicalJson,
  chainHash,
  findChainBreak,
} from './audit-chain.ts';
export type { ChainedRecord } from './audit-chain.ts';

export {
  bcdDecode,
  bcdEncode,
  constantTimeEqual,
  crypto_input_invalid,
  hmacSm3,
  sm3,
  sm3Hex,
  sm4CbcMac,
  sm4EcbEncryptBlock,
} from './sm.ts';
