/**
 * The WebSocket relay and mailbox delivery: a facade over its parts in `relay/`.
 *
 * - `connections.ts`: accepting sockets, authentication, frames, heartbeat;
 * - `hub.ts`: the connected devices (one connection per device, counts per account);
 * - `writer.ts`: batched durable writes of sends and acks (one transaction per event-loop turn);
 * - `delivery.ts`: `sent` answers, live delivery and paging queues from the store;
 * - `connection.ts`: one connection's state.
 *
 * Durability: every `send` goes into the store before its `sent`.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { ROUTES, type ErrorCode } from '@tacit/api';
import type { Context } from './context.js';
import { addressKey, type Address } from './store.js';
import type { RemoteEphemeral, RemoteMessage } from './cluster.js';
import { Connections } from './relay/connections.js';
import { Delivery } from './relay/delivery.js';
import { Hub } from './relay/hub.js';
import { BatchWriter } from './relay/writer.js';
import { SendQuotas } from './relay/quotas.js';

export { messageFrameText } from './relay/delivery.js';

export class Relay {
  readonly #wss: WebSocketServer;
  readonly #hub: Hub;
  readonly #writer: BatchWriter;
  readonly #connections: Connections;
  readonly #delivery: Delivery;
  #closing = false;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #clientAddress: (req: IncomingMessage) => string;

  constructor(ctx: Context) {
    const l = ctx.limits;
    this.#clientAddress = ctx.clientAddress;
    this.#hub = new Hub(l, ctx.limiters.connections);
    this.#delivery = new Delivery(ctx, this.#hub, (conn, e) => this.#connections.internal(conn, e));
    const sendRate = ctx.limiters.bucket('send', { burst: l.sendBurst, perSecond: l.sendRatePerSecond });
    this.#writer = new BatchWriter(ctx.store, l.maxQueuePerDevice, ctx.log, this.#delivery, sendRate, ctx.now, new SendQuotas(ctx.limiters, l));
    this.#connections = new Connections(ctx, this.#hub, this.#writer, this.#delivery);
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: l.maxFrameBytes, perMessageDeflate: false, clientTracking: false });
    this.#heartbeat = setInterval(() => this.#connections.beat(), l.heartbeatIntervalMs);
    this.#heartbeat.unref();
  }

  /** Counts for tests and health: open sockets and authenticated devices. */
  get stats(): { sockets: number; devices: number; unauthenticated: number } {
    return this.#hub.stats;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      url = new URL('http://localhost/');
    }
    // First: Node hands an upgraded socket over without its own error listener, and a peer that
    // resets as the refusal below is written would otherwise raise an uncaught 'error'.
    socket.on('error', () => socket.destroy());
    if (url.pathname !== ROUTES.ws || this.#closing) {
      socket.end(this.#closing ? 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    const ticket = url.searchParams.get('ticket');
    const address = this.#clientAddress(req);
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#connections.accept(ws, ticket, address));
  }

  /** Another node stored messages for these devices: hand them over, or page their queues. */
  onDeliver(keys: string[], messages: RemoteMessage[] = []): void {
    this.#delivery.wake(keys);
    this.#delivery.deliverRemote(messages);
  }

  /** Another node's ephemeral send (a typing indicator): pushed to the devices connected here. */
  onEphemeral(messages: RemoteEphemeral[]): void {
    this.#connections.ephemeral.deliverRemote(messages);
  }

  /** Another node took this device's socket. */
  onConnected(key: string): void {
    const c = this.#hub.get(key);
    if (c) this.#hub.fail(c, 'REPLACED', 'another connection for this device authenticated');
  }

  /** Closes a device's connection, e.g. when the device is removed. */
  disconnect(device: Address, code: ErrorCode, message: string): void {
    const c = this.#hub.get(addressKey(device));
    if (c) this.#hub.fail(c, code, message);
  }

  /** True once the node is shutting down: new sockets are refused and /healthz says 503. */
  get draining(): boolean {
    return this.#closing;
  }

  /** Refuses new sockets from now on (the first step of a drain). */
  drain(): void {
    this.#closing = true;
  }

  /**
   * Drains: refuses new sockets, stops reading, writes (and answers) everything already
   * received, then closes every socket with RECONNECT_ELSEWHERE, so clients reconnect at once,
   * through the load balancer, to another node.
   */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#heartbeat);
    // Stop reading, then write everything already received (and answer it) before the store may
    // close; only then close the sockets.
    for (const c of this.#hub.all) c.ws.pause();
    await this.#writer.written();
    for (const c of [...this.#hub.all]) this.#hub.fail(c, 'RECONNECT_ELSEWHERE', 'this node is shutting down; reconnect');
    this.#wss.close();
  }
}
