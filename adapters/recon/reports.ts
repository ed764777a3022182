/**
 * The daily report of a business date, for finance staff and auditors: what moved (entries by
 * ledger kind), the fees, each bank's net position and each merchant's clearing, the
 * reconciliation exceptions raised for the date by type, state and age, and the adjustments
 * posted in it. As a typed object, JSON, one CSV file and a printable HTML page.
 *
 * Where each figure comes from, so it can be checked against the ledger:
 * - kinds: the date's ledger entries (the clearing's own fee, sweep and settlement entries
 *   excluded), count and Σ posting amounts per kind;
 * - fees: the date's CLEARING_FEE entries (equal to the cycle summary's fees);
 * - banks: the cycle's clearing positions; each net equals the movement of the bank's clearing
 *   account over the date's entries, settlement excluded;
 * - merchants: the cycle's ACQUIRER detail lines; received − paid is the movement of the
 *   merchant's payable by the date's transactions, the fee its CLEARING_FEE entry, the net its
 *   CLEARING_SWEEP to the acquiring bank;
 * - adjustments: approved adjustments whose entry was posted in the date.
 * Banks and merchants are empty until the date's cycle is cleared (the cycle's state says so).
 */
import { stringify } from 'csv-stringify/sync';
import { checkDate } from '../../engine/clearing/calendar.ts';
import { clearing_entry_kinds } from '../../engine/clearing/kinds.ts';
import { notFound } from '../../engine/errors.ts';
import { exceptionIdText } from '../../engine/recon/index.ts';
import type { Queryable } from '../postgres/db.ts';

export const age_buckets = ['0-1', '2-7', '8-30', '>30'] as const;
export type AgeBucket = (typeof age_buckets)[number];
/** Cycle states at and after which positions and detail lines exist. */
const cleared_states = ['CLEARED', 'PUBLISHED', 'SETTLED', 'PARTIALLY_SETTLED'];
/** Rows of any one section: a day has a few hundred merchants and banks, never unbounded. */
export const report_section_rows_max = 100_000;
const day_ms = 86_400_000;

export interface DailyReport {
  businessDate: string;
  generatedAt: Date;
  cycle: {
    id: string;
    state: string;
    cleared: boolean;
    /** From the clearing summary (null until cleared). */
    transactions: bigint | null;
    lines: bigint | null;
    banksNetFen: bigint | null;
    centreNetFen: bigint | null;
  };
  kinds: { kind: string; count: bigint; amountFen: bigint }[];
  totals: { count: bigint; amountFen: bigint };
  fees: { entries: bigint; amountFen: bigint };
  banks: { bankCode: string; name: string; lineCount: bigint; payFen: bigint; receiveFen: bigint; feeFen: bigint; netFen: bigint }[];
  merchants: { merchantId: string; name: string; acquiringBank: string; count: bigint; receiveFen: bigint; payFen: bigint; feeFen: bigint; netFen: bigint }[];
  exceptions: { type: string; state: string; ageBucket: AgeBucket; count: bigint; engineAmountFen: bigint; otherAmountFen: bigint }[];
  adjustments: { id: string; exceptionId: string; entryId: bigint; totalFen: bigint; memo: string; proposedBy: string; decidedBy: string; decidedAt: Date }[];
}

const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
const clearing_kinds_sql = `ARRAY[${clearing_entry_kinds.map(quote).join(', ')}]::text[]`;

export const plans = {
  cycle: `
    SELECT c.id, c.state, s.transactions, s.lines, s.banks_net_fen, s.centre_net_fen
    FROM clearing_cycle c LEFT JOIN clearing_summary s ON s.cycle_id = c.id
    WHERE c.business_date = $1::date`,
  /**
   * Entries per kind and their Σ posting amounts, in one join of the date's entries with their
   * postings: every entry has exactly one line 0 (the ledger numbers lines from 0 and refuses an
   * entry without lines), so counting lines 0 counts entries without a DISTINCT.
   */
  kinds: `
    SELECT e.kind, count(*) FILTER (WHERE p.line_no = 0)::bigint AS n, sum(p.amount_fen)::bigint AS amount_fen
    FROM ledger_entry e JOIN ledger_posting p ON p.entry_id = e.id
    WHERE e.business_date = $1::date AND e.kind <> ALL (${clearing_kinds_sql})
    GROUP BY e.kind ORDER BY e.kind`,
  fees: `
    SELECT count(*) FILTER (WHERE p.line_no = 0)::bigint AS n, coalesce(sum(p.amount_fen), 0)::bigint AS amount_fen
    FROM ledger_entry e JOIN ledger_posting p ON p.entry_id = e.id
    WHERE e.business_date = $1::date AND e.kind = 'CLEARING_FEE'`,
  banks: `
    SELECT p.bank_code, coalesce(b.name, '') AS name, p.line_count, p.pay_fen, p.receive_fen, p.fee_fen, p.net_fen
    FROM clearing_position p LEFT JOIN bank b ON b.code = p.bank_code
    WHERE p.cycle_id = $1 ORDER BY p.bank_code LIMIT ${report_section_rows_max}`,
  merchants: `
    SELECT l.merchant_id, coalesce(m.name, '') AS name, l.bank_code, count(*)::bigint AS n,
      coalesce(sum(l.amount_fen) FILTER (WHERE l.direction = 'RECEIVE'), 0)::bigint AS receive_fen,
      coalesce(sum(l.amount_fen) FILTER (WHERE l.direction = 'PAY'), 0)::bigint AS pay_fen,
      sum(l.fee_fen)::bigint AS fee_fen
    FROM clearing_line l LEFT JOIN merchant m ON m.id = l.merchant_id
    WHERE l.cycle_id = $1 AND l.side = 'ACQUIRER'
    GROUP BY l.merchant_id, m.name, l.bank_code ORDER BY l.merchant_id LIMIT ${report_section_rows_max}`,
  /** Age as the exceptions queue counts it: whole days open, until resolved or until now. */
  exceptions: `
    SELECT type, state, CASE WHEN age <= 1 THEN '0-1' WHEN age <= 7 THEN '2-7' WHEN age <= 30 THEN '8-30' ELSE '>30' END AS bucket,
      count(*)::bigint AS n, coalesce(sum(engine_amount_fen), 0)::bigint AS engine_fen, coalesce(sum(other_amount_fen), 0)::bigint AS other_fen
    FROM (SELECT type, state, engine_amount_fen, other_amount_fen,
            greatest(0, floor(extract(epoch FROM (coalesce(resolved_at, $2::timestamptz) - opened_at)) * 1000 / ${day_ms}))::bigint AS age
          FROM recon_exception WHERE business_date = $1::date) x
    GROUP BY 1, 2, 3 ORDER BY 1, 2, min(age) LIMIT ${report_section_rows_max}`,
  adjustments: `
    SELECT a.id, a.exception_id, a.entry_id, a.total_fen, a.memo, a.proposed_by, a.decided_by, a.decided_at
    FROM adjustment a JOIN ledger_entry e ON e.id = a.entry_id
    WHERE a.state = 'APPROVED' AND e.business_date = $1::date
    ORDER BY a.decided_at, a.id LIMIT ${report_section_rows_max}`,
} as const;

/** Builds the report of one business date (404 when the date has no clearing cycle). */
export async function buildDailyReport(db: Queryable, businessDate: string, opts: { now?: Date } = {}): Promise<DailyReport> {
  const date = checkDate(businessDate);
  const now = opts.now ?? new Date();
  const c = (await db.query<{ id: string; state: string; transactions: bigint | null; lines: bigint | null; banks_net_fen: bigint | null; centre_net_fen: bigint | null }>(
    plans.cycle, [date])).rows[0];
  if (c === undefined) throw notFound('REPORT_NOT_FOUND', 'No clearing cycle has that business date.', { business_date: date });
  const cleared = cleared_states.includes(c.state);

  const [kinds, fees, banks, merchants, exceptions, adjustments] = await Promise.all([
    db.query<{ kind: string; n: bigint; amount_fen: bigint }>(plans.kinds, [date]),
    db.query<{ n: bigint; amount_fen: bigint }>(plans.fees, [date]),
    cleared ? db.query<{ bank_code: string; name: string; line_count: bigint; pay_fen: bigint; receive_fen: bigint; fee_fen: bigint; net_fen: bigint }>(plans.banks, [c.id]) : null,
    cleared ? db.query<{ merchant_id: string; name: string; bank_code: string; n: bigint; receive_fen: bigint; pay_fen: bigint; fee_fen: bigint }>(plans.merchants, [c.id]) : null,
    db.query<{ type: string; state: string; bucket: AgeBucket; n: bigint; engine_fen: bigint; other_fen: bigint }>(plans.exceptions, [date, now]),
    db.query<{ id: string; exception_id: bigint; entry_id: bigint; total_fen: bigint; memo: string; proposed_by: string; decided_by: string; decided_at: Date }>(plans.adjustments, [date]),
  ]);

  const report: DailyReport = {
    businessDate: date,
    generatedAt: now,
    cycle: { id: c.id, state: c.state, cleared, transactions: c.transactions, lines: c.lines, banksNetFen: c.banks_net_fen, centreNetFen: c.centre_net_fen },
    kinds: kinds.rows.map((r) => ({ kind: r.kind, count: r.n, amountFen: r.amount_fen })),
    totals: { count: 0n, amountFen: 0n },
    fees: { entries: fees.rows[0].n, amountFen: fees.rows[0].amount_fen },
    banks: (banks?.rows ?? []).map((r) => ({
      bankCode: r.bank_code, name: r.name, lineCount: r.line_count, payFen: r.pay_fen, receiveFen: r.receive_fen, feeFen: r.fee_fen, netFen: r.net_fen,
    })),
    merchants: (merchants?.rows ?? []).map((r) => ({
      merchantId: r.merchant_id, name: r.name, acquiringBank: r.bank_code, count: r.n, receiveFen: r.receive_fen, payFen: r.pay_fen, feeFen: r.fee_fen,
      netFen: r.receive_fen - r.pay_fen - r.fee_fen,
    })),
    exceptions: exceptions.rows.map((r) => ({ type: r.type, state: r.state, ageBucket: r.bucket, count: r.n, engineAmountFen: r.engine_fen, otherAmountFen: r.other_fen })),
    adjustments: adjustments.rows.map((r) => ({
      id: r.id, exceptionId: exceptionIdText(r.exception_id), entryId: r.entry_id, totalFen: r.total_fen, memo: r.memo,
      proposedBy: r.proposed_by, decidedBy: r.decided_by, decidedAt: r.decided_at,
    })),
  };
  for (const k of report.kinds) {
    report.totals.count += k.count;
    report.totals.amountFen += k.amountFen;
  }
  // The cycle's own invariant, re-read: the banks' nets and the centre's net sum to zero.
  if (cleared && c.banks_net_fen !== null && c.centre_net_fen !== null) {
    const banksNet = report.banks.reduce((a, b) => a + b.netFen, 0n);
    if (banksNet !== c.banks_net_fen || banksNet + c.centre_net_fen !== 0n) {
      throw new Error(`daily report ${date}: bank positions (${banksNet} fen) do not match the cycle summary`);
    }
  }
  return report;
}

const s = (v: bigint | null) => (v === null ? null : v.toString());

/** JSON view: amounts as strings of fen (exact beyond 2^53), times in ISO 8601. */
export function reportToJson(r: DailyReport): Record<string, unknown> {
  return {
    business_date: r.businessDate,
    generated_at: r.generatedAt.toISOString(),
    cycle: { id: r.cycle.id, state: r.cycle.state, cleared: r.cycle.cleared, transactions: s(r.cycle.transactions), lines: s(r.cycle.lines),
      banks_net_fen: s(r.cycle.banksNetFen), centre_net_fen: s(r.cycle.centreNetFen) },
    kinds: r.kinds.map((k) => ({ kind: k.kind, count: s(k.count), amount_fen: s(k.amountFen) })),
    totals: { count: s(r.totals.count), amount_fen: s(r.totals.amountFen) },
    fees: { entries: s(r.fees.entries), amount_fen: s(r.fees.amountFen) },
    banks: r.banks.map((b) => ({ bank_code: b.bankCode, name: b.name, line_count: s(b.lineCount), pay_fen: s(b.payFen), receive_fen: s(b.receiveFen), fee_fen: s(b.feeFen), net_fen: s(b.netFen) })),
    merchants: r.merchants.map((m) => ({ merchant_id: m.merchantId, name: m.name, acquiring_bank: m.acquiringBank, count: s(m.count), receive_fen: s(m.receiveFen),
      pay_fen: s(m.payFen), fee_fen: s(m.feeFen), net_fen: s(m.netFen) })),
    exceptions: r.exceptions.map((x) => ({ type: x.type, state: x.state, age_bucket: x.ageBucket, count: s(x.count), engine_amount_fen: s(x.engineAmountFen), other_amount_fen: s(x.otherAmountFen) })),
    adjustments: r.adjustments.map((a) => ({ id: a.id, exception_id: a.exceptionId, entry_id: s(a.entryId), total_fen: s(a.totalFen), memo: a.memo,
      proposed_by: a.proposedBy, decided_by: a.decidedBy, decided_at: a.decidedAt.toISOString() })),
  };
}

/** The CSV columns: one file, every section's rows under one header, told apart by `section`. */
export const report_csv_columns = [
  'section', 'key', 'name', 'ref', 'state', 'age_bucket', 'count', 'amount_fen', 'fee_fen', 'pay_fen', 'receive_fen', 'net_fen',
] as const;

/**
 * Free text a spreadsheet would run as a formula (=, +, -, @, tab, CR first) is prefixed with an
 * apostrophe (OWASP's CSV-injection advice); ids and amounts are never free text.
 */
function cellText(v: string): string {
  return /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
}

/**
 * One CSV file with a `section` column (report, kind, total, fees, bank, merchant, exception,
 * adjustment): one download, sorts and filters in any spreadsheet, and every row is
 * self-describing. Cells a section does not use are empty. Amounts are integer fen.
 */
export function reportToCsv(r: DailyReport): string {
  type Cell = string | null;
  const rows: Cell[][] = [];
  const row = (c: Partial<Record<(typeof report_csv_columns)[number], Cell>>) => rows.push(report_csv_columns.map((k) => c[k] ?? null));
  row({ section: 'report', key: r.businessDate, name: r.cycle.id, ref: r.generatedAt.toISOString(), state: r.cycle.state,
    count: s(r.cycle.transactions), net_fen: s(r.cycle.banksNetFen) });
  for (const k of r.kinds) row({ section: 'kind', key: k.kind, count: s(k.count), amount_fen: s(k.amountFen) });
  row({ section: 'total', key: 'ALL', count: s(r.totals.count), amount_fen: s(r.totals.amountFen) });
  row({ section: 'fees', key: 'CLEARING_FEE', count: s(r.fees.entries), fee_fen: s(r.fees.amountFen) });
  for (const b of r.banks) {
    row({ section: 'bank', key: b.bankCode, name: cellText(b.name), count: s(b.lineCount), fee_fen: s(b.feeFen), pay_fen: s(b.payFen), receive_fen: s(b.receiveFen), net_fen: s(b.netFen) });
  }
  for (const m of r.merchants) {
    row({ section: 'merchant', key: m.merchantId, name: cellText(m.name), ref: m.acquiringBank, count: s(m.count), amount_fen: s(m.receiveFen - m.payFen),
      fee_fen: s(m.feeFen), pay_fen: s(m.payFen), receive_fen: s(m.receiveFen), net_fen: s(m.netFen) });
  }
  for (const x of r.exceptions) {
    row({ section: 'exception', key: x.type, state: x.state, age_bucket: x.ageBucket, count: s(x.count), amount_fen: s(x.engineAmountFen) });
  }
  for (const a of r.adjustments) {
    row({ section: 'adjustment', key: a.id, name: cellText(a.memo), ref: a.exceptionId, state: 'APPROVED', count: '1', amount_fen: s(a.totalFen) });
  }
  return stringify(rows, { header: true, columns: [...report_csv_columns], record_delimiter: '\r\n', quoted_match: /[",\r\n]/ });
}

const html_escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Every value put into the page goes through here: names and memos are typed by people. */
export function escapeHtml(v: string): string {
  return v.replace(/[&<>"']/g, (ch) => html_escapes[ch]);
}

/** Fen as yuan with thousands separators, exactly (no float). */
export function formatYuan(fen: bigint | null): string {
  if (fen === null) return '';
  const neg = fen < 0n;
  const abs = neg ? -fen : fen;
  const yuan = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${neg ? '-' : ''}${yuan}.${(abs % 100n).toString().padStart(2, '0')}`;
}

const fmtCount = (n: bigint | null) => (n === null ? '' : n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ','));

function table(caption: string, head: string[], body: string[][], numericFrom: number, empty: string, foot: string[][] = []): string {
  const th = head.map((h, i) => `<th${i >= numericFrom ? ' class="n"' : ''}>${escapeHtml(h)}</th>`).join('');
  const rows = (rs: string[][]) => rs.map((cells) => `<tr>${cells.map((c, i) => `<td${i >= numericFrom ? ' class="n"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  const tr = body.length === 0 ? `<tr><td colspan="${head.length}" class="empty">${escapeHtml(empty)}</td></tr>` : rows(body);
  const tf = foot.length === 0 ? '' : `<tfoot>\n${rows(foot)}\n</tfoot>`;
  return `<section><h2>${escapeHtml(caption)}</h2><table><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody>${tf}</table></section>`;
}

/** A self-contained printable page: inline CSS (screen and print), no scripts, every value escaped. */
export function reportToHtml(r: DailyReport): string {
  const notCleared = `The cycle is ${r.cycle.state}: positions appear once it is cleared.`;
  const sections = [
    table('Transactions by kind', ['Kind', 'Count', 'Amount (CNY)'], r.kinds.map((k) => [k.kind, fmtCount(k.count), formatYuan(k.amountFen)]),
      1, 'No transactions.', [['All kinds', fmtCount(r.totals.count), formatYuan(r.totals.amountFen)]]),
    table('Fees', ['Fee entries', 'Fees (CNY)'], [[fmtCount(r.fees.entries), formatYuan(r.fees.amountFen)]], 0, ''),
    table('Net positions per bank', ['Bank', 'Name', 'Lines', 'Pay (CNY)', 'Receive (CNY)', 'Fees (CNY)', 'Net (CNY)'],
      r.banks.map((b) => [b.bankCode, b.name, fmtCount(b.lineCount), formatYuan(b.payFen), formatYuan(b.receiveFen), formatYuan(b.feeFen), formatYuan(b.netFen)]),
      2, notCleared),
    table('Merchants', ['Merchant', 'Name', 'Acquiring bank', 'Transactions', 'Received (CNY)', 'Paid (CNY)', 'Fees (CNY)', 'Net (CNY)'],
      r.merchants.map((m) => [m.merchantId, m.name, m.acquiringBank, fmtCount(m.count), formatYuan(m.receiveFen), formatYuan(m.payFen), formatYuan(m.feeFen), formatYuan(m.netFen)]),
      3, notCleared),
    table('Reconciliation exceptions', ['Type', 'State', 'Age (days)', 'Count', 'Engine amount (CNY)', 'Other amount (CNY)'],
      r.exceptions.map((x) => [x.type, x.state, x.ageBucket, fmtCount(x.count), formatYuan(x.engineAmountFen), formatYuan(x.otherAmountFen)]),
      3, 'No exceptions for this date.'),
    table('Adjustments posted', ['Adjustment', 'Exception', 'Memo', 'Proposed by', 'Approved by', 'Ledger entry', 'Amount (CNY)'],
      r.adjustments.map((a) => [a.id, a.exceptionId, a.memo, a.proposedBy, a.decidedBy, a.entryId.toString(), formatYuan(a.totalFen)]),
      5, 'No adjustments posted.'),
  ].join('\n');
  const title = `Daily report ${r.businessDate}`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; color: #111; margin: 2rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.05rem; margin: 1.5rem 0 .4rem; }
  .meta { color: #555; margin: 0 0 1rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
  th { background: #f2f2f2; }
  tfoot td { font-weight: 600; }
  td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  td.empty { color: #777; font-style: italic; }
  @media print {
    body { margin: 0; font-size: 10pt; }
    th { background: none; }
    section { break-inside: avoid; }
    thead { display: table-header-group; }
    @page { size: A4 landscape; margin: 12mm; }
  }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">Cycle ${escapeHtml(r.cycle.id)} · ${escapeHtml(r.cycle.state)} · generated ${escapeHtml(r.generatedAt.toISOString())}${
  r.cycle.cleared ? ` · ${escapeHtml(fmtCount(r.cycle.transactions))} transactions cleared, banks' net ${escapeHtml(formatYuan(r.cycle.banksNetFen))} CNY` : ''}</p>
${sections}
</body>
</html>
`;
}
