-- Up Migration

-- Who created or changed a bank, merchant, fee schedule, terminal or card, and when.
-- 0003 keeps the history of card statuses (card_status_event) and of fee schedules (versioned
-- rows with created_by), but a bank, merchant, terminal or card row records neither the actor
-- that created it nor any later change of its fields (a merchant suspended, a terminal retired).
-- Every state change is kept as an inserted row with actor and time: this is that row. It is also
-- a cheap invalidation feed for in-memory reference caches: a cache that remembers the highest
-- id it has seen knows whether anything changed since.
CREATE TABLE reference_event (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  entity     text NOT NULL CHECK (entity IN ('bank', 'merchant', 'fee_schedule', 'terminal', 'card')),
  entity_id  text NOT NULL CHECK (length(entity_id) BETWEEN 1 AND 100),
  action     text NOT NULL CHECK (action IN ('CREATED', 'UPDATED')),
  actor      text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
  at         timestamptz NOT NULL,
  -- For UPDATED: {"field": [before, after], ...}; NULL for CREATED (the row itself is the content).
  changes    jsonb
);
CREATE INDEX reference_event_by_entity ON reference_event (entity, entity_id, id);

-- Reference history is append-only, like the ledger's.
CREATE FUNCTION reference_event_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'reference history is immutable: % on % refused', TG_OP, TG_TABLE_NAME USING ERRCODE = 'P0001';
END $$;
CREATE TRIGGER reference_event_immutable BEFORE UPDATE OR DELETE ON reference_event
  FOR EACH ROW EXECUTE FUNCTION reference_event_refuse_change();
CREATE TRIGGER card_status_event_immutable BEFORE UPDATE OR DELETE ON card_status_event
  FOR EACH ROW EXECUTE FUNCTION reference_event_refuse_change();

-- Down Migration
DROP TRIGGER IF EXISTS card_status_event_immutable ON card_status_event;
DROP TABLE IF EXISTS reference_event;
DROP FUNCTION IF EXISTS reference_event_refuse_change;
