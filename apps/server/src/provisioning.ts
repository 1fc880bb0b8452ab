/**
 * Provisioning channels (linking a device, packages/api/src/linking.ts): short-lived,
 * unauthenticated WebSockets on `GET /v1/provisioning`, each with a random address. An
 * authenticated device of any account may put one opaque, encrypted message on a channel; the
 * server hands it over and closes the channel. Nothing is stored: a channel and its message live
 * in this node's memory only, so in a cluster the new device and the sending device must reach
 * the same node (docs/OPERATIONS.md).
 *
 * Bounds: PROVISIONING_CHANNEL_TTL_MS per channel, MAX_PROVISIONING_CHANNELS per node and
 * MAX_PROVISIONING_CHANNELS_PER_ADDRESS per client address; the socket accepts no frames from the
 * device (any frame closes it), and the message is at most MAX_PROVISIONING_MESSAGE_BYTES.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ERRORS, MAX_PROVISIONING_CHANNELS, MAX_PROVISIONING_CHANNELS_PER_ADDRESS, type ProvisioningFrame } from '@tacit/api';
import { newToken } from './secrets.js';

/** Bytes of entropy in a channel address (22 base64url characters): unguessable. */
export const PROVISIONING_ADDRESS_BYTES = 16;
/** Largest frame the server reads on a provisioning socket (it expects none). */
const MAX_INBOUND_FRAME_BYTES = 1024;

interface Channel {
  ws: WebSocket;
  client: string;
  timer: NodeJS.Timeout;
}

export class ProvisioningChannels {
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: MAX_INBOUND_FRAME_BYTES, perMessageDeflate: false, clientTracking: false });
  readonly #channels = new Map<string, Channel>();
  readonly #perClient = new Map<string, number>();
  readonly #ttlMs: number;
  readonly #now: () => number;
  #closing = false;

  constructor(opts: { ttlMs: number; now: () => number }) {
    this.#ttlMs = opts.ttlMs;
    this.#now = opts.now;
  }

  get open(): number {
    return this.#channels.size;
  }

  /** Accepts an upgrade on the provisioning path from client address `client`, or refuses it with an HTTP status. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, client: string): void {
    // First, as in relay.ts: a peer that resets as a refusal is written must not raise an uncaught 'error'.
    socket.on('error', () => socket.destroy());
    const refuse = (status: string): void => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
    };
    if (this.#closing) return refuse('503 Service Unavailable');
    if (this.#channels.size >= MAX_PROVISIONING_CHANNELS || (this.#perClient.get(client) ?? 0) >= MAX_PROVISIONING_CHANNELS_PER_ADDRESS) return refuse('429 Too Many Requests');
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, client));
  }

  #accept(ws: WebSocket, client: string): void {
    const address = newToken(PROVISIONING_ADDRESS_BYTES);
    const expiresAt = this.#now() + this.#ttlMs;
    const timer = setTimeout(() => this.#close(address, 1000, 'expired'), this.#ttlMs);
    timer.unref();
    this.#channels.set(address, { ws, client, timer });
    this.#perClient.set(client, (this.#perClient.get(client) ?? 0) + 1);
    ws.on('error', () => ws.terminate());
    // The new device only listens: anything it sends is a protocol error.
    ws.on('message', () => this.#close(address, ERRORS.INVALID_REQUEST.close, 'INVALID_REQUEST'));
    ws.on('close', () => this.#forget(address));
    const frame: ProvisioningFrame = { type: 'address', address, expiresAt };
    ws.send(JSON.stringify(frame));
  }

  /** Hands `bodyB64` to the channel at `address` and closes it; false when no channel listens there. */
  deliver(address: string, bodyB64: string): boolean {
    const c = this.#channels.get(address);
    if (c === undefined || c.ws.readyState !== c.ws.OPEN) return false;
    const frame: ProvisioningFrame = { type: 'provision', body: bodyB64 };
    // Gone from the map at once: a second message to the same address finds no channel.
    this.#forget(address);
    c.ws.send(JSON.stringify(frame), () => c.ws.close(1000, 'provisioned'));
    return true;
  }

  #close(address: string, code: number, reason: string): void {
    const c = this.#channels.get(address);
    if (c === undefined) return;
    this.#forget(address);
    c.ws.close(code, reason);
  }

  #forget(address: string): void {
    const c = this.#channels.get(address);
    if (c === undefined) return;
    clearTimeout(c.timer);
    this.#channels.delete(address);
    const n = (this.#perClient.get(c.client) ?? 1) - 1;
    if (n <= 0) this.#perClient.delete(c.client);
    else this.#perClient.set(c.client, n);
  }

  close(): void {
    this.#closing = true;
    for (const a of [...this.#channels.keys()]) this.#close(a, ERRORS.UNAVAILABLE.close, 'UNAVAILABLE');
    this.#wss.close();
  }
}
