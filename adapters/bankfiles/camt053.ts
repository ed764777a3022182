/**
 * `camt.053.xml`: statement of a bank's clearing position for one cycle, as ISO 20022
 * `camt.053.001.08` (BankToCustomerStatementV08). The account is the bank's clearing account
 * at the centre; the centre services it, so "credit" means in the bank's favour (the centre
 * owes the bank: RECEIVE) and "debit" means the bank owes the centre (PAY).
 * Validated against the official schema in test/bankfiles-xml.test.ts.
 */
import { DETAIL_KINDS, type DetailKind, type Side } from './detail-csv.ts';
import {
  AMOUNT_FEN_ABS_MAX,
  assertBankCode,
  assertCycleId,
  assertIsoDate,
  assertMax35,
  assertValidDate,
  type BuiltXmlFile,
  type Direction,
  formatYuan,
  inputInvalid,
  packageReference,
  shanghaiDateTime,
} from './manifest.ts';
import { CURRENCY, serialize } from './pacs009.ts';

export const CAMT053_NAMESPACE = 'urn:iso:std:iso:20022:tech:xsd:camt.053.001.08';
/** One entry per (kind, side, direction) at most: 8 kinds × 2 × 2 = 32, with room to grow. */
export const CAMT053_ENTRIES_MAX = 128;

/** The detail lines of one (kind, side, direction), summed. */
export interface EntryAggregate {
  readonly kind: DetailKind;
  readonly side: Side;
  readonly direction: Direction;
  /** Number of detail lines. */
  readonly count: number;
  /** Σ net_fen of those lines (as in detail.csv; normally ≥ 0). */
  readonly netFen: bigint;
}

export interface Camt053Input {
  readonly messageId: string;
  readonly createdAt: Date;
  readonly bankCode: string;
  readonly cycleId: string;
  readonly businessDate: string;
  readonly settlementDate: string;
  /** The bank's clearing balance before the cycle; positive: in the bank's favour. */
  readonly openingBalanceFen: bigint;
  readonly aggregates: readonly EntryAggregate[];
}

/** Id of the bank's clearing account at the centre, as the chart of accounts names it. */
export function clearingAccountId(bankCode: string): string {
  assertBankCode('bankCode', bankCode);
  return `bank:${bankCode}:clearing`;
}

/**
 * The statement, with its figures for the manifest. Entries are ordered by kind (in
 * DETAIL_KINDS order), side, direction, whatever the input order, so the bytes are stable.
 * closing = opening + Σ RECEIVE net − Σ PAY net; netPositionFen = closing − opening.
 */
export function buildCamt053(input: Camt053Input): BuiltXmlFile {
  assertMax35('messageId', input.messageId);
  assertValidDate('createdAt', input.createdAt);
  assertBankCode('bankCode', input.bankCode);
  assertCycleId(input.cycleId);
  assertIsoDate('businessDate', input.businessDate);
  assertIsoDate('settlementDate', input.settlementDate);
  assertAmount('openingBalanceFen', input.openingBalanceFen);
  if (input.aggregates.length > CAMT053_ENTRIES_MAX) {
    throw inputInvalid('aggregates', `must have at most ${CAMT053_ENTRIES_MAX} entries`);
  }

  const aggregates = sortedAggregates(input.aggregates);
  let netPositionFen = 0n;
  let creditFen = 0n;
  let debitFen = 0n;
  let creditCount = 0;
  const entries = aggregates.map((aggregate) => {
    // A negative sum flips the booking side; the schema's amounts are never negative.
    const signedFen = aggregate.direction === 'RECEIVE' ? aggregate.netFen : -aggregate.netFen;
    const credit = signedFen > 0n || (signedFen === 0n && aggregate.direction === 'RECEIVE');
    const amountFen = signedFen < 0n ? -signedFen : signedFen;
    netPositionFen += signedFen;
    if (credit) {
      creditFen += amountFen;
      creditCount += 1;
    } else {
      debitFen += amountFen;
    }
    return {
      Amt: money(amountFen),
      CdtDbtInd: credit ? 'CRDT' : 'DBIT',
      Sts: { Cd: 'BOOK' },
      BookgDt: { Dt: input.businessDate },
      ValDt: { Dt: input.settlementDate },
      BkTxCd: { Prtry: { Cd: `${aggregate.kind}/${aggregate.side}` } },
      NtryDtls: { Btch: { NbOfTxs: String(aggregate.count) } },
    };
  });
  const closingBalanceFen = input.openingBalanceFen + netPositionFen;
  assertAmount('closingBalanceFen', closingBalanceFen);

  const statement = {
    Id: packageReference(input.cycleId, input.bankCode),
    CreDtTm: shanghaiDateTime(input.createdAt),
    Acct: { Id: { Othr: { Id: clearingAccountId(input.bankCode) } }, Ccy: CURRENCY },
    Bal: [balance('OPBD', input.openingBalanceFen, input.businessDate), balance('CLBD', closingBalanceFen, input.businessDate)],
    TxsSummry: {
      TtlNtries: {
        NbOfNtries: String(entries.length),
        Sum: formatYuan(creditFen + debitFen),
        TtlNetNtry: { Amt: formatYuan(abs(netPositionFen)), CdtDbtInd: netPositionFen < 0n ? 'DBIT' : 'CRDT' },
      },
      TtlCdtNtries: { NbOfNtries: String(creditCount), Sum: formatYuan(creditFen) },
      TtlDbtNtries: { NbOfNtries: String(entries.length - creditCount), Sum: formatYuan(debitFen) },
    },
    ...(entries.length > 0 ? { Ntry: entries } : {}),
  };
  const xml = serialize({
    Document: {
      '@xmlns': CAMT053_NAMESPACE,
      BkToCstmrStmt: {
        GrpHdr: { MsgId: input.messageId, CreDtTm: shanghaiDateTime(input.createdAt) },
        Stmt: statement,
      },
    },
  });
  return {
    xml,
    recordCount: entries.length,
    controlSums: {
      openingBalanceFen: input.openingBalanceFen,
      closingBalanceFen,
      creditFen,
      debitFen,
      netPositionFen,
    },
  };
}

function sortedAggregates(aggregates: readonly EntryAggregate[]): EntryAggregate[] {
  const seen = new Set<string>();
  for (const aggregate of aggregates) {
    const key = `${aggregate.kind}/${aggregate.side}/${aggregate.direction}`;
    if (!DETAIL_KINDS.includes(aggregate.kind)) throw inputInvalid('aggregates.kind', 'is not a kind banks know', { key });
    if (aggregate.side !== 'ISSUER' && aggregate.side !== 'ACQUIRER') throw inputInvalid('aggregates.side', 'must be ISSUER or ACQUIRER', { key });
    if (aggregate.direction !== 'PAY' && aggregate.direction !== 'RECEIVE') {
      throw inputInvalid('aggregates.direction', 'must be PAY or RECEIVE', { key });
    }
    if (seen.has(key)) throw inputInvalid('aggregates', 'has the same kind, side and direction twice', { key });
    seen.add(key);
    if (!Number.isSafeInteger(aggregate.count) || aggregate.count < 0) throw inputInvalid('aggregates.count', 'must be a count', { key });
    assertAmount('aggregates.netFen', aggregate.netFen);
  }
  const rank = (a: EntryAggregate) => `${String(DETAIL_KINDS.indexOf(a.kind)).padStart(3, '0')}/${a.side}/${a.direction}`;
  return [...aggregates].sort((a, b) => (rank(a) < rank(b) ? -1 : rank(a) > rank(b) ? 1 : 0));
}

function balance(code: 'OPBD' | 'CLBD', balanceFen: bigint, date: string) {
  return {
    Tp: { CdOrPrtry: { Cd: code } },
    Amt: money(abs(balanceFen)),
    CdtDbtInd: balanceFen < 0n ? 'DBIT' : 'CRDT',
    Dt: { Dt: date },
  };
}

function money(amountFen: bigint) {
  return { '@Ccy': CURRENCY, '#': formatYuan(amountFen) };
}

function abs(fen: bigint): bigint {
  return fen < 0n ? -fen : fen;
}

function assertAmount(field: string, fen: bigint): void {
  if (typeof fen !== 'bigint' || fen > AMOUNT_FEN_ABS_MAX || fen < -AMOUNT_FEN_ABS_MAX) {
    throw inputInvalid(field, 'must be a bigint of at most 18 digits');
  }
}
