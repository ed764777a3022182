/**
 * Routes for transit tap batches (TRANSIT-BATCH.md): upload, receipts, risk signals.
 *
 * The upload body is `application/x-protobuf` or `application/json`; both reach the handler as raw
 * bytes (parsers registered in this plugin's scope only) and are decoded by the tap batch codec,
 * whose refusals carry the spec's stable codes (MALFORMED_BODY, TOO_MANY_RECORDS, ...), and whose
 * per-record format rules make a bad record MALFORMED rather than failing the whole batch. The
 * route's body schema therefore documents the wire format for the OpenAPI document but is not
 * used to validate it (a JSON-schema validator would refuse whole batches for one bad record, and
 * coerce types the codec must refuse).
 *
 * Receipts are served in the shape of the `TapReceipt` message: lowerCamelCase names, uint64
 * amounts as decimal strings (the proto3 JSON mapping operators' clients already use for the
 * batch), or as protobuf with `Accept: application/x-protobuf`. The staff-facing risk-signal
 * lists use snake_case like the rest of the API.
 */
import client from 'prom-client';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { badRequest, DomainError, forbidden, isDomainError, notFound } from '../../../engine/errors.ts';
import { parseCutoff } from '../../../engine/clearing/calendar.ts';
import { chainBreaks, type TapReceipt } from '../../../engine/ingest/index.ts';
import { maskCardNo } from '../../crypto/index.ts';
import { cardChain, receiptOf, sequenceGaps, uploadTapBatch, type BodyFormat, type TransitDeps } from '../../ingest/index.ts';
import { encodeTapReceiptProtobuf, tap_batch_protobuf_content_type } from '../../protobuf/tap-batch-codec.ts';
import { error_responses, type AppDeps } from '../context.ts';
import type { Principal, Role } from '../../auth/api-keys.ts';

const gaps_page_max = 1000;
const gaps_page_default = 200;
/** Chain breaks are found by scanning a card's taps; one page examines at most this many. */
const chain_taps_page_max = 5000;
const chain_taps_page_default = 1000;

const staff_readers: readonly Role[] = ['finance', 'auditor', 'admin'];
/** Staff who may see full card numbers; everyone else gets them masked (first 6, last 4). */
const full_card_readers: readonly Role[] = ['finance', 'admin'];

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

const id_pattern = '^[A-Za-z0-9_-]{1,64}$';
const fen_string = { type: 'string', pattern: '^[0-9]{1,20}$' } as const;

const receipt_schema = {
  type: 'object',
  description: 'The receipt of a batch (the TapReceipt message in its JSON form). A replay returns the first receipt unchanged.',
  required: ['operatorId', 'batchId', 'receivedAt', 'clearingCycleId', 'acceptedCount', 'acceptedAmountFen', 'rejectedCount', 'rejectedAmountFen', 'rejections'],
  properties: {
    operatorId: { type: 'string' },
    batchId: { type: 'string' },
    receivedAt: { type: 'string', format: 'date-time', description: 'When the engine received the batch (first upload).' },
    clearingCycleId: { type: 'string', description: 'The clearing cycle the accepted records belong to.' },
    acceptedCount: { type: 'integer' },
    acceptedAmountFen: fen_string,
    rejectedCount: { type: 'integer' },
    rejectedAmountFen: fen_string,
    rejections: {
      type: 'array',
      description: 'Only the rejected records, by index in the batch, ascending.',
      items: { type: 'object', required: ['index', 'reason'], properties: { index: { type: 'integer' }, reason: { type: 'string' } } },
    },
  },
} as const;

const tap_record_json_schema = {
  type: 'object',
  properties: {
    cardNo: { type: 'string', description: '16..19 digits' },
    cardCounter: { type: 'integer', minimum: 0, maximum: 4294967295 },
    txnType: { type: 'integer', description: '6 purse purchase, 9 compound (transit) purchase' },
    amountFen: { type: 'integer', minimum: 0, maximum: 4294967295 },
    balanceBeforeFen: { type: 'integer', minimum: 0, maximum: 4294967295 },
    terminalId: { type: 'string', description: '12 digits' },
    terminalSeq: { type: 'integer', minimum: 0, maximum: 4294967295 },
    localTime: { type: 'string', description: 'YYYYMMDDhhmmss, Asia/Shanghai' },
    keyVersion: { type: 'integer', minimum: 1, maximum: 255 },
    tac: { type: 'string', description: '8 uppercase hex characters' },
    lineId: { type: 'string' },
    stationId: { type: 'string' },
    entryStationId: { type: 'string' },
    entryLocalTime: { type: 'string' },
  },
} as const;

const tap_batch_json_schema = {
  type: 'object',
  description: 'TRANSIT-BATCH.md TapBatch in JSON: lowerCamelCase names, 64-bit numbers as numbers or decimal strings.',
  properties: {
    operatorId: { type: 'string' },
    batchId: { type: 'string', pattern: id_pattern },
    createdAt: { type: 'string', format: 'date-time' },
    recordCount: { type: 'integer' },
    totalAmountFen: { type: ['integer', 'string'] },
    records: { type: 'array', minItems: 1, maxItems: 50000, items: tap_record_json_schema },
  },
} as const;

const protobuf_body_schema = {
  type: 'string', format: 'binary', description: 'A onecard.transit.v1.TapBatch message (adapters/protobuf/tap_batch.proto).',
} as const;

const chain_tap_schema = {
  type: 'object',
  properties: {
    card_counter: { type: 'integer' }, txn_type: { type: 'integer' }, amount_fen: { type: 'string' },
    balance_before_fen: { type: 'string' }, local_time: { type: 'string' }, terminal_id: { type: 'string' },
    terminal_seq: { type: 'integer' }, operator_id: { type: 'string' }, batch_id: { type: 'string' }, index: { type: 'integer' },
  },
} as const;

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

interface TransitMetrics {
  taps: client.Counter<'outcome'>;
  batches: client.Counter<'result'>;
  refusals: client.Counter<'code'>;
  applySeconds: client.Histogram<never>;
  shortfalls: client.Counter<never>;
  clones: client.Counter<never>;
  raceRetries: client.Counter<never>;
}

/** Registered once per registry (an app may be built twice over the same dependencies in tests). */
function transitMetrics(registry: client.Registry): TransitMetrics {
  function once<T extends client.Metric<string>>(name: string, make: () => T): T {
    return (registry.getSingleMetric(name) as T | undefined) ?? make();
  }
  const registers = [registry];
  return {
    taps: once('onecard_transit_taps_total', () => new client.Counter({
      name: 'onecard_transit_taps_total', help: 'Tap records of applied batches, by outcome (ACCEPTED or the rejection reason).',
      labelNames: ['outcome'], registers })),
    batches: once('onecard_transit_batches_total', () => new client.Counter({
      name: 'onecard_transit_batches_total', help: 'Tap batch uploads by result: applied, replayed (same batch again), refused (4xx).',
      labelNames: ['result'], registers })),
    refusals: once('onecard_transit_batch_refusals_total', () => new client.Counter({
      name: 'onecard_transit_batch_refusals_total', help: 'Whole-batch refusals by code.', labelNames: ['code'], registers })),
    applySeconds: once('onecard_transit_batch_seconds', () => new client.Histogram({
      name: 'onecard_transit_batch_seconds', help: 'Time to decode, check and apply one batch (applied uploads only).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers })),
    shortfalls: once('onecard_transit_purse_shortfalls_total', () => new client.Counter({
      name: 'onecard_transit_purse_shortfalls_total', help: 'Accepted taps the shadow purse could not fully cover (posted partly from suspense).', registers })),
    clones: once('onecard_transit_clone_suspects_total', () => new client.Counter({
      name: 'onecard_transit_clone_suspects_total', help: 'Records refused as CLONE_SUSPECT (a risk case each).', registers })),
    raceRetries: once('onecard_transit_race_retries_total', () => new client.Counter({
      name: 'onecard_transit_race_retries_total', help: 'Batch transactions retried because a concurrent upload accepted one of their taps first.', registers })),
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function receiptJson(r: TapReceipt) {
  return {
    operatorId: r.operatorId,
    batchId: r.batchId,
    receivedAt: r.receivedAt,
    clearingCycleId: r.clearingCycleId,
    acceptedCount: r.acceptedCount,
    acceptedAmountFen: r.acceptedAmountFen.toString(),
    rejectedCount: r.rejectedCount,
    rejectedAmountFen: r.rejectedAmountFen.toString(),
    rejections: r.rejections,
  };
}

/** Protobuf only when asked for it (and preferred to JSON, if both are listed). */
function wantsProtobuf(req: FastifyRequest): boolean {
  const accept = req.headers.accept;
  if (typeof accept !== 'string') return false;
  const pb = accept.indexOf(tap_batch_protobuf_content_type);
  if (pb < 0) return false;
  const json = accept.indexOf('application/json');
  return json < 0 || pb < json;
}

function sendReceipt(req: FastifyRequest, reply: FastifyReply, receipt: TapReceipt) {
  if (wantsProtobuf(req)) {
    return reply.type(tap_batch_protobuf_content_type).send(encodeTapReceiptProtobuf(receipt));
  }
  return reply.type('application/json; charset=utf-8').send(receiptJson(receipt));
}

function principalOf(req: FastifyRequest): Principal {
  // The auth plugin sets it on every route that declares roles.
  if (req.principal === null) throw new DomainError('UNAUTHENTICATED', 401, 'A valid credential is required.');
  return req.principal;
}

function batchNotFound(): DomainError {
  return notFound('BATCH_NOT_FOUND', 'No batch with this id was received from this operator.');
}

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

export async function transitRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const transit: TransitDeps = {
    db: deps.db,
    ledger: deps.ledger,
    keyStore: deps.keyStore,
    now: deps.now,
    cutoffMinutes: parseCutoff(deps.config.clearingCutoff),
    limits: { amountFenMax: deps.config.tapAmountFenMax, ageDaysMax: deps.config.tapAgeDaysMax },
    bodyBytesMax: deps.bodyBytesMax,
  };
  const metrics = transitMetrics(deps.metrics.registry);

  // Raw bytes for both formats, in this plugin's scope only: the codec decodes (and bounds) them.
  const raw = (_req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: Buffer) => void) => done(null, body);
  // Only the two formats of the spec: anything else (text/plain included) is 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(tap_batch_protobuf_content_type, { parseAs: 'buffer', bodyLimit: deps.bodyBytesMax }, raw);
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: deps.bodyBytesMax }, raw);

  app.post('/v1/transit/batches', {
    config: { roles: ['operator'] },
    bodyLimit: deps.bodyBytesMax,
    // The codec is the validator (see the header comment); the schema is the documentation.
    validatorCompiler: () => () => true,
    schema: {
      tags: ['transit'],
      summary: 'Upload a batch of offline taps; returns the receipt (idempotent by operator and batch_id).',
      description: 'Whole-batch refusals (4xx) write nothing. Each record is ACCEPTED or REJECTED with one reason code. ' +
        'A replay of the same batch returns the first receipt (header idempotent-replayed: true); the same batch_id with other content is 409 BATCH_ID_CONFLICT.',
      security: [{ bearer: [] }],
      body: { content: { [tap_batch_protobuf_content_type]: { schema: protobuf_body_schema }, 'application/json': { schema: tap_batch_json_schema } } },
      response: {
        200: { content: { 'application/json': { schema: receipt_schema }, [tap_batch_protobuf_content_type]: { schema: { type: 'string', format: 'binary' } } } },
        ...error_responses,
      },
    },
  }, async (req, reply) => {
    const p = principalOf(req);
    const format: BodyFormat = String(req.headers['content-type'] ?? '').startsWith(tap_batch_protobuf_content_type) ? 'PROTOBUF' : 'JSON';
    const body = req.body;
    if (!Buffer.isBuffer(body)) throw badRequest('MALFORMED_BODY', 'The batch body cannot be read: no body was sent.');
    const started = process.hrtime.bigint();
    let result;
    try {
      result = await uploadTapBatch(transit, { operatorId: p.scopeId ?? '', keyId: p.keyId }, body, format);
    } catch (e) {
      if (isDomainError(e) && e.status < 500) {
        metrics.batches.inc({ result: 'refused' });
        metrics.refusals.inc({ code: e.code });
      }
      throw e;
    }
    if (result.replayed) {
      metrics.batches.inc({ result: 'replayed' });
    } else if (result.stats !== null) {
      metrics.batches.inc({ result: 'applied' });
      metrics.applySeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
      for (const [outcome, count] of result.stats.outcomes) metrics.taps.inc({ outcome }, count);
      if (result.stats.shortfalls > 0) metrics.shortfalls.inc(result.stats.shortfalls);
      if (result.stats.clones > 0) metrics.clones.inc(result.stats.clones);
      if (result.stats.attempts > 1) metrics.raceRetries.inc(result.stats.attempts - 1);
    }
    reply.header('idempotent-replayed', String(result.replayed));
    return sendReceipt(req, reply, result.receipt);
  });

  const receipt_response = {
    200: { content: { 'application/json': { schema: receipt_schema }, [tap_batch_protobuf_content_type]: { schema: { type: 'string', format: 'binary' } } } },
    ...error_responses,
  };

  app.get('/v1/transit/batches/:batchId', {
    config: { roles: ['operator', ...staff_readers] },
    schema: {
      tags: ['transit'],
      summary: 'The receipt of a batch: an operator reads its own; finance, auditors and admins name the operator.',
      security: [{ bearer: [] }],
      params: { type: 'object', required: ['batchId'], properties: { batchId: { type: 'string', pattern: id_pattern } } },
      querystring: { type: 'object', additionalProperties: false, properties: { operator_id: { type: 'string', pattern: id_pattern } } },
      response: receipt_response,
    },
  }, async (req, reply) => {
    const p = principalOf(req);
    const { batchId } = req.params as { batchId: string };
    const { operator_id } = req.query as { operator_id?: string };
    let operatorId: string;
    if (p.role === 'operator') {
      // Another operator's batch is "not found", whichever operator_id is asked for.
      if (operator_id !== undefined && operator_id !== p.scopeId) throw batchNotFound();
      operatorId = p.scopeId ?? '';
    } else {
      if (operator_id === undefined) {
        throw badRequest('OPERATOR_ID_REQUIRED', 'Name the operator: ?operator_id=..., or use /v1/transit/operators/{operatorId}/batches/{batchId}.');
      }
      operatorId = operator_id;
    }
    const receipt = await receiptOf(deps.db, operatorId, batchId);
    if (receipt === null) throw batchNotFound();
    return sendReceipt(req, reply, receipt);
  });

  app.get('/v1/transit/operators/:operatorId/batches/:batchId', {
    config: { roles: ['operator', ...staff_readers] },
    schema: {
      tags: ['transit'],
      summary: 'The receipt of one operator\'s batch (an operator may read only its own).',
      security: [{ bearer: [] }],
      params: { type: 'object', required: ['operatorId', 'batchId'], properties: {
        operatorId: { type: 'string', pattern: id_pattern }, batchId: { type: 'string', pattern: id_pattern } } },
      response: receipt_response,
    },
  }, async (req, reply) => {
    const p = principalOf(req);
    const { operatorId, batchId } = req.params as { operatorId: string; batchId: string };
    if (p.role === 'operator' && p.scopeId !== operatorId) throw batchNotFound();
    const receipt = await receiptOf(deps.db, operatorId, batchId);
    if (receipt === null) throw batchNotFound();
    return sendReceipt(req, reply, receipt);
  });

  app.get('/v1/transit/operators/:operatorId/sequence-gaps', {
    config: { roles: ['operator', ...staff_readers] },
    schema: {
      tags: ['transit'],
      summary: 'Open terminal sequence gaps of an operator: missing terminal_seq numbers between accepted records, by terminal.',
      security: [{ bearer: [] }],
      params: { type: 'object', required: ['operatorId'], properties: { operatorId: { type: 'string', pattern: id_pattern } } },
      querystring: { type: 'object', additionalProperties: false, properties: {
        cursor: { type: 'string', pattern: '^[0-9]{12}:[0-9]{1,10}$' },
        limit: { type: 'integer', minimum: 1, maximum: gaps_page_max, default: gaps_page_default } } },
      response: {
        200: { type: 'object', required: ['items', 'next_cursor'], properties: {
          items: { type: 'array', items: { type: 'object', properties: {
            terminal_id: { type: 'string' }, from_seq: { type: 'integer' }, to_seq: { type: 'integer' },
            missing_count: { type: 'integer' }, opened_at: { type: 'string', format: 'date-time' } } } },
          next_cursor: { type: ['string', 'null'] } } },
        ...error_responses,
      },
    },
  }, async (req) => {
    const p = principalOf(req);
    const { operatorId } = req.params as { operatorId: string };
    const q = req.query as { cursor?: string; limit: number };
    if (p.role === 'operator' && p.scopeId !== operatorId) {
      throw forbidden('FORBIDDEN_SCOPE', 'An operator may read only its own sequence gaps.');
    }
    let after: { terminalId: string; fromSeq: number } | null = null;
    if (q.cursor !== undefined) {
      const [terminalId, seq] = q.cursor.split(':');
      after = { terminalId, fromSeq: Number(seq) };
    }
    const gaps = await sequenceGaps(deps.db, operatorId, after, q.limit);
    const items = gaps.map((g) => ({
      terminal_id: g.terminalId, from_seq: g.fromSeq, to_seq: g.toSeq, missing_count: g.toSeq - g.fromSeq + 1, opened_at: g.openedAt.toISOString(),
    }));
    const last = gaps[gaps.length - 1];
    return { items, next_cursor: gaps.length === q.limit ? `${last.terminalId}:${last.fromSeq}` : null };
  });

  app.get('/v1/transit/balance-chain-breaks', {
    config: { roles: staff_readers },
    schema: {
      tags: ['transit'],
      summary: 'Purse balance chain breaks of one card: consecutive taps (card_counter order) whose balances do not chain, with no purse load between.',
      description: 'Scans up to `limit` taps per page from the cursor on; `next_cursor` continues the scan. Card numbers are shown in full to finance and admins, masked to others.',
      security: [{ bearer: [] }],
      querystring: { type: 'object', additionalProperties: false, required: ['card_no'], properties: {
        card_no: { type: 'string', pattern: '^[0-9]{16,19}$' },
        cursor: { type: 'string', pattern: '^[0-9]{1,10}:[0-9]{1,3}$' },
        limit: { type: 'integer', minimum: 2, maximum: chain_taps_page_max, default: chain_taps_page_default } } },
      response: {
        200: { type: 'object', required: ['card_no', 'items', 'next_cursor'], properties: {
          card_no: { type: 'string' },
          taps_examined: { type: 'integer' },
          items: { type: 'array', items: { type: 'object', properties: {
            previous: chain_tap_schema, next: chain_tap_schema, expected_balance_before_fen: { type: 'string' },
            difference_fen: { type: 'string' } } } },
          next_cursor: { type: ['string', 'null'] } } },
        ...error_responses,
      },
    },
  }, async (req) => {
    const p = principalOf(req);
    const q = req.query as { card_no: string; cursor?: string; limit: number };
    let from = { cardCounter: 0, txnType: 0 };
    if (q.cursor !== undefined) {
      const [counter, type] = q.cursor.split(':');
      from = { cardCounter: Number(counter), txnType: Number(type) };
    }
    const taps = await cardChain(deps.db, q.card_no, from, q.limit);
    // The first tap of a page only links to the previous page (it was that page's last tap).
    const breaks = chainBreaks(taps, (_prev, next) => next.loadBefore);
    const tapJson = (t: (typeof taps)[number]) => ({
      card_counter: t.cardCounter, txn_type: t.txnType, amount_fen: t.amountFen.toString(), balance_before_fen: t.balanceBeforeFen.toString(),
      local_time: t.localTime, terminal_id: t.terminalId, terminal_seq: t.terminalSeq, operator_id: t.operatorId, batch_id: t.batchId, index: t.index,
    });
    const last = taps[taps.length - 1];
    return {
      card_no: full_card_readers.includes(p.role) ? q.card_no : maskCardNo(q.card_no),
      taps_examined: taps.length,
      items: breaks.map((b) => ({
        previous: tapJson(b.previous), next: tapJson(b.next), expected_balance_before_fen: b.expectedBalanceBeforeFen.toString(),
        difference_fen: (b.next.balanceBeforeFen - b.expectedBalanceBeforeFen).toString(),
      })),
      next_cursor: taps.length === q.limit ? `${last.cardCounter}:${last.txnType}` : null,
    };
  });
}
