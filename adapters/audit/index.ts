/** The hash-chained audit log: append in a transaction, list, verify. */
export {
  appendAudit, audit_append_batch_max, audit_list_page_max, audit_lock_key, audit_verify_page_rows, auditRecordForHash, listAudit,
  plans as audit_plans, verifyAuditChain,
} from './log.ts';
export type { AuditDetails, AuditEntry, ChainBreak, ChainReport, StoredAuditRecord } from './log.ts';
