/**
 * Misuse and fraud cases: list and read (admin, finance), open a FRAUD case, assign, confirm
 * (optionally suspending the card, writing the cardholder's integrity record, and for FRAUD
 * booking the amount to return and the fine), dismiss, record collections, and run the daily
 * misuse detection for a date.
 */
import type { FastifyInstance } from 'fastify';
import { DomainError } from '../../../engine/errors.ts';
import { case_kinds, case_states, integrity_kinds, parseCaseId, type IntegrityKind } from '../../../engine/cards/index.ts';
import {
  actorOf, assignCase, case_list_page_max, cardsOptionsFromConfig, collectRecovery, confirmCase, cursorOf, detectMisuse, dismissCase, getCase,
  listCases, openCase, redacting_log_serializers, type CardsOptions, type TapSource,
} from '../../cards/index.ts';
import { error_responses, type AppDeps } from '../context.ts';

const case_id = { type: 'string', pattern: '^case_[1-9][0-9]{0,17}$' } as const;
const note = { type: 'string', minLength: 1, maxLength: 500 } as const;
const request_id = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } as const;
const fen = { type: 'string', pattern: '^[1-9][0-9]{0,14}$' } as const;

const case_schema = {
  type: 'object',
  properties: {
    case_id: { type: 'string' }, kind: { type: 'string' }, source_ref: { type: 'string' }, card_no: { type: ['string', 'null'] },
    merchant_id: { type: ['string', 'null'] }, terminal_id: { type: ['string', 'null'] }, amount_fen: { type: ['string', 'null'] },
    details: { type: 'object', additionalProperties: true }, state: { type: 'string' }, assignee: { type: ['string', 'null'] }, opened_at: { type: 'string' },
  },
} as const;

const case_detail_schema = {
  type: 'object',
  properties: {
    ...case_schema.properties,
    events: { type: 'array', items: { type: 'object', properties: {
      from_state: { type: ['string', 'null'] }, to_state: { type: 'string' }, actor: { type: 'string' }, note: { type: ['string', 'null'] }, at: { type: 'string' } } } },
    integrity_records: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, kind: { type: 'string' }, at: { type: 'string' } } } },
    recovery: { type: ['object', 'null'], properties: {
      amount_fen: { type: 'string' }, fine_multiple: { type: 'string' }, fine_fen: { type: 'string' }, due_fen: { type: 'string' },
      collected_fen: { type: 'string' }, outstanding_fen: { type: 'string' },
      collections: { type: 'array', items: { type: 'object', properties: {
        collection_id: { type: 'string' }, amount_fen: { type: 'string' }, bank_code: { type: 'string' }, at: { type: 'string' } } } } } },
    suspension: { type: ['object', 'null'], additionalProperties: true },
  },
} as const;

const idParam = { type: 'object', required: ['id'], properties: { id: case_id } } as const;

function idOf(params: unknown): bigint {
  return parseCaseId((params as { id: string }).id) as bigint;
}

export async function caseRoutes(app: FastifyInstance, deps: AppDeps & { cardsOptions?: CardsOptions; misuseTapSource?: TapSource }): Promise<void> {
  const options = deps.cardsOptions ?? cardsOptionsFromConfig(deps.config);
  const readers = ['admin', 'finance'] as const;
  const deciders = ['admin'] as const;

  app.get('/v1/cases', {
    config: { roles: readers },
    logSerializers: redacting_log_serializers,
    schema: {
      tags: ['cases'], summary: 'Misuse and fraud cases, filtered, oldest first, cursor-paginated.', security: [{ bearer: [] }],
      querystring: { type: 'object', additionalProperties: false, properties: {
        state: { type: 'string', enum: [...case_states] }, kind: { type: 'string', pattern: '^[A-Z][A-Z0-9_]{1,39}$' },
        card_no: { type: 'string', pattern: '^[0-9]{16,19}$' }, assignee: { type: 'string', maxLength: 200 },
        cursor: { type: 'string', pattern: '^[0-9]{1,19}$' }, limit: { type: 'integer', minimum: 1, maximum: case_list_page_max, default: 100 } } },
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: case_schema }, next_cursor: { type: ['string', 'null'] } } }, ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { state?: string; kind?: string; card_no?: string; assignee?: string; cursor?: string; limit: number };
    const items = await listCases(deps.db, cursorOf(q.cursor), q.limit, { state: q.state, kind: q.kind, cardNo: q.card_no, assignee: q.assignee });
    return { items, next_cursor: items.length === q.limit ? items[items.length - 1].case_id.slice(5) : null };
  });

  app.get('/v1/cases/:id', {
    config: { roles: readers },
    schema: {
      tags: ['cases'], summary: 'A case with its history, integrity records and recovery.', security: [{ bearer: [] }],
      params: idParam, response: { 200: case_detail_schema, ...error_responses },
    },
  }, async (req) => getCase(deps.db, idOf(req.params)));

  app.post('/v1/cases', {
    config: { roles: deciders },
    schema: {
      tags: ['cases'], summary: 'Open a case (staff open FRAUD cases; the others are raised by ingestion and the misuse job). Idempotent by (kind, source_ref).',
      security: [{ bearer: [] }],
      body: { type: 'object', additionalProperties: false, required: ['kind', 'source_ref', 'note'], properties: {
        kind: { type: 'string', enum: [...case_kinds] }, source_ref: { type: 'string', minLength: 1, maxLength: 200 },
        card_no: { type: 'string', pattern: '^[0-9]{16,19}$' }, amount_fen: fen, note } },
      response: { 200: case_detail_schema, 201: case_detail_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const b = req.body as { kind: string; source_ref: string; card_no?: string; amount_fen?: string; note: string };
    const r = await openCase(deps.db, {
      kind: b.kind, sourceRef: b.source_ref, cardNo: b.card_no ?? null, amountFen: b.amount_fen === undefined ? null : BigInt(b.amount_fen),
      details: { opened_by: 'staff' }, note: b.note,
    }, actorOf(req), deps.now());
    return reply.status(r.created ? 201 : 200).send(await getCase(deps.db, r.caseId));
  });

  app.post('/v1/cases/:id/assignment', {
    config: { roles: deciders },
    schema: {
      tags: ['cases'], summary: 'Assign (or reassign) a case to a reviewer.', security: [{ bearer: [] }], params: idParam,
      body: { type: 'object', additionalProperties: false, required: ['assignee'], properties: { assignee: { type: 'string', minLength: 1, maxLength: 200 }, note } },
      response: { 200: case_detail_schema, ...error_responses },
    },
  }, async (req) => {
    const b = req.body as { assignee: string; note?: string };
    return assignCase(deps.db, idOf(req.params), b.assignee, b.note ?? null, actorOf(req), deps.now());
  });

  app.post('/v1/cases/:id/confirmation', {
    config: { roles: deciders },
    schema: {
      tags: ['cases'], security: [{ bearer: [] }], params: idParam,
      summary: 'Confirm a case: optionally suspend the card and write the cardholder\'s integrity record; a FRAUD case states amount_fen and fine_multiple (2–5) and books both as a receivable.',
      body: { type: 'object', additionalProperties: false, required: ['note'], properties: {
        note,
        suspend_card: { type: 'object', additionalProperties: false, required: ['request_id', 'reason'], properties: { request_id, reason: note } },
        integrity_kind: { type: 'string', enum: [...integrity_kinds] },
        amount_fen: fen,
        fine_multiple: { type: 'string', maxLength: 20 } } },
      response: { 200: case_detail_schema, ...error_responses },
    },
  }, async (req) => {
    const b = req.body as { note: string; suspend_card?: { request_id: string; reason: string }; integrity_kind?: IntegrityKind; amount_fen?: string; fine_multiple?: string };
    const r = await confirmCase(deps, idOf(req.params), {
      note: b.note, suspendCard: b.suspend_card ? { requestId: b.suspend_card.request_id, reason: b.suspend_card.reason } : null,
      integrityKind: b.integrity_kind ?? null, amountFen: b.amount_fen === undefined ? null : BigInt(b.amount_fen), fineMultiple: b.fine_multiple ?? null,
    }, actorOf(req));
    return { ...r.case, suspension: r.suspension };
  });

  app.post('/v1/cases/:id/dismissal', {
    config: { roles: deciders },
    schema: {
      tags: ['cases'], summary: 'Dismiss a case (no misuse), with the reason.', security: [{ bearer: [] }], params: idParam,
      body: { type: 'object', additionalProperties: false, required: ['note'], properties: { note } },
      response: { 200: case_detail_schema, ...error_responses },
    },
  }, async (req) => dismissCase(deps.db, idOf(req.params), (req.body as { note: string }).note, actorOf(req), deps.now()));

  app.post('/v1/cases/:id/collections', {
    config: { roles: ['admin', 'finance'] },
    schema: {
      tags: ['cases'], summary: 'Money collected from the cardholder against a fraud recovery (bank clearing → cardholder receivable). Idempotent by collection_id.',
      security: [{ bearer: [] }], params: idParam,
      body: { type: 'object', additionalProperties: false, required: ['collection_id', 'amount_fen', 'bank_code'], properties: {
        collection_id: request_id, amount_fen: fen, bank_code: { type: 'string', pattern: '^[0-9]{12}$' } } },
      response: { 200: { type: 'object', properties: {
        collected_fen: { type: 'string' }, due_fen: { type: 'string' }, outstanding_fen: { type: 'string' }, replayed: { type: 'boolean' } } }, ...error_responses },
    },
  }, async (req) => {
    const b = req.body as { collection_id: string; amount_fen: string; bank_code: string };
    return collectRecovery(deps, idOf(req.params), { collectionId: b.collection_id, amountFen: BigInt(b.amount_fen), bankCode: b.bank_code }, actorOf(req));
  });

  app.post('/v1/cases/detections', {
    config: { roles: deciders },
    schema: {
      tags: ['cases'], summary: 'Run the misuse detectors over one business date\'s accepted taps and raise cases (safe to run again).', security: [{ bearer: [] }],
      body: { type: 'object', additionalProperties: false, required: ['business_date'], properties: { business_date: { type: 'string', format: 'date' } } },
      response: { 200: { type: 'object', properties: {
        business_date: { type: 'string' }, taps: { type: 'integer' }, impossible_travel: { type: 'integer' }, abnormal_counts: { type: 'integer' }, cases_raised: { type: 'integer' } } },
      ...error_responses },
    },
  }, async (req) => {
    const date = (req.body as { business_date: string }).business_date;
    let r;
    try {
      r = await detectMisuse(deps.db, date, { limits: options.misuse, now: deps.now(), source: deps.misuseTapSource });
    } catch (e) {
      if (e instanceof Error && e.message.startsWith('misuse job:')) throw new DomainError('TAP_SOURCE_MISSING', 503, 'Accepted taps are not available yet (transit ingestion is not installed).');
      throw e;
    }
    return { business_date: r.businessDate, taps: r.taps, impossible_travel: r.impossibleTravel, abnormal_counts: r.abnormalCounts, cases_raised: r.casesRaised };
  });
}
