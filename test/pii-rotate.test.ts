/**
 * PII key rotation: with a keyring holding v1 and v2 (current v2), every person's and
 * complainant's sealed fields are re-sealed under v2, still open to the same values, lookups by
 * blind index still work (its key version is pinned), an engine on the old keyring keeps
 * running alongside, and the CLI does the same from the environment and resumes after a partial run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PiiKeyring } from '../adapters/crypto/index.ts';
import { findPersonIds, remainingToRotate, rotatePii } from '../adapters/cards/index.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { test_pii_keys } from './support/deps.ts';
import { bearer } from './support/http.ts';
import { applyCard, buildCardsApp, nationalId, type CardsApp } from './support/cards-app.ts';
import { runCli } from './support/cards-cli.ts';

const v2_key = '2:0F1E2D3C4B5A69788796A5B4C3D2E1F0';
const rotated_keys = `${test_pii_keys},${v2_key}`;

const dbs: TestDb[] = [];
const apps: CardsApp[] = [];
afterAll(async () => {
  for (const a of apps) await a.app.close();
  for (const d of dbs) await d.drop();
});

async function setup(persons: number): Promise<{ db: TestDb; a: CardsApp; people: { name: string; national_id: string; phone: string; address: string; personId: string }[] }> {
  const db = await freshDatabase(6);
  dbs.push(db);
  const a = await buildCardsApp(db.pool);
  apps.push(a);
  const people = [];
  for (let i = 0; i < persons; i++) {
    const p = { name: `轮换${i}`, national_id: nationalId('440305', '19920607', i + 1), phone: `1370000${String(i).padStart(4, '0')}`, address: `深圳市南山区${i}号` };
    const applied = await applyCard(a, p);
    people.push({ ...p, personId: applied.personId });
  }
  const filed = await a.app.inject({ method: 'POST', url: '/v1/complaints', payload: {
    request_id: 'rotate-complaint-1', complainant_kind: 'PUBLIC', category: 'OTHER', contact: { name: '投诉人', email: 'someone@example.cn' }, description: 'a complaint to be re-sealed' } });
  expect(filed.statusCode).toBe(201);
  return { db, a, people };
}

async function versions(db: TestDb): Promise<{ person: number[]; complaint: number[]; sealed: number[] }> {
  const keyring = PiiKeyring.fromConfigString(rotated_keys);
  const p = await db.pool.query(`SELECT pii_key_version, name_sealed, national_id_sealed, phone_sealed, address_sealed FROM person ORDER BY id`);
  const c = await db.pool.query(`SELECT pii_key_version, contact_name_sealed, description_sealed FROM complaint ORDER BY id`);
  const sealed = [
    ...p.rows.flatMap((r) => [r.name_sealed, r.national_id_sealed, r.phone_sealed, r.address_sealed]),
    ...c.rows.flatMap((r) => [r.contact_name_sealed, r.description_sealed]),
  ].filter((b) => b !== null).map((b) => keyring.sealedKeyVersion(b));
  return { person: p.rows.map((r) => r.pii_key_version), complaint: c.rows.map((r) => r.pii_key_version), sealed };
}

describe('PII key rotation', () => {
  let db: TestDb;
  let a: CardsApp;
  let people: Awaited<ReturnType<typeof setup>>['people'];
  beforeAll(async () => {
    ({ db, a, people } = await setup(23));
  });

  it('re-seals every row under v2 in batches; values, lookups and the running engine all keep working', async () => {
    const before = await versions(db);
    expect(new Set(before.sealed)).toEqual(new Set([1]));
    const keyring = PiiKeyring.fromConfigString(rotated_keys);
    expect(keyring.currentVersion()).toBe(2);
    expect(keyring.indexVersion()).toBe(1);
    const progress: number[] = [];
    const report = await rotatePii(db.pool, keyring, { batchRows: 5, onProgress: (p) => { if (p.table === 'person') progress.push(p.done); } });
    expect(report.resealed).toEqual({ person: 23, complaint: 1 });
    expect(report.remaining).toEqual({ person: 0, complaint: 0 });
    expect(progress).toEqual([0, 5, 10, 15, 20, 23]);
    const after = await versions(db);
    expect(new Set(after.sealed)).toEqual(new Set([2]));
    expect(new Set([...after.person, ...after.complaint])).toEqual(new Set([2]));

    // Opened with the new keyring, every value is what was sealed.
    const rows = (await db.pool.query(`SELECT id, name_sealed, national_id_sealed, phone_sealed, address_sealed FROM person ORDER BY id`)).rows;
    expect(rows.map((r) => [keyring.open(r.name_sealed), keyring.open(r.national_id_sealed), keyring.open(r.phone_sealed), keyring.open(r.address_sealed)]))
      .toEqual(people.map((p) => [p.name, p.national_id, p.phone, p.address]));
    // Blind-index lookups work with the new keyring (index key pinned to v1).
    for (const p of people.slice(0, 5)) expect(await findPersonIds(db.pool, keyring, { nationalId: p.national_id })).toEqual([BigInt(p.personId.slice(4))]);

    // An engine node still configured with v1 only cannot open v2 rows: the deployment order
    // matters (new key everywhere first), and a failed open is an integrity error, never garbage.
    const oldOnly = PiiKeyring.fromConfigString(test_pii_keys);
    expect(() => oldOnly.open(rows[0].name_sealed)).toThrow(/integrity/);
    // The app in this test has the v1-only keyring; give it the rotated one and read through HTTP.
    a.deps.pii = keyring;
    const r = await a.app.inject({ method: 'GET', url: `/v1/persons/${people[3].personId}`, headers: { ...bearer(a.tokens.admin), 'x-purpose': 'CARD_SERVICE' } });
    expect(r.statusCode).toBe(200);
    expect(r.json().national_id).toBe(people[3].national_id);

    // Running again finds nothing to do.
    const again = await rotatePii(db.pool, keyring);
    expect(again.resealed).toEqual({ person: 0, complaint: 0 });
  });

  it('skips rows a running transaction holds, and finishes them once released', async () => {
    const { db: db2 } = await setup(6);
    const keyring = PiiKeyring.fromConfigString(rotated_keys);
    const holder = await db2.pool.connect();
    await holder.query('BEGIN');
    await holder.query(`SELECT id FROM person ORDER BY id LIMIT 1 FOR UPDATE`);
    const rotation = rotatePii(db2.pool, keyring, { batchRows: 2 });
    await new Promise((r) => setTimeout(r, 500));
    // Everything but the locked row is done while it is held.
    expect((await remainingToRotate(db2.pool, keyring)).person).toBe(1);
    await holder.query('COMMIT');
    holder.release();
    const report = await rotation;
    expect(report.remaining.person).toBe(0);
    expect(report.resealed.person).toBe(6);
  });
});

describe('npm run pii:rotate', () => {
  it('rotates from the environment\'s keys with a progress bar on stderr, and is resumable', async () => {
    const { db } = await setup(7);
    const keyring = PiiKeyring.fromConfigString(rotated_keys);
    const env = {
      DATABASE_URL: db.url, PII_KEYS: rotated_keys,
      TAC_MASTER_KEYS: '1:0123456789ABCDEFFEDCBA9876543210', QR_MASTER_KEYS: '1:00112233445566778899AABBCCDDEEFF',
    };
    // What a run killed after its first batches leaves: 4 persons re-sealed under v2, 3 still v1.
    const first = (await db.pool.query(`SELECT id, name_sealed, national_id_sealed, phone_sealed, address_sealed FROM person ORDER BY id LIMIT 4`)).rows;
    for (const row of first) {
      await db.pool.query(`UPDATE person SET name_sealed = $2, national_id_sealed = $3, phone_sealed = $4, address_sealed = $5, pii_key_version = 2 WHERE id = $1`,
        [row.id, keyring.reseal(row.name_sealed), keyring.reseal(row.national_id_sealed), keyring.reseal(row.phone_sealed), keyring.reseal(row.address_sealed)]);
    }
    expect((await versions(db)).person).toEqual([2, 2, 2, 2, 1, 1, 1]);
    const r = await runCli('pii-rotate.ts', ['--batch', '2'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('person: 3 rows re-sealed');
    expect(r.stdout).toContain('all personal data is sealed under key version 2');
    expect(r.stderr).toContain('re-sealing person');
    expect(r.stdout).toContain('complaint: 1 rows re-sealed');
    const left = await remainingToRotate(db.pool, keyring);
    expect(left).toEqual({ person: 0, complaint: 0 });
    expect(new Set((await versions(db)).sealed)).toEqual(new Set([2]));
    const names = (await db.pool.query(`SELECT name_sealed FROM person ORDER BY id`)).rows.map((x) => keyring.open(x.name_sealed));
    expect(names).toEqual(Array.from({ length: 7 }, (_, i) => `轮换${i}`));
  });
});
