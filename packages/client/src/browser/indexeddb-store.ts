/**
 * The record store of a browser client: IndexedDB, one sealed value per record.
 *
 * Database `tacit` (version 2), two object stores:
 *   `records` (from version 1): `sealing-key`, the AES-256-GCM CryptoKey that seals every record
 *     (or the parameters of a passphrase lock, see browser/keyring.ts), and the records the
 *     release before record storage wrote (`client-state`, `journal`), kept until they are upgraded.
 *   `kv`: the SDK's records. Value `{ iv, ct }`: AES-256-GCM with a 96-bit random IV and the
 *     associated data "tacit-record\0" || key, so a value moved to another key does not open.
 *
 * A commit encrypts every value first (WebCrypto is asynchronous and would end an IndexedDB
 * transaction that waits on it), then writes all of them in one readwrite transaction with
 * strict durability: IndexedDB applies a transaction whole or not at all. Commits are queued so
 * they apply in call order.
 */
import { ClientError } from '../errors.js';
import { checkCommit, checkKey, checkListOptions, listBounds, MAX_RECORD_BYTES, type ListOptions, type RecordStore, type StoredRecord } from '../record-store.js';

export const DB_NAME = 'tacit';
export const DB_VERSION = 2;
/** The object store of version 1: the sealing key and the records of the previous release. */
export const KEY_STORE = 'records';
/** The SDK's records. */
export const RECORD_STORE = 'kv';
/** AES-GCM nonce length (NIST SP 800-38D §8.2.2: random 96-bit IVs). */
const IV_BYTES = 12;
const TAG_BYTES = 16;
const AAD_PREFIX = 'tacit-record\0';

export interface SealedValue {
  iv: Uint8Array<ArrayBuffer>;
  ct: ArrayBuffer;
}

function isSealedValue(v: unknown): v is SealedValue {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Partial<SealedValue>;
  return o.iv instanceof Uint8Array && o.iv.length === IV_BYTES && o.ct instanceof ArrayBuffer && o.ct.byteLength >= TAG_BYTES && o.ct.byteLength <= MAX_RECORD_BYTES + TAG_BYTES;
}

function aad(key: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(AAD_PREFIX + key);
}

/** One record's stored value: `value` sealed under `sealingKey`, bound to its record key. */
export async function sealRecordValue(sealingKey: CryptoKey, key: string, value: Uint8Array): Promise<SealedValue> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad(key) }, sealingKey, new Uint8Array(value));
  return { iv, ct };
}

export function storageUnavailable(what: string): ClientError {
  return new ClientError('STORAGE_UNAVAILABLE', `the browser's storage failed: ${what}`);
}

/** Wraps one IDBRequest. */
export function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(storageUnavailable('an IndexedDB request failed'));
  });
}

function isQuotaError(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'QuotaExceededError';
}

/** Resolves when `tx` completes; STORAGE_FULL when the browser's quota ran out. */
export function transactionDone(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    const fail = (): void => {
      const e = tx.error;
      reject(isQuotaError(e) ? new ClientError('STORAGE_FULL', 'the browser refused to store more (storage quota exceeded)') : storageUnavailable('an IndexedDB transaction did not complete'));
    };
    tx.onerror = fail;
    tx.onabort = fail;
  });
}

/** Opens (creating or upgrading) the tacit database of this origin. */
export function openTacitDatabase(name: string = DB_NAME): Promise<IDBDatabase> {
  if (typeof indexedDB === 'undefined') return Promise.reject(storageUnavailable('this browser has no IndexedDB (private window?)'));
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(name, DB_VERSION);
    r.onupgradeneeded = () => {
      const db = r.result;
      if (!db.objectStoreNames.contains(KEY_STORE)) db.createObjectStore(KEY_STORE);
      if (!db.objectStoreNames.contains(RECORD_STORE)) db.createObjectStore(RECORD_STORE);
    };
    r.onsuccess = () => {
      const db = r.result;
      // Another tab upgrading the schema asks us to let go.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    r.onerror = () => reject(storageUnavailable('IndexedDB could not be opened'));
    r.onblocked = () => reject(storageUnavailable('IndexedDB is blocked by another tab'));
  });
}

/** Deletes the whole database of this origin (sign out of this browser). */
export function deleteTacitDatabase(name: string = DB_NAME): Promise<void> {
  return new Promise((resolve, reject) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = () => resolve();
    r.onerror = () => reject(storageUnavailable('IndexedDB could not be deleted'));
    r.onblocked = () => resolve(); // completes when the other tabs close their connections
  });
}

export class IndexedDbRecordStore implements RecordStore {
  #db: IDBDatabase | undefined;
  readonly #key: CryptoKey;
  /** Commits apply in call order. */
  #tail: Promise<unknown> = Promise.resolve();

  /** `key` seals every record: an AES-256-GCM key (see browser/keyring.ts). */
  constructor(db: IDBDatabase, key: CryptoKey) {
    this.#db = db;
    this.#key = key;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const db = this.#open();
    checkKey(key);
    const v: unknown = await request(db.transaction(RECORD_STORE, 'readonly').objectStore(RECORD_STORE).get(key));
    return v === undefined ? undefined : this.#unseal(key, v);
  }

  async list(prefix: string, options: ListOptions = {}): Promise<StoredRecord[]> {
    const db = this.#open();
    checkListOptions(prefix, options);
    const { from, fromExclusive, to } = listBounds(prefix, options);
    if (from >= to) return [];
    const limit = options.limit ?? Infinity;
    if (limit === 0) return [];
    const range = IDBKeyRange.bound(from, to, fromExclusive, true);
    const store = db.transaction(RECORD_STORE, 'readonly').objectStore(RECORD_STORE);
    const raw: { key: string; value: unknown }[] = [];
    if (!options.reverse) {
      const count = Number.isFinite(limit) ? limit : undefined;
      const [keys, values] = await Promise.all([request(store.getAllKeys(range, count)), request(store.getAll(range, count))]);
      keys.forEach((k, i) => raw.push({ key: String(k), value: values[i] }));
    } else {
      await new Promise<void>((resolve, reject) => {
        const c = store.openCursor(range, 'prev');
        c.onsuccess = () => {
          const cursor = c.result;
          if (cursor === null || raw.length >= limit) return resolve();
          raw.push({ key: String(cursor.key), value: cursor.value as unknown });
          cursor.continue();
        };
        c.onerror = () => reject(storageUnavailable('an IndexedDB cursor failed'));
      });
    }
    return Promise.all(raw.map(async (r) => ({ key: r.key, value: await this.#unseal(r.key, r.value) })));
  }

  commit(puts: readonly StoredRecord[], deletes: readonly string[]): Promise<void> {
    try {
      this.#open();
      checkCommit(puts, deletes);
    } catch (e) {
      return Promise.reject(e);
    }
    const run = this.#tail.then(async () => {
      const db = this.#open();
      const sealed = await Promise.all(puts.map(async (p) => ({ key: p.key, value: await this.#seal(p.key, p.value) })));
      const tx = db.transaction(RECORD_STORE, 'readwrite', { durability: 'strict' });
      const store = tx.objectStore(RECORD_STORE);
      const done = transactionDone(tx);
      try {
        for (const k of deletes) store.delete(k);
        for (const p of sealed) store.put(p.value, p.key);
      } catch (e) {
        try {
          tx.abort();
        } catch {
          // already finished
        }
        await done.catch(() => undefined);
        throw isQuotaError(e) ? new ClientError('STORAGE_FULL', 'the browser refused to store more (storage quota exceeded)') : storageUnavailable('an IndexedDB write was refused');
      }
      await done;
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    const db = this.#db;
    if (db === undefined) return;
    await this.#tail;
    this.#db = undefined;
    db.close();
  }

  #open(): IDBDatabase {
    if (this.#db === undefined) throw new ClientError('CLOSED', 'the record store is closed');
    return this.#db;
  }

  #seal(key: string, value: Uint8Array): Promise<SealedValue> {
    return sealRecordValue(this.#key, key, value);
  }

  async #unseal(key: string, v: unknown): Promise<Uint8Array> {
    if (!isSealedValue(v)) throw new ClientError('STATE_CORRUPT', `the local record ${key} has an unknown format`);
    try {
      return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: v.iv, additionalData: aad(key) }, this.#key, v.ct));
    } catch {
      throw new ClientError('STATE_CORRUPT', `the local record ${key} is damaged or was modified`);
    }
  }
}
