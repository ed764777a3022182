/**
 * Ledger benchmark: ≥ 1,000,000 two-leg entries in batches of 1,000 across 100,000 card purses
 * and 50 hot merchant accounts, through the ledger's batch API (idempotency, triggers, no-negative
 * checks); and, in the same run, the same rows written by raw set-based SQL into plain tables
 * (no triggers, same indexes) as the baseline. Options: --entries N --batch N --concurrency N.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createPool, withTx, type Db } from '../adapters/postgres/db.ts';
import { Ledger, type EntryInput } from '../ledger/index.ts';
import { benchDatabase, percentile, progress, report, rssSampler } from './support.ts';

const { values } = parseArgs({ args: process.argv.slice(3), options: {
  entries: { type: 'string', default: '1000000' }, batch: { type: 'string', default: '1000' },
  concurrency: { type: 'string', default: '2' }, cards: { type: 'string', default: '100000' }, merchants: { type: 'string', default: '50' },
} });
const entries_total = Number(values.entries);
const batch_entries = Number(values.batch);
const concurrency = Number(values.concurrency);
const cards = Number(values.cards);
const merchants = Number(values.merchants);
const batches = Math.ceil(entries_total / batch_entries);
const business_date = '2026-11-28';

const cardCode = (i: number) => `card:62170${String(i).padStart(14, '0')}:purse`;
const merchantCode = (i: number) => `merchant:M${String(i).padStart(4, '0')}:payable`;

// Deterministic pseudo-random so both runs write the same rows.
function rowsFor(b: number): { card: number; merchant: number; amountFen: number }[] {
  const out = [];
  let x = (b + 1) * 2654435761;
  for (let i = 0; i < batch_entries; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out.push({ card: x % cards, merchant: (x >> 7) % merchants, amountFen: 1 + (x % 300) });
  }
  return out;
}

async function runWorkers(label: string, fn: (b: number) => Promise<void>): Promise<{ seconds: number; latencies: number[] }> {
  const bar = progress(label, batches);
  const latencies: number[] = [];
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let b = next++; b < batches; b = next++) {
      const s = process.hrtime.bigint();
      await fn(b);
      latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
      bar.tick();
    }
  }));
  bar.stop();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, latencies: latencies.sort((a, b) => a - b) };
}

const bdb = await benchDatabase();
const db: Db = createPool(bdb.url, concurrency + 2, 'onecard-bench');
const rss = rssSampler();
try {
  const ledger = new Ledger();
  // Setup (not measured): open and fund every purse so purchases never overdraw.
  const setup = progress('setup: funding purses', Math.ceil(cards / 1000));
  for (let c = 0; c < cards; c += 1000) {
    const loads: EntryInput[] = [];
    for (let i = c; i < Math.min(cards, c + 1000); i++) {
      loads.push({ idemKey: `load:${i}`, kind: 'PURSE_LOAD', businessDate: business_date, lines: [{ debit: 'bank:102100099996:clearing', credit: cardCode(i), amountFen: 10_000_000n }] });
    }
    await withTx(db, (tx) => ledger.postBatch(tx, loads));
    setup.tick();
  }
  setup.stop();
  await ledger.accountIdsFor(db, Array.from({ length: merchants }, (_, i) => merchantCode(i)));
  const ids = await ledger.accountIdsFor(db, [...Array.from({ length: cards }, (_, i) => cardCode(i)), ...Array.from({ length: merchants }, (_, i) => merchantCode(i))]);
  await db.query('CHECKPOINT');

  const engine = await runWorkers('ledger batch API', async (b) => {
    const rows = rowsFor(b);
    const entries: EntryInput[] = rows.map((r, i) => ({
      idemKey: `tap:${b}:${i}`, kind: 'PURSE_PURCHASE', businessDate: business_date,
      lines: [{ debit: cardCode(r.card), credit: merchantCode(r.merchant), amountFen: BigInt(r.amountFen) }],
    }));
    await withTx(db, (tx) => ledger.postBatch(tx, entries));
  });

  // Baseline: plain tables, same columns and indexes, no triggers; the same rows and an
  // aggregated balance update per batch, in account order.
  await db.query(`
    CREATE TABLE base_account (LIKE ledger_account INCLUDING DEFAULTS);
    INSERT INTO base_account SELECT * FROM ledger_account;
    ALTER TABLE base_account ADD PRIMARY KEY (id);
    CREATE TABLE base_entry (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, idem_key text NOT NULL UNIQUE, kind text NOT NULL,
      business_date date NOT NULL, description text, metadata jsonb, reverses_entry_id bigint, hold_id bigint, posted_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE base_posting (entry_id bigint NOT NULL, line_no integer NOT NULL, debit_account_id bigint NOT NULL,
      credit_account_id bigint NOT NULL, amount_fen bigint NOT NULL, PRIMARY KEY (entry_id, line_no));
    CREATE INDEX ON base_posting (debit_account_id, entry_id);
    CREATE INDEX ON base_posting (credit_account_id, entry_id);
    CHECKPOINT;`);
  const baseline = await runWorkers('baseline raw SQL', async (b) => {
    const rows = rowsFor(b);
    const keys = rows.map((_, i) => `tap:${b}:${i}`);
    const dr = rows.map((r) => String(ids.get(cardCode(r.card))));
    const cr = rows.map((r) => String(ids.get(merchantCode(r.merchant))));
    const amt = rows.map((r) => String(r.amountFen));
    await withTx(db, async (tx) => {
      await tx.query(`
        WITH e AS (INSERT INTO base_entry (idem_key, kind, business_date)
          SELECT k, 'PURSE_PURCHASE', $2::date FROM unnest($1::text[]) k RETURNING id, idem_key)
        INSERT INTO base_posting (entry_id, line_no, debit_account_id, credit_account_id, amount_fen)
        SELECT e.id, 0, l.dr, l.cr, l.amt FROM unnest($1::text[], $3::bigint[], $4::bigint[], $5::bigint[]) l(k, dr, cr, amt)
        JOIN e ON e.idem_key = l.k`, [keys, business_date, dr, cr, amt]);
      await tx.query(`
        WITH d AS (SELECT id, sum(dr)::bigint dr, sum(cr)::bigint cr FROM (
            SELECT unnest($1::bigint[]) id, unnest($3::bigint[]) dr, 0::bigint cr
            UNION ALL SELECT unnest($2::bigint[]), 0, unnest($3::bigint[])) x GROUP BY id),
        l AS (SELECT a.id FROM base_account a JOIN d USING (id) ORDER BY a.id FOR NO KEY UPDATE)
        UPDATE base_account a SET debits_posted_fen = a.debits_posted_fen + d.dr, credits_posted_fen = a.credits_posted_fen + d.cr
        FROM d WHERE a.id = d.id AND EXISTS (SELECT 1 FROM l)`, [dr, cr, amt]);
    });
  });

  const v = await ledger.verify(db);
  if (!v.ok) throw new Error('ledger verification failed after the benchmark');
  const entriesPerS = Math.round((batches * batch_entries) / engine.seconds);
  const baselinePerS = Math.round((batches * batch_entries) / baseline.seconds);
  report('ledger', {
    entries: batches * batch_entries, batch_entries, concurrency, card_accounts: cards, hot_merchant_accounts: merchants,
    entries_per_s: entriesPerS, baseline_entries_per_s: baselinePerS, ratio: Number((entriesPerS / baselinePerS).toFixed(3)),
    batch_latency_ms_p50: Number(percentile(engine.latencies, 50).toFixed(1)),
    batch_latency_ms_p99: Number(percentile(engine.latencies, 99).toFixed(1)),
    rss_mb_max: rss.maxMb(), verify_ok: v.ok,
  });
} finally {
  rss.stop();
  await db.end();
  await bdb.drop();
  void pg;
}
