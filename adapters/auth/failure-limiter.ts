/**
 * Failed-authentication limiter: a sliding window log per key (a client IP, or an API key id).
 * A key that failed `failuresMax` times within `windowMs` is refused until its oldest failure in
 * the window ages out, without the token being checked at all: guessing costs the guesser time,
 * and a flood of bad tokens costs the database nothing.
 *
 * Only failures are recorded; a success never clears a key's log (an attacker who also holds one
 * valid key must not be able to launder guesses through it, nor another IP's count).
 *
 * Memory is bounded twice: a key keeps at most `failuresMax` timestamps (older ones cannot matter
 * once the newest `failuresMax` are known), and past `keysMax` keys the least recently failed are
 * dropped (dropping forgives a key early, which is the safe direction for availability).
 * In memory, per engine node, like the public routes' token buckets. Pure: the caller passes the time.
 */
export interface FailureLimits {
  failuresMax: number;
  windowMs: number;
  keysMax: number;
}

export class FailureWindows {
  /** Insertion order is recency of the last failure: the first key is the one to evict. */
  readonly #log = new Map<string, number[]>();

  constructor(readonly limits: FailureLimits) {
    if (!Number.isInteger(limits.failuresMax) || limits.failuresMax < 1 || !(limits.windowMs >= 1) || !Number.isInteger(limits.keysMax) || limits.keysMax < 1) {
      throw new RangeError('failure limits must be positive integers');
    }
  }

  /** 0 when `key` may try at `nowMs`, else milliseconds until it may. */
  blockedForMs(key: string, nowMs: number): number {
    const times = this.#log.get(key);
    if (times === undefined) return 0;
    const live = this.#prune(key, times, nowMs);
    if (live.length < this.limits.failuresMax) return 0;
    return Math.max(1, live[0] + this.limits.windowMs - nowMs);
  }

  recordFailure(key: string, nowMs: number): void {
    const times = this.#log.get(key) ?? [];
    this.#log.delete(key);
    const live = times.filter((t) => t > nowMs - this.limits.windowMs);
    live.push(nowMs);
    if (live.length > this.limits.failuresMax) live.splice(0, live.length - this.limits.failuresMax);
    this.#log.set(key, live);
    while (this.#log.size > this.limits.keysMax) {
      this.#log.delete(this.#log.keys().next().value as string);
    }
  }

  get size(): number {
    return this.#log.size;
  }

  #prune(key: string, times: number[], nowMs: number): number[] {
    const live = times.filter((t) => t > nowMs - this.limits.windowMs);
    if (live.length === 0) this.#log.delete(key);
    else if (live.length !== times.length) this.#log.set(key, live);
    return live;
  }
}
