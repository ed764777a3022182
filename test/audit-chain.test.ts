/**
 * The audit log: appends form one gapless hash chain even when concurrent; the database refuses
 * UPDATE, DELETE and TRUNCATE; and when a superuser gets around the triggers, verification (the
 * library, the audit:verify CLI and the HTTP route) names the first broken record for an altered
 * field, a forged record, a deleted record and a cut-off tail (with a published anchor).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { appendAudit, auditRecordForHash, verifyAuditChain, type AuditEntry } from '../adapters/audit/index.ts';
import { chainHash } from '../adapters/crypto/index.ts';
import { withTx, type Db } from '../adapters/postgres/db.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { bearer } from './support/http.ts';
import { buildCardsApp, type CardsApp } from './support/cards-app.ts';
import { runCli } from './support/cards-cli.ts';

const dbs: TestDb[] = [];
afterAll(async () => {
  for (const d of dbs) await d.drop();
});

async function fresh(): Promise<TestDb> {
  const d = await freshDatabase(12);
  dbs.push(d);
  return d;
}

const entry = (i: number, extra: Partial<AuditEntry> = {}): AuditEntry => ({
  at: new Date(Date.UTC(2026, 10, 28, 1, 0, 0, i)), actor: `key_test${i % 3}`, role: 'admin', purpose: i % 2 ? 'CARD_SERVICE' : null,
  action: 'PERSON_READ', subject: `person:per_${i}`, fields: i % 2 ? ['name', 'phone'] : [], details: { n: String(i), flag: i % 2 === 0, none: null },
  ...extra,
});

async function seed(db: Db, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) await withTx(db, (tx) => appendAudit(tx, [entry(i)]));
}

async function tamper(db: Db, sql: string, params: unknown[] = []): Promise<void> {
  // The test user is a superuser: it can step around the triggers, as an attacker with that
  // power could. The chain must still tell.
  const c = await db.connect();
  try {
    await c.query('BEGIN');
    await c.query('ALTER TABLE audit_log DISABLE TRIGGER USER');
    await c.query(sql, params);
    await c.query('ALTER TABLE audit_log ENABLE TRIGGER USER');
    await c.query('COMMIT');
  } finally {
    c.release();
  }
}

describe('appending', () => {
  let db: TestDb;
  beforeAll(async () => { db = await fresh(); });

  it('chains every record from genesis, with gapless seqs, also under concurrent appends', async () => {
    await seed(db.pool, 5);
    await Promise.all(Array.from({ length: 40 }, (_, i) => withTx(db.pool, (tx) => appendAudit(tx, [entry(100 + i), entry(200 + i)]))));
    const r = await verifyAuditChain(db.pool, { pageRows: 7 });
    expect(r.ok).toBe(true);
    expect(r.records).toBe(85);
    expect(r.headSeq).toBe(85n);
    const seqs = (await db.pool.query<{ seq: bigint }>(`SELECT seq FROM audit_log ORDER BY seq`)).rows.map((x) => Number(x.seq));
    expect(seqs).toEqual(Array.from({ length: 85 }, (_, i) => i + 1));
    // Each stored hash is SM3(prev ‖ canonical record), recomputed here independently.
    const rows = (await db.pool.query(`SELECT * FROM audit_log ORDER BY seq LIMIT 3`)).rows;
    let prev = '0'.repeat(64);
    for (const row of rows) {
      expect(row.prev_hash).toBe(prev);
      const h = chainHash(prev, auditRecordForHash(row.seq, { at: row.at, actor: row.actor, role: row.role, purpose: row.purpose, action: row.action, subject: row.subject, fields: row.fields, details: row.details }));
      expect(row.hash).toBe(h);
      prev = h;
    }
  });

  it('a rolled-back transaction leaves no record and no gap', async () => {
    const before = (await verifyAuditChain(db.pool)).headSeq;
    await expect(withTx(db.pool, async (tx) => {
      await appendAudit(tx, [entry(999)]);
      throw new Error('the audited action failed');
    })).rejects.toThrow('the audited action failed');
    await withTx(db.pool, (tx) => appendAudit(tx, [entry(1000)]));
    const r = await verifyAuditChain(db.pool);
    expect(r.ok).toBe(true);
    expect(r.headSeq).toBe(before + 1n);
  });

  it('the database refuses UPDATE, DELETE and TRUNCATE', async () => {
    await expect(db.pool.query(`UPDATE audit_log SET actor = 'someone else' WHERE seq = 1`)).rejects.toThrow(/append-only/);
    await expect(db.pool.query(`DELETE FROM audit_log WHERE seq = 2`)).rejects.toThrow(/append-only/);
    await expect(db.pool.query(`TRUNCATE audit_log`)).rejects.toThrow(/append-only/);
    expect((await verifyAuditChain(db.pool)).ok).toBe(true);
  });

  it('any single-field change of any record is detected at that record (property)', async () => {
    const local = await fresh();
    await seed(local.pool, 12);
    const fields = ['actor', 'role', 'purpose', 'action', 'subject', 'fields', 'details', 'at'] as const;
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 12 }), fc.constantFrom(...fields), async (seq, field) => {
      const original = (await local.pool.query(`SELECT ${field} FROM audit_log WHERE seq = $1`, [seq])).rows[0][field];
      const altered = field === 'fields' ? ['national_id'] : field === 'details' ? { n: 'forged' } : field === 'at' ? new Date(0) : field === 'action' ? 'CARD_CANCEL' : 'changed';
      await tamper(local.pool, `UPDATE audit_log SET ${field} = $2 WHERE seq = $1`, [seq, field === 'details' ? JSON.stringify(altered) : altered]);
      const r = await verifyAuditChain(local.pool);
      await tamper(local.pool, `UPDATE audit_log SET ${field} = $2 WHERE seq = $1`, [seq, field === 'details' ? JSON.stringify(original) : original]);
      expect(r.ok).toBe(false);
      expect(r.firstBreak?.seq).toBe(BigInt(seq));
      expect(r.firstBreak?.reason).toBe('hash');
      expect((await verifyAuditChain(local.pool)).ok).toBe(true);
    }), { numRuns: 25 });
  });
});

describe('tampering is detected by audit:verify', () => {
  async function verifyCli(db: TestDb, args: string[] = []) {
    return runCli('audit-verify.ts', args, { DATABASE_URL: db.url });
  }

  it('exits 0 on an intact log', async () => {
    const db = await fresh();
    await seed(db.pool, 6);
    const r = await verifyCli(db);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/audit log OK: 6 records/);
  });

  it('an altered field: exit 1 naming the record', async () => {
    const db = await fresh();
    await seed(db.pool, 8);
    await tamper(db.pool, `UPDATE audit_log SET purpose = 'FRAUD_INVESTIGATION' WHERE seq = 4`);
    const r = await verifyCli(db);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/BROKEN at record 4 \(hash\)/);
  });

  it('a forged record inserted: exit 1 naming it, whether its hash or its link is wrong', async () => {
    const db = await fresh();
    await seed(db.pool, 5);
    const head = (await db.pool.query(`SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`)).rows[0];
    // A forger computes a hash over one record and stores another.
    const shown = entry(6, { action: 'PERSON_READ' });
    const stored = entry(6, { action: 'PERSON_READ', actor: 'key_innocent' });
    const forgedHash = chainHash(head.hash, auditRecordForHash(6n, shown));
    await tamper(db.pool, `INSERT INTO audit_log (seq, at, actor, role, purpose, action, subject, fields, details, prev_hash, hash)
      VALUES (6, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, [stored.at, stored.actor, stored.role, stored.purpose, stored.action, stored.subject, stored.fields, JSON.stringify(stored.details), head.hash, forgedHash]);
    const r = await verifyCli(db);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/BROKEN at record 6 \(hash\)/);

    // A record slipped in after it, chained from a made-up predecessor.
    const db2 = await fresh();
    await seed(db2.pool, 5);
    const e = entry(6);
    const fakePrev = 'a'.repeat(64);
    await tamper(db2.pool, `INSERT INTO audit_log (seq, at, actor, role, purpose, action, subject, fields, details, prev_hash, hash)
      VALUES (6, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, [e.at, e.actor, e.role, e.purpose, e.action, e.subject, e.fields, JSON.stringify(e.details), fakePrev, chainHash(fakePrev, auditRecordForHash(6n, e))]);
    const r2 = await verifyCli(db2);
    expect(r2.code).toBe(1);
    expect(r2.stdout).toMatch(/BROKEN at record 6 \(prev_hash\)/);
  });

  it('a deleted record: exit 1 naming the missing seq; a cut-off tail: caught by the published anchor', async () => {
    const db = await fresh();
    await seed(db.pool, 9);
    const anchor = (await db.pool.query(`SELECT seq, hash FROM audit_log WHERE seq = 9`)).rows[0];
    await tamper(db.pool, `DELETE FROM audit_log WHERE seq = 3`);
    const r = await verifyCli(db);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/BROKEN at record 3 \(missing\)/);

    const db2 = await fresh();
    await seed(db2.pool, 9);
    const head = (await db2.pool.query(`SELECT seq, hash FROM audit_log WHERE seq = 9`)).rows[0];
    expect((await verifyCli(db2, ['--anchor', `9:${head.hash}`])).code).toBe(0);
    await tamper(db2.pool, `DELETE FROM audit_log WHERE seq >= 8`);
    // Without the anchor the shortened chain is self-consistent; with it, the cut shows.
    expect((await verifyCli(db2)).code).toBe(0);
    const cut = await verifyCli(db2, ['--anchor', `9:${head.hash}`]);
    expect(cut.code).toBe(1);
    expect(cut.stdout).toMatch(/BROKEN at record 9 \(anchor\)/);
    expect(anchor.hash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('GET /v1/audit-log', () => {
  let db: TestDb;
  let a: CardsApp;
  beforeAll(async () => {
    db = await fresh();
    a = await buildCardsApp(db.pool);
    await seed(db.pool, 7);
  });
  afterAll(async () => { await a?.app.close(); });

  it('is for auditors only', async () => {
    for (const role of ['admin', 'finance', 'operator', 'bank'] as const) {
      expect((await a.app.inject({ method: 'GET', url: '/v1/audit-log', headers: bearer(a.tokens[role]) })).statusCode).toBe(403);
    }
    expect((await a.app.inject({ method: 'GET', url: '/v1/audit-log' })).statusCode).toBe(401);
  });

  it('pages in chain order with a cursor, filters, audits its own reads, and verifies', async () => {
    const p1 = await a.app.inject({ method: 'GET', url: '/v1/audit-log?limit=4', headers: bearer(a.tokens.auditor) });
    expect(p1.statusCode).toBe(200);
    const b1 = p1.json();
    expect(b1.items.map((x: { seq: string }) => x.seq)).toEqual(['1', '2', '3', '4']);
    expect(b1.next_cursor).toBe('4');
    const b2 = (await a.app.inject({ method: 'GET', url: `/v1/audit-log?limit=4&cursor=${b1.next_cursor}`, headers: bearer(a.tokens.auditor) })).json();
    expect(b2.items[0].seq).toBe('5');
    expect(b2.items[0].prev_hash).toBe(b1.items[3].hash);
    // The first page's read was itself audited (seq 8), so the second page shows it.
    expect(b2.items.map((x: { action: string }) => x.action)).toContain('AUDIT_LOG_READ');
    const one = (await a.app.inject({ method: 'GET', url: '/v1/audit-log?subject=person:per_3', headers: bearer(a.tokens.auditor) })).json();
    expect(one.items.map((x: { seq: string }) => x.seq)).toEqual(['3']);
    const v = (await a.app.inject({ method: 'GET', url: '/v1/audit-log/verification', headers: bearer(a.tokens.auditor) })).json();
    expect(v.ok).toBe(true);
    expect(v.first_break).toBeNull();
    await tamper(db.pool, `UPDATE audit_log SET subject = 'person:per_99' WHERE seq = 2`);
    const broken = (await a.app.inject({ method: 'GET', url: '/v1/audit-log/verification', headers: bearer(a.tokens.auditor) })).json();
    expect(broken.ok).toBe(false);
    expect(broken.first_break).toMatchObject({ seq: '2', reason: 'hash' });
  });
});
