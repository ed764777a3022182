/**
 * An in-process app with the cards, cases, complaints and audit plugins, composed by the real
 * `buildApp` (adapters/http/app.ts) and, until app.ts registers them itself, these four plugins
 * on top: the same composition the engine will run. Plus fixtures: a bank, a pinned clock, keys,
 * valid national ID numbers.
 */
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from '../../adapters/http/app.ts';
import type { AppDeps } from '../../adapters/http/context.ts';
import { cardRoutes } from '../../adapters/http/plugins/cards.ts';
import { caseRoutes } from '../../adapters/http/plugins/cases.ts';
import { complaintRoutes } from '../../adapters/http/plugins/complaints.ts';
import { auditRoutes } from '../../adapters/http/plugins/audit.ts';
import { cards_options_default, type CardsOptions, type TapSource } from '../../adapters/cards/index.ts';
import { nationalIdCheckChar } from '../../engine/cards/index.ts';
import type { Db } from '../../adapters/postgres/db.ts';
import { testDeps } from './deps.ts';
import { bearer, mintKey } from './http.ts';

export type CardsDeps = AppDeps & { cardsOptions: CardsOptions; misuseTapSource?: TapSource };

/** A clock tests move by hand. */
export class TestClock {
  constructor(public t: Date) {}
  now = (): Date => new Date(this.t.getTime());
  advance(ms: number): void {
    this.t = new Date(this.t.getTime() + ms);
  }
}

export interface CardsApp {
  app: FastifyInstance;
  deps: CardsDeps;
  clock: TestClock;
  tokens: { admin: string; finance: string; auditor: string; operator: string; bank: string };
  adminKeyId: string;
}

export const test_bank = '102100099996';
export const other_bank = '103100000026';

export async function buildCardsApp(db: Db, opts: { logger?: Logger; options?: Partial<CardsOptions>; overrides?: Partial<AppDeps>; start?: Date; tapSource?: TapSource } = {}): Promise<CardsApp> {
  const clock = new TestClock(opts.start ?? new Date('2026-11-28T02:00:00Z'));
  const deps: CardsDeps = {
    ...testDeps(db, { now: clock.now, ...opts.overrides }),
    cardsOptions: { ...cards_options_default, ...opts.options },
    misuseTapSource: opts.tapSource,
  };
  const app = await buildApp(deps, opts.logger ?? false);
  // Registered here until adapters/http/app.ts composes them; never twice.
  if (!app.hasRoute({ method: 'POST', url: '/v1/card-applications' })) await app.register(cardRoutes, deps);
  if (!app.hasRoute({ method: 'GET', url: '/v1/cases' })) await app.register(caseRoutes, deps);
  if (!app.hasRoute({ method: 'POST', url: '/v1/complaints' })) await app.register(complaintRoutes, deps);
  if (!app.hasRoute({ method: 'GET', url: '/v1/audit-log' })) await app.register(auditRoutes, deps);
  await app.ready();
  await db.query(`INSERT INTO bank (code, name) VALUES ($1, 'Test Bank'), ($2, 'Other Bank') ON CONFLICT DO NOTHING`, [test_bank, other_bank]);
  const admin = await mintKey(db, 'admin');
  return {
    app, deps, clock, adminKeyId: admin.keyId,
    tokens: {
      admin: admin.token,
      finance: (await mintKey(db, 'finance')).token,
      auditor: (await mintKey(db, 'auditor')).token,
      operator: (await mintKey(db, 'operator', 'OP1')).token,
      bank: (await mintKey(db, 'bank', test_bank)).token,
    },
  };
}

/** A valid GB 11643 number: region, birth date YYYYMMDD, a 3-digit sequence, the check character. */
export function nationalId(region: string, birth: string, seq: number): string {
  const first17 = `${region}${birth}${String(seq).padStart(3, '0')}`;
  return first17 + nationalIdCheckChar(first17);
}

export interface Applied {
  personId: string;
  physical: string;
  ecard: string;
}

let applicationCounter = 0;

/** Applies for a card through the API and returns the person and card numbers. */
export async function applyCard(a: CardsApp, person: { name: string; national_id: string; phone?: string; address?: string }, extra: Record<string, unknown> = {}): Promise<Applied> {
  const r = await a.app.inject({
    method: 'POST', url: '/v1/card-applications', headers: bearer(a.tokens.admin),
    payload: {
      application_id: `app-${++applicationCounter}-${Date.now()}`, person, eligibility: { basis: 'LOCAL_HOUSEHOLD' }, issuing_bank: test_bank,
      channel: 'COUNTER', ...extra,
    },
  });
  if (r.statusCode !== 201) throw new Error(`application failed: ${r.statusCode} ${r.body}`);
  const b = r.json() as { person_id: string; cards: { card_no: string; form: string }[] };
  return { personId: b.person_id, physical: b.cards.find((c) => c.form === 'PHYSICAL')!.card_no, ecard: b.cards.find((c) => c.form === 'ECARD')!.card_no };
}

let requestCounter = 0;
export const rid = (prefix = 'req'): string => `${prefix}-${++requestCounter}-${process.pid}`;

/** POST a lifecycle action on a card. */
export async function cardAction(a: CardsApp, cardNo: string, path: string, body: Record<string, unknown> = {}, token = a.tokens.admin): Promise<LightMyRequestResponse> {
  return a.app.inject({ method: 'POST', url: `/v1/cards/${cardNo}/${path}`, headers: bearer(token), payload: { request_id: rid(path), channel: 'COUNTER', ...body } });
}
