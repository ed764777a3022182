/**
 * Bank file formats of the settlement package and of the banks' returns
 * (shared/spec/SETTLEMENT-FILES.md). Pure formatting and parsing: no database, no clock (every
 * timestamp is an input). A package is assembled as:
 *
 *     const detail = await writeDetailCsv(lines, createWriteStream(dir + '/detail.csv'));
 *     const pacs009 = buildPacs009({ ..., netPositionFen: detail.controlSums.netPositionFen });
 *     const camt053 = buildCamt053({ ..., aggregates });
 *     const manifest = buildManifest({ ..., netPositionFen: detail.controlSums.netPositionFen,
 *       files: [detailManifestFile(detail), manifestFileOf('pacs.009.xml', pacs009),
 *               manifestFileOf('camt.053.xml', camt053)] });
 *
 * buildManifest refuses a package whose files disagree on the bank's net position.
 */
export {
  DETAIL_AMOUNT_FEN_MAX,
  DETAIL_CSV_HEADER,
  DETAIL_ID_CHARS_MAX,
  DETAIL_KINDS,
  DETAIL_LINES_MAX,
  csvField,
  maskCardNo,
  writeDetailCsv,
  type DetailCsvSummary,
  type DetailControlSums,
  type DetailKind,
  type DetailLine,
  type Side,
} from './detail-csv.ts';
export { DigestPassThrough, StreamDigest, digestOf, reprDigestHeader, type FileDigest } from './digest.ts';
export {
  AMOUNT_FEN_ABS_MAX,
  CYCLE_ID_CHARS_MAX,
  MANIFEST_FILES_MAX,
  NET_POSITION_CONTROL_SUM,
  buildManifest,
  detailManifestFile,
  formatYuan,
  manifestFileOf,
  netDirection,
  packageReference,
  shanghaiDateTime,
  type BuiltXmlFile,
  type Direction,
  type ManifestFile,
  type ManifestInput,
} from './manifest.ts';
export {
  CLEARING_SYSTEM_CODE,
  CURRENCY,
  PACS009_NAMESPACE,
  buildPacs009,
  endToEndId,
  type CentreSettlementAccount,
  type Pacs009Input,
} from './pacs009.ts';
export { CAMT053_ENTRIES_MAX, CAMT053_NAMESPACE, buildCamt053, clearingAccountId, type Camt053Input, type EntryAggregate } from './camt053.ts';
export {
  PACS002_BYTES_MAX,
  PACS002_NAMESPACE,
  buildPacs002,
  parsePacs002,
  type Pacs002Input,
  type Pacs002Status,
  type Pacs002TxStatus,
} from './pacs002.ts';
export {
  RETURN_CSV_HEADER,
  RETURN_ROWS_MAX,
  parseReturnCsv,
  writeReturnCsv,
  type ReturnRow,
  type ReturnRowInput,
  type ReturnStatus,
} from './return-csv.ts';
