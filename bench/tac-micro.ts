/**
 * Micro-measurement of TAC verification on one core: how many taps a second `verifyTacs` checks
 * in batches, with the card key cache warm (the steady state: the same cards tap every day) and
 * cold (every tap a card never seen, so each one also pays a key diversification).
 *
 *   npx tsx bench/tac-micro.ts [--cards 50000] [--batch 5000] [--seconds 3]
 *
 * The last line of output is JSON, for scripts.
 */
import { ConfigKeyStore } from '../adapters/crypto/index.ts';
import type { TacRecord } from '../adapters/crypto/index.ts';

// The spec's public test key; the numbers do not depend on which key it is.
const test_tac_master_key_hex = '0123456789ABCDEFFEDCBA9876543210';
const cards_default = 50_000;
const batch_records_default = 5_000;
const seconds_default = 3;
const warmup_ms = 500;

function argNumber(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= process.argv.length) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
}

function makeRecords(store: ConfigKeyStore, count: number, cardBase: number): TacRecord[] {
  const records: TacRecord[] = [];
  for (let i = 0; i < count; i++) {
    const fields = {
      cardNo: `621700${String(cardBase + i).padStart(13, '0')}`,
      amountFen: 100 + (i % 400),
      txnType: i % 2 === 0 ? 6 : 9,
      terminalId: `4203${String(i % 10_000).padStart(8, '0')}`,
      terminalSeq: i,
      localTime: `20261128${String(70_000 + (i % 100_000)).padStart(6, '0')}`.slice(0, 14),
    };
    records.push({ ...fields, keyVersion: 1, tac: store.computeTac(1, fields.cardNo, fields) });
  }
  return records;
}

/** Runs `verifyTacs` over the batches for about `seconds`; returns verifications per second. */
function measure(store: ConfigKeyStore, batches: TacRecord[][], seconds: number): number {
  let verified = 0;
  let batchIndex = 0;
  const warmupEnd = performance.now() + warmup_ms;
  while (performance.now() < warmupEnd) store.verifyTacs(batches[batchIndex++ % batches.length]);
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (now < end) {
    const results = store.verifyTacs(batches[batchIndex++ % batches.length]);
    for (const ok of results) if (!ok) throw new Error('a valid TAC failed to verify');
    verified += results.length;
    now = performance.now();
  }
  return verified / ((now - start) / 1000);
}

function split<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const cards = argNumber('cards', cards_default);
const batchRecords = argNumber('batch', batch_records_default);
const seconds = argNumber('seconds', seconds_default);

const keys = [{ version: 1, keyHex: test_tac_master_key_hex }];
const warmStore = new ConfigKeyStore({ tac: keys, qr: [] });
const records = makeRecords(warmStore, cards, 0);
const warmPerS = measure(warmStore, split(records, batchRecords), seconds);

// A one-entry cache makes every tap of a fresh card a miss: the worst case (a day's first taps).
const coldStore = new ConfigKeyStore({ tac: keys, qr: [], cardKeyCacheEntriesMax: 1 });
const coldPerS = measure(coldStore, split(records, batchRecords), seconds);

const result = {
  bench: 'tac-micro',
  node: process.version,
  cards,
  batchRecords,
  warmCacheVerificationsPerS: Math.round(warmPerS),
  coldCacheVerificationsPerS: Math.round(coldPerS),
  cacheStats: warmStore.stats(),
};
console.log(`TAC verifications/s on one core: warm cache ${result.warmCacheVerificationsPerS}, ` +
  `cold cache ${result.coldCacheVerificationsPerS}`);
console.log(JSON.stringify(result));
