/**
 * Authentication and role checks for every route. Each route declares `config.roles`; a route
 * without it is refused at start-up, so no route can be forgotten. `[]` marks a public route.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { authenticate } from '../../auth/api-keys.ts';
import { DomainError, unauthorized } from '../../../engine/errors.ts';
import type { AppDeps } from '../context.ts';

export const authPlugin = fp(async (app: FastifyInstance, deps: AppDeps) => {
  app.decorateRequest('principal', null);
  app.addHook('onRoute', (route) => {
    const roles = (route.config as { roles?: unknown } | undefined)?.roles;
    if (!Array.isArray(roles)) {
      throw new Error(`route ${route.method} ${route.url} declares no config.roles`);
    }
  });
  app.addHook('onRequest', async (req) => {
    const roles = req.routeOptions.config?.roles;
    if (roles === undefined || roles.length === 0) return;
    const header = req.headers.authorization;
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : null;
    if (!token) throw unauthorized('Send your API key as "Authorization: Bearer <key>".');
    const principal = await authenticate(deps.db, token);
    if (!principal) throw unauthorized('The API key is unknown or revoked.');
    if (!roles.includes(principal.role)) {
      throw new DomainError('FORBIDDEN_ROLE', 403, `This route is not open to the ${principal.role} role.`);
    }
    req.principal = principal;
  });
}, { name: 'onecard-auth' });
