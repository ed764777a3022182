-- Up Migration

-- The payment hot-path functions (0009) are planned once per session with a generic plan. A
-- session that first runs them while payment, qr_code_use and sim_bank_authorization are still
-- nearly empty got sequential scans for their look-ups (cheapest on an empty table) and kept
-- them as the tables grew: measured at 10,000 payments, each look-up read the whole table and a
-- batch's facts took 9 ms instead of under 1 ms. Every look-up in them is a probe of a unique or
-- purpose-built index, so sequential scans are switched off inside them: the plan is the probe
-- whatever the statistics were when the session planned it.
ALTER FUNCTION payments_qr_facts SET enable_seqscan = off;
ALTER FUNCTION payments_claim_qr SET enable_seqscan = off;
ALTER FUNCTION sim_bank_lock_and_read SET enable_seqscan = off;
-- The simulated bank's day total per card could still be planned, on tables empty at the time,
-- as a full scan of sim_bank_authorization's primary key filtered by card and date (measured: it
-- grew to 30 ms a batch and became the bottleneck at 1,000 payments a second). It is planned at
-- each call instead (custom plan, ~0.3 ms a batch), from the table's size at the time. It stands
-- in for another institution's system; the engine's own functions keep their generic plans.
ALTER FUNCTION sim_bank_lock_and_read SET plan_cache_mode = force_custom_plan;

-- Down Migration
ALTER FUNCTION payments_qr_facts RESET enable_seqscan;
ALTER FUNCTION payments_claim_qr RESET enable_seqscan;
ALTER FUNCTION sim_bank_lock_and_read RESET enable_seqscan;
ALTER FUNCTION sim_bank_lock_and_read SET plan_cache_mode = force_generic_plan;
