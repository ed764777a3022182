-- Up Migration

-- A batch of QR payments claimed and posted by ONE statement with bound parameters: the claim
-- that must win whole (payments_claim_qr_all) and the ledger's new entries
-- (ledger_post_new_entries), in that order. Sent alone, outside any transaction block, the
-- statement is its own transaction: both happen or neither does, and its commit is durable
-- before the engine hears the answer. The engine prepares it once per connection, so the batch
-- travels as arrays of parameters instead of SQL text that Postgres parses each time.
CREATE FUNCTION payments_post_qr_batch(p_cycle_id text, p_lock_a int, p_lock_b int, p_at timestamptz,
    p_id text[], p_merchant_id text[], p_order_id text[], p_request_sha256 text[], p_merchant_kind text[], p_card_no text[],
    p_issuing_bank text[], p_amount_fen bigint[], p_medical_fen bigint[], p_self_pay_fen bigint[], p_code_id text[],
    p_terminal_id text[], p_medical_visit_no text[], p_customer_no text[], p_bill_id text[], p_bank_auth_id text[],
    p_bank_auth_code text[], p_entry_idem_key text[], p_issued_at_s bigint[], p_actor text[],
    e_idem_key text[], e_kind text[], e_business_date date[], e_description text[],
    e_metadata jsonb[], e_reverses_entry_id bigint[], e_hold_id bigint[],
    l_idem_key text[], l_line_no int[], l_debit_account_id bigint[], l_credit_account_id bigint[], l_amount_fen bigint[])
RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM payments_claim_qr_all(p_cycle_id, p_lock_a, p_lock_b, p_at, p_id, p_merchant_id, p_order_id, p_request_sha256,
                                p_merchant_kind, p_card_no, p_issuing_bank, p_amount_fen, p_medical_fen, p_self_pay_fen,
                                p_code_id, p_terminal_id, p_medical_visit_no, p_customer_no, p_bill_id, p_bank_auth_id,
                                p_bank_auth_code, p_entry_idem_key, p_issued_at_s, p_actor);
  RETURN ledger_post_new_entries(e_idem_key, e_kind, e_business_date, e_description, e_metadata, e_reverses_entry_id,
                                 e_hold_id, l_idem_key, l_line_no, l_debit_account_id, l_credit_account_id, l_amount_fen);
END $$;

-- Down Migration
DROP FUNCTION payments_post_qr_batch;
