/**
 * Driving the console through `app.inject` as a browser would: a cookie jar, the CSRF token read
 * from the page's hidden field, and the Origin header a browser sends with a form.
 */
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';

export const test_origin = 'http://localhost:80';
/** What `inject` uses as Host, hence the console's own origin in these tests. */
export const test_host = 'localhost:80';

export class Browser {
  readonly jar = new Map<string, string>();

  constructor(readonly app: FastifyInstance) {}

  cookieHeader(): string {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** Keeps the jar up to date from Set-Cookie (a cleared cookie leaves it). */
  absorb(res: LightMyRequestResponse): void {
    for (const c of res.cookies as { name: string; value: string; expires?: Date; maxAge?: number }[]) {
      const expired = (c.expires !== undefined && c.expires.getTime() <= Date.now()) || c.maxAge === 0 || c.value === '';
      if (expired) this.jar.delete(c.name);
      else this.jar.set(c.name, c.value);
    }
  }

  async get(url: string): Promise<LightMyRequestResponse> {
    const res = await this.app.inject({ method: 'GET', url, headers: { host: test_host, cookie: this.cookieHeader() } });
    this.absorb(res);
    return res;
  }

  /** A form POST; `origin: null` sends none (nor a Referer). */
  async post(url: string, form: Record<string, string>, opts: { origin?: string | null; referer?: string } = {}): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = {
      host: test_host, cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded',
    };
    const origin = opts.origin === undefined ? test_origin : opts.origin;
    if (origin !== null) headers.origin = origin;
    if (opts.referer !== undefined) headers.referer = opts.referer;
    const res = await this.app.inject({ method: 'POST', url, headers, payload: new URLSearchParams(form).toString() });
    this.absorb(res);
    return res;
  }

  /** Opens the login form and logs in with `key`; returns the login POST's answer. */
  async login(key: string): Promise<LightMyRequestResponse> {
    const form = await this.get('/console/login');
    return this.post('/console/login', { key, _csrf: csrfOf(form.body) });
  }
}

/** The `_csrf` hidden field of the first form of a page. */
export function csrfOf(html: string): string {
  const m = /name="_csrf" value="([^"]*)"/.exec(html);
  if (!m) throw new Error(`no CSRF field in page: ${html.slice(0, 300)}`);
  return m[1];
}

/** The stable error code an error page shows. */
export function pageCode(html: string): string | null {
  return /data-code="([A-Z_]+)"/.exec(html)?.[1] ?? null;
}
