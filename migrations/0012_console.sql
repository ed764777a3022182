-- Up Migration

-- Sessions of the finance staff web console (adapters/console). The browser holds a 256-bit
-- random secret in an HttpOnly cookie; only its SHA-256 is stored, so a read of this table
-- cannot be replayed as a login. A session ends at whichever comes first: its absolute expiry
-- (expires_at), idleness (last_seen_at older than the idle timeout), logout (revoked_at), or the
-- revocation of the API key it was opened with (checked on every request by a join).
CREATE TABLE console_session (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  secret_sha256   bytea NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
  key_id          text NOT NULL REFERENCES api_key (id),
  created_at      timestamptz NOT NULL,
  last_seen_at    timestamptz NOT NULL,
  expires_at      timestamptz NOT NULL,
  revoked_at      timestamptz,
  revoked_reason  text CHECK (revoked_reason IN ('LOGOUT', 'RELOGIN')),
  CHECK (expires_at > created_at),
  CHECK (last_seen_at >= created_at),
  CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX console_session_live_by_key ON console_session (key_id) WHERE revoked_at IS NULL;

-- Down Migration
DROP TABLE IF EXISTS console_session;
