/** What the card stores share: who is acting, the card row, status events, reference events. */
import type { Queryable } from '../postgres/db.ts';

/** Who acts: an API key (or a `system:` job) in a role, through a channel. */
export interface Actor {
  keyId: string;
  role: string;
}

export const system_actor: Actor = { keyId: 'system:misuse-job', role: 'system' };

export interface CardRow {
  card_no: string;
  issuing_bank: string;
  form: 'PHYSICAL' | 'ECARD';
  linked_card_no: string | null;
  person_id: bigint | null;
  status: string;
  status_since: Date;
  replaced_by: string | null;
}

export const plans = {
  lock_card: `SELECT card_no, issuing_bank, form, linked_card_no, person_id, status, status_since, replaced_by FROM card WHERE card_no = $1 FOR UPDATE`,
  lock_linked_ecards: `
    SELECT card_no, issuing_bank, form, linked_card_no, person_id, status, status_since, replaced_by
    FROM card WHERE linked_card_no = $1 AND form = 'ECARD' ORDER BY card_no FOR UPDATE`,
  insert_status_events: `
    INSERT INTO card_status_event (card_no, status, effective_at, actor, reason, recorded_at)
    SELECT card_no, status, $3, $4, $5, $3 FROM unnest($1::text[], $2::text[]) AS e(card_no, status)`,
  set_status: `
    UPDATE card c SET status = u.status, status_since = $3
    FROM unnest($1::text[], $2::text[]) AS u(card_no, status) WHERE c.card_no = u.card_no`,
  reference_event_table: `SELECT to_regclass('public.reference_event') IS NOT NULL AS present`,
  insert_reference_events: `
    INSERT INTO reference_event (entity, entity_id, action, actor, at, changes)
    SELECT 'card', entity_id, action, $3, $4, changes FROM unnest($1::text[], $2::text[], $5::jsonb[]) AS r(entity_id, action, changes)`,
  next_serial: `SELECT nextval('card_serial_seq') AS serial`,
  insert_card: `
    INSERT INTO card (card_no, issuing_bank, form, linked_card_no, person_id, status, status_since, created_at)
    VALUES ($1, $2, $3, $4, $5, 'ISSUED', $6, $6)
    ON CONFLICT (card_no) DO NOTHING RETURNING card_no`,
  hotlist_version: `SELECT coalesce(max(version), 0) AS version FROM hotlist_change`,
} as const;

/** Card status changes, as 0003 asks: an event row (effective time, actor, reason) and the card's current status. */
export async function writeStatusChanges(q: Queryable, changes: readonly { cardNo: string; status: string }[], at: Date, actor: string, reason: string | null): Promise<void> {
  if (changes.length === 0) return;
  const cards = changes.map((c) => c.cardNo);
  const statuses = changes.map((c) => c.status);
  await q.query(plans.insert_status_events, [cards, statuses, at, actor, reason]);
  const nonIssued = changes.filter((c) => c.status !== 'ISSUED');
  if (nonIssued.length > 0) await q.query(plans.set_status, [nonIssued.map((c) => c.cardNo), nonIssued.map((c) => c.status), at]);
}

// The reference-data history table (0006_reference_extra.sql) doubles as the invalidation feed of
// ingestion's in-memory card cache, so cards created here must appear in it. Looked up once per
// process rather than assumed, so this module also runs against a schema without it.
let referenceEventPresent: boolean | undefined;

/** Records created or changed cards in the reference history, when that table exists. */
export async function writeReferenceEvents(q: Queryable, events: readonly { cardNo: string; action: 'CREATED' | 'UPDATED'; changes: Record<string, [unknown, unknown]> | null }[], actor: string, at: Date): Promise<void> {
  if (events.length === 0) return;
  if (referenceEventPresent === undefined) {
    const r = await q.query<{ present: boolean }>(plans.reference_event_table);
    referenceEventPresent = r.rows[0].present;
  }
  if (!referenceEventPresent) return;
  await q.query(plans.insert_reference_events, [
    events.map((e) => e.cardNo), events.map((e) => e.action), actor, at, events.map((e) => (e.changes === null ? null : JSON.stringify(e.changes))),
  ]);
}

export async function hotlistVersion(q: Queryable): Promise<bigint> {
  const r = await q.query<{ version: bigint }>(plans.hotlist_version);
  return r.rows[0].version;
}

/** `person:per_<id>`-style texts for ids shown to callers. */
export function personIdText(id: bigint): string {
  return `per_${id}`;
}

export function parsePersonId(text: string): bigint | null {
  const m = /^per_([1-9][0-9]{0,17})$/.exec(text);
  return m ? BigInt(m[1]) : null;
}
