/**
 * Authentication and role checks for every route. Each route declares `config.roles`; a route
 * without it is refused at start-up, so no route can be forgotten. `[]` marks a public route.
 * The declared roles are also kept in a registry (`declaredRoutes`) so the role matrix test is
 * generated from what the routes say, not from a hand-kept list.
 *
 * Repeated failed authentication is limited per client IP and per key id named in the token:
 * past the limit the caller gets 429 AUTH_RATE_LIMITED with Retry-After, and the token is not
 * even looked up. A missing credential is not a failure here: it guesses nothing and costs no
 * database read.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { authenticate, tokenKeyId, type Role } from '../../auth/api-keys.ts';
import { FailureWindows } from '../../auth/failure-limiter.ts';
import { DomainError, unauthorized } from '../../../engine/errors.ts';
import type { AppDeps } from '../context.ts';

/** Distinct IPs and key ids remembered at once; past it the least recently failed are forgotten. */
export const auth_failure_keys_max = 100_000;
/**
 * A key id's own limit is looser than an IP's: anyone who learns a key id could otherwise lock its
 * owner out from a handful of addresses. The secret is 256 bits, so this bounds noise, not odds.
 */
export const auth_failures_per_key_factor = 5;

export interface DeclaredRoute {
  method: string;
  url: string;
  roles: readonly Role[];
  /** The route's params schema, so tests can fill path parameters. */
  params: unknown;
}

const registries = new WeakMap<FastifyInstance, DeclaredRoute[]>();

/** Every route registered after the auth plugin, with its declared roles (HEAD twins included). */
export function declaredRoutes(app: FastifyInstance): readonly DeclaredRoute[] {
  return registries.get(app) ?? [];
}

export const authPlugin = fp(async (app: FastifyInstance, deps: AppDeps) => {
  const registry: DeclaredRoute[] = [];
  registries.set(app, registry);
  const { authFailuresMax, authFailureWindowMs } = deps.config;
  const byIp = new FailureWindows({ failuresMax: authFailuresMax, windowMs: authFailureWindowMs, keysMax: auth_failure_keys_max });
  const byKey = new FailureWindows({ failuresMax: authFailuresMax * auth_failures_per_key_factor, windowMs: authFailureWindowMs, keysMax: auth_failure_keys_max });

  app.decorateRequest('principal', null);
  app.addHook('onRoute', (route) => {
    const roles = (route.config as { roles?: unknown } | undefined)?.roles;
    if (!Array.isArray(roles)) {
      throw new Error(`route ${route.method} ${route.url} declares no config.roles`);
    }
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      registry.push({ method, url: route.url, roles: roles as Role[], params: (route.schema as { params?: unknown } | undefined)?.params });
    }
  });
  app.addHook('onRequest', async (req, reply) => {
    const roles = req.routeOptions.config?.roles;
    if (roles === undefined || roles.length === 0) return;
    const header = req.headers.authorization;
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : null;
    if (!token) throw unauthorized('Send your API key as "Authorization: Bearer <key>".');

    const nowMs = deps.now().getTime();
    const ipKey = `ip:${req.ip}`;
    const keyId = tokenKeyId(token);
    const keyKey = keyId === null ? null : `key:${keyId}`;
    const waitMs = Math.max(byIp.blockedForMs(ipKey, nowMs), keyKey === null ? 0 : byKey.blockedForMs(keyKey, nowMs));
    if (waitMs > 0) {
      const retryAfterS = Math.ceil(waitMs / 1000);
      reply.header('retry-after', String(retryAfterS));
      throw new DomainError('AUTH_RATE_LIMITED', 429, 'Too many failed authentications from this client or for this key; try again later.', { retry_after_s: retryAfterS });
    }

    const principal = deps.principalCache === undefined
      ? await authenticate(deps.db, token)
      : await deps.principalCache.resolve(token, () => authenticate(deps.db, token));
    if (!principal) {
      byIp.recordFailure(ipKey, nowMs);
      if (keyKey !== null) byKey.recordFailure(keyKey, nowMs);
      req.log.info({ key_id: keyId }, 'authentication failed');
      throw unauthorized('The API key is unknown or revoked.');
    }
    if (!roles.includes(principal.role)) {
      throw new DomainError('FORBIDDEN_ROLE', 403, `This route is not open to the ${principal.role} role.`);
    }
    req.principal = principal;
  });
}, { name: 'onecard-auth' });
