/** The payments' SQL, as named statements. */
import { new_entries_argument_types } from '../../ledger/index.ts';

const payment_columns = `
  p.id, p.merchant_id, p.order_id, p.request_sha256, p.merchant_kind, p.card_no, p.issuing_bank,
  p.amount_fen, p.medical_fen, p.self_pay_fen, p.terminal_id, p.medical_visit_no, p.customer_no, p.bill_id,
  p.bank_auth_id, p.bank_auth_code, p.entry_idem_key, p.cycle_id, p.business_date, p.created_at`;

const refund_columns = `
  r.id, r.merchant_id, r.refund_id, r.payment_id, r.amount_fen, r.medical_fen, r.self_pay_fen, r.refunded_after_fen,
  r.entry_idem_key, r.cycle_id, r.business_date, r.created_at`;

const load_columns = `
  l.id, l.bank_code, l.bank_reference, l.card_no, l.amount_fen, l.purse_balance_after_fen, l.cycle_id, l.business_date, l.created_at`;

/** The claim's input, one array per column, one element per payment of the batch. */
export const claim_columns = [
  ['id', 'text'], ['merchant_id', 'text'], ['order_id', 'text'], ['request_sha256', 'text'], ['merchant_kind', 'text'],
  ['card_no', 'text'], ['issuing_bank', 'text'], ['amount_fen', 'bigint'], ['medical_fen', 'bigint'], ['self_pay_fen', 'bigint'],
  ['code_id', 'text'], ['terminal_id', 'text'], ['medical_visit_no', 'text'], ['customer_no', 'text'], ['bill_id', 'text'],
  ['bank_auth_id', 'text'], ['bank_auth_code', 'text'], ['entry_idem_key', 'text'], ['issued_at_s', 'bigint'], ['actor', 'text'],
] as const;
export type ClaimColumns = Record<(typeof claim_columns)[number][0], readonly (string | null)[]>;

/** `$first::type, $first+1::type, ...`: one typed placeholder per argument. */
function placeholders(first: number, types: readonly string[]): string {
  return types.map((type, i) => `$${first + i}::${type}`).join(', ');
}

const claim_types = claim_columns.map(([, type]) => `${type}[]`);

/** The claim's arrays in the order of the functions' arguments. */
export function claimValues(columns: ClaimColumns): (readonly (string | null)[])[] {
  return claim_columns.map(([name]) => columns[name]);
}

export const plans = {
  // ---- QR payments ------------------------------------------------------------------------

  /** Everything a batch of QR payments is decided on (see payments_qr_facts in 0017_one_round_trip_posting.sql). */
  qr_facts: `SELECT * FROM payments_qr_facts($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[])`,

  /**
   * The claim of a batch (payments_claim_qr in 0009_payments_hot_path.sql): the shared cycle lock,
   * the open cycle read after it, the claim of codes, orders and bills; one row per payment.
   * Arguments: the cycle lock's two keys, the time, then claimValues.
   */
  claim_qr_payments: `SELECT * FROM payments_claim_qr(${placeholders(1, ['int', 'int', 'timestamptz', ...claim_types])})`,

  /**
   * A batch claimed whole in the cycle the node expects and posted, by one statement that is its
   * own transaction (payments_post_qr_batch in 0019_one_statement_posting.sql). Arguments: the
   * cycle's id, the cycle lock's two keys, the time, claimValues, then the ledger's arguments.
   */
  post_qr_batch: `SELECT payments_post_qr_batch(${placeholders(1, ['text', 'int', 'int', 'timestamptz', ...claim_types, ...new_entries_argument_types])})`,

  /** Codes claimed by payments that then lost their order or bill to another: not used after all. */
  release_codes: `DELETE FROM qr_code_use WHERE code_id = ANY ($1::text[])`,

  payment_by_merchant_order: `SELECT ${payment_columns} FROM payment p WHERE p.merchant_id = $1 AND p.order_id = $2`,

  /** A payment as its merchant ($2) sees it, or as staff see it ($2 null), with its refunded total. */
  payment_view: `
    SELECT ${payment_columns},
           coalesce((SELECT sum(r.amount_fen) FROM payment_refund r WHERE r.merchant_id = p.merchant_id AND r.payment_id = p.id), 0)::bigint AS refunded_fen
    FROM payment p WHERE p.id = $1 AND ($2::text IS NULL OR p.merchant_id = $2)`,

  refunds_of_payment: `
    SELECT ${refund_columns} FROM payment_refund r
    WHERE r.merchant_id = $1 AND r.payment_id = $2 ORDER BY r.refunded_after_fen LIMIT $3`,

  // ---- Refunds ----------------------------------------------------------------------------

  /**
   * The merchant's payment, locked: refunds of one payment queue here, so each sees every
   * earlier one. The original journal entry's id links the refund's entry to it.
   */
  lock_payment: `
    SELECT ${payment_columns}, p.bill_released_at, e.id AS entry_id
    FROM payment p JOIN ledger_entry e ON e.idem_key = p.entry_idem_key
    WHERE p.merchant_id = $1 AND p.id = $2
    FOR UPDATE OF p`,

  /** Read after the lock (a new snapshot): the refunds so far, and an earlier refund under this key. */
  refund_state: `
    SELECT coalesce(sum(r.amount_fen), 0)::bigint AS refunded_fen, coalesce(sum(r.medical_fen), 0)::bigint AS refunded_medical_fen,
           count(*)::int AS refunds,
           (SELECT row_to_json(x) FROM (SELECT k.id, k.payment_id, k.amount_fen::text AS amount_fen FROM payment_refund k
              WHERE k.merchant_id = $1 AND k.refund_id = $3) x) AS existing
    FROM payment_refund r WHERE r.merchant_id = $1 AND r.payment_id = $2`,

  insert_refund: `
    INSERT INTO payment_refund AS r (id, merchant_id, refund_id, payment_id, amount_fen, medical_fen, self_pay_fen, refunded_after_fen,
                                     entry_idem_key, cycle_id, business_date, actor, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (merchant_id, refund_id) DO NOTHING
    RETURNING ${refund_columns}`,

  refund_by_id: `SELECT ${refund_columns} FROM payment_refund r WHERE r.merchant_id = $1 AND r.id = $2`,

  release_bill: `UPDATE payment SET bill_released_at = $3, bill_released_by = $4 WHERE merchant_id = $1 AND id = $2 AND bill_released_at IS NULL`,

  // ---- Purse loads ------------------------------------------------------------------------

  lock_load_key: `SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))`,

  load_facts: `
    SELECT c.status AS card_status, c.issuing_bank,
           EXISTS (SELECT 1 FROM purse_load l WHERE l.bank_code = $1 AND l.bank_reference = $2) AS existing
    FROM (SELECT 1) one LEFT JOIN card c ON c.card_no = $3`,

  insert_load: `
    INSERT INTO purse_load AS l (id, bank_code, bank_reference, card_no, amount_fen, purse_balance_after_fen, entry_idem_key,
                            cycle_id, business_date, actor, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT (bank_code, bank_reference) DO NOTHING
    RETURNING ${load_columns}`,

  load_by_key: `SELECT ${load_columns} FROM purse_load l WHERE l.bank_code = $1 AND l.bank_reference = $2`,

  // ---- Reversals the engine owes banks ----------------------------------------------------

  request_reversal: `
    INSERT INTO bank_auth_reversal (auth_id, bank_code, card_no, merchant_id, amount_fen, reason, actor, requested_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (auth_id) DO NOTHING`,

  acknowledge_reversal: `INSERT INTO bank_auth_reversal_ack (auth_id, acknowledged_at) VALUES ($1, $2) ON CONFLICT (auth_id) DO NOTHING`,

  pending_reversals: `
    SELECT v.auth_id, v.bank_code, v.card_no, v.amount_fen FROM bank_auth_reversal v
    WHERE NOT EXISTS (SELECT 1 FROM bank_auth_reversal_ack a WHERE a.auth_id = v.auth_id)
    ORDER BY v.requested_at, v.auth_id LIMIT $1`,

  // ---- The simulated bank -----------------------------------------------------------------

  /**
   * A batch of authorizations decided and recorded by one statement, its own transaction:
   * sim_bank_decide (0020_sim_bank_set_based.sql). Arguments: the card lock namespace, the
   * requests' auth ids, bank codes, card numbers, merchant ids and amounts, the local date, the time.
   * The simulated bank stands in for another institution's system: its commits do not wait for
   * the WAL flush (set_config(..., true) holds until this statement's transaction commits; a
   * Postgres crash could forget its last fraction of a second of decisions, an engine restart
   * forgets nothing). The engine's own transactions keep synchronous commit.
   */
  sim_bank_decide: `
    SELECT d.ord, d.approved, d.auth_code, d.decline_code
    FROM (SELECT set_config('synchronous_commit', 'off', true)) async_commit, sim_bank_decide(${placeholders(1, ['int', 'text[]', 'text[]', 'text[]', 'text[]', 'bigint[]', 'date', 'timestamptz'])}) d
    ORDER BY d.ord`,

  sim_bank_reverse: `SELECT sim_bank_reverse($1::int, $2::text, $3::text, $4::timestamptz)`,
};
