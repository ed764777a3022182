/**
 * detail.csv byte for byte, its digests and control sums, the net position rule, return.csv
 * parsing, the manifest, and the fee rule (table and property against exact bigint rationals).
 */
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildCamt053,
  buildManifest,
  buildPacs009,
  detailManifestFile,
  DigestPassThrough,
  digestOf,
  manifestFileOf,
  maskCardNo,
  parseReturnCsv,
  reprDigestHeader,
  shanghaiDateTime,
  writeDetailCsv,
  writeReturnCsv,
  type DetailLine,
  type ReturnRow,
} from '../adapters/bankfiles/index.ts';
import { feeFen, validateFeeSchedule, type FeeSchedule } from '../engine/clearing/fees.ts';
import { isDomainError } from '../engine/errors.ts';
import { pipeline } from 'node:stream/promises';

/** A Writable that keeps what it receives; slow and tiny on purpose, to exercise backpressure. */
function sink(highWaterMark = 16 * 1024) {
  const chunks: Buffer[] = [];
  let writes = 0;
  const stream = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      writes += 1;
      setImmediate(callback);
    },
  });
  return { stream, bytes: () => Buffer.concat(chunks), writes: () => writes };
}

async function expectRejectsWith(promise: Promise<unknown>, code: string) {
  try {
    await promise;
  } catch (error) {
    expect(isDomainError(error) && error.code).toBe(code);
    return error;
  }
  throw new Error(`expected DomainError ${code}`);
}

const line = (overrides: Partial<DetailLine>): DetailLine => ({
  txnId: 'txn_01',
  kind: 'QR_PAYMENT',
  side: 'ACQUIRER',
  cardNo: '6212345678901234',
  merchantId: 'mer_001',
  terminalId: 'T-01',
  txnTime: '2026-11-28T07:30:15+08:00',
  amountFen: 1000n,
  feeFen: 6n,
  direction: 'RECEIVE',
  ...overrides,
});

const LINES: DetailLine[] = [
  line({}),
  line({
    txnId: 'txn_02',
    kind: 'PURSE_LOAD',
    side: 'ISSUER',
    cardNo: '6212345678901234567',
    merchantId: '',
    terminalId: '',
    txnTime: '2026-11-28T08:00:00+08:00',
    amountFen: 50000n,
    feeFen: 0n,
    direction: 'PAY',
  }),
  line({
    txnId: 'txn_03',
    kind: 'MEDICAL_SELF_PAY',
    merchantId: 'Hospital No.1, "East" wing',
    terminalId: 'line\nbreak',
    amountFen: 2550n,
    feeFen: 15n,
  }),
  line({ txnId: 'txn_04', kind: 'REFUND', side: 'ISSUER', cardNo: '62123456789', amountFen: 300n, feeFen: 0n, direction: 'RECEIVE' }),
];

const EXPECTED_CSV =
  'line_no,txn_id,kind,side,card_no_masked,merchant_id,terminal_id,txn_time,amount_fen,fee_fen,net_fen,direction\n' +
  '1,txn_01,QR_PAYMENT,ACQUIRER,621234******1234,mer_001,T-01,2026-11-28T07:30:15+08:00,1000,6,994,RECEIVE\n' +
  '2,txn_02,PURSE_LOAD,ISSUER,621234*********4567,,,2026-11-28T08:00:00+08:00,50000,0,50000,PAY\n' +
  '3,txn_03,MEDICAL_SELF_PAY,ACQUIRER,621234******1234,"Hospital No.1, ""East"" wing","line\nbreak",2026-11-28T07:30:15+08:00,2550,15,2535,RECEIVE\n' +
  '4,txn_04,REFUND,ISSUER,621234*6789,mer_001,T-01,2026-11-28T07:30:15+08:00,300,0,300,RECEIVE\n';

describe('detail.csv', () => {
  it('writes exactly the contract bytes: header, order, quoting, masking, \\n, no BOM', async () => {
    const out = sink();
    const summary = await writeDetailCsv(LINES, out.stream);
    const bytes = out.bytes();
    expect(bytes.toString('utf8')).toBe(EXPECTED_CSV);
    expect(bytes.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf]))).toBe(false);
    expect(bytes.includes('\r')).toBe(false);
    expect(bytes.toString('utf8')).not.toContain('6212345678901234');
    expect(summary.lineCount).toBe(4);
    expect(summary.bytes).toBe(bytes.byteLength);
  });

  it('digests are SHA-256 and SM3 of the exact bytes written', async () => {
    const out = sink();
    const summary = await writeDetailCsv(LINES, out.stream);
    const bytes = out.bytes();
    expect(summary.sha256Hex).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(summary.sm3Hex).toBe(createHash('sm3').update(bytes).digest('hex'));
    expect(reprDigestHeader(Buffer.from(summary.sha256Hex, 'hex'))).toBe(
      `sha-256=:${createHash('sha256').update(bytes).digest('base64')}:`,
    );
  });

  it('control sums and the net position rule (acquirer net = amount − fee, issuer net = amount)', async () => {
    const summary = await writeDetailCsv(LINES, sink().stream);
    // RECEIVE: 994 + 2535 + 300 = 3829; PAY: 50000 → the bank owes 46171 fen.
    expect(summary.controlSums).toEqual({
      payFen: 50000n,
      receiveFen: 3829n,
      netPositionFen: -46171n,
      amountFen: 53850n,
      feeFen: 21n,
    });
  });

  it('streams an async source through a slow consumer with backpressure, in order', async () => {
    const count = 20_000;
    async function* source() {
      for (let i = 1; i <= count; i++) {
        yield line({ txnId: `t${i}`, amountFen: BigInt(i), feeFen: 0n, direction: i % 2 === 0 ? 'PAY' : 'RECEIVE' });
      }
    }
    const out = sink(1024);
    const summary = await writeDetailCsv(source(), out.stream);
    const text = out.bytes().toString('utf8');
    const rows = text.split('\n');
    expect(rows).toHaveLength(count + 2); // header + lines + '' after the final \n
    expect(rows[count]).toMatch(new RegExp(`^${count},t${count},`));
    expect(out.writes()).toBeGreaterThan(10); // chunked, not one buffer
    expect(summary.lineCount).toBe(count);
    // Σ even i − Σ odd i over 1..20000 = 10000: RECEIVE (odd) − PAY (even) = −10000.
    expect(summary.controlSums.netPositionFen).toBe(-10000n);
    expect(summary.sha256Hex).toBe(createHash('sha256').update(out.bytes()).digest('hex'));
  });

  it('an empty cycle is the header alone', async () => {
    const out = sink();
    const summary = await writeDetailCsv([], out.stream);
    expect(out.bytes().toString('utf8')).toBe(`${EXPECTED_CSV.split('\n')[0]}\n`);
    expect(summary.lineCount).toBe(0);
    expect(summary.controlSums.netPositionFen).toBe(0n);
  });

  it.each([
    ['kind', { kind: 'LOTTERY' as never }],
    ['side', { side: 'BOTH' as never }],
    ['direction', { direction: 'KEEP' as never }],
    ['card_no', { cardNo: '6212-3456-7890' }],
    ['card_no', { cardNo: '1234567890' }],
    ['txn_time', { txnTime: '2026-11-28T07:30:15Z' }],
    ['txn_time', { txnTime: '2026-11-28 07:30:15' }],
    ['amount_fen', { amountFen: -1n }],
    ['amount_fen', { amountFen: 10 as never }],
    ['fee_fen', { feeFen: -1n }],
    ['txn_id', { txnId: '' }],
    ['merchant_id', { merchantId: 'm'.repeat(65) }],
  ])('refuses a bad %s with DETAIL_LINE_INVALID naming the line, never the card', async (column, overrides) => {
    const error = await expectRejectsWith(writeDetailCsv([line({}), line(overrides)], sink().stream), 'DETAIL_LINE_INVALID');
    expect(isDomainError(error) && error.details).toEqual({ lineNo: 2, column });
    expect(JSON.stringify(isDomainError(error) && error.details)).not.toContain('6212345678901234');
  });

  it('masks card numbers: first 6, last 4, a star for each digit between', () => {
    expect(maskCardNo('6212345678901234')).toBe('621234******1234');
    expect(maskCardNo('6212345678901234567')).toBe('621234*********4567');
    expect(maskCardNo('62123456789')).toBe('621234*6789');
    expect(maskCardNo('')).toBe('');
    expect(() => maskCardNo('1234567890')).toThrow();
  });

  it('shanghaiDateTime gives the txn_time format', () => {
    expect(shanghaiDateTime(new Date('2026-11-27T23:30:15.999Z'))).toBe('2026-11-28T07:30:15+08:00');
  });
});

describe('digests', () => {
  it('SM3 and SHA-256 known answers; Repr-Digest per RFC 9530', () => {
    const abc = digestOf('abc');
    expect(abc.sm3Hex).toBe('66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0');
    expect(abc.sha256Hex).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(abc.bytes).toBe(3);
    // RFC 9530 §B.1 example body.
    const example = createHash('sha256').update('{"hello": "world"}').digest();
    expect(reprDigestHeader(example)).toBe('sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:');
  });

  it('DigestPassThrough digests what flows through a pipeline and passes it unchanged', async () => {
    const digest = new DigestPassThrough();
    const out = sink();
    await pipeline(Readable.from([Buffer.from('a,b\n'), Buffer.from('中文\n')]), digest, out.stream);
    expect(out.bytes().toString('utf8')).toBe('a,b\n中文\n');
    expect(digest.result()).toEqual(digestOf('a,b\n中文\n'));
  });
});

describe('return.csv', () => {
  async function parseAll(text: string | Buffer): Promise<ReturnRow[]> {
    const rows: ReturnRow[] = [];
    for await (const row of parseReturnCsv(Readable.from([typeof text === 'string' ? Buffer.from(text) : text]))) rows.push(row);
    return rows;
  }

  it('reads POSTED and REJECTED lines, quoted fields, CRLF and a BOM', async () => {
    const text =
      '\uFEFFtxn_id,amount_fen,status,bank_ref,reason\r\n' +
      'txn_01,994,POSTED,BR-1,\r\n' +
      'txn_02,50000,REJECTED,,"Account closed, ""frozen"""\r\n';
    expect(await parseAll(text)).toEqual([
      { lineNo: 2, txnId: 'txn_01', amountFen: 994n, status: 'POSTED', bankRef: 'BR-1', reason: null },
      { lineNo: 3, txnId: 'txn_02', amountFen: 50000n, status: 'REJECTED', bankRef: '', reason: 'Account closed, "frozen"' },
    ]);
  });

  it('reads input split at any byte, multi-line quoted reasons included', async () => {
    const text = 'txn_id,amount_fen,status,bank_ref,reason\nt1,1,REJECTED,r,"two\nlines"\nt2,2,POSTED,r,\n';
    const bytes = Buffer.from(text);
    const pieces = Array.from(bytes, (byte) => Buffer.from([byte]));
    const rows: ReturnRow[] = [];
    for await (const row of parseReturnCsv(pieces)) rows.push(row);
    expect(rows.map((row) => [row.lineNo, row.txnId, row.reason])).toEqual([
      [3, 't1', 'two\nlines'],
      [4, 't2', null],
    ]);
  });

  it('writer and parser agree', async () => {
    const input = [
      { txnId: 'a,1', amountFen: 0n, status: 'POSTED' as const, bankRef: 'x"y', reason: null },
      { txnId: 'b', amountFen: 123456789012345678n, status: 'REJECTED' as const, bankRef: '', reason: 'no\naccount' },
    ];
    const out = sink();
    const written = await writeReturnCsv(input, out.stream);
    expect(written.lineCount).toBe(2);
    expect(written.bytes).toBe(out.bytes().byteLength);
    const rows = await parseAll(out.bytes());
    expect(rows.map(({ lineNo: _lineNo, ...row }) => row)).toEqual(input);
  });

  it.each([
    ['an empty file', '', 1],
    ['a wrong header', 'txn_id,amount,status,bank_ref,reason\n', 1],
    ['a header in another order', 'amount_fen,txn_id,status,bank_ref,reason\n', 1],
    ['a missing column', 'txn_id,amount_fen,status,bank_ref,reason\nt1,1,POSTED,r\n', 2],
    ['an extra column', 'txn_id,amount_fen,status,bank_ref,reason\nt1,1,POSTED,r,,x\n', 2],
    ['a decimal amount', 'txn_id,amount_fen,status,bank_ref,reason\nt1,1,POSTED,r,\nt2,1.50,POSTED,r,\n', 3],
    ['a negative amount', 'txn_id,amount_fen,status,bank_ref,reason\nt1,-1,POSTED,r,\n', 2],
    ['an unknown status', 'txn_id,amount_fen,status,bank_ref,reason\nt1,1,DONE,r,\n', 2],
    ['REJECTED without reason', 'txn_id,amount_fen,status,bank_ref,reason\nt1,1,POSTED,r,\nt2,1,REJECTED,r, \n', 3],
    ['an empty txn_id', 'txn_id,amount_fen,status,bank_ref,reason\n,1,POSTED,r,\n', 2],
    ['an unclosed quote', 'txn_id,amount_fen,status,bank_ref,reason\nt1,1,POSTED,r,\nt2,1,REJECTED,r,"oops\n', 3],
  ])('refuses %s with RETURN_MALFORMED at line %#', async (_name, text, lineNo) => {
    const error = await expectRejectsWith(parseAll(text), 'RETURN_MALFORMED');
    expect(isDomainError(error) && error.status).toBe(400);
    expect(isDomainError(error) && error.details).toEqual({ lineNo });
  });

  it('refuses bytes that are not UTF-8', async () => {
    const bytes = Buffer.concat([Buffer.from('txn_id,amount_fen,status,bank_ref,reason\nt'), Buffer.from([0xff]), Buffer.from(',1,POSTED,r,\n')]);
    await expectRejectsWith(parseAll(bytes), 'RETURN_MALFORMED');
  });

  it('a failing upload stream fails the parse', async () => {
    async function* broken() {
      yield Buffer.from('txn_id,amount_fen,status,bank_ref,reason\nt1,1,POSTED,r,\n');
      throw new Error('connection reset');
    }
    await expect(parseAll2(broken())).rejects.toThrow('connection reset');
    async function parseAll2(source: AsyncIterable<Buffer>) {
      for await (const _row of parseReturnCsv(source)) {
        // drain
      }
    }
  });
});

describe('manifest.json', () => {
  const context = {
    bankCode: '102100099996',
    cycleId: 'cyc_20261128',
    businessDate: '2026-11-28',
    settlementDate: '2026-11-30',
    createdAt: new Date('2026-11-28T15:05:30Z'),
  };

  async function buildPackage(netOverride?: bigint) {
    const detail = await writeDetailCsv(LINES, sink().stream);
    const pacs009 = buildPacs009({
      ...context,
      messageId: 'P1',
      netPositionFen: detail.controlSums.netPositionFen,
      centre: { bankCode: '103100000026', accountId: '110012345' },
    });
    const camt053 = buildCamt053({
      ...context,
      messageId: 'C1',
      openingBalanceFen: 0n,
      aggregates: [
        { kind: 'QR_PAYMENT', side: 'ACQUIRER', direction: 'RECEIVE', count: 1, netFen: 994n },
        { kind: 'PURSE_LOAD', side: 'ISSUER', direction: 'PAY', count: 1, netFen: 50000n },
        { kind: 'MEDICAL_SELF_PAY', side: 'ACQUIRER', direction: 'RECEIVE', count: 1, netFen: 2535n },
        { kind: 'REFUND', side: 'ISSUER', direction: 'RECEIVE', count: 1, netFen: 300n },
      ],
    });
    return {
      detail,
      pacs009,
      json: buildManifest({
        ...context,
        netPositionFen: netOverride ?? detail.controlSums.netPositionFen,
        files: [detailManifestFile(detail), manifestFileOf('pacs.009.xml', pacs009), manifestFileOf('camt.053.xml', camt053)],
      }),
    };
  }

  it('lists every file with bytes, counts, control sums and digests, in a stable key order', async () => {
    const { json, detail, pacs009 } = await buildPackage();
    const manifest = JSON.parse(json);
    expect(Object.keys(manifest)).toEqual([
      'bankCode', 'cycleId', 'businessDate', 'settlementDate', 'createdAt', 'netPositionFen', 'direction', 'files',
    ]);
    expect(manifest.netPositionFen).toBe('-46171');
    expect(manifest.direction).toBe('PAY');
    expect(manifest.createdAt).toBe('2026-11-28T23:05:30+08:00');
    expect(manifest.files.map((file: { name: string }) => file.name)).toEqual(['detail.csv', 'pacs.009.xml', 'camt.053.xml']);
    expect(manifest.files[0]).toEqual({
      name: 'detail.csv',
      bytes: detail.bytes,
      recordCount: 4,
      controlSums: { amountFen: '53850', feeFen: '21', netPositionFen: '-46171', payFen: '50000', receiveFen: '3829' },
      sha256: detail.sha256Hex,
      sm3: detail.sm3Hex,
    });
    expect(Object.keys(manifest.files[1])).toEqual(['name', 'bytes', 'recordCount', 'controlSums', 'sha256', 'sm3']);
    expect(manifest.files[1].sha256).toBe(createHash('sha256').update(pacs009.xml).digest('hex'));
    expect(manifest.files[1].bytes).toBe(Buffer.byteLength(pacs009.xml));
    expect(json.endsWith('}\n')).toBe(true);
    expect((await buildPackage()).json).toBe(json);
  });

  it('refuses a package whose files disagree on the net position', async () => {
    await expectRejectsWith(buildPackage(-46170n), 'SETTLEMENT_PACKAGE_INCONSISTENT');
  });
});

describe('fees', () => {
  const schedule = (rate: string, minFen = 0n, maxFen = 10n ** 12n): FeeSchedule => ({ rate, minFen, maxFen });

  it.each([
    // amount, rate, min, max, fee
    [1000n, '0.006', 0n, 1000n, 6n],
    [250n, '0.006', 0n, 1000n, 2n], // 1.5 → 2 (half up)
    [249n, '0.006', 0n, 1000n, 1n], // 1.494 → 1
    [2417n, '0.006', 0n, 1000n, 15n], // 14.502 → 15
    [2416n, '0.006', 0n, 1000n, 14n], // 14.496 → 14
    [75n, '0.02', 0n, 1000n, 2n], // 1.5 → 2
    [25n, '0.1', 0n, 1000n, 3n], // 2.5 → 3 (half up, not half even)
    [35n, '0.1', 0n, 1000n, 4n], // 3.5 → 4
    [1n, '0.5', 0n, 1000n, 1n], // 0.5 → 1
    [100n, '0.006', 5n, 1000n, 5n], // 0.6 → 1, clamped up to min 5
    [10_000_000n, '0.006', 0n, 2000n, 2000n], // 60000, clamped down to max
    [0n, '0.006', 0n, 1000n, 0n],
    [0n, '0.006', 3n, 1000n, 3n], // the minimum applies even to zero
    [999n, '0', 0n, 1000n, 0n],
    [999n, '1', 0n, 1000n, 999n],
    [999_999_999_999_999_999n, '0.000000000001', 0n, 10n ** 18n, 1_000_000n], // 999999.999999999999 → 1000000
    [123456789n, '0.003345', 0n, 10n ** 12n, 412963n], // 412962.959205 → 412963
  ])('%s fen at %s, min %s max %s → %s', (amount, rate, min, max, fee) => {
    expect(feeFen(amount, schedule(rate, min, max))).toBe(fee);
  });

  it.each([
    ['a rate above 1', schedule('1.5')],
    ['a negative rate', schedule('-0.1')],
    ['a rate with an exponent', schedule('6e-3')],
    ['a rate without leading zero', schedule('.006')],
    ['too many decimals', schedule('0.0000000000001')],
    ['a float-like string', schedule('0.006 ')],
    ['a negative minimum', schedule('0.006', -1n, 10n)],
    ['max below min', schedule('0.006', 10n, 9n)],
  ])('refuses %s with FEE_SCHEDULE_INVALID', (_name, bad) => {
    expect(() => feeFen(100n, bad)).toThrowError(expect.objectContaining({ code: 'FEE_SCHEDULE_INVALID' }));
    expect(() => validateFeeSchedule(bad)).toThrowError(expect.objectContaining({ code: 'FEE_SCHEDULE_INVALID' }));
  });

  it('refuses a negative amount', () => {
    expect(() => feeFen(-1n, schedule('0.006'))).toThrowError(expect.objectContaining({ code: 'FEE_AMOUNT_INVALID' }));
  });

  it('equals the exact rational computation and stays within [min, max]', () => {
    const rateArb = fc.integer({ min: 0, max: 12 }).chain((scale) =>
      fc.bigInt({ min: 0n, max: 10n ** BigInt(scale) }).map((numerator) => ({ scale, numerator })),
    );
    const boundsArb = fc.tuple(fc.bigInt({ min: 0n, max: 10n ** 9n }), fc.bigInt({ min: 0n, max: 10n ** 9n }));
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 15n }), rateArb, boundsArb, (amount, { scale, numerator }, [a, b]) => {
        const [minFen, maxFen] = a <= b ? [a, b] : [b, a];
        const denominator = 10n ** BigInt(scale);
        const digits = numerator.toString().padStart(scale + 1, '0');
        const rate = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
        const product = amount * numerator;
        let rounded = product / denominator;
        if ((product % denominator) * 2n >= denominator) rounded += 1n;
        const expected = rounded < minFen ? minFen : rounded > maxFen ? maxFen : rounded;
        const fee = feeFen(amount, { rate, minFen, maxFen });
        expect(fee).toBe(expected);
        expect(fee >= minFen && fee <= maxFen).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
