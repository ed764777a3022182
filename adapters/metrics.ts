/** Prometheus metrics: default process metrics plus the engine's own, in one registry. */
import client from 'prom-client';
import type { LedgerObserver } from '../ledger/index.ts';
import type { BatchObserver } from './payments/batcher.ts';

export interface Metrics {
  registry: client.Registry;
  httpRequestDuration: client.Histogram<'method' | 'route' | 'status'>;
  ledgerEntriesPosted: client.Counter<'kind'>;
  ledgerBatchDuration: client.Histogram<never>;
  ledgerBatchEntries: client.Histogram<never>;
  paymentBatchDuration: client.Histogram<'stage'>;
  paymentBatchItems: client.Histogram<'stage'>;
}

/** The online payment pipeline's batched stages (see adapters/payments/batcher.ts). */
export type PaymentStage = 'facts' | 'bank' | 'post';

export function createMetrics(): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  return {
    registry,
    httpRequestDuration: new client.Histogram({
      name: 'onecard_http_request_duration_seconds', help: 'HTTP request latency by route and status.',
      labelNames: ['method', 'route', 'status'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    ledgerEntriesPosted: new client.Counter({
      name: 'onecard_ledger_entries_posted_total', help: 'Journal entries written by ledger batch statements, by kind (replays excluded; a batch whose enclosing transaction later rolls back is still counted).',
      labelNames: ['kind'], registers: [registry],
    }),
    ledgerBatchDuration: new client.Histogram({
      name: 'onecard_ledger_batch_duration_seconds', help: 'Time of one ledger batch statement (entries, lines and balance triggers).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry],
    }),
    ledgerBatchEntries: new client.Histogram({
      name: 'onecard_ledger_batch_entries', help: 'Entries per ledger batch.',
      buckets: [1, 10, 100, 1000, 5000, 10000], registers: [registry],
    }),
    // A stage runs one batch at a time: the rate of its duration sum is the fraction of the time
    // it is busy, and a stage busy nearly all the time is where payments queue.
    paymentBatchDuration: new client.Histogram({
      name: 'onecard_payment_batch_duration_seconds',
      help: 'Time of one batch of a QR payment stage: facts (one read), bank (the simulated bank deciding), post (claim, entries, commit).',
      labelNames: ['stage'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [registry],
    }),
    paymentBatchItems: new client.Histogram({
      name: 'onecard_payment_batch_items', help: 'Payments (or authorizations) per batch of a QR payment stage.',
      labelNames: ['stage'], buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500], registers: [registry],
    }),
  };
}

/** Feeds one payment stage's batches into the payment batch metrics. */
export function paymentBatchObserver(m: Metrics, stage: PaymentStage): BatchObserver {
  const duration = m.paymentBatchDuration.labels(stage);
  const items = m.paymentBatchItems.labels(stage);
  return (batch) => {
    duration.observe(batch.seconds);
    items.observe(batch.items);
  };
}

/** Feeds every ledger batch, whoever posts it, into the ledger metrics. */
export function ledgerObserver(m: Metrics): LedgerObserver {
  return {
    batchPosted({ entries, seconds, writtenByKind }) {
      m.ledgerBatchDuration.observe(seconds);
      m.ledgerBatchEntries.observe(entries);
      for (const [kind, n] of writtenByKind) m.ledgerEntriesPosted.inc({ kind }, n);
    },
  };
}
