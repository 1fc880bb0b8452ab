import { newToken, tokenHash, INVITE_CODE_BYTES } from './secrets.js';
import type { Store } from './store.js';

/**
 * Creates a single-use invite code valid for `ttlMs`. The store keeps only its SHA-256, so the
 * code is shown once, here, and cannot be read back from the database.
 */
export async function createInvite(store: Store, now: number, ttlMs: number): Promise<string> {
  const code = newToken(INVITE_CODE_BYTES);
  await store.createInvite(tokenHash(code), now, now + ttlMs);
  return code;
}
