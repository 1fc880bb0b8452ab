/**
 * Batched writes: every send and ack that arrives in one event-loop turn is written in one
 * `writeBatch` (one transaction, one fsync), which is what makes durable relaying cost about as
 * much as undurable relaying. One batch is written at a time; what arrives meanwhile forms the
 * next. Message ids increase in commit order per recipient. Where the store can tell, a batch's
 * ids are known before its commit is durable (`assigned`), so delivery need not wait for the fsync.
 *
 * Before the write, the batch's sends are checked against their devices' send rate in one call
 * to the limiter (one Redis round trip when limits are shared by several nodes, not one per send).
 */
import type { FastifyBaseLogger } from 'fastify';
import { errorSummary } from '../errors.js';
import type { RateLimit } from '../rate.js';
import type { Address, EnqueueResult, NewMessage, Store } from '../store.js';
import type { Connection } from './connection.js';

export interface PendingSend {
  conn: Connection;
  clientId: string;
  message: NewMessage;
  /** The body as the client sent it (canonical base64), reused in the `message` frame. */
  bodyB64: string;
  /** The id it was handed to its recipient under before the commit, if it was. */
  earlyId?: number;
}

export interface BatchHandlers {
  /**
   * A batch has its ids and its commit is in flight (stores that can tell only); nothing in it
   * may be acknowledged to a sender yet.
   */
  assigned(sends: PendingSend[], results: EnqueueResult[]): void;
  /** A batch is committed; `results[i]` answers `sends[i]`. */
  stored(sends: PendingSend[], results: EnqueueResult[]): void;
  /** A batch failed as a whole: none of its sends is stored. */
  notStored(sends: PendingSend[]): void;
  /** These sends are over their device's send rate and are not stored. */
  rateLimited(sends: PendingSend[]): void;
}

export class BatchWriter {
  readonly #store: Store;
  readonly #maxQueuePerDevice: number;
  readonly #log: FastifyBaseLogger;
  readonly #handlers: BatchHandlers;
  readonly #sendRate: RateLimit;
  readonly #now: () => number;
  #sends: PendingSend[] = [];
  #acks: { to: Address; id: number }[] = [];
  #flushScheduled = false;
  #writing = false;
  /** Sends and acks queued so far, and how many of them are written (see `written`). */
  #enqueued = 0;
  #writtenUpTo = 0;
  #barriers: { upTo: number; resolve: () => void }[] = [];

  constructor(store: Store, maxQueuePerDevice: number, log: FastifyBaseLogger, handlers: BatchHandlers, sendRate: RateLimit, now: () => number) {
    this.#store = store;
    this.#maxQueuePerDevice = maxQueuePerDevice;
    this.#log = log;
    this.#handlers = handlers;
    this.#sendRate = sendRate;
    this.#now = now;
  }

  send(s: PendingSend): void {
    this.#sends.push(s);
    this.#schedule();
  }

  ack(to: Address, id: number): void {
    this.#acks.push({ to, id });
    this.#schedule();
  }

  /** Resolves once every send and ack queued before the call is written (or failed). */
  written(): Promise<void> {
    const upTo = this.#enqueued;
    if (this.#writtenUpTo >= upTo) return Promise.resolve();
    return new Promise((resolve) => this.#barriers.push({ upTo, resolve }));
  }

  #schedule(): void {
    this.#enqueued++;
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (this.#sends.length > 0 || this.#acks.length > 0) {
        const received = this.#sends;
        const acks = this.#acks;
        const upTo = this.#enqueued;
        this.#sends = [];
        this.#acks = [];
        const sends = await this.#admit(received);
        let results;
        try {
          results = await this.#store.writeBatch(
            sends.map((s) => s.message),
            acks,
            this.#maxQueuePerDevice,
            sends.length > 0 ? (early) => this.#handlers.assigned(sends, early) : undefined,
          );
        } catch (e) {
          this.#log.error({ err: errorSummary(e), sends: sends.length, acks: acks.length }, 'relay: batch write failed');
          if (process.env['TACIT_DEBUG_WORKER']) console.error(e);
          this.#handlers.notStored(sends);
          this.#release(upTo);
          continue;
        }
        this.#release(upTo);
        this.#handlers.stored(sends, results);
      }
    } finally {
      this.#writing = false;
    }
  }

  /** The sends within their devices' send rates; the others are answered RATE_LIMITED. */
  async #admit(sends: PendingSend[]): Promise<PendingSend[]> {
    if (sends.length === 0) return sends;
    const wanted = new Map<string, number>();
    for (const s of sends) wanted.set(s.conn.key, (wanted.get(s.conn.key) ?? 0) + 1);
    const keys = [...wanted.keys()];
    let granted: number[];
    try {
      granted = await this.#sendRate.takeMany(
        keys.map((key) => ({ key, n: wanted.get(key)! })),
        this.#now(),
      );
    } catch (e) {
      // The limiter itself failed (a shared one falls back to a local one first): let them through.
      this.#log.error({ err: errorSummary(e) }, 'relay: send rate check failed');
      return sends;
    }
    const left = new Map(keys.map((k, i) => [k, granted[i] ?? 0]));
    const admitted: PendingSend[] = [];
    const refused: PendingSend[] = [];
    for (const s of sends) {
      const n = left.get(s.conn.key)!;
      if (n > 0) {
        left.set(s.conn.key, n - 1);
        admitted.push(s);
      } else refused.push(s);
    }
    if (refused.length > 0) this.#handlers.rateLimited(refused);
    return admitted;
  }

  #release(upTo: number): void {
    this.#writtenUpTo = upTo;
    if (this.#barriers.length === 0) return;
    const due = this.#barriers.filter((b) => b.upTo <= upTo);
    this.#barriers = this.#barriers.filter((b) => b.upTo > upTo);
    for (const b of due) b.resolve();
  }
}
