/**
 * Ephemeral sends (`send` / `send-multi` with `ephemeral: true`; typing indicators): pushed to the
 * recipient devices' live connections and dropped for every other device. Nothing is stored,
 * queued, counted as queued or redelivered. The sender's answer is the same whether or not any
 * recipient device was connected: it does not tell an account whether another is online now (as
 * Signal's server answers an online-only send the same either way).
 * Each connection has its own bucket (EPHEMERAL_SENDS_PER_SECOND, burst EPHEMERAL_BURST); over
 * it the frame is refused with RATE_LIMITED and the socket stays open.
 *
 * The envelope's id is `e` and a counter (never a stored message's id): its `ack` is ignored.
 * An ephemeral message does not count against the recipient's in-flight window either.
 *
 * Several nodes: a device connected to this node gets it from here; every other recipient device
 * goes to the other nodes in one `ephemeral` event on the cluster channel (cluster.ts, bounded,
 * checked on receipt), and the node holding its socket, if any, pushes it.
 */
import { randomBytes } from 'node:crypto';
import { CIPHERTEXT_TYPES, EPHEMERAL_BURST, EPHEMERAL_SENDS_PER_SECOND, type CiphertextType, type SendFrame, type SendMultiFrame } from '@tacit/api';
import type { RemoteEphemeral } from '../cluster.js';
import type { Context } from '../context.js';
import { addressKey, type Address } from '../store.js';
import type { Connection } from './connection.js';
import type { Hub } from './hub.js';

interface Bucket {
  tokens: number;
  at: number;
}

export class EphemeralSends {
  readonly #ctx: Context;
  readonly #hub: Hub;
  readonly #buckets = new WeakMap<Connection, Bucket>();
  /** Ids are unique per process run: a random prefix and a counter. */
  readonly #prefix = `e${randomBytes(4).toString('hex')}`;
  #seq = 0;
  /** Ephemeral messages pushed here, dropped, and handed to other nodes (for tests and metrics). */
  pushed = 0;
  dropped = 0;
  forwarded = 0;

  constructor(ctx: Context, hub: Hub) {
    this.#ctx = ctx;
    this.#hub = hub;
  }

  #take(conn: Connection): boolean {
    const now = this.#ctx.now();
    const b = this.#buckets.get(conn) ?? { tokens: EPHEMERAL_BURST, at: now };
    b.tokens = Math.min(EPHEMERAL_BURST, b.tokens + ((now - b.at) * EPHEMERAL_SENDS_PER_SECOND) / 1000);
    b.at = now;
    this.#buckets.set(conn, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /**
   * Pushes to the device's live connection here: true if one took it. A device with no connection
   * here goes into `elsewhere` when there are other nodes to try.
   */
  #route(from: Address, key: string, type: CiphertextType, bodyB64: string, timestamp: number, elsewhere: RemoteEphemeral[] | undefined): boolean {
    const conn = this.#hub.get(key);
    if (conn === undefined && elsewhere !== undefined) {
      elsewhere.push({ key, type, from, timestamp, bodyB64 });
      return false;
    }
    if (conn === undefined || conn.state !== 'ready') {
      this.dropped++;
      return false;
    }
    this.pushed++;
    const id = `${this.#prefix}${(++this.#seq).toString(36)}`;
    // CIPHERTEXT_TYPES keeps the wire name checked against the contract's list.
    void CIPHERTEXT_TYPES[type];
    conn.send(
      `{"type":"message","envelope":{"id":"${id}","type":"${type}","body":"${bodyB64}",` +
        `"source":{"username":"${from.username}","deviceId":${from.deviceId}},"timestamp":${timestamp},"ephemeral":true}}`,
    );
    return true;
  }

  /** Hands what is not for this node to the others; returns how many devices were handed over. */
  #forward(elsewhere: RemoteEphemeral[] | undefined): number {
    if (elsewhere === undefined || elsewhere.length === 0) return 0;
    const n = this.#ctx.cluster!.publishEphemeral(elsewhere);
    this.forwarded += n;
    this.dropped += elsewhere.length - n;
    return n;
  }

  send(conn: Connection, frame: SendFrame): void {
    if (!this.#take(conn)) return conn.reply({ type: 'error', code: 'RATE_LIMITED', message: 'too many ephemeral sends', id: frame.id });
    const now = this.#ctx.now();
    const me = conn.device!;
    const elsewhere = this.#ctx.cluster === undefined ? undefined : [];
    if (frame.to.username !== me.username || frame.to.deviceId !== me.deviceId) {
      this.#route(me, addressKey(frame.to), frame.message.type, frame.message.body, now, elsewhere);
      this.#forward(elsewhere);
    }
    conn.reply({ type: 'sent', id: frame.id, serverId: `${this.#prefix}0`, timestamp: now, ephemeral: true });
  }

  sendMulti(conn: Connection, frame: SendMultiFrame): void {
    if (!this.#take(conn)) return conn.reply({ type: 'error', code: 'RATE_LIMITED', message: 'too many ephemeral sends', id: frame.id });
    const now = this.#ctx.now();
    const me = conn.device!;
    const elsewhere = this.#ctx.cluster === undefined ? undefined : [];
    for (const r of frame.recipients) {
      for (const d of r.devices) {
        if (r.username === me.username && d.deviceId === me.deviceId) continue;
        const m = d.message ?? frame.message!;
        this.#route(me, addressKey({ username: r.username, deviceId: d.deviceId }), m.type, m.body, now, elsewhere);
      }
    }
    this.#forward(elsewhere);
    conn.reply({ type: 'sent-multi', id: frame.id, timestamp: now, stored: 0, ephemeral: true });
  }

  /** Another node's ephemeral messages: pushed to the devices connected here, dropped otherwise. */
  deliverRemote(messages: readonly RemoteEphemeral[]): void {
    const corked = new Set<Connection>();
    for (const m of messages) {
      const conn = this.#hub.get(m.key);
      if (conn !== undefined && !corked.has(conn) && conn.cork()) corked.add(conn);
      this.#route(m.from, m.key, m.type, m.bodyB64, m.timestamp, undefined);
    }
    for (const c of corked) c.uncork();
  }
}
