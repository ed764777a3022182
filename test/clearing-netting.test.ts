/**
 * Netting invariants of the pure model (engine/clearing/netting.ts), property-tested: for any
 * cycle of random transactions the banks' nets and the centre's accounts sum to exactly zero,
 * each bank's net equals the sum of its detail lines, and every merchant is swept to zero.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkZeroSum, netCycle, netOfLines, type CycleEntry } from '../engine/clearing/netting.ts';
import { feeFen } from '../engine/clearing/fees.ts';
import { banks, entriesOf, idle_bank, randomTxns, refs, test_date } from './support/clearing-fixtures.ts';

function modelOf(seed: number, n: number): CycleEntry[] {
  return entriesOf(randomTxns(seed, n), test_date, 'p').map((e, i) => ({ entryId: BigInt(i + 1), kind: e.kind, postings: e.lines }));
}

describe('netting', () => {
  it('sums to zero across banks and the centre; each net is the sum of its lines', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 300 }), (seed, n) => {
      const r = netCycle(modelOf(seed, n), refs, [...banks, idle_bank]);
      let banksNet = 0n;
      for (const [bank, p] of r.positions) {
        expect(p.netFen).toBe(netOfLines(r.lines.filter((l) => l.bankCode === bank)));
        banksNet += p.netFen;
      }
      expect(banksNet + r.centreNetFen).toBe(0n);
      expect(() => checkZeroSum(banksNet, r.centreNetFen)).not.toThrow();
      // Per merchant: fee + sweep = what its payable received net of refunds.
      for (const m of r.merchants) {
        const own = r.lines.filter((l) => l.side === 'ACQUIRER' && l.merchantId === m.merchantId);
        const received = own.reduce((a, l) => a + (l.direction === 'RECEIVE' ? l.amountFen : -l.amountFen), 0n);
        expect(m.feeFen + m.sweepFen).toBe(received);
      }
    }), { numRuns: 200 });
  });

  it('refuses a cycle that does not sum to zero', () => {
    expect(() => checkZeroSum(5n, -4n)).toThrow(/does not sum to zero/);
  });

  it('prices acquirer lines with the schedule (half up, then min/max) and never issuer lines', () => {
    const r = netCycle([{ entryId: 1n, kind: 'QR_PAYMENT', postings: [{ debit: `bank:${banks[0]}:clearing`, credit: 'merchant:MS1:payable', amountFen: 40n }] }], refs);
    const acq = r.lines.find((l) => l.side === 'ACQUIRER')!;
    // 40 × 0.0125 = 0.5 → rounds half up to 1.
    expect(acq.feeFen).toBe(feeFen(40n, { rate: '0.0125', minFen: 1n, maxFen: 100000n }));
    expect(acq.feeFen).toBe(1n);
    expect(r.lines.find((l) => l.side === 'ISSUER')).toMatchObject({ feeFen: 0n, direction: 'PAY', bankCode: banks[0] });
    expect(acq).toMatchObject({ bankCode: banks[1], direction: 'RECEIVE' });
  });
});
