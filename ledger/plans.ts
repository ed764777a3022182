/** The ledger's SQL, as named statements (pg-boss's "plans" style). */

export const insert_entries_with_lines = `
WITH e AS (
  INSERT INTO ledger_entry (idem_key, kind, business_date, description, metadata, reverses_entry_id, hold_id)
  SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::jsonb[], $6::bigint[], $7::bigint[])
  ON CONFLICT (idem_key) DO NOTHING
  RETURNING id, idem_key
), l AS (
  INSERT INTO ledger_posting (entry_id, line_no, debit_account_id, credit_account_id, amount_fen)
  SELECT e.id, l.line_no, l.dr, l.cr, l.amt
  FROM unnest($8::text[], $9::int[], $10::bigint[], $11::bigint[], $12::bigint[]) AS l(idem_key, line_no, dr, cr, amt)
  JOIN e ON e.idem_key = l.idem_key
  RETURNING 1
)
SELECT e.id, e.idem_key, (SELECT count(*) FROM l)::int AS line_count FROM e`;

export const existing_entries_by_keys = `
SELECT e.id, e.idem_key, e.kind, e.business_date, e.description, e.metadata, e.reverses_entry_id, e.hold_id,
       array_agg(da.code ORDER BY p.line_no) AS debits,
       array_agg(ca.code ORDER BY p.line_no) AS credits,
       array_agg(p.amount_fen ORDER BY p.line_no) AS amounts
FROM ledger_entry e
JOIN ledger_posting p ON p.entry_id = e.id
JOIN ledger_account da ON da.id = p.debit_account_id
JOIN ledger_account ca ON ca.id = p.credit_account_id
WHERE e.idem_key = ANY ($1::text[])
GROUP BY e.id`;

/**
 * Ids by code, opening (inserting) only the accounts that do not exist yet, with whether each row
 * was written by the current transaction (`mine`, see account_ids_by_codes). A code opened by a
 * concurrent transaction that commits while this runs comes back from neither branch (the
 * insert waits for it, then skips the row); the caller reads those again.
 */
export const find_or_open_accounts = `
WITH want AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[])
    AS w(code, owner_type, owner_id, purpose, normal_side, no_negative)
), found AS (
  SELECT a.id, a.code,
         coalesce(a.xmin::text = (pg_current_xact_id_if_assigned()::text::bigint % 4294967296)::text, false) AS mine
  FROM ledger_account a WHERE a.code = ANY ($1::text[])
), opened AS (
  INSERT INTO ledger_account (code, owner_type, owner_id, purpose, normal_side, no_negative)
  SELECT w.code, w.owner_type, w.owner_id, w.purpose, w.normal_side, w.no_negative
  FROM want w WHERE NOT EXISTS (SELECT 1 FROM found f WHERE f.code = w.code)
  ON CONFLICT (code) DO NOTHING
  RETURNING id, code
)
SELECT id, code, mine FROM found
UNION ALL
SELECT id, code, true FROM opened`;

/**
 * Ids by code, and whether the row was inserted by the current transaction (`mine`): such an id
 * must not be cached, because the transaction may still roll back. (Callers do not use
 * savepoints around ledger calls; a row from a subtransaction would be reported as not mine.)
 */
export const account_ids_by_codes = `
SELECT id, code,
       coalesce(xmin::text = (pg_current_xact_id_if_assigned()::text::bigint % 4294967296)::text, false) AS mine
FROM ledger_account WHERE code = ANY ($1::text[])`;

export const account_by_code = `
SELECT id, code, owner_type, owner_id, purpose, currency, normal_side, no_negative,
       debits_posted_fen, credits_posted_fen, debits_pending_fen, credits_pending_fen, created_at
FROM ledger_account WHERE code = $1`;

export const insert_hold = `
INSERT INTO ledger_hold (idem_key, debit_account_id, credit_account_id, amount_fen, kind, metadata, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (idem_key) DO NOTHING
RETURNING id`;

export const hold_by_key = `
SELECT h.id, h.idem_key, da.code AS debit, ca.code AS credit, h.amount_fen, h.kind, h.expires_at,
       r.outcome, r.posted_amount_fen
FROM ledger_hold h
JOIN ledger_account da ON da.id = h.debit_account_id
JOIN ledger_account ca ON ca.id = h.credit_account_id
LEFT JOIN ledger_hold_resolution r ON r.hold_id = h.id
WHERE h.idem_key = $1`;

export const hold_by_id = hold_by_key.replace('WHERE h.idem_key = $1', 'WHERE h.id = $1');

export const insert_resolution = `
INSERT INTO ledger_hold_resolution (hold_id, outcome, posted_amount_fen, actor, resolved_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (hold_id) DO NOTHING
RETURNING hold_id`;

export const expire_holds = `
INSERT INTO ledger_hold_resolution (hold_id, outcome, posted_amount_fen, actor, resolved_at)
SELECT h.id, 'EXPIRED', 0, 'system:expiry', $1
FROM ledger_hold h
WHERE h.expires_at <= $1
  AND NOT EXISTS (SELECT 1 FROM ledger_hold_resolution r WHERE r.hold_id = h.id)
ORDER BY h.id
LIMIT $2
ON CONFLICT (hold_id) DO NOTHING`;

/**
 * Every account whose stored totals differ from what its postings and open holds say. One
 * grouped pass over accounts, postings (both sides) and open holds, with no joins until the
 * (few) differing accounts are named: join plans depended on statistics that a freshly loaded
 * ledger lacks, and a nested loop over 100,000 accounts never finished.
 */
export const verify_balances = `
WITH sums AS (
  SELECT account_id,
         sum(s_dr)::bigint AS s_dr, sum(s_cr)::bigint AS s_cr, sum(s_pdr)::bigint AS s_pdr, sum(s_pcr)::bigint AS s_pcr,
         sum(c_dr)::bigint AS c_dr, sum(c_cr)::bigint AS c_cr, sum(c_pdr)::bigint AS c_pdr, sum(c_pcr)::bigint AS c_pcr
  FROM (
    SELECT id AS account_id, debits_posted_fen AS s_dr, credits_posted_fen AS s_cr, debits_pending_fen AS s_pdr, credits_pending_fen AS s_pcr,
           0::bigint AS c_dr, 0::bigint AS c_cr, 0::bigint AS c_pdr, 0::bigint AS c_pcr FROM ledger_account
    UNION ALL SELECT debit_account_id, 0, 0, 0, 0, amount_fen, 0, 0, 0 FROM ledger_posting
    UNION ALL SELECT credit_account_id, 0, 0, 0, 0, 0, amount_fen, 0, 0 FROM ledger_posting
    UNION ALL SELECT h.debit_account_id, 0, 0, 0, 0, 0, 0, h.amount_fen, 0 FROM ledger_hold h
      WHERE NOT EXISTS (SELECT 1 FROM ledger_hold_resolution r WHERE r.hold_id = h.id)
    UNION ALL SELECT h.credit_account_id, 0, 0, 0, 0, 0, 0, 0, h.amount_fen FROM ledger_hold h
      WHERE NOT EXISTS (SELECT 1 FROM ledger_hold_resolution r WHERE r.hold_id = h.id)
  ) x
  GROUP BY account_id
  HAVING sum(s_dr) <> sum(c_dr) OR sum(s_cr) <> sum(c_cr) OR sum(s_pdr) <> sum(c_pdr) OR sum(s_pcr) <> sum(c_pcr)
  LIMIT 1000
)
SELECT coalesce(a.code, 'account#' || s.account_id) AS code,
       s.s_dr AS debits_posted_fen, s.c_dr AS debits_from_postings,
       s.s_cr AS credits_posted_fen, s.c_cr AS credits_from_postings,
       s.s_pdr AS debits_pending_fen, s.c_pdr AS debits_pending_from_holds,
       s.s_pcr AS credits_pending_fen, s.c_pcr AS credits_pending_from_holds
FROM sums s LEFT JOIN ledger_account a ON a.id = s.account_id
ORDER BY 1`;

export const trial_balance = `
SELECT coalesce(sum(debits_posted_fen), 0)::bigint AS debits_fen, coalesce(sum(credits_posted_fen), 0)::bigint AS credits_fen,
       coalesce(sum(debits_pending_fen), 0)::bigint AS debits_pending_fen, coalesce(sum(credits_pending_fen), 0)::bigint AS credits_pending_fen,
       count(*)::bigint AS accounts
FROM ledger_account`;

export const negative_no_negative_accounts = `
SELECT code FROM ledger_account
WHERE no_negative AND (CASE normal_side WHEN 'CREDIT' THEN credits_posted_fen - debits_posted_fen - debits_pending_fen
                                        ELSE debits_posted_fen - credits_posted_fen - credits_pending_fen END) < 0
LIMIT 100`;

export const entries_without_lines = `
SELECT count(*)::bigint AS n FROM ledger_entry e WHERE NOT EXISTS (SELECT 1 FROM ledger_posting p WHERE p.entry_id = e.id)`;

export const lines_without_entry = `
SELECT count(*)::bigint AS n FROM ledger_posting p WHERE NOT EXISTS (SELECT 1 FROM ledger_entry e WHERE e.id = p.entry_id)`;

export const list_entries = `
SELECT e.id, e.idem_key, e.kind, e.business_date, e.description, e.metadata, e.reverses_entry_id, e.posted_at,
       (SELECT json_agg(json_build_object('line_no', p.line_no, 'debit', da.code, 'credit', ca.code, 'amount_fen', p.amount_fen::text) ORDER BY p.line_no)
          FROM (SELECT * FROM ledger_posting p0 WHERE p0.entry_id = e.id ORDER BY p0.line_no LIMIT 100) p
          JOIN ledger_account da ON da.id = p.debit_account_id
          JOIN ledger_account ca ON ca.id = p.credit_account_id) AS lines
FROM ledger_entry e
WHERE ($1::bigint IS NULL OR e.id < $1)
  AND ($2::bigint IS NULL OR EXISTS (SELECT 1 FROM ledger_posting p WHERE p.entry_id = e.id AND (p.debit_account_id = $2 OR p.credit_account_id = $2)))
ORDER BY e.id DESC
LIMIT $3`;

export const list_accounts = `
SELECT id, code, owner_type, owner_id, purpose, currency, normal_side, no_negative,
       debits_posted_fen, credits_posted_fen, debits_pending_fen, credits_pending_fen, created_at
FROM ledger_account
WHERE ($1::text IS NULL OR code > $1) AND ($2::text IS NULL OR owner_type = $2)
ORDER BY code
LIMIT $3`;
