/**
 * The console's browser-facing defences, kept apart from the routes so each rule is in one place:
 * same-origin checks for every POST, the security headers of every console response, cookie
 * attributes, and masking of card numbers inside free text before it reaches a page.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { forbidden } from '../../engine/errors.ts';
import { maskCardNo } from '../crypto/index.ts';

/**
 * No inline script or style anywhere (the stylesheet is a file; charts are SVG drawn on the
 * server with presentation attributes), forms post only to this origin, no framing.
 */
export const content_security_policy =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The report's printable page carries its own <style>; still no script, no fetch, no framing. */
export const report_content_security_policy =
  "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export function setSecurityHeaders(reply: FastifyReply, csp: string = content_security_policy): void {
  reply.header('content-security-policy', csp);
  reply.header('x-frame-options', 'DENY');
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', 'same-origin');
  reply.header('cache-control', 'no-store');
  reply.header('cross-origin-opener-policy', 'same-origin');
  reply.header('cross-origin-resource-policy', 'same-origin');
}

/** When cookies carry `Secure`: requests that arrived over TLS always; plain HTTP only if configured. */
export type CookieSecurity = 'auto' | 'always';

export function cookieOptions(req: FastifyRequest, security: CookieSecurity, maxAgeS?: number) {
  return {
    httpOnly: true,
    sameSite: 'strict' as const,
    path: '/console',
    secure: security === 'always' || req.protocol === 'https',
    ...(maxAgeS === undefined ? {} : { maxAge: maxAgeS }),
  };
}

/**
 * A state-changing request must come from a page of this very origin: the Origin header (every
 * current browser sends it on a form POST) or, failing that, the Referer. Neither present is
 * refused too: a form of this console always yields one of them.
 */
export function checkSameOrigin(req: FastifyRequest, security: CookieSecurity): void {
  // Through URL, so a default port is dropped the way browsers drop it from Origin. Behind a
  // TLS-terminating proxy (cookies configured 'always' Secure) the browser's origin is https
  // while this request arrived as http: the https origin of the same host is this console too.
  const schemes = security === 'always' ? [req.protocol, 'https'] : [req.protocol];
  const expected = new Set(schemes.map((s) => originOf(`${s}://${req.host}`)).filter((o): o is string => o !== null));
  if (expected.size === 0) throw forbidden('CSRF_REJECTED', 'The request names no usable host.', { reason: 'host' });
  const origin = req.headers.origin;
  if (typeof origin === 'string' && origin !== 'null') {
    if (expected.has(originOf(origin) ?? '')) return;
    throw forbidden('CSRF_REJECTED', 'The form was not sent from this console (Origin does not match).', { reason: 'origin' });
  }
  const referer = req.headers.referer;
  if (typeof referer === 'string') {
    if (expected.has(originOf(referer) ?? '')) return;
    throw forbidden('CSRF_REJECTED', 'The form was not sent from this console (Referer does not match).', { reason: 'referer' });
  }
  throw forbidden('CSRF_REJECTED', 'The form carries neither Origin nor Referer; it cannot be shown to come from this console.', { reason: 'no_origin' });
}

function originOf(url: string): string | null {
  try { return new URL(url).origin; } catch { return null; }
}

/** 16 to 19 digits in a row is a card number wherever it appears (bank codes and terminals are 12). */
const card_run = /(?<![0-9])[0-9]{16,19}(?![0-9])/g;

/** Free text (notes, keys, account codes, bank references) with any card number masked 6+4. */
export function maskCardsIn(text: string | null | undefined): string {
  if (text === null || text === undefined) return '';
  return text.replace(card_run, (m) => maskCardNo(m));
}
