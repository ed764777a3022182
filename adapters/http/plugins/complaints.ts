/**
 * Complaints: anyone may file one (public, rate-limited per IP, validated); staff (admin) list,
 * read (contact details masked unless the purpose is COMPLAINT_HANDLING; audited), assign and
 * answer; the complainant reads the answer with the id and the access code given at filing.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../../../engine/errors.ts';
import { purposes } from '../../../engine/cards/index.ts';
import {
  complainant_kinds, complaint_answer_chars_max, complaint_categories, complaint_description_chars_max, complaint_states, parseComplaintId, TokenBuckets,
} from '../../../engine/complaints/index.ts';
import {
  actorOf, cardsOptionsFromConfig, complaint_list_page_max, cursorOf, fileComplaint, getComplaintDetail, getComplaintPublic, listComplaints,
  purposeOf, redacting_log_serializers, stepComplaint, type CardsOptions,
} from '../../cards/index.ts';
import { error_responses, type AppDeps } from '../context.ts';

const complaint_id = { type: 'string', pattern: '^cmp_[1-9][0-9]{0,17}$' } as const;
const idParam = { type: 'object', required: ['id'], properties: { id: complaint_id } } as const;
const control_chars = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

const summary_props = {
  complaint_id: { type: 'string' }, state: { type: 'string' }, category: { type: 'string' }, complainant_kind: { type: 'string' },
  assignee: { type: ['string', 'null'] }, filed_at: { type: 'string' }, due_at: { type: 'string' }, answered_at: { type: ['string', 'null'] },
  overdue: { type: 'boolean' },
} as const;

const filed_schema = {
  type: 'object',
  properties: {
    complaint_id: { type: 'string' }, access_code: { type: 'string' }, state: { type: 'string' }, filed_at: { type: 'string' },
    due_at: { type: 'string' }, replayed: { type: 'boolean' },
  },
} as const;

const detail_schema = {
  type: 'object',
  properties: {
    ...summary_props,
    contact: { type: 'object', properties: { name: { type: ['string', 'null'] }, phone: { type: ['string', 'null'] }, email: { type: ['string', 'null'] } } },
    description: { type: ['string', 'null'] }, answer: { type: ['string', 'null'] }, answered_by: { type: ['string', 'null'] },
    events: { type: 'array', items: { type: 'object', properties: {
      from_state: { type: ['string', 'null'] }, to_state: { type: 'string' }, actor: { type: 'string' }, note: { type: ['string', 'null'] }, at: { type: 'string' } } } },
    revealed: { type: 'array', items: { type: 'string' } }, purpose: { type: ['string', 'null'] },
  },
} as const;

function idOf(params: unknown): bigint {
  return parseComplaintId((params as { id: string }).id) as bigint;
}

function limited(buckets: TokenBuckets, req: FastifyRequest, reply: FastifyReply, nowMs: number): void {
  const waitMs = buckets.take(req.ip, nowMs);
  if (waitMs > 0) {
    const seconds = Math.ceil(waitMs / 1000);
    reply.header('retry-after', String(seconds));
    throw new DomainError('RATE_LIMITED', 429, `Too many requests from this address; try again in ${seconds} s.`, { retry_after_s: seconds });
  }
}

export async function complaintRoutes(app: FastifyInstance, deps: AppDeps & { cardsOptions?: CardsOptions }): Promise<void> {
  const options = deps.cardsOptions ?? cardsOptionsFromConfig(deps.config);
  const filings = new TokenBuckets(options.complaintFilingBucket);
  const reads = new TokenBuckets(options.complaintReadBucket);

  app.post('/v1/complaints', {
    config: { roles: [] },
    schema: {
      tags: ['complaints'], summary: 'File a complaint (anyone). Keep the access code returned: it reads the answer. Rate-limited per address; idempotent by request_id.',
      body: { type: 'object', additionalProperties: false, required: ['request_id', 'complainant_kind', 'category', 'contact', 'description'], properties: {
        request_id: { type: 'string', pattern: '^[A-Za-z0-9_-]{8,64}$' },
        complainant_kind: { type: 'string', enum: [...complainant_kinds] },
        category: { type: 'string', enum: [...complaint_categories] },
        contact: { type: 'object', additionalProperties: false, required: ['name'], properties: {
          name: { type: 'string', minLength: 1, maxLength: 50 },
          phone: { type: 'string', pattern: '^\\+?[0-9 ()-]{6,20}$' },
          email: { type: 'string', format: 'email', maxLength: 200 } } },
        description: { type: 'string', minLength: 10, maxLength: complaint_description_chars_max } } },
      response: { 200: filed_schema, 201: filed_schema, ...error_responses },
    },
  }, async (req, reply) => {
    limited(filings, req, reply, deps.now().getTime());
    const b = req.body as { request_id: string; complainant_kind: string; category: string; contact: { name: string; phone?: string; email?: string }; description: string };
    if (control_chars.test(b.description) || control_chars.test(b.contact.name)) {
      throw new DomainError('TEXT_INVALID', 400, 'The complaint text and name may not hold control characters.');
    }
    if (b.contact.phone === undefined && b.contact.email === undefined) {
      throw new DomainError('CONTACT_REQUIRED', 400, 'Give a phone number or an email address so the answer can reach you.');
    }
    const r = await fileComplaint(deps.db, deps.pii, {
      requestId: b.request_id, complainantKind: b.complainant_kind, category: b.category, contact: b.contact, description: b.description,
    }, deps.now(), options.complaintDeadlineDays);
    return reply.status(r.replayed ? 200 : 201).send(r);
  });

  app.get('/v1/complaints/:id', {
    config: { roles: [] },
    // The access code travels in the query string; the redacting serializer keeps it out of logs.
    logSerializers: redacting_log_serializers,
    schema: {
      tags: ['complaints'], summary: 'The complainant\'s view: state, deadline and answer, with the access code given at filing.',
      params: idParam,
      querystring: { type: 'object', additionalProperties: false, required: ['access_code'], properties: { access_code: { type: 'string', pattern: '^[A-Z2-7]{26}$' } } },
      response: { 200: { type: 'object', properties: {
        complaint_id: { type: 'string' }, state: { type: 'string' }, category: { type: 'string' }, filed_at: { type: 'string' }, due_at: { type: 'string' },
        overdue: { type: 'boolean' }, answer: { type: ['string', 'null'] }, answered_at: { type: ['string', 'null'] } } }, ...error_responses },
    },
  }, async (req, reply) => {
    limited(reads, req, reply, deps.now().getTime());
    return getComplaintPublic(deps.db, idOf(req.params), (req.query as { access_code: string }).access_code, deps.now());
  });

  const staff = ['admin'] as const;

  app.get('/v1/complaints', {
    config: { roles: staff },
    schema: {
      tags: ['complaints'], summary: 'Complaints, oldest first; overdue=true lists those past their deadline and unanswered.', security: [{ bearer: [] }],
      querystring: { type: 'object', additionalProperties: false, properties: {
        state: { type: 'string', enum: [...complaint_states] }, overdue: { type: 'boolean' },
        cursor: { type: 'string', pattern: '^[0-9]{1,19}$' }, limit: { type: 'integer', minimum: 1, maximum: complaint_list_page_max, default: 100 } } },
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: { type: 'object', properties: summary_props } }, next_cursor: { type: ['string', 'null'] } } }, ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { state?: string; overdue?: boolean; cursor?: string; limit: number };
    const items = await listComplaints(deps.db, cursorOf(q.cursor), q.limit, { state: q.state, overdue: q.overdue }, deps.now());
    return { items, next_cursor: items.length === q.limit ? items[items.length - 1].complaint_id.slice(4) : null };
  });

  app.get('/v1/complaints/:id/details', {
    config: { roles: staff },
    schema: {
      tags: ['complaints'], summary: 'A complaint for handling: contact and text masked unless the purpose is COMPLAINT_HANDLING; the read is audited.',
      security: [{ bearer: [] }], params: idParam,
      headers: { type: 'object', properties: { 'x-purpose': { type: 'string', enum: [...purposes] } } },
      querystring: { type: 'object', additionalProperties: false, properties: { purpose: { type: 'string', enum: [...purposes] } } },
      response: { 200: detail_schema, ...error_responses },
    },
  }, async (req) => getComplaintDetail(deps.db, deps.pii, idOf(req.params), actorOf(req), purposeOf(req), deps.now()));

  app.post('/v1/complaints/:id/assignment', {
    config: { roles: staff },
    schema: {
      tags: ['complaints'], summary: 'Assign (or reassign) a complaint to a handler.', security: [{ bearer: [] }], params: idParam,
      body: { type: 'object', additionalProperties: false, required: ['assignee'], properties: { assignee: { type: 'string', minLength: 1, maxLength: 200 } } },
      response: { 200: detail_schema, ...error_responses },
    },
  }, async (req) => {
    const id = idOf(req.params);
    await stepComplaint(deps.db, id, 'ASSIGN', (req.body as { assignee: string }).assignee, actorOf(req), deps.now());
    return getComplaintDetail(deps.db, deps.pii, id, actorOf(req), undefined, deps.now());
  });

  app.post('/v1/complaints/:id/answer', {
    config: { roles: staff },
    schema: {
      tags: ['complaints'], summary: 'Answer a complaint; the complainant sees the answer with the access code.', security: [{ bearer: [] }], params: idParam,
      body: { type: 'object', additionalProperties: false, required: ['answer'], properties: { answer: { type: 'string', minLength: 1, maxLength: complaint_answer_chars_max } } },
      response: { 200: detail_schema, ...error_responses },
    },
  }, async (req) => {
    const id = idOf(req.params);
    await stepComplaint(deps.db, id, 'ANSWER', (req.body as { answer: string }).answer, actorOf(req), deps.now());
    return getComplaintDetail(deps.db, deps.pii, id, actorOf(req), undefined, deps.now());
  });
}
