/**
 * Several server nodes behind one load balancer: Redis pub/sub carries what one node must tell
 * the others. Two events:
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
 *
 * Every node receives every event (one channel): simple, and right for a few nodes; at many
 * nodes each one parses everyone's cross-node traffic (docs/OPERATIONS.md, "Capacity").
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
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

export interface ClusterHandlers {
  onDeliver(keys: string[], messages: RemoteMessage[]): void;
  onConnected(key: string): void;
}

export interface Cluster {
  readonly nodeId: string;
  start(handlers: ClusterHandlers): Promise<void>;
  /** `keys`: devices with new mail to page from the store; `messages`: new mail to hand over directly. */
  publishDeliver(keys: string[], messages?: RemoteMessage[]): void;
  publishConnected(key: string): void;
  close(): Promise<void>;
}

/** A message in an event, compact: [key, id, after, kind, username, deviceId, timestamp, body]. */
type WireMessage = [string, number, number, number, string, number, number, string];
type Event = { t: 'd'; n: string; k: string[]; m?: WireMessage[] } | { t: 'c'; n: string; k: string };

/** Bounds a deliver event's keys and messages; a larger batch is split. */
const MAX_KEYS_PER_EVENT = 1000;
/**
 * Body bytes (base64) one event may carry. Bigger messages go as keys only (the receiving node
 * reads them from the store): events stay small for Redis and for every node that parses them,
 * and the common chat message (well under a kilobyte) still travels in the event.
 */
const MAX_EVENT_BODY_CHARS = 256 * 1024;
/** A body larger than this never travels in an event. */
const MAX_CARRIED_BODY_CHARS = 16 * 1024;

function isWireMessage(x: unknown): x is WireMessage {
  return (
    Array.isArray(x) &&
    x.length === 8 &&
    typeof x[0] === 'string' &&
    Number.isSafeInteger(x[1]) &&
    Number.isSafeInteger(x[2]) &&
    Object.prototype.hasOwnProperty.call(CIPHERTEXT_TYPE_OF_KIND, x[3] as number) &&
    typeof x[4] === 'string' &&
    Number.isSafeInteger(x[5]) &&
    Number.isSafeInteger(x[6]) &&
    typeof x[7] === 'string'
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
    // This node's own events come back too (one channel): skip them before parsing their bodies.
    const own = [`{"t":"d","n":"${this.nodeId}"`, `{"t":"c","n":"${this.nodeId}"`];
    this.#sub.on('message', (channel: string, text: string) => {
      if (channel !== this.#channel || text.startsWith(own[0]!) || text.startsWith(own[1]!)) return;
      let e: Event;
      try {
        e = JSON.parse(text) as Event;
      } catch {
        return;
      }
      if (e.n === this.nodeId) return;
      if (e.t === 'd' && Array.isArray(e.k)) {
        const keys = e.k.filter((k): k is string => typeof k === 'string');
        const messages: RemoteMessage[] = [];
        for (const m of Array.isArray(e.m) ? (e.m as unknown[]) : []) {
          if (!isWireMessage(m)) continue;
          const [key, id, after, kind, username, deviceId, timestamp, bodyB64] = m;
          messages.push({ key, id, after, kind: kind as CiphertextKind, from: { username, deviceId }, timestamp, bodyB64 });
        }
        h.onDeliver(keys, messages);
      } else if (e.t === 'c' && typeof e.k === 'string') h.onConnected(e.k);
    });
    await this.#sub.subscribe(this.#channel);
  }

  #publish(e: Event): void {
    // Fire and forget: the store is the source of truth; an event only makes delivery prompt.
    this.#pub.publish(this.#channel, JSON.stringify(e)).catch(() => undefined);
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

  async close(): Promise<void> {
    await this.#sub.unsubscribe(this.#channel).catch(() => undefined);
  }
}
