-- Up Migration

-- Online payments: purse loads by issuing banks, e-card QR payments (plain, medical, utility) and
-- their refunds, the single-use record of QR codes, the reversals the engine owes banks, and the
-- simulated bank's own books.
--
-- No foreign keys from these tables to card, merchant or clearing_cycle, on purpose: every
-- payment would take a KEY SHARE row lock on its merchant's row and on the one open cycle's row,
-- and thousands of concurrent holders of one row's lock turn into multixact churn; and under
-- Citus a payment (sharded by merchant) cannot reference a card (sharded by card). The engine
-- reads each of those rows in the same request before it writes, which is the check that matters.
-- Unique keys include the natural distribution column (merchant for payments, bank for loads).

-- Purse loads: a bank moves money from its clearing position onto a card's e-purse. The bank's
-- own reference is the idempotency key; the first answer is kept in the row for replays.
CREATE TABLE purse_load (
  id                        text NOT NULL CHECK (id ~ '^pld_[0-9a-f]{24}$'),
  bank_code                 text NOT NULL CHECK (bank_code ~ '^[0-9]{12}$'),
  bank_reference            text NOT NULL CHECK (bank_reference ~ '^[A-Za-z0-9_.:-]{1,64}$'),
  card_no                   text NOT NULL CHECK (card_no ~ '^[0-9]{16,19}$'),
  amount_fen                bigint NOT NULL CHECK (amount_fen > 0),
  purse_balance_after_fen   bigint NOT NULL CHECK (purse_balance_after_fen >= 0),
  entry_idem_key            text NOT NULL,
  cycle_id                  text NOT NULL,
  business_date             date NOT NULL,
  actor                     text NOT NULL,
  created_at                timestamptz NOT NULL,
  PRIMARY KEY (bank_code, bank_reference)
);
CREATE INDEX purse_load_by_card ON purse_load (card_no, created_at);

-- Payments. (merchant_id, order_id) is the merchant's idempotency key; request_sha256 is the
-- fingerprint of what was asked, so the same key with other content is refused, not replayed.
-- A payment row never changes, except that a full refund of a utility payment releases its bill
-- (bill_released_at/by, set once), so the bill may be paid again.
CREATE TABLE payment (
  id                 text NOT NULL CHECK (id ~ '^pay_[0-9a-f]{24}$'),
  merchant_id        text NOT NULL CHECK (merchant_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  order_id           text NOT NULL CHECK (order_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
  request_sha256     text NOT NULL CHECK (request_sha256 ~ '^[0-9a-f]{64}$'),
  merchant_kind      text NOT NULL CHECK (merchant_kind IN ('TRANSIT', 'MEDICAL', 'UTILITY', 'RETAIL')),
  card_no            text NOT NULL CHECK (card_no ~ '^[0-9]{16,19}$'),
  issuing_bank       text NOT NULL CHECK (issuing_bank ~ '^[0-9]{12}$'),
  amount_fen         bigint NOT NULL CHECK (amount_fen > 0),
  medical_fen        bigint NOT NULL CHECK (medical_fen >= 0),
  self_pay_fen       bigint NOT NULL CHECK (self_pay_fen >= 0),
  qr_code_id         text NOT NULL CHECK (qr_code_id ~ '^[0-9a-f]{64}$'),
  terminal_id        text CHECK (terminal_id ~ '^[0-9]{12}$'),
  medical_visit_no   text CHECK (length(medical_visit_no) BETWEEN 1 AND 64),
  customer_no        text CHECK (length(customer_no) BETWEEN 1 AND 32),
  bill_id            text CHECK (length(bill_id) BETWEEN 1 AND 64),
  bank_auth_id       text CHECK (bank_auth_id ~ '^auth_[0-9a-f]{24}$'),
  bank_auth_code     text CHECK (length(bank_auth_code) BETWEEN 1 AND 32),
  entry_idem_key     text NOT NULL,
  cycle_id           text NOT NULL,
  business_date      date NOT NULL,
  actor              text NOT NULL,
  created_at         timestamptz NOT NULL,
  bill_released_at   timestamptz,
  bill_released_by   text,
  PRIMARY KEY (merchant_id, id),
  UNIQUE (merchant_id, order_id),
  CHECK (medical_fen + self_pay_fen = amount_fen),
  -- The bank is asked exactly when there is a self-pay part.
  CHECK ((self_pay_fen > 0) = (bank_auth_id IS NOT NULL) AND (bank_auth_id IS NULL) = (bank_auth_code IS NULL)),
  CHECK ((customer_no IS NULL) = (bill_id IS NULL)),
  CHECK (bill_released_at IS NULL OR bill_id IS NOT NULL),
  CHECK ((bill_released_at IS NULL) = (bill_released_by IS NULL))
);
-- Finance and auditors look a payment up by its id alone.
CREATE INDEX payment_by_id ON payment (id);
CREATE INDEX payment_by_card ON payment (card_no, created_at);
-- A utility bill is paid at most once among payments that were not refunded in full.
CREATE UNIQUE INDEX payment_bill_once ON payment (merchant_id, bill_id) WHERE bill_id IS NOT NULL AND bill_released_at IS NULL;

CREATE FUNCTION payment_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'payments are never deleted' USING ERRCODE = 'P0001';
  END IF;
  IF OLD.bill_released_at IS NOT NULL OR NEW.bill_released_at IS NULL
     OR (to_jsonb(NEW) - 'bill_released_at' - 'bill_released_by') <> (to_jsonb(OLD) - 'bill_released_at' - 'bill_released_by') THEN
    RAISE EXCEPTION 'a payment changes only by releasing its bill, once' USING ERRCODE = 'P0001';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payment_guard BEFORE UPDATE OR DELETE ON payment FOR EACH ROW EXECUTE FUNCTION payment_guard();

-- QR pay codes already used: the primary key on the code id is the single-use rule, across
-- engine nodes and restarts. A row is written in the same transaction as its payment, so a code
-- whose payment did not commit (bank timeout, refusal) stays usable.
CREATE TABLE qr_code_use (
  code_id      text PRIMARY KEY CHECK (code_id ~ '^[0-9a-f]{64}$'),
  card_no      text NOT NULL,
  merchant_id  text NOT NULL,
  order_id     text NOT NULL,
  payment_id   text NOT NULL,
  issued_at    timestamptz NOT NULL,
  used_at      timestamptz NOT NULL
);

-- Refunds, idempotent by the merchant's refund id. The amounts taken back from each leg are
-- kept, and the payment's refunded total after this refund (the first answer, for replays).
CREATE TABLE payment_refund (
  id                    text NOT NULL CHECK (id ~ '^rfd_[0-9a-f]{24}$'),
  merchant_id           text NOT NULL,
  refund_id             text NOT NULL CHECK (refund_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
  payment_id            text NOT NULL,
  amount_fen            bigint NOT NULL CHECK (amount_fen > 0),
  medical_fen           bigint NOT NULL CHECK (medical_fen >= 0),
  self_pay_fen          bigint NOT NULL CHECK (self_pay_fen >= 0),
  refunded_after_fen    bigint NOT NULL CHECK (refunded_after_fen > 0),
  entry_idem_key        text NOT NULL,
  cycle_id              text NOT NULL,
  business_date         date NOT NULL,
  actor                 text NOT NULL,
  created_at            timestamptz NOT NULL,
  PRIMARY KEY (merchant_id, id),
  UNIQUE (merchant_id, refund_id),
  FOREIGN KEY (merchant_id, payment_id) REFERENCES payment (merchant_id, id),
  CHECK (medical_fen + self_pay_fen = amount_fen)
);
-- Refunds of one payment are made one at a time (under its row lock), so each has its own
-- cumulative total: two refunds claiming the same one would mean the lock was lost. It also
-- orders a payment's refunds.
CREATE UNIQUE INDEX payment_refund_by_payment ON payment_refund (merchant_id, payment_id, refunded_after_fen);

-- The second line of defence behind the engine's lock on the payment row: refunds of a payment
-- never add up to more than the payment, in total and per leg.
CREATE FUNCTION payment_refund_within_payment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad text;
BEGIN
  SELECT p.id INTO bad
  FROM (SELECT DISTINCT merchant_id, payment_id FROM new_rows) n
  JOIN payment p ON p.merchant_id = n.merchant_id AND p.id = n.payment_id
  JOIN LATERAL (
    SELECT sum(r.amount_fen) AS amount_fen, sum(r.medical_fen) AS medical_fen, sum(r.self_pay_fen) AS self_pay_fen
    FROM payment_refund r WHERE r.merchant_id = p.merchant_id AND r.payment_id = p.id) s ON true
  WHERE s.amount_fen > p.amount_fen OR s.medical_fen > p.medical_fen OR s.self_pay_fen > p.self_pay_fen
  LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'refunds of payment % exceed it', bad USING ERRCODE = '23514', CONSTRAINT = 'payment_refund_within_payment';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER payment_refund_within_payment AFTER INSERT ON payment_refund
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION payment_refund_within_payment();

-- Authorizations the engine asked a bank to reverse (a bank timeout, or a payment that could not
-- be posted after the bank approved), and the bank's acknowledgements. A request without an
-- acknowledgement is retried until the bank answers.
CREATE TABLE bank_auth_reversal (
  auth_id       text PRIMARY KEY CHECK (auth_id ~ '^auth_[0-9a-f]{24}$'),
  bank_code     text NOT NULL,
  card_no       text NOT NULL,
  merchant_id   text NOT NULL,
  amount_fen    bigint NOT NULL CHECK (amount_fen > 0),
  reason        text NOT NULL CHECK (reason IN ('BANK_TIMEOUT', 'BANK_ERROR', 'NOT_POSTED')),
  actor         text NOT NULL,
  requested_at  timestamptz NOT NULL
);

CREATE TABLE bank_auth_reversal_ack (
  auth_id          text PRIMARY KEY REFERENCES bank_auth_reversal (auth_id),
  acknowledged_at  timestamptz NOT NULL
);

-- The simulated bank (adapters/payments/bank-auth.ts): the default BankAuthorizer, standing in
-- for the cardholders' banks. It keeps its books in Postgres so daily limits survive restarts.
-- A reversal may arrive before the authorization it reverses (the engine gave up waiting while
-- the request was still in flight): it is kept, and the late authorization is then declined.
CREATE TABLE sim_bank_authorization (
  auth_id       text PRIMARY KEY,
  bank_code     text NOT NULL,
  card_no       text NOT NULL,
  merchant_id   text NOT NULL,
  local_date    date NOT NULL,
  amount_fen    bigint NOT NULL CHECK (amount_fen > 0),
  approved      boolean NOT NULL,
  auth_code     text,
  decline_code  text,
  decided_at    timestamptz NOT NULL,
  CHECK (approved = (auth_code IS NOT NULL) AND approved = (decline_code IS NULL))
);
CREATE INDEX sim_bank_authorization_by_card_day ON sim_bank_authorization (card_no, local_date) WHERE approved;

CREATE TABLE sim_bank_reversal (
  auth_id      text PRIMARY KEY,
  card_no      text NOT NULL,
  reversed_at  timestamptz NOT NULL
);

-- Down Migration
DROP TABLE IF EXISTS sim_bank_reversal, sim_bank_authorization, bank_auth_reversal_ack, bank_auth_reversal,
  payment_refund, qr_code_use, payment, purse_load;
DROP FUNCTION IF EXISTS payment_refund_within_payment, payment_guard;
