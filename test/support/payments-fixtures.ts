/**
 * Fixtures for the payment tests: reference rows inserted directly with SQL (banks, merchants,
 * terminals, cards), funded accounts through the ledger, an in-process app with a pinned,
 * movable clock and a chosen bank authorizer, and QR codes signed with the spec's test key.
 */
import crypto from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../adapters/http/app.ts';
import type { AppDeps } from '../../adapters/http/context.ts';
import type { PaymentDeps } from '../../adapters/http/plugins/payments.ts';
import { encodeQrCode } from '../../adapters/crypto/index.ts';
import { withTx, type Db } from '../../adapters/postgres/db.ts';
import type { BankAuthRequest, BankAuthResult, BankAuthorizer, BankReversalRequest } from '../../adapters/payments/index.ts';
import { Ledger } from '../../ledger/index.ts';
import { testDeps } from './deps.ts';
import { bearer, mintKey } from './http.ts';

/** 2026-11-28 10:00:00 Asia/Shanghai. */
export const t0_ms = Date.UTC(2026, 10, 28, 2, 0, 0);

export interface Clock {
  now: () => Date;
  set(ms: number): void;
  advance(ms: number): void;
  seconds(): number;
}

export function pinnedClock(startMs = t0_ms): Clock {
  let t = startMs;
  return {
    now: () => new Date(t),
    set: (ms) => { t = ms; },
    advance: (ms) => { t += ms; },
    seconds: () => Math.floor(t / 1000),
  };
}

export interface CardSpec {
  cardNo: string;
  bank: string;
  status?: 'ISSUED' | 'ACTIVE' | 'LOST_REPORTED' | 'SUSPENDED' | 'CANCELLED';
  dailyLimitFen?: bigint;
}

export interface MerchantSpec {
  id: string;
  kind: 'TRANSIT' | 'MEDICAL' | 'UTILITY' | 'RETAIL';
  bank: string;
  status?: 'ACTIVE' | 'SUSPENDED' | 'CLOSED';
}

/** Reference rows, set-based, as the reference admin would have created them. */
export async function seedReference(db: Db, ref: { banks: string[]; merchants: MerchantSpec[]; cards: CardSpec[]; terminals?: { id: string; merchantId: string; status?: 'ACTIVE' | 'RETIRED' }[] }): Promise<void> {
  await db.query(`INSERT INTO bank (code, name) SELECT c, 'Bank ' || c FROM unnest($1::text[]) c ON CONFLICT DO NOTHING`, [ref.banks]);
  if (ref.merchants.length > 0) {
    await db.query(`
      INSERT INTO merchant (id, name, kind, acquiring_bank, settlement_account, status)
      SELECT id, 'Merchant ' || id, kind, bank, '6222000000001', status FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS m(id, kind, bank, status)`,
    [ref.merchants.map((m) => m.id), ref.merchants.map((m) => m.kind), ref.merchants.map((m) => m.bank), ref.merchants.map((m) => m.status ?? 'ACTIVE')]);
  }
  if (ref.cards.length > 0) {
    await db.query(`
      INSERT INTO card (card_no, issuing_bank, form, status, status_since, daily_limit_fen)
      SELECT n, b, 'ECARD', s, '2026-01-01T00:00:00Z', l FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS c(n, b, s, l)`,
    [ref.cards.map((c) => c.cardNo), ref.cards.map((c) => c.bank), ref.cards.map((c) => c.status ?? 'ACTIVE'), ref.cards.map((c) => String(c.dailyLimitFen ?? 500_000n))]);
    await db.query(`
      INSERT INTO card_status_event (card_no, status, effective_at, actor) SELECT n, s, '2026-01-01T00:00:00Z', 'test'
      FROM unnest($1::text[], $2::text[]) AS c(n, s)`, [ref.cards.map((c) => c.cardNo), ref.cards.map((c) => c.status ?? 'ACTIVE')]);
  }
  const terminals = ref.terminals ?? [];
  if (terminals.length > 0) {
    await db.query(`INSERT INTO terminal (id, merchant_id, status) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])`,
      [terminals.map((t) => t.id), terminals.map((t) => t.merchantId), terminals.map((t) => t.status ?? 'ACTIVE')]);
  }
}

/** A card's status changes now (a loss report, a cancellation), as the cards service records it. */
export async function setCardStatus(db: Db, cardNo: string, status: CardSpec['status'], at: Date): Promise<void> {
  await db.query(`UPDATE card SET status = $2, status_since = $3 WHERE card_no = $1`, [cardNo, status, at]);
  await db.query(`INSERT INTO card_status_event (card_no, status, effective_at, actor) VALUES ($1, $2, $3, 'test')`, [cardNo, status, at]);
}

/** Credit cards' medical personal accounts (as the insurance fund's contribution would). */
export async function fundMedical(db: Db, fundingBank: string, amounts: { cardNo: string; amountFen: bigint }[]): Promise<void> {
  const ledger = new Ledger();
  await withTx(db, (tx) => ledger.postBatch(tx, amounts.map((a) => ({
    idemKey: `test-medical-fund:${a.cardNo}:${crypto.randomBytes(4).toString('hex')}`, kind: 'MEDICAL_CONTRIBUTION', businessDate: '2026-11-01',
    lines: [{ debit: `bank:${fundingBank}:clearing`, credit: `card:${a.cardNo}:medical`, amountFen: a.amountFen }],
  }))));
}

export async function balanceFen(db: Db, code: string): Promise<bigint> {
  const a = await new Ledger().account(db, code);
  return a?.balanceFen ?? 0n;
}

/** A fresh QR code for a card, issued at `issuedAtS` with a random nonce. */
export function qrFor(deps: AppDeps, cardNo: string, issuedAtS: number): string {
  return encodeQrCode(deps.keyStore, { cardNo, issuedAtS });
}

export interface PaymentsApp {
  app: FastifyInstance;
  deps: AppDeps & PaymentDeps;
}

export async function paymentsApp(db: Db, clock: Clock, extra: PaymentDeps = {}): Promise<PaymentsApp> {
  const deps: AppDeps & PaymentDeps = { ...testDeps(db, { now: clock.now }), ...extra };
  const app = await buildApp(deps, false);
  await app.ready();
  return { app, deps };
}

export async function merchantToken(db: Db, merchantId: string): Promise<string> {
  return (await mintKey(db, 'merchant', merchantId)).token;
}

export interface PayBody {
  qr_code: string;
  amount_fen: string;
  order_id: string;
  terminal_id?: string;
  medical?: { personal_account_fen_max?: string; visit_no?: string };
  utility?: { customer_no: string; bill_id: string };
}

export function pay(app: FastifyInstance, token: string, body: PayBody | Record<string, unknown>): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/v1/payments/qr', headers: bearer(token), payload: body });
}

export function refund(app: FastifyInstance, token: string, paymentId: string, body: { refund_id: string; amount_fen: string }): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: `/v1/payments/${paymentId}/refunds`, headers: bearer(token), payload: body });
}

/** Counts of what the payment paths write, to prove a refusal wrote nothing. */
export async function writtenCounts(db: Db): Promise<Record<string, number>> {
  const r = await db.query<Record<string, string>>(`
    SELECT (SELECT count(*) FROM payment)::text AS payments, (SELECT count(*) FROM qr_code_use)::text AS code_uses,
           (SELECT count(*) FROM payment_refund)::text AS refunds, (SELECT count(*) FROM purse_load)::text AS loads,
           (SELECT count(*) FROM ledger_entry)::text AS entries, (SELECT count(*) FROM sim_bank_authorization WHERE approved)::text AS bank_approvals`);
  return Object.fromEntries(Object.entries(r.rows[0]).map(([k, v]) => [k, Number(v)]));
}

/**
 * An authorizer that delegates to another after a delay, ignoring the caller's signal for the
 * delegated call: like a bank that received the request and decides it after the caller gave up.
 */
export class SlowBank implements BankAuthorizer {
  calls = 0;
  reversals: string[] = [];
  constructor(private readonly inner: BankAuthorizer, private readonly delayMs: number) {}
  async authorize(req: BankAuthRequest, signal: AbortSignal): Promise<BankAuthResult> {
    this.calls++;
    await new Promise((r) => setTimeout(r, this.delayMs));
    void signal;
    return this.inner.authorize(req, new AbortController().signal);
  }
  async reverse(req: BankReversalRequest, signal: AbortSignal): Promise<void> {
    this.reversals.push(req.authId);
    return this.inner.reverse(req, signal);
  }
}

/** An authorizer that fails every call (a bank link that is down). */
export class DownBank implements BankAuthorizer {
  async authorize(): Promise<BankAuthResult> { throw new Error('connection refused'); }
  async reverse(): Promise<void> { throw new Error('connection refused'); }
}

export async function verifyLedger(db: Db): Promise<{ ok: boolean; mismatches: unknown[]; negativeAccounts: string[] }> {
  return new Ledger().verify(db);
}
