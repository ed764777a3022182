/**
 * The natural batcher behind the payment pipeline: items submitted in one turn of the event loop
 * when nothing runs start a batch together at once; items arriving meanwhile go together in the
 * next; answers reach the right
 * callers; a failed batch fails only its own items; limits hold (batch size, batches in flight,
 * queue length with a stable 503 refusal).
 */
import { describe, expect, it } from 'vitest';
import { Batcher, QueueFull, type Settled } from '../adapters/payments/index.ts';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => undefined as void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

describe('Batcher', () => {
  it('runs the items of one turn together at once, then everything that arrived meanwhile as one batch', async () => {
    const batches: number[][] = [];
    const gate = deferred();
    const b = new Batcher<number, number>(async (items) => {
      batches.push(items);
      if (batches.length === 1) await gate.promise;
      return items.map((x) => ({ ok: true, value: x * 10 }));
    }, { items_max: 100, batches_in_flight_max: 1, queue_items_max: 1000 });
    const first = [1, 2].map((x) => b.submit(x));
    await new Promise((r) => setTimeout(r, 5));
    expect(batches).toEqual([[1, 2]]);
    const rest = [3, 4].map((x) => b.submit(x));
    await new Promise((r) => setTimeout(r, 5));
    const late = b.submit(5);
    await new Promise((r) => setTimeout(r, 5));
    expect(batches).toEqual([[1, 2]]);
    gate.resolve();
    expect(await Promise.all([...first, ...rest, late])).toEqual([10, 20, 30, 40, 50]);
    expect(batches).toEqual([[1, 2], [3, 4, 5]]);
  });

  it('starts the next batch before it hands out the answers of the one that ended', async () => {
    const events: string[] = [];
    const gate = deferred();
    const b = new Batcher<number, number>(async (items) => {
      events.push(`start ${items.join(',')}`);
      if (items[0] === 1) await gate.promise;
      return items.map((x) => ({ ok: true, value: x }));
    }, { items_max: 100, batches_in_flight_max: 1, queue_items_max: 1000 });
    const first = b.submit(1).then((x) => events.push(`answer ${x}`));
    await new Promise((r) => setTimeout(r, 5));
    const waiting = [2, 3].map((x) => b.submit(x).then((y) => events.push(`answer ${y}`)));
    await new Promise((r) => setTimeout(r, 5));
    gate.resolve();
    await Promise.all([first, ...waiting]);
    expect(events).toEqual(['start 1', 'start 2,3', 'answer 1', 'answer 2', 'answer 3']);
  });

  it('answers each item with its own result, and a failed batch fails only its items', async () => {
    let call = 0;
    const b = new Batcher<number, number>(async (items) => {
      call++;
      if (call === 2) throw new Error('database gone');
      return items.map((x): Settled<number> => (x % 2 === 0 ? { ok: true, value: x } : { ok: false, error: new Error(`odd ${x}`) }));
    }, { items_max: 3, batches_in_flight_max: 1, queue_items_max: 1000 });
    const results = await Promise.allSettled([1, 2, 3, 4, 5, 6, 7].map((x) => b.submit(x)));
    // Batch 1 = [1, 2, 3], batch 2 = [4, 5, 6] (fails as a whole), batch 3 = [7].
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
      'odd 1', 2, 'odd 3', 'database gone', 'database gone', 'database gone', 'odd 7',
    ]);
  });

  it('keeps its limits: batch size, batches in flight, queue length (ENGINE_BUSY, 503)', async () => {
    let running = 0;
    let maxRunning = 0;
    const sizes: number[] = [];
    const b = new Batcher<number, number>(async (items) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      sizes.push(items.length);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return items.map((x) => ({ ok: true, value: x }));
    }, { items_max: 4, batches_in_flight_max: 2, queue_items_max: 20 });
    // Submitted in one turn, all wait in the queue until it ends: the 21st is refused.
    const accepted = Array.from({ length: 20 }, (_, i) => b.submit(i));
    const refused = b.submit(99);
    await expect(refused).rejects.toBeInstanceOf(QueueFull);
    await expect(refused).rejects.toMatchObject({ code: 'ENGINE_BUSY', status: 503 });
    expect(await Promise.all(accepted)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(maxRunning).toBe(2);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4);
    expect(sizes.reduce((a, x) => a + x, 0)).toBe(20);
  });

  it('tells its observer of every batch when it ends, answered or failed: its size and how long it ran', async () => {
    const seen: { items: number; seconds: number }[] = [];
    let call = 0;
    const b = new Batcher<number, number>(async (items) => {
      call++;
      await new Promise((r) => setTimeout(r, 20));
      if (call === 2) throw new Error('database gone');
      return items.map((x) => ({ ok: true, value: x }));
    }, { items_max: 3, batches_in_flight_max: 1, queue_items_max: 1000 }, (batch) => seen.push(batch));
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((x) => b.submit(x)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected']);
    expect(seen.map((s) => s.items)).toEqual([3, 2]);
    // Each ran for its 20 ms timer (timers may fire a little early, never much).
    for (const s of seen) expect(s.seconds).toBeGreaterThan(0.015);
  });

  it('refuses nonsensical limits', () => {
    expect(() => new Batcher(async () => [], { items_max: 0, batches_in_flight_max: 1, queue_items_max: 1 })).toThrow(RangeError);
  });
});
