/**
 * Console sessions: a finance user logs in with their API key once, and the browser then holds
 * only a session secret (256 bits, random) in an HttpOnly cookie. The database keeps the
 * secret's SHA-256, never the secret, so a copy of the table opens no session.
 *
 * A session is live while: not revoked (logout), not past its absolute expiry, not idle longer
 * than the idle timeout, and its API key is still a live finance key. The last two are checked on
 * every request in the same query, so revoking the key (`npm run keys -- revoke`) ends its console
 * sessions at the next click, on every engine node, with no cache to expire.
 *
 * CSRF tokens are derived from the secret (HMAC-SHA256), so they need no storage and no server
 * key shared between nodes: only the holder of the cookie can know the token, and a page of
 * another origin can neither read the cookie nor the pages that carry the token.
 */
import crypto from 'node:crypto';
import type { Queryable, Tx } from '../postgres/db.ts';
import { appendAudit } from '../audit/index.ts';

/** A session ends after this long without a request (a finance desk left unattended). */
export const session_idle_timeout_ms = 30 * 60_000;
/** And after this long whatever happens (one working shift): a stolen cookie does not live long. */
export const session_absolute_timeout_ms = 10 * 3_600_000;
/** last_seen_at is written at most this often per session: a page view costs no write most of the time. */
export const session_touch_interval_ms = 60_000;
export const session_secret_bytes = 32;

export const session_cookie = 'ock_console';
/** The login form's own anti-CSRF cookie (before a session exists). */
export const login_cookie = 'ock_console_login';

const secret_pattern = /^[A-Za-z0-9_-]{43}$/;
const csrf_session_context = 'onecard-console-csrf-v1';
const csrf_login_context = 'onecard-console-login-csrf-v1';

export interface ConsoleUser {
  sessionId: bigint;
  keyId: string;
  /** The API key's label: the display name of the finance user. */
  displayName: string;
  role: 'finance';
  /** The session secret from the cookie (needed to derive the CSRF token). */
  secret: string;
  createdAt: Date;
  expiresAt: Date;
}

export const plans = {
  insert: `
    INSERT INTO console_session (secret_sha256, key_id, created_at, last_seen_at, expires_at)
    VALUES ($1, $2, $3, $3, $4) RETURNING id`,
  /** The live session of a secret hash, with its key's label; nothing when any condition fails. */
  live: `
    SELECT s.id, s.key_id, k.label, s.created_at, s.last_seen_at, s.expires_at
    FROM console_session s JOIN api_key k ON k.id = s.key_id
    WHERE s.secret_sha256 = $1 AND s.revoked_at IS NULL AND k.revoked_at IS NULL AND k.role = 'finance'
      AND s.expires_at > $2::timestamptz AND s.last_seen_at > $2::timestamptz - make_interval(secs => $3::double precision / 1000)`,
  touch: `
    UPDATE console_session SET last_seen_at = $2::timestamptz
    WHERE id = $1 AND revoked_at IS NULL AND last_seen_at < $2::timestamptz - make_interval(secs => $3::double precision / 1000)`,
  revoke: `
    UPDATE console_session SET revoked_at = $2, revoked_reason = $3
    WHERE secret_sha256 = $1 AND revoked_at IS NULL RETURNING id, key_id`,
} as const;

export function newSecret(): string {
  return crypto.randomBytes(session_secret_bytes).toString('base64url');
}

export function isSecretShaped(value: unknown): value is string {
  return typeof value === 'string' && secret_pattern.test(value);
}

function sha256(secret: string): Buffer {
  return crypto.createHash('sha256').update(secret).digest();
}

function hmac(secret: string, context: string): string {
  return crypto.createHmac('sha256', secret).update(context).digest('base64url');
}

/** The CSRF token of a session's forms. */
export function sessionCsrfToken(secret: string): string {
  return hmac(secret, csrf_session_context);
}

/** The CSRF token of the login form, bound to the login cookie. */
export function loginCsrfToken(loginSecret: string): string {
  return hmac(loginSecret, csrf_login_context);
}

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(presented: unknown, expected: string): boolean {
  if (typeof presented !== 'string' || presented.length !== expected.length) return false;
  return crypto.timingSafeEqual(Buffer.from(presented), Buffer.from(expected));
}

/** Opens a session for a finance key (the caller has authenticated it) and audits the login. */
export async function openSession(tx: Tx, keyId: string, now: Date, meta: { ip: string }): Promise<{ secret: string; sessionId: bigint; expiresAt: Date }> {
  const secret = newSecret();
  const expiresAt = new Date(now.getTime() + session_absolute_timeout_ms);
  const r = await tx.query<{ id: bigint }>(plans.insert, [sha256(secret), keyId, now, expiresAt]);
  const sessionId = r.rows[0].id;
  await appendAudit(tx, [{
    at: now, actor: keyId, role: 'finance', purpose: null, action: 'CONSOLE_LOGIN', subject: `console_session:${sessionId}`, fields: [],
    details: { ip: meta.ip, expires_at: expiresAt.toISOString() },
  }]);
  return { secret, sessionId, expiresAt };
}

/** The live session of a cookie's secret, or null; refreshes its idle clock at most once a minute. */
export async function liveSession(q: Queryable, secret: string, now: Date): Promise<ConsoleUser | null> {
  if (!isSecretShaped(secret)) return null;
  const r = await q.query<{ id: bigint; key_id: string; label: string; created_at: Date; last_seen_at: Date; expires_at: Date }>(
    plans.live, [sha256(secret), now, session_idle_timeout_ms]);
  const row = r.rows[0];
  if (row === undefined) return null;
  if (now.getTime() - row.last_seen_at.getTime() >= session_touch_interval_ms) {
    await q.query(plans.touch, [row.id, now, session_touch_interval_ms]);
  }
  return { sessionId: row.id, keyId: row.key_id, displayName: row.label, role: 'finance', secret, createdAt: row.created_at, expiresAt: row.expires_at };
}

/** Ends the session of a secret (logout, or a new login in the same browser); audited. */
export async function revokeSession(tx: Tx, secret: string, now: Date, reason: 'LOGOUT' | 'RELOGIN'): Promise<boolean> {
  if (!isSecretShaped(secret)) return false;
  const r = await tx.query<{ id: bigint; key_id: string }>(plans.revoke, [sha256(secret), now, reason]);
  const row = r.rows[0];
  if (row === undefined) return false;
  await appendAudit(tx, [{
    at: now, actor: row.key_id, role: 'finance', purpose: null, action: 'CONSOLE_LOGOUT', subject: `console_session:${row.id}`, fields: [],
    details: { reason },
  }]);
  return true;
}
