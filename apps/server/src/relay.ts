/**
 * The WebSocket relay and mailbox delivery.
 *
 * Durability: every `send` goes into the store before its `sent`; all sends and acks that arrive
 * in one event-loop turn are written in one `writeBatch` (one transaction, one fsync), which is
 * what makes durable relaying cost about as much as undurable relaying.
 *
 * Order: message ids increase in commit order, and a connection is given messages in id order,
 * either straight after the commit (when it has nothing older waiting) or by paging its queue
 * from the store. `cursor` is the highest id handed to the connection; `backlog` says the store
 * may hold more than that.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  ERRORS,
  ROUTES,
  base64DecodedLength,
  clientId as clientIdValidator,
  isPlainObject,
  validateClientFrame,
  type ErrorCode,
  type ServerFrame,
} from '@tacit/api';
import type { Context } from './context.js';
import { checkCredentials } from './http.js';
import { RateLimiter } from './rate.js';
import { timingSafeEqual } from 'node:crypto';
import { tokenHash } from './secrets.js';
import { addressKey, type Address, type NewMessage, type StoredMessage } from './store.js';

/** Frames held while authentication is being checked (a client may pipeline after `auth`). */
const MAX_FRAMES_BEFORE_READY = 32;
/** Longest ticket accepted in a URL before hashing (tickets are 43 characters). */
const MAX_TICKET_LENGTH = 128;

type State = 'unauthenticated' | 'authenticating' | 'ready' | 'closed';

class Connection {
  state: State = 'unauthenticated';
  device: Address | undefined;
  key = '';
  /** Ids pushed and not yet acknowledged. */
  readonly inflight = new Set<number>();
  cursor = 0;
  backlog = true;
  fetching = false;
  queueEmptySent = false;
  pendingSends = 0;
  alive = true;
  /**
   * The device's stored secret hash when it authenticated. Each heartbeat compares it with the
   * store, so a device removed by `reset-account` (or re-registered under the same address) is
   * disconnected within one interval instead of keeping its socket.
   */
  authHash: Uint8Array | undefined;
  held: { data: RawData; isBinary: boolean }[] = [];
  authTimer: NodeJS.Timeout | undefined;
  tokens: number;
  tokensAt: number;
  constructor(
    readonly ws: WebSocket,
    burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.tokensAt = now;
  }
}

interface PendingSend {
  conn: Connection;
  clientId: string;
  message: NewMessage;
  bodyB64: string;
}

export class Relay {
  readonly #ctx: Context;
  readonly #wss: WebSocketServer;
  readonly #conns = new Map<string, Connection>();
  readonly #all = new Set<Connection>();
  readonly #perAccount = new Map<string, number>();
  readonly #sendLimiter: RateLimiter;
  #unauthenticated = 0;
  #sends: PendingSend[] = [];
  #acks: { to: Address; id: number }[] = [];
  #flushScheduled = false;
  #writing = false;
  /** Sends and acks queued so far, and how many of them are written (see `#written`). */
  #enqueued = 0;
  #writtenUpTo = 0;
  #barriers: { upTo: number; resolve: () => void }[] = [];
  #closing = false;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(ctx: Context) {
    this.#ctx = ctx;
    const l = ctx.limits;
    this.#sendLimiter = new RateLimiter(l.sendBurst, l.sendRatePerSecond);
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: l.maxFrameBytes, perMessageDeflate: false, clientTracking: false });
    this.#heartbeat = setInterval(() => this.#beat(), l.heartbeatIntervalMs);
    this.#heartbeat.unref();
  }

  /** Counts for tests and health: open sockets and authenticated devices. */
  get stats(): { sockets: number; devices: number; unauthenticated: number } {
    return { sockets: this.#all.size, devices: this.#conns.size, unauthenticated: this.#unauthenticated };
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      url = new URL('http://localhost/');
    }
    if (url.pathname !== ROUTES.ws || this.#closing) {
      socket.end(this.#closing ? 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    socket.on('error', () => socket.destroy());
    const ticket = url.searchParams.get('ticket');
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, ticket));
  }

  #accept(ws: WebSocket, ticket: string | null): void {
    const l = this.#ctx.limits;
    const conn = new Connection(ws, l.frameBurst, this.#ctx.now());
    this.#all.add(conn);
    this.#unauthenticated++;
    ws.on('error', () => ws.terminate());
    ws.on('close', () => this.#onClose(conn));
    ws.on('pong', () => (conn.alive = true));
    ws.on('message', (data, isBinary) => this.#onFrame(conn, data, isBinary));
    if (this.#unauthenticated > l.maxUnauthenticatedConnections) {
      this.#fail(conn, 'UNAVAILABLE', 'too many unauthenticated connections');
      return;
    }
    conn.authTimer = setTimeout(() => {
      if (conn.state === 'unauthenticated' || conn.state === 'authenticating') this.#fail(conn, 'AUTH_TIMEOUT', 'authenticate within the time limit');
    }, l.authTimeoutMs);
    conn.authTimer.unref();
    if (ticket !== null) {
      conn.state = 'authenticating';
      if (ticket.length === 0 || ticket.length > MAX_TICKET_LENGTH) {
        this.#fail(conn, 'UNAUTHORIZED', 'invalid ticket');
        return;
      }
      this.#ctx.store.takeTicket(tokenHash(ticket), this.#ctx.now()).then(
        (device) => (device ? this.#ready(conn, device) : this.#fail(conn, 'UNAUTHORIZED', 'invalid, expired or used ticket')),
        (e: unknown) => this.#internal(conn, e),
      );
    }
  }

  #onFrame(conn: Connection, data: RawData, isBinary: boolean): void {
    if (conn.state === 'closed') return;
    // Per-connection frame bucket, checked before parsing anything.
    const now = this.#ctx.now();
    const l = this.#ctx.limits;
    conn.tokens = Math.min(l.frameBurst, conn.tokens + ((now - conn.tokensAt) * l.frameRatePerSecond) / 1000);
    conn.tokensAt = now;
    if (conn.tokens < 1) return this.#fail(conn, 'RATE_LIMITED', 'too many frames');
    conn.tokens -= 1;

    if (conn.state === 'authenticating') {
      if (conn.held.length >= MAX_FRAMES_BEFORE_READY) return this.#fail(conn, 'INVALID_REQUEST', 'too many frames before ready');
      conn.held.push({ data, isBinary });
      return;
    }
    this.#handle(conn, data, isBinary);
  }

  #handle(conn: Connection, data: RawData, isBinary: boolean): void {
    if (isBinary) return this.#fail(conn, 'INVALID_REQUEST', 'binary frames are not accepted');
    let parsed: unknown;
    try {
      // ws delivers a Buffer by default (binaryType 'nodebuffer'); decode it without a copy.
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
      parsed = JSON.parse(text);
    } catch {
      return this.#fail(conn, 'INVALID_REQUEST', 'malformed JSON');
    }
    // An oversized body is the sender's mistake about one message, not a broken client: answer
    // that send and keep the socket.
    if (conn.state === 'ready' && isPlainObject(parsed) && parsed['type'] === 'send') {
      const id = clientIdValidator(parsed['id']);
      const msg = parsed['message'];
      const body = isPlainObject(msg) ? msg['body'] : undefined;
      // Only a body longer than the limit's base64 length can be too large; skip the scan otherwise.
      if (id.ok && typeof body === 'string' && body.length > Math.floor(this.#ctx.limits.maxMessageBytes / 3) * 4) {
        const n = base64DecodedLength(body);
        if (n > this.#ctx.limits.maxMessageBytes || n < 0) {
          return this.#reply(conn, { type: 'error', code: 'MESSAGE_TOO_LARGE', message: `body over ${this.#ctx.limits.maxMessageBytes} bytes`, id: id.value });
        }
      }
    }
    const r = validateClientFrame(parsed);
    if (!r.ok) return this.#fail(conn, 'INVALID_REQUEST', `${r.path}: ${r.reason}`);
    const frame = r.value;

    if (conn.state === 'unauthenticated') {
      if (frame.type !== 'auth') return this.#fail(conn, 'UNAUTHORIZED', 'authenticate first');
      conn.state = 'authenticating';
      checkCredentials(this.#ctx, frame).then(
        (device) => (device ? this.#ready(conn, device) : this.#fail(conn, 'UNAUTHORIZED', 'wrong credentials')),
        (e: unknown) => this.#internal(conn, e),
      );
      return;
    }
    switch (frame.type) {
      case 'auth':
        return this.#fail(conn, 'INVALID_REQUEST', 'already authenticated');
      case 'ping':
        return this.#reply(conn, frame.id === undefined ? { type: 'pong' } : { type: 'pong', id: frame.id });
      case 'ack': {
        const id = /^[0-9]{1,15}$/.test(frame.id) ? Number(frame.id) : NaN;
        // An id that is not ours cannot match a row of this device; ignore it (acks are idempotent).
        if (!Number.isSafeInteger(id)) return;
        conn.inflight.delete(id);
        this.#acks.push({ to: conn.device!, id });
        this.#scheduleFlush();
        if (conn.backlog) this.#pump(conn);
        return;
      }
      case 'send': {
        const l = this.#ctx.limits;
        if (conn.pendingSends >= l.maxPendingSendsPerConnection) {
          return this.#reply(conn, { type: 'error', code: 'TOO_MANY_IN_FLIGHT', message: `at most ${l.maxPendingSendsPerConnection} sends awaiting "sent"`, id: frame.id });
        }
        const now = this.#ctx.now();
        if (!this.#sendLimiter.take(conn.key, now)) {
          return this.#reply(conn, { type: 'error', code: 'RATE_LIMITED', message: 'send rate exceeded', id: frame.id });
        }
        conn.pendingSends++;
        const body = Buffer.from(frame.message.body, 'base64');
        this.#sends.push({
          conn,
          clientId: frame.id,
          bodyB64: frame.message.body,
          message: {
            to: { username: frame.to.username, deviceId: frame.to.deviceId },
            ...(frame.to.registrationId !== undefined ? { expectedRegistrationId: frame.to.registrationId } : {}),
            from: conn.device!,
            kind: frame.message.type === 'prekey' ? 3 : 2,
            body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
            timestamp: now,
            expiresAt: now + l.messageTtlMs,
          },
        });
        this.#scheduleFlush();
        return;
      }
    }
  }

  #ready(conn: Connection, device: Address): void {
    if (conn.state === 'closed') return;
    const l = this.#ctx.limits;
    const key = addressKey(device);
    const old = this.#conns.get(key);
    const count = this.#perAccount.get(device.username) ?? 0;
    if (old === undefined && count >= l.maxConnectionsPerAccount) {
      return this.#fail(conn, 'TOO_MANY_CONNECTIONS', `at most ${l.maxConnectionsPerAccount} connections per account`);
    }
    if (old !== undefined) {
      this.#fail(old, 'REPLACED', 'another connection for this device authenticated');
    }
    clearTimeout(conn.authTimer);
    this.#unauthenticated--;
    conn.state = 'ready';
    conn.device = device;
    conn.key = key;
    this.#conns.set(key, conn);
    this.#perAccount.set(device.username, (this.#perAccount.get(device.username) ?? 0) + 1);
    this.#checkStillRegistered(conn);
    this.#ctx.cluster?.publishConnected(key);
    this.#reply(conn, { type: 'ready', username: device.username, deviceId: device.deviceId });
    // Acks from this device's previous socket may still be on their way to the store; page the
    // queue only after they are written, so an acknowledged message is not delivered again.
    void this.#written().then(() => this.#pump(conn));
    const held = conn.held;
    conn.held = [];
    for (const h of held) {
      if (conn.state !== 'ready') break;
      this.#handle(conn, h.data, h.isBinary);
    }
  }

  #onClose(conn: Connection): void {
    const wasReady = conn.state === 'ready';
    const wasPending = conn.state === 'unauthenticated' || conn.state === 'authenticating';
    conn.state = 'closed';
    clearTimeout(conn.authTimer);
    this.#all.delete(conn);
    if (wasPending) this.#unauthenticated--;
    if (wasReady) this.#detach(conn);
  }

  /** Removes a ready connection from the device map and account count (once). */
  #detach(conn: Connection): void {
    if (conn.device === undefined || this.#conns.get(conn.key) !== conn) return;
    this.#conns.delete(conn.key);
    const n = (this.#perAccount.get(conn.device.username) ?? 1) - 1;
    if (n <= 0) this.#perAccount.delete(conn.device.username);
    else this.#perAccount.set(conn.device.username, n);
  }

  #reply(conn: Connection, frame: ServerFrame): void {
    if (conn.state === 'closed') return;
    conn.ws.send(JSON.stringify(frame));
  }

  /** Sends an error frame and closes with the code's close code; the reason is the code. */
  #fail(conn: Connection, code: ErrorCode, message: string): void {
    if (conn.state === 'closed') return;
    const wasReady = conn.state === 'ready';
    const wasPending = conn.state === 'unauthenticated' || conn.state === 'authenticating';
    try {
      conn.ws.send(JSON.stringify({ type: 'error', code, message } satisfies ServerFrame));
      conn.ws.close(ERRORS[code].close, code);
    } catch {
      conn.ws.terminate();
    }
    conn.state = 'closed';
    clearTimeout(conn.authTimer);
    this.#all.delete(conn);
    if (wasPending) this.#unauthenticated--;
    if (wasReady) this.#detach(conn);
    // A peer that never completes the closing handshake must not hold the socket.
    const t = setTimeout(() => conn.ws.terminate(), 5000);
    t.unref();
  }

  #internal(conn: Connection, e: unknown): void {
    this.#ctx.log.error({ err: errorSummary(e) }, 'relay: store failure');
    this.#fail(conn, 'INTERNAL', 'internal error');
  }

  /** Another node stored messages for these devices: page the queues of those connected here. */
  onDeliver(keys: string[]): void {
    for (const k of keys) {
      const c = this.#conns.get(k);
      if (c === undefined) continue;
      c.backlog = true;
      this.#pump(c);
    }
  }

  /** Another node took this device's socket. */
  onConnected(key: string): void {
    const c = this.#conns.get(key);
    if (c) this.#fail(c, 'REPLACED', 'another connection for this device authenticated');
  }

  /** Closes a device's connection, e.g. when the device is removed. */
  disconnect(device: Address, code: ErrorCode, message: string): void {
    const c = this.#conns.get(addressKey(device));
    if (c) this.#fail(c, code, message);
  }

  /** Resolves once every send and ack queued before the call is written (or failed). */
  #written(): Promise<void> {
    const upTo = this.#enqueued;
    if (this.#writtenUpTo >= upTo) return Promise.resolve();
    return new Promise((resolve) => this.#barriers.push({ upTo, resolve }));
  }

  #scheduleFlush(): void {
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
          results = await this.#ctx.store.writeBatch(
            sends.map((s) => s.message),
            acks,
            this.#ctx.limits.maxQueuePerDevice,
          );
        } catch (e) {
          this.#ctx.log.error({ err: errorSummary(e), sends: sends.length, acks: acks.length }, 'relay: batch write failed');
          if (process.env['TACIT_DEBUG_WORKER']) console.error(e);
          for (const s of sends) {
            s.conn.pendingSends--;
            this.#reply(s.conn, { type: 'error', code: 'INTERNAL', message: 'not stored; retry', id: s.clientId });
          }
          this.#release(upTo);
          continue;
        }
        this.#release(upTo);
        // Cork every socket this batch writes to, so its frames leave in one write per socket.
        const corked = new Set<Connection>();
        for (const s of sends) {
          cork(s.conn, corked);
          const to = this.#conns.get(addressKey(s.message.to));
          if (to !== undefined) cork(to, corked);
        }
        const elsewhere = new Set<string>();
        for (let i = 0; i < sends.length; i++) {
          const s = sends[i]!;
          const r = results[i]!;
          s.conn.pendingSends--;
          if (!r.ok) {
            this.#reply(s.conn, {
              type: 'error',
              code: r.code,
              message: r.code === 'NOT_FOUND' ? 'no such device' : r.code === 'STALE_DEVICE' ? 'the device re-registered; refresh its keys' : 'recipient mailbox is full',
              id: s.clientId,
            });
            continue;
          }
          if (s.conn.state !== 'closed') s.conn.ws.send(`{"type":"sent","id":${JSON.stringify(s.clientId)},"serverId":"${r.id}","timestamp":${s.message.timestamp}}`);
          const toKey = addressKey(s.message.to);
          const to = this.#conns.get(toKey);
          if (to !== undefined) this.#deliverLive(to, r.id, s.message, s.bodyB64);
          else elsewhere.add(toKey);
        }
        for (const c of corked) uncork(c);
        if (elsewhere.size > 0) this.#ctx.cluster?.publishDeliver([...elsewhere]);
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

  #deliverLive(conn: Connection, id: number, m: NewMessage, bodyB64: string): void {
    if (!conn.backlog && !conn.fetching && conn.inflight.size < this.#ctx.limits.maxUnackedPerConnection) {
      this.#push(conn, { id, kind: m.kind, from: m.from, timestamp: m.timestamp }, bodyB64);
    } else {
      conn.backlog = true;
      this.#pump(conn);
    }
  }

  #push(conn: Connection, m: Pick<StoredMessage, 'id' | 'kind' | 'from' | 'timestamp'>, bodyB64: string): void {
    conn.inflight.add(m.id);
    conn.cursor = m.id;
    if (conn.state === 'closed') return;
    conn.ws.send(messageFrameText(m, bodyB64));
  }

  /** Pages the store into the connection while it has room and the store may hold more. */
  #pump(conn: Connection): void {
    const max = this.#ctx.limits.maxUnackedPerConnection;
    if (conn.fetching || !conn.backlog || conn.state !== 'ready' || conn.inflight.size >= max) return;
    conn.fetching = true;
    conn.backlog = false;
    const limit = max - conn.inflight.size;
    this.#ctx.store.fetchQueue(conn.device!, conn.cursor, limit, this.#ctx.now()).then(
      (rows) => {
        conn.fetching = false;
        if (conn.state !== 'ready') return;
        for (const m of rows) this.#push(conn, m, Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength).toString('base64'));
        if (rows.length === limit) conn.backlog = true;
        else if (!conn.queueEmptySent && !conn.backlog) {
          conn.queueEmptySent = true;
          this.#reply(conn, { type: 'queue-empty' });
        }
        if (conn.backlog) this.#pump(conn);
      },
      (e: unknown) => {
        conn.fetching = false;
        this.#internal(conn, e);
      },
    );
  }

  #beat(): void {
    for (const c of this.#all) {
      if (!c.alive) {
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
      if (c.state === 'ready') this.#checkStillRegistered(c);
    }
  }

  /** Close `conn` if its device is gone or now has other credentials; remember them the first time. */
  #checkStillRegistered(conn: Connection): void {
    const device = conn.device;
    if (device === undefined) return;
    this.#ctx.store.getDeviceAuth(device).then(
      (auth) => {
        if (conn.state !== 'ready') return;
        const stored = auth?.secretHash;
        const known = conn.authHash;
        if (stored === undefined || (known !== undefined && (known.length !== stored.length || !timingSafeEqual(known, stored)))) {
          this.#fail(conn, 'UNAUTHORIZED', 'this device is no longer registered');
          return;
        }
        conn.authHash ??= Uint8Array.from(stored);
      },
      // A store hiccup is not the device's fault: the next heartbeat checks again.
      () => undefined,
    );
  }

  /** Stops accepting, writes what is pending, closes every socket with UNAVAILABLE. */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#heartbeat);
    // Stop reading, then write everything already received (and answer it) before the store may
    // close; only then close the sockets.
    for (const c of this.#all) c.ws.pause();
    await this.#written();
    for (const c of [...this.#all]) this.#fail(c, 'UNAVAILABLE', 'server shutting down');
    this.#wss.close();
  }
}

/**
 * The `message` frame, written directly: it is the hot path, and every part is already known to
 * be JSON-safe (a canonical base64 body, a validated username, integers) — only the client-chosen
 * strings elsewhere need JSON.stringify. Equal to JSON.stringify of a MessageFrame (tested).
 */
export function messageFrameText(m: Pick<StoredMessage, 'id' | 'kind' | 'from' | 'timestamp'>, bodyB64: string): string {
  return (
    `{"type":"message","envelope":{"id":"${m.id}","type":"${m.kind === 3 ? 'prekey' : 'whisper'}","body":"${bodyB64}",` +
    `"source":{"username":"${m.from.username}","deviceId":${m.from.deviceId}},"timestamp":${m.timestamp}}}`
  );
}

/**
 * ws does not expose cork(); its socket is `_socket`, a net.Socket. Guarded, so a ws version
 * without it only loses the batching, not correctness.
 */
function socketOf(c: Connection): { cork(): void; uncork(): void } | undefined {
  const s = (c.ws as unknown as { _socket?: { cork?: unknown; uncork?: unknown } })._socket;
  return s !== undefined && typeof s.cork === 'function' && typeof s.uncork === 'function' ? (s as { cork(): void; uncork(): void }) : undefined;
}
function cork(c: Connection, corked: Set<Connection>): void {
  if (corked.has(c) || c.state === 'closed') return;
  const s = socketOf(c);
  if (s === undefined) return;
  s.cork();
  corked.add(c);
}
function uncork(c: Connection): void {
  socketOf(c)?.uncork();
}

/** What may be logged of an error: its name and code, never a message that could echo input. */
export function errorSummary(e: unknown): { name: string; code?: string } {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? { name: e.name, code } : { name: e.name };
  }
  return { name: typeof e };
}
