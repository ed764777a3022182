/**
 * Authenticated principals kept for a moment, so a busy caller (a hospital's scanner sending
 * hundreds of QR payments a second under one key) costs the database one key look-up per
 * `ttl_ms`, not one per request: at 1,000 payments a second that look-up was a third of all
 * round trips to Postgres.
 *
 * Revocation still takes effect at once, on every node: `revokeApiKey` sends a notification in
 * its transaction (delivered at commit), and each engine node listens for it and forgets the key
 * (`listenForRevocations`). The TTL bounds what a lost notification could cost; while the
 * listening connection is down the cache is not used at all, so it can never serve a key whose
 * revocation it might have missed.
 *
 * Keyed by the SHA-256 of the whole token: the cache never holds a token, and a wrong secret for
 * a cached key id misses and goes to the database (and the failure limiter) like any other.
 *
 * A busy key never waits for its look-up (`resolve`): a request that finds its entry past
 * its refresh time (a random point between half and four fifths of the TTL, so the keys looked
 * up together do not come due together) is answered from memory while one look-up refreshes the
 * entry in the background; concurrent misses of one token share one look-up. Measured without
 * this: at 1,000 payments a second over 34 keys, every key expired at the same instant every five
 * seconds, the burst of look-ups took pool connections ahead of payment work, and latency rose by
 * a hundred milliseconds at each expiry. A revocation starts afresh: a request that arrives
 * after it never joins a look-up that began before it.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Principal } from './api-keys.ts';

/** The channel `revokeApiKey` notifies on; the payload is the key id. */
export const revocation_channel = 'onecard_api_key_revoked';
/** How long a principal is served from memory at most. */
export const principal_cache_ttl_ms = 5_000;
/** Distinct tokens remembered at once (keys in use by one node; far above any real count). */
export const principal_cache_entries_max = 10_000;
/** Wait before listening again after the listening connection failed. */
const relisten_delay_ms = 1_000;

interface Cached {
  principal: Principal;
  /** From then on, a hit also starts a look-up that refreshes the entry. */
  refreshAtMs: number;
  expiresAtMs: number;
}

/** The refresh time, as a share of the TTL after the look-up: uniformly between these. */
const refresh_share_min = 0.5;
const refresh_share_max = 0.8;

export class PrincipalCache {
  readonly #byToken = new Map<string, Cached>();
  readonly #now: () => number;
  #enabled: boolean;
  /** Bumped by every revocation: a look-up that raced with one must not be cached. */
  #generation = 0;
  /** Look-ups under way, by token digest (all begun in the current generation). */
  readonly #inFlight = new Map<string, Promise<Principal | null>>();

  /** `enabled` false: every get misses until `enable()` (the listener is not yet connected). */
  constructor(options: { now?: () => number; enabled?: boolean } = {}) {
    this.#now = options.now ?? (() => Date.now());
    this.#enabled = options.enabled ?? true;
  }

  static tokenDigest(token: string): string {
    return crypto.createHash('sha256').update(token).digest('base64');
  }

  get(token: string): Principal | null {
    if (!this.#enabled) return null;
    return this.#fresh(PrincipalCache.tokenDigest(token))?.principal ?? null;
  }

  /**
   * The principal of `token`: from memory (past the entry's refresh time, `lookUp` then runs once
   * in the background), or from `lookUp` (shared with every concurrent miss of the same token),
   * remembered when found.
   */
  resolve(token: string, lookUp: () => Promise<Principal | null>): Promise<Principal | null> {
    if (!this.#enabled) return lookUp();
    const digest = PrincipalCache.tokenDigest(token);
    const hit = this.#fresh(digest);
    if (hit !== null) {
      if (hit.refreshAtMs <= this.#now() && !this.#inFlight.has(digest)) {
        // Answered from memory; a failed refresh leaves the entry to expire (the next miss retries).
        this.#lookUp(token, digest, lookUp).catch(() => undefined);
      }
      return Promise.resolve(hit.principal);
    }
    return this.#inFlight.get(digest) ?? this.#lookUp(token, digest, lookUp);
  }

  /** One look-up of `token`, shared by every concurrent miss, its answer remembered (or forgotten). */
  #lookUp(token: string, digest: string, lookUp: () => Promise<Principal | null>): Promise<Principal | null> {
    const generation = this.#generation;
    const inFlight = this.#inFlight;
    const p = lookUp().then((principal) => {
      if (principal) this.set(token, principal, generation);
      else if (generation === this.#generation) this.#byToken.delete(digest);
      return principal;
    }).finally(() => {
      if (inFlight.get(digest) === p) inFlight.delete(digest);
    });
    inFlight.set(digest, p);
    return p;
  }

  /** The unexpired entry of a token digest (an expired one is dropped). */
  #fresh(digest: string): Cached | null {
    const hit = this.#byToken.get(digest);
    if (hit === undefined) return null;
    if (hit.expiresAtMs <= this.#now()) {
      this.#byToken.delete(digest);
      return null;
    }
    return hit;
  }

  /** Read before looking a key up in the database; pass it to `set`. */
  get generation(): number {
    return this.#generation;
  }

  /** Remembers a principal looked up when `generation` was current (else it may be stale: dropped). */
  set(token: string, principal: Principal, generation: number): void {
    if (!this.#enabled || generation !== this.#generation) return;
    if (this.#byToken.size >= principal_cache_entries_max) this.#byToken.clear();
    const now = this.#now();
    const refreshShare = refresh_share_min + Math.random() * (refresh_share_max - refresh_share_min);
    this.#byToken.set(PrincipalCache.tokenDigest(token), {
      principal, refreshAtMs: now + Math.floor(principal_cache_ttl_ms * refreshShare), expiresAtMs: now + principal_cache_ttl_ms,
    });
  }

  /** Forget every token of this key (a revocation). */
  forgetKey(keyId: string): void {
    this.#generation++;
    this.#inFlight.clear();
    for (const [digest, c] of this.#byToken) if (c.principal.keyId === keyId) this.#byToken.delete(digest);
  }

  enable(): void {
    this.#enabled = true;
  }

  /** Forget everything and stop serving until enabled again. */
  disable(): void {
    this.#enabled = false;
    this.#generation++;
    this.#inFlight.clear();
    this.#byToken.clear();
  }

  get enabled(): boolean {
    return this.#enabled;
  }
}

/**
 * Keeps one connection listening for revocations and tells the cache. The cache serves only
 * while the connection is up; after a failure it is disabled, and enabled again once listening
 * resumes (anything revoked meanwhile is gone from the cache, which was emptied).
 */
export function listenForRevocations(databaseUrl: string, cache: PrincipalCache, log: Logger): { stop(): Promise<void> } {
  let client: pg.Client | null = null;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;

  /** Forgets the listening connection and closes it; a late error from it is ignored. */
  const drop = async () => {
    const c = client;
    client = null;
    c?.removeAllListeners();
    c?.on('error', () => undefined);
    await c?.end().catch(() => undefined);
  };

  const fail = (why: string) => {
    cache.disable();
    void drop();
    if (stopped) return;
    log.warn({ component: 'auth', reason: why }, 'revocation listener down; API keys are looked up on every request until it is back');
    timer = setTimeout(connect, relisten_delay_ms);
    timer.unref();
  };

  const connect = () => {
    timer = null;
    if (stopped) return;
    const c = new pg.Client({ connectionString: databaseUrl, application_name: 'onecard-revocations' });
    client = c;
    c.on('error', (e) => { if (client === c) fail(e.message); });
    c.on('end', () => { if (client === c) fail('connection ended'); });
    c.on('notification', (n) => { if (n.channel === revocation_channel && n.payload) cache.forgetKey(n.payload); });
    c.connect()
      .then(() => c.query(`LISTEN ${revocation_channel}`))
      .then(() => { if (client === c && !stopped) cache.enable(); })
      .catch((e: unknown) => { if (client === c) fail((e as Error).message); });
  };

  cache.disable();
  connect();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      cache.disable();
      await drop();
    },
  };
}
