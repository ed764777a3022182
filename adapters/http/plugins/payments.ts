/**
 * Routes for online payments: purse loads (banks), e-card QR payments with their medical and
 * utility variants, refunds (merchants), and a payment's view (its merchant, finance, auditors).
 * The work is in adapters/payments (pipeline) and engine/payments (rules); this file maps HTTP
 * to it. Card numbers leave only masked.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parseCutoff } from '../../../engine/clearing/calendar.ts';
import { DomainError } from '../../../engine/errors.ts';
import { paymentStatus, type QrPaymentAsk } from '../../../engine/payments/index.ts';
import { maskCardNo } from '../../crypto/index.ts';
import { paymentBatchObserver } from '../../metrics.ts';
import {
  SimulatedBank,
  bank_auth_timeout_ms,
  bank_reversal_timeout_ms,
  createPaymentsContext,
  getPayment,
  loadPurse,
  payByQr,
  refundPayment,
  type Actor,
  type BankAuthorizer,
  type PaymentRecord,
  type PaymentsContext,
  type PurseLoadRecord,
  type RefundRecord,
} from '../../payments/index.ts';
import { error_responses, error_schema, type AppDeps } from '../context.ts';

/**
 * What the payment routes take beside AppDeps. Unset, the bank is the simulated one over the
 * engine's database, with the standard timeout; tests and bank-link deployments set them.
 */
export interface PaymentDeps {
  bankAuthorizer?: BankAuthorizer;
  bankAuthTimeoutMs?: number;
  bankReversalTimeoutMs?: number;
}

const fen_string = { type: 'string', pattern: '^[1-9][0-9]{0,15}$', description: 'Integer fen, as a string.' } as const;
const fen_or_zero_string = { type: 'string', pattern: '^(0|[1-9][0-9]{0,15})$' } as const;
const key_string = { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' } as const;
const card_no_param = { type: 'string', pattern: '^[0-9]{16,19}$' } as const;
const payment_id_param = { type: 'string', pattern: '^pay_[0-9a-f]{24}$' } as const;
/** An SSC1 code is 52 characters; a little room so a wrong one is refused as QR_MALFORMED, not by size. */
const qr_code_chars_max = 200;

const payment_properties = {
  id: { type: 'string' }, status: { type: 'string', enum: ['SUCCEEDED', 'PARTIALLY_REFUNDED', 'REFUNDED'] },
  merchant_id: { type: 'string' }, order_id: { type: 'string' }, merchant_kind: { type: 'string' },
  card_no: { type: 'string', description: 'Masked: first 6 and last 4 digits.' },
  amount_fen: { type: 'string' }, medical_fen: { type: 'string' }, self_pay_fen: { type: 'string' },
  bank_auth_code: { type: ['string', 'null'] }, terminal_id: { type: ['string', 'null'] },
  medical: { type: ['object', 'null'], properties: { visit_no: { type: ['string', 'null'] } } },
  utility: { type: ['object', 'null'], properties: { customer_no: { type: 'string' }, bill_id: { type: 'string' } } },
  cycle_id: { type: 'string' }, business_date: { type: 'string' }, created_at: { type: 'string' },
} as const;

const refund_schema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, refund_id: { type: 'string' }, payment_id: { type: 'string' },
    amount_fen: { type: 'string' }, medical_fen: { type: 'string' }, self_pay_fen: { type: 'string' },
    refunded_total_fen: { type: 'string', description: "The payment's refunded total after this refund." },
    payment_status: { type: 'string' }, cycle_id: { type: 'string' }, business_date: { type: 'string' }, created_at: { type: 'string' },
  },
} as const;

const payment_created_schema = { type: 'object', properties: payment_properties } as const;
const payment_view_schema = {
  type: 'object',
  properties: { ...payment_properties, refunded_fen: { type: 'string' }, refunds: { type: 'array', items: refund_schema } },
} as const;

const load_schema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, status: { type: 'string' }, bank_reference: { type: 'string' }, card_no: { type: 'string' },
    amount_fen: { type: 'string' }, purse_balance_fen: { type: 'string', description: 'The purse balance right after this load.' },
    cycle_id: { type: 'string' }, business_date: { type: 'string' }, created_at: { type: 'string' },
  },
} as const;

function paymentJson(p: PaymentRecord, status: string) {
  return {
    id: p.id, status, merchant_id: p.merchantId, order_id: p.orderId, merchant_kind: p.merchantKind, card_no: maskCardNo(p.cardNo),
    amount_fen: String(p.amountFen), medical_fen: String(p.medicalFen), self_pay_fen: String(p.selfPayFen),
    bank_auth_code: p.bankAuthCode, terminal_id: p.terminalId,
    medical: p.merchantKind === 'MEDICAL' && (p.medicalFen > 0n || p.medicalVisitNo !== null) ? { visit_no: p.medicalVisitNo } : null,
    utility: p.billId === null ? null : { customer_no: p.customerNo as string, bill_id: p.billId },
    cycle_id: p.cycleId, business_date: p.businessDate, created_at: p.createdAt.toISOString(),
  };
}

function refundJson(r: RefundRecord, paymentAmountFen: bigint) {
  return {
    id: r.id, refund_id: r.refundId, payment_id: r.paymentId, amount_fen: String(r.amountFen), medical_fen: String(r.medicalFen),
    self_pay_fen: String(r.selfPayFen), refunded_total_fen: String(r.refundedAfterFen),
    payment_status: paymentStatus(paymentAmountFen, r.refundedAfterFen), cycle_id: r.cycleId, business_date: r.businessDate,
    created_at: r.createdAt.toISOString(),
  };
}

function loadJson(l: PurseLoadRecord) {
  return {
    id: l.id, status: 'POSTED', bank_reference: l.bankReference, card_no: maskCardNo(l.cardNo), amount_fen: String(l.amountFen),
    purse_balance_fen: String(l.purseBalanceAfterFen), cycle_id: l.cycleId, business_date: l.businessDate, created_at: l.createdAt.toISOString(),
  };
}

/** The scoped caller (bank or merchant key); the auth plugin has already checked the role. */
function actorOf(req: FastifyRequest): Actor {
  const p = req.principal;
  if (p === null || p.scopeId === null) throw new DomainError('FORBIDDEN_SCOPE', 403, 'This route needs a key that acts for one bank or merchant.');
  return { keyId: p.keyId, scopeId: p.scopeId };
}

/** A replay answers exactly as the first time did, and says so in a header. */
function sendFirstAnswer(reply: FastifyReply, replayed: boolean, body: unknown) {
  if (replayed) reply.header('idempotent-replayed', 'true');
  return reply.status(201).send(body);
}

export async function paymentRoutes(app: FastifyInstance, deps: AppDeps & PaymentDeps): Promise<void> {
  const ctx: PaymentsContext = createPaymentsContext({
    db: deps.db,
    ledger: deps.ledger,
    keyStore: deps.keyStore,
    now: deps.now,
    cutoffMinutes: parseCutoff(deps.config.clearingCutoff),
    authorizer: deps.bankAuthorizer ?? new SimulatedBank(deps.db, { now: deps.now, observeBatch: paymentBatchObserver(deps.metrics, 'bank') }),
    bankAuthTimeoutMs: deps.bankAuthTimeoutMs ?? bank_auth_timeout_ms,
    bankReversalTimeoutMs: deps.bankReversalTimeoutMs ?? bank_reversal_timeout_ms,
    log: app.log,
    observeBatch: { facts: paymentBatchObserver(deps.metrics, 'facts'), post: paymentBatchObserver(deps.metrics, 'post') },
  });

  app.post('/v1/cards/:cardNo/purse-loads', {
    config: { roles: ['bank'] },
    schema: {
      tags: ['payments'], summary: "Load a card's e-purse from the issuing bank; idempotent by the bank's reference.", security: [{ bearer: [] }],
      params: { type: 'object', additionalProperties: false, required: ['cardNo'], properties: { cardNo: card_no_param } },
      body: { type: 'object', additionalProperties: false, required: ['bank_reference', 'amount_fen'], properties: {
        bank_reference: { ...key_string, description: "The bank's own id of this load: a retry with it is answered as the first time." },
        amount_fen: fen_string,
      } },
      response: { 201: load_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const { cardNo } = req.params as { cardNo: string };
    const body = req.body as { bank_reference: string; amount_fen: string };
    const r = await loadPurse(ctx, actorOf(req), cardNo, { bankReference: body.bank_reference, amountFen: BigInt(body.amount_fen) });
    return sendFirstAnswer(reply, r.replayed, loadJson(r.load));
  });

  app.post('/v1/payments/qr', {
    config: { roles: ['merchant'] },
    schema: {
      tags: ['payments'], summary: 'Take an e-card QR payment (plain, medical or utility); idempotent by order id.', security: [{ bearer: [] }],
      body: { type: 'object', additionalProperties: false, required: ['qr_code', 'amount_fen', 'order_id'], properties: {
        qr_code: { type: 'string', minLength: 1, maxLength: qr_code_chars_max, description: 'The SSC1 code the scanner read.' },
        amount_fen: fen_string,
        order_id: { ...key_string, description: "The merchant's order id: a retry with it is answered as the first time." },
        terminal_id: { type: 'string', pattern: '^[0-9]{12}$' },
        medical: { type: 'object', additionalProperties: false, description: "Draw on the card's medical personal account first (medical merchants only).", properties: {
          personal_account_fen_max: { ...fen_or_zero_string, description: 'At most this much from the medical account (default: as much as it holds).' },
          visit_no: key_string,
        } },
        utility: { type: 'object', additionalProperties: false, required: ['customer_no', 'bill_id'], properties: {
          customer_no: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,32}$' },
          bill_id: key_string,
        } },
      } },
      response: { 201: payment_created_schema, 402: error_schema, 504: error_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const body = req.body as {
      qr_code: string; amount_fen: string; order_id: string; terminal_id?: string;
      medical?: { personal_account_fen_max?: string; visit_no?: string }; utility?: { customer_no: string; bill_id: string };
    };
    const ask: QrPaymentAsk = {
      amountFen: BigInt(body.amount_fen),
      terminalId: body.terminal_id ?? null,
      medical: body.medical === undefined ? null : {
        personalAccountFenMax: body.medical.personal_account_fen_max === undefined ? null : BigInt(body.medical.personal_account_fen_max),
        visitNo: body.medical.visit_no ?? null,
      },
      utility: body.utility === undefined ? null : { customerNo: body.utility.customer_no, billId: body.utility.bill_id },
    };
    const r = await payByQr(ctx, actorOf(req), { qrCode: body.qr_code, orderId: body.order_id, ask });
    return sendFirstAnswer(reply, r.replayed, paymentJson(r.payment, 'SUCCEEDED'));
  });

  app.get('/v1/payments/:paymentId', {
    config: { roles: ['merchant', 'finance', 'auditor'] },
    schema: {
      tags: ['payments'], summary: 'A payment with its refunds (merchants see only their own).', security: [{ bearer: [] }],
      params: { type: 'object', additionalProperties: false, required: ['paymentId'], properties: { paymentId: payment_id_param } },
      response: { 200: payment_view_schema, ...error_responses },
    },
  }, async (req) => {
    const { paymentId } = req.params as { paymentId: string };
    const scope = req.principal?.role === 'merchant' ? actorOf(req).scopeId : null;
    const v = await getPayment(deps.db, paymentId, scope);
    return {
      ...paymentJson(v.payment, paymentStatus(v.payment.amountFen, v.refundedFen)),
      refunded_fen: String(v.refundedFen),
      refunds: v.refunds.map((r) => refundJson(r, v.payment.amountFen)),
    };
  });

  app.post('/v1/payments/:paymentId/refunds', {
    config: { roles: ['merchant'] },
    schema: {
      tags: ['payments'], summary: 'Refund a payment in full or in part; idempotent by refund id.', security: [{ bearer: [] }],
      params: { type: 'object', additionalProperties: false, required: ['paymentId'], properties: { paymentId: payment_id_param } },
      body: { type: 'object', additionalProperties: false, required: ['refund_id', 'amount_fen'], properties: {
        refund_id: { ...key_string, description: "The merchant's refund id: a retry with it is answered as the first time." },
        amount_fen: fen_string,
      } },
      response: { 201: refund_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const { paymentId } = req.params as { paymentId: string };
    const body = req.body as { refund_id: string; amount_fen: string };
    const r = await refundPayment(ctx, actorOf(req), paymentId, { refundId: body.refund_id, amountFen: BigInt(body.amount_fen) });
    return sendFirstAnswer(reply, r.replayed, refundJson(r.refund, r.paymentAmountFen));
  });
}
