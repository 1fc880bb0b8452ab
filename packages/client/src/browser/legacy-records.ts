/**
 * Records written by the release before record storage (its apps/web/src/vault.ts), read once to
 * upgrade them: `client-state` (the SDK's state document) and `journal` (the web client's sent
 * messages), each `{ v: 1, iv, ct }` in the `records` object store, AES-256-GCM under the
 * sealing key with associated data "tacit-web/<name>/v1".
 */
import { ClientError } from '../errors.js';
import { KEY_STORE, request, transactionDone } from './indexeddb-store.js';

/** The SDK's state document of the previous release. */
export const LEGACY_STATE_RECORD = 'client-state';
/** The web client's journal of the previous release. */
export const LEGACY_JOURNAL_RECORD = 'journal';
const LEGACY_VERSION = 1;

function legacyAad(name: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`tacit-web/${name}/v${LEGACY_VERSION}`);
}

/** The plaintext of a legacy record, or undefined if there is none. STATE_CORRUPT if it does not open. */
export async function readLegacyRecord(db: IDBDatabase, key: CryptoKey, name: string): Promise<Uint8Array | undefined> {
  const v: unknown = await request(db.transaction(KEY_STORE, 'readonly').objectStore(KEY_STORE).get(name));
  if (v === undefined) return undefined;
  const o = v as { v?: unknown; iv?: unknown; ct?: unknown };
  if (typeof v !== 'object' || v === null || o.v !== LEGACY_VERSION || !(o.iv instanceof Uint8Array) || !(o.ct instanceof ArrayBuffer)) {
    throw new ClientError('STATE_CORRUPT', `the stored record "${name}" of the previous release has an unknown format`);
  }
  try {
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: new Uint8Array(o.iv), additionalData: legacyAad(name) }, key, o.ct));
  } catch {
    throw new ClientError('STATE_CORRUPT', `the stored record "${name}" of the previous release does not authenticate`);
  }
}

/** Removes legacy records (after their upgrade committed). */
export async function deleteLegacyRecords(db: IDBDatabase, names: readonly string[]): Promise<void> {
  const tx = db.transaction(KEY_STORE, 'readwrite', { durability: 'strict' });
  const store = tx.objectStore(KEY_STORE);
  for (const n of names) store.delete(n);
  await transactionDone(tx);
}

/** Writes a record exactly as the previous release did (tests of the upgrade). */
export async function writeLegacyRecord(db: IDBDatabase, key: CryptoKey, name: string, plaintext: Uint8Array): Promise<void> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: legacyAad(name) }, key, new Uint8Array(plaintext));
  const tx = db.transaction(KEY_STORE, 'readwrite', { durability: 'strict' });
  tx.objectStore(KEY_STORE).put({ v: LEGACY_VERSION, iv, ct }, name);
  await transactionDone(tx);
}
