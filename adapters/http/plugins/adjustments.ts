/**
 * Maker-checker adjustments (finance; auditors read): propose a balanced adjusting entry against
 * a reconciliation exception, list and read them, approve (posts the entry and resolves the
 * exception) or reject (nothing posts). The proposer can neither approve nor reject their own.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, unauthorized } from '../../../engine/errors.ts';
import { exception_id_pattern } from '../../../engine/recon/index.ts';
import {
  adjustment_legs_max, adjustment_list_page_max, adjustment_memo_chars_max, adjustment_note_chars_max, adjustment_states, adjustmentJson,
  approveAdjustment, getAdjustment, idempotency_key_chars_max, listAdjustments, proposeAdjustment, rejectAdjustment,
  type AdjustmentActor, type AdjustmentSide, type AdjustmentState,
} from '../../recon/adjustments.ts';
import { error_responses, type AppDeps } from '../context.ts';

const id_param = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^adj_[a-z0-9]{16,32}$' } } } as const;
const fen = { type: 'string', pattern: '^[1-9][0-9]{0,14}$' } as const;
const exception_id = { type: 'string', pattern: exception_id_pattern } as const;

const adjustment_schema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, exception_id: { type: 'string' }, exception_type: { type: 'string' }, exception_state: { type: 'string' },
    lines: { type: 'array', items: { type: 'object', properties: { account: { type: 'string' }, side: { type: 'string' }, amount_fen: { type: 'string' } } } },
    total_fen: { type: 'string' }, memo: { type: 'string' }, state: { type: 'string', enum: [...adjustment_states] },
    proposed_by: { type: 'string' }, proposed_at: { type: 'string' }, decided_by: { type: ['string', 'null'] }, decided_at: { type: ['string', 'null'] },
    decision_note: { type: ['string', 'null'] }, entry_id: { type: ['string', 'null'] }, posted_business_date: { type: ['string', 'null'] },
  },
} as const;

function actorOf(req: FastifyRequest): AdjustmentActor {
  if (req.principal === null) throw unauthorized();
  return { keyId: req.principal.keyId, role: req.principal.role };
}

function idempotencyKeyOf(req: FastifyRequest): string | undefined {
  const h = req.headers['idempotency-key'];
  if (h === undefined) return undefined;
  if (Array.isArray(h)) throw badRequest('IDEMPOTENCY_KEY_INVALID', 'Send one Idempotency-Key header.');
  return h;
}

export async function adjustmentRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const readers = ['finance', 'auditor'] as const;
  const makers = ['finance'] as const;

  app.post('/v1/adjustments', {
    config: { roles: makers },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }],
      summary: `Propose a balanced adjusting entry (Σ debits = Σ credits) against an unresolved exception; at most one awaiting approval per exception. Idempotent by the Idempotency-Key header (up to ${idempotency_key_chars_max} characters): a replay answers 200 with the first proposal.`,
      headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: idempotency_key_chars_max } } },
      body: {
        type: 'object', additionalProperties: false, required: ['exception_id', 'lines', 'memo'],
        properties: {
          exception_id,
          lines: { type: 'array', minItems: 2, maxItems: adjustment_legs_max, items: {
            type: 'object', additionalProperties: false, required: ['account', 'side', 'amount_fen'],
            properties: { account: { type: 'string', minLength: 3, maxLength: 160 }, side: { type: 'string', enum: ['DEBIT', 'CREDIT'] }, amount_fen: fen } } },
          memo: { type: 'string', minLength: 1, maxLength: adjustment_memo_chars_max },
        },
      },
      response: { 200: adjustment_schema, 201: adjustment_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const b = req.body as { exception_id: string; lines: { account: string; side: AdjustmentSide; amount_fen: string }[]; memo: string };
    const r = await proposeAdjustment(deps, {
      exceptionId: b.exception_id, memo: b.memo, idempotencyKey: idempotencyKeyOf(req),
      lines: b.lines.map((l) => ({ account: l.account, side: l.side, amountFen: BigInt(l.amount_fen) })),
    }, actorOf(req));
    if (r.replayed) reply.header('idempotent-replayed', 'true');
    return reply.status(r.replayed ? 200 : 201).send(adjustmentJson(r.adjustment));
  });

  app.get('/v1/adjustments', {
    config: { roles: readers },
    schema: {
      tags: ['reconciliation'], summary: 'Adjustments, oldest proposal first, optionally by state or exception; cursor-paginated.', security: [{ bearer: [] }],
      querystring: { type: 'object', additionalProperties: false, properties: {
        state: { type: 'string', enum: [...adjustment_states] }, exception_id,
        cursor: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,200}$' },
        limit: { type: 'integer', minimum: 1, maximum: adjustment_list_page_max, default: 50 } } },
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: adjustment_schema }, next_cursor: { type: ['string', 'null'] } } }, ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { state?: AdjustmentState; exception_id?: string; cursor?: string; limit: number };
    const page = await listAdjustments(deps.db, {
      state: q.state, exceptionId: q.exception_id, cursor: q.cursor, limit: q.limit,
    });
    return { items: page.items.map(adjustmentJson), next_cursor: page.nextCursor };
  });

  app.get('/v1/adjustments/:id', {
    config: { roles: readers },
    schema: {
      tags: ['reconciliation'], summary: 'One adjustment, with its decision and posted entry.', security: [{ bearer: [] }],
      params: id_param, response: { 200: adjustment_schema, ...error_responses },
    },
  }, async (req) => adjustmentJson(await getAdjustment(deps.db, (req.params as { id: string }).id)));

  app.post('/v1/adjustments/:id/approve', {
    config: { roles: makers },
    // The note is optional, so a bare POST (no body at all) is an approval without a note.
    preValidation: async (req) => { if (req.body === undefined || req.body === null) req.body = {}; },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }], params: id_param,
      summary: 'Approve (another finance user than the proposer: else 403 ADJUSTMENT_SELF_APPROVAL): posts the entry (kind ADJUSTMENT) in the open clearing cycle and resolves the exception. Once only: a decided adjustment answers 409 ADJUSTMENT_ALREADY_DECIDED.',
      body: { type: 'object', additionalProperties: false, properties: { note: { type: 'string', minLength: 1, maxLength: adjustment_note_chars_max } } },
      response: { 200: adjustment_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const note = (req.body as { note?: string } | undefined)?.note;
    const r = await approveAdjustment(deps, (req.params as { id: string }).id, actorOf(req), note);
    if (r.replayed) reply.header('idempotent-replayed', 'true');
    return adjustmentJson(r.adjustment);
  });

  app.post('/v1/adjustments/:id/reject', {
    config: { roles: makers },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }], params: id_param,
      summary: 'Reject with a reason (another finance user than the proposer): nothing posts; the exception stays open for a new proposal.',
      body: { type: 'object', additionalProperties: false, required: ['note'], properties: { note: { type: 'string', minLength: 1, maxLength: adjustment_note_chars_max } } },
      response: { 200: adjustment_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const r = await rejectAdjustment(deps, (req.params as { id: string }).id, actorOf(req), (req.body as { note: string }).note);
    if (r.replayed) reply.header('idempotent-replayed', 'true');
    return adjustmentJson(r.adjustment);
  });
}
