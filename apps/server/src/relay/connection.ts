/**
 * One WebSocket connection: its authentication state, its frame bucket, what has been pushed to
 * it and not acknowledged, and how it writes and closes. Bookkeeping across connections lives in
 * the hub.
 */
import type { RawData, WebSocket } from 'ws';
import { ERRORS, type ErrorCode, type ServerFrame } from '@tacit/api';
import type { Address, CiphertextKind } from '../store.js';

export type ConnectionState = 'unauthenticated' | 'authenticating' | 'ready' | 'closed';

/** How long a peer may take to complete the closing handshake before its socket is destroyed. */
const CLOSE_GRACE_MS = 5000;

export class Connection {
  state: ConnectionState = 'unauthenticated';
  device: Address | undefined;
  /** Names this connection in the connection registry: unique across nodes. */
  readonly owner: string;
  /** `addressKey(device)` once ready. */
  key = '';
  /** Ids pushed and not yet acknowledged. */
  readonly inflight = new Set<number>();
  /**
   * Several nodes: messages that arrived before an older one another node stored (on its way
   * through Redis), by the id they follow; pushed once it is (relay/delivery.ts).
   */
  readonly waiting = new Map<number, { id: number; kind: CiphertextKind; from: Address; timestamp: number; bodyB64: string }>();
  waitTimer: NodeJS.Timeout | undefined;
  /** Highest message id handed to this connection. */
  cursor = 0;
  /** The store may hold messages for this device beyond `cursor`. */
  backlog = true;
  fetching = false;
  queueEmptySent = false;
  pendingSends = 0;
  /** The client said `batched` in its `auth`: its sends are answered by batched `sent` frames. */
  batched = false;
  /**
   * Sends that name their device list (SendFrame.devices) wait for that check, in arrival order;
   * sends after them wait too. `checkedPending` says whether any is still waiting.
   */
  checkedSends: Promise<void> = Promise.resolve();
  #checked = 0;
  checkedPending(): boolean {
    return this.#checked > 0;
  }
  /** Runs `step` after the sends already waiting, counting it as waiting until it ran. */
  afterChecked(step: () => Promise<void> | void): void {
    this.#checked++;
    this.checkedSends = this.checkedSends.then(step).catch(() => undefined).finally(() => {
      this.#checked--;
    });
  }
  alive = true;
  /**
   * The device's stored secret hash when it authenticated. Each heartbeat compares it with the
   * store, so a device removed by `reset-account` (or re-registered under the same address) is
   * disconnected within one interval instead of keeping its socket.
   */
  authHash: Uint8Array | undefined;
  /** Frames received while authentication is being checked. */
  held: { data: RawData; isBinary: boolean }[] = [];
  authTimer: NodeJS.Timeout | undefined;
  #tokens: number;
  #tokensAt: number;
  /** Told the code of every refusal sent on this connection (GET /metrics). */
  onRefusal: ((code: ErrorCode) => void) | undefined;

  constructor(
    readonly ws: WebSocket,
    burst: number,
    now: number,
    owner: string,
    /** The client's address (the socket's peer, or as a trusted proxy said), for per-address budgets. */
    readonly address: string,
  ) {
    this.owner = owner;
    this.#tokens = burst;
    this.#tokensAt = now;
  }

  get pending(): boolean {
    return this.state === 'unauthenticated' || this.state === 'authenticating';
  }

  /** Takes one frame from the per-connection bucket; false when it is empty. */
  takeFrameToken(now: number, burst: number, ratePerSecond: number): boolean {
    this.#tokens = Math.min(burst, this.#tokens + ((now - this.#tokensAt) * ratePerSecond) / 1000);
    this.#tokensAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Writes a frame's text unless the connection is closed. */
  send(text: string): void {
    if (this.state === 'closed') return;
    this.ws.send(text);
  }

  reply(frame: ServerFrame): void {
    if (frame.type === 'error' && this.state !== 'closed') this.onRefusal?.(frame.code);
    this.send(JSON.stringify(frame));
  }

  /**
   * Sends an error frame, closes with the code's close code (the reason is the code) and marks
   * the connection closed. Returns the state it was in, for the hub's bookkeeping.
   */
  close(code: ErrorCode, message: string): ConnectionState {
    const was = this.state;
    // Moving a device's socket elsewhere is not a refusal.
    if (was !== 'closed' && code !== 'REPLACED' && code !== 'RECONNECT_ELSEWHERE') this.onRefusal?.(code);
    try {
      this.ws.send(JSON.stringify({ type: 'error', code, message } satisfies ServerFrame));
      this.ws.close(ERRORS[code].close, code);
    } catch {
      this.ws.terminate();
    }
    this.state = 'closed';
    clearTimeout(this.authTimer);
    // A peer that never completes the closing handshake must not hold the socket.
    const t = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
    t.unref();
    return was;
  }

  /**
   * Holds this socket's writes until `uncork`, so a batch's frames leave in one write. ws does
   * not expose cork(); its socket is `_socket`, a net.Socket. Guarded, so a ws version without it
   * only loses the batching, not correctness. Returns whether it corked.
   */
  cork(): boolean {
    if (this.state === 'closed') return false;
    const s = socketOf(this.ws);
    if (s === undefined) return false;
    s.cork();
    return true;
  }

  uncork(): void {
    socketOf(this.ws)?.uncork();
  }
}

function socketOf(ws: WebSocket): { cork(): void; uncork(): void } | undefined {
  const s = (ws as unknown as { _socket?: { cork?: unknown; uncork?: unknown } })._socket;
  return s !== undefined && typeof s.cork === 'function' && typeof s.uncork === 'function' ? (s as { cork(): void; uncork(): void }) : undefined;
}
