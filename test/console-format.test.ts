/**
 * The console's pure helpers: yuan shown from fen and typed back to fen (exact, any size), the
 * bar chart's geometry, card numbers masked in free text, and the adjustment form's lines.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { barChart, chart_height_px, chart_width_px, fenOfYuan, yuanOf } from '../adapters/console/format.ts';
import { maskCardsIn } from '../adapters/console/security.ts';
import { adjustment_form_lines, legsOfForm } from '../adapters/http/plugins/console.ts';

describe('yuan and fen', () => {
  it('shows fen as yuan with thousands separators and two decimals', () => {
    expect(yuanOf(0n)).toBe('0.00');
    expect(yuanOf(5n)).toBe('0.05');
    expect(yuanOf(123456789n)).toBe('1,234,567.89');
    expect(yuanOf(-100n)).toBe('-1.00');
    expect(yuanOf('250')).toBe('2.50');
    expect(yuanOf(null)).toBe('');
    expect(yuanOf(10n ** 18n + 1n)).toBe('10,000,000,000,000,000.01');
  });

  it('reads typed yuan back to the same fen, exactly, for any amount a line may carry', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 10n ** 15n - 1n }), (fen) => {
      expect(fenOfYuan(yuanOf(fen).replaceAll(',', ''))).toBe(fen);
    }));
    expect(fenOfYuan('1')).toBe(100n);
    expect(fenOfYuan(' 1.5 ')).toBe(150n);
    expect(fenOfYuan('0.07')).toBe(7n);
  });

  it('refuses anything that is not plain yuan with at most two decimals', () => {
    for (const bad of ['', '1.234', '-1', '1e3', '0x10', '1,000', '1.', '.5', 'NaN', '１２', '12345678901234']) {
      expect(() => fenOfYuan(bad), bad).toThrow(expect.objectContaining({ code: 'AMOUNT_INVALID' }));
    }
  });
});

describe('bar chart', () => {
  it('scales bars to the largest value, inside the drawing, one per point', () => {
    fc.assert(fc.property(fc.array(fc.bigInt({ min: 0n, max: 10n ** 16n }), { minLength: 1, maxLength: 60 }), (values) => {
      const chart = barChart(values.map((v, i) => ({ label: `2026-11-${String(i + 1).padStart(2, '0')}`, value: v })), (v) => v.toString());
      expect(chart.bars).toHaveLength(values.length);
      const max = values.reduce((m, v) => (v > m ? v : m), 0n);
      for (let i = 0; i < values.length; i++) {
        const bar = chart.bars[i];
        expect(bar.x).toBeGreaterThanOrEqual(0);
        expect(bar.x + bar.width).toBeLessThanOrEqual(chart_width_px + 0.01);
        expect(bar.y + bar.height).toBeCloseTo(chart.baseline, 1);
        expect(bar.y).toBeGreaterThanOrEqual(0);
        if (values[i] === max && max > 0n) expect(bar.height).toBeGreaterThan(chart_height_px / 2);
        if (values[i] === 0n) expect(bar.height).toBe(0);
        // Order is kept: a larger value never draws a shorter bar.
        for (let j = 0; j < values.length; j++) if (values[i] > values[j]) expect(bar.height).toBeGreaterThanOrEqual(chart.bars[j].height);
      }
      expect(chart.maxLabel).toBe(max.toString());
    }), { numRuns: 200 });
  });

  it('labels few enough bars to leave room for each label', () => {
    const chart = barChart(Array.from({ length: 30 }, (_, i) => ({ label: `d${i}`, value: BigInt(i) })), String);
    expect(chart.labelEvery).toBeGreaterThan(1);
    expect(chart.bars[3].title).toBe('d3: 3');
  });
});

describe('masking card numbers in free text', () => {
  it('masks every run of 16 to 19 digits, leaving bank codes, terminals and amounts alone', () => {
    expect(maskCardsIn('tap:6217000000000001234:7:6')).toBe('tap:621700*********1234:7:6');
    expect(maskCardsIn('card:6217000011112222:purse and 6217000011113333')).toBe('card:621700******2222:purse and 621700******3333');
    expect(maskCardsIn('bank 102100000011 terminal 420301000001 amount 1234567')).toBe('bank 102100000011 terminal 420301000001 amount 1234567');
    expect(maskCardsIn('12345678901234567890')).toBe('12345678901234567890');
    expect(maskCardsIn(null)).toBe('');
    fc.assert(fc.property(fc.stringMatching(/^[0-9]{16,19}$/), fc.string(), (card, text) => {
      expect(maskCardsIn(`x ${card} ${text.replace(/[0-9]/g, '')}`)).not.toContain(card);
    }));
  });
});

describe('the adjustment form', () => {
  it('reads the filled lines, skips empty ones, refuses partial ones and fewer than two', () => {
    const legs = legsOfForm({ account_0: 'centre:suspense', side_0: 'DEBIT', amount_0: '1.20', account_3: ' centre:writeoff ', side_3: 'CREDIT', amount_3: '1.2' });
    expect(legs).toEqual([
      { account: 'centre:suspense', side: 'DEBIT', amountFen: 120n },
      { account: 'centre:writeoff', side: 'CREDIT', amountFen: 120n },
    ]);
    expect(() => legsOfForm({ account_0: 'centre:suspense', side_0: 'DEBIT', amount_0: '1' })).toThrow(expect.objectContaining({ code: 'ADJUSTMENT_LINES_TOO_FEW' }));
    expect(() => legsOfForm({ account_0: 'centre:suspense', amount_0: '1', account_1: 'centre:writeoff', side_1: 'CREDIT', amount_1: '1' }))
      .toThrow(expect.objectContaining({ code: 'ADJUSTMENT_LINE_INCOMPLETE' }));
    // Fields past the form's lines are not read.
    expect(() => legsOfForm({ account_0: 'centre:suspense', side_0: 'DEBIT', amount_0: '1', [`account_${adjustment_form_lines}`]: 'centre:writeoff',
      [`side_${adjustment_form_lines}`]: 'CREDIT', [`amount_${adjustment_form_lines}`]: '1' })).toThrow(expect.objectContaining({ code: 'ADJUSTMENT_LINES_TOO_FEW' }));
  });
});
