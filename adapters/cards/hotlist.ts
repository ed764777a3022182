/**
 * The terminals' hotlist, read at a version. Each read is one statement, so the version and the
 * rows come from one snapshot: the version a page reports is exactly the state it lists.
 */
import { conflict } from '../../engine/errors.ts';
import type { Queryable } from '../postgres/db.ts';
import type { HotlistChangeView, HotlistDeltaView, HotlistPageView } from '../protobuf/hotlist-codec.ts';

export const hotlist_page_max = 10_000;
export const hotlist_page_default = 5_000;

export const plans = {
  full_page: `
    WITH v AS (SELECT coalesce(max(version), 0) AS version FROM hotlist_change)
    SELECT v.version, c.card_no, c.status, c.status_since
    FROM v LEFT JOIN LATERAL (
      SELECT card_no, status, status_since FROM card
      WHERE status IN ('LOST_REPORTED', 'SUSPENDED', 'CANCELLED') AND card_no > $1
      ORDER BY card_no LIMIT $2) c ON true`,
  delta: `
    WITH v AS (SELECT coalesce(max(version), 0) AS version FROM hotlist_change)
    SELECT v.version AS current_version, h.version, h.card_no, h.op, h.status, h.changed_at
    FROM v LEFT JOIN LATERAL (
      SELECT version, card_no, op, status, changed_at FROM hotlist_change WHERE version > $1 ORDER BY version LIMIT $2) h ON true`,
} as const;

export async function hotlistPage(q: Queryable, cursor: string | null, limit: number): Promise<HotlistPageView> {
  const n = Math.min(limit, hotlist_page_max);
  const r = await q.query<{ version: bigint; card_no: string | null; status: string; status_since: Date }>(plans.full_page, [cursor ?? '', n]);
  const entries = r.rows.filter((x) => x.card_no !== null).map((x) => ({ card_no: x.card_no as string, status: x.status, since: x.status_since.toISOString() }));
  return {
    version: String(r.rows[0].version),
    entries,
    next_cursor: entries.length === n ? entries[entries.length - 1].card_no : null,
  };
}

export async function hotlistDelta(q: Queryable, sinceVersion: bigint, limit: number): Promise<HotlistDeltaView> {
  const n = Math.min(limit, hotlist_page_max);
  const r = await q.query<{ current_version: bigint; version: bigint | null; card_no: string; op: 'ADD' | 'REMOVE'; status: string; changed_at: Date }>(plans.delta, [String(sinceVersion), n]);
  const current = r.rows[0].current_version;
  if (sinceVersion > current) {
    throw conflict('HOTLIST_VERSION_UNKNOWN', 'That hotlist version was never issued here; download the full list again.', { current_version: String(current) });
  }
  const changes: HotlistChangeView[] = r.rows.filter((x) => x.version !== null).map((x) => ({
    version: String(x.version), card_no: x.card_no, op: x.op, status: x.status, changed_at: x.changed_at.toISOString(),
  }));
  const to = changes.length > 0 ? BigInt(changes[changes.length - 1].version) : current;
  return { from_version: String(sinceVersion), to_version: String(to), changes, more: to < current };
}
