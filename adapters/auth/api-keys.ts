/**
 * API keys. A token is `ock_<key id>_<secret>`; the key id finds the row, the secret's SHA-256
 * is compared in constant time. Revocation takes effect on the next request (no cache).
 */
import crypto from 'node:crypto';
import { revocation_channel } from './principal-cache.ts';
import type { Queryable } from '../postgres/db.ts';
import { badRequest, notFound } from '../../engine/errors.ts';

export const roles = ['admin', 'operator', 'bank', 'programme', 'merchant', 'finance', 'auditor'] as const;
export type Role = (typeof roles)[number];
export const scoped_roles: readonly Role[] = ['operator', 'bank', 'programme', 'merchant'];

export interface Principal {
  keyId: string;
  role: Role;
  /** The operator, bank, programme or merchant this key acts for; null for staff roles. */
  scopeId: string | null;
}

const token_pattern = /^ock_(key_[a-z0-9]{16})_([A-Za-z0-9_-]{43})$/;
const scope_pattern = /^[A-Za-z0-9_-]{1,64}$/;

/** The key id a well-formed token names (not proof of anything: the secret is unchecked), else null. */
export function tokenKeyId(token: string): string | null {
  return token_pattern.exec(token)?.[1] ?? null;
}

export function isRole(s: string): s is Role {
  return (roles as readonly string[]).includes(s);
}

export async function createApiKey(q: Queryable, role: string, scopeId: string | null, label: string, actor: string): Promise<{ keyId: string; token: string }> {
  if (!isRole(role)) throw badRequest('ROLE_INVALID', `Role must be one of ${roles.join(', ')}.`);
  const needsScope = scoped_roles.includes(role);
  if (needsScope && (scopeId === null || !scope_pattern.test(scopeId))) {
    throw badRequest('SCOPE_REQUIRED', `A ${role} key must name the ${role} it acts for.`);
  }
  if (!needsScope && scopeId !== null) throw badRequest('SCOPE_NOT_ALLOWED', `A ${role} key has no scope.`);
  const keyId = `key_${crypto.randomBytes(8).toString('hex')}`;
  const secret = crypto.randomBytes(32).toString('base64url');
  const hash = crypto.createHash('sha256').update(secret).digest();
  await q.query(`INSERT INTO api_key (id, secret_sha256, role, scope_id, label, created_by) VALUES ($1, $2, $3, $4, $5, $6)`,
    [keyId, hash, role, scopeId, label, actor]);
  await q.query(`INSERT INTO api_key_event (key_id, event, actor) VALUES ($1, 'CREATED', $2)`, [keyId, actor]);
  return { keyId, token: `ock_${keyId}_${secret}` };
}

export async function revokeApiKey(q: Queryable, keyId: string, actor: string): Promise<void> {
  const r = await q.query(`UPDATE api_key SET revoked_at = now(), revoked_by = $2 WHERE id = $1 AND revoked_at IS NULL`, [keyId, actor]);
  if (r.rowCount === 0) {
    const e = await q.query(`SELECT 1 FROM api_key WHERE id = $1`, [keyId]);
    if (e.rows.length === 0) throw notFound('KEY_NOT_FOUND', 'No such API key.');
    return;
  }
  await q.query(`INSERT INTO api_key_event (key_id, event, actor) VALUES ($1, 'REVOKED', $2)`, [keyId, actor]);
  // Every engine node forgets the key's cached principal (see principal-cache.ts).
  await q.query(`SELECT pg_notify($1, $2)`, [revocation_channel, keyId]);
}

export async function listApiKeys(q: Queryable): Promise<Record<string, unknown>[]> {
  const r = await q.query(`SELECT id, role, scope_id, label, created_at, created_by, revoked_at FROM api_key ORDER BY created_at, id LIMIT 1000`);
  return r.rows;
}

/** The principal for a bearer token, or null for an unknown, malformed or revoked one. */
export async function authenticate(q: Queryable, token: string): Promise<Principal | null> {
  const m = token_pattern.exec(token);
  if (!m) return null;
  const r = await q.query<{ secret_sha256: Buffer; role: Role; scope_id: string | null }>({
    name: 'auth_api_key', text: `SELECT secret_sha256, role, scope_id FROM api_key WHERE id = $1 AND revoked_at IS NULL`, values: [m[1]],
  });
  const row = r.rows[0];
  const presented = crypto.createHash('sha256').update(m[2]).digest();
  // Compare even when the key is unknown, so timing does not reveal which key ids exist.
  const expected = row ? row.secret_sha256 : Buffer.alloc(32);
  const equal = crypto.timingSafeEqual(presented, expected);
  if (!row || !equal) return null;
  return { keyId: m[1], role: row.role, scopeId: row.scope_id };
}

export async function adminKeyExists(q: Queryable): Promise<boolean> {
  const r = await q.query(`SELECT 1 FROM api_key WHERE role = 'admin' AND revoked_at IS NULL LIMIT 1`);
  return r.rows.length > 0;
}
