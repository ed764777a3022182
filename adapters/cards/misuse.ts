/**
 * The daily misuse job: read one business date's accepted taps with their terminals' station
 * coordinates (one set-based query), run the pure detectors (engine/cards/misuse.ts), and raise
 * one case per signal with one statement, idempotent by (kind, source_ref): running it twice for
 * a date raises nothing new.
 */
import { detectAbnormalCounts, detectImpossibleTravel, misuse_limits_default, type MisuseLimits, type TapForMisuse } from '../../engine/cards/index.ts';
import { checkDate, shanghai_offset_ms } from '../../engine/clearing/calendar.ts';
import { appendAudit } from '../audit/index.ts';
import { withTx, type Db, type Queryable } from '../postgres/db.ts';

export const misuse_actor = 'system:misuse-job';

export const plans = {
  raise_cases: `
    WITH c AS (
      INSERT INTO risk_case (kind, source_ref, card_no, terminal_id, details, state, opened_at)
      SELECT kind, source_ref, card_no, terminal_id, details, 'OPEN', $6
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) AS s(kind, source_ref, card_no, terminal_id, details)
      ON CONFLICT (kind, source_ref) DO NOTHING
      RETURNING id)
    INSERT INTO risk_case_event (case_id, from_state, to_state, actor, note, at)
    SELECT id, NULL, 'OPEN', $7, 'raised by the daily misuse job', $6 FROM c
    RETURNING case_id`,
  /** Where accepted taps live: the transit ingestion's table, when its migration has run. */
  table_exists: `SELECT to_regclass($1) IS NOT NULL AS present`,
} as const;

export interface MisuseRun {
  businessDate: string;
  taps: number;
  impossibleTravel: number;
  abnormalCounts: number;
  casesRaised: number;
}

/** Signals of one date's taps, raised as cases. Taps are given (the job reads them; tests pass them). */
export async function raiseMisuseCases(db: Db, businessDate: string, taps: readonly TapForMisuse[], limits: MisuseLimits, now: Date): Promise<MisuseRun> {
  checkDate(businessDate);
  const travel = detectImpossibleTravel(taps, limits);
  const counts = detectAbnormalCounts(taps, limits);
  const kinds: string[] = [], refs: string[] = [], cards: string[] = [], terminals: (string | null)[] = [], details: string[] = [];
  for (const t of travel) {
    kinds.push('IMPOSSIBLE_TRAVEL');
    refs.push(`misuse:${businessDate}:${t.cardNo}`);
    cards.push(t.cardNo);
    terminals.push(t.to.terminalId);
    details.push(JSON.stringify({
      business_date: businessDate, from_terminal: t.from.terminalId, from_at: t.from.at.toISOString(), to_terminal: t.to.terminalId,
      to_at: t.to.at.toISOString(), distance_km: Math.round(t.distanceKm * 1000) / 1000,
      speed_kmh: Number.isFinite(t.speedKmh) ? Math.round(t.speedKmh) : null, speed_kmh_max: limits.speedKmhMax, pairs: t.pairs,
    }));
  }
  for (const c of counts) {
    kinds.push('ABNORMAL_TAP_COUNT');
    refs.push(`misuse:${businessDate}:${c.cardNo}`);
    cards.push(c.cardNo);
    terminals.push(null);
    details.push(JSON.stringify({ business_date: businessDate, taps: c.taps, daily_taps_max: c.limit }));
  }
  const raised = await withTx(db, async (tx) => {
    const n = kinds.length === 0 ? 0 : (await tx.query(plans.raise_cases, [kinds, refs, cards, terminals, details, now, misuse_actor])).rows.length;
    await appendAudit(tx, [{
      at: now, actor: misuse_actor, role: 'system', purpose: null, action: 'MISUSE_DETECTION', subject: `business_date:${businessDate}`, fields: [],
      details: { taps: String(taps.length), signals: String(kinds.length), cases_raised: String(n) },
    }]);
    return n;
  });
  return { businessDate, taps: taps.length, impossibleTravel: travel.length, abnormalCounts: counts.length, casesRaised: raised };
}

/**
 * Source of accepted taps for a business date, as `TapForMisuse`. The transit ingestion owns the
 * table; this is the one statement that knows its shape (see `accepted_taps_source`).
 */
export interface TapSource {
  table: string;
  sql: string;
}

/** Terminal local time (Asia/Shanghai wall clock, YYYYMMDDhhmmss) to an instant. */
export function localTimeToInstant(localTime: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(localTime);
  if (!m) throw new RangeError('local time must be YYYYMMDDhhmmss');
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) - shanghai_offset_ms);
}

export async function loadTaps(q: Queryable, source: TapSource, businessDate: string): Promise<TapForMisuse[]> {
  const r = await q.query<{ card_no: string; terminal_id: string; local_time: string; latitude: string | null; longitude: string | null }>(source.sql, [businessDate]);
  return r.rows.map((x) => ({
    cardNo: x.card_no, terminalId: x.terminal_id, at: localTimeToInstant(x.local_time),
    latitude: x.latitude === null ? null : Number(x.latitude), longitude: x.longitude === null ? null : Number(x.longitude),
  }));
}

/** The job: `detectMisuse(db, '2026-11-28')` reads that date's accepted taps and raises cases. */
export async function detectMisuse(db: Db, businessDate: string, opts: { limits?: MisuseLimits; now: Date; source?: TapSource }): Promise<MisuseRun> {
  const source = opts.source ?? accepted_taps_source;
  const exists = await db.query<{ present: boolean }>(plans.table_exists, [source.table]);
  if (!exists.rows[0].present) {
    throw new Error(`misuse job: the accepted-tap table ${source.table} does not exist (transit ingestion's migration has not run)`);
  }
  const taps = await loadTaps(db, source, checkDate(businessDate));
  return raiseMisuseCases(db, businessDate, taps, opts.limits ?? misuse_limits_default, opts.now);
}

// Transit ingestion's record table (migrations/0004_transit.sql): one row per record, accepted
// or rejected. Only accepted taps are signals: a rejected one (hotlisted, bad TAC, duplicate) has
// its own handling and may not even be the card's real journey. The business date is that of the
// clearing cycle the tap was accepted into (tap_record_business_date is a BRIN index on it).
// LEFT JOIN: a terminal without coordinates still counts towards the daily tap count.
export const accepted_taps_source: TapSource = {
  table: 'public.tap_record',
  sql: `
    SELECT t.card_no, t.terminal_id, t.local_time, term.latitude::text AS latitude, term.longitude::text AS longitude
    FROM tap_record t LEFT JOIN terminal term ON term.id = t.terminal_id
    WHERE t.business_date = $1 AND t.outcome = 'ACCEPTED'`,
};
