/**
 * Token buckets per key (a client IP) for public routes: each key holds up to `capacity` tokens,
 * refilled one per `refillMs`; a request spends one or is refused with the wait until the next.
 * In memory, per engine node: a determined abuser spread over nodes gets N times the rate, which
 * is still bounded; the point is to stop a flood, not to meter exactly. The map is bounded too:
 * past `keysMax` keys the oldest-touched are dropped (a full bucket is what they would refill to).
 * Pure: the caller passes the time.
 */
export interface BucketLimits {
  capacity: number;
  refillMs: number;
  keysMax: number;
}

export class TokenBuckets {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly limits: BucketLimits) {
    if (!(limits.capacity >= 1) || !(limits.refillMs >= 1) || !(limits.keysMax >= 1)) throw new RangeError('bucket limits must be positive');
  }

  /** Spends a token of `key` at `nowMs`: 0 when allowed, else milliseconds until one is available. */
  take(key: string, nowMs: number): number {
    const { capacity, refillMs } = this.limits;
    const b = this.#buckets.get(key);
    let tokens = capacity;
    let at = nowMs;
    if (b !== undefined) {
      const elapsed = Math.max(0, nowMs - b.at);
      const refilled = Math.floor(elapsed / refillMs);
      tokens = Math.min(capacity, b.tokens + refilled);
      // Keep the remainder of a partly elapsed refill period, so steady callers are not short-changed.
      at = tokens === capacity ? nowMs : b.at + refilled * refillMs;
      this.#buckets.delete(key);
    }
    if (tokens < 1) {
      this.#buckets.set(key, { tokens, at });
      return Math.max(1, at + refillMs - nowMs);
    }
    this.#buckets.set(key, { tokens: tokens - 1, at });
    while (this.#buckets.size > this.limits.keysMax) {
      const oldest = this.#buckets.keys().next().value as string;
      this.#buckets.delete(oldest);
    }
    return 0;
  }

  get size(): number {
    return this.#buckets.size;
  }
}
