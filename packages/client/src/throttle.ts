/**
 * Senders whose messages keep failing (issue 13.2, the client's part). A forged SignalMessage can
 * cost its recipient up to the protocol's work bound before its MAC fails (50,000 chain steps
 * across all session states, PROTOCOL.md); a flood of them from one account would hold up every
 * other contact's messages behind them in the queue. So, per sender device:
 *
 * - after FAILURES_BEFORE_THROTTLE envelopes in a row that fail to decrypt, the sender is
 *   throttled: its next envelopes are not decrypted as they arrive but parked (stored as they
 *   came, in order, and acknowledged), so the rest of the batch, and every later one, goes on;
 * - parked envelopes are tried in the background, oldest first, at most
 *   THROTTLED_ATTEMPTS_PER_SECOND per sender; one that decrypts lifts the throttle (the rest of
 *   that sender's parked envelopes are then handled at once, in order), one that fails is dropped
 *   with an `undecryptable` event as before;
 * - at most MAX_PARKED envelopes are parked (all senders together); past it the oldest are
 *   dropped, said by `undecryptable` with reason THROTTLED.
 *
 * A sender's envelopes stay in order: while any of its envelopes is parked, the next ones are
 * parked behind it. The sender is the server-authenticated source, so no one can get another
 * account throttled. Failure counts live in memory (a restart forgets them; parked envelopes are
 * in the store and are tried after a restart).
 */

/** Failed envelopes in a row from one sender device after which it is throttled. */
export const FAILURES_BEFORE_THROTTLE = 3;
/** Parked envelopes of a throttled sender tried per second (background). */
export const THROTTLED_ATTEMPTS_PER_SECOND = 4;
/** Parked envelopes kept, all senders together; the oldest are dropped past it. */
export const MAX_PARKED = 512;
/** Sender devices whose failures are counted at once; past it the counts start over (bounds memory). */
export const MAX_TRACKED_SENDERS = 1_024;
/** The `undecryptable` reason of a parked envelope dropped past MAX_PARKED. */
export const THROTTLED = 'THROTTLED';

export class SenderThrottle {
  readonly #failures = new Map<string, number>();

  static key(from: string, fromDevice: number): string {
    return `${from}.${fromDevice}`;
  }

  throttled(key: string): boolean {
    return (this.#failures.get(key) ?? 0) >= FAILURES_BEFORE_THROTTLE;
  }

  failed(key: string): void {
    if (!this.#failures.has(key) && this.#failures.size >= MAX_TRACKED_SENDERS) this.#failures.clear();
    this.#failures.set(key, (this.#failures.get(key) ?? 0) + 1);
  }

  succeeded(key: string): void {
    this.#failures.delete(key);
  }
}
