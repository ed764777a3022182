/** Ledger routes: read-only views for finance and auditors, a batch poster for admins. */
import type { FastifyInstance } from 'fastify';
import { withTx } from '../../postgres/db.ts';
import { badRequest, notFound } from '../../../engine/errors.ts';
import type { AccountView, EntryInput } from '../../../ledger/index.ts';
import { error_responses, type AppDeps } from '../context.ts';

const page_size_max = 500;
const page_size_default = 100;

const account_schema = {
  type: 'object',
  properties: {
    code: { type: 'string' }, owner_type: { type: 'string' }, owner_id: { type: 'string' }, purpose: { type: 'string' },
    currency: { type: 'string' }, normal_side: { type: 'string' }, no_negative: { type: 'boolean' },
    balance_fen: { type: 'string' }, available_fen: { type: 'string' }, pending_debits_fen: { type: 'string' },
    pending_credits_fen: { type: 'string' }, debits_posted_fen: { type: 'string' }, credits_posted_fen: { type: 'string' },
  },
} as const;

function accountJson(a: AccountView) {
  return {
    code: a.code, owner_type: a.ownerType, owner_id: a.ownerId, purpose: a.purpose, currency: a.currency,
    normal_side: a.normalSide, no_negative: a.noNegative, balance_fen: String(a.balanceFen), available_fen: String(a.availableFen),
    pending_debits_fen: String(a.pendingDebitsFen), pending_credits_fen: String(a.pendingCreditsFen),
    debits_posted_fen: String(a.debitsPostedFen), credits_posted_fen: String(a.creditsPostedFen),
  };
}

const fen_string = { type: 'string', pattern: '^[1-9][0-9]{0,15}$' } as const;

export async function ledgerRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const readers = ['finance', 'auditor', 'admin'] as const;

  app.get('/v1/ledger/accounts', {
    config: { roles: readers },
    schema: {
      tags: ['ledger'], summary: 'List accounts with balances, by code, cursor-paginated.', security: [{ bearer: [] }],
      querystring: { type: 'object', additionalProperties: false, properties: {
        cursor: { type: 'string', maxLength: 200 }, owner_type: { type: 'string', maxLength: 20 },
        limit: { type: 'integer', minimum: 1, maximum: page_size_max, default: page_size_default } } },
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: account_schema }, next_cursor: { type: ['string', 'null'] } } }, ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { cursor?: string; owner_type?: string; limit: number };
    const rows = await deps.ledger.listAccounts(deps.db, q.cursor ?? null, q.owner_type ?? null, q.limit);
    return { items: rows.map(accountJson), next_cursor: rows.length === q.limit ? rows[rows.length - 1].code : null };
  });

  app.get('/v1/ledger/accounts/:code', {
    config: { roles: readers },
    schema: {
      tags: ['ledger'], summary: 'One account and its balances.', security: [{ bearer: [] }],
      params: { type: 'object', properties: { code: { type: 'string', maxLength: 160 } }, required: ['code'] },
      response: { 200: account_schema, ...error_responses },
    },
  }, async (req) => {
    const a = await deps.ledger.account(deps.db, (req.params as { code: string }).code);
    if (!a) throw notFound('ACCOUNT_NOT_FOUND', 'No such account.');
    return accountJson(a);
  });

  app.get('/v1/ledger/entries', {
    config: { roles: readers },
    schema: {
      tags: ['ledger'], summary: 'Journal entries, newest first, optionally for one account; cursor-paginated.', security: [{ bearer: [] }],
      querystring: { type: 'object', additionalProperties: false, properties: {
        cursor: { type: 'string', pattern: '^[0-9]{1,19}$' }, account: { type: 'string', maxLength: 160 },
        limit: { type: 'integer', minimum: 1, maximum: page_size_max, default: page_size_default } } },
      response: { 200: { type: 'object', properties: {
        items: { type: 'array', items: { type: 'object', properties: {
          id: { type: 'string' }, idem_key: { type: 'string' }, kind: { type: 'string' }, business_date: { type: 'string' },
          description: { type: ['string', 'null'] }, metadata: { type: ['object', 'null'], additionalProperties: true },
          reverses_entry_id: { type: ['string', 'null'] }, posted_at: { type: 'string' },
          lines: { type: 'array', items: { type: 'object', properties: { line_no: { type: 'integer' }, debit: { type: 'string' }, credit: { type: 'string' }, amount_fen: { type: 'string' } } } } } } },
        next_cursor: { type: ['string', 'null'] } } }, ...error_responses },
    },
  }, async (req) => {
    const q = req.query as { cursor?: string; account?: string; limit: number };
    const rows = await deps.ledger.listEntries(deps.db, q.cursor ? BigInt(q.cursor) : null, q.account ?? null, q.limit);
    const items = rows.map((r) => ({
      ...r, id: String(r.id), reverses_entry_id: r.reverses_entry_id === null ? null : String(r.reverses_entry_id),
      posted_at: (r.posted_at as Date).toISOString(), lines: r.lines ?? [],
    }));
    return { items, next_cursor: rows.length === q.limit ? String(rows[rows.length - 1].id) : null };
  });

  app.get('/v1/ledger/verification', {
    config: { roles: readers },
    schema: {
      tags: ['ledger'], summary: 'Recompute every balance from postings and the trial balance.', security: [{ bearer: [] }],
      response: { 200: { type: 'object', additionalProperties: true }, ...error_responses },
    },
  }, async () => {
    const r = await deps.ledger.verify(deps.db);
    return JSON.parse(JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
  });

  app.post('/v1/ledger/batches', {
    config: { roles: ['admin'] },
    bodyLimit: deps.bodyBytesMax,
    schema: {
      tags: ['ledger'], summary: 'Post a batch of journal entries atomically; each is idempotent by its key.', security: [{ bearer: [] }],
      body: { type: 'object', additionalProperties: false, required: ['entries'], properties: {
        entries: { type: 'array', minItems: 1, maxItems: 10000, items: { type: 'object', additionalProperties: false,
          required: ['idem_key', 'kind', 'business_date', 'lines'], properties: {
            idem_key: { type: 'string', minLength: 1, maxLength: 200 }, kind: { type: 'string', pattern: '^[A-Z][A-Z0-9_]{0,39}$' },
            business_date: { type: 'string', format: 'date' }, description: { type: 'string', maxLength: 500 },
            metadata: { type: 'object', additionalProperties: true },
            lines: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'object', additionalProperties: false,
              required: ['debit', 'credit', 'amount_fen'], properties: {
                debit: { type: 'string', maxLength: 160 }, credit: { type: 'string', maxLength: 160 }, amount_fen: fen_string } } } } } } } },
      response: { 200: { type: 'object', properties: { results: { type: 'array', items: { type: 'object', properties: {
        idem_key: { type: 'string' }, entry_id: { type: 'string' }, replayed: { type: 'boolean' } } } } } }, ...error_responses },
    },
  }, async (req) => {
    const body = req.body as { entries: { idem_key: string; kind: string; business_date: string; description?: string; metadata?: Record<string, unknown>; lines: { debit: string; credit: string; amount_fen: string }[] }[] };
    const entries: EntryInput[] = body.entries.map((e) => ({
      idemKey: e.idem_key, kind: e.kind, businessDate: e.business_date, description: e.description, metadata: e.metadata,
      lines: e.lines.map((l) => ({ debit: l.debit, credit: l.credit, amountFen: BigInt(l.amount_fen) })),
    }));
    if (entries.length === 0) throw badRequest('EMPTY_BATCH', 'A batch needs at least one entry.');
    const results = await withTx(deps.db, (tx) => deps.ledger.postBatch(tx, entries));
    return { results: results.map((r) => ({ idem_key: r.idemKey, entry_id: String(r.entryId), replayed: r.replayed })) };
  });
}
