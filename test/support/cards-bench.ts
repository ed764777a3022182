/**
 * Rough throughput numbers for the cards capability (not a test; run by hand):
 *   node --import tsx test/support/cards-bench.ts
 * Needs the test template database (run any test once first). Prints one line per measurement.
 */
import { withTx } from '../../adapters/postgres/db.ts';
import { appendAudit, verifyAuditChain } from '../../adapters/audit/index.ts';
import { hotlistDelta, hotlistPage, rotatePii } from '../../adapters/cards/index.ts';
import { PiiKeyring } from '../../adapters/crypto/index.ts';
import { freshDatabase } from './db.ts';
import { test_pii_keys } from './deps.ts';
import { applyCard, buildCardsApp, cardAction, nationalId } from './cards-app.ts';

const persons_n = 20_000;
const audit_workers = 8;
const audit_per_worker = 500;
const hotlisted_cards_n = 100_000;
const lifecycle_cards_n = 400;

function rate(n: number, ms: number): string {
  return `${Math.round((n * 1000) / ms).toLocaleString('en')}/s (${n} in ${Math.round(ms)} ms)`;
}

const db = await freshDatabase(12);
try {
  const pii = PiiKeyring.fromConfigString(test_pii_keys);
  // Persons sealed under v1, written in bulk, then rotated to v2.
  {
    const rows = Array.from({ length: persons_n }, (_, i) => i);
    for (let off = 0; off < rows.length; off += 5_000) {
      const chunk = rows.slice(off, off + 5_000);
      await db.pool.query(`
        INSERT INTO person (name_sealed, national_id_sealed, phone_sealed, address_sealed, national_id_index, phone_index, eligibility, pii_key_version, created_at, created_by)
        SELECT n, i, p, ad, ii, pi, 'LOCAL_HOUSEHOLD', 1, now(), 'bench' FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[]) AS u(n, i, p, ad, ii, pi)`, [
        chunk.map((i) => pii.seal(`姓名${i}`)), chunk.map((i) => pii.seal(`ID${i}`)), chunk.map((i) => pii.seal(`1380000${i}`)),
        chunk.map((i) => pii.seal(`地址${i}号`)), chunk.map((i) => pii.blindIndex('national_id', `ID${i}`)), chunk.map((i) => pii.blindIndex('phone', `1380000${i}`)),
      ]);
    }
    const rotated = PiiKeyring.fromConfigString(`${test_pii_keys},2:0F1E2D3C4B5A69788796A5B4C3D2E1F0`);
    const t = performance.now();
    const r = await rotatePii(db.pool, rotated, { batchRows: 500 });
    console.log(`pii:rotate, 4 sealed fields per person, batches of 500: ${rate(r.resealed.person, performance.now() - t)}`);
  }
  // Audit appends from concurrent transactions, and verification.
  {
    const t = performance.now();
    await Promise.all(Array.from({ length: audit_workers }, (_, w) => (async () => {
      for (let i = 0; i < audit_per_worker; i++) {
        await withTx(db.pool, (tx) => appendAudit(tx, [{ at: new Date(), actor: `key_w${w}`, role: 'admin', purpose: 'CARD_SERVICE', action: 'PERSON_READ', subject: `person:per_${i}`, fields: ['name'], details: {} }]));
      }
    })()));
    const n = audit_workers * audit_per_worker;
    console.log(`audit appends, one record per transaction, ${audit_workers} concurrent clients: ${rate(n, performance.now() - t)}`);
    const v = performance.now();
    const r = await verifyAuditChain(db.pool);
    console.log(`audit:verify: ${rate(r.records, performance.now() - v)} ok=${r.ok}`);
  }
  // Hotlist: 100k cards put on the list by one INSERT (the trigger versions each), then reads.
  {
    await db.pool.query(`INSERT INTO bank (code, name) VALUES ('102100099996', 'Bench Bank') ON CONFLICT DO NOTHING`);
    const t = performance.now();
    await db.pool.query(`
      INSERT INTO card (card_no, issuing_bank, form, status, status_since)
      SELECT '62319890' || lpad(g::text, 11, '0'), '102100099996', 'PHYSICAL', 'LOST_REPORTED', now() FROM generate_series(1, $1) g`, [hotlisted_cards_n]);
    console.log(`hotlisted card inserts through the versioning trigger: ${rate(hotlisted_cards_n, performance.now() - t)}`);
    const p = performance.now();
    let cursor: string | null = null;
    let entries = 0;
    do {
      const page = await hotlistPage(db.pool, cursor, 10_000);
      entries += page.entries.length;
      cursor = page.next_cursor;
    } while (cursor !== null);
    console.log(`full hotlist read in pages of 10,000: ${rate(entries, performance.now() - p)}`);
    const d = performance.now();
    const delta = await hotlistDelta(db.pool, 0n, 10_000);
    console.log(`hotlist delta page of 10,000 changes: ${Math.round(performance.now() - d)} ms (${delta.changes.length} changes)`);
  }
  // Lifecycle actions over HTTP (in process): loss reports, 8 at a time.
  {
    const a = await buildCardsApp(db.pool);
    const cards: string[] = [];
    for (let i = 0; i < lifecycle_cards_n; i++) cards.push((await applyCard(a, { name: `压测${i}`, national_id: nationalId('110105', '19800101', i + 1) })).physical);
    const t = performance.now();
    for (let i = 0; i < cards.length; i += 8) {
      await Promise.all(cards.slice(i, i + 8).map((c) => cardAction(a, c, 'loss-reports', { channel: 'PHONE' })));
    }
    console.log(`loss reports over HTTP (in process), 8 concurrent: ${rate(cards.length, performance.now() - t)}`);
    await a.app.close();
  }
} finally {
  await db.drop();
}
