/**
 * Token buckets keyed by string (device, IP, requester→target). Memory is bounded: buckets that
 * have refilled completely carry no information and are swept; past `maxKeys` the oldest are
 * dropped (which only ever forgives, never punishes).
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
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#maxKeys) this.#evict(now);
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + (now - b.at) * this.#perMs);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
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
