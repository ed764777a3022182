/**
 * What the console's pages show: money in yuan from integer fen (bigint arithmetic only, never a
 * float), yuan typed into a form back to fen, and a bar chart's geometry as numbers for an inline
 * SVG drawn on the server (no client script, no chart library, nothing fetched by the browser).
 */
import { badRequest } from '../../engine/errors.ts';

/** 12,345.67 from 1234567n; negative amounts keep their sign. */
export function yuanOf(fen: bigint | string | null | undefined): string {
  if (fen === null || fen === undefined || fen === '') return '';
  const v = typeof fen === 'bigint' ? fen : BigInt(fen);
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const whole = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const cents = (abs % 100n).toString().padStart(2, '0');
  return `${neg ? '-' : ''}${whole}.${cents}`;
}

/** The largest amount one form line may carry: the ledger's own per-line limit, in yuan digits. */
export const yuan_integer_digits_max = 13;
const yuan_pattern = new RegExp(`^([0-9]{1,${yuan_integer_digits_max}})(?:\\.([0-9]{1,2}))?$`);

/** "12.3" → 1230n; refuses anything but plain digits with at most two decimals. */
export function fenOfYuan(text: string): bigint {
  const m = yuan_pattern.exec(text.trim());
  if (!m) throw badRequest('AMOUNT_INVALID', 'An amount is written in yuan with at most two decimals, e.g. 12.50.');
  return BigInt(m[1]) * 100n + BigInt((m[2] ?? '').padEnd(2, '0'));
}

export interface BarInput {
  label: string;
  value: bigint;
}

export interface Bar {
  x: number;
  y: number;
  width: number;
  height: number;
  label: string;
  /** Shown on hover (the SVG <title>) and below the chart in the data table. */
  title: string;
}

export interface BarChart {
  width: number;
  height: number;
  bars: Bar[];
  /** The value of the top gridline, already formatted. */
  maxLabel: string;
  /** Labels drawn under every n-th bar so they do not overlap. */
  labelEvery: number;
  baseline: number;
}

export const chart_width_px = 720;
export const chart_height_px = 180;
const chart_top_px = 12;
const chart_bottom_px = 24;
const chart_left_px = 8;
const bar_gap_px = 4;
/** Date labels need about this much room each. */
const label_width_px = 72;

/**
 * Bars scaled to the largest value. Heights come from bigint ratios, so a day of 10^15 fen draws
 * as exactly as a day of 10 fen.
 */
export function barChart(points: readonly BarInput[], format: (v: bigint) => string): BarChart {
  const plot = chart_height_px - chart_top_px - chart_bottom_px;
  const max = points.reduce((m, p) => (p.value > m ? p.value : m), 0n);
  const slot = points.length === 0 ? 0 : (chart_width_px - chart_left_px) / points.length;
  const width = Math.max(1, slot - bar_gap_px);
  const baseline = chart_top_px + plot;
  const bars = points.map((p, i) => {
    const value = p.value < 0n ? 0n : p.value;
    const height = max === 0n ? 0 : Number((value * BigInt(plot * 100)) / max) / 100;
    return {
      x: round2(chart_left_px + i * slot + bar_gap_px / 2), y: round2(baseline - height), width: round2(width), height: round2(height),
      label: p.label, title: `${p.label}: ${format(p.value)}`,
    };
  });
  const labelEvery = slot === 0 ? 1 : Math.max(1, Math.ceil(label_width_px / slot));
  return { width: chart_width_px, height: chart_height_px, bars, maxLabel: format(max), labelEvery, baseline };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
