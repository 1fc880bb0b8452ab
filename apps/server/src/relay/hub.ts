/**
 * The hub of connected devices: every open socket, the authenticated connection of each device
 * (at most one; a newer one replaces it) and the count of sockets not yet authenticated. Every way
 * a connection ends goes through here, so the counts stay exact.
 *
 * Sockets not yet authenticated have a budget of their own, apart from authenticated ones: at
 * most `maxUnauthenticatedPerAddress` per source address (an IPv6 address counts by its /64, which
 * one host usually holds whole), and `maxUnauthenticatedConnections` on the node. A new socket
 * over its address's budget is refused; one over the node's budget is admitted and the oldest
 * unauthenticated socket of the address holding the most is closed instead, so sockets that never
 * authenticate cannot keep a genuine client from another address (or a newer one) out. Connections per account are
 * counted by the connection registry (rate.ts: this process, or every node through Redis); the
 * hub releases a connection's hold there when it ends.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { ErrorCode } from '@tacit/api';
import type { Limits } from '../config.js';
import type { ConnectionRegistry } from '../rate.js';
import { addressKey, type Address } from '../store.js';
import type { Connection, ConnectionState } from './connection.js';

export class Hub {
  readonly #limits: Pick<Limits, 'maxUnauthenticatedConnections' | 'maxUnauthenticatedPerAddress'>;
  readonly #registry: ConnectionRegistry;
  readonly #all = new Set<Connection>();
  readonly #devices = new Map<string, Connection>();
  #unauthenticated = 0;
  /** Unauthenticated sockets by source address (`addressBudgetKey`), oldest first. */
  readonly #pendingByAddress = new Map<string, Set<Connection>>();

  constructor(limits: Pick<Limits, 'maxUnauthenticatedConnections' | 'maxUnauthenticatedPerAddress'>, registry: ConnectionRegistry) {
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

  /**
   * Adds a new, unauthenticated socket; false (and the caller closes it) when its address already
   * holds its budget. Over the node's budget, the oldest unauthenticated socket of the busiest
   * address is closed to make room.
   */
  add(conn: Connection): boolean {
    this.#all.add(conn);
    this.#unauthenticated++;
    const key = addressBudgetKey(conn.address);
    let mine = this.#pendingByAddress.get(key);
    if (mine === undefined) {
      mine = new Set();
      this.#pendingByAddress.set(key, mine);
    }
    mine.add(conn);
    if (mine.size > this.#limits.maxUnauthenticatedPerAddress) return false;
    if (this.#unauthenticated > this.#limits.maxUnauthenticatedConnections) {
      let busiest: Set<Connection> = mine;
      for (const set of this.#pendingByAddress.values()) if (set.size > busiest.size) busiest = set;
      const oldest = busiest.values().next().value;
      if (oldest === undefined || oldest === conn) return false;
      this.fail(oldest, 'UNAVAILABLE', 'too many unauthenticated connections');
    }
    return true;
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
    this.#authenticated(conn);
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
    if (was === 'unauthenticated' || was === 'authenticating') this.#authenticated(conn);
    if (was === 'ready') this.#detach(conn);
  }

  /** `conn` no longer counts against the unauthenticated budgets (it authenticated or ended). */
  #authenticated(conn: Connection): void {
    this.#unauthenticated--;
    const key = addressBudgetKey(conn.address);
    const mine = this.#pendingByAddress.get(key);
    if (mine === undefined) return;
    mine.delete(conn);
    if (mine.size === 0) this.#pendingByAddress.delete(key);
  }

  /** Removes a ready connection from the device map and releases its hold (once). */
  #detach(conn: Connection): void {
    if (conn.device === undefined || this.#devices.get(conn.key) !== conn) return;
    this.#devices.delete(conn.key);
    void this.#registry.release(conn.device.username, conn.device.deviceId, conn.owner);
  }
}

/**
 * The key an address's unauthenticated budget is counted under: an IPv4 address as is (also when
 * written IPv4-mapped, `::ffff:10.0.0.5`), an IPv6 address by its first 64 bits (one host usually
 * holds a whole /64, so counting single IPv6 addresses would budget nothing).
 */
export function addressBudgetKey(address: string): string {
  if (isIPv4(address)) return address;
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) return address.slice(7);
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('%')[0]!.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':') + '::/64';
}
