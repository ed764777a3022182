/**
 * The HTTP service: only composes plugins. Each capability is its own plugin with its routes
 * and schemas; the OpenAPI document is generated from those schemas.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from 'pino';
import { authPlugin } from './plugins/auth.ts';
import { errorsPlugin } from './plugins/errors.ts';
import { healthRoutes } from './plugins/health.ts';
import { ledgerRoutes } from './plugins/ledger.ts';
import { adminKeyRoutes } from './plugins/admin-keys.ts';
import { referenceRoutes } from './plugins/reference.ts';
import { transitRoutes } from './plugins/transit.ts';
import { paymentRoutes } from './plugins/payments.ts';
import { cardRoutes } from './plugins/cards.ts';
import { caseRoutes } from './plugins/cases.ts';
import { complaintRoutes } from './plugins/complaints.ts';
import { auditRoutes } from './plugins/audit.ts';
import { clearingRoutes } from './plugins/clearing.ts';
import { settlementRoutes } from './plugins/settlement.ts';
import { adjustmentRoutes } from './plugins/adjustments.ts';
import { reportRoutes } from './plugins/reports.ts';
import { reconRoutes } from './plugins/recon.ts';
import { consoleRoutes } from './plugins/console.ts';
import type { AppDeps } from './context.ts';

export async function buildApp(deps: AppDeps, logger: Logger | false): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger === false ? undefined : logger,
    logger: logger === false ? false : undefined,
    bodyLimit: deps.bodyBytesMax,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
    genReqId: () => `req_${Math.random().toString(36).slice(2, 12)}`,
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'One-card clearing engine', version: '1', description: 'Ingestion, ledger, clearing, settlement and reconciliation for the city social security card.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API key: ock_key_..._...' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } });
  await app.register(errorsPlugin);
  await app.register(authPlugin, deps);

  app.addHook('onResponse', async (req, reply) => {
    deps.metrics.httpRequestDuration.observe(
      { method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  await app.register(healthRoutes, deps);
  await app.register(ledgerRoutes, deps);
  await app.register(adminKeyRoutes, deps);
  await app.register(referenceRoutes, deps);
  await app.register(transitRoutes, deps);
  await app.register(paymentRoutes, deps);
  await app.register(cardRoutes, deps);
  await app.register(caseRoutes, deps);
  await app.register(complaintRoutes, deps);
  await app.register(auditRoutes, deps);
  await app.register(clearingRoutes, deps);
  await app.register(settlementRoutes, deps);
  await app.register(adjustmentRoutes, deps);
  await app.register(reportRoutes, deps);
  await app.register(reconRoutes, deps);
  await app.register(consoleRoutes, deps);
  return app;
}
