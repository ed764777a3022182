-- Up Migration

-- API keys: only a SHA-256 of the secret is stored (secrets are 256-bit random, so a fast hash
-- is enough: there is nothing to brute-force). Each key has one role and, for operator, bank,
-- programme and merchant keys, the one party it may act for.
CREATE TABLE api_key (
  id           text PRIMARY KEY CHECK (id ~ '^key_[a-z0-9]{16}$'),
  secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
  role         text NOT NULL CHECK (role IN ('admin', 'operator', 'bank', 'programme', 'merchant', 'finance', 'auditor')),
  scope_id     text,
  label        text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
  created_at   timestamptz NOT NULL DEFAULT now(),
  created_by   text NOT NULL,
  revoked_at   timestamptz,
  revoked_by   text,
  CHECK ((role IN ('operator', 'bank', 'programme', 'merchant')) = (scope_id IS NOT NULL))
);

-- Every change of a key is kept as an inserted row with actor and time.
CREATE TABLE api_key_event (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  key_id     text NOT NULL REFERENCES api_key (id),
  event      text NOT NULL CHECK (event IN ('CREATED', 'REVOKED')),
  actor      text NOT NULL,
  at         timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE IF EXISTS api_key_event, api_key;
