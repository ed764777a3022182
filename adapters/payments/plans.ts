/** The payments' SQL, as named statements. */
import { escapeLiteral } from 'pg';
import { plans as cycle_plans } from '../postgres/cycles.ts';

/** A text[] literal for the simple protocol (each element escaped). */
function textArray(values: readonly string[]): string {
  return `ARRAY[${values.map(escapeLiteral).join(', ')}]::text[]`;
}

const payment_columns = `
  p.id, p.merchant_id, p.order_id, p.request_sha256, p.merchant_kind, p.card_no, p.issuing_bank,
  p.amount_fen, p.medical_fen, p.self_pay_fen, p.terminal_id, p.medical_visit_no, p.customer_no, p.bill_id,
  p.bank_auth_id, p.bank_auth_code, p.entry_idem_key, p.cycle_id, p.business_date, p.created_at`;

const refund_columns = `
  r.id, r.merchant_id, r.refund_id, r.payment_id, r.amount_fen, r.medical_fen, r.self_pay_fen, r.refunded_after_fen,
  r.entry_idem_key, r.cycle_id, r.business_date, r.created_at`;

const load_columns = `
  l.id, l.bank_code, l.bank_reference, l.card_no, l.amount_fen, l.purse_balance_after_fen, l.cycle_id, l.business_date, l.created_at`;

/**
 * BEGIN and the shared clearing-cycle lock: the lock `openCycleForWrite` takes, held until commit,
 * so a cycle's close waits for in-flight payments and each payment lands in exactly one cycle.
 */
const begin_in_cycle = `BEGIN ISOLATION LEVEL READ COMMITTED; ${cycle_plans.lock_shared}`;

/** The claim's input, one array per column, one element per payment of the batch. */
export const claim_columns = [
  ['id', 'text'], ['merchant_id', 'text'], ['order_id', 'text'], ['request_sha256', 'text'], ['merchant_kind', 'text'],
  ['card_no', 'text'], ['issuing_bank', 'text'], ['amount_fen', 'bigint'], ['medical_fen', 'bigint'], ['self_pay_fen', 'bigint'],
  ['code_id', 'text'], ['terminal_id', 'text'], ['medical_visit_no', 'text'], ['customer_no', 'text'], ['bill_id', 'text'],
  ['bank_auth_id', 'text'], ['bank_auth_code', 'text'], ['entry_idem_key', 'text'], ['issued_at_s', 'bigint'], ['actor', 'text'],
] as const;
export type ClaimColumns = Record<(typeof claim_columns)[number][0], readonly (string | null)[]>;

function literalArray(values: readonly (string | null)[], type: 'text' | 'bigint'): string {
  const items = values.map((v) => (v === null ? 'NULL' : type === 'bigint' ? BigInt(v).toString() : escapeLiteral(v)));
  return `ARRAY[${items.join(', ')}]::${type}[]`;
}

/**
 * The claim of a batch of payments (each code, order and bill at most once in a batch), after
 * the cycle lock: the open cycle, then a payment is recorded only if its card is still ACTIVE,
 * its code unused and its order (and bill) not yet paid. Codes are claimed in code order and
 * payments in order-id order, so two batches never wait on each other in a cycle. Row `ord`
 * answers item `ord`: its payment, or nulls (it lost a race; the caller decides it again), and
 * whether its code was claimed (a claimed code without a payment is released by the caller).
 * No open cycle at all (a new database): the caller opens the first one and claims again.
 */
function claimQrPayments(columns: ClaimColumns, at: Date): string {
  const arrays = claim_columns.map(([name, type]) => literalArray(columns[name], type)).join(',\n                         ');
  const now = `${escapeLiteral(at.toISOString())}::timestamptz`;
  return `
    WITH cyc AS (${cycle_plans.open_cycle}),
    r AS (
      SELECT * FROM unnest(${arrays})
        WITH ORDINALITY AS r(${claim_columns.map(([name]) => name).join(', ')}, ord)),
    use AS (
      INSERT INTO qr_code_use (code_id, card_no, merchant_id, order_id, payment_id, issued_at, used_at)
      SELECT r.code_id, r.card_no, r.merchant_id, r.order_id, r.id, to_timestamp(r.issued_at_s), ${now}
      FROM r JOIN card c ON c.card_no = r.card_no AND c.status = 'ACTIVE' CROSS JOIN cyc
      ORDER BY r.code_id
      ON CONFLICT (code_id) DO NOTHING
      RETURNING code_id),
    ins AS (
      INSERT INTO payment (id, merchant_id, order_id, request_sha256, merchant_kind, card_no, issuing_bank, amount_fen,
                           medical_fen, self_pay_fen, qr_code_id, terminal_id, medical_visit_no, customer_no, bill_id,
                           bank_auth_id, bank_auth_code, entry_idem_key, cycle_id, business_date, actor, created_at)
      SELECT r.id, r.merchant_id, r.order_id, r.request_sha256, r.merchant_kind, r.card_no, r.issuing_bank, r.amount_fen,
             r.medical_fen, r.self_pay_fen, r.code_id, r.terminal_id, r.medical_visit_no, r.customer_no, r.bill_id,
             r.bank_auth_id, r.bank_auth_code, r.entry_idem_key, cyc.id, cyc.business_date, r.actor, ${now}
      FROM r JOIN use ON use.code_id = r.code_id CROSS JOIN cyc
      ORDER BY r.merchant_id, r.order_id
      ON CONFLICT DO NOTHING
      RETURNING *)
    SELECT r.ord, cyc.id AS open_cycle_id, (use.code_id IS NOT NULL) AS code_claimed, ${payment_columns}
    FROM r LEFT JOIN cyc ON true LEFT JOIN use ON use.code_id = r.code_id LEFT JOIN ins p ON p.id = r.id
    ORDER BY r.ord`;
}

export const plans = {
  // ---- QR payments ------------------------------------------------------------------------

  /**
   * Everything QR payments are decided on, for a batch of them in one round trip (row `ord` for
   * item `ord`): the merchant, the terminal, an earlier payment under the same order id, the
   * card, an earlier use of the code, the bill, and (when asked) the medical account's balance.
   */
  qr_facts: `
    SELECT r.ord, m.kind AS merchant_kind, m.status AS merchant_status,
           t.merchant_id AS terminal_merchant_id, t.status AS terminal_status,
           p.id AS existing_id, p.request_sha256 AS existing_sha256,
           c.status AS card_status, c.issuing_bank,
           u.merchant_id AS used_by_merchant_id, u.order_id AS used_by_order_id,
           (r.bill_id IS NOT NULL AND EXISTS (
             SELECT 1 FROM payment b WHERE b.merchant_id = r.merchant_id AND b.bill_id = r.bill_id AND b.bill_released_at IS NULL)) AS bill_paid,
           -- What the card's medical personal account can spend: the ledger's available balance of
           -- a credit-normal account (posted credits - posted debits - pending debits), 0 if none.
           CASE WHEN r.want_medical THEN coalesce((
             SELECT greatest(a.credits_posted_fen - a.debits_posted_fen - a.debits_pending_fen, 0) FROM ledger_account a
             WHERE a.code = 'card:' || r.card_no || ':medical' AND a.normal_side = 'CREDIT'), 0) ELSE 0 END::bigint AS medical_available_fen
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[])
         WITH ORDINALITY AS r(merchant_id, order_id, card_no, terminal_id, code_id, bill_id, want_medical, ord)
    LEFT JOIN merchant m ON m.id = r.merchant_id
    LEFT JOIN payment p ON p.merchant_id = r.merchant_id AND p.order_id = r.order_id
    LEFT JOIN card c ON c.card_no = r.card_no
    LEFT JOIN terminal t ON t.id = r.terminal_id
    LEFT JOIN qr_code_use u ON u.code_id = r.code_id
    ORDER BY r.ord`,

  /**
   * One round trip opens the posting transaction, takes the shared cycle lock and claims a batch
   * (each statement of a simple-protocol request takes its own snapshot, so the claim reads the
   * open cycle after the lock, as `openCycleForWrite` does). Values go in as escaped literals.
   */
  begin_and_claim_qr_payments: (columns: ClaimColumns, at: Date) => `${begin_in_cycle}; ${claimQrPayments(columns, at)}`,

  /** The claim alone (again, after opening the first cycle of a new database). */
  claim_qr_payments: (columns: ClaimColumns, at: Date) => claimQrPayments(columns, at),

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
   * One round trip for a batch of authorizations: open the transaction, take the cards' locks
   * (in key order, so concurrent batches never deadlock), then read each authorization (if
   * already decided) and its card's approved total for the day, in a snapshot taken after the
   * locks. Simple protocol (several statements need it), so values go in as escaped literals.
   * The simulated bank stands in for another institution's system: its commits do not wait for
   * the WAL flush (a Postgres crash could forget its last fraction of a second of decisions; an
   * engine restart forgets nothing). The engine's own transactions keep synchronous commit.
   */
  sim_bank_begin_and_read: (lockNamespace: number, authIds: readonly string[], cardNos: readonly string[], localDate: string) => `
    BEGIN ISOLATION LEVEL READ COMMITTED;
    SET LOCAL synchronous_commit = off;
    SELECT pg_advisory_xact_lock(${Math.trunc(lockNamespace)}, k)
    FROM (SELECT DISTINCT hashtext(c) AS k FROM unnest(${textArray(cardNos)}) c ORDER BY 1) keys;
    SELECT r.ord, a.approved, a.auth_code, a.decline_code,
           EXISTS (SELECT 1 FROM sim_bank_reversal v WHERE v.auth_id = r.auth_id) AS reversed,
           c.daily_limit_fen, c.issuing_bank,
           (SELECT coalesce(sum(x.amount_fen), 0) FROM sim_bank_authorization x
             WHERE x.card_no = r.card_no AND x.local_date = ${escapeLiteral(localDate)}::date AND x.approved
               AND NOT EXISTS (SELECT 1 FROM sim_bank_reversal v WHERE v.auth_id = x.auth_id))::bigint AS approved_today_fen
    FROM unnest(${textArray(authIds)}, ${textArray(cardNos)}) WITH ORDINALITY AS r(auth_id, card_no, ord)
    LEFT JOIN sim_bank_authorization a ON a.auth_id = r.auth_id
    LEFT JOIN card c ON c.card_no = r.card_no
    ORDER BY r.ord`,

  /** The decisions, and the commit that releases the cards' locks, in one round trip. */
  sim_bank_insert_and_commit: (decisions: readonly {
    authId: string; bankCode: string; cardNo: string; merchantId: string; localDate: string; amountFen: bigint;
    authCode: string | null; declineCode: string | null; at: Date;
  }[]) => `${decisions.length === 0 ? '' : `
    INSERT INTO sim_bank_authorization (auth_id, bank_code, card_no, merchant_id, local_date, amount_fen, approved, auth_code, decline_code, decided_at)
    VALUES ${decisions.map((d) => `(${escapeLiteral(d.authId)}, ${escapeLiteral(d.bankCode)}, ${escapeLiteral(d.cardNo)}, ${escapeLiteral(d.merchantId)},
            ${escapeLiteral(d.localDate)}::date, ${BigInt(d.amountFen).toString()}::bigint, ${d.declineCode === null},
            ${d.authCode === null ? 'NULL' : escapeLiteral(d.authCode)}, ${d.declineCode === null ? 'NULL' : escapeLiteral(d.declineCode)},
            ${escapeLiteral(d.at.toISOString())}::timestamptz)`).join(',\n           ')};`}
    COMMIT`,

  sim_bank_reverse: `INSERT INTO sim_bank_reversal (auth_id, card_no, reversed_at) VALUES ($1, $2, $3) ON CONFLICT (auth_id) DO NOTHING`,
};
