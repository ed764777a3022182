/**
 * An in-process app with the clearing and settlement plugins, composed by the real `buildApp`
 * (adapters/http/app.ts) plus these two plugins until app.ts registers them itself.
 */
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../adapters/http/app.ts';
import type { AppDeps } from '../../adapters/http/context.ts';
import { clearingRoutes } from '../../adapters/http/plugins/clearing.ts';
import { settlementRoutes } from '../../adapters/http/plugins/settlement.ts';

export async function buildClearingApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = await buildApp(deps, false);
  if (!app.hasRoute({ method: 'GET', url: '/v1/clearing/cycles' })) await app.register(clearingRoutes, deps);
  if (!app.hasRoute({ method: 'GET', url: '/v1/settlement/packages' })) await app.register(settlementRoutes, deps);
  await app.ready();
  return app;
}
