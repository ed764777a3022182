/**
 * `pacs.009.xml`: the net settlement instruction between a bank and the clearing centre's
 * settlement account, as ISO 20022 `pacs.009.001.09` (FinancialInstitutionCreditTransferV09).
 * Validated against the official schema in test/bankfiles-xml.test.ts.
 */
import { create } from 'xmlbuilder2';
import {
  AMOUNT_FEN_ABS_MAX,
  assertBankCode,
  assertCycleId,
  assertIsoDate,
  assertMax35,
  assertValidDate,
  type BuiltXmlFile,
  formatYuan,
  inputInvalid,
  netDirection,
  packageReference,
  shanghaiDateTime,
} from './manifest.ts';

export const PACS009_NAMESPACE = 'urn:iso:std:iso:20022:tech:xsd:pacs.009.001.09';
/** Code of the clearing system in `ClrSysMmbId/ClrSysId/Cd` (ISO external code list). */
export const CLEARING_SYSTEM_CODE = 'CNAPS';
export const CURRENCY = 'CNY';

/** The centre's side of every instruction: configuration, not data. */
export interface CentreSettlementAccount {
  /** 12-digit CNAPS code of the bank holding the centre's settlement account. */
  readonly bankCode: string;
  /** The account's number at that bank (no IBAN in China: sent as `Othr/Id`). */
  readonly accountId: string;
}

export interface Pacs009Input {
  readonly messageId: string;
  readonly createdAt: Date;
  readonly cycleId: string;
  /** The member bank this package is for. */
  readonly bankCode: string;
  readonly settlementDate: string;
  /** The bank's net position: negative, the bank pays the centre; otherwise the centre pays. */
  readonly netPositionFen: bigint;
  readonly centre: CentreSettlementAccount;
}

/** `EndToEndId` of a bank's instruction, also the camt.053 statement id. */
export function endToEndId(cycleId: string, bankCode: string): string {
  return packageReference(cycleId, bankCode);
}

/**
 * The instruction as UTF-8 XML text (ends with `\n`), one transaction, with the figures the
 * manifest needs: the signed net position and the (non-negative) instructed amount.
 */
export function buildPacs009(input: Pacs009Input): BuiltXmlFile {
  assertMax35('messageId', input.messageId);
  assertValidDate('createdAt', input.createdAt);
  assertCycleId(input.cycleId);
  assertBankCode('bankCode', input.bankCode);
  assertIsoDate('settlementDate', input.settlementDate);
  assertBankCode('centre.bankCode', input.centre.bankCode);
  if (typeof input.centre.accountId !== 'string' || !/^[^\s]{1,34}$/.test(input.centre.accountId)) {
    throw inputInvalid('centre.accountId', 'must be 1..34 characters without blanks');
  }
  const net = input.netPositionFen;
  if (typeof net !== 'bigint' || net > AMOUNT_FEN_ABS_MAX || net < -AMOUNT_FEN_ABS_MAX) {
    throw inputInvalid('netPositionFen', 'must be a bigint of at most 18 digits');
  }

  const bank = agent(input.bankCode);
  const centreBank = agent(input.centre.bankCode);
  const centreAccount = { Id: { Othr: { Id: input.centre.accountId } } };
  // The paying side is the debtor: the bank when it owes the centre, the centre's settlement
  // bank otherwise (zero included: netDirection gives one rule for the whole package).
  const parties =
    netDirection(net) === 'PAY'
      ? { Dbtr: bank, Cdtr: centreBank, CdtrAcct: centreAccount }
      : { Dbtr: centreBank, DbtrAcct: centreAccount, Cdtr: bank };

  const document = {
    Document: {
      '@xmlns': PACS009_NAMESPACE,
      FICdtTrf: {
        GrpHdr: {
          MsgId: input.messageId,
          CreDtTm: shanghaiDateTime(input.createdAt),
          NbOfTxs: '1',
          SttlmInf: {
            SttlmMtd: 'CLRG',
            // `SttlmInf/ClrSys/Cd` is ExternalCashClearingSystem1Code, at most 3 characters:
            // "CNAPS" does not fit, so the clearing system is named as a proprietary id here.
            // The agents below carry the ISO code CNAPS in their ClrSysMmbId.
            ClrSys: { Prtry: CLEARING_SYSTEM_CODE },
          },
        },
        CdtTrfTxInf: {
          PmtId: {
            InstrId: input.messageId,
            EndToEndId: endToEndId(input.cycleId, input.bankCode),
          },
          // The schema's amount is non-negative: the direction lives in who is the debtor.
          IntrBkSttlmAmt: { '@Ccy': CURRENCY, '#': formatYuan(net < 0n ? -net : net) },
          IntrBkSttlmDt: input.settlementDate,
          ...parties,
        },
      },
    },
  };
  return {
    xml: serialize(document),
    recordCount: 1,
    controlSums: { netPositionFen: net, amountFen: net < 0n ? -net : net },
  };
}

/** An institution identified by its CNAPS member id. */
export function agent(bankCode: string) {
  return { FinInstnId: { ClrSysMmbId: { ClrSysId: { Cd: CLEARING_SYSTEM_CODE }, MmbId: bankCode } } };
}

/** The one serialisation of every XML file of the package: stable bytes for stable digests. */
export function serialize(document: Record<string, unknown>): string {
  const xml = create({ version: '1.0', encoding: 'UTF-8' }, document).end({
    format: 'xml',
    prettyPrint: true,
    indent: '  ',
    newline: '\n',
    headless: false,
  });
  return `${xml}\n`;
}
