/**
 * Display names of finance users: the label of their API key. Pages show who proposed, decided
 * or was assigned something by name, from one query per page for all the key ids on it.
 */
import type { Queryable } from '../postgres/db.ts';

/** Key ids looked up per page at most (a page lists at most this many people). */
export const names_per_page_max = 500;

export const plans = {
  labels: `SELECT id, label FROM api_key WHERE id = ANY($1::text[])`,
} as const;

export async function labelsOf(db: Queryable, keyIds: Iterable<string | null | undefined>): Promise<Map<string, string>> {
  const ids = [...new Set([...keyIds].filter((k): k is string => typeof k === 'string' && /^key_[a-z0-9]{16}$/.test(k)))].slice(0, names_per_page_max);
  if (ids.length === 0) return new Map();
  const r = await db.query<{ id: string; label: string }>(plans.labels, [ids]);
  return new Map(r.rows.map((x) => [x.id, x.label]));
}
