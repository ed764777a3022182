/**
 * Bank pull: a bank (its key's scope is its CNAPS code) lists its own settlement packages,
 * downloads their files with `Repr-Digest` (RFC 9530) after the stored digest is re-checked,
 * and uploads its returns. Another bank's package answers exactly as a missing one (404).
 */
import { createReadStream } from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomainError, forbidden, notFound } from '../../../engine/errors.ts';
import { reprDigestHeader } from '../../bankfiles/index.ts';
import { fileDigest, package_file_names } from '../../clearing/packages.ts';
import { plans } from '../../clearing/plans.ts';
import { receivePacs002, receiveReturnCsv, type ReturnResult } from '../../clearing/returns.ts';
import { error_responses, type AppDeps } from '../context.ts';

const packages_page_max = 100;
const content_types: Record<string, string> = {
  'manifest.json': 'application/json', 'detail.csv': 'text/csv; charset=utf-8',
  'pacs.009.xml': 'application/xml', 'camt.053.xml': 'application/xml',
};
const package_params = {
  type: 'object', required: ['packageId'],
  properties: { packageId: { type: 'string', pattern: '^CYC[0-9]{8}-[0-9]{12}$' } },
} as const;

function bankOf(req: FastifyRequest): { bankCode: string; keyId: string } {
  const p = req.principal;
  if (p === null || p.scopeId === null) throw forbidden('FORBIDDEN_SCOPE', 'This route needs a key that acts for one bank.');
  return { bankCode: p.scopeId, keyId: p.keyId };
}

const return_schema = {
  type: 'object',
  properties: {
    return_id: { type: 'string' }, replayed: { type: 'boolean' }, status: { type: ['string', 'null'] }, line_count: { type: 'string' },
    matched_count: { type: 'string' }, exception_count: { type: 'string' }, cycle_state: { type: 'string' },
  },
} as const;

const returnJson = (r: ReturnResult) => ({
  return_id: String(r.returnId), replayed: r.replayed, status: r.status, line_count: String(r.lineCount),
  matched_count: String(r.matchedCount), exception_count: String(r.exceptionCount), cycle_state: r.cycleState,
});

export async function settlementRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const raw = (_req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: Buffer) => void) => done(null, body);
  app.addContentTypeParser(['application/xml', 'text/xml', 'text/csv'], { parseAs: 'buffer', bodyLimit: deps.bodyBytesMax }, raw);

  app.get('/v1/settlement/packages', {
    config: { roles: ['bank'] },
    schema: {
      tags: ['settlement'], summary: 'My settlement packages, optionally of one business date; cursor-paginated.', security: [{ bearer: [] }],
      querystring: { type: 'object', additionalProperties: false, properties: {
        cursor: { type: 'string', pattern: '^CYC[0-9]{8}-[0-9]{12}$' }, date: { type: 'string', format: 'date' },
        limit: { type: 'integer', minimum: 1, maximum: packages_page_max, default: 50 } } },
      response: { 200: { type: 'object', properties: {
        items: { type: 'array', items: { type: 'object', properties: {
          id: { type: 'string' }, cycle_id: { type: 'string' }, business_date: { type: 'string' }, net_fen: { type: 'string' },
          line_count: { type: 'string' }, created_at: { type: 'string' },
          files: { type: 'array', items: { type: 'object', properties: {
            name: { type: 'string' }, bytes: { type: 'string' }, record_count: { type: 'string' }, sha256: { type: 'string' }, sm3: { type: 'string' } } } } } } },
        next_cursor: { type: ['string', 'null'] } } }, ...error_responses },
    },
  }, async (req) => {
    const { bankCode } = bankOf(req);
    const q = req.query as { cursor?: string; date?: string; limit: number };
    const rows = (await deps.db.query<{ id: string; cycle_id: string; business_date: string; net_fen: bigint; line_count: bigint; created_at: Date; files: { name: string; bytes: number; record_count: number; sha256: string; sm3: string }[] }>(
      plans.list_packages, [bankCode, q.date ?? null, q.cursor ?? null, q.limit])).rows;
    return {
      items: rows.map((r) => ({
        id: r.id, cycle_id: r.cycle_id, business_date: r.business_date, net_fen: String(r.net_fen), line_count: String(r.line_count),
        created_at: r.created_at.toISOString(), files: r.files.map((f) => ({ ...f, bytes: String(f.bytes), record_count: String(f.record_count) })),
      })),
      next_cursor: rows.length === q.limit ? rows[rows.length - 1].id : null,
    };
  });

  app.get('/v1/settlement/packages/:packageId/files/:name', {
    config: { roles: ['bank'] },
    schema: {
      tags: ['settlement'], summary: 'Download one file of my package, with its SHA-256 in Repr-Digest. Every download is logged.', security: [{ bearer: [] }],
      params: { type: 'object', required: ['packageId', 'name'], properties: {
        ...package_params.properties, name: { type: 'string', enum: [...package_file_names] } } },
      response: { 200: { type: 'string', description: 'The file\'s exact bytes.' }, ...error_responses },
    },
  }, async (req, reply) => {
    const { bankCode, keyId } = bankOf(req);
    const { packageId, name } = req.params as { packageId: string; name: string };
    const f = (await deps.db.query<{ path: string; bytes: bigint; sha256: string }>(plans.package_file, [bankCode, packageId, name])).rows[0];
    if (f === undefined) throw notFound('PACKAGE_NOT_FOUND', 'No such settlement package file.');
    // Re-read and re-hash before serving: altered bytes are never sent.
    let actual: { sha256Hex: string; bytes: number } | null = null;
    try { actual = await fileDigest(f.path); } catch { actual = null; }
    if (actual === null || actual.sha256Hex !== f.sha256 || BigInt(actual.bytes) !== f.bytes) {
      req.log.error({ package_id: packageId, file: name, bank_code: bankCode }, 'settlement package file does not match its stored digest');
      throw new DomainError('PACKAGE_CORRUPT', 500, 'The stored package file failed its integrity check; it is not served.', { package_id: packageId, file: name });
    }
    await deps.db.query(plans.insert_download, [bankCode, packageId, name, keyId, f.sha256, deps.now()]);
    reply.header('repr-digest', reprDigestHeader(Buffer.from(f.sha256, 'hex')));
    reply.header('content-type', content_types[name]);
    reply.header('content-length', String(f.bytes));
    reply.header('content-disposition', `attachment; filename="${name}"`);
    return reply.send(createReadStream(f.path));
  });

  app.post('/v1/settlement/packages/:packageId/returns/pacs002', {
    config: { roles: ['bank'] },
    bodyLimit: deps.bodyBytesMax,
    schema: {
      tags: ['settlement'], summary: 'Upload the pacs.002 status of my settlement instruction (ACSC settles). Idempotent by content.', security: [{ bearer: [] }],
      params: package_params,
      response: { 200: return_schema, ...error_responses },
    },
  }, async (req) => {
    const { bankCode, keyId } = bankOf(req);
    const { packageId } = req.params as { packageId: string };
    if (!Buffer.isBuffer(req.body)) throw new DomainError('CONTENT_TYPE_INVALID', 415, 'Send the pacs.002 as application/xml.');
    return returnJson(await receivePacs002(deps.db, deps.ledger, bankCode, packageId, req.body, keyId, deps.now()));
  });

  app.post('/v1/settlement/packages/:packageId/returns/csv', {
    config: { roles: ['bank'] },
    bodyLimit: deps.bodyBytesMax,
    schema: {
      tags: ['settlement'], summary: 'Upload return.csv: one line per detail line processed; lines are matched for reconciliation. Idempotent by content.', security: [{ bearer: [] }],
      params: package_params,
      response: { 200: return_schema, ...error_responses },
    },
  }, async (req) => {
    const { bankCode, keyId } = bankOf(req);
    const { packageId } = req.params as { packageId: string };
    if (!Buffer.isBuffer(req.body)) throw new DomainError('CONTENT_TYPE_INVALID', 415, 'Send return.csv as text/csv.');
    return returnJson(await receiveReturnCsv(deps.db, bankCode, packageId, req.body, keyId, deps.now()));
  });
}
