/**
 * Limits on how often and how much: token buckets keyed by string (device, IP, requester→target)
 * and the per-account connection registry. Every limit is made through `Limiters`, so the same
 * code enforces it per process (`LocalLimiters`, the single-node default) or for all nodes at once
 * (`RedisLimiters` in rate-redis.ts, used when several nodes share PostgreSQL and Redis).
 *
 * To add a limit: `ctx.limiters.bucket('name', { burst, perSecond })` once at startup, then
 * `await limit.take(key, now)` per request. Name it uniquely: the name separates keyspaces in Redis.
 */

/** A token bucket: `burst` tokens, refilled at `perSecond` (a fraction is fine: 20 per hour = 20/3600). */
export interface BucketSpec {
  burst: number;
  perSecond: number;
}

export interface RateLimit {
  /** Takes one token for `key`; false if none is left. */
  take(key: string, now: number): Promise<boolean>;
  /**
   * Takes up to `n` tokens for each key, in one round trip; resolves to how many each got (the
   * first that many of its requests go through, the rest are refused). Keys may repeat.
   */
  takeMany(requests: readonly { key: string; n: number }[], now: number): Promise<number[]>;
}

/**
 * Which devices of an account hold a connection, across all nodes. A device holds at most one
 * (a newer one replaces the older, wherever it is), so this counts connections per account.
 */
export interface ConnectionRegistry {
  /**
   * Records that `owner` (a connection, unique across nodes) now holds `deviceId`'s connection,
   * replacing any older holder; false (nothing recorded) when the account's other devices already
   * hold `max` connections.
   */
  acquire(account: string, deviceId: number, owner: string, max: number, now: number): Promise<boolean>;
  /** Forgets `owner`'s hold on the device (nothing if another connection has replaced it). */
  release(account: string, deviceId: number, owner: string): Promise<void>;
  /** Keeps holds alive where they expire on their own (Redis); called on every heartbeat. */
  refresh(holds: readonly { account: string; deviceId: number; owner: string }[], now: number): Promise<void>;
}

export interface Limiters {
  bucket(name: string, spec: BucketSpec): RateLimit;
  readonly connections: ConnectionRegistry;
  /** Frees memory of buckets that carry no information any more; the server calls it periodically. */
  sweep(now: number): void;
}

/**
 * Token buckets in this process's memory. Memory is bounded: buckets that have refilled
 * completely carry no information and are swept; past `maxKeys` the oldest are dropped (which
 * only ever forgives, never punishes).
 */
export class RateLimiter {
  readonly #burst: number;
  readonly #perMs: number;
  readonly #maxKeys: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  /** `burst` tokens, refilled at `perSecond`. */
  constructor(burst: number, perSecond: number, maxKeys = 100_000) {
    this.#burst = burst;
    this.#perMs = perSecond / 1000;
    this.#maxKeys = maxKeys;
  }

  /** Takes one token for `key`; false if none is left. */
  take(key: string, now: number): boolean {
    return this.takeUpTo(key, 1, now) === 1;
  }

  /** Takes up to `n` tokens for `key`; returns how many it got. */
  takeUpTo(key: string, n: number, now: number): number {
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#maxKeys) this.#evict(now);
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + Math.max(0, now - b.at) * this.#perMs);
      b.at = Math.max(b.at, now);
    }
    const got = Math.max(0, Math.min(n, Math.floor(b.tokens)));
    b.tokens -= got;
    return got;
  }

  /** Drops buckets that are full again. */
  sweep(now: number): void {
    for (const [k, b] of this.#buckets) if (b.tokens + (now - b.at) * this.#perMs >= this.#burst) this.#buckets.delete(k);
  }

  #evict(now: number): void {
    this.sweep(now);
    if (this.#buckets.size < this.#maxKeys) return;
    const first = this.#buckets.keys().next();
    if (!first.done) this.#buckets.delete(first.value);
  }

  get size(): number {
    return this.#buckets.size;
  }
}

/** A RateLimiter behind the (asynchronous) RateLimit interface. */
class LocalRateLimit implements RateLimit {
  constructor(readonly limiter: RateLimiter) {}

  take(key: string, now: number): Promise<boolean> {
    return Promise.resolve(this.limiter.take(key, now));
  }

  takeMany(requests: readonly { key: string; n: number }[], now: number): Promise<number[]> {
    return Promise.resolve(requests.map((r) => this.limiter.takeUpTo(r.key, r.n, now)));
  }
}

/** Connection holds in this process's memory: account → device → owner. */
export class LocalConnectionRegistry implements ConnectionRegistry {
  readonly #accounts = new Map<string, Map<number, string>>();

  acquireNow(account: string, deviceId: number, owner: string, max: number): boolean {
    let devices = this.#accounts.get(account);
    if (devices === undefined) {
      devices = new Map();
      this.#accounts.set(account, devices);
    }
    if (!devices.has(deviceId) && devices.size >= max) return false;
    devices.set(deviceId, owner);
    return true;
  }

  releaseNow(account: string, deviceId: number, owner: string): void {
    const devices = this.#accounts.get(account);
    if (devices?.get(deviceId) !== owner) return;
    devices.delete(deviceId);
    if (devices.size === 0) this.#accounts.delete(account);
  }

  acquire(account: string, deviceId: number, owner: string, max: number, _now?: number): Promise<boolean> {
    return Promise.resolve(this.acquireNow(account, deviceId, owner, max));
  }

  release(account: string, deviceId: number, owner: string): Promise<void> {
    this.releaseNow(account, deviceId, owner);
    return Promise.resolve();
  }

  refresh(): Promise<void> {
    return Promise.resolve();
  }

  /** Devices holding a connection, per account (for tests). */
  count(account: string): number {
    return this.#accounts.get(account)?.size ?? 0;
  }
}

/** Every limit in this process's memory: one node, or a limit meant per node. */
export class LocalLimiters implements Limiters {
  readonly #buckets: RateLimiter[] = [];
  readonly connections = new LocalConnectionRegistry();

  bucket(_name: string, spec: BucketSpec): RateLimit {
    const l = new RateLimiter(spec.burst, spec.perSecond);
    this.#buckets.push(l);
    return new LocalRateLimit(l);
  }

  sweep(now: number): void {
    for (const b of this.#buckets) b.sweep(now);
  }
}
