/**
 * The daily report of a business date (finance, auditor), as JSON, CSV or a printable HTML page:
 * `?format=` wins, else the Accept header, else JSON. Each answer names a download filename.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { buildDailyReport, reportToCsv, reportToHtml, reportToJson } from '../../recon/reports.ts';
import { error_responses, type AppDeps } from '../context.ts';

export const report_formats = ['json', 'csv', 'html'] as const;
type Format = (typeof report_formats)[number];

const fen = { type: ['string', 'null'] } as const;
const report_schema = {
  type: 'object',
  properties: {
    business_date: { type: 'string' }, generated_at: { type: 'string' },
    cycle: { type: 'object', properties: {
      id: { type: 'string' }, state: { type: 'string' }, cleared: { type: 'boolean' }, transactions: fen, lines: fen, banks_net_fen: fen, centre_net_fen: fen } },
    kinds: { type: 'array', items: { type: 'object', properties: { kind: { type: 'string' }, count: { type: 'string' }, amount_fen: { type: 'string' } } } },
    totals: { type: 'object', properties: { count: { type: 'string' }, amount_fen: { type: 'string' } } },
    fees: { type: 'object', properties: { entries: { type: 'string' }, amount_fen: { type: 'string' } } },
    banks: { type: 'array', items: { type: 'object', properties: {
      bank_code: { type: 'string' }, name: { type: 'string' }, line_count: { type: 'string' }, pay_fen: { type: 'string' }, receive_fen: { type: 'string' },
      fee_fen: { type: 'string' }, net_fen: { type: 'string' } } } },
    merchants: { type: 'array', items: { type: 'object', properties: {
      merchant_id: { type: 'string' }, name: { type: 'string' }, acquiring_bank: { type: 'string' }, count: { type: 'string' }, receive_fen: { type: 'string' },
      pay_fen: { type: 'string' }, fee_fen: { type: 'string' }, net_fen: { type: 'string' } } } },
    exceptions: { type: 'array', items: { type: 'object', properties: {
      type: { type: 'string' }, state: { type: 'string' }, age_bucket: { type: 'string' }, count: { type: 'string' },
      engine_amount_fen: { type: 'string' }, other_amount_fen: { type: 'string' } } } },
    adjustments: { type: 'array', items: { type: 'object', properties: {
      id: { type: 'string' }, exception_id: { type: 'string' }, entry_id: { type: 'string' }, total_fen: { type: 'string' }, memo: { type: 'string' },
      proposed_by: { type: 'string' }, decided_by: { type: 'string' }, decided_at: { type: 'string' } } } },
  },
} as const;

/** `?format=` first; else the first of CSV or HTML the Accept header names; else JSON. */
export function formatOf(req: FastifyRequest): Format {
  const q = (req.query as { format?: Format }).format;
  if (q !== undefined) return q;
  const accept = String(req.headers.accept ?? '').toLowerCase();
  const csv = accept.indexOf('text/csv');
  const html = accept.indexOf('text/html');
  if (csv >= 0 && (html < 0 || csv < html)) return 'csv';
  if (html >= 0) return 'html';
  return 'json';
}

export async function reportRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  app.get('/v1/reports/daily/:date', {
    config: { roles: ['finance', 'auditor'] },
    schema: {
      tags: ['reconciliation'], security: [{ bearer: [] }],
      summary: 'The daily report of a business date: entries by kind, fees, net positions per bank, merchants, exceptions by type, state and age, adjustments posted. JSON, CSV (one file, a `section` column) or printable HTML, by ?format= or Accept.',
      params: { type: 'object', required: ['date'], properties: { date: { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' } } },
      querystring: { type: 'object', additionalProperties: false, properties: { format: { type: 'string', enum: [...report_formats] } } },
      response: { 200: report_schema, ...error_responses },
    },
  }, async (req, reply) => {
    const { date } = req.params as { date: string };
    const format = formatOf(req);
    const report = await buildDailyReport(deps.db, date, { now: deps.now() });
    const filename = `daily-report-${report.businessDate}.${format}`;
    reply.header('cache-control', 'no-store');
    reply.header('vary', 'accept');
    if (format === 'csv') {
      reply.header('content-type', 'text/csv; charset=utf-8');
      reply.header('content-disposition', `attachment; filename="${filename}"`);
      return reply.send(reportToCsv(report));
    }
    if (format === 'html') {
      reply.header('content-type', 'text/html; charset=utf-8');
      reply.header('content-disposition', `inline; filename="${filename}"`);
      // The page needs nothing but its own inline styles: no scripts, no outside requests.
      reply.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
      reply.header('x-content-type-options', 'nosniff');
      return reply.send(reportToHtml(report));
    }
    reply.header('content-disposition', `attachment; filename="${filename}"`);
    return reportToJson(report);
  });
}
