/**
 * The misuse job on real data: accepted taps in transit ingestion's `tap_record`
 * (migrations/0004_transit.sql), with station coordinates from the terminal registry, raise an
 * IMPOSSIBLE_TRAVEL case once; rejected taps and other dates are not signals. And the cards
 * settings come from Config (named environment variables, validated), not from a second reader.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../adapters/http/app.ts';
import { detectMisuse } from '../adapters/cards/index.ts';
import { accepted_taps_source } from '../adapters/cards/misuse.ts';
import { cards_options_default, cardsOptionsFromConfig, cardsOptionsFromEnv } from '../adapters/cards/options.ts';
import { loadConfig } from '../adapters/config.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { testDeps } from './support/deps.ts';
import { bearer, mintKey } from './support/http.ts';

let db: TestDb;
let app: FastifyInstance;
let admin: string;
const now = new Date('2026-11-30T02:00:00Z');
const card_fast = '6210000000000000011';
const card_slow = '6210000000000000012';
const card_rejected = '6210000000000000013';

interface Tap {
  card: string;
  counter: number;
  terminal: string;
  seq: number;
  localTime: string;
  date: string;
  outcome: 'ACCEPTED' | 'REJECTED';
}

/** Rows as transit ingestion writes them: one statement for all (the columns of 0004). */
async function insertTaps(taps: Tap[]): Promise<void> {
  const rejected = taps.map((t) => (t.outcome === 'REJECTED' ? 'CARD_HOTLISTED' : null));
  await db.pool.query(`
    INSERT INTO tap_record (batch_no, idx, operator_id, outcome, reason, card_no, card_counter, txn_type, amount_fen, balance_before_fen,
      terminal_id, terminal_seq, local_time, key_version, tac, business_date)
    SELECT 1, i - 1, 'OP1', outcome, reason, card_no, counter, 9, 200, 10000, terminal_id, seq, local_time, 1, '00000000', business_date::date
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::text[], $8::text[])
      WITH ORDINALITY AS s(outcome, reason, card_no, counter, terminal_id, seq, local_time, business_date, i)`,
  [taps.map((t) => t.outcome), rejected, taps.map((t) => t.card), taps.map((t) => t.counter), taps.map((t) => t.terminal),
    taps.map((t) => t.seq), taps.map((t) => t.localTime), taps.map((t) => t.date)]);
}

beforeAll(async () => {
  db = await freshDatabase(4);
  app = await buildApp(testDeps(db.pool, { now: () => now }), false);
  await app.ready();
  admin = (await mintKey(db.pool, 'admin')).token;
  await db.pool.query(`INSERT INTO bank (code, name) VALUES ('102100099996', 'Test Bank')`);
  await db.pool.query(`INSERT INTO merchant (id, name, kind, is_operator, acquiring_bank, settlement_account) VALUES ('OP1', 'Bus Co', 'TRANSIT', true, '102100099996', '6222000000001')`);
  // S1 and S2 are 33.4 km apart; T9 has no coordinates.
  await db.pool.query(`INSERT INTO terminal (id, merchant_id, station_id, latitude, longitude) VALUES
    ('420300000201', 'OP1', 'S1', 30.000000, 114.000000), ('420300000202', 'OP1', 'S2', 30.300000, 114.000000),
    ('420300000209', 'OP1', 'S9', NULL, NULL)`);
  await insertTaps([
    // 33 km in 5 minutes (Asia/Shanghai local times): impossible.
    { card: card_fast, counter: 1, terminal: '420300000201', seq: 1, localTime: '20261129080000', date: '2026-11-29', outcome: 'ACCEPTED' },
    { card: card_fast, counter: 2, terminal: '420300000202', seq: 1, localTime: '20261129080500', date: '2026-11-29', outcome: 'ACCEPTED' },
    { card: card_fast, counter: 3, terminal: '420300000209', seq: 1, localTime: '20261129090000', date: '2026-11-29', outcome: 'ACCEPTED' },
    // The same trip in an hour: plausible.
    { card: card_slow, counter: 1, terminal: '420300000201', seq: 2, localTime: '20261129080000', date: '2026-11-29', outcome: 'ACCEPTED' },
    { card: card_slow, counter: 2, terminal: '420300000202', seq: 2, localTime: '20261129090000', date: '2026-11-29', outcome: 'ACCEPTED' },
    // Impossible only if a rejected tap counted.
    { card: card_rejected, counter: 1, terminal: '420300000201', seq: 3, localTime: '20261129080000', date: '2026-11-29', outcome: 'ACCEPTED' },
    { card: card_rejected, counter: 2, terminal: '420300000202', seq: 99, localTime: '20261129080100', date: '2026-11-29', outcome: 'REJECTED' },
    // Impossible only if another business date counted.
    { card: card_slow, counter: 3, terminal: '420300000201', seq: 4, localTime: '20261129090200', date: '2026-11-30', outcome: 'ACCEPTED' },
  ]);
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('misuse job over tap_record', () => {
  it('the default source is the transit table, accepted taps only', () => {
    expect(accepted_taps_source.table).toBe('public.tap_record');
    expect(accepted_taps_source.sql).toMatch(/outcome = 'ACCEPTED'/);
  });

  it('raises IMPOSSIBLE_TRAVEL for the fast card only, idempotently, from the real table', async () => {
    const run = await detectMisuse(db.pool, '2026-11-29', { now });
    expect(run).toEqual({ businessDate: '2026-11-29', taps: 6, impossibleTravel: 1, abnormalCounts: 0, casesRaised: 1 });
    const cases = (await db.pool.query(`SELECT kind, source_ref, card_no, terminal_id, details FROM risk_case ORDER BY id`)).rows;
    expect(cases).toHaveLength(1);
    expect(cases[0]).toMatchObject({
      kind: 'IMPOSSIBLE_TRAVEL', source_ref: `misuse:2026-11-29:${card_fast}`, card_no: card_fast, terminal_id: '420300000202',
      details: { from_terminal: '420300000201', to_terminal: '420300000202', from_at: '2026-11-29T00:00:00.000Z', to_at: '2026-11-29T00:05:00.000Z' },
    });
    expect(cases[0].details.speed_kmh).toBeGreaterThan(350);

    const again = await detectMisuse(db.pool, '2026-11-29', { now });
    expect(again.casesRaised).toBe(0);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM risk_case`)).rows[0].n).toBe(1);
  });

  it('through the route too (POST /v1/cases/detections): the other date has no signal', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/cases/detections', headers: bearer(admin), payload: { business_date: '2026-11-30' } });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ business_date: '2026-11-30', taps: 1, impossible_travel: 0, abnormal_counts: 0, cases_raised: 0 });
    const same = await app.inject({ method: 'POST', url: '/v1/cases/detections', headers: bearer(admin), payload: { business_date: '2026-11-29' } });
    expect(same.json()).toMatchObject({ taps: 6, impossible_travel: 1, cases_raised: 0 });
  });

  it('takes its thresholds from Config: a higher speed limit or lower tap limit changes the outcome', async () => {
    const lax = cardsOptionsFromConfig(loadConfig({ MISUSE_SPEED_KMH_MAX: '500' }));
    expect((await detectMisuse(db.pool, '2026-11-29', { now, limits: lax.misuse })).impossibleTravel).toBe(0);
    const strict = cardsOptionsFromConfig(loadConfig({ MISUSE_DAILY_TAPS_MAX: '2' }));
    const run = await detectMisuse(db.pool, '2026-11-29', { now, limits: strict.misuse });
    expect(run).toMatchObject({ abnormalCounts: 1, casesRaised: 1 });
    const counted = (await db.pool.query(`SELECT card_no, details FROM risk_case WHERE kind = 'ABNORMAL_TAP_COUNT'`)).rows;
    expect(counted).toEqual([{ card_no: card_fast, details: { business_date: '2026-11-29', taps: 3, daily_taps_max: 2 } }]);
  });
});

describe('cards settings in Config', () => {
  it('defaults equal the capability\'s defaults', () => {
    expect(cardsOptionsFromConfig(loadConfig({}))).toEqual(cards_options_default);
    expect(cardsOptionsFromEnv({})).toEqual(cards_options_default);
  });

  it('reads the named variables', () => {
    const c = loadConfig({
      MISUSE_SPEED_KMH_MAX: '90', MISUSE_DAILY_TAPS_MAX: '50', COMPLAINT_DEADLINE_DAYS: '7',
      COMPLAINT_FILINGS_PER_IP_BURST: '3', COMPLAINT_FILING_REFILL_MS: '1000', AUTH_FAILURES_MAX: '5', AUTH_FAILURE_WINDOW_MS: '30000',
    });
    expect(c).toMatchObject({
      misuseSpeedKmhMax: 90, misuseDailyTapsMax: 50, complaintDeadlineDays: 7, complaintFilingsPerIpBurst: 3, complaintFilingRefillMs: 1000,
      authFailuresMax: 5, authFailureWindowMs: 30_000,
    });
    const o = cardsOptionsFromConfig(c);
    expect(o.misuse).toMatchObject({ speedKmhMax: 90, dailyTapsMax: 50 });
    expect(o.complaintDeadlineDays).toBe(7);
    expect(o.complaintFilingBucket).toMatchObject({ capacity: 3, refillMs: 1000 });
  });

  it.each([
    ['MISUSE_SPEED_KMH_MAX', '0'], ['MISUSE_SPEED_KMH_MAX', '2001'], ['MISUSE_SPEED_KMH_MAX', 'fast'], ['MISUSE_DAILY_TAPS_MAX', '1.5'],
    ['COMPLAINT_DEADLINE_DAYS', '0'], ['COMPLAINT_DEADLINE_DAYS', '91'], ['COMPLAINT_FILINGS_PER_IP_BURST', '-1'],
    ['COMPLAINT_FILING_REFILL_MS', '0'], ['AUTH_FAILURES_MAX', '0'], ['AUTH_FAILURE_WINDOW_MS', '10'],
  ])('refuses %s=%s at start-up', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^${name} must be an integer`));
  });
});
