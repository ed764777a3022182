/**
 * The package's XML files validate against the official ISO 20022 schemas (kept in
 * adapters/bankfiles/xsd/), debtor and creditor follow the sign of the net position, amounts
 * are yuan with exactly two decimals, and a bank's pacs.002 is read or refused.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { validateXML } from 'xmllint-wasm';
import { create } from 'xmlbuilder2';
import {
  buildCamt053,
  buildPacs002,
  buildPacs009,
  endToEndId,
  formatYuan,
  parsePacs002,
  PACS002_BYTES_MAX,
  type Camt053Input,
  type Pacs009Input,
} from '../adapters/bankfiles/index.ts';
import { isDomainError } from '../engine/errors.ts';

const XSD_DIR = new URL('../adapters/bankfiles/xsd/', import.meta.url);
type SchemaName = 'pacs.009.001.09' | 'camt.053.001.08' | 'pacs.002.001.11';

async function validate(schema: SchemaName, xml: string) {
  return validateXML({
    xml: [{ fileName: `${schema}.xml`, contents: xml }],
    schema: [{ fileName: `${schema}.xsd`, contents: readFileSync(new URL(`${schema}.xsd`, XSD_DIR), 'utf8') }],
  });
}

/** Fails the test with the validator's own messages when a document is not schema-valid. */
async function expectSchemaValid(schema: SchemaName, xml: string) {
  const result = await validate(schema, xml);
  expect(result.errors.map((error) => error.rawMessage)).toEqual([]);
  expect(result.valid).toBe(true);
}

/** Text of the first element at `path` (local names, default namespace ignored). */
function textAt(xml: string, path: string[]): string | undefined {
  let node: unknown = create(xml).end({ format: 'object' });
  for (const name of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[name];
    if (Array.isArray(node)) node = node[0];
  }
  if (node !== null && typeof node === 'object' && '#' in node) return String((node as Record<string, unknown>)['#']);
  return typeof node === 'string' ? node : undefined;
}

function expectDomainError(fn: () => unknown, code: string) {
  try {
    fn();
  } catch (error) {
    expect(isDomainError(error) && error.code).toBe(code);
    return error;
  }
  throw new Error(`expected DomainError ${code}`);
}

const BANK = '102100099996';
const CENTRE_BANK = '103100000026';
const CENTRE_ACCOUNT = '11001234567890123';
const createdAt = new Date('2026-11-28T15:05:30Z'); // 23:05:30 in Shanghai, just after cutoff

function pacs009(netPositionFen: bigint, overrides: Partial<Pacs009Input> = {}) {
  return buildPacs009({
    messageId: 'P009-20261128-0001',
    createdAt,
    cycleId: 'cyc_20261128',
    bankCode: BANK,
    settlementDate: '2026-11-30',
    netPositionFen,
    centre: { bankCode: CENTRE_BANK, accountId: CENTRE_ACCOUNT },
    ...overrides,
  });
}

const TX = ['Document', 'FICdtTrf', 'CdtTrfTxInf'];

describe('pacs.009.001.09 net settlement instruction', () => {
  it('bank owes the centre (negative net): the bank is the debtor, the centre account the creditor account', async () => {
    const built = pacs009(-12345n);
    await expectSchemaValid('pacs.009.001.09', built.xml);
    expect(textAt(built.xml, [...TX, 'IntrBkSttlmAmt'])).toBe('123.45');
    expect(built.xml).toContain('<IntrBkSttlmAmt Ccy="CNY">123.45</IntrBkSttlmAmt>');
    expect(textAt(built.xml, [...TX, 'Dbtr', 'FinInstnId', 'ClrSysMmbId', 'MmbId'])).toBe(BANK);
    expect(textAt(built.xml, [...TX, 'Dbtr', 'FinInstnId', 'ClrSysMmbId', 'ClrSysId', 'Cd'])).toBe('CNAPS');
    expect(textAt(built.xml, [...TX, 'Cdtr', 'FinInstnId', 'ClrSysMmbId', 'MmbId'])).toBe(CENTRE_BANK);
    expect(textAt(built.xml, [...TX, 'CdtrAcct', 'Id', 'Othr', 'Id'])).toBe(CENTRE_ACCOUNT);
    expect(textAt(built.xml, [...TX, 'DbtrAcct', 'Id', 'Othr', 'Id'])).toBeUndefined();
    expect(built.controlSums).toEqual({ netPositionFen: -12345n, amountFen: 12345n });
    expect(built.recordCount).toBe(1);
  });

  it('centre owes the bank (positive net): the centre settlement bank is the debtor', async () => {
    const built = pacs009(987654321n);
    await expectSchemaValid('pacs.009.001.09', built.xml);
    expect(textAt(built.xml, [...TX, 'IntrBkSttlmAmt'])).toBe('9876543.21');
    expect(textAt(built.xml, [...TX, 'Dbtr', 'FinInstnId', 'ClrSysMmbId', 'MmbId'])).toBe(CENTRE_BANK);
    expect(textAt(built.xml, [...TX, 'DbtrAcct', 'Id', 'Othr', 'Id'])).toBe(CENTRE_ACCOUNT);
    expect(textAt(built.xml, [...TX, 'Cdtr', 'FinInstnId', 'ClrSysMmbId', 'MmbId'])).toBe(BANK);
  });

  it('zero net still settles: a valid 0.00 instruction, centre as debtor', async () => {
    const built = pacs009(0n);
    await expectSchemaValid('pacs.009.001.09', built.xml);
    expect(built.xml).toContain('<IntrBkSttlmAmt Ccy="CNY">0.00</IntrBkSttlmAmt>');
    expect(textAt(built.xml, [...TX, 'Dbtr', 'FinInstnId', 'ClrSysMmbId', 'MmbId'])).toBe(CENTRE_BANK);
  });

  it('carries the header, settlement method, dates and end-to-end id', async () => {
    const built = pacs009(1n);
    await expectSchemaValid('pacs.009.001.09', built.xml);
    expect(textAt(built.xml, ['Document', 'FICdtTrf', 'GrpHdr', 'MsgId'])).toBe('P009-20261128-0001');
    expect(textAt(built.xml, ['Document', 'FICdtTrf', 'GrpHdr', 'CreDtTm'])).toBe('2026-11-28T23:05:30+08:00');
    expect(textAt(built.xml, ['Document', 'FICdtTrf', 'GrpHdr', 'NbOfTxs'])).toBe('1');
    expect(textAt(built.xml, ['Document', 'FICdtTrf', 'GrpHdr', 'SttlmInf', 'SttlmMtd'])).toBe('CLRG');
    expect(textAt(built.xml, ['Document', 'FICdtTrf', 'GrpHdr', 'SttlmInf', 'ClrSys', 'Prtry'])).toBe('CNAPS');
    expect(textAt(built.xml, [...TX, 'IntrBkSttlmDt'])).toBe('2026-11-30');
    expect(textAt(built.xml, [...TX, 'PmtId', 'EndToEndId'])).toBe(`cyc_20261128-${BANK}`);
    expect(endToEndId('cyc_20261128', BANK)).toBe(`cyc_20261128-${BANK}`);
    expect(textAt(built.xml, [...TX, 'IntrBkSttlmAmt'])).toBe('0.01');
    expect(built.xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n')).toBe(true);
  });

  it('the largest amount the schema allows (18 digits) still validates', async () => {
    const built = pacs009(-(10n ** 18n - 1n));
    await expectSchemaValid('pacs.009.001.09', built.xml);
    expect(textAt(built.xml, [...TX, 'IntrBkSttlmAmt'])).toBe('9999999999999999.99');
    expectDomainError(() => pacs009(10n ** 18n), 'BANK_FILE_INPUT_INVALID');
  });

  it('refuses inputs that would make an invalid document', () => {
    expectDomainError(() => pacs009(1n, { bankCode: '12345' }), 'BANK_FILE_INPUT_INVALID');
    expectDomainError(() => pacs009(1n, { cycleId: 'c'.repeat(23) }), 'BANK_FILE_INPUT_INVALID');
    expectDomainError(() => pacs009(1n, { messageId: 'm'.repeat(36) }), 'BANK_FILE_INPUT_INVALID');
    expectDomainError(() => pacs009(1n, { settlementDate: '2026-02-30' }), 'BANK_FILE_INPUT_INVALID');
    expectDomainError(() => pacs009(1n, { createdAt: new Date('nope') }), 'BANK_FILE_INPUT_INVALID');
    expectDomainError(() => pacs009(1n, { centre: { bankCode: CENTRE_BANK, accountId: 'x'.repeat(35) } }), 'BANK_FILE_INPUT_INVALID');
  });

  it('the validator really runs: broken documents are reported invalid', async () => {
    const good = pacs009(-12345n).xml;
    const wrongAmount = await validate('pacs.009.001.09', good.replace('>123.45<', '>123.456789<'));
    expect(wrongAmount.valid).toBe(false);
    expect(wrongAmount.errors.length).toBeGreaterThan(0);
    const missingCurrency = await validate('pacs.009.001.09', good.replace(' Ccy="CNY"', ''));
    expect(missingCurrency.valid).toBe(false);
    const longClearingCode = await validate('pacs.009.001.09', good.replace('<Prtry>CNAPS</Prtry>', '<Cd>CNAPS</Cd>'));
    expect(longClearingCode.valid).toBe(false); // why SttlmInf/ClrSys uses Prtry
  });
});

describe('formatYuan', () => {
  it.each([
    [12345n, '123.45'],
    [0n, '0.00'],
    [1n, '0.01'],
    [5n, '0.05'],
    [10n, '0.10'],
    [100n, '1.00'],
    [-150n, '-1.50'],
    [-1n, '-0.01'],
    [123456789012345678n, '1234567890123456.78'],
  ])('%s fen is %s yuan', (fen, yuan) => {
    expect(formatYuan(fen)).toBe(yuan);
  });
});

describe('camt.053.001.08 clearing position statement', () => {
  const base: Camt053Input = {
    messageId: 'C053-20261128-0001',
    createdAt,
    bankCode: BANK,
    cycleId: 'cyc_20261128',
    businessDate: '2026-11-28',
    settlementDate: '2026-11-30',
    openingBalanceFen: 5000n,
    aggregates: [
      { kind: 'PURSE_LOAD', side: 'ISSUER', direction: 'PAY', count: 2, netFen: 30000n },
      { kind: 'QR_PAYMENT', side: 'ACQUIRER', direction: 'RECEIVE', count: 3, netFen: 12000n },
      { kind: 'REFUND', side: 'ISSUER', direction: 'RECEIVE', count: 1, netFen: 0n },
    ],
  };
  const STMT = ['Document', 'BkToCstmrStmt', 'Stmt'];

  it('validates and states opening balance, one entry per aggregate, closing balance', async () => {
    const built = buildCamt053(base);
    await expectSchemaValid('camt.053.001.08', built.xml);
    expect(built.recordCount).toBe(3);
    // closing = 50.00 + 120.00 + 0.00 − 300.00 = −130.00: the bank owes the centre.
    expect(built.controlSums).toEqual({
      openingBalanceFen: 5000n,
      closingBalanceFen: -13000n,
      creditFen: 12000n,
      debitFen: 30000n,
      netPositionFen: -18000n,
    });
    const doc = create(built.xml).end({ format: 'object' }) as Record<string, any>;
    const stmt = doc.Document.BkToCstmrStmt.Stmt;
    expect(stmt.Id).toBe(`cyc_20261128-${BANK}`);
    expect(stmt.Acct.Id.Othr.Id).toBe(`bank:${BANK}:clearing`);
    expect(stmt.Bal).toEqual([
      { Tp: { CdOrPrtry: { Cd: 'OPBD' } }, Amt: { '@Ccy': 'CNY', '#': '50.00' }, CdtDbtInd: 'CRDT', Dt: { Dt: '2026-11-28' } },
      { Tp: { CdOrPrtry: { Cd: 'CLBD' } }, Amt: { '@Ccy': 'CNY', '#': '130.00' }, CdtDbtInd: 'DBIT', Dt: { Dt: '2026-11-28' } },
    ]);
    // Ordered by kind as the contract lists kinds: QR_PAYMENT, PURSE_LOAD, REFUND.
    expect(
      stmt.Ntry.map((entry: any) => [entry.BkTxCd.Prtry.Cd, entry.Amt['#'], entry.CdtDbtInd, entry.Sts.Cd, entry.BookgDt.Dt, entry.NtryDtls.Btch.NbOfTxs]),
    ).toEqual([
      ['QR_PAYMENT/ACQUIRER', '120.00', 'CRDT', 'BOOK', '2026-11-28', '3'],
      ['PURSE_LOAD/ISSUER', '300.00', 'DBIT', 'BOOK', '2026-11-28', '2'],
      ['REFUND/ISSUER', '0.00', 'CRDT', 'BOOK', '2026-11-28', '1'],
    ]);
    expect(textAt(built.xml, [...STMT, 'TxsSummry', 'TtlNtries', 'TtlNetNtry', 'Amt'])).toBe('180.00');
    expect(textAt(built.xml, [...STMT, 'TxsSummry', 'TtlNtries', 'TtlNetNtry', 'CdtDbtInd'])).toBe('DBIT');
  });

  it('same bytes whatever the order of the aggregates', () => {
    expect(buildCamt053({ ...base, aggregates: [...base.aggregates].reverse() }).xml).toBe(buildCamt053(base).xml);
  });

  it('a bank with no activity and a negative opening balance still validates', async () => {
    const built = buildCamt053({ ...base, openingBalanceFen: -1n, aggregates: [] });
    await expectSchemaValid('camt.053.001.08', built.xml);
    expect(built.controlSums.closingBalanceFen).toBe(-1n);
    expect(built.recordCount).toBe(0);
  });

  it('refuses duplicate or impossible aggregates', () => {
    expectDomainError(() => buildCamt053({ ...base, aggregates: [base.aggregates[0], base.aggregates[0]] }), 'BANK_FILE_INPUT_INVALID');
    expectDomainError(
      () => buildCamt053({ ...base, aggregates: [{ ...base.aggregates[0], count: -1 }] }),
      'BANK_FILE_INPUT_INVALID',
    );
    expectDomainError(
      () => buildCamt053({ ...base, aggregates: [{ ...base.aggregates[0], kind: 'LOTTERY' as never }] }),
      'BANK_FILE_INPUT_INVALID',
    );
  });

  it('the validator rejects a statement without balances', async () => {
    const xml = buildCamt053(base).xml.replace(/<Bal>[\s\S]*?<\/Bal>\s*/g, '');
    const result = await validate('camt.053.001.08', xml);
    expect(result.valid).toBe(false);
  });
});

describe('pacs.002.001.11 status report', () => {
  const settled = {
    messageId: 'BANKRPT-0001',
    createdAt: new Date('2026-11-30T02:00:00Z'),
    originalMessageId: 'P009-20261128-0001',
    originalEndToEndId: `cyc_20261128-${BANK}`,
    status: 'ACSC',
  } as const;

  it('ACSC: built report validates and reads back', async () => {
    const xml = buildPacs002(settled);
    await expectSchemaValid('pacs.002.001.11', xml);
    expect(parsePacs002(xml)).toEqual({
      messageId: 'BANKRPT-0001',
      originalMessageId: 'P009-20261128-0001',
      originalEndToEndId: `cyc_20261128-${BANK}`,
      status: 'ACSC',
    });
  });

  it('RJCT with a reason: validates and reads back code and text', async () => {
    const xml = buildPacs002({ ...settled, status: 'RJCT', reasonCode: 'AM04', reasonText: 'Insufficient funds & cover <today>' });
    await expectSchemaValid('pacs.002.001.11', xml);
    expect(parsePacs002(Buffer.from(`\uFEFF${xml}`, 'utf8'))).toEqual({
      messageId: 'BANKRPT-0001',
      originalMessageId: 'P009-20261128-0001',
      originalEndToEndId: `cyc_20261128-${BANK}`,
      status: 'RJCT',
      reasonCode: 'AM04',
      reasonText: 'Insufficient funds & cover <today>',
    });
  });

  it('reads a report written with a namespace prefix and a group status only', () => {
    const xml = `<?xml version="1.0"?>
<p:Document xmlns:p="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.11"><p:FIToFIPmtStsRpt>
  <p:GrpHdr><p:MsgId>B-77</p:MsgId><p:CreDtTm>2026-11-30T10:00:00+08:00</p:CreDtTm></p:GrpHdr>
  <p:OrgnlGrpInfAndSts><p:OrgnlMsgId>P009-1</p:OrgnlMsgId><p:OrgnlMsgNmId>pacs.009.001.09</p:OrgnlMsgNmId>
    <p:GrpSts>RJCT</p:GrpSts><p:StsRsnInf><p:Rsn><p:Prtry>LIMIT</p:Prtry></p:Rsn></p:StsRsnInf></p:OrgnlGrpInfAndSts>
</p:FIToFIPmtStsRpt></p:Document>`;
    expect(parsePacs002(xml)).toEqual({ messageId: 'B-77', originalMessageId: 'P009-1', status: 'RJCT', reasonCode: 'LIMIT' });
  });

  const valid = buildPacs002(settled);
  it.each([
    ['not XML', 'hello'],
    ['JSON', '{"Document":{}}'],
    ['empty', ''],
    ['another message', buildCamt053({
      messageId: 'C1', createdAt, bankCode: BANK, cycleId: 'c1', businessDate: '2026-11-28', settlementDate: '2026-11-30',
      openingBalanceFen: 0n, aggregates: [],
    }).xml],
    ['no namespace', valid.replace(' xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.11"', '')],
    ['an older version', valid.replace('pacs.002.001.11', 'pacs.002.001.10')],
    ['missing MsgId', valid.replace(/<MsgId>.*<\/MsgId>/, '')],
    ['missing status', valid.replace(/<TxSts>.*<\/TxSts>/, '')],
    ['missing original message id', valid.replace(/<OrgnlMsgId>.*<\/OrgnlMsgId>/, '')],
    ['status code too long', valid.replace('>ACSC<', '>SETTLED<')],
    ['RJCT without a reason', valid.replace('>ACSC<', '>RJCT<')],
    ['two transactions', valid.replace(/(<TxInfAndSts>[\s\S]*<\/TxInfAndSts>)/, '$1$1')],
    ['answers a pacs.008', valid.replace('<OrgnlMsgNmId>pacs.009.001.09', '<OrgnlMsgNmId>pacs.008.001.08')],
    ['a DOCTYPE', valid.replace('<Document', '<!DOCTYPE Document [<!ENTITY x "y">]>\n<Document')],
    ['two roots', `${valid}<Document/>`],
  ])('refuses %s with RETURN_MALFORMED', (_name, xml) => {
    const error = expectDomainError(() => parsePacs002(xml), 'RETURN_MALFORMED');
    expect(isDomainError(error) && error.status).toBe(400);
  });

  it('refuses invalid UTF-8 bytes and oversized reports', () => {
    expectDomainError(() => parsePacs002(Buffer.from([0x3c, 0x61, 0xff, 0x3e])), 'RETURN_MALFORMED');
    expectDomainError(() => parsePacs002(`${valid}${' '.repeat(PACS002_BYTES_MAX)}`), 'RETURN_TOO_LARGE');
  });
});
