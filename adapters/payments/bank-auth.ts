/**
 * Online authorization against the cardholder's bank. The engine talks to banks through the
 * narrow `BankAuthorizer` interface: authorize an amount, or reverse an authorization it will not
 * use. A real bank link (ISO 8583 or a bank's REST API) implements the same two calls.
 *
 * `SimulatedBank` is the default implementation, standing in for every cooperating bank: it
 * approves within each card's daily limit and keeps its books in Postgres (its own tables), so
 * limits survive restarts and are shared by all engine nodes. It answers after a configurable
 * simulated network latency and honours the caller's AbortSignal like a network client would:
 * the caller stops waiting, while work already sent may still complete at the "bank" (which is
 * why the engine reverses authorizations it gave up on).
 */
import { shanghaiDate } from '../../engine/clearing/calendar.ts';
import { statementInOwnTx, type Db } from '../postgres/db.ts';
import { Batcher, type BatchObserver, type BatcherLimits, type Settled } from './batcher.ts';
import { plans } from './plans.ts';

export interface BankAuthRequest {
  /** The engine's id of this attempt, unique per attempt; the bank's idempotency key. */
  authId: string;
  /** The card's issuing bank (CNAPS code): where the request is routed. */
  bankCode: string;
  cardNo: string;
  merchantId: string;
  amountFen: bigint;
}

export interface BankAuthResult {
  approved: boolean;
  /** The bank's approval code, null on a decline. */
  authCode: string | null;
  /** Why the bank declined (e.g. DAILY_LIMIT_EXCEEDED). */
  declineCode?: string;
}

export interface BankReversalRequest {
  authId: string;
  bankCode: string;
  cardNo: string;
  amountFen: bigint;
}

export interface BankAuthorizer {
  /** Rejects (with the signal's reason) as soon as `signal` aborts. */
  authorize(req: BankAuthRequest, signal: AbortSignal): Promise<BankAuthResult>;
  /**
   * Undo an authorization the engine will not post, whether or not the bank ever received it.
   * Idempotent. Rejects as soon as `signal` aborts.
   */
  reverse(req: BankReversalRequest, signal: AbortSignal): Promise<void>;
}

/**
 * Why the simulated bank declines (sim_bank_decide in 0020_sim_bank_set_based.sql): the day's
 * approvals would exceed the card's daily limit; the card is not one it holds; the engine had
 * already reversed this authorization when it arrived.
 */
export const sim_bank_decline = {
  daily_limit_exceeded: 'DAILY_LIMIT_EXCEEDED',
  unknown_account: 'UNKNOWN_ACCOUNT',
  reversed: 'AUTHORIZATION_REVERSED',
} as const;

/** The simulated round trip to a bank: about a millisecond on a data-centre link. */
export const sim_bank_latency_ms_default = 1;
/** Advisory lock namespace (first int4) serializing one card's authorizations at the simulated bank. */
const sim_bank_card_lock_ns = 7301;

export interface SimulatedBankOptions {
  /** The bank's clock (its "today" for the daily limit is the Asia/Shanghai date of it). */
  now: () => Date;
  latencyMs?: number;
  /** Told of each batch of authorizations it decides (for metrics). */
  observeBatch?: BatchObserver;
}

/**
 * Authorizations the simulated bank decides together: those that arrive while it is deciding a
 * batch (its answer to a burst of payments is one request and one transaction, not one per
 * payment; a real bank link would batch its messages the same way). The queue holds, like the
 * payment queues (see payment_queue_items_max), about two seconds of work.
 */
const sim_bank_batch_limits: BatcherLimits = { items_max: 500, batches_in_flight_max: 1, queue_items_max: 2_000 };

export class SimulatedBank implements BankAuthorizer {
  readonly #db: Db;
  readonly #now: () => Date;
  readonly #latencyMs: number;
  readonly #batcher: Batcher<BankAuthRequest, BankAuthResult>;

  constructor(db: Db, opts: SimulatedBankOptions) {
    this.#db = db;
    this.#now = opts.now;
    this.#latencyMs = opts.latencyMs ?? sim_bank_latency_ms_default;
    if (!Number.isFinite(this.#latencyMs) || this.#latencyMs < 0) throw new RangeError('latencyMs must be >= 0');
    this.#batcher = new Batcher((reqs) => this.#decide(reqs), sim_bank_batch_limits, opts.observeBatch);
  }

  async authorize(req: BankAuthRequest, signal: AbortSignal): Promise<BankAuthResult> {
    await networkDelay(this.#latencyMs, signal);
    return untilAborted(this.#batcher.submit(req), signal);
  }

  async reverse(req: BankReversalRequest, signal: AbortSignal): Promise<void> {
    await networkDelay(this.#latencyMs, signal);
    await untilAborted(this.#db.query(plans.sim_bank_reverse, [sim_bank_card_lock_ns, req.authId, req.cardNo, this.#now()]), signal);
  }

  /**
   * A card's authorizations are decided one at a time (under the card's advisory lock, and in
   * arrival order within a batch), so two can never both fit the last of a limit. One round trip
   * per batch: sim_bank_decide decides and records them in its own transaction (a batch of
   * distinct cards by one set-based statement, one where a card repeats in turn).
   */
  async #decide(reqs: BankAuthRequest[]): Promise<Settled<BankAuthResult>[]> {
    const at = this.#now();
    const { rows: decided } = await statementInOwnTx<Decision>(this.#db, {
      name: 'sim_bank.decide', text: plans.sim_bank_decide,
      values: [sim_bank_card_lock_ns, reqs.map((r) => r.authId), reqs.map((r) => r.bankCode), reqs.map((r) => r.cardNo),
        reqs.map((r) => r.merchantId), reqs.map((r) => String(r.amountFen)), shanghaiDate(at), at],
    });
    if (decided.length !== reqs.length) throw new Error(`the bank answered ${decided.length} of ${reqs.length} authorizations`);
    return decided.map((d) => ({
      ok: true,
      value: d.approved ? { approved: true, authCode: d.auth_code } : { approved: false, authCode: null, declineCode: d.decline_code ?? undefined },
    }));
  }
}

interface Decision {
  approved: boolean;
  auth_code: string | null;
  decline_code: string | null;
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
function networkDelay(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A signal that aborts after `ms` with a TimeoutError (as AbortSignal.timeout does), and `done`
 * to stop its timer once the work finished. AbortSignal.timeout cannot be stopped: each one cost
 * about 10 µs to make, and fired two seconds after its payment had long been answered.
 */
export function deadline(ms: number): { signal: AbortSignal; done: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('The operation timed out.', 'TimeoutError')), ms);
  return { signal: controller.signal, done: () => clearTimeout(timer) };
}

/**
 * `p`, or a rejection with the signal's reason as soon as it aborts. The work behind `p` is not
 * cancelled (a request on the wire cannot be called back); its late outcome is dropped.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}
