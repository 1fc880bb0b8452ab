/**
 * Several server nodes behind one load balancer: Redis pub/sub carries what one node must tell
 * the others. Two events:
 *
 * - deliver(keys): messages were stored for these devices; a node holding one of their sockets
 *   pages its queue from the shared store (the store, not the event, carries the message, so a
 *   lost event delays delivery until the next reconnect or event, and loses nothing).
 * - connected(key): this node now holds the device's socket; any other node holding an older
 *   socket for it closes that with REPLACED.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface ClusterHandlers {
  onDeliver(keys: string[]): void;
  onConnected(key: string): void;
}

export interface Cluster {
  readonly nodeId: string;
  start(handlers: ClusterHandlers): Promise<void>;
  publishDeliver(keys: string[]): void;
  publishConnected(key: string): void;
  close(): Promise<void>;
}

type Event = { t: 'd'; n: string; k: string[] } | { t: 'c'; n: string; k: string };

/** Bounds a deliver event; a larger batch is split. */
const MAX_KEYS_PER_EVENT = 1000;

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
    this.#sub.on('message', (channel: string, text: string) => {
      if (channel !== this.#channel) return;
      let e: Event;
      try {
        e = JSON.parse(text) as Event;
      } catch {
        return;
      }
      if (e.n === this.nodeId) return;
      if (e.t === 'd' && Array.isArray(e.k)) h.onDeliver(e.k.filter((k): k is string => typeof k === 'string'));
      else if (e.t === 'c' && typeof e.k === 'string') h.onConnected(e.k);
    });
    await this.#sub.subscribe(this.#channel);
  }

  #publish(e: Event): void {
    // Fire and forget: the store is the source of truth; an event only makes delivery prompt.
    this.#pub.publish(this.#channel, JSON.stringify(e)).catch(() => undefined);
  }

  publishDeliver(keys: string[]): void {
    for (let i = 0; i < keys.length; i += MAX_KEYS_PER_EVENT) this.#publish({ t: 'd', n: this.nodeId, k: keys.slice(i, i + MAX_KEYS_PER_EVENT) });
  }

  publishConnected(key: string): void {
    this.#publish({ t: 'c', n: this.nodeId, k: key });
  }

  async close(): Promise<void> {
    await this.#sub.unsubscribe(this.#channel).catch(() => undefined);
  }
}
