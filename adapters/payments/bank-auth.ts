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
import crypto from 'node:crypto';
import { shanghaiDate } from '../../engine/clearing/calendar.ts';
import { dailyLimitDecision, decline_reason } from '../../engine/payments/index.ts';
import type { QueryResult } from 'pg';
import type { Db } from '../postgres/db.ts';
import { Batcher, type BatcherLimits, type Settled } from './batcher.ts';
import { plans } from './plans.ts';
import { inSelfOpenedTransaction } from './tx.ts';

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

/** The simulated round trip to a bank: about a millisecond on a data-centre link. */
export const sim_bank_latency_ms_default = 1;
/** Advisory lock namespace (first int4) serializing one card's authorizations at the simulated bank. */
const sim_bank_card_lock_ns = 7301;

export interface SimulatedBankOptions {
  /** The bank's clock (its "today" for the daily limit is the Asia/Shanghai date of it). */
  now: () => Date;
  latencyMs?: number;
}

/**
 * Authorizations the simulated bank decides together: those that arrive while it is deciding a
 * batch (its answer to a burst of payments is a few set-based statements, not one transaction
 * per payment; a real bank link would batch its messages the same way).
 */
/** Like the payment queues (see payment_queue_items_max): about two seconds of work. */
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
    this.#batcher = new Batcher((reqs) => this.#decide(reqs), sim_bank_batch_limits);
  }

  async authorize(req: BankAuthRequest, signal: AbortSignal): Promise<BankAuthResult> {
    await networkDelay(this.#latencyMs, signal);
    return untilAborted(this.#batcher.submit(req), signal);
  }

  async reverse(req: BankReversalRequest, signal: AbortSignal): Promise<void> {
    await networkDelay(this.#latencyMs, signal);
    await untilAborted(this.#db.query(plans.sim_bank_reverse, [req.authId, req.cardNo, this.#now()]), signal);
  }

  /**
   * A card's authorizations are decided one at a time (under the card's advisory lock, and in
   * arrival order within a batch), so two can never both fit the last of a limit. Two round
   * trips per batch: begin, lock and read; record and commit.
   */
  async #decide(reqs: BankAuthRequest[]): Promise<Settled<BankAuthResult>[]> {
    const at = this.#now();
    const localDate = shanghaiDate(at);
    return inSelfOpenedTransaction(this.#db, async (client) => {
      const results = (await client.query(plans.sim_bank_begin_and_read(sim_bank_card_lock_ns, reqs.map((r) => r.authId), reqs.map((r) => r.cardNo), localDate))) as unknown as QueryResult<SimBankState>[];
      const states = results[results.length - 1].rows;
      if (states.length !== reqs.length) throw new Error(`the bank read ${states.length} states for ${reqs.length} authorizations`);
      const approvedInBatch = new Map<string, bigint>();
      const decidedInBatch = new Map<string, BankAuthResult>();
      const decisions: Parameters<typeof plans.sim_bank_record>[0][number][] = [];
      const out: Settled<BankAuthResult>[] = reqs.map((req, i) => {
        const s = states[i];
        const again = decidedInBatch.get(req.authId);
        if (again !== undefined) return { ok: true, value: again };
        if (s.approved !== null) {
          return { ok: true, value: { approved: s.approved, authCode: s.auth_code, ...(s.decline_code === null ? {} : { declineCode: s.decline_code }) } };
        }
        let declineCode: string | null = null;
        if (s.reversed) declineCode = decline_reason.reversed;
        else if (s.daily_limit_fen === null || s.issuing_bank !== req.bankCode) declineCode = decline_reason.unknown_account;
        else {
          const today = BigInt(s.approved_today_fen) + (approvedInBatch.get(req.cardNo) ?? 0n);
          const d = dailyLimitDecision(today, req.amountFen, BigInt(s.daily_limit_fen));
          if (!d.approved) declineCode = d.declineCode;
        }
        const authCode = declineCode === null ? String(crypto.randomInt(0, 1_000_000)).padStart(6, '0') : null;
        if (declineCode === null) approvedInBatch.set(req.cardNo, (approvedInBatch.get(req.cardNo) ?? 0n) + req.amountFen);
        decisions.push({ ...req, localDate, authCode, declineCode, at });
        const value: BankAuthResult = declineCode === null ? { approved: true, authCode } : { approved: false, authCode: null, declineCode };
        decidedInBatch.set(req.authId, value);
        return { ok: true, value };
      });
      return { value: out, ...(decisions.length > 0 ? { lastStatement: plans.sim_bank_record(decisions) } : {}) };
    });
  }
}

interface SimBankState {
  approved: boolean | null;
  auth_code: string | null;
  decline_code: string | null;
  reversed: boolean;
  daily_limit_fen: bigint | null;
  issuing_bank: string | null;
  approved_today_fen: bigint;
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
