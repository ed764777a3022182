/**
 * Natural batching for online requests. Each online payment arrives alone, but at hundreds a
 * second many are in flight together; the database work of those that arrive while a batch is
 * running is done together in the next one (one set-based statement, one commit), which is what
 * makes 1,000 payments a second fit two cores (DESIGN.md: batches, set-based).
 *
 * No timer: an item that arrives when nothing is running starts a batch at the end of the current
 * turn of the event loop (setImmediate), so at low load a request waits for nobody, and the items
 * submitted in the same turn (the answers of one batch of the stage before, the requests read in
 * one poll) go together instead of the first alone and the rest a whole batch later. A batch
 * that ends starts the next at once with what arrived meanwhile, before it hands out its own
 * answers. Under load the batches grow by themselves. At most `batches_in_flight_max` run at a
 * time, each of at most `items_max` items.
 */
import { DomainError } from '../../engine/errors.ts';

export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

export interface BatcherLimits {
  /** Items in one batch (bounds one statement's arrays and one transaction's locks). */
  items_max: number;
  /** Batches running at once (bounds connections taken from the pool). */
  batches_in_flight_max: number;
  /** Items waiting for a batch; beyond it, submissions are refused at once (back-pressure). */
  queue_items_max: number;
}

/** 503: the node is saturated; the caller retries later (nothing was done). */
export class QueueFull extends DomainError {
  constructor() {
    super('ENGINE_BUSY', 503, 'Too many requests are waiting for the database on this engine node; nothing was done. Retry shortly.');
  }
}

/** Told of every batch when it ends (answered or failed): how many items, how long it ran. */
export type BatchObserver = (batch: { items: number; seconds: number }) => void;

export class Batcher<I, O> {
  readonly #run: (items: I[]) => Promise<Settled<O>[]>;
  readonly #limits: BatcherLimits;
  readonly #observe: BatchObserver | undefined;
  readonly #queue: Waiting<I, O>[] = [];
  #inFlight = 0;
  #pumpScheduled = false;

  /** `run` answers each item in order; its own failure fails every item of the batch. */
  constructor(run: (items: I[]) => Promise<Settled<O>[]>, limits: BatcherLimits, observe?: BatchObserver) {
    if (limits.items_max < 1 || limits.batches_in_flight_max < 1 || limits.queue_items_max < 1) throw new RangeError('batcher limits must be >= 1');
    this.#run = run;
    this.#limits = limits;
    this.#observe = observe;
  }

  submit(item: I): Promise<O> {
    if (this.#queue.length >= this.#limits.queue_items_max) return Promise.reject(new QueueFull());
    return new Promise<O>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#schedulePump();
    });
  }

  #schedulePump(): void {
    if (this.#pumpScheduled || this.#queue.length === 0 || this.#inFlight >= this.#limits.batches_in_flight_max) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inFlight < this.#limits.batches_in_flight_max && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#limits.items_max);
      this.#inFlight++;
      const started = performance.now();
      this.#run(batch.map((w) => w.item)).then(
        (results) => this.#finish(batch, started, { ok: true, value: results }),
        (error: unknown) => this.#finish(batch, started, { ok: false, error }),
      ).catch((e: unknown) => {
        for (const w of batch) w.reject(e);
      });
    }
  }

  /**
   * A batch has ended: the next one (the items that arrived meanwhile) starts first, and only then
   * are this one's answers handed out, so the stage works on the next batch while this node
   * writes the answers of the last (otherwise the stage would wait for those writes and for the
   * rest of the event loop's turn).
   */
  #finish(batch: Waiting<I, O>[], started: number, outcome: Settled<Settled<O>[]>): void {
    const seconds = (performance.now() - started) / 1000;
    this.#inFlight--;
    this.#pump();
    this.#observe?.({ items: batch.length, seconds });
    if (!outcome.ok) {
      for (const w of batch) w.reject(outcome.error);
    } else if (outcome.value.length !== batch.length) {
      const error = new Error(`a batch of ${batch.length} was answered with ${outcome.value.length} results`);
      for (const w of batch) w.reject(error);
    } else {
      for (let i = 0; i < batch.length; i++) {
        const r = outcome.value[i];
        if (r.ok) batch[i].resolve(r.value);
        else batch[i].reject(r.error);
      }
    }
  }
}
