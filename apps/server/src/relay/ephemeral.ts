/**
 * Ephemeral sends (`send` / `send-multi` with `ephemeral: true`; typing indicators): pushed to the
 * recipient devices' live connections on this node and dropped for every other device. Nothing
 * is stored, queued, counted as queued or redelivered; the sender's answer says how many live
 * connections took it. Each connection has its own bucket (EPHEMERAL_SENDS_PER_SECOND, burst
 * EPHEMERAL_BURST); over it the frame is refused with RATE_LIMITED and the socket stays open.
 *
 * The envelope's id is `e` and a counter (never a stored message's id): its `ack` is ignored.
 * An ephemeral message does not count against the recipient's in-flight window either.
 *
 * Several nodes: only devices connected to the sender's node get it (nothing crosses Redis).
 */
import { randomBytes } from 'node:crypto';
import { CIPHERTEXT_TYPES, EPHEMERAL_BURST, EPHEMERAL_SENDS_PER_SECOND, type SendFrame, type SendMultiFrame } from '@tacit/api';
import type { Context } from '../context.js';
import { addressKey } from '../store.js';
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
  /** Ephemeral messages pushed and dropped (for tests and metrics). */
  pushed = 0;
  dropped = 0;

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

  /** Pushes to the device's live connection here, if any. Returns whether one took it. */
  #push(from: Connection, to: { username: string; deviceId: number }, type: SendFrame['message']['type'], bodyB64: string, timestamp: number): boolean {
    const me = from.device!;
    if (to.username === me.username && to.deviceId === me.deviceId) return false;
    const conn = this.#hub.get(addressKey(to));
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
        `"source":{"username":"${me.username}","deviceId":${me.deviceId}},"timestamp":${timestamp},"ephemeral":true}}`,
    );
    return true;
  }

  send(conn: Connection, frame: SendFrame): void {
    if (!this.#take(conn)) return conn.reply({ type: 'error', code: 'RATE_LIMITED', message: 'too many ephemeral sends', id: frame.id });
    const now = this.#ctx.now();
    const delivered = this.#push(conn, frame.to, frame.message.type, frame.message.body, now) ? 1 : 0;
    conn.reply({ type: 'sent', id: frame.id, serverId: `${this.#prefix}0`, timestamp: now, ephemeral: true, delivered });
  }

  sendMulti(conn: Connection, frame: SendMultiFrame): void {
    if (!this.#take(conn)) return conn.reply({ type: 'error', code: 'RATE_LIMITED', message: 'too many ephemeral sends', id: frame.id });
    const now = this.#ctx.now();
    let delivered = 0;
    for (const r of frame.recipients) {
      for (const d of r.devices) {
        const m = d.message ?? frame.message!;
        if (this.#push(conn, { username: r.username, deviceId: d.deviceId }, m.type, m.body, now)) delivered++;
      }
    }
    conn.reply({ type: 'sent-multi', id: frame.id, timestamp: now, stored: 0, ephemeral: true, delivered });
  }
}
