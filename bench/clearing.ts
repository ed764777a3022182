/**
 * Clearing benchmark: seed N transactions (default 5,000,000) into one cycle with set-based SQL
 * straight into the ledger (loads, transit taps, QR self-pay payments over 100,000 cards, 200
 * merchants, 20 banks; seeding is timed separately and excluded), then clear the cycle and
 * generate every bank's package. Options: --transactions N --cards N.
 * JSON (last line): clearing_s, package_lines_per_s, rss_mb_growth, transactions.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createPool, withTx } from '../adapters/postgres/db.ts';
import { currentOpenCycle } from '../adapters/postgres/cycles.ts';
import { clearCycle } from '../adapters/clearing/run.ts';
import { Ledger } from '../ledger/index.ts';
import { benchDatabase, report, rssSampler } from './support.ts';

const { values } = parseArgs({ args: process.argv.slice(3), options: {
  transactions: { type: 'string', default: '5000000' }, cards: { type: 'string', default: '100000' },
} });
const transactions = Number(values.transactions);
const cards = Number(values.cards);
const banks_n = 20;
const merchants_n = 200;
const seed_chunk = 500_000;
const business_date = '2026-11-28';
const before_cutoff = new Date('2026-11-28T02:00:00Z');
const after_cutoff = new Date('2026-11-28T17:00:00Z');

const bdb = await benchDatabase();
const db = createPool(bdb.url, 4, 'bench-clearing');
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bench-clearing-'));
try {
  const tSeed = performance.now();
  await db.query(`INSERT INTO bank (code, name) SELECT lpad((102100000000 + g)::text, 12, '0'), 'Bank ' || g FROM generate_series(1, ${banks_n}) g`);
  await db.query(`INSERT INTO merchant (id, name, kind, is_operator, acquiring_bank, settlement_account)
    SELECT 'M' || g, 'Merchant ' || g, CASE WHEN g <= 20 THEN 'TRANSIT' ELSE 'RETAIL' END, g <= 20,
           lpad((102100000000 + 1 + g % ${banks_n})::text, 12, '0'), '6222000000001' FROM generate_series(1, ${merchants_n}) g`);
  await db.query(`INSERT INTO merchant_fee_schedule (merchant_id, effective_from, rate, min_fen, max_fen, created_by)
    SELECT 'M' || g, '2026-01-01', 0.006, 0, 500, 'bench' FROM generate_series(1, ${merchants_n}) g`);
  await db.query(`INSERT INTO card (card_no, issuing_bank, form, status, status_since)
    SELECT '62170' || lpad(g::text, 14, '0'), lpad((102100000000 + 1 + g % ${banks_n})::text, 12, '0'), 'PHYSICAL', 'ACTIVE', now()
    FROM generate_series(0, ${cards - 1}) g`);
  await new Ledger().accountIdsFor(db, ['centre:fees', 'centre:suspense', 'centre:settlement']);
  // Accounts straight into the chart (the Ledger class opens the same rows one batch at a time).
  await db.query(`INSERT INTO ledger_account (code, owner_type, owner_id, purpose, normal_side, no_negative)
    SELECT 'card:62170' || lpad(g::text, 14, '0') || ':purse', 'card', '62170' || lpad(g::text, 14, '0'), 'purse', 'CREDIT', true FROM generate_series(0, ${cards - 1}) g
    UNION ALL SELECT 'merchant:M' || g || ':payable', 'merchant', 'M' || g, 'payable', 'CREDIT', false FROM generate_series(1, ${merchants_n}) g
    UNION ALL SELECT 'bank:' || code || ':clearing', 'bank', code, 'clearing', 'DEBIT', false FROM bank`);
  const cycle = await withTx(db, (tx) => currentOpenCycle(tx, before_cutoff, 23 * 60));
  // Per 20 consecutive transactions of one card: 5 loads of 2,000 fen, 10 taps of ≤ 500, 5 QR
  // self-pay payments, so no purse ever goes negative.
  for (let from = 0; from < transactions; from += seed_chunk) {
    const to = Math.min(transactions, from + seed_chunk) - 1;
    await db.query(`
      WITH src AS (
        SELECT g, (g / 20) % ${cards} AS card, g % 20 AS slot, 1 + (g * 7919) % 500 AS amt FROM generate_series(${from}::bigint, ${to}::bigint) g
      ), spec AS (
        SELECT g, card, '62170' || lpad(card::text, 14, '0') AS card_no,
          CASE WHEN slot < 5 THEN 'PURSE_LOAD' WHEN slot < 15 THEN 'TRANSIT_TAP' ELSE 'QR_PAYMENT' END AS kind,
          CASE WHEN slot < 5 THEN 2000 ELSE amt END AS amount,
          lpad((102100000000 + 1 + card % ${banks_n})::text, 12, '0') AS bank,
          CASE WHEN slot < 15 THEN 'M' || (1 + card % 20) ELSE 'M' || (21 + card % ${merchants_n - 20}) END AS merchant
        FROM src
      ), acc AS (
        SELECT s.*, (SELECT id FROM ledger_account WHERE code = 'card:' || s.card_no || ':purse') AS purse_id,
          (SELECT id FROM ledger_account WHERE code = 'bank:' || s.bank || ':clearing') AS bank_id,
          (SELECT id FROM ledger_account WHERE code = 'merchant:' || s.merchant || ':payable') AS merchant_id
        FROM spec s
      ), e AS (
        INSERT INTO ledger_entry (idem_key, kind, business_date, metadata, posted_at)
        SELECT CASE kind WHEN 'PURSE_LOAD' THEN 'load:pld_' || g WHEN 'TRANSIT_TAP' THEN 'tap:' || card_no || ':' || g || ':6' ELSE 'pay:pay_' || g END,
          kind, '${business_date}',
          CASE kind WHEN 'PURSE_LOAD' THEN jsonb_build_object('load_id', 'pld_' || g) WHEN 'QR_PAYMENT' THEN jsonb_build_object('payment_id', 'pay_' || g, 'card_no', card_no, 'merchant_id', merchant) END,
          '${before_cutoff.toISOString()}'::timestamptz + (g % 50000) * interval '1 second'
        FROM acc ORDER BY g
        RETURNING id, idem_key
      )
      INSERT INTO ledger_posting (entry_id, line_no, debit_account_id, credit_account_id, amount_fen)
      SELECT e.id, 0,
        CASE a.kind WHEN 'PURSE_LOAD' THEN a.bank_id WHEN 'TRANSIT_TAP' THEN a.purse_id ELSE a.bank_id END,
        CASE a.kind WHEN 'PURSE_LOAD' THEN a.purse_id ELSE a.merchant_id END, a.amount
      FROM e JOIN acc a ON e.idem_key = CASE a.kind WHEN 'PURSE_LOAD' THEN 'load:pld_' || a.g WHEN 'TRANSIT_TAP' THEN 'tap:' || a.card_no || ':' || a.g || ':6' ELSE 'pay:pay_' || a.g END`);
    process.stderr.write(`seeded ${to + 1}/${transactions}\n`);
  }
  await db.query('ANALYZE');
  const seedS = (performance.now() - tSeed) / 1000;

  const rss = rssSampler();
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  let clearedAt = 0;
  const res = await clearCycle({
    db, ledger: new Ledger(), settings: { centre: { bankCode: '999100000001', accountId: '99910000000100001' }, packagesDir: path.join(dataDir, 'packages'), cutoff: '23:00' },
    progress: (m) => {
      if (m.startsWith('cleared ')) clearedAt = performance.now();
      process.stderr.write(`${m}\n`);
    },
  }, cycle.id, 'bench', after_cutoff);
  const t1 = performance.now();
  rss.stop();
  if (res.state !== 'PUBLISHED') throw new Error(`cycle ended ${res.state}`);
  const lines = Number(res.lines);
  const clearingS = (clearedAt - t0) / 1000;
  const packagesS = (t1 - clearedAt) / 1000;
  report('clearing', {
    transactions, lines, seed_s: Number(seedS.toFixed(1)), clearing_s: Number(clearingS.toFixed(1)), packages_s: Number(packagesS.toFixed(1)),
    package_lines_per_s: Math.round(lines / packagesS), packages: res.packages,
    rss_mb_growth: Math.max(0, rss.maxMb() - Math.round(rssBefore / 1048576)),
  });
} finally {
  await db.end();
  await rm(dataDir, { recursive: true, force: true });
  await bdb.drop();
}
