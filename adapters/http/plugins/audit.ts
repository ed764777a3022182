/** The audit log, for auditors only: records in chain order (cursor-paginated), and a full chain verification. */
import type { FastifyInstance } from 'fastify';
import { withTx } from '../../postgres/db.ts';
import { appendAudit, audit_list_page_max, listAudit, verifyAuditChain, type StoredAuditRecord } from '../../audit/index.ts';
import { actorOf, cursorOf, redacting_log_serializers } from '../../cards/index.ts';
import { error_responses, type AppDeps } from '../context.ts';

const record_schema = {
  type: 'object',
  properties: {
    seq: { type: 'string' }, at: { type: 'string' }, actor: { type: 'string' }, role: { type: 'string' }, purpose: { type: ['string', 'null'] },
    action: { type: 'string' }, subject: { type: 'string' }, fields: { type: 'array', items: { type: 'string' } },
    details: { type: 'object', additionalProperties: true }, prev_hash: { type: 'string' }, hash: { type: 'string' },
  },
} as const;

function json(r: StoredAuditRecord) {
  return {
    seq: String(r.seq), at: r.at.toISOString(), actor: r.actor, role: r.role, purpose: r.purpose, action: r.action, subject: r.subject,
    fields: r.fields, details: r.details, prev_hash: r.prevHash, hash: r.hash,
  };
}

export async function auditRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const auditors = ['auditor'] as const;

  app.get('/v1/audit-log', {
    config: { roles: auditors },
    logSerializers: redacting_log_serializers,
    schema: {
      tags: ['audit'], summary: 'Audit records in chain order, after a cursor (a seq), optionally for one subject or action. The read itself is audited.',
      security: [{ bearer: [] }],
      querystring: { type: 'object', additionalProperties: false, properties: {
        cursor: { type: 'string', pattern: '^[0-9]{1,19}$' }, subject: { type: 'string', maxLength: 200 },
        action: { type: 'string', pattern: '^[A-Z][A-Z0-9_]{1,63}$' },
        limit: { type: 'integer', minimum: 1, maximum: audit_list_page_max, default: 100 } } },
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: record_schema }, next_cursor: { type: ['string', 'null'] } } }, ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { cursor?: string; subject?: string; action?: string; limit: number };
    const actor = actorOf(req);
    const items = await listAudit(deps.db, cursorOf(q.cursor), q.limit, { subject: q.subject, action: q.action });
    await withTx(deps.db, (tx) => appendAudit(tx, [{
      at: deps.now(), actor: actor.keyId, role: actor.role, purpose: 'AUDIT_REVIEW', action: 'AUDIT_LOG_READ', subject: 'audit_log', fields: [],
      details: { cursor: q.cursor ?? null, subject: q.subject ?? null, action: q.action ?? null },
    }]));
    return { items: items.map(json), next_cursor: items.length === q.limit ? String(items[items.length - 1].seq) : null };
  });

  app.get('/v1/audit-log/verification', {
    config: { roles: auditors },
    schema: {
      tags: ['audit'], summary: 'Recompute the whole hash chain and name the first broken record, if any.', security: [{ bearer: [] }],
      response: { 200: { type: 'object', properties: {
        ok: { type: 'boolean' }, records: { type: 'integer' }, head_seq: { type: 'string' }, head_hash: { type: 'string' },
        first_break: { type: ['object', 'null'], properties: { seq: { type: 'string' }, reason: { type: 'string' }, message: { type: 'string' } } } } }, ...error_responses },
    },
  }, async () => {
    const r = await verifyAuditChain(deps.db);
    return {
      ok: r.ok, records: r.records, head_seq: String(r.headSeq), head_hash: r.headHash,
      first_break: r.firstBreak === null ? null : { seq: String(r.firstBreak.seq), reason: r.firstBreak.reason, message: r.firstBreak.message },
    };
  });
}
