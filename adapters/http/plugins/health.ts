/** Liveness, readiness and Prometheus metrics. */
import type { FastifyInstance } from 'fastify';
import { migrationsPending } from '../../postgres/migrate.ts';
import type { AppDeps } from '../context.ts';

const health_schema = {
  type: 'object',
  properties: { status: { type: 'string' }, checks: { type: 'object', additionalProperties: { type: 'string' } } },
} as const;

export async function healthRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  app.get('/healthz', {
    config: { roles: [] },
    schema: { tags: ['operations'], summary: 'Liveness: the process answers.', response: { 200: health_schema } },
  }, async () => ({ status: 'ok' }));

  app.get('/readyz', {
    config: { roles: [] },
    schema: { tags: ['operations'], summary: 'Readiness: database reachable, migrations applied, job queue started.', response: { 200: health_schema, 503: health_schema } },
  }, async (_req, reply) => {
    const checks: Record<string, string> = {};
    try {
      await deps.db.query('SELECT 1');
      checks.database = 'ok';
      const pending = await migrationsPending(deps.db);
      checks.migrations = pending === 0 ? 'ok' : `${pending} pending`;
    } catch {
      checks.database = 'unreachable';
      checks.migrations = 'unknown';
    }
    checks.queue = deps.queue() ? 'ok' : 'not started';
    const ready = Object.values(checks).every((v) => v === 'ok');
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });

  app.get('/metrics', {
    config: { roles: [] },
    schema: { tags: ['operations'], summary: 'Prometheus metrics (text exposition format).', response: { 200: { type: 'string' } } },
  }, async (_req, reply) => {
    reply.header('content-type', deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
}
