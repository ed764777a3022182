/**
 * Reconciliation: operators upload their daily totals (CSV or JSON, exact bytes kept for
 * idempotency), finance runs a cycle's reconciliation and works the exceptions queue; auditors
 * read. Operator uploads live in their own scope because they read the raw body (the same bytes
 * again must be recognised), while the other routes take ordinary JSON bodies.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomainError, forbidden, unauthorized } from '../../../engine/errors.ts';
import { exception_id_pattern, exception_states, exception_types, resolutions, type Resolution } from '../../../engine/recon/index.ts';
import {
  assignException, commentOnException, exception_list_page_max, getException, listExceptions, resolveException, type ReconActor,
} from '../../recon/exceptions.ts';
import { listOperatorTotals, receiveOperatorTotals, upload_list_page_max, type TotalsFormat } from '../../recon/operator-totals.ts';
import { listRuns, reconcileCycle, run_list_page_max, type ReconRunResult } from '../../recon/run.ts';
import type { Role } from '../../auth/api-keys.ts';
import { error_responses, type AppDeps } from '../context.ts';

const workers: readonly Role[] = ['finance'];
const readers: readonly Role[] = ['finance', 'auditor'];

const date = { type: 'string', format: 'date' } as const;
const note = { type: 'string', minLength: 1, maxLength: 2000 } as const;
const cursor = { type: 'string', pattern: '^[0-9]{1,19}$' } as const;
const id_params = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: exception_id_pattern } } } as const;
const cycle_params = { type: 'object', required: ['cycleId'], properties: { cycleId: { type: 'string', pattern: '^CYC[0-9]{8}$' } } } as const;

function actorOf(req: FastifyRequest): ReconActor {
  const p = req.principal;
  if (p === null) throw unauthorized();
  return { keyId: p.keyId, role: p.role };
}

const nullable = (type: string) => ({ type: [type, 'null'] });

const exception_schema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, type: { type: 'string' }, source_key: { type: 'string' }, cycle_id: nullable('string'), business_date: { type: 'string' },
    bank_code: nullable('string'), operator_id: nullable('string'), terminal_id: nullable('string'), txn_id: nullable('string'), card_no: nullable('string'),
    engine_amount_fen: nullable('string'), other_amount_fen: nullable('string'), difference_fen: nullable('string'),
    details: { type: 'object', additionalProperties: true }, state: { type: 'string' }, assignee: nullable('string'), resolution: nullable('string'),
    resolution_note: nullable('string'), opened_at: { type: 'string' }, opened_by_run: nullable('string'), resolved_at: nullable('string'),
    resolved_by: nullable('string'), age_days: { type: 'integer' },
  },
} as const;

const line_schema = { type: 'object', additionalProperties: true } as const;
const exception_detail_schema = {
  type: 'object',
  properties: {
    ...exception_schema.properties,
    events: { type: 'array', items: { type: 'object', properties: {
      event: { type: 'string' }, from_state: nullable('string'), to_state: nullable('string'), note: nullable('string'), actor: { type: 'string' }, at: { type: 'string' } } } },
    sources: { type: 'object', properties: {
      engine_lines: { type: 'array', items: line_schema }, bank_lines: { type: 'array', items: line_schema },
      operator_totals: { type: ['object', 'null'], additionalProperties: true } } },
  },
} as const;

const upload_schema = {
  type: 'object',
  properties: {
    upload_id: { type: 'string' }, operator_id: { type: 'string' }, business_date: { type: 'string' }, format: { type: 'string' }, sha256: { type: 'string' },
    line_count: { type: 'integer' }, tap_count: { type: 'string' }, amount_fen: { type: 'string' }, received_at: { type: 'string' }, superseded: { type: 'boolean' },
  },
} as const;

const by_type_schema = { type: 'object', properties: Object.fromEntries(exception_types.map((t) => [t, { type: 'string' }])) } as const;
const run_result_schema = {
  type: 'object',
  properties: {
    run_id: { type: 'string' }, cycle_id: { type: 'string' }, business_date: { type: 'string' }, engine_lines: { type: 'string' }, bank_lines: { type: 'string' },
    matched: { type: 'string' }, exceptions_new: { type: 'string' }, exceptions_total: { type: 'string' }, by_type: by_type_schema, new_by_type: by_type_schema,
    started_at: { type: 'string' }, finished_at: { type: 'string' },
  },
} as const;

const counts = (m: Record<string, bigint>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)]));
const runJson = (r: ReconRunResult) => ({
  run_id: String(r.runId), cycle_id: r.cycleId, business_date: r.businessDate, engine_lines: String(r.engineLines), bank_lines: String(r.bankLines),
  matched: String(r.matched), exceptions_new: String(r.exceptionsNew), exceptions_total: String(r.exceptionsTotal), by_type: counts(r.byType),
  new_by_type: counts(r.newByType), started_at: r.startedAt.toISOString(), finished_at: r.finishedAt.toISOString(),
});

async function operatorTotalsRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  // This scope reads bodies as bytes: the digest of the exact upload is its idempotency key.
  app.removeContentTypeParser(['application/json']);
  const raw = (_req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: Buffer) => void) => done(null, body);
  app.addContentTypeParser(['application/json', 'text/csv'], { parseAs: 'buffer', bodyLimit: deps.bodyBytesMax }, raw);

  app.post('/v1/operator-totals', {
    config: { roles: ['operator'] },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }],
      summary: 'Upload my per-terminal daily totals (text/csv or application/json, docs/OPERATOR-TOTALS.md). The same bytes again answer the first receipt (200); a different upload for the date supersedes the earlier one (201).',
      description: 'CSV: header `business_date,terminal_id,tap_count,amount_fen`, one line per terminal, one date per file. JSON: `{"operator_id", "business_date", "terminals": [{"terminal_id", "tap_count", "amount_fen"}]}`. The body is read as exact bytes (its SHA-256 is the idempotency key), so it is checked by the engine rather than by a JSON schema.',
      response: { 200: upload_schema, 201: upload_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const p = req.principal;
    if (p === null || p.scopeId === null) throw forbidden('FORBIDDEN_SCOPE', 'This route needs a key that acts for one operator.');
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const format: TotalsFormat | null = type === 'text/csv' ? 'CSV' : type === 'application/json' ? 'JSON' : null;
    if (format === null || !Buffer.isBuffer(req.body)) throw new DomainError('CONTENT_TYPE_INVALID', 415, 'Send the totals as text/csv or application/json.');
    const r = await receiveOperatorTotals(deps, p.scopeId, req.body, format, actorOf(req));
    return reply.status(r.created ? 201 : 200).send(r.upload);
  });
}

export async function reconRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  await app.register(operatorTotalsRoutes, deps);

  app.get('/v1/operator-totals', {
    config: { roles: ['operator', ...readers] },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }],
      summary: 'Daily-totals uploads, newest first: an operator sees its own; finance and auditors name the operator.',
      querystring: { type: 'object', additionalProperties: false, properties: {
        business_date: date, operator_id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' }, cursor,
        limit: { type: 'integer', minimum: 1, maximum: upload_list_page_max, default: 50 } } },
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: upload_schema }, next_cursor: nullable('string') } }, ...error_responses },
    },
  }, async (req) => {
    const p = req.principal!;
    const q = req.query as { business_date?: string; operator_id?: string; cursor?: string; limit: number };
    let operatorId: string;
    if (p.role === 'operator') {
      if (p.scopeId === null) throw forbidden('FORBIDDEN_SCOPE', 'This route needs a key that acts for one operator.');
      if (q.operator_id !== undefined && q.operator_id !== p.scopeId) throw forbidden('FORBIDDEN_SCOPE', 'An operator sees only its own uploads.');
      operatorId = p.scopeId;
    } else {
      if (q.operator_id === undefined) throw new DomainError('OPERATOR_REQUIRED', 400, 'Name the operator (operator_id).');
      operatorId = q.operator_id;
    }
    const r = await listOperatorTotals(deps.db, operatorId, { businessDate: q.business_date, cursor: q.cursor ?? null, limit: q.limit });
    return { items: r.items, next_cursor: r.nextCursor };
  });

  app.post('/v1/cycles/:cycleId/reconciliation', {
    config: { roles: workers },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }], params: cycle_params,
      summary: 'Reconcile a cleared cycle: bank returns, operator totals and ingestion signals into the exceptions queue. Safe to run again: known differences are not filed twice.',
      response: { 200: run_result_schema, ...error_responses },
    },
  }, async (req) => runJson(await reconcileCycle(deps, (req.params as { cycleId: string }).cycleId, actorOf(req))));

  app.get('/v1/reconciliation/runs', {
    config: { roles: readers },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }], summary: 'Reconciliation runs with their counts, newest first.',
      querystring: { type: 'object', additionalProperties: false, properties: {
        cycle_id: { type: 'string', pattern: '^CYC[0-9]{8}$' }, cursor, limit: { type: 'integer', minimum: 1, maximum: run_list_page_max, default: 50 } } },
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: { type: 'object', properties: {
        id: { type: 'string' }, cycle_id: { type: 'string' }, business_date: { type: 'string' }, engine_lines: { type: 'string' }, bank_lines: { type: 'string' },
        matched: { type: 'string' }, exceptions_new: { type: 'string' }, exceptions_total: { type: 'string' }, started_at: { type: 'string' },
        finished_at: nullable('string'), actor: { type: 'string' } } } }, next_cursor: nullable('string') } }, ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { cycle_id?: string; cursor?: string; limit: number };
    const r = await listRuns(deps.db, { cycleId: q.cycle_id, cursor: q.cursor ?? null, limit: q.limit });
    return { items: r.items, next_cursor: r.nextCursor };
  });

  app.get('/v1/exceptions', {
    config: { roles: readers },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }], summary: 'The exceptions queue, oldest first, filtered, cursor-paginated; age_days is computed.',
      querystring: { type: 'object', additionalProperties: false, properties: {
        state: { type: 'string', enum: [...exception_states] }, type: { type: 'string', enum: [...exception_types] }, business_date: date,
        bank_code: { type: 'string', pattern: '^[0-9]{12}$' }, cycle_id: { type: 'string', pattern: '^CYC[0-9]{8}$' },
        assignee: { type: 'string', minLength: 1, maxLength: 200 }, cursor, limit: { type: 'integer', minimum: 1, maximum: exception_list_page_max, default: 100 } } },
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: exception_schema }, next_cursor: nullable('string') } }, ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { state?: string; type?: string; business_date?: string; bank_code?: string; cycle_id?: string; assignee?: string; cursor?: string; limit: number };
    const r = await listExceptions(deps.db, {
      state: q.state, type: q.type, businessDate: q.business_date, bankCode: q.bank_code, cycleId: q.cycle_id, assignee: q.assignee, cursor: q.cursor ?? null, limit: q.limit,
    }, deps.now());
    return { items: r.items, next_cursor: r.nextCursor };
  });

  app.get('/v1/exceptions/:id', {
    config: { roles: readers },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }], params: id_params,
      summary: 'One exception with its history and its source lines side by side (engine lines and bank lines, or operator figures and the engine\'s).',
      response: { 200: exception_detail_schema, ...error_responses },
    },
  }, async (req) => getException(deps.db, (req.params as { id: string }).id, deps.now()));

  app.post('/v1/exceptions/:id/assign', {
    config: { roles: workers },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }], params: id_params, summary: 'Assign (or reassign) an open exception.',
      body: { type: 'object', additionalProperties: false, required: ['assignee'], properties: { assignee: { type: 'string', minLength: 1, maxLength: 200 } } },
      response: { 200: exception_detail_schema, ...error_responses },
    },
  }, async (req) => assignException(deps, (req.params as { id: string }).id, (req.body as { assignee: string }).assignee, actorOf(req)));

  app.post('/v1/exceptions/:id/comments', {
    config: { roles: workers },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }], params: id_params, summary: 'Add a comment to an open or assigned exception.',
      body: { type: 'object', additionalProperties: false, required: ['note'], properties: { note } },
      response: { 200: exception_detail_schema, ...error_responses },
    },
  }, async (req) => commentOnException(deps, (req.params as { id: string }).id, (req.body as { note: string }).note, actorOf(req)));

  app.post('/v1/exceptions/:id/resolve', {
    config: { roles: workers },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }], params: id_params,
      summary: 'Resolve an exception: WRITE_OFF, RE_PRESENTED (in a later cycle), EXPLAINED, or ADJUSTMENT (only once an adjustment of it is approved).',
      body: { type: 'object', additionalProperties: false, required: ['resolution', 'note'], properties: { resolution: { type: 'string', enum: [...resolutions] }, note } },
      response: { 200: exception_detail_schema, ...error_responses },
    },
  }, async (req) => {
    const b = req.body as { resolution: Resolution; note: string };
    return resolveException(deps, (req.params as { id: string }).id, { resolution: b.resolution, note: b.note }, actorOf(req));
  });
}
