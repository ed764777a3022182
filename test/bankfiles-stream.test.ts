/**
 * detail.csv is streamed: writing 2,000,000 lines keeps the heap flat (the spec's "files of
 * tens of millions of lines ... memory does not grow with the file").
 */
import { createWriteStream } from 'node:fs';
import { devNull } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, it } from 'vitest';
import { writeDetailCsv, type DetailLine } from '../adapters/bankfiles/index.ts';

const LINES = 2_000_000;
const SAMPLE_EVERY_LINES = 250_000;
const MEMORY_GROWTH_BYTES_MAX = 50 * 1024 * 1024;

/** JS heap plus Buffers' memory outside it: a file buffered as Buffers would only show there. */
function retainedBytes(): number {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

/** A full GC on demand, so samples measure what is retained, not garbage not yet collected. */
function exposeGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

it('writes 2,000,000 lines with flat memory', { timeout: 120_000 }, async () => {
  const gc = exposeGc();
  const kinds = ['PURSE_PURCHASE', 'QR_PAYMENT', 'MEDICAL_SELF_PAY'] as const;
  let peakBytes = 0;
  async function* lines(): AsyncGenerator<DetailLine> {
    for (let i = 0; i < LINES; i++) {
      if (i % SAMPLE_EVERY_LINES === 0) {
        gc();
        peakBytes = Math.max(peakBytes, retainedBytes());
      }
      yield {
        txnId: `txn_${i}`,
        kind: kinds[i % 3],
        side: i % 2 === 0 ? 'ACQUIRER' : 'ISSUER',
        cardNo: '6212345678901234',
        merchantId: `mer_${i % 5000}`,
        terminalId: `T${i % 100_000}`,
        txnTime: '2026-11-28T07:30:15+08:00',
        amountFen: 1000n,
        feeFen: 6n,
        direction: i % 4 === 0 ? 'PAY' : 'RECEIVE',
      };
    }
  }

  gc();
  const baselineBytes = retainedBytes();
  const started = process.hrtime.bigint();
  const summary = await writeDetailCsv(lines(), createWriteStream(devNull));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  gc();
  peakBytes = Math.max(peakBytes, retainedBytes());

  expect(summary.lineCount).toBe(LINES);
  // A quarter of the lines are PAY: ACQUIRER lines net 994, ISSUER lines 1000.
  expect(summary.controlSums.amountFen).toBe(1000n * BigInt(LINES));
  expect(summary.bytes).toBeGreaterThan(LINES * 100); // the whole file passed through
  const growthBytes = peakBytes - baselineBytes;
  console.info(
    `detail.csv: ${LINES} lines in ${seconds.toFixed(2)} s (${Math.round(LINES / seconds)} lines/s), ` +
      `${summary.bytes} bytes, peak memory growth ${(growthBytes / 1024 / 1024).toFixed(1)} MiB`,
  );
  expect(growthBytes).toBeLessThan(MEMORY_GROWTH_BYTES_MAX);
});
