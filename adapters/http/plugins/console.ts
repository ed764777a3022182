/**
 * The finance staff web console at /console: server-rendered pages (eta, auto-escaped) over the
 * same domain functions as the API, so every rule and audit record holds whichever door is used.
 *
 * Authentication is a session cookie, not the Bearer header: the routes declare `roles: []` (the
 * API's bearer gate does not apply) and `consoleAccess`, which this plugin enforces:
 * - 'public': the login page and the stylesheet;
 * - 'session': a live console session of a finance key (adapters/console/sessions.ts). Without
 *   one, a page (GET) redirects to the login form and a form (POST) is refused 403.
 * Every POST must also come from this origin (Origin, else Referer) and carry the session's CSRF
 * token (`_csrf`), or it is refused 403 CSRF_REJECTED before its body is even validated; GETs
 * change nothing. Login failures count against per-IP and per-key-id windows with the API's
 * limits (AUTH_FAILURES_MAX per AUTH_FAILURE_WINDOW_MS).
 *
 * Cookies, form bodies and the HTML error pages are registered inside this plugin's scope only:
 * the JSON API keeps refusing form bodies and keeps its JSON errors.
 *
 * The routes are documented in the OpenAPI document under the tag `console` (HTML pages and
 * form posts, no bearer security), so the document still lists every route the engine serves.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticate, tokenKeyId } from '../../auth/api-keys.ts';
import { FailureWindows } from '../../auth/failure-limiter.ts';
import { withTx } from '../../postgres/db.ts';
import { DomainError, forbidden, isDomainError } from '../../../engine/errors.ts';
import { translatePgError } from '../../../ledger/index.ts';
import { exception_states, exception_types, resolutions } from '../../../engine/recon/index.ts';
import {
  assignException, commentOnException, getException, listExceptions, resolveException, type ExceptionDetail,
} from '../../recon/index.ts';
import {
  adjustment_memo_chars_max, adjustment_note_chars_max, adjustment_states, approveAdjustment, getAdjustment, listAdjustments, proposeAdjustment,
  rejectAdjustment, type AdjustmentLeg, type AdjustmentSide, type AdjustmentState,
} from '../../recon/adjustments.ts';
import {
  barChart, fenOfYuan, yuanOf, type BarInput,
} from '../../console/format.ts';
import { loadDashboard, recentCycles } from '../../console/dashboard.ts';
import { buildDailyReport, reportToCsv, reportToHtml, reportToJson } from '../../recon/reports.ts';
import { businessDateFor, checkDate, parseCutoff } from '../../../engine/clearing/calendar.ts';
import { labelsOf } from '../../console/names.ts';
import {
  checkSameOrigin, cookieOptions, maskCardsIn, report_content_security_policy, setSecurityHeaders, type CookieSecurity,
} from '../../console/security.ts';
import {
  isSecretShaped, liveSession, login_cookie, loginCsrfToken, newSecret, openSession, revokeSession, session_cookie, sessionCsrfToken,
  tokenMatches, type ConsoleUser,
} from '../../console/sessions.ts';
import { render, type PageContext } from '../../console/views.ts';
import { auth_failure_keys_max, auth_failures_per_key_factor } from './auth.ts';
import type { AppDeps } from '../context.ts';

type ConsoleAccess = 'public' | 'session';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Console routes only: who may open them (see adapters/http/plugins/console.ts). */
    consoleAccess?: ConsoleAccess;
  }
  interface FastifyRequest {
    consoleUser: ConsoleUser | null;
  }
}

export interface ConsoleOptions {
  /** 'auto': `Secure` cookies when the request came over TLS; 'always': also behind a TLS-terminating proxy. */
  cookieSecurity?: CookieSecurity;
}

/** Business dates the reports page offers as shortcuts. */
export const report_dates_listed = 14;
export const report_formats = ['json', 'csv', 'html'] as const;

/** Rows per page of the exceptions queue and the approvals list. */
export const console_page_rows = 50;
/** Lines the adjustment form offers (an adjusting entry names few accounts). */
export const adjustment_form_lines = 6;
/** The login form's cookie lives this long: enough to type a key, not a day. */
export const login_cookie_max_age_s = 3_600;
/** The largest console form (a comment of 2,000 characters is about 6 kB encoded; the adjustment form less). */
export const console_form_bytes_max = 64 * 1024;
/** A finance key is `ock_key_<16>_<43>` (83 characters); anything far longer is not one. */
const login_key_chars_max = 200;

const assets_dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'console', 'assets');
const stylesheet = readFileSync(path.join(assets_dir, 'console.css'), 'utf8');
const favicon = readFileSync(path.join(assets_dir, 'favicon.svg'), 'utf8');

const csrf_field = { type: 'string', maxLength: 100 } as const;
const exc_param = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^exc_[1-9][0-9]{0,17}$' } } } as const;
const adj_param = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^adj_[a-z0-9]{16,32}$' } } } as const;
const note_field = { type: 'string', maxLength: 2000 } as const;
const html_response = {
  200: { description: 'An HTML page.', content: { 'text/html': { schema: { type: 'string' } } } },
} as const;
const redirect_response = {
  303: { description: 'Done: see the page named by Location.', content: { 'text/html': { schema: { type: 'string' } } } },
} as const;

/** '' from an "any" choice of a filter form counts as no filter. */
function optional(values: readonly string[]) {
  return { type: 'string', enum: ['', ...values] } as const;
}

function adjustmentLineFields(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < adjustment_form_lines; i++) {
    out[`account_${i}`] = { type: 'string', maxLength: 160 };
    out[`side_${i}`] = { type: 'string', enum: ['', 'DEBIT', 'CREDIT'] };
    out[`amount_${i}`] = { type: 'string', maxLength: 20 };
  }
  return out;
}

/** The filled lines of the adjustment form; a partly filled line is an error, an empty one is skipped. */
export function legsOfForm(body: Record<string, string | undefined>): AdjustmentLeg[] {
  const legs: AdjustmentLeg[] = [];
  for (let i = 0; i < adjustment_form_lines; i++) {
    const account = (body[`account_${i}`] ?? '').trim();
    const side = body[`side_${i}`] ?? '';
    const amount = (body[`amount_${i}`] ?? '').trim();
    if (account === '' && amount === '') continue;
    if (account === '' || amount === '' || (side !== 'DEBIT' && side !== 'CREDIT')) {
      throw new DomainError('ADJUSTMENT_LINE_INCOMPLETE', 400, `Line ${i + 1} needs an account, a side and an amount.`, { line: String(i + 1) });
    }
    legs.push({ account, side: side as AdjustmentSide, amountFen: fenOfYuan(amount) });
  }
  if (legs.length < 2) throw new DomainError('ADJUSTMENT_LINES_TOO_FEW', 400, 'An adjusting entry needs at least two lines (a debit and a credit).');
  return legs;
}

const done_words = ['assigned', 'commented', 'resolved', 'proposed', 'approved', 'rejected'] as const;

/** The notice after a redirect (`?done=approved`): only the known words, so a link cannot put text on the page. */
function doneOf(req: FastifyRequest): string | null {
  const d = (req.query as { done?: unknown } | undefined)?.done;
  return typeof d === 'string' && (done_words as readonly string[]).includes(d) ? d : null;
}

export async function consoleRoutes(app: FastifyInstance, deps: AppDeps & { console?: ConsoleOptions }): Promise<void> {
  const security: CookieSecurity = deps.console?.cookieSecurity ?? 'auto';
  const { authFailuresMax, authFailureWindowMs } = deps.config;
  const byIp = new FailureWindows({ failuresMax: authFailuresMax, windowMs: authFailureWindowMs, keysMax: auth_failure_keys_max });
  const byKey = new FailureWindows({ failuresMax: authFailuresMax * auth_failures_per_key_factor, windowMs: authFailureWindowMs, keysMax: auth_failure_keys_max });

  await app.register(cookie, { hook: 'onRequest' });
  await app.register(formbody, { bodyLimit: console_form_bytes_max });
  app.decorateRequest('consoleUser', null);

  const userOf = (req: FastifyRequest): ConsoleUser => {
    if (req.consoleUser === null) throw forbidden('CONSOLE_SESSION_REQUIRED', 'Log in to the console first.');
    return req.consoleUser;
  };
  const actorOf = (req: FastifyRequest) => ({ keyId: userOf(req).keyId, role: 'finance' });
  const page = (req: FastifyRequest, title: string, nav: PageContext['nav']): PageContext => {
    const u = req.consoleUser;
    return { title, nav, user: u === null ? null : { displayName: u.displayName, keyId: u.keyId }, csrf: u === null ? '' : sessionCsrfToken(u.secret) };
  };
  const html = (reply: FastifyReply, body: string, status = 200) => reply.status(status).type('text/html; charset=utf-8').send(body);
  const seeOther = (reply: FastifyReply, location: string) => reply.redirect(location, 303);

  app.addHook('onSend', async (_req, reply, payload) => {
    if (!reply.hasHeader('content-security-policy')) setSecurityHeaders(reply);
    return payload;
  });

  // Session and CSRF, after the body is parsed but before it is validated: a forged request learns
  // nothing from validation messages and changes nothing.
  app.addHook('preValidation', async (req, reply) => {
    const access = req.routeOptions.config?.consoleAccess;
    if (access === undefined) throw new Error(`console route ${req.routeOptions.url} declares no consoleAccess`);
    const secret = req.cookies[session_cookie];
    req.consoleUser = secret === undefined ? null : await liveSession(deps.db, secret, deps.now());
    const isWrite = req.method === 'POST';
    if (access === 'session' && req.consoleUser === null) {
      if (secret !== undefined) reply.clearCookie(session_cookie, cookieOptions(req, security));
      if (!isWrite) return seeOther(reply, '/console/login');
      throw forbidden('CONSOLE_SESSION_REQUIRED', 'Your console session has ended (logged out, expired or its key revoked): log in again.');
    }
    if (!isWrite) return;
    checkSameOrigin(req, security);
    const presented = (req.body as { _csrf?: unknown } | null | undefined)?._csrf;
    if (access === 'session') {
      if (!tokenMatches(presented, sessionCsrfToken((req.consoleUser as ConsoleUser).secret))) {
        throw forbidden('CSRF_REJECTED', 'The form is missing its security token or it belongs to another session: reload the page and try again.', { reason: 'token' });
      }
      return;
    }
    // The login form: its token is bound to the login cookie set when the form was shown.
    const loginSecret = req.cookies[login_cookie];
    if (!isSecretShaped(loginSecret) || !tokenMatches(presented, loginCsrfToken(loginSecret))) {
      throw forbidden('CSRF_REJECTED', 'The login form is missing its security token or it expired: reload the page and try again.', { reason: 'token' });
    }
  });

  app.setErrorHandler((raw, req, reply) => {
    const err = translatePgError(raw);
    let status = 500;
    let code = 'INTERNAL';
    let message = 'The engine failed to handle this request; nothing was half-written.';
    let details: string[] = [];
    const fe = err as FastifyError;
    const sqlstate = (err as { code?: unknown } | null)?.code;
    if (isDomainError(err)) {
      ({ status, code, message } = err);
      // Details may name accounts (card:<number>:purse): masked like every other text on a page.
      if (err.details !== undefined) details = Object.entries(err.details).map(([k, v]) => maskCardsIn(`${k}: ${String(v)}`));
      message = maskCardsIn(message);
    } else if (fe.validation) {
      status = 400; code = 'VALIDATION_FAILED'; message = 'The form is invalid.';
      details = fe.validation.map((v) => `${v.instancePath || 'form'} ${v.message ?? ''}`.trim());
    } else if (typeof sqlstate === 'string' && /^22[0-9A-Z]{3}$/.test(sqlstate)) {
      status = 400; code = 'INPUT_NOT_STORABLE'; message = 'A value in the form is out of range or not representable.';
    } else if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
      status = fe.statusCode; code = fe.code ?? 'BAD_REQUEST'; message = fe.message;
    }
    if (status >= 500) req.log.error({ err: { message: (err as Error)?.message, stack: (err as Error)?.stack } }, 'console error');
    if (status === 429 && isDomainError(err) && err.details?.retry_after_s !== undefined) reply.header('retry-after', String(err.details.retry_after_s));
    const back = req.method === 'GET' ? '/console/dashboard' : (req.url.split('?')[0].replace(/\/[a-z-]+$/, '') || '/console/dashboard');
    const heading = status === 403 ? 'Refused' : status === 404 ? 'Not found' : status === 409 ? 'Conflict' : status >= 500 ? 'Error' : 'Not accepted';
    return html(reply, render('error', page(req, heading, 'error'), { status, code, message, details, heading, back: back.startsWith('/console') ? back : '/console/dashboard' }), status);
  });

  // ---------------------------------------------------------------- public: stylesheet, login

  app.get('/console/assets/console.css', {
    config: { roles: [], consoleAccess: 'public' },
    schema: { tags: ['console'], summary: 'The console\'s stylesheet.', response: { 200: { description: 'CSS', content: { 'text/css': { schema: { type: 'string' } } } } } },
  }, async (_req, reply) => reply.type('text/css; charset=utf-8').send(stylesheet));

  app.get('/console/assets/favicon.svg', {
    config: { roles: [], consoleAccess: 'public' },
    schema: { tags: ['console'], summary: 'The console\'s icon.', response: { 200: { description: 'SVG', content: { 'image/svg+xml': { schema: { type: 'string' } } } } } },
  }, async (_req, reply) => reply.type('image/svg+xml').send(favicon));

  app.get('/console', {
    config: { roles: [], consoleAccess: 'public' },
    schema: { tags: ['console'], summary: 'The console: to the dashboard, or to the login form without a session.', response: redirect_response },
  }, async (req, reply) => seeOther(reply, req.consoleUser === null ? '/console/login' : '/console/dashboard'));

  const showLogin = (req: FastifyRequest, reply: FastifyReply, error: { code: string; message: string } | null, status = 200) => {
    let loginSecret = req.cookies[login_cookie];
    if (!isSecretShaped(loginSecret)) {
      loginSecret = newSecret();
      reply.setCookie(login_cookie, loginSecret, cookieOptions(req, security, login_cookie_max_age_s));
    }
    const p: PageContext = { title: 'Log in', nav: 'login', user: null, csrf: loginCsrfToken(loginSecret) };
    return html(reply, render('login', p, { error }), status);
  };

  app.get('/console/login', {
    config: { roles: [], consoleAccess: 'public' },
    schema: { tags: ['console'], summary: 'The login form (a finance API key).', response: { ...html_response, ...redirect_response } },
  }, async (req, reply) => (req.consoleUser !== null ? seeOther(reply, '/console/dashboard') : showLogin(req, reply, null)));

  app.post('/console/login', {
    config: { roles: [], consoleAccess: 'public' },
    schema: {
      tags: ['console'], summary: 'Log in with a finance API key: opens a session (HttpOnly, SameSite=Strict cookie). Failures are rate-limited per IP and per key id.',
      consumes: ['application/x-www-form-urlencoded'],
      body: { type: 'object', additionalProperties: false, required: ['key'], properties: { key: { type: 'string', maxLength: login_key_chars_max }, _csrf: csrf_field } },
      response: { ...html_response, ...redirect_response },
    },
  }, async (req, reply) => {
    const { key } = req.body as { key: string };
    const nowMs = deps.now().getTime();
    const ipKey = `ip:${req.ip}`;
    const keyId = tokenKeyId(key.trim());
    const keyKey = keyId === null ? null : `key:${keyId}`;
    const waitMs = Math.max(byIp.blockedForMs(ipKey, nowMs), keyKey === null ? 0 : byKey.blockedForMs(keyKey, nowMs));
    if (waitMs > 0) {
      reply.header('retry-after', String(Math.ceil(waitMs / 1000)));
      return showLogin(req, reply, { code: 'AUTH_RATE_LIMITED', message: 'Too many failed logins from this computer or for this key; wait a minute and try again.' }, 429);
    }
    const principal = await authenticate(deps.db, key.trim());
    if (principal === null) {
      byIp.recordFailure(ipKey, nowMs);
      if (keyKey !== null) byKey.recordFailure(keyKey, nowMs);
      req.log.info({ key_id: keyId }, 'console login failed');
      return showLogin(req, reply, { code: 'LOGIN_FAILED', message: 'That key is unknown or revoked.' }, 401);
    }
    if (principal.role !== 'finance') {
      return showLogin(req, reply, { code: 'LOGIN_ROLE_NOT_ALLOWED', message: 'The console is for finance staff: log in with a finance key.' }, 403);
    }
    const now = deps.now();
    const previous = req.cookies[session_cookie];
    const opened = await withTx(deps.db, async (tx) => {
      // A new login in the same browser ends the session it had (no fixation, one session per browser).
      if (previous !== undefined) await revokeSession(tx, previous, now, 'RELOGIN');
      return openSession(tx, principal.keyId, now, { ip: req.ip });
    });
    reply.clearCookie(login_cookie, cookieOptions(req, security));
    reply.setCookie(session_cookie, opened.secret, cookieOptions(req, security));
    return seeOther(reply, '/console/dashboard');
  });

  app.post('/console/logout', {
    config: { roles: [], consoleAccess: 'session' },
    schema: {
      tags: ['console'], summary: 'Log out: the session is revoked at once.', consumes: ['application/x-www-form-urlencoded'],
      body: { type: 'object', additionalProperties: false, properties: { _csrf: csrf_field } }, response: redirect_response,
    },
  }, async (req, reply) => {
    const secret = userOf(req).secret;
    await withTx(deps.db, (tx) => revokeSession(tx, secret, deps.now(), 'LOGOUT'));
    reply.clearCookie(session_cookie, cookieOptions(req, security));
    return seeOther(reply, '/console/login');
  });

  // ---------------------------------------------------------------- dashboard

  app.get('/console/dashboard', {
    config: { roles: [], consoleAccess: 'session' },
    schema: { tags: ['console'], summary: 'Today\'s cycle, volumes and amounts of the last 30 days, net positions per bank of the latest cleared cycle.', response: { ...html_response, ...redirect_response } },
  }, async (req, reply) => {
    const d = await loadDashboard(deps.db, deps.now(), deps.config.clearingCutoff);
    const tx: BarInput[] = d.days.map((x) => ({ label: x.businessDate, value: x.transactions }));
    const amt: BarInput[] = d.days.map((x) => ({ label: x.businessDate, value: x.receiveFen }));
    return html(reply, render('dashboard', page(req, 'Dashboard', 'dashboard'), {
      d, chartTx: barChart(tx, (v) => v.toString()), chartAmt: barChart(amt, (v) => yuanOf(v)),
    }));
  });

  // ---------------------------------------------------------------- exceptions

  app.get('/console/exceptions', {
    config: { roles: [], consoleAccess: 'session' },
    schema: {
      tags: ['console'], summary: 'The exceptions queue, filtered by state, type, business date and bank; oldest first, cursor-paginated.',
      querystring: { type: 'object', additionalProperties: false, properties: {
        state: optional(exception_states), type: optional(exception_types), business_date: { type: 'string', pattern: '^$|^[0-9]{4}-[0-9]{2}-[0-9]{2}$' },
        bank: { type: 'string', pattern: '^$|^[0-9]{12}$' }, cursor: { type: 'string', pattern: '^[0-9]{1,19}$' } } },
      response: { ...html_response, ...redirect_response },
    },
  }, async (req, reply) => {
    const q = req.query as { state?: string; type?: string; business_date?: string; bank?: string; cursor?: string };
    const filter = { state: q.state || undefined, type: q.type || undefined, business_date: q.business_date || undefined, bank: q.bank || undefined };
    const r = await listExceptions(deps.db, {
      state: filter.state, type: filter.type, businessDate: filter.business_date, bankCode: filter.bank, cursor: q.cursor ?? null, limit: console_page_rows,
    }, deps.now());
    const names = await labelsOf(deps.db, r.items.map((x) => x.assignee));
    return html(reply, render('exceptions', page(req, 'Exceptions', 'exceptions'), {
      items: r.items, nextCursor: r.nextCursor, filter, names, states: exception_states, types: exception_types, me: userOf(req).keyId,
    }));
  });

  const showException = async (req: FastifyRequest, reply: FastifyReply, x: ExceptionDetail) => {
    const done = doneOf(req);
    const pending = x.state === 'RESOLVED' ? { items: [] } : await listAdjustments(deps.db, { exceptionId: BigInt(x.id.slice(4)), state: 'PROPOSED', limit: 1 });
    const names = await labelsOf(deps.db, [x.assignee, x.resolved_by, ...x.events.map((e) => e.actor)]);
    return html(reply, render('exception', page(req, x.id, 'exceptions'), {
      x, names, me: userOf(req).keyId, pending: pending.items[0] ?? null, resolutions: resolutions.filter((r) => r !== 'ADJUSTMENT'),
      formLines: adjustment_form_lines, idem: crypto.randomBytes(12).toString('hex'), memoMax: adjustment_memo_chars_max, done,
    }));
  };

  app.get('/console/exceptions/:id', {
    config: { roles: [], consoleAccess: 'session' },
    schema: { tags: ['console'], summary: 'One exception: its figures, its source lines side by side, its history, and the actions.', params: exc_param, response: { ...html_response, ...redirect_response } },
  }, async (req, reply) => showException(req, reply, await getException(deps.db, (req.params as { id: string }).id, deps.now())));

  app.post('/console/exceptions/:id/assign', {
    config: { roles: [], consoleAccess: 'session' },
    schema: {
      tags: ['console'], summary: 'Assign the exception to the logged-in user.', params: exc_param, consumes: ['application/x-www-form-urlencoded'],
      body: { type: 'object', additionalProperties: false, properties: { _csrf: csrf_field } }, response: redirect_response,
    },
  }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    await assignException(deps, id, userOf(req).keyId, actorOf(req));
    return seeOther(reply, `/console/exceptions/${id}?done=assigned`);
  });

  app.post('/console/exceptions/:id/comment', {
    config: { roles: [], consoleAccess: 'session' },
    schema: {
      tags: ['console'], summary: 'Comment on the exception.', params: exc_param, consumes: ['application/x-www-form-urlencoded'],
      body: { type: 'object', additionalProperties: false, required: ['note'], properties: { _csrf: csrf_field, note: note_field } }, response: redirect_response,
    },
  }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    await commentOnException(deps, id, (req.body as { note: string }).note, actorOf(req));
    return seeOther(reply, `/console/exceptions/${id}?done=commented`);
  });

  app.post('/console/exceptions/:id/resolve', {
    config: { roles: [], consoleAccess: 'session' },
    schema: {
      tags: ['console'], summary: 'Resolve the exception: written off, re-presented in a later cycle, or explained (an adjustment resolves it on approval).',
      params: exc_param, consumes: ['application/x-www-form-urlencoded'],
      body: { type: 'object', additionalProperties: false, required: ['resolution', 'note'], properties: {
        _csrf: csrf_field, resolution: { type: 'string', enum: resolutions.filter((r) => r !== 'ADJUSTMENT') }, note: note_field } },
      response: redirect_response,
    },
  }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const b = req.body as { resolution: 'WRITE_OFF' | 'RE_PRESENTED' | 'EXPLAINED'; note: string };
    await resolveException(deps, id, { resolution: b.resolution, note: b.note }, actorOf(req));
    return seeOther(reply, `/console/exceptions/${id}?done=resolved`);
  });

  app.post('/console/exceptions/:id/adjustments', {
    config: { roles: [], consoleAccess: 'session' },
    schema: {
      tags: ['console'], summary: `Propose a balanced adjusting entry for the exception (up to ${adjustment_form_lines} lines, amounts in yuan); another finance user approves it.`,
      params: exc_param, consumes: ['application/x-www-form-urlencoded'],
      body: { type: 'object', additionalProperties: false, required: ['memo', 'idem'], properties: {
        _csrf: csrf_field, memo: { type: 'string', maxLength: adjustment_memo_chars_max }, idem: { type: 'string', pattern: '^[a-f0-9]{24}$' },
        ...adjustmentLineFields() } },
      response: redirect_response,
    },
  }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const b = req.body as Record<string, string>;
    const r = await proposeAdjustment(deps, { exceptionId: id, lines: legsOfForm(b), memo: b.memo, idempotencyKey: `console:${b.idem}` }, actorOf(req));
    return seeOther(reply, `/console/adjustments/${r.adjustment.id}?done=proposed`);
  });

  // ---------------------------------------------------------------- adjustments

  app.get('/console/adjustments', {
    config: { roles: [], consoleAccess: 'session' },
    schema: {
      tags: ['console'], summary: 'Adjustments awaiting approval (or by state), oldest first, cursor-paginated.',
      querystring: { type: 'object', additionalProperties: false, properties: {
        state: optional(adjustment_states), cursor: { type: 'string', maxLength: 200 } } },
      response: { ...html_response, ...redirect_response },
    },
  }, async (req, reply) => {
    const q = req.query as { state?: string; cursor?: string };
    const state = (q.state === undefined ? 'PROPOSED' : q.state || undefined) as AdjustmentState | undefined;
    const r = await listAdjustments(deps.db, { state, cursor: q.cursor || undefined, limit: console_page_rows });
    const names = await labelsOf(deps.db, r.items.flatMap((a) => [a.proposedBy, a.decidedBy]));
    return html(reply, render('adjustments', page(req, 'Adjustments', 'adjustments'), {
      items: r.items, nextCursor: r.nextCursor, state: state ?? '', states: adjustment_states, names, me: userOf(req).keyId,
    }));
  });

  app.get('/console/adjustments/:id', {
    config: { roles: [], consoleAccess: 'session' },
    schema: { tags: ['console'], summary: 'One adjustment: its lines, its exception, approve or reject (not by its proposer).', params: adj_param, response: { ...html_response, ...redirect_response } },
  }, async (req, reply) => {
    const a = await getAdjustment(deps.db, (req.params as { id: string }).id);
    const names = await labelsOf(deps.db, [a.proposedBy, a.decidedBy]);
    const me = userOf(req).keyId;
    return html(reply, render('adjustment', page(req, a.id, 'adjustments'), {
      a, names, me, canDecide: a.state === 'PROPOSED' && a.proposedBy !== me, noteMax: adjustment_note_chars_max,
      done: doneOf(req),
    }));
  });

  const decision = { type: 'object', additionalProperties: false, properties: { _csrf: csrf_field, note: { type: 'string', maxLength: adjustment_note_chars_max } } } as const;

  app.post('/console/adjustments/:id/approve', {
    config: { roles: [], consoleAccess: 'session' },
    schema: {
      tags: ['console'], summary: 'Approve: the entry posts and the exception is resolved. Refused to the proposer.', params: adj_param,
      consumes: ['application/x-www-form-urlencoded'], body: decision, response: redirect_response,
    },
  }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const note = ((req.body as { note?: string }).note ?? '').trim();
    await approveAdjustment(deps, id, actorOf(req), note === '' ? undefined : note);
    return seeOther(reply, `/console/adjustments/${id}?done=approved`);
  });

  app.post('/console/adjustments/:id/reject', {
    config: { roles: [], consoleAccess: 'session' },
    schema: {
      tags: ['console'], summary: 'Reject with a reason: nothing posts, the exception stays open. Refused to the proposer.', params: adj_param,
      consumes: ['application/x-www-form-urlencoded'], body: decision, response: redirect_response,
    },
  }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    await rejectAdjustment(deps, id, actorOf(req), (req.body as { note?: string }).note ?? '');
    return seeOther(reply, `/console/adjustments/${id}?done=rejected`);
  });

  // ---------------------------------------------------------------- reports

  app.get('/console/reports', {
    config: { roles: [], consoleAccess: 'session' },
    schema: {
      tags: ['console'], summary: 'Report downloads: the daily report of a chosen business date as HTML, CSV or JSON.',
      querystring: { type: 'object', additionalProperties: false, properties: { date: { type: 'string', pattern: '^$|^[0-9]{4}-[0-9]{2}-[0-9]{2}$' } } },
      response: { ...html_response, ...redirect_response },
    },
  }, async (req, reply) => {
    const recent = await recentCycles(deps.db, report_dates_listed);
    const asked = (req.query as { date?: string }).date;
    // Default: the newest cycle that is no longer open (its figures are final), else today.
    const date = asked ? checkDate(asked)
      : (recent.find((c) => c.state !== 'OPEN')?.business_date ?? businessDateFor(deps.now(), parseCutoff(deps.config.clearingCutoff)));
    return html(reply, render('reports', page(req, 'Reports', 'reports'), { date, recent }));
  });

  app.get('/console/reports/daily/:date/:format', {
    config: { roles: [], consoleAccess: 'session' },
    schema: {
      tags: ['console'], summary: 'The daily report of a business date (the same report as GET /v1/reports/daily/:date), downloaded from the console.',
      params: { type: 'object', required: ['date', 'format'], properties: {
        date: { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' }, format: { type: 'string', enum: [...report_formats] } } },
      response: {
        200: { description: 'The report.', content: { 'text/html': { schema: { type: 'string' } }, 'text/csv': { schema: { type: 'string' } }, 'application/json': { schema: { type: 'object', additionalProperties: true } } } },
        ...redirect_response,
      },
    },
  }, async (req, reply) => {
    const { date, format } = req.params as { date: string; format: (typeof report_formats)[number] };
    const report = await buildDailyReport(deps.db, checkDate(date), { now: deps.now() });
    const filename = `daily-report-${report.businessDate}.${format}`;
    if (format === 'html') {
      setSecurityHeaders(reply, report_content_security_policy);
      reply.header('content-disposition', `inline; filename="${filename}"`);
      return reply.type('text/html; charset=utf-8').send(reportToHtml(report));
    }
    reply.header('content-disposition', `attachment; filename="${filename}"`);
    if (format === 'csv') return reply.type('text/csv; charset=utf-8').send(reportToCsv(report));
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(reportToJson(report)));
  });
}
