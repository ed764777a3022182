/**
 * Routes for reference data: banks, merchants, fee schedules, terminals, cards (with their status
 * events) and the configured key versions. Admins write; finance staff and auditors read.
 *
 * Creation is POST and idempotent: the same id with the same content answers 200 with the
 * stored record (201 the first time), the same id with different content is 409 `*_CONFLICT`.
 * Fields that may change later (a merchant's status, a terminal's station) change through
 * PATCH, and every creation and change is kept as a reference event with actor and time.
 * Terminals and cards also have bulk imports: up to 10,000 rows, all or nothing, with every
 * refused row listed (index, code) in a 422.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomainError, notFound, unprocessable } from '../../../engine/errors.ts';
import {
  card_forms, card_statuses, card_time_future_skew_ms, checkBank, checkCard, checkFeeSchedule, checkMerchant, checkTerminal,
  merchant_kinds, merchant_statuses, terminal_statuses,
} from '../../../engine/reference/index.ts';
import type { CardStatus, CardForm, MerchantKind, MerchantStatus, RawRow, RowError, TerminalStatus } from '../../../engine/reference/index.ts';
import {
  getBank, getCard, getFeeSchedule, getMerchant, getTerminal, import_rows_max, importBanks, importCards, importFeeSchedules,
  importMerchants, importRows, importTerminals, list_limit_max, listBanks, listCards, listCardStatusEvents, listFeeSchedules,
  listMerchants, listTerminals, recordCardStatus, reference_entities, referenceEvents, updateBank, updateMerchant, updateTerminal,
} from '../../reference/index.ts';
import type {
  BankView, CardStatusEventView, CardView, FeeScheduleView, ImportResult, MerchantView, ReferenceEntity, ReferenceEventView,
  ReferenceKind, TerminalView, WriteContext,
} from '../../reference/index.ts';
import { withTx, type Tx } from '../../postgres/db.ts';
import { error_responses, type AppDeps } from '../context.ts';

const page_size_default = 100;
/** An import refusal lists at most this many rows (the count says how many there were). */
const import_errors_listed_max = 1_000;
const reason_chars_max = 500;

const writers = ['admin'] as const;
const readers = ['admin', 'finance', 'auditor'] as const;

// ------------------------------------------------------------------------------------ schemas

const bank_code = { type: 'string', pattern: '^[0-9]{12}$', description: '12-digit CNAPS bank code.' } as const;
const merchant_id = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } as const;
const terminal_id = { type: 'string', pattern: '^[0-9]{12}$', description: '12-digit terminal (PSAM) id.' } as const;
const card_no = { type: 'string', pattern: '^[0-9]{16,19}$', description: 'Card number, 16..19 digits.' } as const;
const fen = { type: 'string', pattern: '^[0-9]{1,16}$', description: 'Whole fen, as a decimal string.' } as const;
const rate = { type: 'string', pattern: '^[0-9](\\.[0-9]{1,8})?$', description: 'Decimal string, 0 ≤ rate < 1, at most 8 decimals, e.g. "0.003" (0.3 %).' } as const;
const coordinate = { type: ['string', 'null'], pattern: '^-?[0-9]{1,3}(\\.[0-9]{1,6})?$', description: 'Decimal degrees, at most 6 decimals.' } as const;
const instant = { type: 'string', format: 'date-time' } as const;
const name_text = { type: 'string', minLength: 1, maxLength: 200 } as const;
const short_text = { type: ['string', 'null'], minLength: 1, maxLength: 64 } as const;
const limit_query = { type: 'integer', minimum: 1, maximum: list_limit_max, default: page_size_default } as const;

const bank_schema = {
  type: 'object', required: ['code', 'name', 'created_at', 'updated_at'],
  properties: { code: { type: 'string' }, name: { type: 'string' }, created_at: { type: 'string' }, updated_at: { type: 'string' } },
} as const;

const merchant_schema = {
  type: 'object', required: ['id', 'name', 'kind', 'is_operator', 'acquiring_bank', 'settlement_account', 'status'],
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, kind: { type: 'string', enum: [...merchant_kinds] }, is_operator: { type: 'boolean' },
    acquiring_bank: { type: 'string' }, settlement_account: { type: 'string' }, status: { type: 'string', enum: [...merchant_statuses] },
    created_at: { type: 'string' }, updated_at: { type: 'string' },
  },
} as const;

const fee_schedule_schema = {
  type: 'object', required: ['merchant_id', 'effective_from', 'rate', 'min_fen', 'max_fen'],
  properties: {
    merchant_id: { type: 'string' }, effective_from: { type: 'string' }, rate: { type: 'string' }, min_fen: { type: 'string' },
    max_fen: { type: 'string' }, created_at: { type: 'string' }, created_by: { type: 'string' },
  },
} as const;

const terminal_schema = {
  type: 'object', required: ['id', 'merchant_id', 'status'],
  properties: {
    id: { type: 'string' }, merchant_id: { type: 'string' }, station_id: { type: ['string', 'null'] }, line_id: { type: ['string', 'null'] },
    latitude: { type: ['string', 'null'] }, longitude: { type: ['string', 'null'] }, status: { type: 'string', enum: [...terminal_statuses] },
    created_at: { type: 'string' }, updated_at: { type: 'string' },
  },
} as const;

const card_schema = {
  type: 'object', required: ['card_no', 'issuing_bank', 'form', 'status', 'status_since'],
  properties: {
    card_no: { type: 'string' }, issuing_bank: { type: 'string' }, form: { type: 'string', enum: [...card_forms] },
    linked_card_no: { type: ['string', 'null'] }, person_id: { type: ['string', 'null'] }, daily_limit_fen: { type: 'string' },
    status: { type: 'string', enum: [...card_statuses] }, status_since: { type: 'string' }, replaced_by: { type: ['string', 'null'] },
    created_at: { type: 'string' },
  },
} as const;

const status_event_schema = {
  type: 'object', required: ['id', 'card_no', 'status', 'effective_at', 'actor', 'recorded_at'],
  properties: {
    id: { type: 'string' }, card_no: { type: 'string' }, status: { type: 'string', enum: [...card_statuses] }, effective_at: { type: 'string' },
    actor: { type: 'string' }, reason: { type: ['string', 'null'] }, recorded_at: { type: 'string' },
  },
} as const;

const reference_event_schema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, entity: { type: 'string' }, entity_id: { type: 'string' }, action: { type: 'string' }, actor: { type: 'string' },
    at: { type: 'string' }, changes: { type: ['object', 'null'], additionalProperties: true },
  },
} as const;

function page(item: object) {
  return {
    type: 'object', required: ['items', 'next_cursor'],
    properties: { items: { type: 'array', items: item }, next_cursor: { type: ['string', 'null'], description: 'Pass as `cursor` for the next page; null on the last.' } },
  } as const;
}

const import_result_schema = {
  type: 'object', required: ['rows', 'created', 'existing'],
  properties: {
    rows: { type: 'integer' }, created: { type: 'integer', description: 'Rows written by this import.' },
    existing: { type: 'integer', description: 'Rows already registered with the same content (a replay).' },
  },
} as const;

/** Import rows are loosely typed on purpose: each row's rules are checked and refused per row. */
function importBody(fields: Record<string, string>) {
  return {
    type: 'object', additionalProperties: false, required: ['items'],
    properties: {
      items: {
        type: 'array', minItems: 1, maxItems: import_rows_max,
        items: {
          type: 'object', description: `Fields: ${Object.entries(fields).map(([k, v]) => `${k} (${v})`).join('; ')}.`,
          // Strings (numbers are coerced to their text, as a CSV cell would be) or null for "not given".
          properties: Object.fromEntries(Object.keys(fields).map((k) => [k, { type: ['string', 'null'], maxLength: 100 }])),
        },
      },
    },
  } as const;
}

// ------------------------------------------------------------------------------- conversions

const iso = (d: Date) => d.toISOString();

const bankJson = (b: BankView) => ({ code: b.code, name: b.name, created_at: iso(b.createdAt), updated_at: iso(b.updatedAt) });

const merchantJson = (m: MerchantView) => ({
  id: m.id, name: m.name, kind: m.kind, is_operator: m.isOperator, acquiring_bank: m.acquiringBank, settlement_account: m.settlementAccount,
  status: m.status, created_at: iso(m.createdAt), updated_at: iso(m.updatedAt),
});

const feeJson = (f: FeeScheduleView) => ({
  merchant_id: f.merchantId, effective_from: f.effectiveFrom, rate: f.rate, min_fen: String(f.minFen), max_fen: String(f.maxFen),
  created_at: iso(f.createdAt), created_by: f.createdBy,
});

const terminalJson = (t: TerminalView) => ({
  id: t.id, merchant_id: t.merchantId, station_id: t.stationId, line_id: t.lineId, latitude: t.latitude, longitude: t.longitude,
  status: t.status, created_at: iso(t.createdAt), updated_at: iso(t.updatedAt),
});

const cardJson = (c: CardView) => ({
  card_no: c.cardNo, issuing_bank: c.issuingBank, form: c.form, linked_card_no: c.linkedCardNo,
  person_id: c.personId === null ? null : String(c.personId), daily_limit_fen: String(c.dailyLimitFen), status: c.status,
  status_since: iso(c.statusSince), replaced_by: c.replacedBy, created_at: iso(c.createdAt),
});

const eventJson = (e: CardStatusEventView) => ({
  id: String(e.id), card_no: e.cardNo, status: e.status, effective_at: iso(e.effectiveAt), actor: e.actor, reason: e.reason,
  recorded_at: iso(e.recordedAt),
});

const referenceEventJson = (e: ReferenceEventView) => ({
  id: String(e.id), entity: e.entity, entity_id: e.entityId, action: e.action, actor: e.actor, at: iso(e.at), changes: e.changes ?? null,
});

// ----------------------------------------------------------------------------------- helpers

function nextCursor<T>(items: readonly T[], limit: number, key: (t: T) => string): string | null {
  return items.length === limit ? key(items[items.length - 1]) : null;
}

/** A refused single row: a conflict with what is stored is 409, anything else 422. */
function rowRefusal(e: RowError): DomainError {
  const status = e.code.endsWith('_CONFLICT') ? 409 : 422;
  return new DomainError(e.code, status, e.message, e.field ? { field: e.field } : undefined);
}

function importRefusal(r: ImportResult, rows: number): DomainError {
  return unprocessable('IMPORT_REFUSED', `${r.errors.length} of ${rows} rows were refused; nothing was imported.`, {
    error_count: r.errors.length,
    errors: r.errors.slice(0, import_errors_listed_max).map((e) => ({ index: e.index, code: e.code, ...(e.field ? { field: e.field } : {}), message: e.message })),
  });
}

/** Body fields that are absent stay absent; the pure checks apply the defaults. */
function rowOf(body: unknown): RawRow {
  return (body ?? {}) as RawRow;
}

export async function referenceRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const ctx = (req: FastifyRequest): WriteContext => ({ actor: req.principal?.keyId ?? 'unknown', at: deps.now() });
  // Card numbers travel in these URLs (path, cursor, entity_id); the request log (info level)
  // would record them in full, so these routes log only warnings and errors.
  const card_route_log_level = 'warn';

  /** Create one record through the all-or-nothing import, then answer with the stored row. */
  function createOne<V>(write: (tx: Tx) => Promise<ImportResult>, read: (tx: Tx) => Promise<V | undefined>): Promise<{ created: boolean; record: V }> {
    return withTx(deps.db, async (tx) => {
      const r = await write(tx);
      if (r.errors.length > 0) throw rowRefusal(r.errors[0]);
      const record = await read(tx);
      if (record === undefined) throw new DomainError('REFERENCE_INTERNAL', 500, 'A record just written could not be read back.');
      return { created: r.created > 0, record };
    });
  }

  // -------------------------------------------------------------------------------- banks

  app.post('/v1/banks', {
    config: { roles: writers },
    schema: {
      tags: ['reference'], security: [{ bearer: [] }],
      summary: 'Register a cooperating bank. Idempotent: the same code with the same name answers 200 with the bank; with another name, 409 BANK_CONFLICT (rename with PATCH).',
      body: { type: 'object', additionalProperties: false, required: ['code', 'name'], properties: { code: bank_code, name: name_text } },
      response: { 200: bank_schema, 201: bank_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const c = checkBank(rowOf(req.body));
    if (!c.ok) throw rowRefusal(c.error);
    const r = await createOne((tx) => importBanks(tx, [c.record], ctx(req)), (tx) => getBank(tx, c.record.code));
    return reply.status(r.created ? 201 : 200).send(bankJson(r.record));
  });

  app.get('/v1/banks', {
    config: { roles: readers },
    schema: {
      tags: ['reference'], summary: 'Banks by code, cursor-paginated.', security: [{ bearer: [] }],
      querystring: { type: 'object', additionalProperties: false, properties: { cursor: bank_code, limit: limit_query } },
      response: { 200: page(bank_schema), ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { cursor?: string; limit: number };
    const items = await listBanks(deps.db, q.cursor ?? null, q.limit);
    return { items: items.map(bankJson), next_cursor: nextCursor(items, q.limit, (b) => b.code) };
  });

  app.get('/v1/banks/:code', {
    config: { roles: readers },
    schema: {
      tags: ['reference'], summary: 'One bank.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['code'], properties: { code: bank_code } },
      response: { 200: bank_schema, ...error_responses },
    },
  }, async (req) => {
    const b = await getBank(deps.db, (req.params as { code: string }).code);
    if (!b) throw notFound('BANK_NOT_FOUND', 'No such bank.');
    return bankJson(b);
  });

  app.patch('/v1/banks/:code', {
    config: { roles: writers },
    schema: {
      tags: ['reference'], summary: 'Rename a bank (its code never changes). The change is kept as a reference event.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['code'], properties: { code: bank_code } },
      body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { name: name_text } },
      response: { 200: bank_schema, ...error_responses },
    },
  }, async (req) => {
    const r = await withTx(deps.db, (tx) => updateBank(tx, (req.params as { code: string }).code, req.body as { name?: string }, ctx(req)));
    return bankJson(r.record);
  });

  // ---------------------------------------------------------------------------- merchants

  const merchant_body = {
    type: 'object', additionalProperties: false, required: ['id', 'name', 'kind', 'acquiring_bank', 'settlement_account'],
    properties: {
      id: merchant_id, name: name_text, kind: { type: 'string', enum: [...merchant_kinds] },
      is_operator: { type: 'boolean', default: false, description: 'A transit operator (kind TRANSIT only): uploads tap batches.' },
      acquiring_bank: bank_code, settlement_account: { type: 'string', pattern: '^[0-9]{6,32}$' },
      status: { type: 'string', enum: [...merchant_statuses], default: 'ACTIVE' },
    },
  } as const;

  app.post('/v1/merchants', {
    config: { roles: writers },
    schema: {
      tags: ['reference'], security: [{ bearer: [] }],
      summary: 'Register a merchant (a transit operator is kind TRANSIT with is_operator). Idempotent: the same id and content answers 200; different content, 409 MERCHANT_CONFLICT. The acquiring bank must exist (422 BANK_NOT_FOUND). Nothing is posted: ledger accounts open with their first posting.',
      body: merchant_body,
      response: { 200: merchant_schema, 201: merchant_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const c = checkMerchant(rowOf(req.body));
    if (!c.ok) throw rowRefusal(c.error);
    const r = await createOne((tx) => importMerchants(tx, [c.record], ctx(req)), (tx) => getMerchant(tx, c.record.id));
    return reply.status(r.created ? 201 : 200).send(merchantJson(r.record));
  });

  app.get('/v1/merchants', {
    config: { roles: readers },
    schema: {
      tags: ['reference'], summary: 'Merchants by id, optionally filtered; cursor-paginated.', security: [{ bearer: [] }],
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          cursor: merchant_id, limit: limit_query, kind: { type: 'string', enum: [...merchant_kinds] }, is_operator: { type: 'boolean' },
          acquiring_bank: bank_code, status: { type: 'string', enum: [...merchant_statuses] },
        },
      },
      response: { 200: page(merchant_schema), ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { cursor?: string; limit: number; kind?: MerchantKind; is_operator?: boolean; acquiring_bank?: string; status?: MerchantStatus };
    const items = await listMerchants(deps.db, q.cursor ?? null, { kind: q.kind, isOperator: q.is_operator, acquiringBank: q.acquiring_bank, status: q.status }, q.limit);
    return { items: items.map(merchantJson), next_cursor: nextCursor(items, q.limit, (m) => m.id) };
  });

  app.get('/v1/merchants/:id', {
    config: { roles: readers },
    schema: {
      tags: ['reference'], summary: 'One merchant.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['id'], properties: { id: merchant_id } },
      response: { 200: merchant_schema, ...error_responses },
    },
  }, async (req) => {
    const m = await getMerchant(deps.db, (req.params as { id: string }).id);
    if (!m) throw notFound('MERCHANT_NOT_FOUND', 'No such merchant.');
    return merchantJson(m);
  });

  app.patch('/v1/merchants/:id', {
    config: { roles: writers },
    schema: {
      tags: ['reference'], security: [{ bearer: [] }],
      summary: 'Change a merchant\'s name, acquiring bank, settlement account or status (suspend, close). Kind and operator role never change. The change is kept as a reference event.',
      params: { type: 'object', required: ['id'], properties: { id: merchant_id } },
      body: {
        type: 'object', additionalProperties: false, minProperties: 1,
        properties: { name: name_text, acquiring_bank: bank_code, settlement_account: { type: 'string', pattern: '^[0-9]{6,32}$' }, status: { type: 'string', enum: [...merchant_statuses] } },
      },
      response: { 200: merchant_schema, ...error_responses },
    },
  }, async (req) => {
    const r = await withTx(deps.db, (tx) => updateMerchant(tx, (req.params as { id: string }).id, req.body as Record<string, unknown>, ctx(req)));
    return merchantJson(r.record);
  });

  // ------------------------------------------------------------------------ fee schedules

  app.post('/v1/merchants/:id/fee-schedules', {
    config: { roles: writers },
    schema: {
      tags: ['reference'], security: [{ bearer: [] }],
      summary: 'Add a fee schedule version from a business date: fee = clamp(round_half_up(amount × rate), min_fen, max_fen). Idempotent: the same date and terms answer 200; other terms for that date, 409 FEE_SCHEDULE_CONFLICT. A date not after the last closed cycle is 422 FEE_SCHEDULE_BACKDATED.',
      params: { type: 'object', required: ['id'], properties: { id: merchant_id } },
      body: {
        type: 'object', additionalProperties: false, required: ['effective_from', 'rate', 'min_fen', 'max_fen'],
        properties: { effective_from: { type: 'string', format: 'date' }, rate, min_fen: fen, max_fen: fen },
      },
      response: { 200: fee_schedule_schema, 201: fee_schedule_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const merchantId = (req.params as { id: string }).id;
    const c = checkFeeSchedule({ ...rowOf(req.body), merchant_id: merchantId });
    if (!c.ok) throw rowRefusal(c.error);
    try {
      const r = await createOne((tx) => importFeeSchedules(tx, [c.record], ctx(req)), (tx) => getFeeSchedule(tx, merchantId, c.record.effectiveFrom));
      return reply.status(r.created ? 201 : 200).send(feeJson(r.record));
    } catch (e) {
      // The merchant is this route's path: its absence is a 404, not a bad field.
      if (e instanceof DomainError && e.code === 'MERCHANT_NOT_FOUND') throw notFound('MERCHANT_NOT_FOUND', 'No such merchant.');
      throw e;
    }
  });

  app.get('/v1/merchants/:id/fee-schedules', {
    config: { roles: readers },
    schema: {
      tags: ['reference'], summary: 'A merchant\'s fee schedule versions, oldest first; cursor-paginated.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['id'], properties: { id: merchant_id } },
      querystring: { type: 'object', additionalProperties: false, properties: { cursor: { type: 'string', format: 'date' }, limit: limit_query } },
      response: { 200: page(fee_schedule_schema), ...error_responses },
    },
  }, async (req) => {
    const id = (req.params as { id: string }).id;
    const q = req.query as { cursor?: string; limit: number };
    if (!(await getMerchant(deps.db, id))) throw notFound('MERCHANT_NOT_FOUND', 'No such merchant.');
    const items = await listFeeSchedules(deps.db, id, q.cursor ?? null, q.limit);
    return { items: items.map(feeJson), next_cursor: nextCursor(items, q.limit, (f) => f.effectiveFrom) };
  });

  // ---------------------------------------------------------------------------- terminals

  const terminal_fields_doc = {
    id: '12 digits', merchant_id: 'registered merchant', station_id: 'optional, ≤ 64 chars', line_id: 'optional, ≤ 64 chars',
    latitude: 'optional decimal degrees', longitude: 'optional decimal degrees', status: 'ACTIVE (default) or RETIRED',
  };

  app.post('/v1/terminals', {
    config: { roles: writers },
    schema: {
      tags: ['reference'], security: [{ bearer: [] }],
      summary: 'Register a terminal (PSAM) of a merchant or transit operator. Idempotent: the same id and content answers 200; different content, 409 TERMINAL_CONFLICT (move or retire it with PATCH). The merchant must exist (422 MERCHANT_NOT_FOUND).',
      body: {
        type: 'object', additionalProperties: false, required: ['id', 'merchant_id'],
        properties: {
          id: terminal_id, merchant_id, station_id: short_text, line_id: short_text, latitude: coordinate, longitude: coordinate,
          status: { type: 'string', enum: [...terminal_statuses], default: 'ACTIVE' },
        },
      },
      response: { 200: terminal_schema, 201: terminal_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const c = checkTerminal(rowOf(req.body));
    if (!c.ok) throw rowRefusal(c.error);
    const r = await createOne((tx) => importTerminals(tx, [c.record], ctx(req)), (tx) => getTerminal(tx, c.record.id));
    return reply.status(r.created ? 201 : 200).send(terminalJson(r.record));
  });

  app.post('/v1/terminals/imports', {
    config: { roles: writers },
    bodyLimit: deps.bodyBytesMax,
    schema: {
      tags: ['reference'], security: [{ bearer: [] }],
      summary: `Register up to ${import_rows_max} terminals at once, all or nothing. Rows already registered with the same content count as existing; any refused row (format, unknown merchant, conflict, duplicate) refuses the import: 422 IMPORT_REFUSED listing each row's index and code.`,
      body: importBody(terminal_fields_doc),
      response: { 200: import_result_schema, ...error_responses },
    },
  }, async (req) => bulkImport(req, 'terminals'));

  app.get('/v1/terminals', {
    config: { roles: readers },
    schema: {
      tags: ['reference'], summary: 'Terminals by id, optionally of one merchant, line or status; cursor-paginated.', security: [{ bearer: [] }],
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { cursor: terminal_id, limit: limit_query, merchant_id, line_id: { type: 'string', maxLength: 64 }, status: { type: 'string', enum: [...terminal_statuses] } },
      },
      response: { 200: page(terminal_schema), ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { cursor?: string; limit: number; merchant_id?: string; line_id?: string; status?: TerminalStatus };
    const items = await listTerminals(deps.db, q.cursor ?? null, { merchantId: q.merchant_id, lineId: q.line_id, status: q.status }, q.limit);
    return { items: items.map(terminalJson), next_cursor: nextCursor(items, q.limit, (t) => t.id) };
  });

  app.get('/v1/terminals/:id', {
    config: { roles: readers },
    schema: {
      tags: ['reference'], summary: 'One terminal.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['id'], properties: { id: terminal_id } },
      response: { 200: terminal_schema, ...error_responses },
    },
  }, async (req) => {
    const t = await getTerminal(deps.db, (req.params as { id: string }).id);
    if (!t) throw notFound('TERMINAL_NOT_FOUND', 'No such terminal.');
    return terminalJson(t);
  });

  app.patch('/v1/terminals/:id', {
    config: { roles: writers },
    schema: {
      tags: ['reference'], security: [{ bearer: [] }],
      summary: 'Move a terminal to another station or line, change its coordinates (null clears), or retire it. Its merchant never changes. The change is kept as a reference event.',
      params: { type: 'object', required: ['id'], properties: { id: terminal_id } },
      body: {
        type: 'object', additionalProperties: false, minProperties: 1,
        properties: { station_id: short_text, line_id: short_text, latitude: coordinate, longitude: coordinate, status: { type: 'string', enum: [...terminal_statuses] } },
      },
      response: { 200: terminal_schema, ...error_responses },
    },
  }, async (req) => {
    const r = await withTx(deps.db, (tx) => updateTerminal(tx, (req.params as { id: string }).id, req.body as Record<string, unknown>, ctx(req)));
    return terminalJson(r.record);
  });

  // -------------------------------------------------------------------------------- cards

  const card_fields_doc = {
    card_no: '16..19 digits', issuing_bank: 'registered bank', form: 'PHYSICAL or ECARD', linked_card_no: 'an ECARD\'s physical card',
    person_id: 'optional whole number', daily_limit_fen: 'default 500000', issued_at: 'RFC 3339, default now',
    activated_at: 'RFC 3339: the card is ACTIVE from then', status: 'LOST_REPORTED, SUSPENDED or CANCELLED for a migrated card',
    status_since: 'RFC 3339, with status',
  };

  app.post('/v1/cards', {
    config: { roles: writers },
    logLevel: card_route_log_level,
    schema: {
      tags: ['reference'], security: [{ bearer: [] }],
      summary: 'Register a card with its history: ISSUED at issued_at (default now), ACTIVE at activated_at if given, and for a migrated card a later status. Idempotent: the same number and identity (bank, form, link, person, limit) answers 200 with the card as it is now; a different identity, 409 CARD_CONFLICT. The history is not compared: it moves on through status events.',
      body: {
        type: 'object', additionalProperties: false, required: ['card_no', 'issuing_bank', 'form'],
        properties: {
          card_no, issuing_bank: bank_code, form: { type: 'string', enum: [...card_forms] }, linked_card_no: { ...card_no, type: ['string', 'null'] },
          person_id: { type: ['string', 'null'], pattern: '^[0-9]{1,19}$' }, daily_limit_fen: fen, issued_at: instant, activated_at: instant,
          status: { type: 'string', enum: [...card_statuses] }, status_since: instant,
        },
      },
      response: { 200: card_schema, 201: card_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const c = checkCard(rowOf(req.body), deps.now());
    if (!c.ok) throw rowRefusal(c.error);
    const r = await createOne((tx) => importCards(tx, [c.record], ctx(req)), (tx) => getCard(tx, c.record.cardNo));
    return reply.status(r.created ? 201 : 200).send(cardJson(r.record));
  });

  app.post('/v1/cards/imports', {
    config: { roles: writers },
    bodyLimit: deps.bodyBytesMax,
    schema: {
      tags: ['reference'], security: [{ bearer: [] }],
      summary: `Register up to ${import_rows_max} cards at once, all or nothing (an e-card may link to a physical card of the same import). Rows already registered with the same identity count as existing; any refused row refuses the import: 422 IMPORT_REFUSED listing each row's index and code.`,
      body: importBody(card_fields_doc),
      response: { 200: import_result_schema, ...error_responses },
    },
  }, async (req) => bulkImport(req, 'cards'));

  app.get('/v1/cards', {
    config: { roles: readers },
    logLevel: card_route_log_level,
    schema: {
      tags: ['reference'], summary: 'Cards by number, optionally of one issuing bank, status or form; cursor-paginated.', security: [{ bearer: [] }],
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          cursor: card_no, limit: limit_query, issuing_bank: bank_code, status: { type: 'string', enum: [...card_statuses] },
          form: { type: 'string', enum: [...card_forms] },
        },
      },
      response: { 200: page(card_schema), ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { cursor?: string; limit: number; issuing_bank?: string; status?: CardStatus; form?: CardForm };
    const items = await listCards(deps.db, q.cursor ?? null, { issuingBank: q.issuing_bank, status: q.status, form: q.form }, q.limit);
    return { items: items.map(cardJson), next_cursor: nextCursor(items, q.limit, (c) => c.cardNo) };
  });

  app.get('/v1/cards/:cardNo', {
    config: { roles: readers },
    logLevel: card_route_log_level,
    schema: {
      tags: ['reference'], summary: 'One card and its current status.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['cardNo'], properties: { cardNo: card_no } },
      response: { 200: card_schema, ...error_responses },
    },
  }, async (req) => {
    const c = await getCard(deps.db, (req.params as { cardNo: string }).cardNo);
    if (!c) throw notFound('CARD_NOT_FOUND', 'No such card.');
    return cardJson(c);
  });

  const status_change_schema = {
    type: 'object', required: ['event', 'card'],
    properties: {
      event: status_event_schema,
      card: { type: 'object', required: ['status', 'status_since'], properties: { status: { type: 'string' }, status_since: { type: 'string' } } },
    },
  } as const;

  app.post('/v1/cards/:cardNo/status-events', {
    config: { roles: writers },
    logLevel: card_route_log_level,
    schema: {
      tags: ['reference'], security: [{ bearer: [] }],
      summary: 'Record a status change effective at an instant (default now; may be back-dated, e.g. the time a card was lost, never in the future). Judged against the status in force at that instant: 409 CARD_STATUS_TRANSITION_INVALID or CARD_CANCELLED, 422 CARD_STATUS_BEFORE_ISSUE. The same status at the same instant again answers 200 with the first event.',
      params: { type: 'object', required: ['cardNo'], properties: { cardNo: card_no } },
      body: {
        type: 'object', additionalProperties: false, required: ['status'],
        properties: {
          status: { type: 'string', enum: card_statuses.filter((s) => s !== 'ISSUED') }, effective_at: instant,
          reason: { type: 'string', minLength: 1, maxLength: reason_chars_max },
        },
      },
      response: { 200: status_change_schema, 201: status_change_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const b = req.body as { status: CardStatus; effective_at?: string; reason?: string };
    const now = deps.now();
    const effectiveAt = b.effective_at === undefined ? now : new Date(b.effective_at);
    if (Number.isNaN(effectiveAt.getTime())) throw unprocessable('CARD_TIME_INVALID', 'effective_at must be an RFC 3339 time.');
    if (effectiveAt.getTime() > now.getTime() + card_time_future_skew_ms) {
      throw unprocessable('CARD_STATUS_FUTURE', 'A status change cannot take effect in the future.');
    }
    const r = await withTx(deps.db, (tx) => recordCardStatus(tx, {
      cardNo: (req.params as { cardNo: string }).cardNo, status: b.status, effectiveAt, actor: ctx(req).actor, reason: b.reason ?? null, recordedAt: now,
    }));
    return reply.status(r.replayed ? 200 : 201).send({ event: eventJson(r.event), card: { status: r.card.status, status_since: iso(r.card.statusSince) } });
  });

  app.get('/v1/cards/:cardNo/status-events', {
    config: { roles: readers },
    logLevel: card_route_log_level,
    schema: {
      tags: ['reference'], summary: 'A card\'s status history in recording order; cursor-paginated.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['cardNo'], properties: { cardNo: card_no } },
      querystring: { type: 'object', additionalProperties: false, properties: { cursor: { type: 'string', pattern: '^[0-9]{1,19}$' }, limit: limit_query } },
      response: { 200: page(status_event_schema), ...error_responses },
    },
  }, async (req) => {
    const cardNo = (req.params as { cardNo: string }).cardNo;
    const q = req.query as { cursor?: string; limit: number };
    if (!(await getCard(deps.db, cardNo))) throw notFound('CARD_NOT_FOUND', 'No such card.');
    const items = await listCardStatusEvents(deps.db, cardNo, q.cursor ? BigInt(q.cursor) : null, q.limit);
    return { items: items.map(eventJson), next_cursor: nextCursor(items, q.limit, (e) => String(e.id)) };
  });

  // -------------------------------------------------------------------------- audit, keys

  app.get('/v1/reference-events', {
    config: { roles: readers },
    logLevel: card_route_log_level,
    schema: {
      tags: ['reference'], summary: 'Who created and changed one reference record, and when (fee schedules: entity_id "<merchant>@<YYYY-MM-DD>"); cursor-paginated.', security: [{ bearer: [] }],
      querystring: {
        type: 'object', additionalProperties: false, required: ['entity', 'entity_id'],
        properties: {
          entity: { type: 'string', enum: [...reference_entities] }, entity_id: { type: 'string', minLength: 1, maxLength: 100 },
          cursor: { type: 'string', pattern: '^[0-9]{1,19}$' }, limit: limit_query,
        },
      },
      response: { 200: page(reference_event_schema), ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { entity: ReferenceEntity; entity_id: string; cursor?: string; limit: number };
    const items = await referenceEvents(deps.db, q.entity, q.entity_id, q.cursor ? BigInt(q.cursor) : null, q.limit);
    return { items: items.map(referenceEventJson), next_cursor: nextCursor(items, q.limit, (e) => String(e.id)) };
  });

  app.get('/v1/keys', {
    config: { roles: readers },
    schema: {
      tags: ['reference'], summary: 'The TAC and QR master key versions the engine verifies with (versions only: key material never leaves the key store).', security: [{ bearer: [] }],
      response: {
        200: {
          type: 'object', required: ['tac', 'qr'],
          properties: {
            tac: { type: 'object', required: ['versions'], properties: { versions: { type: 'array', items: { type: 'integer' } } } },
            qr: {
              type: 'object', required: ['versions', 'current_version'],
              properties: { versions: { type: 'array', items: { type: 'integer' } }, current_version: { type: ['integer', 'null'], description: 'The version new QR codes are signed with.' } },
            },
          },
        },
        ...error_responses,
      },
    },
  }, async () => ({
    tac: { versions: deps.keyStore.tacKeyVersions() },
    qr: { versions: deps.keyStore.qrKeyVersions(), current_version: deps.keyStore.qrCurrentVersion() ?? null },
  }));

  async function bulkImport(req: FastifyRequest, kind: ReferenceKind) {
    const rows = (req.body as { items: RawRow[] }).items;
    const r = await withTx(deps.db, async (tx) => {
      const result = await importRows(tx, kind, rows, ctx(req));
      if (result.errors.length > 0) throw importRefusal(result, rows.length);
      return result;
    });
    return { rows: rows.length, created: r.created, existing: r.existing };
  }
}
