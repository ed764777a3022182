// Proves the card security contract of CARD-SECURITY.md bit for bit against its public test
// vectors: card key diversification, the TAC message and MAC, and the SSC1 QR pay code
// (encoding, signature, validity window). Pure: no database.
import { describe, expect, it } from 'vitest';
import { DomainError } from '../engine/errors.ts';
import {
  BoundedLru,
  ConfigKeyStore,
  bcdDecode,
  bcdEncode,
  diversifyCardKey,
  encodeQrCode,
  parseAndVerifyQrCode,
  parseKeyConfig,
  parseTacHex,
  qrCodeId,
  sm3Hex,
  sm4CbcMac,
  sm4EcbEncryptBlock,
  tacMessage,
  tacWithCardKey,
  verifyTacs,
} from '../adapters/crypto/index.ts';
import type { TacFields, TacRecord } from '../adapters/crypto/index.ts';

const tac_master_key_hex = '0123456789ABCDEFFEDCBA9876543210';
const qr_master_key_hex = '00112233445566778899AABBCCDDEEFF';
// Keys that are not the spec's, for wrong-key and rotation cases.
const other_tac_key_hex = 'FEDCBA98765432100123456789ABCDEF';
const other_qr_key_hex = 'FFEEDDCCBBAA99887766554433221100';

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

interface TacVector extends TacFields {
  cardKeyHex: string;
  tac: string;
}

// The spec's table, row by row; localTime is date || time.
const tac_vectors: TacVector[] = [
  {
    cardNo: '6217001234567890123',
    amountFen: 200,
    txnType: 0x06,
    terminalId: '420300000101',
    terminalSeq: 1,
    localTime: '20261128073015',
    cardKeyHex: '8E241DB5EECC3994BD86D2951CFF32BE',
    tac: '5B0D231C',
  },
  {
    cardNo: '6217001234567890123',
    amountFen: 150,
    txnType: 0x09,
    terminalId: '420300000102',
    terminalSeq: 4294967295,
    localTime: '20261128235959',
    cardKeyHex: '8E241DB5EECC3994BD86D2951CFF32BE',
    tac: 'A2EE02B4',
  },
  {
    cardNo: '6230580000000000018',
    amountFen: 1,
    txnType: 0x06,
    terminalId: '000000000001',
    terminalSeq: 77,
    localTime: '20270101000000',
    cardKeyHex: '3D66F3EEC10E0A157BA99D6E544074BC',
    tac: '5FF23AFA',
  },
];

const qr_vectors = [
  {
    cardNo: '6217001234567890123',
    issuedAtS: 1795000000,
    nonceHex: '0a0b0c0d',
    code: 'SSC1.BiFwASNFZ4kBI2r9hsAKCwwN.re3xeb9Dx_tvZrzNxmLsJA',
  },
  {
    cardNo: '6230580000000000018',
    issuedAtS: 1800000000,
    nonceHex: 'ffffffff',
    code: 'SSC1.BiMFgAAAAAAAGGtJ0gD_____.ogj2wo7ankMePSBYaSZs9A',
  },
];

function specStore(extra: Partial<ConstructorParameters<typeof ConfigKeyStore>[0]> = {}): ConfigKeyStore {
  return new ConfigKeyStore({
    tac: [{ version: 1, keyHex: tac_master_key_hex }],
    qr: [{ version: 1, keyHex: qr_master_key_hex }],
    ...extra,
  });
}

function tacRecord(v: TacVector, keyVersion = 1): TacRecord {
  return {
    cardNo: v.cardNo,
    amountFen: v.amountFen,
    txnType: v.txnType,
    terminalId: v.terminalId,
    terminalSeq: v.terminalSeq,
    localTime: v.localTime,
    keyVersion,
    tac: v.tac,
  };
}

describe('low-level helpers', () => {
  it('packs and unpacks BCD', () => {
    expect(bcdEncode('420300000101').toString('hex')).toBe('420300000101');
    expect(bcdEncode('123', 3).toString('hex')).toBe('000123');
    expect(bcdDecode(Buffer.from('0123456789', 'hex'))).toBe('0123456789');
    expect(bcdDecode(Buffer.from('0a', 'hex'))).toBeUndefined();
    expectDomainError(() => bcdEncode('12a4'), 'CRYPTO_INPUT_INVALID');
    expectDomainError(() => bcdEncode('12345', 2), 'CRYPTO_INPUT_INVALID');
  });

  it('SM4-ECB of one block and the CBC-MAC agree with the TAC definition', () => {
    const key = Buffer.from(tac_vectors[0].cardKeyHex, 'hex');
    const m = tacMessage(tac_vectors[0]);
    expect(sm4CbcMac(key, m).subarray(0, 4).toString('hex').toUpperCase()).toBe(tac_vectors[0].tac);
    // CBC over two blocks is ECB(K, P1), then ECB(K, C1 xor P2).
    const padded = Buffer.alloc(32);
    m.copy(padded);
    padded[22] = 0x80;
    const c1 = sm4EcbEncryptBlock(key, padded.subarray(0, 16));
    const x = Buffer.alloc(16);
    for (let i = 0; i < 16; i++) x[i] = c1[i] ^ padded[16 + i];
    expect(sm4EcbEncryptBlock(key, x).subarray(0, 4).toString('hex').toUpperCase()).toBe(tac_vectors[0].tac);
  });

  it('SM3 matches the GB/T 32905 example "abc"', () => {
    expect(sm3Hex(Buffer.from('abc'))).toBe('66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0');
  });

  it('the LRU evicts the least recently used entry', () => {
    const lru = new BoundedLru<number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    expect(lru.get('a')).toBe(1);
    lru.set('c', 3);
    expect(lru.get('b')).toBeUndefined();
    expect(lru.get('a')).toBe(1);
    expect(lru.get('c')).toBe(3);
    expect(lru.size).toBe(2);
  });
});

describe('card key diversification', () => {
  it.each(tac_vectors)('K_card of $cardNo is $cardKeyHex', (v) => {
    const master = Buffer.from(tac_master_key_hex, 'hex');
    expect(diversifyCardKey(master, v.cardNo).toString('hex').toUpperCase()).toBe(v.cardKeyHex);
  });

  it('uses only the rightmost 16 digits', () => {
    const master = Buffer.from(tac_master_key_hex, 'hex');
    expectDomainError(() => diversifyCardKey(master, '123456789012345'), 'CRYPTO_INPUT_INVALID');
    expect(diversifyCardKey(master, '9997001234567890123').toString('hex').toUpperCase()).toBe(
      tac_vectors[0].cardKeyHex,
    );
    expect(diversifyCardKey(master, '7001234567890123').toString('hex').toUpperCase()).toBe(tac_vectors[0].cardKeyHex);
  });
});

describe('TAC', () => {
  it('M of the first row is the spec bytes', () => {
    expect(tacMessage(tac_vectors[0]).toString('hex').toUpperCase()).toBe(
      '000000C8064203000001010000000120261128073015',
    );
    expect(tacMessage(tac_vectors[0]).length).toBe(22);
  });

  it.each(tac_vectors)('TAC of $cardNo amount $amountFen seq $terminalSeq is $tac', (v) => {
    const store = specStore();
    expect(store.computeTac(1, v.cardNo, v)).toBe(v.tac);
    expect(store.verifyTac(1, v.cardNo, v, v.tac)).toBe(true);
    expect(tacWithCardKey(Buffer.from(v.cardKeyHex, 'hex'), v)).toBe(v.tac);
  });

  it('verifies a batch, record by record', () => {
    const store = specStore();
    const records = tac_vectors.map((v) => tacRecord(v));
    records.push({ ...tacRecord(tac_vectors[0]), amountFen: 201 });
    expect(store.verifyTacs(records)).toEqual([true, true, true, false]);
    expect(verifyTacs(store, records)).toEqual([true, true, true, false]);
  });

  it('any changed field gives a different TAC', () => {
    const store = specStore();
    const base = tacRecord(tac_vectors[0]);
    const altered: TacRecord[] = [
      { ...base, amountFen: 201 },
      { ...base, amountFen: 200 + 2 ** 24 },
      { ...base, txnType: 0x09 },
      { ...base, terminalId: '420300000102' },
      { ...base, terminalSeq: 2 },
      { ...base, localTime: '20261128073016' },
      { ...base, localTime: '20261129073015' },
      { ...base, cardNo: '6217001234567890124' },
      { ...base, tac: '5B0D231D' },
    ];
    expect(store.verifyTacs(altered)).toEqual(altered.map(() => false));
    for (const r of altered.slice(0, 8)) expect(store.computeTac(1, r.cardNo, r)).not.toBe(base.tac);
  });

  it('a wrong or unknown key version does not verify', () => {
    const store = new ConfigKeyStore({
      tac: [
        { version: 1, keyHex: tac_master_key_hex },
        { version: 2, keyHex: other_tac_key_hex },
      ],
      qr: [],
    });
    const row = tacRecord(tac_vectors[0]);
    expect(store.verifyTacs([row, { ...row, keyVersion: 2 }, { ...row, keyVersion: 3 }])).toEqual([
      true,
      false,
      false,
    ]);
    expect(store.hasTacKey(2)).toBe(true);
    expect(store.hasTacKey(3)).toBe(false);
    expect(store.tacKeyVersions()).toEqual([1, 2]);
    const e = expectDomainError(() => store.computeTac(3, row.cardNo, row), 'UNKNOWN_KEY_VERSION');
    expect(e.status).toBe(422);
  });

  it('malformed records verify false instead of throwing; computeTac refuses them', () => {
    const store = specStore();
    const row = tacRecord(tac_vectors[0]);
    const bad: TacRecord[] = [
      { ...row, tac: '5b0d231c' },
      { ...row, tac: '5B0D231' },
      { ...row, tac: 'ZZZZZZZZ' },
      { ...row, amountFen: -1 },
      { ...row, amountFen: 2 ** 32 },
      { ...row, amountFen: 1.5 },
      { ...row, txnType: 256 },
      { ...row, terminalId: '42030000010' },
      { ...row, terminalId: '42030000010A' },
      { ...row, terminalSeq: 2 ** 32 },
      { ...row, localTime: '2026112807301' },
      { ...row, localTime: '2026-11-280730' },
      { ...row, cardNo: '621700123456789' },
      { ...row, cardNo: '62170012345678901234' },
      { ...row, cardNo: '621700123456789012X' },
    ];
    expect(store.verifyTacs(bad)).toEqual(bad.map(() => false));
    for (const r of bad.slice(3)) expectDomainError(() => store.computeTac(1, r.cardNo, r), 'CRYPTO_INPUT_INVALID');
    expect(parseTacHex('FFFFFFFF')).toBe(0xffffffff);
  });

  it('stays correct when the card key cache evicts and recycles slots', () => {
    const store = specStore({ cardKeyCacheEntriesMax: 2 });
    const cards = ['6217001234567890123', '6230580000000000018', '6217001234567890124', '6217001234567890125'];
    const expected = cards.map((cardNo) => tacWithCardKey(diversifyCardKey(Buffer.from(tac_master_key_hex, 'hex'), cardNo), tac_vectors[0]));
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < cards.length; i++) {
        const j = (i * (round + 1)) % cards.length;
        expect(store.computeTac(1, cards[j], tac_vectors[0])).toBe(expected[j]);
      }
    }
    expect(store.stats().cardKeyCacheEntries).toBe(2);
    expect(store.verifyTacs(tac_vectors.map((v) => tacRecord(v)))).toEqual([true, true, true]);
  });
});

describe('QR pay code', () => {
  it.each(qr_vectors)('encodes $cardNo at $issuedAtS to the spec code', (v) => {
    const store = specStore();
    const code = encodeQrCode(store, {
      cardNo: v.cardNo,
      issuedAtS: v.issuedAtS,
      nonce4: Buffer.from(v.nonceHex, 'hex'),
    });
    expect(code).toBe(v.code);
  });

  it.each(qr_vectors)('parses and verifies $code inside its window, boundaries included', (v) => {
    const store = specStore();
    for (const offsetS of [-5, 0, 30, 60]) {
      const verified = parseAndVerifyQrCode(store, v.code, v.issuedAtS + offsetS);
      expect(verified.cardNo).toBe(v.cardNo);
      expect(verified.issuedAtS).toBe(v.issuedAtS);
      expect(verified.nonceHex).toBe(v.nonceHex);
      expect(verified.keyVersion).toBe(1);
      const body = Buffer.from(v.code.split('.')[1], 'base64url');
      expect(verified.codeId).toBe(sm3Hex(body));
      expect(verified.codeId).toBe(qrCodeId(body));
    }
  });

  it.each(qr_vectors)('refuses $code outside its window', (v) => {
    const store = specStore();
    expectDomainError(() => parseAndVerifyQrCode(store, v.code, v.issuedAtS - 6), 'QR_NOT_YET_VALID');
    expectDomainError(() => parseAndVerifyQrCode(store, v.code, v.issuedAtS + 61), 'QR_EXPIRED');
    expectDomainError(() => parseAndVerifyQrCode(store, v.code, v.issuedAtS + 86_400), 'QR_EXPIRED');
    expectDomainError(() => parseAndVerifyQrCode(store, v.code, 0), 'QR_NOT_YET_VALID');
  });

  it.each(qr_vectors)('refuses every one-bit change of the body or the signature of $code', (v) => {
    const store = specStore();
    const [, bodyText, sigText] = v.code.split('.');
    const body = Buffer.from(bodyText, 'base64url');
    const sig = Buffer.from(sigText, 'base64url');
    const now = v.issuedAtS;
    for (let bit = 0; bit < body.length * 8; bit++) {
      const changed = Buffer.from(body);
      changed[bit >> 3] ^= 0x80 >> (bit & 7);
      const code = `SSC1.${changed.toString('base64url')}.${sigText}`;
      // A flipped card digit can stop being a digit (or make the number too long): then the
      // code is already malformed; anything that still parses must fail the signature.
      const digits = bcdDecode(changed.subarray(0, 10));
      const parses = digits !== undefined && /^0*[1-9][0-9]{15,18}$/.test(digits);
      expectDomainError(() => parseAndVerifyQrCode(store, code, now), parses ? 'QR_BAD_SIGNATURE' : 'QR_MALFORMED');
      if (bit >= 80) expect(parses).toBe(true); // issued-at and nonce bits always reach the MAC
    }
    for (let bit = 0; bit < sig.length * 8; bit++) {
      const changed = Buffer.from(sig);
      changed[bit >> 3] ^= 0x80 >> (bit & 7);
      const code = `SSC1.${bodyText}.${changed.toString('base64url')}`;
      expectDomainError(() => parseAndVerifyQrCode(store, code, now), 'QR_BAD_SIGNATURE');
    }
  });

  it('checks the signature before the window: a forged expired code is a bad signature', () => {
    const store = specStore();
    const v = qr_vectors[0];
    const [, bodyText, sigText] = v.code.split('.');
    const sig = Buffer.from(sigText, 'base64url');
    sig[0] ^= 1;
    const forged = `SSC1.${bodyText}.${sig.toString('base64url')}`;
    expectDomainError(() => parseAndVerifyQrCode(store, forged, v.issuedAtS + 1000), 'QR_BAD_SIGNATURE');
  });

  it('refuses a code signed under another QR key, and the TAC key is not the QR key', () => {
    const v = qr_vectors[0];
    const wrong = new ConfigKeyStore({ tac: [], qr: [{ version: 1, keyHex: other_qr_key_hex }] });
    expectDomainError(() => parseAndVerifyQrCode(wrong, v.code, v.issuedAtS), 'QR_BAD_SIGNATURE');
    const tacKeyAsQr = new ConfigKeyStore({ tac: [], qr: [{ version: 1, keyHex: tac_master_key_hex }] });
    expectDomainError(() => parseAndVerifyQrCode(tacKeyAsQr, v.code, v.issuedAtS), 'QR_BAD_SIGNATURE');
  });

  it('accepts the previous QR key during a rotation, but not older ones', () => {
    const v = qr_vectors[0];
    const rotated = new ConfigKeyStore({
      tac: [],
      qr: [
        { version: 1, keyHex: qr_master_key_hex },
        { version: 2, keyHex: other_qr_key_hex },
      ],
    });
    expect(rotated.qrCurrentVersion()).toBe(2);
    expect(parseAndVerifyQrCode(rotated, v.code, v.issuedAtS).keyVersion).toBe(1);
    const fresh = encodeQrCode(rotated, { cardNo: v.cardNo, issuedAtS: v.issuedAtS, nonce4: Buffer.from(v.nonceHex, 'hex') });
    expect(fresh).not.toBe(v.code);
    expect(parseAndVerifyQrCode(rotated, fresh, v.issuedAtS).keyVersion).toBe(2);
    // Same body, so the same codeId: a code cannot be replayed by re-signing it under another key.
    expect(parseAndVerifyQrCode(rotated, fresh, v.issuedAtS).codeId).toBe(
      parseAndVerifyQrCode(rotated, v.code, v.issuedAtS).codeId,
    );

    const twiceRotated = new ConfigKeyStore({
      tac: [],
      qr: [
        { version: 1, keyHex: qr_master_key_hex },
        { version: 2, keyHex: other_qr_key_hex },
        { version: 3, keyHex: tac_master_key_hex },
      ],
    });
    expectDomainError(() => parseAndVerifyQrCode(twiceRotated, v.code, v.issuedAtS), 'QR_BAD_SIGNATURE');
    expect(parseAndVerifyQrCode(twiceRotated, fresh, v.issuedAtS).keyVersion).toBe(2);

    const pinned = new ConfigKeyStore({
      tac: [],
      qr: [
        { version: 1, keyHex: qr_master_key_hex },
        { version: 2, keyHex: other_qr_key_hex },
      ],
      qrCurrentVersion: 1,
    });
    expect(encodeQrCode(pinned, { cardNo: v.cardNo, issuedAtS: v.issuedAtS, nonce4: Buffer.from(v.nonceHex, 'hex') })).toBe(v.code);
    expectDomainError(() => encodeQrCode(pinned, { cardNo: v.cardNo, issuedAtS: 1 }, 9), 'UNKNOWN_KEY_VERSION');
  });

  it('random nonces make distinct codes for the same card and second', () => {
    const store = specStore();
    const a = encodeQrCode(store, { cardNo: qr_vectors[0].cardNo, issuedAtS: 1795000000 });
    const b = encodeQrCode(store, { cardNo: qr_vectors[0].cardNo, issuedAtS: 1795000000 });
    expect(a).not.toBe(b);
    expect(parseAndVerifyQrCode(store, a, 1795000000).codeId).not.toBe(parseAndVerifyQrCode(store, b, 1795000000).codeId);
  });

  it('refuses malformed codes', () => {
    const store = specStore();
    const v = qr_vectors[0];
    const [, bodyText, sigText] = v.code.split('.');
    const malformed = [
      '',
      v.code.replace('SSC1.', 'SSC2.'),
      v.code.replace('SSC1.', 'ssc1.'),
      `${v.code}=`,
      v.code.slice(0, -1),
      `SSC1.${bodyText}.${sigText}A`,
      `SSC1.${bodyText}${sigText}`,
      `SSC1.${bodyText.replace('B', '+')}.${sigText}`,
      // Non-canonical base64url: the last character carries unused bits.
      `SSC1.${bodyText}.${sigText.slice(0, -1)}B`,
      // Body whose card number field is not BCD.
      `SSC1.${Buffer.from('0a'.repeat(10) + '00'.repeat(8), 'hex').toString('base64url')}.${sigText}`,
      // Card number of fewer than 16 digits.
      `SSC1.${Buffer.from('00'.repeat(3) + '11'.repeat(7) + '00'.repeat(8), 'hex').toString('base64url')}.${sigText}`,
      ` ${v.code}`,
    ];
    for (const code of malformed) expectDomainError(() => parseAndVerifyQrCode(store, code, v.issuedAtS), 'QR_MALFORMED');
    expect(sigText.endsWith('A')).toBe(true); // so the non-canonical variant above differs
  });

  it('refuses to encode card numbers that would not round-trip, and bad inputs', () => {
    const store = specStore();
    expectDomainError(() => encodeQrCode(store, { cardNo: '0217001234567890123', issuedAtS: 1 }), 'CRYPTO_INPUT_INVALID');
    expectDomainError(() => encodeQrCode(store, { cardNo: '621700123456789', issuedAtS: 1 }), 'CRYPTO_INPUT_INVALID');
    expectDomainError(() => encodeQrCode(store, { cardNo: '6217001234567890123', issuedAtS: -1 }), 'CRYPTO_INPUT_INVALID');
    expectDomainError(() => encodeQrCode(store, { cardNo: '6217001234567890123', issuedAtS: 2 ** 32 }), 'CRYPTO_INPUT_INVALID');
    expectDomainError(
      () => encodeQrCode(store, { cardNo: '6217001234567890123', issuedAtS: 1, nonce4: Buffer.alloc(3) }),
      'CRYPTO_INPUT_INVALID',
    );
    const noQr = new ConfigKeyStore({ tac: [], qr: [] });
    expectDomainError(() => encodeQrCode(noQr, { cardNo: '6217001234567890123', issuedAtS: 1 }), 'QR_KEYS_NOT_CONFIGURED');
    expectDomainError(() => parseAndVerifyQrCode(noQr, qr_vectors[0].code, 1795000000), 'QR_KEYS_NOT_CONFIGURED');
  });
});

describe('key configuration', () => {
  it('parses versioned keys', () => {
    expect(parseKeyConfig(`1:${tac_master_key_hex}, 2:${other_tac_key_hex.toLowerCase()}`)).toEqual([
      { version: 1, keyHex: tac_master_key_hex },
      { version: 2, keyHex: other_tac_key_hex.toLowerCase() },
    ]);
    expect(parseKeyConfig(undefined)).toEqual([]);
    expect(parseKeyConfig('  ')).toEqual([]);
    const store = ConfigKeyStore.fromConfigStrings(`1:${tac_master_key_hex}`, `1:${qr_master_key_hex}`);
    expect(store.computeTac(1, tac_vectors[0].cardNo, tac_vectors[0])).toBe(tac_vectors[0].tac);
    expect(parseAndVerifyQrCode(store, qr_vectors[0].code, qr_vectors[0].issuedAtS).cardNo).toBe(qr_vectors[0].cardNo);
  });

  it('refuses bad versions and keys without echoing the key', () => {
    const secret = tac_master_key_hex;
    const bad = [
      `0:${secret}`,
      `256:${secret}`,
      `x:${secret}`,
      `1:${secret},1:${other_tac_key_hex}`,
      `1:${secret.slice(0, 31)}`,
      `1:${secret}0`,
      `1:${secret.slice(0, 31)}G`,
      secret,
      `1:${secret},`,
    ];
    for (const text of bad) {
      const e = expectDomainError(() => parseKeyConfig(text), 'KEY_CONFIG_INVALID');
      expect(e.message).not.toContain(secret.slice(0, 16));
      expect(JSON.stringify(e.details ?? {})).not.toContain(secret.slice(0, 16));
    }
    expectDomainError(() => new ConfigKeyStore({ tac: [{ version: 1, keyHex: 'abc' }], qr: [] }), 'KEY_CONFIG_INVALID');
    expectDomainError(
      () => new ConfigKeyStore({ tac: [], qr: [{ version: 1, keyHex: qr_master_key_hex }], qrCurrentVersion: 2 }),
      'KEY_CONFIG_INVALID',
    );
  });
});
