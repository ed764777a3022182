-- Up Migration

-- The balance guard of ledger_account, unchanged in what it refuses, without its cost on the hot
-- path. As a plain row trigger it ran its PL/pgSQL function for every account every posting
-- statement touches (a transit batch updates ~1,000 purses), only to find it was called from the
-- ledger's own balance triggers and had nothing to check. The WHEN condition below is evaluated
-- before the function is called: balance updates made by the ledger's statement triggers (trigger
-- depth 1 while they run) skip the call entirely; every other UPDATE that changes a balance, the
-- normal side or the id still reaches the function, which refuses it. DELETE always does.
DROP TRIGGER ledger_account_guard ON ledger_account;
CREATE TRIGGER ledger_account_guard BEFORE UPDATE ON ledger_account FOR EACH ROW
  WHEN (pg_trigger_depth() < 1 AND (
        NEW.debits_posted_fen IS DISTINCT FROM OLD.debits_posted_fen OR
        NEW.credits_posted_fen IS DISTINCT FROM OLD.credits_posted_fen OR
        NEW.debits_pending_fen IS DISTINCT FROM OLD.debits_pending_fen OR
        NEW.credits_pending_fen IS DISTINCT FROM OLD.credits_pending_fen OR
        NEW.normal_side IS DISTINCT FROM OLD.normal_side OR
        NEW.id IS DISTINCT FROM OLD.id))
  EXECUTE FUNCTION ledger_account_guard();
CREATE TRIGGER ledger_account_no_delete BEFORE DELETE ON ledger_account FOR EACH ROW
  EXECUTE FUNCTION ledger_account_guard();

-- Down Migration
DROP TRIGGER ledger_account_no_delete ON ledger_account;
DROP TRIGGER ledger_account_guard ON ledger_account;
CREATE TRIGGER ledger_account_guard BEFORE UPDATE OR DELETE ON ledger_account
  FOR EACH ROW EXECUTE FUNCTION ledger_account_guard();
