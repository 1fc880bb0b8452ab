/**
 * The WebSocket half of the wire contract: one authenticated connection to the relay that
 * reconnects with backoff and jitter, resends sends the server has not confirmed, delivers
 * incoming envelopes one at a time and acknowledges each only after the handler has stored it.
 *
 * The socket itself is behind `SocketFactory`: Node passes one built on `ws`
 * (`@tacit/client/node`), a browser one built on the global WebSocket.
 */
import {
  AUTH_TIMEOUT_MS,
  ERRORS,
  MAX_ACK_IDS,
  MAX_PENDING_SENDS_PER_CONNECTION,
  MAX_UNACKED_PER_CONNECTION,
  errorCodeForClose,
  parseJson,
  validateServerFrame,
  type ClientFrame,
  type DeviceCredentials,
  type Envelope,
  type ErrorCode,
  type SendFrame,
  type SendMultiWireFrame,
} from '@tacit/api';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffPolicy } from './backoff.js';
import { ClientError } from './errors.js';
import { refusalText } from './refusals.js';
import type { SendMultiAnswer } from './fanout.js';

export interface Socket {
  send(text: string): void;
  close(code?: number, reason?: string): void;
  /**
   * Frames reach the handlers as the transport reads them from the network, one read (~64 KiB,
   * ~25 envelopes) per turn of the event loop (`ws` on Node). The relay then waits one turn
   * before forming a receive batch, so the batch takes everything already read.
   */
  readonly framesPerReadTurn?: boolean;
}

export interface SocketHandlers {
  open(): void;
  /** A text frame. Binary frames are the factory's to refuse (they are not in the contract). */
  message(text: string): void;
  close(code: number, reason: string): void;
}

export type SocketFactory = (url: string, handlers: SocketHandlers) => Socket;

/** What the envelope handler decided: `ack` once the message is stored (or deliberately dropped). */
export type EnvelopeOutcome = 'ack' | 'retry-later';

/** Sends on the wire at once, below the server's MAX_PENDING_SENDS_PER_CONNECTION so we never trip it. */
export const MAX_IN_FLIGHT_SENDS = Math.min(128, MAX_PENDING_SENDS_PER_CONNECTION);
/** Idle time after which we ping the server, ms. Below common proxy idle timeouts (60 s). */
export const PING_INTERVAL_MS = 25_000;
/** A connection silent this long after a ping is considered dead and replaced, ms. */
export const PONG_TIMEOUT_MS = 15_000;
/** Sends queued while offline. Beyond this `send` refuses at once instead of growing without bound. */
export const MAX_QUEUED_SENDS = 4_096;
/**
* Envelopes received and not yet handled, over all connections. The server pushes at most
 * MAX_UNACKED_PER_CONNECTION before it waits for acks; a server that pushes more breaks the
 * contract (or means to fill our memory), so the connection is dropped and retried with backoff.
 * Counted across reconnects: a server cannot pile up more by reconnecting.
 */
export const MAX_UNHANDLED_ENVELOPES = MAX_UNACKED_PER_CONNECTION;
/** Close code we use when the server breaks the in-flight window. */
const WINDOW_EXCEEDED = 4000;
/**
 * After RECONNECT_ELSEWHERE (a node draining behind a load balancer) the next attempt comes within
 * this many ms, uniformly spread: prompt, since another node is up, yet not every client of the
 * drained node in the same millisecond.
 */
export const RECONNECT_ELSEWHERE_SPREAD_MS = 250;
/**
 * Envelopes handed to the SDK in one batch at most: what arrived while the previous batch was
 * being stored, up to the server's in-flight window. One batch is one commit.
 */
export const MAX_RECEIVE_BATCH = 256;
/**
 * Ciphertext (base64 characters) in one batch at most, so one commit stays small whatever the
 * messages' size: a batch closes once it reaches this (it always takes at least one envelope).
 */
export const MAX_RECEIVE_BATCH_CHARS = 1024 * 1024;
/** Times one send is retried after a retriable refusal (rate limit, overload) before failing. */
export const MAX_SEND_RETRIES = 20;

/** Server refusals of a single send that go away by waiting. */
const RETRIABLE_SEND_ERRORS: ReadonlySet<string> = new Set<ErrorCode>(['RATE_LIMITED', 'TOO_MANY_IN_FLIGHT', 'UNAVAILABLE', 'INTERNAL']);
/** Close codes after which reconnecting would not help (or would fight another device session). */
const FATAL_CLOSE_CODES: ReadonlySet<string> = new Set<ErrorCode>(['REPLACED', 'UNAUTHORIZED', 'FORBIDDEN', 'INVITE_INVALID', 'TOO_MANY_DEVICES']);

export type RelayState = 'idle' | 'connecting' | 'ready' | 'closed';

export interface RelayEvents {
  ready: () => void;
  /** The server's queue-empty arrived and every envelope before it was handled. */
  drained: () => void;
  disconnected: (info: { code: number; reason: string; retryInMs: number }) => void;
  /** The relay stopped for good (REPLACED, UNAUTHORIZED, ...). */
  fatal: (error: ClientError) => void;
  /** A frame that does not follow the contract was dropped. */
  rejectedFrame: (reason: string) => void;
}

export interface RelayOptions {
  url: string;
  credentials: DeviceCredentials;
  connect: SocketFactory;
  /**
   * Handles the envelopes that arrived together (in order, at most MAX_RECEIVE_BATCH); resolves
   * with one outcome each, after storing them. Called one batch at a time.
   */
  onEnvelopes: (envelopes: Envelope[]) => Promise<EnvelopeOutcome[]>;
  backoff?: BackoffPolicy;
  random?: () => number;
}

interface PendingSend {
  frame: SendFrame | SendMultiWireFrame;
  resolve: (r: { serverId: string; timestamp: number }) => void;
  /** An ephemeral send (sendEphemeral): never resent; dropped with its connection. */
  ephemeral?: true;
  /** For a `send-multi`: its answer (stored, or refused with what to repair). */
  multi?: (a: SendMultiAnswer) => void;
  reject: (e: ClientError) => void;
  /** Connection generation it was last written to, or 0 if not on the wire. */
  onConnection: number;
  retries: number;
}

type Listener<K extends keyof RelayEvents> = RelayEvents[K];

export class Relay {
  #opts: RelayOptions;
  #state: RelayState = 'idle';
  #socket: Socket | undefined;
  /** Increments per connection attempt, so late callbacks of an old socket are ignored. */
  #generation = 0;
  #attempt = 0;
  #pending = new Map<string, PendingSend>();
  /** Delivered envelopes and queue-empty markers not handled yet, in arrival order. */
  #inbox: ({ kind: 'envelope'; envelope: Envelope; gen: number } | { kind: 'drained'; gen: number })[] = [];
  #handling = false;
  /** Envelopes delivered and not yet handled, queued or in the batch being handled (see MAX_UNHANDLED_ENVELOPES). */
  #unhandled = 0;
  #listeners: { [K in keyof RelayEvents]: Set<Listener<K>> } = {
    ready: new Set(),
    drained: new Set(),
    disconnected: new Set(),
    fatal: new Set(),
    rejectedFrame: new Set(),
  };
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #authTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #lastFrameAt = 0;
  #drainedThisConnection = false;
  #fatal: ClientError | undefined;
  /**
   * The current connection's `auth` said `batched`: the server answers with `sent-batch` and
   * takes batched acks (once it said `ready`). Off for good after a server refused the field (an
   * older server), so that client keeps to the single forms.
   */
  #batched = false;
  #olderServer = false;

  constructor(opts: RelayOptions) {
    this.#opts = opts;
  }

  get state(): RelayState {
    return this.#state;
  }

  /** True once the current connection delivered its backlog (queue-empty handled). */
  get drained(): boolean {
    return this.#drainedThisConnection;
  }

  get pendingSends(): number {
    return this.#pending.size;
  }

  on<K extends keyof RelayEvents>(event: K, listener: RelayEvents[K]): () => void {
    (this.#listeners[event] as Set<RelayEvents[K]>).add(listener);
    return () => (this.#listeners[event] as Set<RelayEvents[K]>).delete(listener);
  }

  #emit<K extends keyof RelayEvents>(event: K, ...args: Parameters<RelayEvents[K]>): void {
    for (const l of [...this.#listeners[event]]) {
      try {
        (l as (...a: Parameters<RelayEvents[K]>) => void)(...args);
      } catch {
        // A listener's failure is its own; the relay keeps running.
      }
    }
  }

  start(): void {
    if (this.#state !== 'idle') return;
    this.#connect();
  }

  /**
   * Tries at once instead of waiting out the backoff: for hints that the server may be reachable
   * again (the browser went online, the page became visible, whose timers browsers throttle while
   * hidden). Does nothing unless waiting to reconnect. The backoff keeps counting, so repeated
   * hints against a server that is still down cannot make a tight loop of it.
   */
  retryNow(): void {
    if (this.#state !== 'connecting' || this.#reconnectTimer === undefined) return;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#connect();
  }

  /** Resolves once ready (or rejects on fatal close / timeout). */
  waitReady(timeoutMs: number): Promise<void> {
    if (this.#state === 'ready') return Promise.resolve();
    return this.#waitFor('ready', timeoutMs, 'the server did not accept the connection in time');
  }

  /** Resolves once the backlog of the current connection is handled. */
  waitDrained(timeoutMs: number): Promise<void> {
    if (this.#state === 'ready' && this.#drainedThisConnection) return Promise.resolve();
    return this.#waitFor('drained', timeoutMs, 'the server did not deliver its queue in time');
  }

  #waitFor(event: 'ready' | 'drained', timeoutMs: number, message: string): Promise<void> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    if (this.#state === 'closed') return Promise.reject(new ClientError('CLOSED', 'the connection is closed'));
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        offOk();
        offFatal();
      };
      const timer = setTimeout(() => {
        done();
        reject(new ClientError('TIMEOUT', message));
      }, timeoutMs);
      const offOk = this.on(event, () => {
        done();
        resolve();
      });
      const offFatal = this.on('fatal', (e) => {
        done();
        reject(e);
      });
    });
  }

  /**
   * Sends one ciphertext to one device; resolves when the server has stored it. Survives
   * reconnects (resent with the same client id). Rejects on a non-retriable refusal.
   */
  send(frame: SendFrame): Promise<{ serverId: string; timestamp: number }> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    if (this.#state === 'closed') return Promise.reject(new ClientError('CLOSED', 'the connection is closed'));
    if (this.#pending.size >= MAX_QUEUED_SENDS) return Promise.reject(new ClientError('TIMEOUT', 'too many messages waiting for the server'));
    if (this.#pending.has(frame.id)) return Promise.reject(new ClientError('INVALID_ARGUMENT', 'duplicate send id'));
    return new Promise((resolve, reject) => {
      this.#pending.set(frame.id, { frame, resolve, reject, onConnection: 0, retries: 0 });
      this.#pump();
    });
  }

  /**
   * Sends one `send-multi` (fanout.ts builds it). Resolves with the server's answer: stored, or
   * refused with the accounts to repair (nothing was stored then). Survives reconnects like
   * `send`; rejects on a refusal that names no accounts to repair.
   */
  sendMulti(frame: SendMultiWireFrame): Promise<SendMultiAnswer> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    if (this.#state === 'closed') return Promise.reject(new ClientError('CLOSED', 'the connection is closed'));
    if (this.#pending.size >= MAX_QUEUED_SENDS) return Promise.reject(new ClientError('TIMEOUT', 'too many messages waiting for the server'));
    if (this.#pending.has(frame.id)) return Promise.reject(new ClientError('INVALID_ARGUMENT', 'duplicate send id'));
    return new Promise((resolve, reject) => {
      this.#pending.set(frame.id, { frame, resolve: () => undefined, multi: resolve, reject, onConnection: 0, retries: 0 });
      this.#pump();
    });
  }

  /**
   * Sends an ephemeral frame (`ephemeral: true`: a typing indicator) if connected now; resolves
   * true when the server took it (it does not say which devices were connected), false when not
   * connected, refused, or the connection drops. Never queued, never resent.
   */
  sendEphemeral(frame: (SendFrame | SendMultiWireFrame) & { ephemeral: true }): Promise<boolean> {
    if (this.#state !== 'ready' || this.#pending.has(frame.id) || this.#pending.size >= MAX_QUEUED_SENDS) return Promise.resolve(false);
    return new Promise((resolve) => {
      const p: PendingSend = { frame, resolve: () => resolve(true), reject: () => resolve(false), onConnection: this.#generation, retries: 0, ephemeral: true };
      if (!this.#write(frame)) return resolve(false);
      this.#pending.set(frame.id, p);
    });
  }

  /**
   * Takes back a `send` or `send-multi` not yet written on the current connection (queued while
   * offline, or waiting for room on the wire): it rejects with CANCELLED and is never written.
   * 'on-wire': written on this connection, so the server may store it (it cannot be taken back);
   * 'absent': not pending here (never handed over, or already answered).
   */
  withdraw(id: string): 'withdrawn' | 'on-wire' | 'absent' {
    const p = this.#pending.get(id);
    if (p === undefined || p.ephemeral === true) return 'absent';
    if (p.onConnection === this.#generation && this.#state === 'ready') return 'on-wire';
    this.#pending.delete(id);
    p.reject(new ClientError('CANCELLED', 'taken back before it was sent'));
    return 'withdrawn';
  }

  /** Stops for good. Pending sends reject with CLOSED (the SDK keeps them in its outbox). */
  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#clearTimers();
    const s = this.#socket;
    this.#socket = undefined;
    try {
      s?.close(1000, 'bye');
    } catch {
      // already gone
    }
    const err = new ClientError('CLOSED', 'the connection was closed');
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  #clearTimers(): void {
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#authTimer);
    clearInterval(this.#pingTimer);
    clearTimeout(this.#retryTimer);
    this.#reconnectTimer = this.#authTimer = this.#pingTimer = this.#retryTimer = undefined;
  }

  #connect(): void {
    const gen = ++this.#generation;
    this.#state = 'connecting';
    this.#drainedThisConnection = false;
    let socket: Socket;
    try {
      socket = this.#opts.connect(this.#opts.url, {
        open: () => {
          if (gen !== this.#generation) return;
          this.#batched = !this.#olderServer;
          this.#write({ type: 'auth', ...this.#opts.credentials, ...(this.#batched ? { batched: true as const } : {}) });
        },
        message: (text) => {
          if (gen !== this.#generation) return;
          this.#onFrame(gen, text);
        },
        close: (code, reason) => {
          if (gen !== this.#generation) return;
          this.#onClose(code, reason);
        },
      });
    } catch {
      this.#onClose(1006, 'connect failed');
      return;
    }
    this.#socket = socket;
    this.#authTimer = setTimeout(() => {
      if (gen === this.#generation && this.#state === 'connecting') this.#drop(4000, 'auth timeout');
    }, AUTH_TIMEOUT_MS + 5_000);
  }

  /** Closes the current socket and goes through the reconnect path. */
  #drop(code: number, reason: string): void {
    const s = this.#socket;
    try {
      s?.close(code, reason);
    } catch {
      // ignore
    }
    this.#onClose(code, reason);
  }

  #onClose(code: number, reason: string): void {
    if (this.#state === 'closed') return;
    this.#generation++; // ignore anything the old socket still says
    this.#socket = undefined;
    clearTimeout(this.#authTimer);
    clearInterval(this.#pingTimer);
    for (const [id, p] of this.#pending) {
      p.onConnection = 0;
      // Ephemeral sends are not resent: what they said is stale by the next connection.
      if (p.ephemeral) {
        this.#pending.delete(id);
        p.reject(new ClientError('CLOSED', 'not sent'));
      }
    }
    const errorCode = errorCodeForClose(code) ?? (typeof reason === 'string' && reason in ERRORS ? (reason as ErrorCode) : undefined);
    // A server older than batched frames refuses the `auth` that asks for them: ask no more.
    if (errorCode === 'INVALID_REQUEST' && this.#state === 'connecting' && this.#batched) this.#olderServer = true;
    if (errorCode !== undefined && FATAL_CLOSE_CODES.has(errorCode)) {
      this.#fatal = new ClientError('SERVER', refusalText(errorCode), { serverCode: errorCode });
      this.#state = 'closed';
      this.#clearTimers();
      for (const p of this.#pending.values()) p.reject(this.#fatal);
      this.#pending.clear();
      this.#emit('fatal', this.#fatal);
      return;
    }
    this.#state = 'connecting';
    const delay =
      errorCode === 'RECONNECT_ELSEWHERE'
        ? backoffDelay(0, { baseMs: RECONNECT_ELSEWHERE_SPREAD_MS, maxMs: RECONNECT_ELSEWHERE_SPREAD_MS }, this.#opts.random)
        : backoffDelay(this.#attempt++, this.#opts.backoff ?? DEFAULT_BACKOFF, this.#opts.random);
    this.#emit('disconnected', { code, reason: errorCode ?? '', retryInMs: delay });
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#state !== 'closed') this.#connect();
    }, delay);
  }

  #write(frame: ClientFrame | SendMultiWireFrame): boolean {
    const s = this.#socket;
    if (!s) return false;
    try {
      s.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  #reject(reason: string): void {
    this.#emit('rejectedFrame', reason);
  }

  #onFrame(gen: number, text: string): void {
    this.#lastFrameAt = Date.now();
    const parsed = parseJson(text);
    if (!parsed.ok) return this.#reject('not JSON');
    const checked = validateServerFrame(parsed.value);
    if (!checked.ok) return this.#reject(`invalid frame at ${checked.path}`);
    const f = checked.value;
    switch (f.type) {
      case 'ready':
        if (this.#state !== 'connecting') return this.#reject('unexpected ready');
        clearTimeout(this.#authTimer);
        this.#state = 'ready';
        this.#attempt = 0;
        this.#startPing(gen);
        this.#emit('ready');
        this.#pump();
        return;
      case 'message': {
        if (this.#state !== 'ready') return this.#reject('message before ready');
        if (this.#unhandled >= MAX_UNHANDLED_ENVELOPES) {
          this.#reject('more unacknowledged messages than the server may push');
          this.#drop(WINDOW_EXCEEDED, 'in-flight window exceeded');
          return;
        }
        this.#unhandled++;
        this.#inbox.push({ kind: 'envelope', envelope: f.envelope, gen });
        this.#handleInbox();
        return;
      }
      case 'queue-empty':
        this.#inbox.push({ kind: 'drained', gen });
        this.#handleInbox();
        return;
      case 'sent': {
        const p = this.#pending.get(f.id);
        if (!p) return this.#reject('sent for an unknown id');
        this.#pending.delete(f.id);
        p.resolve({ serverId: f.serverId, timestamp: f.timestamp });
        this.#pump();
        return;
      }
      case 'sent-batch': {
        for (const s of f.sent) {
          const p = this.#pending.get(s.id);
          if (!p || p.multi) {
            this.#reject('sent for an unknown id');
            continue;
          }
          this.#pending.delete(s.id);
          p.resolve({ serverId: s.serverId, timestamp: s.timestamp });
        }
        this.#pump();
        return;
      }
      case 'sent-multi': {
        const p = this.#pending.get(f.id);
        if (p?.ephemeral) {
          this.#pending.delete(f.id);
          p.resolve({ serverId: '', timestamp: f.timestamp });
          return;
        }
        if (!p?.multi) return this.#reject('sent-multi for an unknown id');
        this.#pending.delete(f.id);
        p.multi({ ok: true, timestamp: f.timestamp, stored: f.stored, mailboxFull: f.mailboxFull ?? [] });
        this.#pump();
        return;
      }
      case 'error': {
        if (f.id === undefined) return; // the close that follows carries the decision
        const p = this.#pending.get(f.id);
        if (!p) return this.#reject('error for an unknown id');
        if (p.ephemeral) {
          // Not worth a retry: a typing indicator that is late is wrong.
          this.#pending.delete(f.id);
          p.reject(new ClientError('CLOSED', 'not sent'));
          return;
        }
        if (RETRIABLE_SEND_ERRORS.has(f.code) && p.retries < MAX_SEND_RETRIES) {
          p.retries++;
          p.onConnection = 0;
          this.#scheduleRetry(p.retries);
          return;
        }
        this.#pending.delete(f.id);
        if (p.multi && f.accounts !== undefined && f.accounts.length > 0) p.multi({ ok: false, code: f.code, message: f.message, accounts: f.accounts });
        else p.reject(new ClientError('SERVER', refusalText(f.code), { serverCode: f.code }));
        this.#pump();
        return;
      }
      case 'pong':
        return;
    }
  }

  /**
   * Hands what arrived to the SDK in batches: everything delivered while the previous batch was
   * being stored forms the next one (frames read together arrive in one turn of the event loop).
   */
  #handleInbox(): void {
    if (this.#handling) return;
    this.#handling = true;
    queueMicrotask(() => void this.#drainInbox());
  }

  async #drainInbox(): Promise<void> {
    try {
      while (this.#inbox.length > 0) {
        const head = this.#inbox[0]!;
        if (head.kind === 'drained') {
          this.#inbox.shift();
          if (head.gen !== this.#generation) continue;
          this.#drainedThisConnection = true;
          this.#emit('drained');
          continue;
        }
        // One turn of the event loop first: the socket hands over what else has arrived (a read
        // brings one chunk, ~25 envelopes), so a batch takes everything waiting, not one chunk
        // (only for transports that say they read that way; see Socket.framesPerReadTurn).
        // Larger batches mean fewer commits: bench:client measured 2.3x the rate and a quarter of
        // the bytes written per message.
        if (this.#socket?.framesPerReadTurn === true && this.#inbox.length < MAX_RECEIVE_BATCH) await nextTurn();
        const batch: { envelope: Envelope; gen: number }[] = [];
        let chars = 0;
        while (batch.length < MAX_RECEIVE_BATCH && chars < MAX_RECEIVE_BATCH_CHARS && this.#inbox[0]?.kind === 'envelope') {
          const e = this.#inbox.shift() as { envelope: Envelope; gen: number };
          chars += e.envelope.body.length;
          // Envelopes of an old connection cannot be acked: the server redelivers them on the new one.
          if (e.gen === this.#generation) batch.push(e);
          else this.#unhandled--;
        }
        if (batch.length === 0) continue;
        let outcomes: EnvelopeOutcome[];
        try {
          outcomes = await this.#opts.onEnvelopes(batch.map((b) => b.envelope));
        } catch {
          outcomes = [];
        } finally {
          this.#unhandled -= batch.length;
        }
        // Ack only on the connection that delivered it; after a reconnect the server redelivers
        // and the SDK's duplicate memory turns that into a plain ack.
        this.#ack(batch.filter((b, i) => outcomes[i] === 'ack' && b.gen === this.#generation).map((b) => b.envelope.id));
      }
    } finally {
      this.#handling = false;
    }
  }

  /**
   * Acknowledges what one receive batch stored: in one frame per MAX_ACK_IDS ids when the
   * connection is batched (one frame for what one commit stored, instead of one per message).
   */
  #ack(ids: string[]): void {
    // One id: the single form, which the server reads without a JSON parse.
    if (!this.#batched || ids.length === 1) {
      for (const id of ids) this.#write({ type: 'ack', id });
      return;
    }
    for (let i = 0; i < ids.length; i += MAX_ACK_IDS) this.#write({ type: 'ack', ids: ids.slice(i, i + MAX_ACK_IDS) });
  }

  #scheduleRetry(retries: number): void {
    if (this.#retryTimer !== undefined) return;
    const delay = backoffDelay(retries, this.#opts.backoff ?? DEFAULT_BACKOFF, this.#opts.random);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#pump();
    }, Math.max(delay, 50));
  }

  /** Writes queued sends in order, keeping at most MAX_IN_FLIGHT_SENDS on the wire. */
  #pump(): void {
    if (this.#state !== 'ready' || this.#retryTimer !== undefined) return;
    let inFlight = 0;
    for (const p of this.#pending.values()) if (p.onConnection === this.#generation) inFlight++;
    for (const p of this.#pending.values()) {
      if (inFlight >= MAX_IN_FLIGHT_SENDS) break;
      if (p.onConnection === this.#generation) continue;
      if (!this.#write(p.frame)) break;
      p.onConnection = this.#generation;
      inFlight++;
    }
  }

  #startPing(gen: number): void {
    clearInterval(this.#pingTimer);
    this.#lastFrameAt = Date.now();
    let pingSentAt = 0;
    const tick = Math.min(PING_INTERVAL_MS, PONG_TIMEOUT_MS) / 2;
    this.#pingTimer = setInterval(() => {
      if (gen !== this.#generation || this.#state !== 'ready') return;
      const now = Date.now();
      if (pingSentAt > this.#lastFrameAt && now - pingSentAt > PONG_TIMEOUT_MS) {
        this.#drop(4000, 'ping timeout');
        return;
      }
      if (now - this.#lastFrameAt >= PING_INTERVAL_MS && pingSentAt <= this.#lastFrameAt) {
        pingSentAt = now;
        this.#write({ type: 'ping' });
      }
    }, tick);
    (this.#pingTimer as { unref?: () => void }).unref?.();
  }
}

/**
 * Resolves after the event loop's pending I/O callbacks have run: in a page, a new task, so what
 * follows does not lengthen the task that called it (registration uses it between its steps).
 */
export function nextTurn(): Promise<void> {
  const g = globalThis as { setImmediate?: (cb: () => void) => unknown };
  return new Promise((resolve) => (typeof g.setImmediate === 'function' ? g.setImmediate(resolve) : setTimeout(resolve, 0)));
}
