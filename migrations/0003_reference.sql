-- Up Migration

-- Reference data that ingestion validates against, and the clearing cycles every accepted
-- transaction belongs to. Every change that matters to money or to a cardholder is kept as an
-- inserted row (an *_event table) with actor and time, so any past state can be reconstructed.

-- Cooperating banks, by their 12-digit CNAPS code.
CREATE TABLE bank (
  code        text PRIMARY KEY CHECK (code ~ '^[0-9]{12}$'),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Merchants: transit operators (kind TRANSIT with is_operator: they upload tap batches),
-- hospitals and pharmacies (MEDICAL), utilities (UTILITY), shops (RETAIL). Each is paid through
-- its acquiring bank into its settlement account.
CREATE TABLE merchant (
  id                  text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
  name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  kind                text NOT NULL CHECK (kind IN ('TRANSIT', 'MEDICAL', 'UTILITY', 'RETAIL')),
  is_operator         boolean NOT NULL DEFAULT false CHECK (NOT is_operator OR kind = 'TRANSIT'),
  acquiring_bank      text NOT NULL REFERENCES bank (code),
  settlement_account  text NOT NULL CHECK (settlement_account ~ '^[0-9]{6,32}$'),
  status              text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED', 'CLOSED')),
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchant_by_bank ON merchant (acquiring_bank);

-- Fee schedules are versioned by the business date they take effect: a cycle is priced with the
-- schedule in force on its business date, so a change never reprices a closed cycle.
-- fee = clamp(round_half_up(amount_fen × rate), min_fen, max_fen), in exact decimal arithmetic.
CREATE TABLE merchant_fee_schedule (
  merchant_id     text NOT NULL REFERENCES merchant (id),
  effective_from  date NOT NULL,
  rate            numeric(9, 8) NOT NULL CHECK (rate >= 0 AND rate < 1),
  min_fen         bigint NOT NULL CHECK (min_fen >= 0),
  max_fen         bigint NOT NULL CHECK (max_fen >= min_fen),
  created_at      timestamptz NOT NULL DEFAULT now(),
  created_by      text NOT NULL,
  PRIMARY KEY (merchant_id, effective_from)
);

-- Terminals (PSAM ids) of transit operators and of merchants' scanners, with optional station
-- coordinates (the misuse checks use them for impossible-travel signals).
CREATE TABLE terminal (
  id           text PRIMARY KEY CHECK (id ~ '^[0-9]{12}$'),
  merchant_id  text NOT NULL REFERENCES merchant (id),
  station_id   text CHECK (station_id IS NULL OR length(station_id) BETWEEN 1 AND 64),
  line_id      text CHECK (line_id IS NULL OR length(line_id) BETWEEN 1 AND 64),
  latitude     numeric(9, 6) CHECK (latitude IS NULL OR latitude BETWEEN -90 AND 90),
  longitude    numeric(9, 6) CHECK (longitude IS NULL OR longitude BETWEEN -180 AND 180),
  status       text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'RETIRED')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  CHECK ((latitude IS NULL) = (longitude IS NULL))
);
CREATE INDEX terminal_by_merchant ON terminal (merchant_id);

-- Cards: one row per card number (a physical card and an e-card each have their own number;
-- `linked_card_no` ties an e-card to its physical card). `status` is the current state; the
-- history with effective times is `card_status_event`, which ingestion reads to decide whether a
-- tap made at a given local time came before or after a loss report.
CREATE TABLE card (
  card_no         text PRIMARY KEY CHECK (card_no ~ '^[0-9]{16,19}$'),
  issuing_bank    text NOT NULL REFERENCES bank (code),
  form            text NOT NULL CHECK (form IN ('PHYSICAL', 'ECARD')),
  linked_card_no  text REFERENCES card (card_no),
  person_id       bigint,
  status          text NOT NULL CHECK (status IN ('ISSUED', 'ACTIVE', 'LOST_REPORTED', 'SUSPENDED', 'CANCELLED')),
  status_since    timestamptz NOT NULL,
  -- Per-card daily limit for online payments authorized against the cardholder's bank account.
  daily_limit_fen bigint NOT NULL DEFAULT 500000 CHECK (daily_limit_fen >= 0),
  replaced_by     text REFERENCES card (card_no),
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX card_by_bank ON card (issuing_bank);
CREATE INDEX card_by_person ON card (person_id) WHERE person_id IS NOT NULL;

CREATE TABLE card_status_event (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  card_no       text NOT NULL REFERENCES card (card_no),
  status        text NOT NULL CHECK (status IN ('ISSUED', 'ACTIVE', 'LOST_REPORTED', 'SUSPENDED', 'CANCELLED')),
  effective_at  timestamptz NOT NULL,
  actor         text NOT NULL,
  reason        text,
  recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX card_status_event_by_card ON card_status_event (card_no, effective_at, id);

-- Clearing cycles: one per business date. Ingestion writes into the one OPEN cycle while holding
-- a shared advisory lock; closing takes the same lock exclusively, closes the cycle and opens the
-- next in one transaction, so a transaction accepted concurrently with the close lands in exactly
-- one cycle, and a closed cycle never changes.
CREATE TABLE clearing_cycle (
  id             text PRIMARY KEY CHECK (id ~ '^CYC[0-9]{8}$'),
  business_date  date NOT NULL UNIQUE,
  state          text NOT NULL CHECK (state IN ('OPEN', 'CLOSED', 'CLEARED', 'PUBLISHED', 'SETTLED', 'PARTIALLY_SETTLED')),
  opened_at      timestamptz NOT NULL,
  closed_at      timestamptz,
  CHECK ((state = 'OPEN') = (closed_at IS NULL))
);
CREATE UNIQUE INDEX clearing_cycle_one_open ON clearing_cycle ((true)) WHERE state = 'OPEN';

CREATE TABLE clearing_cycle_event (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  cycle_id    text NOT NULL REFERENCES clearing_cycle (id),
  from_state  text,
  to_state    text NOT NULL,
  actor       text NOT NULL,
  at          timestamptz NOT NULL DEFAULT now(),
  details     jsonb
);
CREATE INDEX clearing_cycle_event_by_cycle ON clearing_cycle_event (cycle_id, id);

-- Risk cases: signals that need a person's review (possible clones, purse shortfalls, misuse).
-- `source_ref` makes raising a case idempotent: the same signal from the same source is one case.
CREATE TABLE risk_case (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind         text NOT NULL CHECK (kind ~ '^[A-Z][A-Z0-9_]{1,39}$'),
  source_ref   text NOT NULL CHECK (length(source_ref) BETWEEN 1 AND 200),
  card_no      text,
  merchant_id  text,
  terminal_id  text,
  amount_fen   bigint,
  details      jsonb NOT NULL DEFAULT '{}'::jsonb,
  state        text NOT NULL DEFAULT 'OPEN' CHECK (state IN ('OPEN', 'ASSIGNED', 'CONFIRMED', 'DISMISSED')),
  opened_at    timestamptz NOT NULL,
  UNIQUE (kind, source_ref)
);
CREATE INDEX risk_case_open ON risk_case (opened_at) WHERE state IN ('OPEN', 'ASSIGNED');
CREATE INDEX risk_case_by_card ON risk_case (card_no) WHERE card_no IS NOT NULL;

CREATE TABLE risk_case_event (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id     bigint NOT NULL REFERENCES risk_case (id),
  from_state  text,
  to_state    text NOT NULL,
  actor       text NOT NULL,
  note        text,
  at          timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE IF EXISTS risk_case_event, risk_case, clearing_cycle_event, clearing_cycle,
  card_status_event, card, terminal, merchant_fee_schedule, merchant, bank;
