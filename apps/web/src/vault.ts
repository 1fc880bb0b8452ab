/**
 * Browser storage at rest: records in IndexedDB, each sealed with AES-256-GCM under one key that
 * WebCrypto generated as non-extractable. The key is stored in IndexedDB as a CryptoKey object
 * (structured clone keeps `extractable: false`), so page script can use it but never read its
 * bytes; someone who copies the profile's IndexedDB files gets ciphertext plus a key blob that
 * only this browser profile's WebCrypto will use.
 *
 * Each record is one IndexedDB value written by one `put` in one transaction, so a crash leaves
 * either the old or the new value (the atomicity the SDK's StateVault asks for).
 */
import type { StateVault } from '@tacit/client';

export const DB_NAME = 'tacit';
const DB_VERSION = 1;
const STORE = 'records';
const KEY_RECORD = 'sealing-key';
const SEALED_VERSION = 1;
/** AES-GCM nonce length (NIST SP 800-38D §8.2.2: random 96-bit IVs). */
const IV_BYTES = 12;

export type VaultErrorCode = 'STORAGE_UNAVAILABLE' | 'STATE_CORRUPT';

/** The one error class of the web storage layer; callers branch on `code`. */
export class VaultError extends Error {
  readonly code: VaultErrorCode;
  constructor(code: VaultErrorCode, message: string) {
    super(message);
    this.name = 'VaultError';
    this.code = code;
  }
}

export function isVaultError(e: unknown): e is VaultError {
  return e instanceof VaultError;
}

interface SealedRecord {
  v: typeof SEALED_VERSION;
  iv: Uint8Array<ArrayBuffer>;
  ct: ArrayBuffer;
}

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(new VaultError('STORAGE_UNAVAILABLE', 'IndexedDB request failed'));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(new VaultError('STORAGE_UNAVAILABLE', 'IndexedDB transaction failed'));
    tx.onabort = () => reject(new VaultError('STORAGE_UNAVAILABLE', 'IndexedDB transaction aborted (storage full?)'));
  });
}

function openDb(): Promise<IDBDatabase> {
  if (typeof indexedDB === 'undefined') return Promise.reject(new VaultError('STORAGE_UNAVAILABLE', 'this browser has no IndexedDB (private window?)'));
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB_NAME, DB_VERSION);
    r.onupgradeneeded = () => {
      if (!r.result.objectStoreNames.contains(STORE)) r.result.createObjectStore(STORE);
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(new VaultError('STORAGE_UNAVAILABLE', 'IndexedDB could not be opened'));
    r.onblocked = () => reject(new VaultError('STORAGE_UNAVAILABLE', 'IndexedDB is blocked by another tab'));
  });
}

function isSealed(v: unknown): v is SealedRecord {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Partial<SealedRecord>;
  return o.v === SEALED_VERSION && o.iv instanceof Uint8Array && o.iv.length === IV_BYTES && o.ct instanceof ArrayBuffer;
}

function isSealingKey(v: unknown): v is CryptoKey {
  return (
    typeof CryptoKey !== 'undefined' &&
    v instanceof CryptoKey &&
    v.algorithm.name === 'AES-GCM' &&
    (v.algorithm as AesKeyAlgorithm).length === 256 &&
    !v.extractable &&
    v.usages.includes('encrypt') &&
    v.usages.includes('decrypt')
  );
}

/** The sealed IndexedDB database of this origin. Open it once per page with `SealedStore.open()`. */
export class SealedStore {
  readonly #db: IDBDatabase;
  readonly #key: CryptoKey;

  private constructor(db: IDBDatabase, key: CryptoKey) {
    this.#db = db;
    this.#key = key;
  }

  /** Opens the database, creating the sealing key on first use. */
  static async open(): Promise<SealedStore> {
    if (typeof crypto === 'undefined' || crypto.subtle === undefined) {
      throw new VaultError('STORAGE_UNAVAILABLE', 'WebCrypto is unavailable (the page must be served over https or from localhost)');
    }
    const db = await openDb();
    // Generated before the transaction (awaiting WebCrypto inside it would let it auto-commit);
    // the get-or-put below runs in one readwrite transaction, so two tabs agree on one key.
    const fresh = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
    // Plain callbacks, no await, inside the transaction: it must stay active between get and put.
    const key = await new Promise<CryptoKey>((resolve, reject) => {
      const tx = db.transaction(STORE, 'readwrite');
      const store = tx.objectStore(STORE);
      let chosen: CryptoKey | undefined;
      let corrupt = false;
      const get = store.get(KEY_RECORD);
      get.onsuccess = () => {
        const existing: unknown = get.result;
        if (existing === undefined) {
          store.put(fresh, KEY_RECORD);
          chosen = fresh;
        } else if (isSealingKey(existing)) {
          chosen = existing;
        } else {
          corrupt = true;
          tx.abort();
        }
      };
      tx.oncomplete = () => (chosen ? resolve(chosen) : reject(new VaultError('STORAGE_UNAVAILABLE', 'the sealing key could not be read')));
      tx.onabort = () =>
        reject(
          corrupt
            ? new VaultError('STATE_CORRUPT', 'the stored sealing key is not a non-extractable AES-256-GCM key')
            : new VaultError('STORAGE_UNAVAILABLE', 'IndexedDB transaction aborted (storage full?)'),
        );
    }).catch((e: unknown) => {
      db.close();
      throw e;
    });
    return new SealedStore(db, key);
  }

  /** Deletes every record and the key (sign out of this browser). Closes the store. */
  static async destroy(store: SealedStore | undefined): Promise<void> {
    store?.close();
    await new Promise<void>((resolve, reject) => {
      const r = indexedDB.deleteDatabase(DB_NAME);
      r.onsuccess = () => resolve();
      r.onerror = () => reject(new VaultError('STORAGE_UNAVAILABLE', 'IndexedDB could not be deleted'));
      r.onblocked = () => resolve(); // completes when the other tabs close their connections
    });
  }

  close(): void {
    this.#db.close();
  }

  /** Whether a record exists (without decrypting it). */
  async has(name: string): Promise<boolean> {
    const tx = this.#db.transaction(STORE, 'readonly');
    const n = await request(tx.objectStore(STORE).count(name));
    return n > 0;
  }

  async read(name: string): Promise<Uint8Array | undefined> {
    const tx = this.#db.transaction(STORE, 'readonly');
    const v: unknown = await request(tx.objectStore(STORE).get(name));
    if (v === undefined) return undefined;
    if (!isSealed(v)) throw new VaultError('STATE_CORRUPT', `the stored record "${name}" has an unknown format`);
    try {
      const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: v.iv, additionalData: aad(name) }, this.#key, v.ct);
      return new Uint8Array(pt);
    } catch {
      throw new VaultError('STATE_CORRUPT', `the stored record "${name}" does not authenticate`);
    }
  }

  async write(name: string, plaintext: Uint8Array): Promise<void> {
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad(name) }, this.#key, new Uint8Array(plaintext));
    const rec: SealedRecord = { v: SEALED_VERSION, iv, ct };
    const tx = this.#db.transaction(STORE, 'readwrite', { durability: 'strict' });
    tx.objectStore(STORE).put(rec, name);
    await done(tx);
  }

  /** One named record as the SDK's StateVault. */
  vault(name: string): StateVault {
    return { read: () => this.read(name), write: (b) => this.write(name, b) };
  }
}

/** The record name is authenticated with the ciphertext, so records cannot be swapped. */
function aad(name: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`tacit-web/${name}/v${SEALED_VERSION}`);
}
