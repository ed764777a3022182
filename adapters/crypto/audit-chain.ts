/**
 * The audit log's hash chain (CARD-SECURITY.md): each record stores
 * SM3(previous hash || canonical record), so altering, removing or reordering any record breaks
 * every hash after it. The first record chains from 64 zero hex digits.
 *
 * The canonical form must never change once records exist (old hashes are recomputed from it
 * on verification): JSON with object keys sorted by UTF-16 code units (as in RFC 8785), no
 * whitespace, bigints as decimal strings, `undefined` object members left out as JSON does.
 */
import { DomainError } from '../../engine/errors.ts';
import { sm3Hex } from './sm.ts';

export const audit_chain_genesis_hash_hex = '0'.repeat(64);
/** Audit records are flat-ish; deeper nesting means a cycle or a mistake, not an audit fact. */
export const canonical_json_depth_max = 32;

const hash_hex_pattern = /^[0-9a-f]{64}$/;

export const audit_error = {
  /** 500: a value that has no canonical JSON form (function, symbol, NaN, cycle, too deep). */
  not_canonicalizable: 'AUDIT_RECORD_INVALID',
} as const;

function invalid(message: string): DomainError {
  return new DomainError(audit_error.not_canonicalizable, 500, message);
}

function canonical(value: unknown, depth: number): string | undefined {
  if (depth > canonical_json_depth_max) throw invalid(`audit record nested deeper than ${canonical_json_depth_max}`);
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw invalid('audit record holds a non-finite number');
      return JSON.stringify(value);
    case 'bigint':
      // As a string, not a bare number: readers in other languages would lose precision.
      return JSON.stringify(value.toString());
    case 'undefined':
      return undefined;
    case 'object': {
      // Dates and the like go through their own JSON form, as JSON.stringify would.
      const withToJson = value as { toJSON?: unknown };
      if (typeof withToJson.toJSON === 'function') {
        return canonical((withToJson.toJSON as () => unknown).call(value), depth + 1);
      }
      if (value instanceof Map || value instanceof Set) {
        // JSON.stringify would write `{}`: the contents would vanish from the hash.
        throw invalid('audit record holds a Map or Set; convert it to an object or array');
      }
      if (Array.isArray(value)) {
        return `[${value.map((item) => canonical(item, depth + 1) ?? 'null').join(',')}]`;
      }
      const record = value as Record<string, unknown>;
      const members: string[] = [];
      for (const key of Object.keys(record).sort()) {
        const member = canonical(record[key], depth + 1);
        if (member !== undefined) members.push(`${JSON.stringify(key)}:${member}`);
      }
      return `{${members.join(',')}}`;
    }
    default:
      // Functions and symbols would be silently dropped by JSON.stringify: an audit record
      // must not lose a field without anyone noticing.
      throw invalid(`audit record holds a ${typeof value}`);
  }
}

/** Canonical JSON text of an audit record. */
export function canonicalJson(value: unknown): string {
  const text = canonical(value, 0);
  if (text === undefined) throw invalid('audit record is undefined');
  return text;
}

/** SM3(prev hash bytes || UTF-8 canonical record) as 64 lowercase hex characters. */
export function chainHash(prevHashHex: string, record: unknown): string {
  if (!hash_hex_pattern.test(prevHashHex)) {
    throw invalid('previous audit hash must be 64 lowercase hex characters');
  }
  return sm3Hex(Buffer.from(prevHashHex, 'hex'), Buffer.from(canonicalJson(record), 'utf8'));
}

export interface ChainedRecord {
  record: unknown;
  hashHex: string;
}

/**
 * Recomputes a chain segment from `prevHashHex` (genesis by default). Returns the index of the
 * first record whose stored hash is wrong, or -1 if the whole segment holds.
 */
export function findChainBreak(
  entries: readonly ChainedRecord[],
  prevHashHex: string = audit_chain_genesis_hash_hex,
): number {
  let prev = prevHashHex;
  for (let i = 0; i < entries.length; i++) {
    const expected = chainHash(prev, entries[i].record);
    if (expected !== entries[i].hashHex) return i;
    prev = expected;
  }
  return -1;
}
