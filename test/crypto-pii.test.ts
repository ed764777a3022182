// Proves the at-rest protection of personal data (CARD-SECURITY.md "Other national-crypto uses"):
// SM4 sealing with encrypt-then-MAC (HMAC-SM3), blind indexes, key rotation, display masks,
// that no key store ever shows key material, and the SM3 audit hash chain. Pure: no database.
import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../engine/errors.ts';
import {
  ConfigKeyStore,
  PiiKeyring,
  audit_chain_genesis_hash_hex,
  canonicalJson,
  chainHash,
  diversifyCardKey,
  findChainBreak,
  maskCardNo,
  maskName,
  maskNationalId,
  maskPhone,
  normalizeNationalId,
  normalizePhone,
  pii_plaintext_bytes_max,
} from '../adapters/crypto/index.ts';

const data_key_1_hex = '000102030405060708090A0B0C0D0E0F';
const data_key_2_hex = 'F0E1D2C3B4A5968778695A4B3C2D1E0F';
const tac_master_key_hex = '0123456789ABCDEFFEDCBA9876543210';
const qr_master_key_hex = '00112233445566778899AABBCCDDEEFF';

function expectDomainError(fn: () => unknown, code: string): DomainError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(DomainError);
  expect((caught as DomainError).code).toBe(code);
  return caught as DomainError;
}

function keyring(options: { current?: number; index?: number } = {}): PiiKeyring {
  return new PiiKeyring({
    keys: [
      { version: 1, keyHex: data_key_1_hex },
      { version: 2, keyHex: data_key_2_hex },
    ],
    currentVersion: options.current,
    indexVersion: options.index,
  });
}

/** Every spelling of a key a careless serializer might produce. */
function keySpellings(hex: string): string[] {
  const bytes = Buffer.from(hex, 'hex');
  return [hex.toUpperCase(), hex.toLowerCase(), bytes.toString('base64'), bytes.toString('base64url'), bytes.join(',')];
}

describe('seal and open', () => {
  it('round-trips names, ID numbers, phones and the empty string', () => {
    const ring = keyring();
    for (const value of ['张三', '欧阳娜娜', '11010519491231002X', '13800138000', '', 'Zoë 𠮷野家 🙂']) {
      const sealed = ring.seal(value);
      expect(ring.open(sealed)).toBe(value);
      expect(sealed[0]).toBe(0x01);
      expect(sealed[1]).toBe(2);
      expect(sealed.length).toBe(2 + 16 + Buffer.byteLength(value, 'utf8') + 32);
      // The ciphertext is not the plaintext.
      if (value !== '') expect(sealed.includes(Buffer.from(value, 'utf8'))).toBe(false);
    }
  });

  it('two seals of the same value differ (random IV)', () => {
    const ring = keyring();
    const a = ring.seal('张三');
    const b = ring.seal('张三');
    expect(a.equals(b)).toBe(false);
    expect(a.subarray(2, 18).equals(b.subarray(2, 18))).toBe(false);
    expect(ring.open(a)).toBe(ring.open(b));
  });

  it('any altered byte, truncation or extension is PII_INTEGRITY', () => {
    const ring = keyring();
    const sealed = ring.seal('王小明 11010519491231002X');
    for (let i = 0; i < sealed.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const altered = Buffer.from(sealed);
        altered[i] ^= mask;
        const e = expectDomainError(() => ring.open(altered), 'PII_INTEGRITY');
        expect(e.status).toBe(500);
        // The error carries no plaintext.
        expect(JSON.stringify(e.details)).not.toContain('王小明');
      }
    }
    expectDomainError(() => ring.open(sealed.subarray(0, sealed.length - 1)), 'PII_INTEGRITY');
    expectDomainError(() => ring.open(Buffer.concat([sealed, Buffer.alloc(1)])), 'PII_INTEGRITY');
    expectDomainError(() => ring.open(Buffer.alloc(0)), 'PII_INTEGRITY');
    expectDomainError(() => ring.open(sealed.subarray(0, 49)), 'PII_INTEGRITY');
  });

  it('a value sealed under another keyring does not open', () => {
    const other = new PiiKeyring({ keys: [{ version: 2, keyHex: data_key_1_hex }] });
    const sealed = other.seal('张三');
    expectDomainError(() => keyring().open(sealed), 'PII_INTEGRITY');
  });

  it('refuses plaintexts that cannot round-trip or are too long', () => {
    const ring = keyring();
    expectDomainError(() => ring.seal('\uD800'), 'CRYPTO_INPUT_INVALID');
    expectDomainError(() => ring.seal('a\uDC00b'), 'CRYPTO_INPUT_INVALID');
    expectDomainError(() => ring.seal('x'.repeat(pii_plaintext_bytes_max + 1)), 'CRYPTO_INPUT_INVALID');
    expect(ring.open(ring.seal('x'.repeat(pii_plaintext_bytes_max)))).toHaveLength(pii_plaintext_bytes_max);
    expectDomainError(() => ring.seal('x', 7), 'CRYPTO_INPUT_INVALID');
  });

  it('round-trips any well-formed string (property)', () => {
    const ring = keyring();
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 200 }),
        fc.constantFrom(1, 2),
        (value, version) => {
          const sealed = ring.seal(value, version);
          expect(sealed[1]).toBe(version);
          expect(ring.open(sealed)).toBe(value);
        },
      ),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 100 }), (value) => {
        // Binary units can include lone surrogates: those are refused, everything else round-trips.
        const wellFormed = Buffer.from(value, 'utf8').toString('utf8') === value;
        if (wellFormed) expect(ring.open(ring.seal(value))).toBe(value);
        else expectDomainError(() => ring.seal(value), 'CRYPTO_INPUT_INVALID');
      }),
      { numRuns: 500 },
    );
  });
});

describe('rotation', () => {
  it('opens values of an old version and re-seals them under the current one', () => {
    const before = new PiiKeyring({ keys: [{ version: 1, keyHex: data_key_1_hex }] });
    const old = before.seal('李四');
    const after = keyring();
    expect(after.currentVersion()).toBe(2);
    expect(after.sealedKeyVersion(old)).toBe(1);
    expect(after.needsReseal(old)).toBe(true);
    expect(after.open(old)).toBe('李四');
    const fresh = after.reseal(old);
    expect(after.sealedKeyVersion(fresh)).toBe(2);
    expect(after.needsReseal(fresh)).toBe(false);
    expect(after.open(fresh)).toBe('李四');
    // Once version 1 is retired, old rows no longer open, and say which key they need.
    const retired = new PiiKeyring({ keys: [{ version: 2, keyHex: data_key_2_hex }] });
    expect(retired.open(fresh)).toBe('李四');
    const e = expectDomainError(() => retired.open(old), 'PII_INTEGRITY');
    expect(e.details).toMatchObject({ reason: 'unknown_key_version', keyVersion: 1 });
  });

  it('parses the PII_KEYS configuration string and checks current/index versions', () => {
    const ring = PiiKeyring.fromConfigString(`1:${data_key_1_hex},2:${data_key_2_hex}`);
    expect(ring.keyVersions()).toEqual([1, 2]);
    expect(ring.currentVersion()).toBe(2);
    expect(ring.indexVersion()).toBe(1);
    expect(ring.open(keyring().seal('张三'))).toBe('张三');
    expectDomainError(() => PiiKeyring.fromConfigString(''), 'KEY_CONFIG_INVALID');
    expectDomainError(() => PiiKeyring.fromConfigString(`1:${data_key_1_hex.slice(2)}`), 'KEY_CONFIG_INVALID');
    expectDomainError(() => PiiKeyring.fromConfigString(`1:${data_key_1_hex}`, { currentVersion: 2 }), 'KEY_CONFIG_INVALID');
    expectDomainError(() => PiiKeyring.fromConfigString(`1:${data_key_1_hex}`, { indexVersion: 3 }), 'KEY_CONFIG_INVALID');
  });
});

describe('blind index', () => {
  it('is deterministic per kind and value, and differs across kinds, values and keys', () => {
    const ring = keyring();
    const id = normalizeNationalId(' 11010519491231002x ');
    expect(id).toBe('11010519491231002X');
    const a = ring.blindIndex('national_id', id);
    expect(a.length).toBe(32);
    expect(ring.blindIndex('national_id', id).equals(a)).toBe(true);
    expect(keyring().blindIndex('national_id', id).equals(a)).toBe(true);
    expect(ring.blindIndex('phone', id).equals(a)).toBe(false);
    expect(ring.blindIndex('national_id', '110105194912310021').equals(a)).toBe(false);
    // Stable across a rotation of the sealing key: the index key is pinned to the index version.
    const rotated = new PiiKeyring({
      keys: [
        { version: 1, keyHex: data_key_1_hex },
        { version: 2, keyHex: data_key_2_hex },
        { version: 3, keyHex: tac_master_key_hex },
      ],
    });
    expect(rotated.blindIndex('national_id', id).equals(a)).toBe(true);
    // Another index key gives other indexes.
    expect(keyring({ index: 2 }).blindIndex('national_id', id).equals(a)).toBe(false);
    // Length-prefixed kind: 'phone' + '1...' is not 'phone1' + '...'.
    expect(ring.blindIndex('phone', '13800138000').equals(ring.blindIndex('phone1', '3800138000'))).toBe(false);
  });

  it('normalizes phones and refuses bad kinds', () => {
    const ring = keyring();
    expect(normalizePhone('+86 138-0013-8000')).toBe('13800138000');
    expect(normalizePhone('0086 13800138000')).toBe('13800138000');
    expect(ring.blindIndex('phone', normalizePhone('+86 138 0013 8000')).equals(ring.blindIndex('phone', '13800138000'))).toBe(true);
    expectDomainError(() => ring.blindIndex('Phone', '1'), 'CRYPTO_INPUT_INVALID');
    expectDomainError(() => ring.blindIndex('', '1'), 'CRYPTO_INPUT_INVALID');
    expectDomainError(() => ring.blindIndex('a'.repeat(33), '1'), 'CRYPTO_INPUT_INVALID');
  });
});

describe('masks', () => {
  it('masks names, national IDs, phones and card numbers', () => {
    expect(maskName('张三')).toBe('张*');
    expect(maskName('欧阳娜娜')).toBe('欧*');
    expect(maskName('𠮷野家')).toBe('𠮷*');
    expect(maskName('')).toBe('');
    expect(maskNationalId('11010519491231002X')).toBe('110***********002X');
    expect(maskNationalId('110105491231002')).toBe('110********1002');
    expect(maskPhone('13800138000')).toBe('138****8000');
    expect(maskCardNo('6217001234567890123')).toBe('621700*********0123');
    expect(maskCardNo('6230580000000018')).toBe('623058******0018');
    // Too short to hide anything behind the kept digits: all hidden.
    expect(maskCardNo('1234567890')).toBe('**********');
    expect(maskPhone('1234567')).toBe('*******');
  });
});

describe('no store shows key material', () => {
  it('ConfigKeyStore and PiiKeyring redact in JSON, inspect and toString', () => {
    const store = new ConfigKeyStore({
      tac: [{ version: 1, keyHex: tac_master_key_hex }],
      qr: [{ version: 1, keyHex: qr_master_key_hex }],
    });
    // Fill the card key cache so derived keys are inside too.
    store.computeTac(1, '6217001234567890123', {
      amountFen: 200,
      txnType: 6,
      terminalId: '420300000101',
      terminalSeq: 1,
      localTime: '20261128073015',
    });
    const cardKeyHex = diversifyCardKey(Buffer.from(tac_master_key_hex, 'hex'), '6217001234567890123').toString('hex');
    const ring = keyring();
    ring.seal('张三');
    const secrets = [tac_master_key_hex, qr_master_key_hex, data_key_1_hex, data_key_2_hex, cardKeyHex].flatMap(keySpellings);
    const renderings = [store, ring].flatMap((s) => [
      JSON.stringify(s),
      JSON.stringify({ nested: s }),
      inspect(s),
      inspect(s, { showHidden: true, depth: 10, getters: true }),
      inspect({ nested: s }, { showHidden: true, depth: 10 }),
      String(s),
      `${s}`,
    ]);
    for (const text of renderings) {
      for (const secret of secrets) expect(text).not.toContain(secret);
    }
    expect(JSON.parse(JSON.stringify(store))).toMatchObject({ tacKeyVersions: [1], qrKeyVersions: [1] });
    expect(JSON.parse(JSON.stringify(ring))).toMatchObject({ keyVersions: [1, 2], currentVersion: 2 });
    // Own enumerable properties: nothing for a generic logger to walk into.
    expect(Object.keys(store)).toEqual([]);
    expect(Object.keys(ring)).toEqual([]);
  });
});

describe('audit chain', () => {
  it('canonical JSON sorts keys, drops whitespace and writes bigints as strings', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: 'x' }, e: 12345678901234567890n })).toBe(
      '{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1,"e":"12345678901234567890"}',
    );
    expect(canonicalJson({ u: undefined, n: '张三', s: 'a"b\n' })).toBe('{"n":"张三","s":"a\\"b\\n"}');
    expect(canonicalJson([undefined, 1])).toBe('[null,1]');
    expect(canonicalJson({ at: new Date(Date.UTC(2026, 10, 28, 0, 0, 0)) })).toBe('{"at":"2026-11-28T00:00:00.000Z"}');
    // Insertion order does not matter.
    expect(canonicalJson({ x: 1, y: 2 })).toBe(canonicalJson({ y: 2, x: 1 }));
    expectDomainError(() => canonicalJson({ f: () => 1 }), 'AUDIT_RECORD_INVALID');
    expectDomainError(() => canonicalJson({ n: Number.NaN }), 'AUDIT_RECORD_INVALID');
    expectDomainError(() => canonicalJson({ m: new Map() }), 'AUDIT_RECORD_INVALID');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expectDomainError(() => canonicalJson(cyclic), 'AUDIT_RECORD_INVALID');
  });

  it('chain hash is SM3(prev hash bytes || canonical record bytes), computed independently', () => {
    const record = { seq: 1, actor: 'ops-1', action: 'ledger.post', amountFen: 1200n, at: '2026-11-28T00:00:00Z' };
    const canonical = '{"action":"ledger.post","actor":"ops-1","amountFen":"1200","at":"2026-11-28T00:00:00Z","seq":1}';
    const h1 = chainHash(audit_chain_genesis_hash_hex, record);
    const expected1 = createHash('sm3')
      .update(Buffer.concat([Buffer.alloc(32), Buffer.from(canonical, 'utf8')]))
      .digest('hex');
    expect(audit_chain_genesis_hash_hex).toBe('0'.repeat(64));
    expect(h1).toBe(expected1);
    const record2 = { seq: 2, note: '更正' };
    const h2 = chainHash(h1, record2);
    const expected2 = createHash('sm3')
      .update(Buffer.from(h1, 'hex'))
      .update(Buffer.from('{"note":"更正","seq":2}', 'utf8'))
      .digest('hex');
    expect(h2).toBe(expected2);
    expectDomainError(() => chainHash('00', record), 'AUDIT_RECORD_INVALID');
    expectDomainError(() => chainHash('A'.repeat(64), record), 'AUDIT_RECORD_INVALID');

    const entries = [
      { record, hashHex: h1 },
      { record: record2, hashHex: h2 },
    ];
    expect(findChainBreak(entries)).toBe(-1);
    expect(findChainBreak([entries[0], { record: { ...record2, seq: 3 }, hashHex: h2 }])).toBe(1);
    expect(findChainBreak([entries[1], entries[0]])).toBe(0);
    expect(findChainBreak([entries[1]], h1)).toBe(-1);
  });
});
