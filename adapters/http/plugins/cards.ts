/**
 * Card service routes: applications, the lifecycle actions (activation, loss reports, unfreeze,
 * replacement, cancellation, suspension, reinstatement), persons (read through the masking
 * policy, audited), the terminals' hotlist, and the public services catalogue.
 *
 * Card service staff act with the admin role; a cardholder's request through a service channel
 * (phone, app, web, bank branch) arrives as an admin call naming the `channel`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { badRequest, notFound } from '../../../engine/errors.ts';
import {
  card_actions, eligibility_bases, purposes, service_channels, services_catalogue, services_catalogue_version, type CardAction,
} from '../../../engine/cards/index.ts';
import {
  actorOf, applyForCard, cardsOptionsFromConfig, findPersonIds, getApplication, hotlist_page_default, hotlist_page_max, hotlistDelta, hotlistPage,
  parsePersonId, performCardAction, purposeOf, readPerson, readPersons, redacting_log_serializers, type CardsOptions,
} from '../../cards/index.ts';
import { encodeHotlistDelta, encodeHotlistPage, hotlist_protobuf_content_type } from '../../protobuf/hotlist-codec.ts';
import { withTx } from '../../postgres/db.ts';
import { error_responses, type AppDeps } from '../context.ts';

const card_no = { type: 'string', pattern: '^[0-9]{16,19}$' } as const;
const request_id = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } as const;
const reason = { type: 'string', minLength: 1, maxLength: 500 } as const;
const channel = { type: 'string', enum: [...service_channels] } as const;
const purpose_query = { purpose: { type: 'string', enum: [...purposes] } } as const;
const purpose_header = { type: 'object', properties: { 'x-purpose': { type: 'string', enum: [...purposes] } } } as const;

const person_schema = {
  type: 'object',
  properties: {
    person_id: { type: 'string' }, name: { type: ['string', 'null'] }, national_id: { type: ['string', 'null'] }, phone: { type: ['string', 'null'] },
    address: { type: ['string', 'null'] }, eligibility: { type: 'string' }, eligibility_valid_until: { type: ['string', 'null'] }, created_at: { type: 'string' },
    cards: { type: 'array', items: { type: 'object', properties: {
      card_no: { type: 'string' }, form: { type: 'string' }, linked_card_no: { type: ['string', 'null'] }, status: { type: 'string' },
      status_since: { type: 'string' }, issuing_bank: { type: 'string' }, replaced_by: { type: ['string', 'null'] } } } },
    integrity_records: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, kind: { type: 'string' }, case_id: { type: 'string' }, at: { type: 'string' } } } },
    revealed: { type: 'array', items: { type: 'string' } }, purpose: { type: ['string', 'null'] },
  },
} as const;

const application_schema = {
  type: 'object',
  properties: {
    application_id: { type: 'string' }, person_id: { type: 'string' }, eligibility: { type: 'string' }, issuing_bank: { type: 'string' },
    channel: { type: 'string' }, created_at: { type: 'string' }, replayed: { type: 'boolean' },
    cards: { type: 'array', items: { type: 'object', properties: {
      card_no: { type: 'string' }, form: { type: 'string' }, linked_card_no: { type: ['string', 'null'] }, status: { type: 'string' } } } },
  },
} as const;

const action_result_schema = {
  type: 'object',
  properties: {
    card_no: { type: 'string' }, action: { type: 'string', enum: [...card_actions] }, request_id: { type: 'string' },
    from_status: { type: 'string' }, to_status: { type: 'string' }, effective_at: { type: 'string' }, channel: { type: 'string' },
    new_card_no: { type: ['string', 'null'] }, hotlist_version: { type: 'string' }, replayed: { type: 'boolean' },
    also_changed: { type: 'array', items: { type: 'object', properties: { card_no: { type: 'string' }, to_status: { type: ['string', 'null'] }, linked_card_no: { type: 'string' } } } },
    moved: { type: 'array', items: { type: 'object', properties: { from: { type: 'string' }, to: { type: 'string' }, amount_fen: { type: 'string' }, kind: { type: 'string' } } } },
  },
} as const;

interface ActionBody {
  request_id: string;
  channel?: string;
  reason?: string;
  case_id?: string;
}

/** The lifecycle routes differ only in path, action, and what the body must carry. */
const lifecycle_routes: { path: string; action: CardAction; summary: string; reasonRequired: boolean; caseRequired?: boolean }[] = [
  { path: 'activation', action: 'ACTIVATE', summary: 'Activate an ISSUED card (the holder has collected it).', reasonRequired: false },
  { path: 'loss-reports', action: 'REPORT_LOSS', summary: 'Report a card lost: effective at once, it joins the hotlist.', reasonRequired: false },
  { path: 'unfreeze', action: 'UNFREEZE', summary: 'A lost card was found: back to ACTIVE, off the hotlist.', reasonRequired: true },
  { path: 'replacements', action: 'REPLACE', summary: 'Replace a card: a new number, balances moved, the old card cancelled.', reasonRequired: true },
  { path: 'cancellation', action: 'CANCEL', summary: 'Cancel a card (and its e-cards): remaining balances refunded through the issuing bank.', reasonRequired: true },
  { path: 'suspensions', action: 'SUSPEND', summary: 'Suspend a misused card\'s social-security functions, naming the case.', reasonRequired: true, caseRequired: true },
  { path: 'reinstatement', action: 'REINSTATE', summary: 'Lift a suspension: back to ACTIVE.', reasonRequired: true },
];

export async function cardRoutes(app: FastifyInstance, deps: AppDeps & { cardsOptions?: CardsOptions }): Promise<void> {
  const options = deps.cardsOptions ?? cardsOptionsFromConfig(deps.config);
  const staff = ['admin'] as const;

  app.post('/v1/card-applications', {
    config: { roles: staff },
    schema: {
      tags: ['cards'], summary: 'Apply for a card: an eligible person gets a physical card (ISSUED) and a linked e-card. Idempotent by application_id.',
      security: [{ bearer: [] }],
      body: { type: 'object', additionalProperties: false, required: ['application_id', 'person', 'eligibility', 'issuing_bank', 'channel'], properties: {
        application_id: request_id,
        person: { type: 'object', additionalProperties: false, required: ['name', 'national_id'], properties: {
          name: { type: 'string', minLength: 1, maxLength: 50 }, national_id: { type: 'string', minLength: 15, maxLength: 20 },
          phone: { type: 'string', minLength: 11, maxLength: 20 }, address: { type: 'string', minLength: 1, maxLength: 200 } } },
        eligibility: { type: 'object', additionalProperties: false, required: ['basis'], properties: {
          basis: { type: 'string', enum: [...eligibility_bases] }, valid_until: { type: 'string', format: 'date' } } },
        issuing_bank: { type: 'string', pattern: '^[0-9]{12}$' },
        channel,
      } },
      response: { 200: application_schema, 201: application_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const b = req.body as { application_id: string; person: { name: string; national_id: string; phone?: string; address?: string }; eligibility: { basis: string; valid_until?: string }; issuing_bank: string; channel: string };
    const r = await applyForCard(deps.db, deps.pii, {
      applicationId: b.application_id,
      person: { name: b.person.name, nationalId: b.person.national_id, phone: b.person.phone, address: b.person.address },
      eligibility: { basis: b.eligibility.basis, validUntil: b.eligibility.valid_until },
      issuingBank: b.issuing_bank, channel: b.channel,
    }, actorOf(req), deps.now());
    return reply.status(r.replayed ? 200 : 201).send(r);
  });

  app.get('/v1/card-applications/:applicationId', {
    config: { roles: staff },
    schema: {
      tags: ['cards'], summary: 'An application and the cards it issued.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['applicationId'], properties: { applicationId: request_id } },
      response: { 200: application_schema, ...error_responses },
    },
  }, async (req) => {
    const r = await getApplication(deps.db, (req.params as { applicationId: string }).applicationId);
    if (!r) throw notFound('APPLICATION_NOT_FOUND', 'No such application.');
    return r;
  });

  for (const route of lifecycle_routes) {
    const required = ['request_id', ...(route.action === 'SUSPEND' || route.action === 'REINSTATE' ? [] : ['channel']), ...(route.reasonRequired ? ['reason'] : []), ...(route.caseRequired ? ['case_id'] : [])];
    app.post(`/v1/cards/:cardNo/${route.path}`, {
      config: { roles: staff },
      logSerializers: redacting_log_serializers,
      schema: {
        tags: ['cards'], summary: route.summary, security: [{ bearer: [] }],
        params: { type: 'object', required: ['cardNo'], properties: { cardNo: card_no } },
        body: { type: 'object', additionalProperties: false, required, properties: {
          request_id, channel, reason, ...(route.caseRequired ? { case_id: { type: 'string', pattern: '^case_[1-9][0-9]{0,17}$' } } : {}) } },
        response: { 200: action_result_schema, 201: action_result_schema, ...error_responses },
      },
    }, async (req: FastifyRequest, reply: FastifyReply) => {
      const b = req.body as ActionBody;
      const r = await performCardAction(deps, {
        cardNo: (req.params as { cardNo: string }).cardNo, action: route.action, requestId: b.request_id,
        channel: b.channel ?? 'COUNTER', reason: b.reason ?? null, caseId: b.case_id === undefined ? null : BigInt(b.case_id.slice(5)),
      }, actorOf(req));
      return reply.status(r.replayed ? 200 : 201).send(r);
    });
  }

  const readers = ['admin', 'finance', 'auditor'] as const;

  app.get('/v1/persons/:personId', {
    config: { roles: readers },
    schema: {
      tags: ['persons'], summary: 'A cardholder, masked unless the role and the stated purpose (X-Purpose or ?purpose=) allow the full value; every read is audited.',
      security: [{ bearer: [] }], headers: purpose_header,
      params: { type: 'object', required: ['personId'], properties: { personId: { type: 'string', pattern: '^per_[1-9][0-9]{0,17}$' } } },
      querystring: { type: 'object', additionalProperties: false, properties: purpose_query },
      response: { 200: person_schema, ...error_responses },
    },
  }, async (req) => {
    const id = parsePersonId((req.params as { personId: string }).personId) as bigint;
    const purpose = purposeOf(req);
    return withTx(deps.db, (tx) => readPerson(tx, deps.pii, id, actorOf(req), purpose, deps.now()));
  });

  app.post('/v1/persons/search', {
    config: { roles: readers },
    schema: {
      tags: ['persons'], summary: 'Find cardholders by national ID number or phone (in the body: never in a URL); results masked per purpose, audited.',
      security: [{ bearer: [] }], headers: purpose_header,
      querystring: { type: 'object', additionalProperties: false, properties: purpose_query },
      body: { type: 'object', additionalProperties: false, properties: {
        national_id: { type: 'string', minLength: 15, maxLength: 20 }, phone: { type: 'string', minLength: 11, maxLength: 20 } } },
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: person_schema } } }, ...error_responses },
    },
  }, async (req) => {
    const b = req.body as { national_id?: string; phone?: string };
    if ((b.national_id === undefined) === (b.phone === undefined)) throw badRequest('SEARCH_KEY_REQUIRED', 'Search by exactly one of national_id or phone.');
    const purpose = purposeOf(req);
    const ids = await findPersonIds(deps.db, deps.pii, { nationalId: b.national_id, phone: b.phone });
    const items = await withTx(deps.db, (tx) => readPersons(tx, deps.pii, ids, actorOf(req), purpose, deps.now(), 'PERSON_SEARCH'));
    return { items };
  });

  app.get('/v1/hotlist', {
    config: { roles: ['operator', 'admin'] },
    logSerializers: redacting_log_serializers,
    schema: {
      tags: ['hotlist'], security: [{ bearer: [] }],
      summary: 'Cards terminals must refuse. Without since_version: the full list at the current version, paged by card number. With it: the changes after that version. JSON, or protobuf with Accept: application/x-protobuf (hotlist.proto).',
      querystring: { type: 'object', additionalProperties: false, properties: {
        since_version: { type: 'string', pattern: '^(0|[1-9][0-9]{0,17})$' }, cursor: card_no,
        limit: { type: 'integer', minimum: 1, maximum: hotlist_page_max, default: hotlist_page_default } } },
      response: { 200: { type: 'object', properties: {
        version: { type: 'string' }, next_cursor: { type: ['string', 'null'] },
        entries: { type: 'array', items: { type: 'object', properties: { card_no: { type: 'string' }, status: { type: 'string' }, since: { type: 'string' } } } },
        from_version: { type: 'string' }, to_version: { type: 'string' }, more: { type: 'boolean' },
        changes: { type: 'array', items: { type: 'object', properties: {
          version: { type: 'string' }, card_no: { type: 'string' }, op: { type: 'string' }, status: { type: 'string' }, changed_at: { type: 'string' } } } } } },
      ...error_responses },
    },
  }, async (req, reply) => {
    const q = req.query as { since_version?: string; cursor?: string; limit: number };
    const wantsProtobuf = (req.headers.accept ?? '').includes(hotlist_protobuf_content_type);
    if (q.since_version !== undefined) {
      const d = await hotlistDelta(deps.db, BigInt(q.since_version), q.limit);
      if (wantsProtobuf) return reply.type(hotlist_protobuf_content_type).send(Buffer.from(encodeHotlistDelta(d)));
      return d;
    }
    const p = await hotlistPage(deps.db, q.cursor ?? null, q.limit);
    if (wantsProtobuf) return reply.type(hotlist_protobuf_content_type).send(Buffer.from(encodeHotlistPage(p)));
    return p;
  });

  app.get('/v1/services', {
    config: { roles: [] },
    schema: {
      tags: ['services'], summary: 'The public catalogue of one-card services: conditions, steps, time limits.',
      response: { 200: { type: 'object', properties: {
        version: { type: 'string' },
        items: { type: 'array', items: { type: 'object', properties: {
          id: { type: 'string' }, name: { type: 'string' }, route: { type: ['string', 'null'] }, channels: { type: 'array', items: { type: 'string' } },
          conditions: { type: 'array', items: { type: 'string' } }, steps: { type: 'array', items: { type: 'string' } },
          time_limit: { type: 'string' }, fee_fen: { type: 'integer' } } } } } }, ...error_responses },
    },
  }, async () => ({
    version: services_catalogue_version,
    // The complaint deadline is configurable; the catalogue states the one in force.
    items: services_catalogue.map((s) => (s.id === 'complain' ? { ...s, time_limit: `Answered within ${options.complaintDeadlineDays} days of filing.` } : s)),
  }));
}
