/**
 * Failed device logins, throttled per client address (issue 13.8): a wrong secret in an
 * `Authorization` header or an `auth` frame takes a token from the address's bucket
 * (`loginFailureBurst`, refilled at `loginFailuresPerMinute`; shared by every node when the limiters
 * are). When it is empty the address is refused (RATE_LIMITED) without its credentials being checked
 * for as long as one token takes to refill, so it learns nothing from further guesses. Only
 * failures count: a device that signs in correctly is never slowed down, and nobody can lock a
 * device out by failing on its behalf from another address. An IPv6 address counts by its /64.
 */
import type { Limits } from './config.js';
import type { Limiters, RateLimit } from './rate.js';
import { addressBudgetKey } from './relay/hub.js';

/** Most addresses remembered as refused on this node; past it the oldest is forgiven. */
const MAX_REFUSED_ADDRESSES = 100_000;

export class LoginThrottle {
  readonly #failures: RateLimit;
  readonly #refuseMs: number;
  /** Address key → refused until (ms), oldest first. */
  readonly #refused = new Map<string, number>();

  constructor(limiters: Limiters, l: Pick<Limits, 'loginFailureBurst' | 'loginFailuresPerMinute'>) {
    this.#failures = limiters.bucket('login-failures', { burst: l.loginFailureBurst, perSecond: l.loginFailuresPerMinute / 60 });
    this.#refuseMs = Math.ceil(60_000 / l.loginFailuresPerMinute);
  }

  /** Whether logins from `address` are refused right now. */
  refused(address: string, now: number): boolean {
    const key = addressBudgetKey(address);
    const until = this.#refused.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#refused.delete(key);
    return false;
  }

  /** Counts a failed login from `address`; past its budget the address is refused for a while. */
  async failed(address: string, now: number): Promise<void> {
    const key = addressBudgetKey(address);
    if (await this.#failures.take(key, now)) return;
    this.#refused.delete(key);
    if (this.#refused.size >= MAX_REFUSED_ADDRESSES) {
      for (const [k, until] of this.#refused) if (until <= now) this.#refused.delete(k);
      const oldest = this.#refused.keys().next();
      if (this.#refused.size >= MAX_REFUSED_ADDRESSES && !oldest.done) this.#refused.delete(oldest.value);
    }
    this.#refused.set(key, now + this.#refuseMs);
  }
}
