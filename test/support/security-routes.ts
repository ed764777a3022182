/**
 * Placeholder values for path parameters, generated from the params schema's `pattern` (or
 * `enum`), so a request in the role matrix reaches the handler rather than stopping at params
 * validation. The patterns in this API are simple: literals, character classes and `{n,m}`
 * counts; anything else throws, so a new kind of pattern is noticed rather than guessed.
 */

/** The shortest string matching a simple anchored pattern, using each class's first character. */
export function sampleFor(pattern: string): string {
  if (!pattern.startsWith('^') || !pattern.endsWith('$')) throw new Error(`unanchored pattern ${pattern}`);
  const body = pattern.slice(1, -1);
  let out = '';
  let i = 0;
  while (i < body.length) {
    let unit: string;
    if (body[i] === '[') {
      const end = body.indexOf(']', i);
      if (end < 0) throw new Error(`unterminated class in ${pattern}`);
      unit = body[i + 1];
      if (unit === '^' || unit === '\\') throw new Error(`unsupported class in ${pattern}`);
      i = end + 1;
    } else if (/[A-Za-z0-9_:-]/.test(body[i])) {
      unit = body[i];
      i += 1;
    } else {
      throw new Error(`unsupported pattern syntax "${body[i]}" in ${pattern}`);
    }
    let count = 1;
    const q = /^\{(\d+)(?:,(\d*))?\}/.exec(body.slice(i));
    if (q) {
      count = Number(q[1]);
      i += q[0].length;
    } else if (body[i] === '+') {
      i += 1;
    } else if (body[i] === '*' || body[i] === '?') {
      count = 0;
      i += 1;
    }
    out += unit.repeat(count);
  }
  if (!new RegExp(pattern).test(out)) throw new Error(`sample ${out} does not match ${pattern}`);
  return out;
}

interface ParamSchema {
  type?: string;
  pattern?: string;
  enum?: readonly string[];
}

/** The URL with each `:name` replaced by a value valid for its schema. */
export function fillPath(url: string, params: unknown): string {
  const props = ((params as { properties?: Record<string, ParamSchema> } | undefined)?.properties) ?? {};
  return url.replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) => {
    const s = props[name];
    if (s?.enum !== undefined) return encodeURIComponent(s.enum[0]);
    if (s?.pattern !== undefined) return encodeURIComponent(sampleFor(s.pattern));
    return 'x';
  });
}
