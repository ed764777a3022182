/**
 * Array literals for statements sent by the simple query protocol, which has no parameters: a
 * caller that sends a whole transaction as one request (one round trip) inlines its values.
 * Every text element is escaped by pg's escapeLiteral; numbers are re-rendered from BigInt, so
 * nothing but digits and a sign reaches the SQL.
 */
import { escapeLiteral } from 'pg';

export type SqlArrayType = 'text' | 'bigint' | 'int' | 'date' | 'jsonb';

/** `ARRAY[...]::type[]`, one element per value (null as NULL). */
export function sqlArray(values: readonly (string | number | bigint | null)[], type: SqlArrayType): string {
  const items = values.map((v) => {
    if (v === null) return 'NULL';
    if (type === 'bigint' || type === 'int') return BigInt(v).toString();
    return escapeLiteral(String(v));
  });
  return `ARRAY[${items.join(', ')}]::${type}[]`;
}
