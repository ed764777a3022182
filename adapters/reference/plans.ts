/**
 * Reference data SQL, as named statements. Every statement that takes many rows takes them as
 * arrays (`unnest`), so an import of 10,000 terminals is a handful of statements, not 10,000.
 */

// --------------------------------------------------------------------------------------- banks

export const banks_by_codes = `
SELECT code, name, created_at, updated_at FROM bank WHERE code = ANY ($1::text[])`;

export const insert_banks = `
INSERT INTO bank (code, name, created_at, updated_at)
SELECT code, name, $3, $3 FROM unnest($1::text[], $2::text[]) AS r(code, name)
ON CONFLICT (code) DO NOTHING
RETURNING code`;

export const list_banks = `
SELECT code, name, created_at, updated_at FROM bank
WHERE ($1::text IS NULL OR code > $1) ORDER BY code LIMIT $2`;

export const lock_bank = `SELECT code, name, created_at, updated_at FROM bank WHERE code = $1 FOR UPDATE`;

export const update_bank = `UPDATE bank SET name = $2, updated_at = $3 WHERE code = $1`;

// ----------------------------------------------------------------------------------- merchants

const merchant_columns = 'id, name, kind, is_operator, acquiring_bank, settlement_account, status, created_at, updated_at';

export const merchants_by_ids = `SELECT ${merchant_columns} FROM merchant WHERE id = ANY ($1::text[])`;

export const insert_merchants = `
INSERT INTO merchant (id, name, kind, is_operator, acquiring_bank, settlement_account, status, created_at, updated_at)
SELECT id, name, kind, is_operator, bank, account, status, $8, $8
FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::text[], $6::text[], $7::text[])
  AS r(id, name, kind, is_operator, bank, account, status)
ON CONFLICT (id) DO NOTHING
RETURNING id`;

export const list_merchants = `
SELECT ${merchant_columns} FROM merchant
WHERE ($1::text IS NULL OR id > $1)
  AND ($2::text IS NULL OR kind = $2)
  AND ($3::boolean IS NULL OR is_operator = $3)
  AND ($4::text IS NULL OR acquiring_bank = $4)
  AND ($5::text IS NULL OR status = $5)
ORDER BY id LIMIT $6`;

export const lock_merchant = `SELECT ${merchant_columns} FROM merchant WHERE id = $1 FOR UPDATE`;

export const update_merchant = `
UPDATE merchant SET name = $2, acquiring_bank = $3, settlement_account = $4, status = $5, updated_at = $6 WHERE id = $1`;

// ------------------------------------------------------------------------------- fee schedules

const fee_columns = 'merchant_id, effective_from, rate::text AS rate, min_fen, max_fen, created_at, created_by';

export const fee_schedules_by_keys = `
SELECT ${fee_columns} FROM merchant_fee_schedule
WHERE (merchant_id, effective_from) IN (SELECT * FROM unnest($1::text[], $2::date[]))`;

export const insert_fee_schedules = `
INSERT INTO merchant_fee_schedule (merchant_id, effective_from, rate, min_fen, max_fen, created_at, created_by)
SELECT merchant_id, effective_from, rate, min_fen, max_fen, $6, $7
FROM unnest($1::text[], $2::date[], $3::numeric[], $4::bigint[], $5::bigint[])
  AS r(merchant_id, effective_from, rate, min_fen, max_fen)
ON CONFLICT (merchant_id, effective_from) DO NOTHING
RETURNING merchant_id, effective_from`;

export const list_fee_schedules = `
SELECT ${fee_columns} FROM merchant_fee_schedule
WHERE merchant_id = $1 AND ($2::date IS NULL OR effective_from > $2)
ORDER BY effective_from LIMIT $3`;

/** A cycle that is no longer open has been (or is being) priced: schedules before it are history. */
export const last_closed_business_date = `
SELECT max(business_date) AS business_date FROM clearing_cycle WHERE state <> 'OPEN'`;

// ----------------------------------------------------------------------------------- terminals

const terminal_columns = `id, merchant_id, station_id, line_id, latitude::text AS latitude, longitude::text AS longitude,
  status, created_at, updated_at`;

export const terminals_by_ids = `SELECT ${terminal_columns} FROM terminal WHERE id = ANY ($1::text[])`;

export const insert_terminals = `
INSERT INTO terminal (id, merchant_id, station_id, line_id, latitude, longitude, status, created_at, updated_at)
SELECT id, merchant_id, station_id, line_id, latitude, longitude, status, $8, $8
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::numeric[], $7::text[])
  AS r(id, merchant_id, station_id, line_id, latitude, longitude, status)
ON CONFLICT (id) DO NOTHING
RETURNING id`;

export const list_terminals = `
SELECT ${terminal_columns} FROM terminal
WHERE ($1::text IS NULL OR id > $1)
  AND ($2::text IS NULL OR merchant_id = $2)
  AND ($3::text IS NULL OR line_id = $3)
  AND ($4::text IS NULL OR status = $4)
ORDER BY id LIMIT $5`;

export const lock_terminal = `SELECT ${terminal_columns} FROM terminal WHERE id = $1 FOR UPDATE`;

export const update_terminal = `
UPDATE terminal SET station_id = $2, line_id = $3, latitude = $4, longitude = $5, status = $6, updated_at = $7 WHERE id = $1`;

// --------------------------------------------------------------------------------------- cards

const card_columns = `card_no, issuing_bank, form, linked_card_no, person_id, status, status_since, daily_limit_fen,
  replaced_by, created_at`;

export const cards_by_numbers = `SELECT ${card_columns} FROM card WHERE card_no = ANY ($1::text[])`;

export const insert_cards = `
INSERT INTO card (card_no, issuing_bank, form, linked_card_no, person_id, status, status_since, daily_limit_fen, created_at)
SELECT card_no, issuing_bank, form, linked_card_no, person_id, status, status_since, daily_limit_fen, $9
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[], $8::bigint[])
  AS r(card_no, issuing_bank, form, linked_card_no, person_id, status, status_since, daily_limit_fen)
ON CONFLICT (card_no) DO NOTHING
RETURNING card_no`;

/** Events in array order, so ids (the tie-break of equal effective times) follow the history. */
export const insert_card_status_events = `
INSERT INTO card_status_event (card_no, status, effective_at, actor, reason, recorded_at)
SELECT card_no, status, effective_at, $4, $5, $6
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS e(card_no, status, effective_at, n)
ORDER BY n`;

export const list_cards = `
SELECT ${card_columns} FROM card
WHERE ($1::text IS NULL OR card_no > $1)
  AND ($2::text IS NULL OR issuing_bank = $2)
  AND ($3::text IS NULL OR status = $3)
  AND ($4::text IS NULL OR form = $4)
ORDER BY card_no LIMIT $5`;

export const lock_card = `SELECT card_no FROM card WHERE card_no = $1 FOR UPDATE`;

export const card_status_events_of = `
SELECT id, card_no, status, effective_at, actor, reason, recorded_at FROM card_status_event
WHERE card_no = $1 AND ($2::bigint IS NULL OR id > $2) ORDER BY id LIMIT $3`;

export const card_status_events_of_cards = `
SELECT id, card_no, status, effective_at FROM card_status_event WHERE card_no = ANY ($1::text[]) ORDER BY card_no, id`;

export const insert_card_status_event = `
INSERT INTO card_status_event (card_no, status, effective_at, actor, reason, recorded_at)
VALUES ($1, $2, $3, $4, $5, coalesce($6::timestamptz, now()))
RETURNING id, card_no, status, effective_at, actor, reason, recorded_at`;

/** The card's current status is its latest event (effective time, then recording order). */
export const sync_card_status = `
UPDATE card c SET status = e.status, status_since = e.effective_at
FROM (SELECT status, effective_at FROM card_status_event WHERE card_no = $1
      ORDER BY effective_at DESC, id DESC LIMIT 1) e
WHERE c.card_no = $1 AND (c.status, c.status_since) IS DISTINCT FROM (e.status, e.effective_at)
RETURNING c.status, c.status_since`;

export const card_status_now = `SELECT status, status_since FROM card WHERE card_no = $1`;

// -------------------------------------------------------------------------------------- audit

export const insert_reference_events = `
INSERT INTO reference_event (entity, entity_id, action, actor, at, changes)
SELECT $1, entity_id, $3, $4, $5, changes
FROM unnest($2::text[], $6::jsonb[]) AS r(entity_id, changes)`;

export const reference_events_of = `
SELECT id, entity, entity_id, action, actor, at, changes FROM reference_event
WHERE entity = $1 AND entity_id = $2 AND ($4::bigint IS NULL OR id > $4) ORDER BY id LIMIT $3`;

/**
 * After a bulk load, fresh statistics: without them the planner guesses a few hundred rows and
 * picks nested loops that turn set-based look-ups of a batch (and ledger checks) quadratic.
 */
export const analyze_after_seed = `
ANALYZE bank, merchant, merchant_fee_schedule, terminal, card, card_status_event, reference_event,
  ledger_account, ledger_entry, ledger_posting`;
