/** API key administration (admin role only). Secrets are shown once, at creation. */
import type { FastifyInstance } from 'fastify';
import { createApiKey, listApiKeys, revokeApiKey, roles } from '../../auth/api-keys.ts';
import { error_responses, type AppDeps } from '../context.ts';

export async function adminKeyRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  app.post('/v1/admin/api-keys', {
    config: { roles: ['admin'] },
    schema: {
      tags: ['admin'], summary: 'Create an API key; the token is returned once and stored only as a hash.', security: [{ bearer: [] }],
      body: { type: 'object', additionalProperties: false, required: ['role', 'label'], properties: {
        role: { type: 'string', enum: [...roles] }, scope_id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
        label: { type: 'string', minLength: 1, maxLength: 200 } } },
      response: { 201: { type: 'object', properties: { key_id: { type: 'string' }, token: { type: 'string' } } }, ...error_responses },
    },
  }, async (req, reply) => {
    const b = req.body as { role: string; scope_id?: string; label: string };
    const k = await createApiKey(deps.db, b.role, b.scope_id ?? null, b.label, req.principal?.keyId ?? 'unknown');
    return reply.status(201).send({ key_id: k.keyId, token: k.token });
  });

  app.get('/v1/admin/api-keys', {
    config: { roles: ['admin'] },
    schema: {
      tags: ['admin'], summary: 'List API keys (never their secrets).', security: [{ bearer: [] }],
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: { type: 'object', properties: {
        id: { type: 'string' }, role: { type: 'string' }, scope_id: { type: ['string', 'null'] }, label: { type: 'string' },
        created_at: { type: 'string' }, created_by: { type: 'string' }, revoked_at: { type: ['string', 'null'] } } } } } }, ...error_responses },
    },
  }, async () => ({ items: (await listApiKeys(deps.db)).map((k) => ({ ...k, created_at: (k.created_at as Date).toISOString(), revoked_at: k.revoked_at ? (k.revoked_at as Date).toISOString() : null })) }));

  app.delete('/v1/admin/api-keys/:id', {
    config: { roles: ['admin'] },
    schema: {
      tags: ['admin'], summary: 'Revoke an API key; it is refused from the next request on.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^key_[a-z0-9]{16}$' } } },
      response: { 204: { type: 'null' }, ...error_responses },
    },
  }, async (req, reply) => {
    const keyId = (req.params as { id: string }).id;
    await revokeApiKey(deps.db, keyId, req.principal?.keyId ?? 'unknown');
    deps.principalCache?.forgetKey(keyId);
    return reply.status(204).send();
  });
}
