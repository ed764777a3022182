/**
 * `npm run refdata -- <import|list> <kind> ...`: reference data from and to files, straight on
 * the database. An import is all or nothing for the whole file: one transaction, written in
 * chunks of `import_rows_max` rows (a chunk sees the rows of the chunks before it, so an e-card
 * may link to a physical card earlier in the file).
 */
import { parseArgs } from 'node:util';
import { isDomainError } from '../../engine/errors.ts';
import { withTx, type Db } from '../postgres/db.ts';
import { readRowsFile, toCsv } from './files.ts';
import {
  import_rows_max, importRows, list_limit_max, listBanks, listCards, listFeeSchedules, listMerchants, listTerminals,
  reference_kinds, type ReferenceKind,
} from './store.ts';

/** Refused rows printed before "… and N more". */
const errors_printed_max = 50;

export const refdata_usage = `usage:
  npm run refdata -- import <${reference_kinds.join('|')}> --file rows.csv|rows.json [--actor NAME]
  npm run refdata -- list <${reference_kinds.join('|')}> [--format csv|json] [--merchant ID (fee-schedules)]
Files use the API's field names: a CSV header row, or a JSON array of objects.`;

const columns: Record<ReferenceKind, readonly string[]> = {
  banks: ['code', 'name'],
  merchants: ['id', 'name', 'kind', 'is_operator', 'acquiring_bank', 'settlement_account', 'status'],
  'fee-schedules': ['merchant_id', 'effective_from', 'rate', 'min_fen', 'max_fen'],
  terminals: ['id', 'merchant_id', 'station_id', 'line_id', 'latitude', 'longitude', 'status'],
  cards: ['card_no', 'issuing_bank', 'form', 'linked_card_no', 'person_id', 'daily_limit_fen', 'status', 'status_since'],
};

export interface RefdataIo {
  db: Db;
  out: (s: string) => void;
  err: (s: string) => void;
  now: () => Date;
  /** The default actor recorded on imported rows. */
  actor: string;
}

function isKind(s: string | undefined): s is ReferenceKind {
  return (reference_kinds as readonly string[]).includes(s ?? '');
}

/** Runs one command; returns the process exit code (0 done, 1 refused or failed, 2 usage). */
export async function runRefdata(argv: readonly string[], io: RefdataIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv], allowPositionals: true,
      options: { file: { type: 'string' }, actor: { type: 'string' }, format: { type: 'string' }, merchant: { type: 'string' } },
    });
  } catch (e) {
    io.err(`${(e as Error).message}\n${refdata_usage}\n`);
    return 2;
  }
  const [command, kind] = parsed.positionals;
  const v = parsed.values;
  if (!isKind(kind) || (command !== 'import' && command !== 'list')) {
    io.err(`${refdata_usage}\n`);
    return 2;
  }
  try {
    if (command === 'import') {
      if (!v.file) {
        io.err(`import needs --file\n${refdata_usage}\n`);
        return 2;
      }
      return await importFile(io, kind, v.file, v.actor ?? io.actor);
    }
    const format = v.format ?? 'csv';
    if (format !== 'csv' && format !== 'json') {
      io.err(`--format is csv or json\n${refdata_usage}\n`);
      return 2;
    }
    if (kind === 'fee-schedules' && !v.merchant) {
      io.err(`list fee-schedules needs --merchant ID\n${refdata_usage}\n`);
      return 2;
    }
    await listAll(io, kind, format, v.merchant ?? null);
    return 0;
  } catch (e) {
    io.err(isDomainError(e) ? `${e.code}: ${e.message}\n` : `${(e as Error).message}\n`);
    return 1;
  }
}

async function importFile(io: RefdataIo, kind: ReferenceKind, file: string, actor: string): Promise<number> {
  const { rows, lines } = readRowsFile(file);
  if (rows.length === 0) {
    io.err(`${file} holds no rows.\n`);
    return 1;
  }
  const where = (i: number) => (lines.length > 0 ? `row ${i + 1} (line ${lines[i]})` : `item ${i}`);
  const outcome = await withTx(io.db, async (tx) => {
    let created = 0;
    let existing = 0;
    for (let from = 0; from < rows.length; from += import_rows_max) {
      const chunk = rows.slice(from, from + import_rows_max);
      const r = await importRows(tx, kind, chunk, { actor, at: io.now() });
      if (r.errors.length > 0) {
        // Throwing rolls back the chunks already written: the file is imported whole or not at all.
        throw new ImportRefused(r.errors.map((e) => ({ ...e, index: e.index + from })), from + chunk.length);
      }
      created += r.created;
      existing += r.existing;
    }
    return { created, existing };
  }).catch((e: unknown) => {
    if (e instanceof ImportRefused) return e;
    throw e;
  });
  if (outcome instanceof ImportRefused) {
    const more = outcome.checkedRows < rows.length ? ` (rows after ${outcome.checkedRows} were not checked)` : '';
    io.err(`refused: ${outcome.errors.length} rows of ${file} break the rules; nothing was imported${more}.\n`);
    for (const e of outcome.errors.slice(0, errors_printed_max)) {
      io.err(`  ${where(e.index)}: ${e.code}${e.field ? ` [${e.field}]` : ''} ${e.message}\n`);
    }
    if (outcome.errors.length > errors_printed_max) io.err(`  … and ${outcome.errors.length - errors_printed_max} more\n`);
    return 1;
  }
  io.out(`imported ${kind} from ${file}: ${rows.length} rows, ${outcome.created} created, ${outcome.existing} already registered\n`);
  return 0;
}

class ImportRefused {
  constructor(readonly errors: { index: number; code: string; field?: string; message: string }[], readonly checkedRows: number) {}
}

/** Every row of a kind, a page at a time, as CSV (with a header) or JSON lines. */
async function listAll(io: RefdataIo, kind: ReferenceKind, format: 'csv' | 'json', merchantId: string | null): Promise<void> {
  const cols = columns[kind];
  let cursor: string | null = null;
  let first = true;
  for (;;) {
    const { rows, next } = await listPage(io.db, kind, cursor, merchantId);
    if (format === 'csv') {
      const text = toCsv(rows, cols);
      io.out(first ? text : text.slice(text.indexOf('\n') + 1));
    } else {
      for (const r of rows) io.out(`${JSON.stringify(Object.fromEntries(cols.map((c) => [c, r[c] ?? null])))}\n`);
    }
    first = false;
    if (next === null) return;
    cursor = next;
  }
}

async function listPage(db: Db, kind: ReferenceKind, cursor: string | null, merchantId: string | null): Promise<{ rows: Record<string, unknown>[]; next: string | null }> {
  const n = list_limit_max;
  const next = (keys: string[]) => (keys.length === n ? keys[keys.length - 1] : null);
  switch (kind) {
    case 'banks': {
      const xs = await listBanks(db, cursor, n);
      return { rows: xs.map((b) => ({ code: b.code, name: b.name })), next: next(xs.map((b) => b.code)) };
    }
    case 'merchants': {
      const xs = await listMerchants(db, cursor, {}, n);
      return {
        rows: xs.map((m) => ({ id: m.id, name: m.name, kind: m.kind, is_operator: m.isOperator, acquiring_bank: m.acquiringBank, settlement_account: m.settlementAccount, status: m.status })),
        next: next(xs.map((m) => m.id)),
      };
    }
    case 'fee-schedules': {
      const xs = await listFeeSchedules(db, merchantId ?? '', cursor, n);
      return {
        rows: xs.map((f) => ({ merchant_id: f.merchantId, effective_from: f.effectiveFrom, rate: f.rate, min_fen: String(f.minFen), max_fen: String(f.maxFen) })),
        next: next(xs.map((f) => f.effectiveFrom)),
      };
    }
    case 'terminals': {
      const xs = await listTerminals(db, cursor, {}, n);
      return {
        rows: xs.map((t) => ({ id: t.id, merchant_id: t.merchantId, station_id: t.stationId, line_id: t.lineId, latitude: t.latitude, longitude: t.longitude, status: t.status })),
        next: next(xs.map((t) => t.id)),
      };
    }
    case 'cards': {
      const xs = await listCards(db, cursor, {}, n);
      return {
        rows: xs.map((c) => ({
          card_no: c.cardNo, issuing_bank: c.issuingBank, form: c.form, linked_card_no: c.linkedCardNo,
          person_id: c.personId === null ? null : String(c.personId), daily_limit_fen: String(c.dailyLimitFen), status: c.status,
          status_since: c.statusSince.toISOString(),
        })),
        next: next(xs.map((c) => c.cardNo)),
      };
    }
  }
}
