/** One error format for every refusal: `{code, message, details}` with a stable code. */
import fp from 'fastify-plugin';
import type { FastifyError, FastifyInstance } from 'fastify';
import { isDomainError } from '../../../engine/errors.ts';
import { translatePgError } from '../../../ledger/index.ts';

export const errorsPlugin = fp(async (app: FastifyInstance) => {
  app.setErrorHandler((raw, req, reply) => {
    const err = translatePgError(raw);
    if (isDomainError(err)) {
      if (err.status >= 500) req.log.error({ code: err.code }, err.message);
      return reply.status(err.status).send({ code: err.code, message: err.message, details: err.details });
    }
    // Postgres data exceptions (class 22: out-of-range numbers, NUL bytes, impossible dates) mean
    // the input could not be stored as given: the caller's fault, and nothing was written.
    const sqlstate = (err as { code?: unknown } | null)?.code;
    if (typeof sqlstate === 'string' && /^22[0-9A-Z]{3}$/.test(sqlstate)) {
      return reply.status(400).send({ code: 'INPUT_NOT_STORABLE', message: 'A value in the request is out of range or not representable.' });
    }
    const fe = err as FastifyError;
    if (fe.validation) {
      return reply.status(400).send({ code: 'VALIDATION_FAILED', message: `The request is invalid: ${fe.message}`, details: { errors: fe.validation.map((v) => ({ path: v.instancePath, message: v.message })) } });
    }
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.status(413).send({ code: 'BODY_TOO_LARGE', message: 'The request body is larger than this engine accepts.' });
    }
    if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.status(415).send({ code: 'UNSUPPORTED_MEDIA_TYPE', message: 'This content type is not accepted here.' });
    }
    if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
      return reply.status(fe.statusCode).send({ code: fe.code ?? 'BAD_REQUEST', message: fe.message });
    }
    req.log.error({ err: { message: (err as Error)?.message, stack: (err as Error)?.stack } }, 'unhandled error');
    return reply.status(500).send({ code: 'INTERNAL', message: 'The engine failed to handle this request; nothing was half-written.' });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ code: 'ROUTE_NOT_FOUND', message: `No route ${req.method} ${req.url.split('?')[0]}.` }));
}, { name: 'onecard-errors' });
