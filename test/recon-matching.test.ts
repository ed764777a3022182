/**
 * The matching rules, twice: the pure model (engine/recon/matching.ts) on hand-made cases, and a
 * property test that the run's set-based SQL files exactly the model's differences for random
 * cycles (random engine lines, random returns with duplicates, changed amounts, rejections,
 * lines unknown to the engine, banks that have not answered, and returns superseded by a later
 * one). Also the workflow's pure rules: transitions, age, ids.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileCycle } from '../adapters/recon/run.ts';
import {
  ageDays, classifyGroup, exceptionIdText, matchBankLines, matchOperatorTotals, parseExceptionId, planExceptionStep, type ReturnedLine,
} from '../engine/recon/index.ts';
import { DomainError } from '../engine/errors.ts';
import { freshDatabase, type TestDb } from './support/db.ts';
import { fundPurses, seedTransit, shanghaiLocalTime } from './support/transit-fixtures.ts';

describe('the pure model', () => {
  const g = (amounts: bigint[], rejected = 0) => ({ n: amounts.length, min: amounts.reduce((a, b) => (b < a ? b : a)), max: amounts.reduce((a, b) => (b > a ? b : a)), sum: amounts.reduce((a, b) => a + b, 0n), rejected });

  it('classifies each kind of group, in the documented order', () => {
    expect(classifyGroup(g([5n]), g([5n]), true)).toBeNull();
    expect(classifyGroup(g([5n]), undefined, true)).toBe('MISSING_AT_BANK');
    expect(classifyGroup(g([5n]), undefined, false)).toBeNull();
    expect(classifyGroup(undefined, g([5n]), true)).toBe('UNKNOWN_AT_ENGINE');
    expect(classifyGroup(g([5n]), g([6n]), true)).toBe('AMOUNT_MISMATCH');
    expect(classifyGroup(g([5n]), g([5n, 5n]), true)).toBe('DUPLICATE_AT_BANK');
    expect(classifyGroup(g([5n, 7n]), g([5n]), true)).toBe('MISSING_AT_BANK');
    expect(classifyGroup(g([5n, 7n]), g([7n, 5n]), true)).toBeNull();
    expect(classifyGroup(g([5n, 7n]), g([6n, 6n]), true)).toBe('AMOUNT_MISMATCH');
    // A rejection outranks everything, even a line the engine does not know.
    expect(classifyGroup(g([5n]), g([6n, 6n], 1), true)).toBe('REJECTED_BY_BANK');
    expect(classifyGroup(undefined, g([6n], 1), true)).toBe('REJECTED_BY_BANK');
  });

  it('matches lines one-to-one by bank and txn id: the same id at two banks is two matches', () => {
    const d = matchBankLines(
      [{ bankCode: 'A', txnId: 't1', amountFen: 5n }, { bankCode: 'B', txnId: 't1', amountFen: 5n }],
      [{ bankCode: 'A', txnId: 't1', amountFen: 5n, status: 'POSTED' }, { bankCode: 'A', txnId: 't1', amountFen: 5n, status: 'POSTED' }],
      new Set(['A', 'B']));
    expect(d).toEqual([{ type: 'DUPLICATE_AT_BANK', bankCode: 'A', txnId: 't1' }, { type: 'MISSING_AT_BANK', bankCode: 'B', txnId: 't1' }]);
  });

  it('compares operator totals per terminal, either side may be missing', () => {
    const t = (id: string, n: bigint, a: bigint) => ({ terminalId: id, tapCount: n, amountFen: a });
    expect(matchOperatorTotals([t('1', 2n, 10n), t('2', 1n, 5n), t('3', 1n, 1n)], [t('1', 2n, 10n), t('2', 1n, 6n), t('4', 1n, 1n)]).map((x) => x.terminalId))
      .toEqual(['2', '3', '4']);
  });

  it('workflow rules: OPEN → ASSIGNED → RESOLVED, reassign allowed, RESOLVED final', () => {
    expect(planExceptionStep('OPEN', 'ASSIGN')).toEqual({ from: 'OPEN', to: 'ASSIGNED' });
    expect(planExceptionStep('ASSIGNED', 'ASSIGN')).toEqual({ from: 'ASSIGNED', to: 'ASSIGNED' });
    expect(planExceptionStep('OPEN', 'RESOLVE')).toEqual({ from: 'OPEN', to: 'RESOLVED' });
    expect(planExceptionStep('ASSIGNED', 'RESOLVE')).toEqual({ from: 'ASSIGNED', to: 'RESOLVED' });
    for (const s of ['ASSIGN', 'RESOLVE'] as const) {
      try { planExceptionStep('RESOLVED', s); expect.unreachable(); } catch (e) {
        expect(e).toBeInstanceOf(DomainError);
        expect((e as DomainError).status).toBe(409);
        expect((e as DomainError).code).toBe('EXCEPTION_TRANSITION_INVALID');
      }
    }
    expect(ageDays(new Date('2026-11-28T00:00:00Z'), null, new Date('2026-11-30T23:59:59Z'))).toBe(2);
    expect(ageDays(new Date('2026-11-28T00:00:00Z'), new Date('2026-11-29T00:00:00Z'), new Date('2026-12-30T00:00:00Z'))).toBe(1);
    expect(parseExceptionId(exceptionIdText(42n))).toBe(42n);
    expect(parseExceptionId('exc_0')).toBeNull();
    expect(parseExceptionId('case_1')).toBeNull();
  });
});

describe('the run\'s SQL agrees with the model', () => {
  let db: TestDb;
  let partitioned = false;
  let cycleNo = 0;
  beforeAll(async () => {
    db = await freshDatabase(4);
    partitioned = (await db.pool.query(`SELECT relkind FROM pg_class WHERE relname = 'clearing_line' AND relnamespace = current_schema()::regnamespace`)).rows[0].relkind === 'p';
  });
  afterAll(async () => { await db?.drop(); });

  const banks = ['102100000001', '102100000002', '102100000003'];
  const group = fc.record({
    bank: fc.integer({ min: 0, max: 2 }),
    engine: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 2 }),
    returned: fc.array(fc.record({ amount: fc.integer({ min: 1, max: 4 }), rejected: fc.boolean() }), { maxLength: 3 }),
  });
  const scenario = fc.record({
    groups: fc.array(group, { minLength: 1, maxLength: 25 }),
    answered: fc.subarray([0, 1, 2]),
    /** Banks whose first return is superseded by a second (the model sees only the second). */
    corrected: fc.subarray([0, 1, 2]),
  });

  it('judges balance chains across days: a late tap between taps of an earlier day', async () => {
    const day = '2024-06-02';
    const cycle = 'CYC20240602';
    await db.pool.query(`INSERT INTO clearing_cycle (id, business_date, state, opened_at, closed_at) VALUES ($1, $2, 'PUBLISHED', now(), now())`, [cycle, day]);
    if (partitioned) await db.pool.query(`CREATE TABLE clearing_line_${cycle.toLowerCase()} PARTITION OF clearing_line FOR VALUES IN ('${cycle}')`);
    const tapRow = `INSERT INTO tap_record (batch_no, idx, operator_id, outcome, card_no, card_counter, txn_type, amount_fen, balance_before_fen,
      terminal_id, terminal_seq, local_time, key_version, tac, business_date)
      VALUES ($1, $2, 'OPA', 'ACCEPTED', $3, $4, 9, $5, $6, '420300000001', $7, $8, 1, '00000000', $9)`;
    const x = '6217060000000000901';
    const y = '6217060000000000902';
    // Card x: counters 1 and 3 accepted the day before, counter 2 (taken in between) uploaded late.
    await db.pool.query(tapRow, [900001, 0, x, 1, 100, 1000, 1, '20240601080000', '2024-06-01']);
    await db.pool.query(tapRow, [900001, 1, x, 3, 100, 700, 3, '20240601090000', '2024-06-01']);
    await db.pool.query(tapRow, [900002, 0, x, 2, 100, 900, 2, '20240601083000', day]);
    // Card y chains well across the two days.
    await db.pool.query(tapRow, [900001, 2, y, 1, 50, 500, 4, '20240601100000', '2024-06-01']);
    await db.pool.query(tapRow, [900002, 1, y, 2, 50, 450, 5, '20240602100000', day]);
    // Card z jumps from 900 left to 5000, but a purse load was posted between its two taps.
    const z = '6217060000000000903';
    const now = Date.now();
    await db.pool.query(tapRow, [900001, 3, z, 1, 100, 1000, 6, shanghaiLocalTime(now - 3_600_000), '2024-06-01']);
    await db.pool.query(tapRow, [900002, 2, z, 2, 100, 5000, 7, shanghaiLocalTime(now + 60_000), day]);
    await seedTransit(db.pool, { cards: [{ cardNo: z }] });
    await fundPurses(db.pool, [{ cardNo: z, amountFen: 4100n }], day);
    await reconcileCycle({ db: db.pool, now: () => new Date() }, cycle, { keyId: 'test', role: 'finance' });
    const breaks = (await db.pool.query(`SELECT source_key, card_no, engine_amount_fen, other_amount_fen, details FROM recon_exception WHERE type = 'BALANCE_CHAIN_BREAK' AND cycle_id = $1`, [cycle])).rows;
    // 1 → 2 chains (900); 2 leaves 800 but 3 (accepted a day earlier) claims 700.
    expect(breaks).toHaveLength(1);
    expect(breaks[0]).toMatchObject({ source_key: 'chain:900001:1', card_no: x, engine_amount_fen: 800n, other_amount_fen: 700n });
    expect(breaks[0].details).toMatchObject({ card_counter: '3', previous_card_counter: '2' });
  });

  it('files exactly the differences the model finds', async () => {
    await fc.assert(fc.asyncProperty(scenario, async (s) => {
      cycleNo += 1;
      const day = new Date(Date.UTC(2025, 0, 1) + cycleNo * 86_400_000).toISOString().slice(0, 10);
      const cycle = `CYC${day.replaceAll('-', '')}`;
      await db.pool.query(`INSERT INTO clearing_cycle (id, business_date, state, opened_at, closed_at) VALUES ($1, $2, 'PUBLISHED', now(), now())`, [cycle, day]);
      if (partitioned) await db.pool.query(`CREATE TABLE clearing_line_${cycle.toLowerCase()} PARTITION OF clearing_line FOR VALUES IN ('${cycle}')`);
      const engine: { bankCode: string; txnId: string; amountFen: bigint }[] = [];
      const returned: ReturnedLine[] = [];
      s.groups.forEach((gr, k) => {
        const txnId = `${cycle}-t${k % 7}`;
        for (const a of gr.engine) engine.push({ bankCode: banks[gr.bank], txnId, amountFen: BigInt(a) });
        if (s.answered.includes(gr.bank)) {
          for (const r of gr.returned) returned.push({ bankCode: banks[gr.bank], txnId, amountFen: BigInt(r.amount), status: r.rejected ? 'REJECTED' : 'POSTED' });
        }
      });
      // A txn id drawn twice for one bank must stay within two engine lines (the model's bound).
      const perKey = new Map<string, number>();
      const kept = engine.filter((l) => { const k = `${l.bankCode}/${l.txnId}`; const n = (perKey.get(k) ?? 0) + 1; perKey.set(k, n); return n <= 2; });
      await db.pool.query(`
        INSERT INTO clearing_line (cycle_id, bank_code, entry_id, side, kind, txn_id, txn_time, amount_fen, fee_fen, direction)
        SELECT $1, b, e, 'ACQUIRER', 'QR_PAYMENT', t, now(), a, 0, 'RECEIVE' FROM unnest($2::text[], $3::bigint[], $4::text[], $5::bigint[]) AS x(b, e, t, a)`,
      [cycle, kept.map((l) => l.bankCode), kept.map((_, i) => i + 1), kept.map((l) => l.txnId), kept.map((l) => String(l.amountFen))]);
      let returnId = cycleNo * 100;
      for (const bi of s.answered) {
        const bank = banks[bi];
        if (s.corrected.includes(bi)) {
          // An earlier return, all wrong, then superseded.
          returnId += 1;
          await db.pool.query(`INSERT INTO settlement_return_line (bank_code, return_id, line_no, txn_id, amount_fen, status, outcome) VALUES ($1, $2, 2, $3, 99, 'POSTED', 'EXCEPTION')`, [bank, returnId, `${cycle}-stale`]);
          await db.pool.query(`INSERT INTO settlement_return (id, bank_code, package_id, cycle_id, format, sha256, line_count, received_at, actor) OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, 'CSV', repeat('d', 64), 1, now(), 't')`,
            [returnId, bank, `${cycle}-${bank}`, cycle]);
        }
        returnId += 1;
        const mine = returned.filter((r) => r.bankCode === bank);
        await db.pool.query(`
          INSERT INTO settlement_return_line (bank_code, return_id, line_no, txn_id, amount_fen, status, reason, outcome)
          SELECT $1, $2, n + 1, t, a, st, CASE WHEN st = 'REJECTED' THEN 'no' END, 'EXCEPTION' FROM unnest($3::text[], $4::bigint[], $5::text[]) WITH ORDINALITY AS x(t, a, st, n)`,
        [bank, returnId, mine.map((r) => r.txnId), mine.map((r) => String(r.amountFen)), mine.map((r) => r.status)]);
        await db.pool.query(`INSERT INTO settlement_return (id, bank_code, package_id, cycle_id, format, sha256, line_count, received_at, actor) OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, 'CSV', repeat('e', 64), $5, now(), 't')`,
          [returnId, bank, `${cycle}-${bank}`, cycle, mine.length]);
      }
      const run = await reconcileCycle({ db: db.pool, now: () => new Date() }, cycle, { keyId: 'test', role: 'finance' });
      const got = (await db.pool.query<{ type: string; bank_code: string; txn_id: string }>(
        `SELECT type, bank_code, txn_id FROM recon_exception WHERE cycle_id = $1 ORDER BY bank_code, txn_id`, [cycle])).rows;
      const model = matchBankLines(kept, returned, new Set(s.answered.map((i) => banks[i])));
      expect(got.map((x) => [x.type, x.bank_code, x.txn_id])).toEqual(model.map((d) => [d.type, d.bankCode, d.txnId]));
      expect(run.exceptionsNew).toBe(BigInt(model.length));
      expect(run.bankLines).toBe(BigInt(returned.length));
    }), { numRuns: 40 });
  }, 120_000);
});
