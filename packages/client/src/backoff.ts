/**
 * Reconnect delays: exponential backoff with "full jitter" (AWS architecture blog, 2015): the
 * delay is uniform in [0, min(cap, base * 2^attempt)). Jitter spreads a crowd of clients that lost
 * the same server, so they do not all come back in the same millisecond.
 */
export interface BackoffPolicy {
  /** Delay scale of the first retry, ms. */
  readonly baseMs: number;
  /** Upper bound of any single delay, ms. */
  readonly maxMs: number;
}

/**
 * Default: first retry within 250 ms, then doubling, never more than 5 s between attempts. A
 * restarted server is back within seconds, and waiting up to half a minute after it (the old
 * 30 s cap) is what a user notices; 5 s of full jitter still spreads a thousand clients to
 * about 200 reconnections a second.
 */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 250, maxMs: 5_000 };

/** Exponent cap, so 2^attempt never overflows to Infinity however long a client stays offline. */
export const MAX_BACKOFF_EXPONENT = 30;

/**
 * The delay before reconnect attempt number `attempt` (0 for the first retry).
 * `random` returns a float in [0, 1); injected so tests are deterministic.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const exp = Math.min(Math.max(0, Math.floor(attempt)), MAX_BACKOFF_EXPONENT);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exp);
  const r = random();
  const unit = Number.isFinite(r) && r >= 0 && r < 1 ? r : 0.5;
  return Math.floor(unit * ceiling);
}
