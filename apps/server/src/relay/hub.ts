/**
 * The hub of connected devices: every open socket, the authenticated connection of each device
 * (at most one; a newer one replaces it) and the count of sockets not yet authenticated. Every way
 * a connection ends goes through here, so the counts stay exact. Connections per account are
 * counted by the connection registry (rate.ts: this process, or every node through Redis); the
 * hub releases a connection's hold there when it ends.
 */
import type { ErrorCode } from '@tacit/api';
import type { Limits } from '../config.js';
import type { ConnectionRegistry } from '../rate.js';
import { addressKey, type Address } from '../store.js';
import type { Connection, ConnectionState } from './connection.js';

export class Hub {
  readonly #limits: Pick<Limits, 'maxUnauthenticatedConnections'>;
  readonly #registry: ConnectionRegistry;
  readonly #all = new Set<Connection>();
  readonly #devices = new Map<string, Connection>();
  #unauthenticated = 0;

  constructor(limits: Pick<Limits, 'maxUnauthenticatedConnections'>, registry: ConnectionRegistry) {
    this.#limits = limits;
    this.#registry = registry;
  }

  /** Counts for tests and health: open sockets and authenticated devices. */
  get stats(): { sockets: number; devices: number; unauthenticated: number } {
    return { sockets: this.#all.size, devices: this.#devices.size, unauthenticated: this.#unauthenticated };
  }

  /** Every open socket, authenticated or not. */
  get all(): ReadonlySet<Connection> {
    return this.#all;
  }

  /** Adds a new, unauthenticated socket; false (and the caller closes it) when there are too many. */
  add(conn: Connection): boolean {
    this.#all.add(conn);
    this.#unauthenticated++;
    return this.#unauthenticated <= this.#limits.maxUnauthenticatedConnections;
  }

  /** The connection of the device with this `addressKey`, if it is connected here. */
  get(key: string): Connection | undefined {
    return this.#devices.get(key);
  }

  /**
   * Makes `conn` (whose hold the registry has granted) the connection of `device`, replacing (and
   * closing) an older one of the same device.
   */
  attach(conn: Connection, device: Address): void {
    const key = addressKey(device);
    const old = this.#devices.get(key);
    if (old !== undefined) this.fail(old, 'REPLACED', 'another connection for this device authenticated');
    clearTimeout(conn.authTimer);
    this.#unauthenticated--;
    conn.state = 'ready';
    conn.device = device;
    conn.key = key;
    this.#devices.set(key, conn);
  }

  /** The registry holds of every device connected here (refreshed on each heartbeat). */
  holds(): { account: string; deviceId: number; owner: string }[] {
    return [...this.#devices.values()].map((c) => ({ account: c.device!.username, deviceId: c.device!.deviceId, owner: c.owner }));
  }

  /** Sends an error frame, closes with the code's close code and forgets the connection. */
  fail(conn: Connection, code: ErrorCode, message: string): void {
    if (conn.state === 'closed') return;
    this.#forget(conn, conn.close(code, message));
  }

  /** The socket closed (by the peer or after `fail`). */
  closed(conn: Connection): void {
    const was = conn.state;
    conn.state = 'closed';
    clearTimeout(conn.authTimer);
    this.#forget(conn, was);
  }

  #forget(conn: Connection, was: ConnectionState): void {
    this.#all.delete(conn);
    if (was === 'unauthenticated' || was === 'authenticating') this.#unauthenticated--;
    if (was === 'ready') this.#detach(conn);
  }

  /** Removes a ready connection from the device map and releases its hold (once). */
  #detach(conn: Connection): void {
    if (conn.device === undefined || this.#devices.get(conn.key) !== conn) return;
    this.#devices.delete(conn.key);
    void this.#registry.release(conn.device.username, conn.device.deviceId, conn.owner);
  }
}
