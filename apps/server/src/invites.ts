import type { Invite } from '@tacit/api';
import { newToken, tokenHash, INVITE_CODE_BYTES } from './secrets.js';
import type { RemovedAccount, Store } from './store.js';

/**
 * Creates a single-use invite code valid for `ttlMs`. The store keeps only its SHA-256, so the
 * code is shown once, here, and cannot be read back from the database.
 */
export async function issueInvite(store: Store, now: number, ttlMs: number): Promise<Invite> {
  const code = newToken(INVITE_CODE_BYTES);
  const expiresAt = now + ttlMs;
  await store.createInvite(tokenHash(code), now, expiresAt);
  return { code, expiresAt };
}

export async function createInvite(store: Store, now: number, ttlMs: number): Promise<string> {
  return (await issueInvite(store, now, ttlMs)).code;
}

/**
 * Frees a username whose devices are lost: removes the account, its devices, keys and queued
 * messages (one transaction), then issues a fresh invite so its owner can register again. The
 * operator's `reset-account` command and the admins' HTTP route both do exactly this. Undefined
 * when there is no such account. Connected devices are cut off by the relay's heartbeat (their
 * credentials no longer check out), or at once by the caller when it runs inside the server.
 */
export async function resetAccount(store: Store, username: string, now: number, ttlMs: number): Promise<{ removed: RemovedAccount; invite: Invite } | undefined> {
  const removed = await store.removeAccount(username);
  if (removed === undefined) return undefined;
  return { removed, invite: await issueInvite(store, now, ttlMs) };
}
