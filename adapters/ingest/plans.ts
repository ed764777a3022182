/**
 * The SQL of transit tap ingestion, as named statements. Every statement that touches records
 * works on a whole batch at once (unnest arrays in, one row per fact out): a batch costs a fixed
 * handful of round trips whatever its size.
 *
 * Plan shapes are chosen so the planner cannot pick a scan of a whole growing table: a look-up
 * of N keys is `unnest(keys) CROSS JOIN LATERAL (... WHERE key = k ... LIMIT 1)`, which can only
 * run as N parameterized probes. Those are prepared once per connection (`prepared` below: their
 * generic plan is the same probe whatever the table's size, and planning them afresh cost ~1 ms
 * each per batch); the rest are sent unnamed and planned at each execution with the tables'
 * current sizes. Measured: written as a plain join and prepared, the tap-key
 * look-up got a generic plan while tap_record was nearly empty and kept it, a hash join over
 * every accepted tap (35 ms a batch at 150,000 taps, and growing) instead of 1,000 probes
 * (3 ms); planned each time, with statistics from when the table was small, it chose the same
 * hash join (130 ms). `= ANY(1,000 constants)` is also avoided for big lists: estimating its
 * selectivity costs the planner several milliseconds.
 */

/** Advisory lock namespace (first int4) serializing uploads of one (operator, batch_id). */
export const batch_key_lock_ns = 7401;

/** Statements whose generic plan is safe to keep (see above), by the name they are prepared under. */
export const prepared = {
  lock_operator_terminals: 'transit_lock_operator_terminals',
  card_exceptions: 'transit_card_exceptions',
  lock_purses: 'transit_lock_purses',
  accepted_by_keys: 'transit_accepted_by_keys',
} as const;

export const plans = {
  operator: `SELECT id, kind, is_operator, status FROM merchant WHERE id = $1`,

  lock_batch_key: `SELECT pg_advisory_xact_lock(${batch_key_lock_ns}, hashtext($1 || '/' || $2))`,

  batch_by_key: `
    SELECT batch_no, operator_id, batch_id, digest, received_at, cycle_id, business_date,
           accepted_count, accepted_amount_fen, rejected_count, rejected_amount_fen, rejected_index, rejected_reason
    FROM tap_batch WHERE operator_id = $1 AND batch_id = $2`,

  /**
   * The operator's terminals among the batch's, locked: uploads that share a terminal take turns
   * from here on, so each sees the other's sequence numbers and gaps (locks in id order: no
   * deadlock between two uploads). Other operators' terminals are simply not returned.
   */
  lock_operator_terminals: `
    SELECT id FROM terminal WHERE id = ANY ($1::text[]) AND merchant_id = $2 ORDER BY id FOR NO KEY UPDATE`,

  /**
   * The exceptions among the batch's card numbers, and a count to check the rest against: a row per
   * card that is not issued (issued = false), a row per issued card that was ever hotlisted or
   * cancelled with its whole status history in effective order (a card that never was cannot be
   * refused for its status), and one last row (card_no NULL) with the number of issued cards.
   * Most batches get back the count alone.
   */
  card_exceptions: `
    WITH f AS (
      SELECT k.card_no, c.card_no IS NOT NULL AS issued, b.card_no IS NOT NULL AS blocking
      FROM unnest($1::text[]) AS k(card_no)
      LEFT JOIN LATERAL (SELECT c.card_no FROM card c WHERE c.card_no = k.card_no LIMIT 1) AS c ON true
      LEFT JOIN LATERAL (SELECT b.card_no FROM card_status_event b WHERE b.card_no = k.card_no
                           AND b.status IN ('LOST_REPORTED', 'SUSPENDED', 'CANCELLED') LIMIT 1) AS b ON true)
    SELECT f.card_no, f.issued, NULL::bigint AS issued_count,
           (SELECT array_agg(e.status ORDER BY e.effective_at, e.id) FROM card_status_event e WHERE e.card_no = f.card_no) AS statuses,
           (SELECT array_agg((extract(epoch FROM e.effective_at) * 1000)::float8 ORDER BY e.effective_at, e.id)
              FROM card_status_event e WHERE e.card_no = f.card_no) AS effective_ms
    FROM f WHERE NOT f.issued OR f.blocking
    UNION ALL
    SELECT NULL, NULL, count(*) FILTER (WHERE f.issued), NULL, NULL FROM f`,

  /**
   * The purses of the batch's cards, locked in id order (FOR NO KEY UPDATE: the mode the ledger's
   * balance trigger takes later in the same transaction, so there is no lock upgrade, and it does
   * not block foreign-key checks). Uploads sharing a card take turns from here, which is also what
   * makes a tap sent in two concurrent batches land once: the second reads the first's records.
   * $2 is what this batch's taps of each card add up to: only the purses holding less than that
   * (which the purse-cover rule must split) come back with their balance, then one row with the
   * number of purses locked; usually that row alone.
   */
  lock_purses: `
    WITH l AS (
      SELECT id, credits_posted_fen - debits_posted_fen - debits_pending_fen AS available_fen
      FROM ledger_account WHERE id = ANY ($1::bigint[]) ORDER BY id FOR NO KEY UPDATE)
    SELECT l.id, l.available_fen, NULL::bigint AS locked
    FROM l JOIN unnest($1::bigint[], $2::bigint[]) AS d(id, due_fen) ON d.id = l.id
    WHERE l.available_fen < d.due_fen
    UNION ALL
    SELECT NULL, NULL, count(*) FROM l`,

  /** Accepted records with any of these tap keys (read after the purse locks); one index probe per key. */
  accepted_by_keys: `
    SELECT r.*
    FROM unnest($1::text[], $2::bigint[], $3::smallint[]) AS k(card_no, card_counter, txn_type)
    CROSS JOIN LATERAL (
      SELECT r.card_no, r.card_counter, r.txn_type, r.amount_fen, r.balance_before_fen, r.terminal_id, r.terminal_seq,
             r.local_time, r.key_version, r.tac, r.line_id, r.station_id, r.entry_station_id, r.entry_local_time,
             r.batch_no, r.idx
      FROM tap_record r
      WHERE r.card_no = k.card_no AND r.card_counter = k.card_counter AND r.txn_type = k.txn_type AND r.outcome = 'ACCEPTED'
      LIMIT 1) AS r`,

  /**
   * Per terminal: the lowest and highest accepted sequence number (two index probes each) and the
   * open gaps overlapping [lo, hi], the range of this batch's candidates on that terminal. That is
   * all it takes to tell whether a sequence number was already accepted: it was iff it lies in
   * [min, max] outside every open gap.
   */
  terminal_seq_state: `
    SELECT n.terminal_id,
           (SELECT min(r.terminal_seq) FROM tap_record r WHERE r.terminal_id = n.terminal_id AND r.outcome = 'ACCEPTED') AS seq_min,
           (SELECT max(r.terminal_seq) FROM tap_record r WHERE r.terminal_id = n.terminal_id AND r.outcome = 'ACCEPTED') AS seq_max,
           g.froms, g.tos
    FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS n(terminal_id, lo, hi)
    LEFT JOIN LATERAL (
      SELECT array_agg(s.from_seq ORDER BY s.from_seq) AS froms, array_agg(s.to_seq ORDER BY s.from_seq) AS tos
      FROM tap_seq_gap s WHERE s.terminal_id = n.terminal_id AND s.from_seq <= n.hi AND s.to_seq >= n.lo) g ON true`,

  /** The batch row: the receipt. */
  insert_batch: `
    INSERT INTO tap_batch (operator_id, batch_id, digest, operator_created_at, body_format, received_at, cycle_id,
      business_date, record_count, accepted_count, accepted_amount_fen, rejected_count, rejected_amount_fen,
      rejected_index, rejected_reason, actor)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::int[], $15::text[], $16)
    RETURNING batch_no`,

  /**
   * Every record, by COPY (text format, written by copy-text.ts): measured 7 ms for 1,000 records
   * against 12 ms as INSERT ... SELECT FROM unnest of 18 arrays (no array literals to build and parse).
   */
  copy_records: `
    COPY tap_record (batch_no, idx, operator_id, outcome, reason, card_no, card_counter, txn_type, amount_fen,
      balance_before_fen, terminal_id, terminal_seq, local_time, key_version, tac, line_id, station_id,
      entry_station_id, entry_local_time, shortfall_fen, business_date, raw) FROM STDIN`,

  /** Clone suspects and purse shortfalls, one case per signal, idempotent by (kind, source_ref). */
  raise_cases: `
    WITH c AS (
      INSERT INTO risk_case (kind, source_ref, card_no, merchant_id, terminal_id, amount_fen, details, state, opened_at)
      SELECT s.kind, s.source_ref, s.card_no, $1, s.terminal_id, s.amount_fen, s.details, 'OPEN', $2
      FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::jsonb[])
        AS s(kind, source_ref, card_no, terminal_id, amount_fen, details)
      ON CONFLICT (kind, source_ref) DO NOTHING
      RETURNING id)
    INSERT INTO risk_case_event (case_id, from_state, to_state, actor, note, at)
    SELECT id, NULL, 'OPEN', $9, 'raised by transit tap ingestion', $2 FROM c`,

  /** Gaps a record landed in: removed from the open set, the closing kept as an event. */
  close_gaps: `
    WITH d AS (
      DELETE FROM tap_seq_gap g USING unnest($1::text[], $2::bigint[]) AS c(terminal_id, from_seq)
      WHERE g.terminal_id = c.terminal_id AND g.from_seq = c.from_seq
      RETURNING g.terminal_id, g.from_seq, g.to_seq, g.operator_id)
    INSERT INTO tap_seq_gap_event (terminal_id, from_seq, to_seq, operator_id, event, batch_no, actor, at)
    SELECT terminal_id, from_seq, to_seq, operator_id, 'CLOSED', $3, $4, $5 FROM d`,

  /** New open gaps (and what is left of split ones), with their OPENED events. */
  open_gaps: `
    WITH o AS (
      INSERT INTO tap_seq_gap (terminal_id, from_seq, to_seq, operator_id, opened_at, opened_by_batch)
      SELECT t, f, x, $4, $6, $5 FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS n(t, f, x)
      RETURNING terminal_id, from_seq, to_seq)
    INSERT INTO tap_seq_gap_event (terminal_id, from_seq, to_seq, operator_id, event, batch_no, actor, at)
    SELECT terminal_id, from_seq, to_seq, $4, 'OPENED', $5, $7, $6 FROM o`,

  // ------------------------------------------------------------------------------------------
  // Reads for the risk-signal and receipt routes
  // ------------------------------------------------------------------------------------------

  /** Open gaps of an operator, by terminal then sequence, after a (terminal, from_seq) cursor. */
  gaps_of_operator: `
    SELECT terminal_id, from_seq, to_seq, opened_at
    FROM tap_seq_gap
    WHERE operator_id = $1 AND ($2::text IS NULL OR (terminal_id, from_seq) > ($2::text, $3::bigint))
    ORDER BY terminal_id, from_seq
    LIMIT $4`,

  /**
   * One card's accepted taps in counter order after a cursor, each with the previous tap and
   * whether a purse load (a PURSE_LOAD credit to the card's purse) was posted between the two
   * tap times. The chain rule itself is applied by engine/ingest `chainBreaks`.
   */
  card_chain: `
    WITH t AS (
      SELECT r.card_counter, r.txn_type, r.amount_fen, r.balance_before_fen, r.local_time, r.terminal_id, r.terminal_seq,
             b.batch_id, r.idx, r.operator_id,
             make_timestamp(substr(r.local_time, 1, 4)::int, substr(r.local_time, 5, 2)::int, substr(r.local_time, 7, 2)::int,
                            substr(r.local_time, 9, 2)::int, substr(r.local_time, 11, 2)::int, substr(r.local_time, 13, 2)::float8)
               AT TIME ZONE 'Asia/Shanghai' AS tapped_at
      FROM tap_record r JOIN tap_batch b ON b.batch_no = r.batch_no
      WHERE r.card_no = $1 AND r.outcome = 'ACCEPTED'
        AND (r.card_counter, r.txn_type) >= ($2::bigint, $3::smallint)
      ORDER BY r.card_counter, r.txn_type
      LIMIT $4
    ), w AS (
      SELECT t.*, lag(t.tapped_at) OVER (ORDER BY t.card_counter, t.txn_type) AS previous_tapped_at FROM t
    ), purse AS (SELECT id FROM ledger_account WHERE code = $5)
    SELECT w.*,
      w.previous_tapped_at IS NOT NULL AND EXISTS (
        SELECT 1 FROM ledger_posting p JOIN ledger_entry e ON e.id = p.entry_id
        WHERE p.credit_account_id = (SELECT id FROM purse) AND e.kind = 'PURSE_LOAD'
          AND e.posted_at > w.previous_tapped_at AND e.posted_at <= w.tapped_at
      ) AS load_before
    FROM w
    ORDER BY w.card_counter, w.txn_type`,
} as const;
