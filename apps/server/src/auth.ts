/**
 * Device authentication, shared by the HTTP routes and the relay: a device's credentials
 * (username, device id, secret; in an `Authorization` header or an `auth` frame), single-use
 * WebSocket tickets, and the relay heartbeat's check that a connected device still has the
 * credentials it authenticated with.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { parseAuthorizationHeader } from '@tacit/api';
import { bytes } from './bytes.js';
import type { Context } from './context.js';
import { ServerError } from './errors.js';
import { tokenHash, verifySecret } from './secrets.js';
import type { Address } from './store.js';

/** Longest ticket accepted in a URL before hashing (tickets are 43 characters). */
export const MAX_TICKET_LENGTH = 128;

/** A fixed salt/hash pair so an unknown device costs the same HMAC as a known one. */
const DUMMY_SALT = new Uint8Array(16);
const DUMMY_HASH = new Uint8Array(32);

/** A device that proved its credentials, and the stored secret hash it proved them against. */
export interface Authenticated {
  device: Address;
  secretHash: Uint8Array;
}

/**
 * Checks a device's credentials, presented from client address `address`; undefined if they are
 * wrong (without saying which part). Throws RATE_LIMITED while the address has failed too often
 * (login-throttle.ts), without checking them.
 */
export async function checkCredentials(
  ctx: Context,
  c: { username: string; deviceId: number; secret: string },
  address: string,
): Promise<Authenticated | undefined> {
  if (ctx.loginThrottle.refused(address, ctx.now())) throw new ServerError('RATE_LIMITED', 'too many failed logins from this address; wait a minute');
  const device = { username: c.username, deviceId: c.deviceId };
  const auth = await ctx.store.getDeviceAuth(device);
  const ok = verifySecret(auth?.secretSalt ?? DUMMY_SALT, auth?.secretHash ?? DUMMY_HASH, bytes(c.secret));
  if (auth !== undefined && ok) return { device, secretHash: auth.secretHash };
  await ctx.loginThrottle.failed(address, ctx.now());
  return undefined;
}

/** An HTTP request as authentication needs it: its headers and the client's address (fastify's `req.ip`). */
export interface AuthRequest {
  headers: { authorization?: string | undefined };
  ip: string;
}

/** The device an HTTP `Authorization` header proves, with its stored secret hash; throws UNAUTHORIZED otherwise. */
export async function authenticateDevice(ctx: Context, req: AuthRequest): Promise<Authenticated> {
  const creds = parseAuthorizationHeader(req.headers.authorization);
  if (creds === undefined) throw new ServerError('UNAUTHORIZED', 'missing or malformed Authorization header');
  const a = await checkCredentials(ctx, creds, req.ip);
  if (a === undefined) throw new ServerError('UNAUTHORIZED', 'wrong credentials');
  return a;
}

/** The device named by an HTTP `Authorization` header; throws UNAUTHORIZED otherwise. */
export async function authenticateHeader(ctx: Context, req: AuthRequest): Promise<Address> {
  return (await authenticateDevice(ctx, req)).device;
}

/**
 * What a ticket is bound to: a digest of the device's stored secret hash (the store keeps the
 * digest, not the hash itself, in Redis). A device removed, reset or re-registered under the same
 * address has another secret hash, so its old tickets no longer match.
 */
export function ticketCredential(secretHash: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update('tacit ws-ticket binding\0').update(secretHash).digest());
}

/**
 * Redeems a WebSocket ticket (single use); undefined if it is malformed, unknown, expired or used,
 * or if its device is gone or no longer has the credentials it minted the ticket with.
 */
export async function redeemTicket(ctx: Context, ticket: string): Promise<Authenticated | undefined> {
  if (ticket.length === 0 || ticket.length > MAX_TICKET_LENGTH) return undefined;
  const t = await ctx.store.takeTicket(tokenHash(ticket), ctx.now());
  if (t === undefined) return undefined;
  const auth = await ctx.store.getDeviceAuth(t.device);
  if (auth === undefined) return undefined;
  const now = ticketCredential(auth.secretHash);
  if (now.length !== t.credential.length || !timingSafeEqual(now, t.credential)) return undefined;
  return { device: t.device, secretHash: auth.secretHash };
}

/**
 * Whether a device is still registered with the secret it authenticated with: `known` is the
 * stored hash seen at the first check (undefined before it), `stored` the store's hash now
 * (undefined when the device is gone). Constant-time.
 */
export function stillRegistered(known: Uint8Array | undefined, stored: Uint8Array | undefined): boolean {
  if (stored === undefined) return false;
  return known === undefined || (known.length === stored.length && timingSafeEqual(known, stored));
}
