/**
 * Server-rendered pages: eta templates under ./views, with auto-escaping on (`<%= %>` escapes
 * & < > " '), so any text that came from a user, a bank file or an operator upload is shown as
 * text, never as markup. Raw output (`<%~ %>`) is used only to include another template.
 * Templates are compiled once and cached.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import { yuanOf } from './format.ts';
import { maskCardsIn } from './security.ts';

const views_dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'views');

const eta = new Eta({
  views: views_dir,
  cache: true,
  autoEscape: true,
  // A template error must fail loudly in tests rather than print half a page.
  debug: false,
});

/** What every page gets: the user (null on the login page), the CSRF token of its forms, helpers. */
export interface PageContext {
  title: string;
  user: { displayName: string; keyId: string } | null;
  csrf: string;
  /** The navigation entry to highlight. */
  nav: 'dashboard' | 'exceptions' | 'adjustments' | 'reports' | 'login' | 'error';
}

export const helpers = {
  yuan: yuanOf,
  /** Free text with card numbers masked (notes, memos, account codes, source keys). */
  mask: maskCardsIn,
  /** 2026-11-28T09:00:00.000Z → 2026-11-28 17:00 (Asia/Shanghai), the finance desk's clock. */
  local(at: Date | string | null | undefined): string {
    if (at === null || at === undefined) return '';
    const d = typeof at === 'string' ? new Date(at) : at;
    return new Date(d.getTime() + 8 * 3_600_000).toISOString().slice(0, 16).replace('T', ' ');
  },
  /** A query string from the non-empty values (for filter and paging links). */
  query(params: Record<string, string | null | undefined>): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
    const s = q.toString();
    return s === '' ? '' : `?${s}`;
  },
};

export function render(template: string, page: PageContext, data: Record<string, unknown>): string {
  return eta.render(`./${template}`, { ...data, page, h: helpers });
}
