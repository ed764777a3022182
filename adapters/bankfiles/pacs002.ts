/**
 * A bank's `pacs.002.001.11` status report on a settlement instruction (SETTLEMENT-FILES.md,
 * "Returns"): ACSC settled, RJCT rejected with a reason. Parsed with xmlbuilder2's parser and
 * read through its namespace-aware DOM; anything that is not a pacs.002 of one instruction is
 * refused with RETURN_MALFORMED (400). `buildPacs002` writes one, for tests and the bank
 * simulator.
 *
 * xmlbuilder2's parser is lenient (it does not match end-tag names against start tags), so
 * this reader checks structure instead: namespace, required elements, cardinalities, lengths.
 * It refuses any DOCTYPE, so no entity is ever declared or expanded.
 */
import { create } from 'xmlbuilder2';
import { badRequest, tooLarge } from '../../engine/errors.ts';
import { assertMax35, assertValidDate, inputInvalid, shanghaiDateTime } from './manifest.ts';
import { serialize } from './pacs009.ts';

export const PACS002_NAMESPACE = 'urn:iso:std:iso:20022:tech:xsd:pacs.002.001.11';
/** The message a status report answers: this engine only sends pacs.009.001.09. */
export const PACS002_ORIGINAL_MESSAGE_NAME = 'pacs.009.001.09';
/** A status report for one instruction is a few KiB; refuse anything beyond 1 MiB unread. */
export const PACS002_BYTES_MAX = 1024 * 1024;
/** ISO Max105Text: one `AddtlInf`. Reports may carry several; they are joined with a space. */
const ADDITIONAL_INFO_CHARS_MAX = 105;
/** Reason text kept from a report, at most (several AddtlInf joined). */
export const PACS002_REASON_TEXT_CHARS_MAX = 1050;

/** ACSC and RJCT are the two the engine acts on; a bank may send others (e.g. PDNG). */
export type Pacs002TxStatus = 'ACSC' | 'RJCT' | (string & {});

export interface Pacs002Status {
  readonly messageId: string;
  readonly originalMessageId: string;
  readonly originalEndToEndId?: string;
  readonly status: Pacs002TxStatus;
  readonly reasonCode?: string;
  readonly reasonText?: string;
}

/** The slice of xmlbuilder2's DOM this reader uses. */
interface DomNode {
  readonly nodeType: number;
  readonly localName?: string | null;
  readonly namespaceURI?: string | null;
  readonly textContent: string | null;
  readonly childNodes: Iterable<DomNode>;
}
const ELEMENT_NODE = 1;
const DOCUMENT_TYPE_NODE = 10;

const STATUS_CODE_PATTERN = /^[A-Z0-9]{1,4}$/;
const MAX35_PATTERN = /^.{1,35}$/su;

/** Reads a status report; throws RETURN_MALFORMED (400) or RETURN_TOO_LARGE (413). */
export function parsePacs002(input: string | Uint8Array): Pacs002Status {
  const text = decode(input);
  if (!text.trimStart().startsWith('<')) throw malformed('the content is not XML');
  let documentNode: DomNode;
  try {
    documentNode = create(text).node as unknown as DomNode;
  } catch {
    throw malformed('the content is not well-formed XML');
  }
  const top = [...documentNode.childNodes];
  if (top.some((node) => node.nodeType === DOCUMENT_TYPE_NODE)) throw malformed('a DOCTYPE is not accepted');
  const roots = top.filter((node) => node.nodeType === ELEMENT_NODE);
  const root = roots[0];
  if (roots.length !== 1 || root.localName !== 'Document' || root.namespaceURI !== PACS002_NAMESPACE) {
    throw malformed(`the document is not a ${PACS002_NAMESPACE} Document`);
  }
  const report = one(root, 'FIToFIPmtStsRpt');
  const messageId = max35(one(one(report, 'GrpHdr'), 'MsgId'), 'GrpHdr/MsgId');

  const groups = all(report, 'OrgnlGrpInfAndSts');
  const transactions = all(report, 'TxInfAndSts');
  if (groups.length > 1 || transactions.length > 1) {
    throw malformed('a status report answers one settlement instruction: at most one OrgnlGrpInfAndSts and one TxInfAndSts');
  }
  const group = groups[0];
  const transaction = transactions[0];

  const groupOriginal = group && originalReference(group, 'OrgnlGrpInfAndSts');
  const transactionGroup = transaction && optional(transaction, 'OrgnlGrpInf');
  const transactionOriginal = transactionGroup && originalReference(transactionGroup, 'TxInfAndSts/OrgnlGrpInf');
  const originalMessageId = groupOriginal ?? transactionOriginal;
  if (originalMessageId === undefined) throw malformed('the original message id (OrgnlMsgId) is missing');
  if (groupOriginal !== undefined && transactionOriginal !== undefined && groupOriginal !== transactionOriginal) {
    throw malformed('OrgnlGrpInfAndSts and TxInfAndSts name different original messages');
  }

  const endToEnd = transaction && optional(transaction, 'OrgnlEndToEndId');
  const originalEndToEndId = endToEnd && max35(endToEnd, 'OrgnlEndToEndId');
  const statusElement = (transaction && optional(transaction, 'TxSts')) ?? (group && optional(group, 'GrpSts'));
  if (statusElement === undefined) throw malformed('no status (TxSts or GrpSts)');
  const status = leaf(statusElement);
  if (!STATUS_CODE_PATTERN.test(status)) throw malformed('the status is not an ISO status code', { status: status.slice(0, 8) });

  // Reasons sit with the transaction's status, or with the group's when that is what was sent.
  const reasonHolder = transaction && all(transaction, 'StsRsnInf').length > 0 ? transaction : group;
  const reasons = reasonHolder ? all(reasonHolder, 'StsRsnInf') : [];
  let reasonCode: string | undefined;
  const reasonTexts: string[] = [];
  for (const reason of reasons) {
    const rsn = optional(reason, 'Rsn');
    const code = rsn && (optional(rsn, 'Cd') ?? optional(rsn, 'Prtry'));
    if (code !== undefined && reasonCode === undefined) reasonCode = max35(code, 'StsRsnInf/Rsn');
    for (const info of all(reason, 'AddtlInf')) reasonTexts.push(leaf(info));
  }
  const reasonText = reasonTexts.filter((part) => part !== '').join(' ').slice(0, PACS002_REASON_TEXT_CHARS_MAX);
  if (status === 'RJCT' && reasonCode === undefined && reasonText === '') {
    throw malformed('a rejection (RJCT) must say why (StsRsnInf)');
  }

  return {
    messageId,
    originalMessageId,
    ...(originalEndToEndId !== undefined ? { originalEndToEndId } : {}),
    status,
    ...(reasonCode !== undefined ? { reasonCode } : {}),
    ...(reasonText !== '' ? { reasonText } : {}),
  };
}

export interface Pacs002Input {
  readonly messageId: string;
  readonly createdAt: Date;
  readonly originalMessageId: string;
  readonly originalEndToEndId?: string;
  readonly status: Pacs002TxStatus;
  /** An ISO ExternalStatusReason1Code (e.g. AM04 insufficient funds), 1..4 characters. */
  readonly reasonCode?: string;
  readonly reasonText?: string;
}

/** A status report on one pacs.009 instruction, as a bank would send it. */
export function buildPacs002(input: Pacs002Input): string {
  assertMax35('messageId', input.messageId);
  assertValidDate('createdAt', input.createdAt);
  assertMax35('originalMessageId', input.originalMessageId);
  if (input.originalEndToEndId !== undefined) assertMax35('originalEndToEndId', input.originalEndToEndId);
  if (!STATUS_CODE_PATTERN.test(input.status)) throw inputInvalid('status', 'must be an ISO status code of 1..4 characters');
  if (input.reasonCode !== undefined && !STATUS_CODE_PATTERN.test(input.reasonCode)) {
    throw inputInvalid('reasonCode', 'must be an ISO reason code of 1..4 characters');
  }
  const reasonText = input.reasonText ?? '';
  if ([...reasonText].length > ADDITIONAL_INFO_CHARS_MAX || reasonText !== reasonText.trim()) {
    // One AddtlInf, so that what parsePacs002 reads back is exactly what was written.
    throw inputInvalid('reasonText', `must be at most ${ADDITIONAL_INFO_CHARS_MAX} characters without surrounding blanks`);
  }
  const hasReason = input.reasonCode !== undefined || reasonText !== '';
  return serialize({
    Document: {
      '@xmlns': PACS002_NAMESPACE,
      FIToFIPmtStsRpt: {
        GrpHdr: { MsgId: input.messageId, CreDtTm: shanghaiDateTime(input.createdAt) },
        OrgnlGrpInfAndSts: { OrgnlMsgId: input.originalMessageId, OrgnlMsgNmId: PACS002_ORIGINAL_MESSAGE_NAME },
        TxInfAndSts: {
          ...(input.originalEndToEndId !== undefined ? { OrgnlEndToEndId: input.originalEndToEndId } : {}),
          TxSts: input.status,
          ...(hasReason
            ? {
                StsRsnInf: {
                  ...(input.reasonCode !== undefined ? { Rsn: { Cd: input.reasonCode } } : {}),
                  ...(reasonText !== '' ? { AddtlInf: reasonText } : {}),
                },
              }
            : {}),
        },
      },
    },
  });
}

function decode(input: string | Uint8Array): string {
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > PACS002_BYTES_MAX) {
    throw tooLarge('RETURN_TOO_LARGE', `A pacs.002 status report is at most ${PACS002_BYTES_MAX} bytes.`, { bytes: size });
  }
  if (typeof input === 'string') return input.replace(/^\uFEFF/, '');
  try {
    // ignoreBOM false: a UTF-8 BOM is accepted and dropped; fatal: invalid bytes are refused.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(input);
  } catch {
    throw malformed('the content is not UTF-8');
  }
}

/** Child elements of `parent` named `name` in the pacs.002 namespace (nothing else counts). */
function all(parent: DomNode, name: string): DomNode[] {
  const found: DomNode[] = [];
  for (const node of parent.childNodes) {
    if (node.nodeType === ELEMENT_NODE && node.localName === name && node.namespaceURI === PACS002_NAMESPACE) found.push(node);
  }
  return found;
}

function optional(parent: DomNode, name: string): DomNode | undefined {
  const found = all(parent, name);
  if (found.length > 1) throw malformed(`${name} appears more than once`);
  return found[0];
}

function one(parent: DomNode, name: string): DomNode {
  const found = optional(parent, name);
  if (found === undefined) throw malformed(`${name} is missing`);
  return found;
}

function leaf(element: DomNode): string {
  return (element.textContent ?? '').trim();
}

function max35(element: DomNode, path: string): string {
  const value = leaf(element);
  if (!MAX35_PATTERN.test(value)) throw malformed(`${path} must be 1..35 characters`);
  return value;
}

function originalReference(holder: DomNode, path: string): string {
  const name = optional(holder, 'OrgnlMsgNmId');
  if (name !== undefined && !leaf(name).startsWith('pacs.009.')) {
    throw malformed(`${path} answers a ${leaf(name).slice(0, 35)}, not a pacs.009 instruction`);
  }
  return max35(one(holder, 'OrgnlMsgId'), `${path}/OrgnlMsgId`);
}

function malformed(reason: string, details: Record<string, unknown> = {}) {
  return badRequest('RETURN_MALFORMED', `Malformed pacs.002 status report: ${reason}.`, details);
}
