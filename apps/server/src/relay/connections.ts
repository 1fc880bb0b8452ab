/**
 * Connections: accepting sockets, authenticating them (ticket in the URL or an `auth` frame),
 * reading and validating frames, and the heartbeat. Frames of an authenticated device go to the
 * batch writer (`send`, `ack`) or are answered here (`ping`).
 */
import { randomBytes } from 'node:crypto';
import type { RawData, WebSocket } from 'ws';
import { base64DecodedLength, CIPHERTEXT_TYPES, clientId as clientIdValidator, isPlainObject, validateClientFrame, type SendFrame } from '@tacit/api';
import { checkSendDeviceList } from '../fanout.js';
import { checkCredentials, redeemTicket, stillRegistered, type Authenticated } from '../auth.js';
import type { Context } from '../context.js';
import { errorSummary, isServerError } from '../errors.js';
import { sendDigest } from '../resend.js';
import type { Address } from '../store.js';
import { Connection } from './connection.js';
import type { Delivery } from './delivery.js';
import type { Hub } from './hub.js';
import { FanoutSends } from './fanout.js';
import { EphemeralSends } from './ephemeral.js';
import type { BatchWriter } from './writer.js';

/** Frames held while authentication is being checked (a client may pipeline after `auth`). */
const MAX_FRAMES_BEFORE_READY = 32;

/**
 * An `ack` exactly as clients write it (JSON.stringify of {type, id}) with one of our numeric ids:
 * one per relayed message, so it skips JSON.parse and the generic validator. Equivalent to them:
 * any text this matches parses to a frame they accept, and anything else takes the general path.
 */
const PLAIN_ACK = /^\{"type":"ack","id":"([0-9]{1,15})"\}$/;
/** Longest text PLAIN_ACK can match. */
const PLAIN_ACK_MAX_LENGTH = 40;

/** Last-seen times are kept to the day. */
const DAY_MS = 86_400_000;

export class Connections {
  readonly #ctx: Context;
  readonly #hub: Hub;
  readonly #writer: BatchWriter;
  readonly #delivery: Delivery;
  /** Prefix of connection names in the registry: this node (each node names its own). */
  readonly #node: string;
  #seq = 0;
  readonly #fanouts: FanoutSends;
  /** Typing indicators and the like: live connections only, never stored (ephemeral.ts). */
  readonly ephemeral: EphemeralSends;

  constructor(ctx: Context, hub: Hub, writer: BatchWriter, delivery: Delivery) {
    this.#ctx = ctx;
    this.#hub = hub;
    this.#writer = writer;
    this.#delivery = delivery;
    this.#node = ctx.cluster?.nodeId ?? randomBytes(8).toString('hex');
    this.#fanouts = new FanoutSends(ctx, writer);
    this.ephemeral = new EphemeralSends(ctx, hub);
  }

  accept(ws: WebSocket, ticket: string | null, address: string): void {
    const l = this.#ctx.limits;
    const conn = new Connection(ws, l.frameBurst, this.#ctx.now(), `${this.#node}:${++this.#seq}`, address);
    conn.onRefusal = (code) => this.#ctx.metrics.refused('ws', code);
    const admitted = this.#hub.add(conn);
    ws.on('error', () => ws.terminate());
    ws.on('close', () => this.#hub.closed(conn));
    ws.on('pong', () => (conn.alive = true));
    ws.on('message', (data, isBinary) => this.#onFrame(conn, data, isBinary));
    if (!admitted) {
      this.#hub.fail(conn, 'UNAVAILABLE', 'too many unauthenticated connections from this address');
      return;
    }
    conn.authTimer = setTimeout(() => {
      if (conn.pending) this.#hub.fail(conn, 'AUTH_TIMEOUT', 'authenticate within the time limit');
    }, l.authTimeoutMs);
    conn.authTimer.unref();
    if (ticket !== null) {
      conn.state = 'authenticating';
      redeemTicket(this.#ctx, ticket).then(
        (a) => (a ? this.#ready(conn, a) : this.#hub.fail(conn, 'UNAUTHORIZED', 'invalid, expired or used ticket')),
        (e: unknown) => this.internal(conn, e),
      );
    }
  }

  /** Closes a connection after a store failure, logging only the error's name and code. */
  internal(conn: Connection, e: unknown): void {
    this.#ctx.log.error({ err: errorSummary(e) }, 'relay: store failure');
    this.#hub.fail(conn, 'INTERNAL', 'internal error');
  }

  #onFrame(conn: Connection, data: RawData, isBinary: boolean): void {
    if (conn.state === 'closed') return;
    // Per-connection frame bucket, checked before parsing anything.
    const l = this.#ctx.limits;
    if (!conn.takeFrameToken(this.#ctx.now(), l.frameBurst, l.frameRatePerSecond)) return this.#hub.fail(conn, 'RATE_LIMITED', 'too many frames');
    if (conn.state === 'authenticating') {
      if (conn.held.length >= MAX_FRAMES_BEFORE_READY) return this.#hub.fail(conn, 'INVALID_REQUEST', 'too many frames before ready');
      conn.held.push({ data, isBinary });
      return;
    }
    this.#handle(conn, data, isBinary);
  }

  #handle(conn: Connection, data: RawData, isBinary: boolean): void {
    if (isBinary) return this.#hub.fail(conn, 'INVALID_REQUEST', 'binary frames are not accepted');
    let parsed: unknown;
    try {
      // ws delivers a Buffer by default (binaryType 'nodebuffer'); decode it without a copy.
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
      if (conn.state === 'ready' && text.length <= PLAIN_ACK_MAX_LENGTH) {
        const ack = PLAIN_ACK.exec(text);
        if (ack !== null) return this.#ack(conn, Number(ack[1]));
      }
      parsed = JSON.parse(text);
    } catch {
      return this.#hub.fail(conn, 'INVALID_REQUEST', 'malformed JSON');
    }
    const l = this.#ctx.limits;
    // An oversized body is the sender's mistake about one message, not a broken client: answer
    // that send and keep the socket.
    if (conn.state === 'ready' && isPlainObject(parsed) && parsed['type'] === 'send') {
      const id = clientIdValidator(parsed['id']);
      const msg = parsed['message'];
      const body = isPlainObject(msg) ? msg['body'] : undefined;
      // Only a body longer than the limit's base64 length can be too large; skip the scan otherwise.
      if (id.ok && typeof body === 'string' && body.length > Math.floor(l.maxMessageBytes / 3) * 4) {
        const n = base64DecodedLength(body);
        if (n > l.maxMessageBytes || n < 0) {
          return conn.reply({ type: 'error', code: 'MESSAGE_TOO_LARGE', message: `body over ${l.maxMessageBytes} bytes`, id: id.value });
        }
      }
    }
    if (conn.state === 'ready' && isPlainObject(parsed) && parsed['type'] === 'send-multi') {
      const id = clientIdValidator(parsed['id']);
      const refusal = id.ok ? this.#fanouts.precheck(parsed) : undefined;
      if (id.ok && refusal !== undefined) return conn.reply({ type: 'error', ...refusal, id: id.value });
    }
    const r = validateClientFrame(parsed);
    if (!r.ok) return this.#hub.fail(conn, 'INVALID_REQUEST', `${r.path}: ${r.reason}`);
    const frame = r.value;

    if (conn.state === 'unauthenticated') {
      if (frame.type !== 'auth') return this.#hub.fail(conn, 'UNAUTHORIZED', 'authenticate first');
      conn.state = 'authenticating';
      conn.batched = frame.batched === true;
      checkCredentials(this.#ctx, frame, conn.address).then(
        (a) => (a ? this.#ready(conn, a) : this.#hub.fail(conn, 'UNAUTHORIZED', 'wrong credentials')),
        (e: unknown) => (isServerError(e) ? this.#hub.fail(conn, e.code, e.message) : this.internal(conn, e)),
      );
      return;
    }
    switch (frame.type) {
      case 'auth':
        return this.#hub.fail(conn, 'INVALID_REQUEST', 'already authenticated');
      case 'ping':
        return conn.reply(frame.id === undefined ? { type: 'pong' } : { type: 'pong', id: frame.id });
      case 'ack': {
        if ('ids' in frame) return this.#ackMany(conn, frame.ids);
        const id = /^[0-9]{1,15}$/.test(frame.id) ? Number(frame.id) : NaN;
        // An id that is not ours cannot match a row of this device; ignore it (acks are idempotent).
        if (!Number.isSafeInteger(id)) return;
        return this.#ack(conn, id);
      }
      case 'send-multi':
        if (frame.ephemeral === true) return this.ephemeral.sendMulti(conn, frame);
        return this.#fanouts.accept(conn, frame);
      case 'send': {
        if (frame.ephemeral === true) return this.ephemeral.send(conn, frame);
        if (conn.pendingSends >= l.maxPendingSendsPerConnection) {
          return conn.reply({ type: 'error', code: 'TOO_MANY_IN_FLIGHT', message: `at most ${l.maxPendingSendsPerConnection} sends awaiting "sent"`, id: frame.id });
        }
        // A device writing to itself would only fill its own queue (and the disk); the SDK never does.
        if (frame.to.username === conn.device!.username && frame.to.deviceId === conn.device!.deviceId) {
          return conn.reply({ type: 'error', code: 'FORBIDDEN', message: 'a device cannot send to itself', id: frame.id });
        }
        conn.pendingSends++;
        if (frame.devices !== undefined) {
          // The sender's device list for the account is checked first (fanout.ts rules); the
          // check reads the devices outside the write's transaction, so a device added in between
          // is found by the next send.
          const named = frame.devices;
          conn.afterChecked(() =>
            this.#ctx.store.getAccount(frame.to.username).then(
              (a) => {
                if (conn.state === 'closed') return;
                const current = a === undefined ? undefined : new Map(a.devices.map((d) => [d.deviceId, d.registrationId]));
                const refusal = checkSendDeviceList(conn.device!, frame.to, named, current);
                if (refusal === null) return this.#send(conn, frame);
                conn.pendingSends--;
                const message = refusal.code === 'NOT_FOUND' ? 'no such account' : refusal.code === 'STALE_DEVICE' ? 'the device re-registered; refresh its keys' : 'the device list does not match the account';
                conn.reply({ type: 'error', code: refusal.code, message, id: frame.id, accounts: refusal.accounts });
              },
              (e: unknown) => this.internal(conn, e),
            ),
          );
          return;
        }
        // Sends after a checked one wait for it, so one connection's sends keep their order.
        if (conn.checkedPending()) {
          conn.afterChecked(() => (conn.state === 'closed' ? undefined : this.#send(conn, frame)));
          return;
        }
        return this.#send(conn, frame);
      }
    }
  }

  #send(conn: Connection, frame: SendFrame): void {
    if (conn.state === 'closed') return;
    const l = this.#ctx.limits;
    // The per-device send rate is checked by the writer, for the whole batch at once.
    const now = this.#ctx.now();
    const body = Buffer.from(frame.message.body, 'base64');
    const to = { username: frame.to.username, deviceId: frame.to.deviceId };
    const kind = CIPHERTEXT_TYPES[frame.message.type];
    const bytes = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    this.#writer.send({
      conn,
      clientId: frame.id,
      bodyB64: frame.message.body,
      message: {
        to,
        ...(frame.to.registrationId !== undefined ? { expectedRegistrationId: frame.to.registrationId } : {}),
        from: conn.device!,
        kind,
        body: bytes,
        timestamp: now,
        // A send may shorten its stay (a disappearing conversation's timer), never extend it.
        expiresAt: now + Math.min(l.messageTtlMs, frame.ttlMs ?? l.messageTtlMs),
        // A resend of a stored message is answered with that copy (resend.ts).
        digest: sendDigest(to, kind, bytes),
      },
    });
  }

  #ack(conn: Connection, id: number): void {
    this.#writer.ack(conn.device!, id);
    this.#delivery.acked(conn, id);
  }

  /**
   * A batched ack (validated: 1..MAX_ACK_IDS distinct ids). Only ids pushed on this connection and
   * not yet acknowledged reach the store, so one frame costs at most as many deletes as the
   * connection has messages in flight, whatever it names; any other id is ignored, as a single
   * ack of an unknown id is (a message it names that is still queued comes again and is acked then).
   */
  #ackMany(conn: Connection, ids: readonly string[]): void {
    const device = conn.device!;
    // The ids acknowledged, as numbers: only these leave the in-flight set. (The strings go no
    // further: `Number` reads "0x10" or "1e1" as another message's id, which would drop that
    // message from the window without its ack reaching the store, and its real ack later.)
    const acked: number[] = [];
    for (const text of ids) {
      const id = /^[0-9]{1,15}$/.test(text) ? Number(text) : NaN;
      if (!conn.inflight.has(id)) continue;
      this.#writer.ack(device, id);
      acked.push(id);
    }
    if (acked.length > 0) this.#delivery.ackedMany(conn, acked);
  }

  #ready(conn: Connection, { device, secretHash }: Authenticated): void {
    if (conn.state === 'closed') return;
    // The heartbeat compares the store with the credentials this socket proved (or its ticket was bound to).
    conn.authHash = Uint8Array.from(secretHash);
    const max = this.#ctx.limits.maxConnectionsPerAccount;
    // The account's connections on every node (or this one, without a shared registry).
    this.#ctx.limiters.connections.acquire(device.username, device.deviceId, conn.owner, max, this.#ctx.now()).then(
      (granted) => {
        if (conn.state === 'closed') {
          if (granted) void this.#ctx.limiters.connections.release(device.username, device.deviceId, conn.owner);
          return;
        }
        if (!granted) return this.#hub.fail(conn, 'TOO_MANY_CONNECTIONS', `at most ${max} connections per account`);
        this.#attach(conn, device);
      },
      (e: unknown) => this.internal(conn, e),
    );
  }

  #attach(conn: Connection, device: Address): void {
    this.#hub.attach(conn, device);
    this.#checkStillRegistered(conn);
    this.#ctx.cluster?.publishConnected(conn.key);
    conn.reply({ type: 'ready', username: device.username, deviceId: device.deviceId });
    // "Last seen" for the owner's device list, to the day (linking.ts DeviceInfo).
    void this.#ctx.store.touchDevice(device, Math.floor(this.#ctx.now() / DAY_MS) * DAY_MS).catch(() => undefined);
    // Acks from this device's previous socket may still be on their way to the store; page the
    // queue only after they are written, so an acknowledged message is not delivered again.
    void this.#writer.written().then(() => this.#delivery.pump(conn));
    const held = conn.held;
    conn.held = [];
    for (const h of held) {
      if (conn.state !== 'ready') break;
      this.#handle(conn, h.data, h.isBinary);
    }
  }

  /**
   * Pings every socket, drops those that missed the last pong, re-checks devices' credentials and
   * renews this node's holds in the connection registry.
   */
  beat(): void {
    void this.#ctx.limiters.connections.refresh(this.#hub.holds(), this.#ctx.now());
    for (const c of this.#hub.all) {
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
        if (!stillRegistered(conn.authHash, stored)) {
          this.#hub.fail(conn, 'UNAUTHORIZED', 'this device is no longer registered');
          return;
        }
        conn.authHash ??= Uint8Array.from(stored!);
      },
      // A store hiccup is not the device's fault: the next heartbeat checks again.
      () => undefined,
    );
  }
}
