/**
 * Where an online payment becomes postings. Each call is idempotent by the caller's key; the
 * bank is asked outside any transaction, so no database lock or connection is held across a
 * network call.
 *
 * A QR payment, in order:
 *   1. verify the pay code (signature, time window) in memory;
 *   2. read every fact the decision needs (merchant, terminal, an earlier payment under this
 *      order id, card, an earlier use of the code, the bill, the medical account's balance) and
 *      decide with the pure rules of engine/payments;
 *   3. authorize the self-pay part at the cardholder's bank, bounded by `bank_auth_timeout_ms`;
 *   4. in one transaction: re-check the card, claim the code (its primary key is the single-use
 *      rule), record the payment (its unique order id is the idempotency rule, the partial unique
 *      bill index the bill-once rule) and post the entry. A payment that loses a race there is
 *      not posted: its authorization is reversed and it is decided again from fresh facts (a
 *      concurrent identical order then reads as a replay, a concurrent use of the code as
 *      QR_REPLAYED, a drained medical account as a new split).
 * Steps 2 and 4 are shared by the payments in flight together (see batcher.ts): one statement
 * reads the facts of all of them, one transaction claims and posts all of them, sent as one
 * prepared statement when the node knows the open cycle and the accounts' ids
 * (claimAndPostInOneRoundTrip).
 * That is how a 2-core machine takes 1,000 payments a second; a payment alone still goes
 * through at once.
 *
 * What is kept when the bank does not answer in time: nothing of the payment (no code use, no
 * payment, no entry: the code can be presented again), and a reversal request for the attempt,
 * sent to the bank at once and kept until the bank acknowledges it, because a request that timed
 * out on our side may still have been approved on the bank's side.
 *
 * Not covered: the engine stopping between the bank's approval and the commit leaves an approval
 * without a payment and without a reversal request. The bank's approvals that never appear in a
 * settlement package are what its reconciliation finds (the attempt id is in both books).
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { DomainError, conflict, isDomainError, notFound } from '../../engine/errors.ts';
import {
  checkPurseLoad,
  idempotencyConflict,
  payment_error,
  planQrPayment,
  planRefund,
  qrRequestCanonical,
  refunds_per_payment_max,
} from '../../engine/payments/index.ts';
import type { CardStatus, MerchantKind, MerchantStatus, QrPaymentAsk, QrPaymentPlan, TerminalStatus } from '../../engine/payments/index.ts';
import type { EntryInput, Ledger, LineInput } from '../../ledger/index.ts';
import { parseAndVerifyQrCode, type KeyStore, type VerifiedQrCode } from '../crypto/index.ts';
import { currentOpenCycle, cycle_lock_key, openCycleForWrite } from '../postgres/cycles.ts';
import { withTx, type Db } from '../postgres/db.ts';
import { deadline, untilAborted, type BankAuthRequest, type BankAuthorizer } from './bank-auth.ts';
import { Batcher, type BatchObserver, type BatcherLimits, type Settled } from './batcher.ts';
import { claimValues, plans, type ClaimColumns } from './plans.ts';

/** How long a payment waits for the cardholder's bank before answering BANK_TIMEOUT. */
export const bank_auth_timeout_ms = 2_000;
/** How long a reversal waits for the bank; an unanswered one stays pending and is retried. */
export const bank_reversal_timeout_ms = 2_000;
/** A QR payment is decided at most twice: once, and once more from fresh facts after a race. */
const qr_attempts_max = 2;
export const pending_reversals_batch_max = 100;
/** Opaque ids: a type prefix and 96 random bits. */
const id_random_bytes = 12;

export interface PaymentsLog {
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface PaymentsOptions {
  db: Db;
  ledger: Ledger;
  keyStore: KeyStore;
  now: () => Date;
  /** The clearing cutoff, minutes after local midnight (for opening the first cycle). */
  cutoffMinutes: number;
  authorizer: BankAuthorizer;
  bankAuthTimeoutMs: number;
  bankReversalTimeoutMs: number;
  log: PaymentsLog;
  /** Told of each batch of the facts and post stages (for metrics). */
  observeBatch?: { facts?: BatchObserver; post?: BatchObserver };
}

/** The options and the long-lived batchers of one engine node's payment routes. */
export interface PaymentsContext extends PaymentsOptions {
  readonly qrFacts: Batcher<QrFactsKey, QrFactsRow>;
  readonly qrPosts: Batcher<QrPost, PaymentRecord>;
  /**
   * The open clearing cycle as this node's last claim found it (null before the first): a batch
   * expected to land in it is posted in one round trip (see claimAndPost).
   */
  readonly postingCycle: { current: { id: string; businessDate: string } | null };
}

/**
 * Concurrent QR payments share their database work: the facts of those that arrive together
 * are read by one statement, and their postings written by one transaction. Bounded so one
 * batch's arrays, locks and connections stay small, and so a flood is refused, not queued: a
 * queue holds about two seconds of work at 1,000 payments a second, about as long as a scanner
 * waits for an answer (bank_auth_timeout_ms); a payment that would wait longer is answered 503
 * ENGINE_BUSY at once (nothing done, retry) instead of answering after its scanner gave up.
 */
export const payment_queue_items_max = 2_000;
const facts_batch_limits: BatcherLimits = { items_max: 500, batches_in_flight_max: 1, queue_items_max: payment_queue_items_max };
const post_batch_limits: BatcherLimits = { items_max: 200, batches_in_flight_max: 1, queue_items_max: payment_queue_items_max };

export function createPaymentsContext(o: PaymentsOptions): PaymentsContext {
  const ctx: PaymentsContext = {
    ...o,
    qrFacts: new Batcher((keys) => readQrFacts(o.db, keys), facts_batch_limits, o.observeBatch?.facts),
    qrPosts: new Batcher((items) => postQrPayments(ctx, items), post_batch_limits, o.observeBatch?.post),
    postingCycle: { current: null },
  };
  return ctx;
}

/** Who is asking: the API key and the merchant or bank it acts for. */
export interface Actor {
  keyId: string;
  scopeId: string;
}

export interface PaymentRecord {
  id: string;
  merchantId: string;
  orderId: string;
  requestSha256: string;
  merchantKind: MerchantKind;
  cardNo: string;
  issuingBank: string;
  amountFen: bigint;
  medicalFen: bigint;
  selfPayFen: bigint;
  terminalId: string | null;
  medicalVisitNo: string | null;
  customerNo: string | null;
  billId: string | null;
  bankAuthId: string | null;
  bankAuthCode: string | null;
  entryIdemKey: string;
  cycleId: string;
  businessDate: string;
  createdAt: Date;
}

export interface RefundRecord {
  id: string;
  merchantId: string;
  refundId: string;
  paymentId: string;
  amountFen: bigint;
  medicalFen: bigint;
  selfPayFen: bigint;
  refundedAfterFen: bigint;
  entryIdemKey: string;
  cycleId: string;
  businessDate: string;
  createdAt: Date;
}

export interface PurseLoadRecord {
  id: string;
  bankCode: string;
  bankReference: string;
  cardNo: string;
  amountFen: bigint;
  purseBalanceAfterFen: bigint;
  cycleId: string;
  businessDate: string;
  createdAt: Date;
}

export interface QrPaymentRequest {
  qrCode: string;
  orderId: string;
  ask: QrPaymentAsk;
}

type Row = Record<string, unknown>;

const medicalAccount = (cardNo: string) => `card:${cardNo}:medical`;
const purseAccount = (cardNo: string) => `card:${cardNo}:purse`;
const merchantPayable = (merchantId: string) => `merchant:${merchantId}:payable`;
const bankClearing = (bankCode: string) => `bank:${bankCode}:clearing`;

/**
 * Random bytes for ids are drawn from the CSPRNG a few kilobytes at a time: one call per id cost
 * about 6 µs (two ids a payment), a slice of the pool a fifth of a microsecond. Ids are opaque
 * names, not secrets.
 */
const id_pool_bytes = id_random_bytes * 512;
let idPool = Buffer.alloc(0);
let idPoolOffset = 0;

export function newId(prefix: 'pay' | 'rfd' | 'pld' | 'auth'): string {
  if (idPoolOffset + id_random_bytes > idPool.length) {
    idPool = crypto.randomBytes(id_pool_bytes);
    idPoolOffset = 0;
  }
  const hex = idPool.toString('hex', idPoolOffset, idPoolOffset + id_random_bytes);
  idPoolOffset += id_random_bytes;
  return `${prefix}_${hex}`;
}

function sha256Hex(text: string): string {
  return crypto.createHash('sha256').update(text).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// QR payments
// ---------------------------------------------------------------------------------------------

/** The outcome of one attempt; 'decide-again' when a concurrent request changed the facts. */
type Attempt = { replayed: boolean; payment: PaymentRecord } | 'decide-again';

/** A payment that lost its code, order or bill to a concurrent one while being posted. */
class ClaimConflict extends Error {}
const claim_conflict = new ClaimConflict('the claim lost a race; decide again');

export async function payByQr(ctx: PaymentsContext, actor: Actor, req: QrPaymentRequest): Promise<{ replayed: boolean; payment: PaymentRecord }> {
  const requestSha256 = sha256Hex(qrRequestCanonical(req.qrCode, req.ask));
  for (let attempt = 1; ; attempt++) {
    const outcome = await attemptQrPayment(ctx, actor, req, requestSha256);
    if (outcome !== 'decide-again') return outcome;
    if (attempt >= qr_attempts_max) {
      throw conflict(payment_error.concurrent_update, 'A concurrent request changed this card, code or order while the payment was being made; nothing was charged. Try again.');
    }
  }
}

interface QrFactsKey {
  merchantId: string;
  orderId: string;
  cardNo: string | null;
  terminalId: string | null;
  codeId: string | null;
  billId: string | null;
  /** Read the medical personal account's balance too (the request asked to draw on it). */
  wantMedical: boolean;
}

interface QrFactsRow {
  merchant_kind: MerchantKind | null;
  merchant_status: MerchantStatus | null;
  terminal_merchant_id: string | null;
  terminal_status: TerminalStatus | null;
  existing_id: string | null;
  existing_sha256: string | null;
  card_status: CardStatus | null;
  issuing_bank: string | null;
  used_by_merchant_id: string | null;
  used_by_order_id: string | null;
  bill_paid: boolean;
  medical_available_fen: bigint;
  /** The medical personal account's ledger id (null when it was not asked for or does not exist). */
  medical_account_id: bigint | null;
}

async function readQrFacts(db: Db, keys: QrFactsKey[]): Promise<Settled<QrFactsRow>[]> {
  const r = await db.query<QrFactsRow & Row>({ name: 'payments.qr_facts', text: plans.qr_facts, values: [
    keys.map((k) => k.merchantId), keys.map((k) => k.orderId), keys.map((k) => k.cardNo), keys.map((k) => k.terminalId),
    keys.map((k) => k.codeId), keys.map((k) => k.billId), keys.map((k) => k.wantMedical),
  ] });
  if (r.rows.length !== keys.length) throw new Error(`facts of ${keys.length} payments came back as ${r.rows.length} rows`);
  return r.rows.map((value) => ({ ok: true, value }));
}

async function attemptQrPayment(ctx: PaymentsContext, actor: Actor, req: QrPaymentRequest, requestSha256: string): Promise<Attempt> {
  const merchantId = actor.scopeId;
  const { ask } = req;
  let code: VerifiedQrCode | null = null;
  let codeRefusal: DomainError | null = null;
  try {
    code = parseAndVerifyQrCode(ctx.keyStore, req.qrCode, Math.floor(ctx.now().getTime() / 1000));
  } catch (e) {
    if (!isDomainError(e)) throw e;
    // Held back: a retry of an order that was paid must replay even after its code expired.
    codeRefusal = e;
  }
  const f = await ctx.qrFacts.submit({
    merchantId, orderId: req.orderId, cardNo: code?.cardNo ?? null, terminalId: ask.terminalId, codeId: code?.codeId ?? null, billId: ask.utility?.billId ?? null,
    wantMedical: ask.medical !== null && code !== null,
  });
  if (f.existing_id !== null) return replayOrder(ctx.db, merchantId, req.orderId, f.existing_sha256, requestSha256);
  if (code === null) throw codeRefusal;

  const plan = planQrPayment(ask, {
    merchantId,
    merchant: f.merchant_kind === null ? null : { kind: f.merchant_kind, status: f.merchant_status as MerchantStatus },
    terminal: ask.terminalId === null ? undefined
      : f.terminal_merchant_id === null ? null : { merchantId: f.terminal_merchant_id, status: f.terminal_status as TerminalStatus },
    orderId: req.orderId,
    card: f.card_status === null ? null : { status: f.card_status, issuingBank: f.issuing_bank as string },
    codeUsedBy: f.used_by_merchant_id === null ? null : { merchantId: f.used_by_merchant_id, orderId: f.used_by_order_id as string },
    billAlreadyPaid: f.bill_paid,
    medicalAvailableFen: f.medical_available_fen,
  });
  const issuingBank = f.issuing_bank as string;
  // Its id, read from the committed account: the posting need not look it up.
  if (plan.medicalFen > 0n && f.medical_account_id !== null) ctx.ledger.rememberAccountIds([[medicalAccount(code.cardNo), f.medical_account_id]]);

  let auth: { req: BankAuthRequest; code: string } | null = null;
  if (plan.selfPayFen > 0n) {
    const authReq: BankAuthRequest = { authId: newId('auth'), bankCode: issuingBank, cardNo: code.cardNo, merchantId, amountFen: plan.selfPayFen };
    auth = { req: authReq, code: await authorize(ctx, actor, authReq) };
  }

  const paymentId = newId('pay');
  const lines: LineInput[] = [];
  if (plan.medicalFen > 0n) lines.push({ debit: medicalAccount(code.cardNo), credit: merchantPayable(merchantId), amountFen: plan.medicalFen });
  if (plan.selfPayFen > 0n) lines.push({ debit: bankClearing(issuingBank), credit: merchantPayable(merchantId), amountFen: plan.selfPayFen });
  try {
    const payment = await ctx.qrPosts.submit({
      paymentId, merchantId, orderId: req.orderId, requestSha256, merchantKind: f.merchant_kind as MerchantKind, cardNo: code.cardNo,
      issuingBank, amountFen: ask.amountFen, plan, codeId: code.codeId, issuedAtS: code.issuedAtS, terminalId: ask.terminalId,
      medicalVisitNo: ask.medical?.visitNo ?? null, customerNo: ask.utility?.customerNo ?? null, billId: ask.utility?.billId ?? null,
      bankAuthId: auth?.req.authId ?? null, bankAuthCode: auth?.code ?? null, actor: actor.keyId, lines,
    });
    return { replayed: false, payment };
  } catch (e) {
    if (auth !== null) await reverseAuthorization(ctx, actor, auth.req, 'NOT_POSTED');
    if (e instanceof ClaimConflict) return 'decide-again';
    // Another payment drew on the medical account since it was read: split again, once.
    if (isDomainError(e) && e.code === 'INSUFFICIENT_FUNDS' && plan.medicalFen > 0n) return 'decide-again';
    throw e;
  }
}

async function replayOrder(db: Db, merchantId: string, orderId: string, storedSha256: string | null, requestSha256: string): Promise<Attempt> {
  if (storedSha256 !== requestSha256) throw idempotencyConflict('order id');
  const r = await db.query<Row>(plans.payment_by_merchant_order, [merchantId, orderId]);
  return { replayed: true, payment: toPayment(r.rows[0]) };
}

/** The bank's approval code, or a refusal (declined 402, timed out 504, unreachable 503). */
async function authorize(ctx: PaymentsContext, actor: Actor, req: BankAuthRequest): Promise<string> {
  const { signal, done } = deadline(ctx.bankAuthTimeoutMs);
  let result;
  try {
    result = await untilAborted(ctx.authorizer.authorize(req, signal), signal);
    done();
  } catch (e) {
    done();
    const timedOut = signal.aborted;
    await reverseAuthorization(ctx, actor, req, timedOut ? 'BANK_TIMEOUT' : 'BANK_ERROR');
    if (timedOut) {
      throw new DomainError(payment_error.bank_timeout, 504, "The cardholder's bank did not answer in time. Nothing was charged and the pay code can be presented again.", { timeoutMs: ctx.bankAuthTimeoutMs });
    }
    ctx.log.warn({ authId: req.authId, bankCode: req.bankCode, err: (e as Error)?.message }, 'bank authorization failed');
    throw new DomainError(payment_error.bank_unavailable, 503, "The cardholder's bank could not be reached. Nothing was charged.");
  }
  if (!result.approved || result.authCode === null) {
    throw new DomainError(payment_error.bank_declined, 402, "The cardholder's bank declined the payment.", { reason: result.declineCode ?? 'UNSPECIFIED' });
  }
  return result.authCode;
}

/** A decided, authorized payment waiting to be claimed and posted. */
interface QrPost {
  paymentId: string;
  merchantId: string;
  orderId: string;
  requestSha256: string;
  merchantKind: MerchantKind;
  cardNo: string;
  issuingBank: string;
  amountFen: bigint;
  plan: QrPaymentPlan;
  codeId: string;
  issuedAtS: number;
  terminalId: string | null;
  medicalVisitNo: string | null;
  customerNo: string | null;
  billId: string | null;
  bankAuthId: string | null;
  bankAuthCode: string | null;
  actor: string;
  lines: LineInput[];
}

/**
 * Claim and post a batch of payments in one transaction. If the transaction fails as a whole
 * (a medical account emptied by a concurrent payment makes the ledger refuse the batch), each
 * payment is posted alone, so only the one at fault fails.
 */
async function postQrPayments(ctx: PaymentsContext, items: QrPost[]): Promise<Settled<PaymentRecord>[]> {
  try {
    return await claimAndPost(ctx, items);
  } catch (e) {
    if (items.length === 1) return [{ ok: false, error: e }];
  }
  const out: Settled<PaymentRecord>[] = [];
  for (const item of items) {
    try {
      out.push((await claimAndPost(ctx, [item]))[0]);
    } catch (e) {
      out.push({ ok: false, error: e });
    }
  }
  return out;
}

async function claimAndPost(ctx: PaymentsContext, items: QrPost[]): Promise<Settled<PaymentRecord>[]> {
  // Within one statement a code, an order or a bill may appear once: a later duplicate loses
  // at once and is decided again (it will read the first as a replay or a refusal).
  const codes = new Set<string>(), orders = new Set<string>(), bills = new Set<string>();
  const batch: { item: QrPost; index: number }[] = [];
  items.forEach((item, index) => {
    const order = `${item.merchantId}/${item.orderId}`;
    const bill = item.billId === null ? null : `${item.merchantId}/${item.billId}`;
    if (codes.has(item.codeId) || orders.has(order) || (bill !== null && bills.has(bill))) return;
    codes.add(item.codeId);
    orders.add(order);
    if (bill !== null) bills.add(bill);
    batch.push({ item, index });
  });
  const at = ctx.now();
  const col = (f: (x: QrPost) => string | null) => batch.map((b) => f(b.item));
  const columns: ClaimColumns = {
    id: col((x) => x.paymentId), merchant_id: col((x) => x.merchantId), order_id: col((x) => x.orderId),
    request_sha256: col((x) => x.requestSha256), merchant_kind: col((x) => x.merchantKind), card_no: col((x) => x.cardNo),
    issuing_bank: col((x) => x.issuingBank), amount_fen: col((x) => String(x.amountFen)), medical_fen: col((x) => String(x.plan.medicalFen)),
    self_pay_fen: col((x) => String(x.plan.selfPayFen)), code_id: col((x) => x.codeId), terminal_id: col((x) => x.terminalId),
    medical_visit_no: col((x) => x.medicalVisitNo), customer_no: col((x) => x.customerNo), bill_id: col((x) => x.billId),
    bank_auth_id: col((x) => x.bankAuthId), bank_auth_code: col((x) => x.bankAuthCode), entry_idem_key: col((x) => `pay:${x.paymentId}`),
    issued_at_s: col((x) => String(x.issuedAtS)), actor: col((x) => x.actor),
  };
  const posted = await claimAndPostInOneRoundTrip(ctx, items, batch, columns, at);
  if (posted !== null) return posted;
  // The long way: claim (which takes the cycle lock and reads the open cycle after it, as
  // openCycleForWrite does), read which payments won, post those, commit.
  const claim = [cycle_lock_key[0], cycle_lock_key[1], at, ...claimValues(columns)];
  return withTx(ctx.db, async (tx) => {
    // Built afresh by each attempt (a deadlock retries the whole transaction). Every item that
    // does not come back paid lost a race (one shared error object: no stack trace per item).
    const lost: Settled<PaymentRecord> = { ok: false, error: claim_conflict };
    const out: Settled<PaymentRecord>[] = items.map(() => lost);
    const claimStatement = { name: 'payments.claim_qr', text: plans.claim_qr_payments, values: claim };
    let rows = (await tx.query<Row>(claimStatement)).rows;
    if (rows.length > 0 && rows[0].open_cycle_id === null) {
      // A database that never had a cycle: open the first one (under the lock we hold), claim again.
      await currentOpenCycle(tx, at, ctx.cutoffMinutes);
      rows = (await tx.query<Row>(claimStatement)).rows;
    }
    if (rows.length !== batch.length) throw new Error(`a claim of ${batch.length} payments came back as ${rows.length} rows`);
    const unusedCodes = rows.flatMap((row, i) => (row.code_claimed === true && row.id === null ? [batch[i].item.codeId] : []));
    if (unusedCodes.length > 0) await tx.query(plans.release_codes, [unusedCodes]);
    const entries: EntryInput[] = [];
    rows.forEach((row, i) => {
      if (row.id === null) return;
      const payment = toPayment(row);
      const { item, index } = batch[i];
      out[index] = { ok: true, value: payment };
      entries.push(paymentEntry(payment, item));
      ctx.postingCycle.current = { id: payment.cycleId, businessDate: payment.businessDate };
    });
    if (entries.length > 0) await ctx.ledger.postBatch(tx, entries);
    return out;
  });
}

function paymentEntry(payment: PaymentRecord, item: QrPost): EntryInput {
  return {
    idemKey: payment.entryIdemKey, kind: 'QR_PAYMENT', businessDate: payment.businessDate,
    metadata: { payment_id: payment.id, merchant_id: payment.merchantId, order_id: payment.orderId, bank_auth_id: item.bankAuthId ?? undefined },
    lines: item.lines,
  };
}

/**
 * The batch's whole transaction as one statement (payments_post_qr_batch): a claim that must win
 * every payment in the cycle this node last saw open, then the ledger's entries. Sent alone, the
 * statement is its own transaction, so it commits before it answers. What it needs is known
 * beforehand (the payments' ids and amounts, the cycle, every account's id), and each part raises
 * rather than reporting a partial outcome, so nothing depends on an answer in between.
 * Null, with nothing written, when it does not apply (no cycle seen yet, an account id not known
 * on this node, an item that lost within the batch) or when the database refused the batch (a
 * race lost, a new cycle, a drained medical account): the caller then posts the long way, which
 * reads each payment's outcome. A lost connection is not retried here: its outcome is unknown.
 */
async function claimAndPostInOneRoundTrip(ctx: PaymentsContext, items: QrPost[], batch: { item: QrPost; index: number }[],
  columns: ClaimColumns, at: Date): Promise<Settled<PaymentRecord>[] | null> {
  const cycle = ctx.postingCycle.current;
  if (cycle === null || batch.length !== items.length) return null;
  const payments = items.map((item): PaymentRecord => ({
    id: item.paymentId, merchantId: item.merchantId, orderId: item.orderId, requestSha256: item.requestSha256,
    merchantKind: item.merchantKind, cardNo: item.cardNo, issuingBank: item.issuingBank, amountFen: item.amountFen,
    medicalFen: item.plan.medicalFen, selfPayFen: item.plan.selfPayFen, terminalId: item.terminalId,
    medicalVisitNo: item.medicalVisitNo, customerNo: item.customerNo, billId: item.billId, bankAuthId: item.bankAuthId,
    bankAuthCode: item.bankAuthCode, entryIdemKey: `pay:${item.paymentId}`, cycleId: cycle.id, businessDate: cycle.businessDate,
    createdAt: at,
  }));
  const entries = payments.map((payment, i) => paymentEntry(payment, items[i]));
  const ledgerArguments = ctx.ledger.newEntriesArguments(entries);
  if (ledgerArguments === null) return null;
  const started = process.hrtime.bigint();
  try {
    await ctx.db.query({
      name: 'payments.post_qr_batch', text: plans.post_qr_batch,
      values: [cycle.id, cycle_lock_key[0], cycle_lock_key[1], at, ...claimValues(columns), ...ledgerArguments],
    });
  } catch (e) {
    // Refused by the database (it answered with an error code): the long way decides each payment.
    if (e instanceof pg.DatabaseError) return null;
    throw e;
  }
  ctx.ledger.newEntriesCommitted(entries, Number(process.hrtime.bigint() - started) / 1e9);
  return payments.map((value) => ({ ok: true, value }));
}

// ---------------------------------------------------------------------------------------------
// Reversals owed to banks
// ---------------------------------------------------------------------------------------------

type ReversalReason = 'BANK_TIMEOUT' | 'BANK_ERROR' | 'NOT_POSTED';

/**
 * Record that this authorization must be undone, then tell the bank. The record comes first, so
 * a reversal the bank does not acknowledge is not forgotten (`retryPendingReversals`).
 */
async function reverseAuthorization(ctx: PaymentsContext, actor: Actor, req: BankAuthRequest, reason: ReversalReason): Promise<void> {
  try {
    await ctx.db.query(plans.request_reversal, [req.authId, req.bankCode, req.cardNo, req.merchantId, String(req.amountFen), reason, actor.keyId, ctx.now()]);
  } catch (e) {
    ctx.log.warn({ authId: req.authId, err: (e as Error)?.message }, 'could not record a bank reversal request; sending it anyway');
  }
  await sendReversal(ctx, req);
}

async function sendReversal(ctx: PaymentsContext, req: { authId: string; bankCode: string; cardNo: string; amountFen: bigint }): Promise<boolean> {
  const { signal, done } = deadline(ctx.bankReversalTimeoutMs);
  try {
    await untilAborted(ctx.authorizer.reverse({ authId: req.authId, bankCode: req.bankCode, cardNo: req.cardNo, amountFen: req.amountFen }, signal), signal).finally(done);
    await ctx.db.query(plans.acknowledge_reversal, [req.authId, ctx.now()]);
    return true;
  } catch (e) {
    ctx.log.warn({ authId: req.authId, bankCode: req.bankCode, err: (e as Error)?.message }, 'bank reversal not acknowledged; it stays pending');
    return false;
  }
}

/** Send again every reversal the banks have not acknowledged (oldest first, bounded per call). */
export async function retryPendingReversals(ctx: PaymentsContext, limit = pending_reversals_batch_max): Promise<{ attempted: number; acknowledged: number }> {
  const r = await ctx.db.query<{ auth_id: string; bank_code: string; card_no: string; amount_fen: bigint }>(plans.pending_reversals, [limit]);
  let acknowledged = 0;
  // One bank call per reversal is inherent (each is its own message to the bank); they are few.
  for (const row of r.rows) {
    if (await sendReversal(ctx, { authId: row.auth_id, bankCode: row.bank_code, cardNo: row.card_no, amountFen: row.amount_fen })) acknowledged++;
  }
  return { attempted: r.rows.length, acknowledged };
}

// ---------------------------------------------------------------------------------------------
// Refunds
// ---------------------------------------------------------------------------------------------

export interface RefundRequest {
  refundId: string;
  amountFen: bigint;
}

export async function refundPayment(ctx: PaymentsContext, actor: Actor, paymentId: string, req: RefundRequest): Promise<{ replayed: boolean; refund: RefundRecord; paymentAmountFen: bigint }> {
  const merchantId = actor.scopeId;
  const at = ctx.now();
  return withTx(ctx.db, async (tx) => {
    const cycle = await openCycleForWrite(tx, at, ctx.cutoffMinutes);
    const locked = (await tx.query<Row>(plans.lock_payment, [merchantId, paymentId])).rows[0];
    if (locked === undefined) throw paymentNotFound();
    const payment = toPayment(locked);
    const s = (await tx.query<{ refunded_fen: bigint; refunded_medical_fen: bigint; refunds: number; existing: { id: string; payment_id: string; amount_fen: string } | null }>(
      plans.refund_state, [merchantId, paymentId, req.refundId])).rows[0];
    if (s.existing !== null) {
      if (s.existing.payment_id !== paymentId || s.existing.amount_fen !== String(req.amountFen)) throw idempotencyConflict('refund id');
      const first = (await tx.query<Row>(plans.refund_by_id, [merchantId, s.existing.id])).rows[0];
      return { replayed: true, refund: toRefund(first), paymentAmountFen: payment.amountFen };
    }
    const plan = planRefund(payment, { amountFen: s.refunded_fen, medicalFen: s.refunded_medical_fen, count: s.refunds }, req.amountFen);
    const id = newId('rfd');
    const entryIdemKey = `refund:${id}`;
    const ins = await tx.query<Row>(plans.insert_refund, [
      id, merchantId, req.refundId, paymentId, String(req.amountFen), String(plan.medicalFen), String(plan.selfPayFen),
      String(plan.refundedAfterFen), entryIdemKey, cycle.id, cycle.businessDate, actor.keyId, at,
    ]);
    // The same refund id, committed meanwhile for another of the merchant's payments.
    if (ins.rows.length === 0) throw idempotencyConflict('refund id');
    const lines: LineInput[] = [];
    if (plan.medicalFen > 0n) lines.push({ debit: merchantPayable(merchantId), credit: medicalAccount(payment.cardNo), amountFen: plan.medicalFen });
    if (plan.selfPayFen > 0n) lines.push({ debit: merchantPayable(merchantId), credit: bankClearing(payment.issuingBank), amountFen: plan.selfPayFen });
    const whole = s.refunded_fen === 0n && req.amountFen === payment.amountFen;
    await ctx.ledger.postBatch(tx, [{
      idemKey: entryIdemKey, kind: 'REFUND', businessDate: cycle.businessDate,
      // A refund of the whole payment at once reverses its entry; partial refunds point at it.
      ...(whole ? { reversesEntryId: locked.entry_id as bigint } : {}),
      metadata: { payment_id: paymentId, refund_id: req.refundId, refund: id, original_entry_id: String(locked.entry_id) },
      lines,
    }]);
    if (plan.refundedAfterFen === payment.amountFen && payment.billId !== null) {
      await tx.query(plans.release_bill, [merchantId, paymentId, at, actor.keyId]);
    }
    return { replayed: false, refund: toRefund(ins.rows[0]), paymentAmountFen: payment.amountFen };
  });
}

function paymentNotFound(): DomainError {
  return notFound(payment_error.payment_not_found, 'No such payment of yours.');
}

export async function getPayment(db: Db, paymentId: string, merchantScope: string | null): Promise<{ payment: PaymentRecord; refundedFen: bigint; refunds: RefundRecord[] }> {
  const r = await db.query<Row>(plans.payment_view, [paymentId, merchantScope]);
  if (r.rows.length === 0) throw paymentNotFound();
  const payment = toPayment(r.rows[0]);
  const refunds = await db.query<Row>(plans.refunds_of_payment, [payment.merchantId, payment.id, refunds_per_payment_max]);
  return { payment, refundedFen: r.rows[0].refunded_fen as bigint, refunds: refunds.rows.map(toRefund) };
}

// ---------------------------------------------------------------------------------------------
// Purse loads
// ---------------------------------------------------------------------------------------------

/** Advisory lock namespace (first int4) serializing loads under one (bank, bank reference). */
const load_key_lock_ns = 7302;

export interface PurseLoadRequest {
  bankReference: string;
  amountFen: bigint;
}

export async function loadPurse(ctx: PaymentsContext, actor: Actor, cardNo: string, req: PurseLoadRequest): Promise<{ replayed: boolean; load: PurseLoadRecord }> {
  const bankCode = actor.scopeId;
  const at = ctx.now();
  return withTx(ctx.db, async (tx) => {
    // Two deliveries of one load wait for each other, so the second reads the first as a replay.
    await tx.query(plans.lock_load_key, [load_key_lock_ns, `${bankCode}/${req.bankReference}`]);
    const cycle = await openCycleForWrite(tx, at, ctx.cutoffMinutes);
    const f = (await tx.query<{ card_status: CardStatus | null; issuing_bank: string | null; existing: boolean }>(
      plans.load_facts, [bankCode, req.bankReference, cardNo])).rows[0];
    if (f.existing) {
      const first = toLoad((await tx.query<Row>(plans.load_by_key, [bankCode, req.bankReference])).rows[0]);
      if (first.cardNo !== cardNo || first.amountFen !== req.amountFen) throw idempotencyConflict('bank reference');
      return { replayed: true, load: first };
    }
    checkPurseLoad(f.card_status === null ? null : { status: f.card_status, issuingBank: f.issuing_bank as string }, bankCode, req.amountFen);
    const id = newId('pld');
    const entryIdemKey = `load:${id}`;
    await ctx.ledger.postBatch(tx, [{
      idemKey: entryIdemKey, kind: 'PURSE_LOAD', businessDate: cycle.businessDate,
      metadata: { load_id: id, bank_reference: req.bankReference },
      lines: [{ debit: bankClearing(bankCode), credit: purseAccount(cardNo), amountFen: req.amountFen }],
    }]);
    // Read in the transaction that updated it (and holds its row lock): exactly the balance after this load.
    const purse = await ctx.ledger.account(tx, purseAccount(cardNo));
    const ins = await tx.query<Row>(plans.insert_load, [
      id, bankCode, req.bankReference, cardNo, String(req.amountFen), String(purse?.balanceFen ?? req.amountFen), entryIdemKey,
      cycle.id, cycle.businessDate, actor.keyId, at,
    ]);
    if (ins.rows.length === 0) throw conflict(payment_error.concurrent_update, 'This load was recorded concurrently; retry to read it.');
    return { replayed: false, load: toLoad(ins.rows[0]) };
  });
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

function toPayment(r: Row): PaymentRecord {
  return {
    id: r.id as string, merchantId: r.merchant_id as string, orderId: r.order_id as string, requestSha256: r.request_sha256 as string,
    merchantKind: r.merchant_kind as MerchantKind, cardNo: r.card_no as string, issuingBank: r.issuing_bank as string,
    amountFen: r.amount_fen as bigint, medicalFen: r.medical_fen as bigint, selfPayFen: r.self_pay_fen as bigint,
    terminalId: r.terminal_id as string | null, medicalVisitNo: r.medical_visit_no as string | null,
    customerNo: r.customer_no as string | null, billId: r.bill_id as string | null,
    bankAuthId: r.bank_auth_id as string | null, bankAuthCode: r.bank_auth_code as string | null,
    entryIdemKey: r.entry_idem_key as string, cycleId: r.cycle_id as string, businessDate: r.business_date as string,
    createdAt: r.created_at as Date,
  };
}

function toRefund(r: Row): RefundRecord {
  return {
    id: r.id as string, merchantId: r.merchant_id as string, refundId: r.refund_id as string, paymentId: r.payment_id as string,
    amountFen: r.amount_fen as bigint, medicalFen: r.medical_fen as bigint, selfPayFen: r.self_pay_fen as bigint,
    refundedAfterFen: r.refunded_after_fen as bigint, entryIdemKey: r.entry_idem_key as string, cycleId: r.cycle_id as string,
    businessDate: r.business_date as string, createdAt: r.created_at as Date,
  };
}

function toLoad(r: Row): PurseLoadRecord {
  return {
    id: r.id as string, bankCode: r.bank_code as string, bankReference: r.bank_reference as string, cardNo: r.card_no as string,
    amountFen: r.amount_fen as bigint, purseBalanceAfterFen: r.purse_balance_after_fen as bigint, cycleId: r.cycle_id as string,
    businessDate: r.business_date as string, createdAt: r.created_at as Date,
  };
}
