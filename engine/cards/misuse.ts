/**
 * Misuse signals over a day's accepted taps. Pure functions over arrays: the job that reads taps
 * and raises cases lives in adapters/cards/misuse.ts.
 *
 * - Impossible travel: two consecutive taps of one card at terminals whose stations are farther
 *   apart than `speedKmhMax` allows for the time between them (a cloned card, or a card lent out
 *   and used in two places).
 * - Abnormal tap count: more taps of one card in a business date than `dailyTapsMax` (a card lent
 *   out for profit, passed along a queue).
 */

export interface MisuseLimits {
  /** Fastest plausible travel between stations; default 120 km/h (faster than any city transit). */
  speedKmhMax: number;
  /** Above this many taps in a day a card is reviewed; default 30. */
  dailyTapsMax: number;
  /**
   * Station pairs closer than this are never "impossible": two terminals of one interchange, or
   * coordinates recorded with a few hundred metres of error. Default 1 km.
   */
  distanceKmMin: number;
}

export const misuse_limits_default: MisuseLimits = { speedKmhMax: 120, dailyTapsMax: 30, distanceKmMin: 1 };
export const speed_kmh_max_limit = 2_000;
export const daily_taps_max_limit = 10_000;

export interface TapForMisuse {
  cardNo: string;
  terminalId: string;
  /** The instant of the tap (terminal local time converted to UTC). */
  at: Date;
  /** The terminal's station coordinates in degrees, null when the terminal has none. */
  latitude: number | null;
  longitude: number | null;
}

export interface ImpossibleTravel {
  cardNo: string;
  from: { terminalId: string; at: Date };
  to: { terminalId: string; at: Date };
  distanceKm: number;
  /** Speed needed to make the trip; Infinity when both taps are at the same instant. */
  speedKmh: number;
  /** All violating consecutive pairs of this card (the first is in from/to). */
  pairs: number;
}

export interface AbnormalCount {
  cardNo: string;
  taps: number;
  limit: number;
}

const earth_radius_km = 6371.0088;

/** Great-circle distance (haversine) in km. */
export function distanceKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLon = (lon2 - lon1) * rad;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * earth_radius_km * Math.asin(Math.min(1, Math.sqrt(a)));
}

export function validateLimits(l: MisuseLimits): MisuseLimits {
  if (!(l.speedKmhMax > 0 && l.speedKmhMax <= speed_kmh_max_limit)) throw new RangeError(`speedKmhMax must be in (0, ${speed_kmh_max_limit}]`);
  if (!Number.isInteger(l.dailyTapsMax) || l.dailyTapsMax < 1 || l.dailyTapsMax > daily_taps_max_limit) {
    throw new RangeError(`dailyTapsMax must be an integer in [1, ${daily_taps_max_limit}]`);
  }
  if (!(l.distanceKmMin >= 0)) throw new RangeError('distanceKmMin must be >= 0');
  return l;
}

function byCard(taps: readonly TapForMisuse[]): Map<string, TapForMisuse[]> {
  const m = new Map<string, TapForMisuse[]>();
  for (const t of taps) {
    const list = m.get(t.cardNo);
    if (list) list.push(t);
    else m.set(t.cardNo, [t]);
  }
  return m;
}

/** Cards with at least one impossible consecutive pair, one result per card, by card number. */
export function detectImpossibleTravel(taps: readonly TapForMisuse[], limits: MisuseLimits = misuse_limits_default): ImpossibleTravel[] {
  validateLimits(limits);
  const out: ImpossibleTravel[] = [];
  for (const [cardNo, list] of [...byCard(taps)].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    // Ties in time keep terminal order so the result does not depend on input order.
    list.sort((a, b) => a.at.getTime() - b.at.getTime() || (a.terminalId < b.terminalId ? -1 : a.terminalId > b.terminalId ? 1 : 0));
    let first: ImpossibleTravel | null = null;
    let pairs = 0;
    for (let i = 1; i < list.length; i++) {
      const a = list[i - 1];
      const b = list[i];
      if (a.terminalId === b.terminalId) continue;
      if (a.latitude === null || a.longitude === null || b.latitude === null || b.longitude === null) continue;
      const d = distanceKm(a.latitude, a.longitude, b.latitude, b.longitude);
      if (d <= limits.distanceKmMin) continue;
      const hours = (b.at.getTime() - a.at.getTime()) / 3_600_000;
      const speed = hours === 0 ? Number.POSITIVE_INFINITY : d / hours;
      if (speed <= limits.speedKmhMax) continue;
      pairs++;
      if (first === null) {
        first = { cardNo, from: { terminalId: a.terminalId, at: a.at }, to: { terminalId: b.terminalId, at: b.at }, distanceKm: d, speedKmh: speed, pairs: 0 };
      }
    }
    if (first !== null) out.push({ ...first, pairs });
  }
  return out;
}

/** Cards tapped more than `dailyTapsMax` times in the given taps (one business date's), by card number. */
export function detectAbnormalCounts(taps: readonly TapForMisuse[], limits: MisuseLimits = misuse_limits_default): AbnormalCount[] {
  validateLimits(limits);
  const counts = new Map<string, number>();
  for (const t of taps) counts.set(t.cardNo, (counts.get(t.cardNo) ?? 0) + 1);
  const out: AbnormalCount[] = [];
  for (const [cardNo, n] of counts) if (n > limits.dailyTapsMax) out.push({ cardNo, taps: n, limit: limits.dailyTapsMax });
  return out.sort((a, b) => (a.cardNo < b.cardNo ? -1 : a.cardNo > b.cardNo ? 1 : 0));
}
