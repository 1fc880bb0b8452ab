/**
 * The hub of connected devices: every open socket, the authenticated connection of each device
 * (at most one; a newer one replaces it), connections per account and the count of sockets not
 * yet authenticated. Every way a connection ends goes through here, so the counts stay exact.
 */
import type { ErrorCode } from '@tacit/api';
import type { Limits } from '../config.js';
import { addressKey, type Address } from '../store.js';
import type { Connection, ConnectionState } from './connection.js';

export class Hub {
  readonly #limits: Pick<Limits, 'maxConnectionsPerAccount' | 'maxUnauthenticatedConnections'>;
  readonly #all = new Set<Connection>();
  readonly #devices = new Map<string, Connection>();
  readonly #perAccount = new Map<string, number>();
  #unauthenticated = 0;

  constructor(limits: Pick<Limits, 'maxConnectionsPerAccount' | 'maxUnauthenticatedConnections'>) {
    this.#limits = limits;
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
   * Makes `conn` the connection of `device`, replacing (and closing) an older one of the same
   * device. Refuses a new device of an account that already has its maximum of connections.
   */
  attach(conn: Connection, device: Address): 'ok' | 'TOO_MANY_CONNECTIONS' {
    const key = addressKey(device);
    const old = this.#devices.get(key);
    const count = this.#perAccount.get(device.username) ?? 0;
    if (old === undefined && count >= this.#limits.maxConnectionsPerAccount) return 'TOO_MANY_CONNECTIONS';
    if (old !== undefined) this.fail(old, 'REPLACED', 'another connection for this device authenticated');
    clearTimeout(conn.authTimer);
    this.#unauthenticated--;
    conn.state = 'ready';
    conn.device = device;
    conn.key = key;
    this.#devices.set(key, conn);
    this.#perAccount.set(device.username, (this.#perAccount.get(device.username) ?? 0) + 1);
    return 'ok';
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

  /** Removes a ready connection from the device map and account count (once). */
  #detach(conn: Connection): void {
    if (conn.device === undefined || this.#devices.get(conn.key) !== conn) return;
    this.#devices.delete(conn.key);
    const n = (this.#perAccount.get(conn.device.username) ?? 1) - 1;
    if (n <= 0) this.#perAccount.delete(conn.device.username);
    else this.#perAccount.set(conn.device.username, n);
  }
}
