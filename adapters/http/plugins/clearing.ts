/**
 * Clearing routes: cycles with their positions and state history (finance, auditor, admin), an
 * admin-started clearing run, and programme funds (deposits by finance, disbursement batches by
 * the programme itself).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomainError, forbidden } from '../../../engine/errors.ts';
import { clearCycle } from '../../clearing/run.ts';
import { clearingSettings } from '../../clearing/settings.ts';
import { disburse, disbursement_records_max, recordDeposit, type DisbursementRecord } from '../../clearing/disbursements.ts';
import { plans } from '../../clearing/plans.ts';
import { maskCardNo } from '../../bankfiles/index.ts';
import { error_responses, type AppDeps } from '../context.ts';

const cycles_page_max = 100;
const cycle_id_schema = { type: 'string', pattern: '^CYC[0-9]{8}$' } as const;
const fen_positive = { type: 'string', pattern: '^[1-9][0-9]{0,15}$' } as const;
const position_schema = {
  type: 'object',
  properties: {
    bank_code: { type: 'string' }, line_count: { type: 'string' }, pay_fen: { type: 'string' }, receive_fen: { type: 'string' },
    fee_fen: { type: 'string' }, net_fen: { type: 'string' },
  },
} as const;
const cycle_schema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, business_date: { type: 'string' }, state: { type: 'string' },
    opened_at: { type: 'string' }, closed_at: { type: ['string', 'null'] },
  },
} as const;

function keyOf(req: FastifyRequest): string {
  return req.principal?.keyId ?? 'anonymous';
}

export async function clearingRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const readers = ['finance', 'auditor', 'admin'] as const;
  const settings = clearingSettings(deps.config);
  const ctx = { db: deps.db, ledger: deps.ledger, settings };

  app.get('/v1/clearing/cycles', {
    config: { roles: readers },
    schema: {
      tags: ['clearing'], summary: 'Clearing cycles, newest business date first; cursor = the last business date seen.', security: [{ bearer: [] }],
      querystring: { type: 'object', additionalProperties: false, properties: {
        cursor: { type: 'string', format: 'date' }, limit: { type: 'integer', minimum: 1, maximum: cycles_page_max, default: 30 } } },
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: cycle_schema }, next_cursor: { type: ['string', 'null'] } } }, ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { cursor?: string; limit: number };
    const rows = (await deps.db.query<{ id: string; business_date: string; state: string; opened_at: Date; closed_at: Date | null }>(plans.list_cycles, [q.cursor ?? null, q.limit])).rows;
    return {
      items: rows.map((r) => ({ ...r, opened_at: r.opened_at.toISOString(), closed_at: r.closed_at?.toISOString() ?? null })),
      next_cursor: rows.length === q.limit ? rows[rows.length - 1].business_date : null,
    };
  });

  app.get('/v1/clearing/cycles/:cycleId', {
    config: { roles: readers },
    schema: {
      tags: ['clearing'], summary: 'One cycle: state, bank positions, state events and the zero-sum summary.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['cycleId'], properties: { cycleId: cycle_id_schema } },
      response: { 200: { type: 'object', properties: {
        ...cycle_schema.properties,
        positions: { type: 'array', items: position_schema },
        events: { type: 'array', items: { type: 'object', properties: {
          from_state: { type: ['string', 'null'] }, to_state: { type: 'string' }, actor: { type: 'string' }, at: { type: 'string' },
          details: { type: ['object', 'null'], additionalProperties: true } } } },
        summary: { type: ['object', 'null'], properties: {
          transactions: { type: 'string' }, lines: { type: 'string' }, banks_net_fen: { type: 'string' }, centre_net_fen: { type: 'string' }, fees_fen: { type: 'string' } } },
      } }, ...error_responses },
    },
  }, async (req) => {
    const { cycleId } = req.params as { cycleId: string };
    const c = (await deps.db.query<{ id: string; business_date: string; state: string; opened_at: Date; closed_at: Date | null }>(
      `SELECT id, business_date, state, opened_at, closed_at FROM clearing_cycle WHERE id = $1`, [cycleId])).rows[0];
    if (c === undefined) throw new DomainError('CYCLE_NOT_FOUND', 404, 'No such clearing cycle.');
    const positions = (await deps.db.query<Record<string, bigint | string>>(plans.positions, [cycleId])).rows;
    const events = (await deps.db.query<{ from_state: string | null; to_state: string; actor: string; at: Date; details: unknown }>(plans.events, [cycleId])).rows;
    const s = (await deps.db.query<Record<string, bigint | Date | string>>(plans.summary, [cycleId])).rows[0];
    return {
      ...c, opened_at: c.opened_at.toISOString(), closed_at: c.closed_at?.toISOString() ?? null,
      positions: positions.map((p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, String(v)]))),
      events: events.map((e) => ({ ...e, at: e.at.toISOString() })),
      summary: s === undefined ? null : {
        transactions: String(s.transactions), lines: String(s.lines), banks_net_fen: String(s.banks_net_fen),
        centre_net_fen: String(s.centre_net_fen), fees_fen: String(s.fees_fen),
      },
    };
  });

  app.post('/v1/clearing/cycles/:cycleId/runs', {
    config: { roles: ['admin'] },
    schema: {
      tags: ['clearing'], summary: 'Run (or finish) the clearing of a cycle: close if due, clear, publish packages. Idempotent.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['cycleId'], properties: { cycleId: cycle_id_schema } },
      response: { 200: { type: 'object', properties: {
        cycle_id: { type: 'string' }, business_date: { type: 'string' }, state: { type: 'string' },
        steps: { type: 'array', items: { type: 'string' } }, transactions: { type: ['string', 'null'] }, packages: { type: ['integer', 'null'] } } }, ...error_responses },
    },
  }, async (req) => {
    const { cycleId } = req.params as { cycleId: string };
    const r = await clearCycle(ctx, cycleId, keyOf(req), deps.now());
    return { cycle_id: r.cycleId, business_date: r.businessDate, state: r.state, steps: r.steps,
      transactions: r.transactions === undefined ? null : String(r.transactions), packages: r.packages ?? null };
  });

  const programme_params = { type: 'object', required: ['programmeId'], properties: { programmeId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } } as const;

  app.post('/v1/programmes/:programmeId/deposits', {
    config: { roles: ['finance'] },
    schema: {
      tags: ['programmes'], summary: 'Record a programme deposit: the bank pays into the programme fund. Idempotent by deposit_id.', security: [{ bearer: [] }],
      params: programme_params,
      body: { type: 'object', additionalProperties: false, required: ['deposit_id', 'bank_code', 'amount_fen'], properties: {
        deposit_id: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' }, bank_code: { type: 'string', pattern: '^[0-9]{12}$' }, amount_fen: fen_positive } },
      response: { 201: { type: 'object', properties: {
        programme_id: { type: 'string' }, deposit_id: { type: 'string' }, bank_code: { type: 'string' }, amount_fen: { type: 'string' },
        cycle_id: { type: 'string' }, business_date: { type: 'string' }, replayed: { type: 'boolean' } } }, ...error_responses },
    },
  }, async (req, reply) => {
    const { programmeId } = req.params as { programmeId: string };
    const b = req.body as { deposit_id: string; bank_code: string; amount_fen: string };
    const bank = await deps.db.query(`SELECT 1 FROM bank WHERE code = $1`, [b.bank_code]);
    if (bank.rows.length === 0) throw new DomainError('BANK_NOT_FOUND', 422, 'No such bank.');
    const r = await recordDeposit({ db: deps.db, ledger: deps.ledger, cutoff: deps.config.clearingCutoff }, programmeId, b.deposit_id, b.bank_code, BigInt(b.amount_fen), keyOf(req), deps.now());
    return reply.status(201).send({ programme_id: programmeId, deposit_id: b.deposit_id, bank_code: r.bank_code, amount_fen: String(r.amount_fen),
      cycle_id: r.cycle_id, business_date: r.business_date, replayed: r.replayed });
  });

  app.post('/v1/programmes/:programmeId/disbursement-batches', {
    config: { roles: ['programme'] },
    bodyLimit: deps.bodyBytesMax,
    schema: {
      tags: ['programmes'], summary: 'Disburse a batch of benefits to cards (purse) or cardholders\' bank accounts; per-record results; idempotent by batch_id.', security: [{ bearer: [] }],
      params: programme_params,
      body: { type: 'object', additionalProperties: false, required: ['batch_id', 'records'], properties: {
        batch_id: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' },
        records: { type: 'array', minItems: 1, maxItems: disbursement_records_max, items: { type: 'object', additionalProperties: false,
          required: ['card_no', 'amount_fen', 'purpose', 'destination'], properties: {
            card_no: { type: 'string', pattern: '^[0-9]{16,19}$' }, amount_fen: { type: 'string', pattern: '^-?[0-9]{1,16}$' },
            purpose: { type: 'string', minLength: 1, maxLength: 200 }, destination: { type: 'string', enum: ['PURSE', 'BANK_ACCOUNT'] } } } } } },
      response: { 201: { type: 'object', properties: {
        batch_id: { type: 'string' }, cycle_id: { type: 'string' }, replayed: { type: 'boolean' }, accepted_count: { type: 'integer' }, accepted_fen: { type: 'string' },
        results: { type: 'array', items: { type: 'object', properties: {
          index: { type: 'integer' }, card_no: { type: 'string' }, outcome: { type: 'string' }, reason: { type: ['string', 'null'] } } } } } }, ...error_responses },
    },
  }, async (req, reply) => {
    const { programmeId } = req.params as { programmeId: string };
    if (req.principal?.scopeId !== programmeId) throw forbidden('FORBIDDEN_SCOPE', 'This key acts for another programme.');
    const b = req.body as { batch_id: string; records: { card_no: string; amount_fen: string; purpose: string; destination: 'PURSE' | 'BANK_ACCOUNT' }[] };
    const records: DisbursementRecord[] = b.records.map((r) => ({ cardNo: r.card_no, amountFen: BigInt(r.amount_fen), purpose: r.purpose, destination: r.destination }));
    const r = await disburse({ db: deps.db, ledger: deps.ledger, cutoff: deps.config.clearingCutoff }, programmeId, b.batch_id, records, keyOf(req), deps.now());
    if (r.replayed) reply.header('idempotent-replayed', 'true');
    return reply.status(201).send({
      batch_id: b.batch_id, cycle_id: r.cycleId, replayed: r.replayed, accepted_count: r.acceptedCount, accepted_fen: String(r.acceptedFen),
      results: r.results.map((x) => ({ index: x.index, card_no: maskCardNo(records[x.index].cardNo), outcome: x.outcome, reason: x.reason })),
    });
  });
}
