/**
 * Rows for `COPY ... FROM STDIN` in PostgreSQL's text format: columns separated by tabs, rows by
 * newlines, `\N` for NULL, and backslash escapes for the characters that would break that framing.
 */

export const copy_null = '\\N';

const needs_escape = /[\\\t\n\r]/;
const escapes: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/**
 * A text value as a COPY field. U+0000 cannot be stored in `text` at all: callers keep such
 * strings out (the record format check refuses them; malformed records are stored as bytea).
 */
export function copyText(value: string | null): string {
  if (value === null) return copy_null;
  return needs_escape.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => escapes[c]) : value;
}

/** A bytea value as a COPY field: hex input form, its backslash escaped for COPY. */
export function copyBytea(value: Uint8Array | null): string {
  if (value === null) return copy_null;
  return `\\\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
}

const plain_element = /^[A-Za-z0-9_.:-]+$/;

/**
 * A Postgres array literal (`{a,b,c}`) of values that need no quoting: digits, ids and codes made
 * of [A-Za-z0-9_.:-]. Sent as one text parameter and cast in SQL (`$1::text[]`), it spares the
 * driver escaping each of thousands of elements per batch (two regex passes each). Anything that
 * would need quoting is refused loudly: the callers pass format-checked fields only.
 */
export function plainArrayLiteral(values: readonly (string | number)[]): string {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'number' ? !Number.isSafeInteger(v) : !plain_element.test(v)) {
      throw new Error('plainArrayLiteral: an element needs quoting');
    }
  }
  return `{${values.join(',')}}`;
}
