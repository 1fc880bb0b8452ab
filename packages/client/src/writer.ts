/**
 * Coalescing writer of state snapshots. Each commit hands over a complete, consistent snapshot;
 * if several arrive while a write is running, only the newest is written next, and every commit
 * resolves once a snapshot at least as new as its own is durable.
 */
import type { StateVault } from './vault.js';

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class SnapshotWriter {
  readonly #vault: StateVault;
  #latest: Uint8Array | undefined;
  #seq = 0;
  #written = 0;
  #running = false;
  #waiters: Waiter[] = [];

  constructor(vault: StateVault) {
    this.#vault = vault;
  }

  commit(snapshot: Uint8Array): Promise<void> {
    const seq = ++this.#seq;
    this.#latest = snapshot;
    const p = new Promise<void>((resolve, reject) => this.#waiters.push({ seq, resolve, reject }));
    if (!this.#running) void this.#loop();
    return p;
  }

  /** Resolves when everything committed so far is durable (or has failed). */
  async idle(): Promise<void> {
    if (this.#written >= this.#seq && !this.#running) return;
    await this.commitLatest().catch(() => undefined);
  }

  private commitLatest(): Promise<void> {
    const seq = this.#seq;
    return new Promise<void>((resolve, reject) => {
      if (this.#written >= seq) resolve();
      else this.#waiters.push({ seq, resolve, reject });
    });
  }

  async #loop(): Promise<void> {
    this.#running = true;
    try {
      while (this.#written < this.#seq) {
        const seq = this.#seq;
        const snapshot = this.#latest!;
        try {
          await this.#vault.write(snapshot);
          this.#written = seq;
          this.#settle(seq, undefined);
        } catch (e) {
          // These commits are not durable; later commits carry a newer full snapshot and retry.
          this.#written = Math.max(this.#written, seq);
          this.#settle(seq, e);
        }
      }
    } finally {
      this.#running = false;
    }
  }

  #settle(upTo: number, error: unknown): void {
    const keep: Waiter[] = [];
    for (const w of this.#waiters) {
      if (w.seq > upTo) keep.push(w);
      else if (error === undefined) w.resolve();
      else w.reject(error);
    }
    this.#waiters = keep;
  }
}
