/**
 * Batched writes: every send and ack that arrives in one event-loop turn is written in one
 * `writeBatch` (one transaction, one fsync), which is what makes durable relaying cost about as
 * much as undurable relaying. One batch is written at a time; what arrives meanwhile forms the
 * next. Message ids increase in commit order.
 */
import type { FastifyBaseLogger } from 'fastify';
import { errorSummary } from '../errors.js';
import type { Address, EnqueueResult, NewMessage, Store } from '../store.js';
import type { Connection } from './connection.js';

export interface PendingSend {
  conn: Connection;
  clientId: string;
  message: NewMessage;
  /** The body as the client sent it (canonical base64), reused in the `message` frame. */
  bodyB64: string;
}

export interface BatchHandlers {
  /** A batch is committed; `results[i]` answers `sends[i]`. */
  stored(sends: PendingSend[], results: EnqueueResult[]): void;
  /** A batch failed as a whole: none of its sends is stored. */
  notStored(sends: PendingSend[]): void;
}

export class BatchWriter {
  readonly #store: Store;
  readonly #maxQueuePerDevice: number;
  readonly #log: FastifyBaseLogger;
  readonly #handlers: BatchHandlers;
  #sends: PendingSend[] = [];
  #acks: { to: Address; id: number }[] = [];
  #flushScheduled = false;
  #writing = false;
  /** Sends and acks queued so far, and how many of them are written (see `written`). */
  #enqueued = 0;
  #writtenUpTo = 0;
  #barriers: { upTo: number; resolve: () => void }[] = [];

  constructor(store: Store, maxQueuePerDevice: number, log: FastifyBaseLogger, handlers: BatchHandlers) {
    this.#store = store;
    this.#maxQueuePerDevice = maxQueuePerDevice;
    this.#log = log;
    this.#handlers = handlers;
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
        const sends = this.#sends;
        const acks = this.#acks;
        const upTo = this.#enqueued;
        this.#sends = [];
        this.#acks = [];
        let results;
        try {
          results = await this.#store.writeBatch(
            sends.map((s) => s.message),
            acks,
            this.#maxQueuePerDevice,
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

  #release(upTo: number): void {
    this.#writtenUpTo = upTo;
    if (this.#barriers.length === 0) return;
    const due = this.#barriers.filter((b) => b.upTo <= upTo);
    this.#barriers = this.#barriers.filter((b) => b.upTo > upTo);
    for (const b of due) b.resolve();
  }
}
