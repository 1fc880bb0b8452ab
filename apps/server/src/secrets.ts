/**
 * Device secrets, invite codes and tickets: hashing and constant-time comparison.
 *
 * Device secrets are >= 32 random bytes chosen by the device, so a slow password hash buys
 * nothing (there is no dictionary to slow down) and would make every connection cost
 * milliseconds. A per-device random salt and HMAC-SHA256 keep the stored value useless to
 * anyone who reads the database; comparison is constant-time.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SALT_BYTES = 16;

export function newSalt(): Uint8Array {
  return randomBytes(SALT_BYTES);
}

export function hashSecret(salt: Uint8Array, secret: Uint8Array): Uint8Array {
  return createHmac('sha256', salt).update(secret).digest();
}

/** Constant-time check of `secret` against a stored salted hash. */
export function verifySecret(salt: Uint8Array, expectedHash: Uint8Array, secret: Uint8Array): boolean {
  const h = hashSecret(salt, secret);
  return h.length === expectedHash.length && timingSafeEqual(h, expectedHash);
}

/** Unkeyed hash of a high-entropy token (invite code, ticket) for lookup by hash. */
export function tokenHash(token: string): Uint8Array {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** A URL-safe random token with `bytes` of entropy. */
export function newToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

/** Bytes of entropy in an invite code (22 base64url characters). */
export const INVITE_CODE_BYTES = 16;
/** Bytes of entropy in a WebSocket ticket. */
export const TICKET_BYTES = 32;
