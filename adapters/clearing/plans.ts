/**
 * SQL of the clearing run, the packages, the returns and the disbursements. The heavy
 * statements are set-based over the whole cycle (one INSERT … SELECT for millions of lines),
 * implementing engine/clearing/netting.ts's rules; test/clearing-netting.test.ts checks that
 * this SQL and the pure model agree line for line.
 */
import { clearing_entry_kinds, entry_kind_to_detail } from '../../engine/clearing/kinds.ts';

const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
const excluded_kinds = `ARRAY[${clearing_entry_kinds.map(quote).join(', ')}]::text[]`;
const kind_case = `CASE
      WHEN e.kind = 'QR_PAYMENT' AND coalesce(m.kind, em.kind) = 'MEDICAL' THEN 'MEDICAL_SELF_PAY'
      WHEN e.kind = 'QR_PAYMENT' AND coalesce(m.kind, em.kind) = 'UTILITY' THEN 'UTILITY_PAYMENT'
      ${Object.entries(entry_kind_to_detail).map(([k, v]) => `WHEN e.kind = ${quote(k)} THEN ${quote(v)}`).join('\n      ')}
      ELSE 'ADJUSTMENT' END`;

export const plans = {
  cycle_by_id: `SELECT id, business_date, state, closed_at FROM clearing_cycle WHERE id = $1`,
  cycle_by_id_for_update: `SELECT id, business_date, state FROM clearing_cycle WHERE id = $1 FOR UPDATE`,
  cycle_by_date: `SELECT id, business_date, state FROM clearing_cycle WHERE business_date = $1`,
  set_state: `
    WITH u AS (UPDATE clearing_cycle SET state = $2, closed_at = coalesce(closed_at, $4)
               WHERE id = $1 AND state = ANY($3::text[]) RETURNING id, $5::text AS from_state)
    INSERT INTO clearing_cycle_event (cycle_id, from_state, to_state, actor, at, details)
    SELECT id, from_state, $2, $6, $4, $7::jsonb FROM u RETURNING cycle_id`,
  /** A session lock per cycle: one clearing process per cycle at a time, released if it dies. */
  run_lock: `SELECT pg_advisory_lock(7101, hashtext($1))`,
  run_unlock: `SELECT pg_advisory_unlock(7101, hashtext($1))`,

  /**
   * The detail lines of a cycle: per ledger entry, the net movement on each bank clearing account
   * (ISSUER) and each merchant payable (ACQUIRER, at the merchant's acquiring bank, with its
   * fee: round half up — round() of a non-negative numeric — then clamped to min/max).
   */
  insert_lines: `
    WITH legs AS (
      SELECT p.entry_id, l.account_id, l.amt
      FROM ledger_entry e
      JOIN ledger_posting p ON p.entry_id = e.id
      CROSS JOIN LATERAL (VALUES (p.debit_account_id, -p.amount_fen), (p.credit_account_id, p.amount_fen)) AS l(account_id, amt)
      WHERE e.business_date = $2::date AND e.kind <> ALL (${excluded_kinds})
    ), acct AS (
      SELECT id, owner_type, owner_id FROM ledger_account
      WHERE (owner_type = 'bank' AND purpose = 'clearing') OR (owner_type = 'merchant' AND purpose = 'payable')
    ), agg AS (
      SELECT legs.entry_id, a.owner_type, a.owner_id, sum(legs.amt)::bigint AS delta
      FROM legs JOIN acct a ON a.id = legs.account_id
      GROUP BY legs.entry_id, a.owner_type, a.owner_id
      HAVING sum(legs.amt) <> 0
    ), sched AS (
      SELECT DISTINCT ON (merchant_id) merchant_id, rate, min_fen, max_fen
      FROM merchant_fee_schedule WHERE effective_from <= $2::date
      ORDER BY merchant_id, effective_from DESC
    )
    INSERT INTO clearing_line (cycle_id, bank_code, entry_id, side, kind, txn_id, card_no, merchant_id, terminal_id,
                               txn_time, amount_fen, fee_fen, direction)
    SELECT $1, CASE WHEN agg.owner_type = 'bank' THEN agg.owner_id ELSE m.acquiring_bank END, agg.entry_id,
      CASE WHEN agg.owner_type = 'bank' THEN 'ISSUER' ELSE 'ACQUIRER' END,
      ${kind_case},
      coalesce(e.metadata->>'payment_id', e.metadata->>'load_id', e.metadata->>'disbursement_id', 'E' || e.id::text)
        || CASE WHEN e.kind = 'REFUND' THEN coalesce('/' || (e.metadata->>'refund'), '') ELSE '' END,
      CASE
        WHEN e.kind = 'TRANSIT_TAP' THEN split_part(e.idem_key, ':', 2)
        WHEN e.kind = 'CARD_CANCEL_REFUND' THEN split_part(e.idem_key, ':', 2)
        ELSE coalesce(e.metadata->>'card_no', ep.card_no) END,
      CASE WHEN agg.owner_type = 'merchant' THEN agg.owner_id ELSE em.id END,
      coalesce(t.terminal_id, ep.terminal_id),
      e.posted_at, abs(agg.delta),
      CASE WHEN agg.owner_type = 'merchant' AND agg.delta > 0 AND s.rate IS NOT NULL
           THEN least(greatest(round(agg.delta * s.rate), s.min_fen), s.max_fen)::bigint ELSE 0 END,
      CASE WHEN agg.delta > 0 THEN 'RECEIVE' ELSE 'PAY' END
    FROM agg
    JOIN ledger_entry e ON e.id = agg.entry_id
    LEFT JOIN merchant m ON agg.owner_type = 'merchant' AND m.id = agg.owner_id
    LEFT JOIN sched s ON agg.owner_type = 'merchant' AND s.merchant_id = agg.owner_id
    LEFT JOIN payment ep ON e.kind IN ('QR_PAYMENT', 'REFUND') AND ep.id = e.metadata->>'payment_id'
    LEFT JOIN merchant em ON agg.owner_type = 'bank' AND e.kind IN ('QR_PAYMENT', 'REFUND')
      AND em.id = coalesce(ep.merchant_id, e.metadata->>'merchant_id')
    LEFT JOIN tap_record t ON e.kind = 'TRANSIT_TAP' AND t.outcome = 'ACCEPTED'
      AND t.card_no = split_part(e.idem_key, ':', 2)
      AND t.card_counter = CASE WHEN e.kind = 'TRANSIT_TAP' AND split_part(e.idem_key, ':', 3) ~ '^[0-9]{1,18}$'
                                THEN split_part(e.idem_key, ':', 3)::bigint END
      AND t.txn_type = CASE WHEN e.kind = 'TRANSIT_TAP' AND split_part(e.idem_key, ':', 4) ~ '^[0-9]{1,4}$'
                            THEN split_part(e.idem_key, ':', 4)::smallint END`,

  /** Fee and sweep per merchant, from its ACQUIRER lines. */
  merchant_totals: `
    SELECT merchant_id, bank_code, sum(fee_fen)::bigint AS fee_fen,
      sum(CASE WHEN direction = 'RECEIVE' THEN amount_fen - fee_fen ELSE -amount_fen END)::bigint AS sweep_fen
    FROM clearing_line WHERE cycle_id = $1 AND side = 'ACQUIRER'
    GROUP BY merchant_id, bank_code ORDER BY merchant_id`,

  /** Every bank gets a position (and a package), zero when it had no lines. */
  insert_positions: `
    INSERT INTO clearing_position (cycle_id, bank_code, line_count, pay_fen, receive_fen, fee_fen, net_fen, created_at)
    SELECT $1, b.code, coalesce(x.n, 0), coalesce(x.pay, 0), coalesce(x.recv, 0), coalesce(x.fee, 0),
           coalesce(x.recv, 0) - coalesce(x.pay, 0), $2
    FROM bank b LEFT JOIN (
      SELECT bank_code, count(*) AS n, sum(fee_fen)::bigint AS fee,
        sum(CASE WHEN direction = 'PAY' THEN CASE WHEN side = 'ACQUIRER' THEN amount_fen - fee_fen ELSE amount_fen END ELSE 0 END)::bigint AS pay,
        sum(CASE WHEN direction = 'RECEIVE' THEN CASE WHEN side = 'ACQUIRER' THEN amount_fen - fee_fen ELSE amount_fen END ELSE 0 END)::bigint AS recv
      FROM clearing_line WHERE cycle_id = $1 GROUP BY bank_code) x ON x.bank_code = b.code
    RETURNING bank_code, line_count, pay_fen, receive_fen, fee_fen, net_fen`,

  /**
   * Net movement of every bank clearing and merchant payable account over the cycle's entries,
   * the clearing's own fees and sweeps included (settlements excluded): after the sweep each
   * merchant's is zero and each bank's equals its position; the rest of the ledger (the
   * centre's accounts) moved by exactly minus their sum.
   */
  account_movements: `
    SELECT a.owner_type, a.owner_id, sum(l.amt)::bigint AS delta
    FROM ledger_entry e
    JOIN ledger_posting p ON p.entry_id = e.id
    CROSS JOIN LATERAL (VALUES (p.debit_account_id, -p.amount_fen), (p.credit_account_id, p.amount_fen)) AS l(account_id, amt)
    JOIN ledger_account a ON a.id = l.account_id
      AND ((a.owner_type = 'bank' AND a.purpose = 'clearing') OR (a.owner_type = 'merchant' AND a.purpose = 'payable'))
    WHERE e.business_date = $1::date AND e.kind <> 'SETTLEMENT'
    GROUP BY a.owner_type, a.owner_id`,
  count_transactions: `SELECT count(DISTINCT entry_id)::bigint AS n, count(*)::bigint AS lines FROM clearing_line WHERE cycle_id = $1`,
  insert_summary: `
    INSERT INTO clearing_summary (cycle_id, transactions, lines, banks_net_fen, centre_net_fen, fees_fen, created_at, actor)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (cycle_id) DO NOTHING`,
  summary: `SELECT cycle_id, transactions, lines, banks_net_fen, centre_net_fen, fees_fen, created_at FROM clearing_summary WHERE cycle_id = $1`,

  positions: `SELECT bank_code, line_count, pay_fen, receive_fen, fee_fen, net_fen FROM clearing_position WHERE cycle_id = $1 ORDER BY bank_code`,
  events: `SELECT from_state, to_state, actor, at, details FROM clearing_cycle_event WHERE cycle_id = $1 ORDER BY id`,
  list_cycles: `
    SELECT id, business_date, state, opened_at, closed_at FROM clearing_cycle
    WHERE ($1::date IS NULL OR business_date < $1::date) ORDER BY business_date DESC LIMIT $2`,

  // ---- packages -------------------------------------------------------------------------------
  package_exists: `SELECT id FROM settlement_package WHERE bank_code = $1 AND cycle_id = $2`,
  declare_lines_cursor: `
    DECLARE detail_lines NO SCROLL CURSOR FOR
    SELECT txn_id, kind, side, coalesce(card_no, ''), coalesce(merchant_id, ''), coalesce(terminal_id, ''),
      to_char(txn_time AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI:SS"+08:00"'), amount_fen, fee_fen, direction
    FROM clearing_line WHERE cycle_id = $1 AND bank_code = $2 ORDER BY entry_id, side`,
  insert_package: `
    INSERT INTO settlement_package (id, cycle_id, bank_code, business_date, net_fen, line_count, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id`,
  insert_package_files: `
    INSERT INTO settlement_package_file (bank_code, package_id, name, path, bytes, record_count, sha256, sm3)
    SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[])
    ON CONFLICT DO NOTHING`,
  packages_missing: `
    SELECT count(*)::bigint AS n FROM clearing_position p
    WHERE p.cycle_id = $1 AND NOT EXISTS (SELECT 1 FROM settlement_package s WHERE s.bank_code = p.bank_code AND s.cycle_id = p.cycle_id)`,
  list_packages: `
    SELECT s.id, s.cycle_id, s.business_date, s.net_fen, s.line_count, s.created_at,
      coalesce(json_agg(json_build_object('name', f.name, 'bytes', f.bytes, 'record_count', f.record_count, 'sha256', f.sha256, 'sm3', f.sm3)
        ORDER BY f.name) FILTER (WHERE f.name IS NOT NULL), '[]') AS files
    FROM settlement_package s LEFT JOIN settlement_package_file f ON f.bank_code = s.bank_code AND f.package_id = s.id
    WHERE s.bank_code = $1 AND ($2::date IS NULL OR s.business_date = $2::date) AND ($3::text IS NULL OR s.id > $3)
    GROUP BY s.bank_code, s.id ORDER BY s.id LIMIT $4`,
  package_file: `
    SELECT s.cycle_id, f.path, f.bytes, f.sha256 FROM settlement_package s
    JOIN settlement_package_file f ON f.bank_code = s.bank_code AND f.package_id = s.id
    WHERE s.bank_code = $1 AND s.id = $2 AND f.name = $3`,
  package_by_id: `SELECT id, cycle_id, bank_code, net_fen, business_date FROM settlement_package WHERE bank_code = $1 AND id = $2`,
  insert_download: `
    INSERT INTO package_download (bank_code, package_id, name, key_id, sha256_served, at) VALUES ($1, $2, $3, $4, $5, $6)`,
  cycle_files: `
    SELECT f.bank_code, f.name, f.sha256, f.sm3, f.bytes FROM settlement_package s
    JOIN settlement_package_file f ON f.bank_code = s.bank_code AND f.package_id = s.id
    WHERE s.cycle_id = $1 ORDER BY f.bank_code, f.name`,

  // ---- returns --------------------------------------------------------------------------------
  return_by_digest: `
    SELECT id, status, reason, line_count, matched_count, exception_count FROM settlement_return
    WHERE bank_code = $1 AND package_id = $2 AND format = $3 AND sha256 = $4`,
  insert_return: `
    INSERT INTO settlement_return (bank_code, package_id, cycle_id, format, sha256, status, reason, line_count, matched_count,
      exception_count, received_at, actor)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (bank_code, package_id, format, sha256) DO NOTHING RETURNING id`,
  /** Returned lines with their match against the package's lines (same txn id, same amount). */
  insert_return_lines: `
    INSERT INTO settlement_return_line (bank_code, return_id, line_no, txn_id, amount_fen, status, bank_ref, reason, outcome)
    SELECT $1, $2, r.line_no, r.txn_id, r.amount_fen, r.status, r.bank_ref, r.reason,
      CASE WHEN r.status = 'POSTED' AND EXISTS (
        SELECT 1 FROM clearing_line c WHERE c.cycle_id = $3 AND c.bank_code = $1 AND c.txn_id = r.txn_id AND c.amount_fen = r.amount_fen)
      THEN 'MATCHED' ELSE 'EXCEPTION' END
    FROM unnest($4::bigint[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[])
      AS r(line_no, txn_id, amount_fen, status, bank_ref, reason)
    RETURNING outcome`,
  set_return_counts: `SELECT 1`,
  /** The latest pacs.002 per package of a cycle. */
  cycle_confirmations: `
    SELECT p.bank_code, r.status FROM clearing_position p
    LEFT JOIN LATERAL (SELECT status FROM settlement_return x WHERE x.bank_code = p.bank_code AND x.cycle_id = p.cycle_id
                       AND x.format = 'PACS002' ORDER BY x.id DESC LIMIT 1) r ON true
    WHERE p.cycle_id = $1`,

  // ---- disbursements --------------------------------------------------------------------------
  insert_deposit: `
    INSERT INTO programme_deposit (programme_id, deposit_id, bank_code, amount_fen, entry_idem_key, cycle_id, business_date, actor, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING programme_id`,
  deposit_by_id: `SELECT programme_id, deposit_id, bank_code, amount_fen, cycle_id, business_date, created_at FROM programme_deposit WHERE programme_id = $1 AND deposit_id = $2`,
  lock_programme: `SELECT pg_advisory_xact_lock(7102, hashtext($1))`,
  batch_by_id: `SELECT digest, record_count, accepted_count, accepted_fen, cycle_id, business_date FROM disbursement_batch WHERE programme_id = $1 AND batch_id = $2`,
  batch_records: `SELECT idx, card_no, amount_fen, destination, outcome, reason FROM disbursement WHERE programme_id = $1 AND batch_id = $2 ORDER BY idx`,
  cards_of: `SELECT card_no, issuing_bank, status FROM card WHERE card_no = ANY($1::text[])`,
  insert_batch: `
    INSERT INTO disbursement_batch (programme_id, batch_id, digest, record_count, accepted_count, accepted_fen, cycle_id, business_date, actor, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
  insert_disbursements: `
    INSERT INTO disbursement (programme_id, batch_id, idx, card_no, amount_fen, purpose, destination, outcome, reason, issuing_bank, entry_idem_key)
    SELECT $1, $2, * FROM unnest($3::int[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])`,
} as const;
