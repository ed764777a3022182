/** What the cards, cases, complaints and audit routes share: the caller, the purpose, log hygiene. */
import type { FastifyRequest } from 'fastify';
import { unauthorized } from '../../engine/errors.ts';
import { parsePurpose, type Purpose } from '../../engine/cards/index.ts';
import type { Actor } from './common.ts';

export function actorOf(req: FastifyRequest): Actor {
  if (req.principal === null) throw unauthorized();
  return { keyId: req.principal.keyId, role: req.principal.role };
}

/** The stated purpose: the X-Purpose header, else the `purpose` query parameter. */
export function purposeOf(req: FastifyRequest): Purpose | undefined {
  const h = req.headers['x-purpose'];
  const header = Array.isArray(h) ? h[0] : h;
  const query = (req.query as { purpose?: string } | undefined)?.purpose;
  return parsePurpose(header ?? query);
}

/** Runs of 12+ digits (card numbers, ID numbers, account numbers) become their first 6 and last 4. */
export function redactUrl(url: string): string {
  const path = url.split('?')[0];
  return path.replace(/[0-9]{12,}X?/gi, (m) => `${m.slice(0, 6)}…${m.slice(-4)}`);
}

/**
 * Route-level log serializers for routes whose URL names a card: Fastify's request log line
 * carries `req.url`, and a full card number must never reach the logs. The query string is
 * dropped too (it may hold an access code).
 */
export const redacting_log_serializers = {
  req(req: { method?: string; url?: string; ip?: string; headers?: Record<string, unknown> }) {
    return { method: req.method, url: redactUrl(req.url ?? ''), remoteAddress: req.ip };
  },
};

/** Cursor of id-ordered lists: the last id seen, as a decimal string. */
export function cursorOf(text: string | undefined): bigint {
  return text === undefined || text === '' ? 0n : BigInt(text);
}
