/**
 * A small seeded PRNG for generated data (the demo city, tests). Integer-only arithmetic
 * (Math.imul, shifts), so the same seed gives the same numbers on every platform and Node
 * version; never used for anything secret.
 */

/** Mixes 32-bit words into one well-spread 32-bit hash (murmur3's finalizer per word). */
export function hash32(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    let k = Math.imul(w >>> 0, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** mulberry32: 32 bits of state, fast, good enough for test data. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform in 0 .. 2^32 - 1. */
  u32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform integer in lo..hi inclusive (hi - lo < 2^32). */
  int(lo: number, hi: number): number {
    const span = hi - lo + 1;
    // Two draws make 53 random bits, so the modulo bias is negligible for any span used here.
    const r = this.u32() * 2 ** 21 + (this.u32() >>> 11);
    return lo + (r % span);
  }

  /** True with probability `perMille` / 1000. */
  chancePerMille(perMille: number): boolean {
    return this.u32() % 1000 < perMille;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)];
  }

  /** An index chosen with the given integer weights. */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let r = this.int(0, total - 1);
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i];
      if (r < 0) return i;
    }
    return weights.length - 1;
  }

  /** A string of `n` decimal digits. */
  digits(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += String(this.u32() % 10);
    return s;
  }
}
