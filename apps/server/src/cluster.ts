/**
 * Several server nodes behind one load balancer: Redis pub/sub carries what one node must tell
 * the others. Three events:
 *
 * - deliver(keys, messages): messages were stored for these devices; a node holding one of their
 *   sockets hands them over. A small message travels in the event itself (id, the id before it in
 *   its queue, sender, body), so the node holding the socket can push it without reading the
 *   store, provided it has handed over everything up to the message's `after` (see
 *   relay/delivery.ts); otherwise, and for keys without a message, it pages the queue from the
 *   store. The store stays the source of truth: a lost event delays delivery until the next
 *   event or reconnect, and loses nothing.
 * - connected(key): this node now holds the device's socket; any other node holding an older
 *   socket for it closes that with REPLACED.
 * - ephemeral(messages): an ephemeral send (a typing indicator, relay/ephemeral.ts) for devices
 *   not connected to the sender's node. A node holding one of their sockets pushes it; every other
 *   node drops it. Nothing is stored anywhere, and a lost event loses only that indicator.
 *
 * Events come from other nodes through Redis and are checked as input: a text over
 * MAX_EVENT_CHARS is not parsed, and every field that ends up in a frame (usernames, device ids,
 * bodies, ciphertext types) is checked for its type, range and alphabet, so a malformed event is
 * dropped in whole or in part and never breaks a frame or the node.
 *
 * Every node receives every event (one channel): simple, and right for a few nodes; at many
 * nodes each one parses everyone's cross-node traffic (docs/OPERATIONS.md, "Capacity").
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { base64DecodedLength, CIPHERTEXT_TYPES, MAX_DEVICE_ID, USERNAME_MAX_LENGTH, USERNAME_MIN_LENGTH, USERNAME_PATTERN, type CiphertextType } from '@tacit/api';
import { CIPHERTEXT_TYPE_OF_KIND, type Address, type CiphertextKind } from './store.js';

/** A stored message for a device that may be connected to another node. */
export interface RemoteMessage {
  /** addressKey of the recipient device. */
  key: string;
  id: number;
  /** The id before this one in the recipient's queue at commit (EnqueueResult.after). */
  after: number;
  kind: CiphertextKind;
  from: Address;
  timestamp: number;
  /** The body, base64 as the sender sent it. */
  bodyB64: string;
}

/** An ephemeral message for a device that is not connected to the sender's node. */
export interface RemoteEphemeral {
  /** addressKey of the recipient device. */
  key: string;
  type: CiphertextType;
  from: Address;
  timestamp: number;
  bodyB64: string;
}

export interface ClusterHandlers {
  onDeliver(keys: string[], messages: RemoteMessage[]): void;
  onConnected(key: string): void;
  onEphemeral(messages: RemoteEphemeral[]): void;
}

export interface Cluster {
  readonly nodeId: string;
  start(handlers: ClusterHandlers): Promise<void>;
  /** `keys`: devices with new mail to page from the store; `messages`: new mail to hand over directly. */
  publishDeliver(keys: string[], messages?: RemoteMessage[]): void;
  publishConnected(key: string): void;
  /**
   * Hands ephemeral messages to the other nodes (fire and forget); returns how many were handed
   * over (a body over MAX_CARRIED_BODY_CHARS is not: an ephemeral message has no stored copy to
   * read instead).
   */
  publishEphemeral(messages: RemoteEphemeral[]): number;
  close(): Promise<void>;
}

/** A message in an event, compact: [key, id, after, kind, username, deviceId, timestamp, body]. */
type WireMessage = [string, number, number, number, string, number, number, string];
/** An ephemeral message in an event: [key, type, username, deviceId, timestamp, body]. */
type WireEphemeral = [string, string, string, number, number, string];
type Event =
  | { t: 'd'; n: string; k: string[]; m?: WireMessage[] }
  | { t: 'c'; n: string; k: string }
  | { t: 'e'; n: string; m: WireEphemeral[] };

/** Bounds a deliver event's keys and messages; a larger batch is split. */
const MAX_KEYS_PER_EVENT = 1000;
/**
 * Body bytes (base64) one event may carry; a bigger batch is split into several events. Events
 * stay small for Redis and for every node that parses them, and below V8's large-object size
 * (128 KiB): measured here, publishing 1.5 KB messages cost 3-4 µs each in events of 40-80
 * messages (60-120 KB) and 12-21 µs each in events of 160 (240 KB), which 256 KiB allowed and a
 * saturated node's batches reached.
 */
const MAX_EVENT_BODY_CHARS = 64 * 1024;
/** A body larger than this never travels in an event. */
const MAX_CARRIED_BODY_CHARS = 16 * 1024;
/**
 * An event text longer than this is dropped unparsed. Above what a publisher here writes (the
 * bodies, plus at most MAX_KEYS_PER_EVENT entries of well under 200 characters each besides their
 * body), so it only ever refuses a malformed or hostile event, before JSON.parse allocates for it.
 */
const MAX_EVENT_CHARS = MAX_EVENT_BODY_CHARS + MAX_CARRIED_BODY_CHARS + MAX_KEYS_PER_EVENT * 200;
/** Where an event's node id (`"n":"…"`) starts: after `{"t":"d",`. */
const OWN_AT = '{"t":"d",'.length;
/** Longest addressKey: a username, a dot and a device id. */
const MAX_KEY_CHARS = USERNAME_MAX_LENGTH + 1 + String(MAX_DEVICE_ID).length;
/** Standard base64 alphabet with padding: all a body may hold to be written into a frame as is. */
const BASE64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;

/** A sender as written into a `message` frame: a valid username and device id. */
function isSource(username: unknown, deviceId: unknown): boolean {
  return (
    typeof username === 'string' &&
    username.length >= USERNAME_MIN_LENGTH &&
    username.length <= USERNAME_MAX_LENGTH &&
    USERNAME_PATTERN.test(username) &&
    Number.isSafeInteger(deviceId) &&
    (deviceId as number) >= 1 &&
    (deviceId as number) <= MAX_DEVICE_ID
  );
}

function isKey(x: unknown): x is string {
  return typeof x === 'string' && x.length <= MAX_KEY_CHARS;
}

function isBody(x: unknown): x is string {
  if (typeof x !== 'string' || x.length === 0 || x.length > MAX_CARRIED_BODY_CHARS || x.length % 4 !== 0 || !BASE64_TEXT.test(x)) return false;
  // Canonical, as clients decode it (whole quads, zero bits after the last byte): the last quad
  // holds the padding, so checking it alone is enough after the pattern.
  return base64DecodedLength(x.slice(-4)) > 0;
}

function isWireMessage(x: unknown): x is WireMessage {
  return (
    Array.isArray(x) &&
    x.length === 8 &&
    isKey(x[0]) &&
    // A stored message's id (from 1), and the one before it in its queue (0: none).
    Number.isSafeInteger(x[1]) &&
    (x[1] as number) >= 1 &&
    Number.isSafeInteger(x[2]) &&
    (x[2] as number) >= 0 &&
    Object.prototype.hasOwnProperty.call(CIPHERTEXT_TYPE_OF_KIND, x[3] as number) &&
    isSource(x[4], x[5]) &&
    // Written into the frame as is: a negative timestamp is a frame every client refuses.
    Number.isSafeInteger(x[6]) &&
    (x[6] as number) >= 0 &&
    isBody(x[7])
  );
}

function isWireEphemeral(x: unknown): x is WireEphemeral {
  return (
    Array.isArray(x) &&
    x.length === 6 &&
    isKey(x[0]) &&
    typeof x[1] === 'string' &&
    Object.prototype.hasOwnProperty.call(CIPHERTEXT_TYPES, x[1]) &&
    isSource(x[2], x[3]) &&
    Number.isSafeInteger(x[4]) &&
    (x[4] as number) >= 0 &&
    isBody(x[5])
  );
}

export class RedisCluster implements Cluster {
  readonly nodeId = randomBytes(8).toString('hex');
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #channel: string;

  /** `pub` and `sub` must be two connections (a subscribed connection can only subscribe). */
  constructor(pub: Redis, sub: Redis, prefix = 'tacit:') {
    this.#pub = pub;
    this.#sub = sub;
    this.#channel = `${prefix}events`;
  }

  async start(h: ClusterHandlers): Promise<void> {
    // This node's own events come back too (one channel): skip them by their first bytes, before
    // decoding or parsing them. Raw bytes ('messageBuffer'; with no 'message' listener ioredis
    // decodes nothing), decoded as latin1: an event is ASCII (see #publish), and anything else
    // fails the checks below.
    const channel = Buffer.from(this.#channel);
    const own = Buffer.from(`"n":"${this.nodeId}"`);
    this.#sub.on('messageBuffer', (from: Buffer, raw: Buffer) => {
      if (!channel.equals(from) || !Buffer.isBuffer(raw) || raw.length > MAX_EVENT_CHARS) return;
      // (compare throws past the buffer's end: a short text is checked for length first)
      if (raw.length >= OWN_AT + own.length && raw.compare(own, 0, own.length, OWN_AT, OWN_AT + own.length) === 0) return;
      const text = raw.toString('latin1');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return;
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return;
      const e = parsed as Partial<Record<'t' | 'n' | 'k' | 'm', unknown>>;
      if (e.n === this.nodeId) return;
      const list = Array.isArray(e.m) && e.m.length <= MAX_KEYS_PER_EVENT ? (e.m as unknown[]) : [];
      if (e.t === 'd' && Array.isArray(e.k) && e.k.length <= MAX_KEYS_PER_EVENT) {
        const keys = e.k.filter(isKey);
        const messages: RemoteMessage[] = [];
        for (const m of list) {
          if (!isWireMessage(m)) continue;
          const [key, id, after, kind, username, deviceId, timestamp, bodyB64] = m;
          messages.push({ key, id, after, kind: kind as CiphertextKind, from: { username, deviceId }, timestamp, bodyB64 });
        }
        h.onDeliver(keys, messages);
      } else if (e.t === 'c' && isKey(e.k)) h.onConnected(e.k);
      else if (e.t === 'e') {
        const messages: RemoteEphemeral[] = [];
        for (const m of list) {
          if (!isWireEphemeral(m)) continue;
          const [key, type, username, deviceId, timestamp, bodyB64] = m;
          messages.push({ key, type: type as CiphertextType, from: { username, deviceId }, timestamp, bodyB64 });
        }
        if (messages.length > 0) h.onEphemeral(messages);
      }
    });
    await this.#sub.subscribe(this.#channel);
  }

  #publish(e: Event): void {
    // Fire and forget: the store is the source of truth; an event only makes delivery prompt.
    // As a Buffer: given a string, ioredis measures its UTF-8 length (Buffer.byteLength) and
    // then encodes it again to write it, two passes over every body that were most of the
    // cross-node cost in bench:cluster's profiles. Every field of an event is ASCII (addressKeys
    // and usernames of USERNAME_PATTERN, base64 bodies, type names, digits), so latin1 is its
    // exact encoding and a plain copy.
    this.#pub.publish(this.#channel, Buffer.from(JSON.stringify(e), 'latin1')).catch(() => undefined);
  }

  publishDeliver(keys: string[], messages: RemoteMessage[] = []): void {
    let k: string[] = [];
    let m: WireMessage[] = [];
    let chars = 0;
    const flush = () => {
      if (k.length === 0 && m.length === 0) return;
      this.#publish(m.length > 0 ? { t: 'd', n: this.nodeId, k, m } : { t: 'd', n: this.nodeId, k });
      k = [];
      m = [];
      chars = 0;
    };
    for (const key of keys) {
      if (k.length + m.length >= MAX_KEYS_PER_EVENT) flush();
      k.push(key);
    }
    for (const x of messages) {
      if (x.bodyB64.length > MAX_CARRIED_BODY_CHARS) {
        if (k.length + m.length >= MAX_KEYS_PER_EVENT) flush();
        k.push(x.key);
        continue;
      }
      if (k.length + m.length >= MAX_KEYS_PER_EVENT || chars + x.bodyB64.length > MAX_EVENT_BODY_CHARS) flush();
      m.push([x.key, x.id, x.after, x.kind, x.from.username, x.from.deviceId, x.timestamp, x.bodyB64]);
      chars += x.bodyB64.length;
    }
    flush();
  }

  publishConnected(key: string): void {
    this.#publish({ t: 'c', n: this.nodeId, k: key });
  }

  publishEphemeral(messages: RemoteEphemeral[]): number {
    let m: WireEphemeral[] = [];
    let chars = 0;
    let handed = 0;
    const flush = () => {
      if (m.length > 0) this.#publish({ t: 'e', n: this.nodeId, m });
      m = [];
      chars = 0;
    };
    for (const x of messages) {
      if (x.bodyB64.length > MAX_CARRIED_BODY_CHARS) continue;
      if (m.length >= MAX_KEYS_PER_EVENT || chars + x.bodyB64.length > MAX_EVENT_BODY_CHARS) flush();
      m.push([x.key, x.type, x.from.username, x.from.deviceId, x.timestamp, x.bodyB64]);
      chars += x.bodyB64.length;
      handed++;
    }
    flush();
    return handed;
  }

  async close(): Promise<void> {
    await this.#sub.unsubscribe(this.#channel).catch(() => undefined);
  }
}
