/**
 * Batched writes: every send and ack that arrives in one event-loop turn is written in one
 * `writeBatch` (one transaction, one fsync), which is what makes durable relaying cost about as
 * much as undurable relaying. One batch is written at a time; what arrives meanwhile forms the
 * next. A multi-recipient send (`writeFanout`, its own transaction) splits the turn: what arrived
 * before it is written first, what arrived after it next. Message ids increase in commit order
 * per recipient. Where the store can tell, a batch's ids are known before its commit is durable
 * (`assigned`), so delivery need not wait for the fsync.
 *
 * Before the write, the batch's sends are checked against their devices' send rate in one call
 * to the limiter (one Redis round trip when limits are shared by several nodes, not one per send).
 */
import type { FastifyBaseLogger } from 'fastify';
import { errorSummary } from '../errors.js';
import type { FanoutResult } from '../fanout.js';
import type { RateLimit } from '../rate.js';
import type { Address, EnqueueResult, NewMessage, Store } from '../store.js';
import type { Connection } from './connection.js';
import type { PendingFanout } from './fanout.js';
import type { SendQuotas } from './quotas.js';

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
  /** These sends are over one of their account's daily quotas (quotas.ts) and are not stored. */
  quotaExceeded(sends: PendingSend[]): void;
  /** A fan-out is written (stored, or refused with what to fix). */
  fanoutStored(f: PendingFanout, result: FanoutResult): void;
  /** A fan-out's write failed, or its device count is over the sender's rate: nothing is stored. */
  fanoutNotStored(f: PendingFanout, code: 'INTERNAL' | 'RATE_LIMITED' | 'SEND_QUOTA_EXCEEDED'): void;
}

interface Segment {
  sends: PendingSend[];
  acks: { to: Address; id: number }[];
  fanout: PendingFanout | undefined;
}

export class BatchWriter {
  readonly #store: Store;
  readonly #maxQueuePerDevice: number;
  readonly #log: FastifyBaseLogger;
  readonly #handlers: BatchHandlers;
  readonly #sendRate: RateLimit;
  readonly #now: () => number;
  readonly #quotas: SendQuotas | undefined;
  /**
   * What arrived, in order: runs of sends and acks (each written as one batch), each closed by at
   * most one fan-out, so messages are written in the order their frames arrived.
   */
  #segments: Segment[] = [];
  #flushScheduled = false;
  #writing = false;
  /** Sends and acks queued so far, and how many of them are written (see `written`). */
  #enqueued = 0;
  #writtenUpTo = 0;
  #barriers: { upTo: number; resolve: () => void }[] = [];

  constructor(store: Store, maxQueuePerDevice: number, log: FastifyBaseLogger, handlers: BatchHandlers, sendRate: RateLimit, now: () => number, quotas?: SendQuotas) {
    this.#store = store;
    this.#maxQueuePerDevice = maxQueuePerDevice;
    this.#log = log;
    this.#handlers = handlers;
    this.#sendRate = sendRate;
    this.#now = now;
    this.#quotas = quotas;
  }

  send(s: PendingSend): void {
    this.#open().sends.push(s);
    this.#schedule();
  }

  ack(to: Address, id: number): void {
    this.#open().acks.push({ to, id });
    this.#schedule();
  }

  /**
   * A multi-recipient send: its own transaction (its device check must see the devices as they
   * are at its inserts), written by this same writer after what arrived before it and before what
   * arrives after, so message ids still increase in the order frames arrived and are delivered.
   */
  fanout(f: PendingFanout): void {
    this.#open().fanout = f;
    this.#schedule();
  }

  /** The segment new sends and acks join: the last one, unless a fan-out closed it. */
  #open(): Segment {
    const last = this.#segments[this.#segments.length - 1];
    if (last !== undefined && last.fanout === undefined) return last;
    const s: Segment = { sends: [], acks: [], fanout: undefined };
    this.#segments.push(s);
    return s;
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
      while (this.#segments.length > 0) {
        const segments = this.#segments;
        const upTo = this.#enqueued;
        this.#segments = [];
        for (const { sends, acks, fanout } of segments) {
          if (sends.length > 0 || acks.length > 0) await this.#writeBatch(await this.#admit(sends), acks);
          if (fanout !== undefined) await this.#writeFanout(fanout);
        }
        this.#release(upTo);
      }
    } finally {
      this.#writing = false;
    }
  }

  async #writeBatch(sends: PendingSend[], acks: { to: Address; id: number }[]): Promise<void> {
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
      return;
    }
    this.#handlers.stored(sends, results);
  }

  /**
   * A fan-out to N devices stores N messages, so it takes N tokens from its sender's send bucket:
   * all of them, or it is refused (the tokens it did get are spent; a client backs off and retries).
   */
  async #writeFanout(f: PendingFanout): Promise<void> {
    const devices = f.fanout.recipients.reduce((n, r) => n + r.devices.length, 0);
    try {
      const [granted] = await this.#sendRate.takeMany([{ key: f.conn.key, n: devices }], this.#now());
      if ((granted ?? 0) < devices) return this.#handlers.fanoutNotStored(f, 'RATE_LIMITED');
    } catch (e) {
      // As for single sends: a failing limiter lets it through.
      this.#log.error({ err: errorSummary(e) }, 'relay: send rate check failed');
    }
    try {
      if (this.#quotas && !(await this.#quotas.admitFanout(f, this.#now()))) return this.#handlers.fanoutNotStored(f, 'SEND_QUOTA_EXCEEDED');
    } catch (e) {
      this.#log.error({ err: errorSummary(e) }, 'relay: send quota check failed');
    }
    let result: FanoutResult;
    try {
      result = await this.#store.writeFanout(f.fanout, this.#maxQueuePerDevice);
    } catch (e) {
      this.#log.error({ err: errorSummary(e), recipients: f.fanout.recipients.length }, 'relay: fan-out write failed');
      return this.#handlers.fanoutNotStored(f, 'INTERNAL');
    }
    this.#handlers.fanoutStored(f, result);
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
    return this.#withinQuotas(admitted);
  }

  /** The sends within their accounts' daily quotas; the others are answered SEND_QUOTA_EXCEEDED. */
  async #withinQuotas(sends: PendingSend[]): Promise<PendingSend[]> {
    if (this.#quotas === undefined || sends.length === 0) return sends;
    let r;
    try {
      r = await this.#quotas.admit(sends, this.#now());
    } catch (e) {
      // As for the send rate: a failing limiter lets them through.
      this.#log.error({ err: errorSummary(e) }, 'relay: send quota check failed');
      return sends;
    }
    if (r.refused.length > 0) this.#handlers.quotaExceeded(r.refused);
    return r.admitted;
  }

  #release(upTo: number): void {
    this.#writtenUpTo = upTo;
    if (this.#barriers.length === 0) return;
    const due = this.#barriers.filter((b) => b.upTo <= upTo);
    this.#barriers = this.#barriers.filter((b) => b.upTo > upTo);
    for (const b of due) b.resolve();
  }
}
