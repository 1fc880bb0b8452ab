/**
 * The optional passphrase lock of a browser client.
 *
 * Without it, the key that seals the records is a non-extractable CryptoKey stored in IndexedDB,
 * and Chromium writes its raw bytes into the profile's files: a copy of the profile opens the
 * records (docs/SECURITY.md). With it, the `sealing-key` record holds no key at all, only
 *
 *   { v: 1, kdf: 'PBKDF2-SHA256', iterations, salt (16 bytes), iv (12 bytes), wrapped }
 *
 * where `wrapped` is the 32-byte sealing key encrypted with AES-256-GCM under
 * PBKDF2-HMAC-SHA256(passphrase, salt, iterations) with the associated data WRAP_AAD. The
 * passphrase and the derived key are never stored; on each page load the user types the
 * passphrase and the sealing key is imported, non-extractable, into that page's memory only.
 * A wrong passphrase fails the GCM tag check (WRONG_PASSPHRASE) and changes nothing.
 *
 * Turning the lock on seals every record again under a fresh key (the old key's bytes are in the
 * profile's files and must not open anything any more), in one IndexedDB transaction with the
 * lock record. Changing the passphrase re-wraps the same key; turning the lock off stores that
 * key again as a non-extractable CryptoKey. Only WebCrypto's PBKDF2 and AES-GCM are used.
 */
import { ClientError } from '../errors.js';
import { KEY_STORE, RECORD_STORE, IndexedDbRecordStore, request, sealRecordValue, storageUnavailable, transactionDone } from './indexeddb-store.js';
import { SEALING_KEY_RECORD, isSealingKey, requireWebCrypto } from './keyring.js';

/**
 * PBKDF2-HMAC-SHA256 iterations for a new lock: OWASP's 2023 figure for this hash. About half a
 * second in a desktop browser, once per page load; a guess at the passphrase costs an attacker
 * the same work. Stored in the lock, so it can be raised later without breaking old locks.
 */
export const PASSPHRASE_ITERATIONS = 600_000;
/** A stored lock with fewer iterations than this is refused (a tampered record would weaken it). */
export const MIN_PASSPHRASE_ITERATIONS = 100_000;
/** A stored lock with more than this is refused (a tampered record would hang the page). */
export const MAX_PASSPHRASE_ITERATIONS = 10_000_000;
/** Shortest passphrase accepted when setting one (as the CLI's MIN_PASSPHRASE_LENGTH). */
export const MIN_PASSPHRASE_LENGTH = 8;
/** Longest passphrase accepted (characters); more is surely a paste gone wrong. */
export const MAX_PASSPHRASE_LENGTH = 1024;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const KEY_BYTES = 32;
const TAG_BYTES = 16;
const WRAP_AAD = new TextEncoder().encode('tacit-sealing-key\0v1');

export interface PassphraseLock {
  v: 1;
  kdf: 'PBKDF2-SHA256';
  iterations: number;
  salt: Uint8Array<ArrayBuffer>;
  iv: Uint8Array<ArrayBuffer>;
  wrapped: ArrayBuffer;
}

export function isPassphraseLock(v: unknown): v is PassphraseLock {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Partial<PassphraseLock>;
  return (
    o.v === 1 &&
    o.kdf === 'PBKDF2-SHA256' &&
    Number.isSafeInteger(o.iterations) &&
    o.iterations! >= MIN_PASSPHRASE_ITERATIONS &&
    o.iterations! <= MAX_PASSPHRASE_ITERATIONS &&
    o.salt instanceof Uint8Array &&
    o.salt.length === SALT_BYTES &&
    o.iv instanceof Uint8Array &&
    o.iv.length === IV_BYTES &&
    o.wrapped instanceof ArrayBuffer &&
    o.wrapped.byteLength === KEY_BYTES + TAG_BYTES
  );
}

/** What seals this browser's records: nothing yet, a stored key, or a passphrase lock. */
export type Sealing = { kind: 'none' } | { kind: 'device'; key: CryptoKey } | { kind: 'passphrase'; lock: PassphraseLock };

export async function readSealing(db: IDBDatabase): Promise<Sealing> {
  const v: unknown = await request(db.transaction(KEY_STORE, 'readonly').objectStore(KEY_STORE).get(SEALING_KEY_RECORD));
  if (v === undefined) return { kind: 'none' };
  if (isSealingKey(v)) return { kind: 'device', key: v };
  if (isPassphraseLock(v)) return { kind: 'passphrase', lock: v };
  throw new ClientError('STATE_CORRUPT', 'the stored sealing key is neither a non-extractable AES-256-GCM key nor a passphrase lock');
}

/** The reason a new passphrase cannot be used, as a sentence; undefined when it can. */
export function passphraseProblem(passphrase: string): string | undefined {
  if (passphrase.length < MIN_PASSPHRASE_LENGTH) return `Choose a passphrase of at least ${MIN_PASSPHRASE_LENGTH} characters.`;
  if (passphrase.length > MAX_PASSPHRASE_LENGTH) return `A passphrase may have at most ${MAX_PASSPHRASE_LENGTH} characters.`;
  return undefined;
}

function checkNew(passphrase: string): void {
  const p = passphraseProblem(passphrase);
  if (p !== undefined) throw new ClientError('INVALID_ARGUMENT', p);
}

async function deriveWrappingKey(passphrase: string, salt: Uint8Array<ArrayBuffer>, iterations: number): Promise<CryptoKey> {
  if (passphrase.length > MAX_PASSPHRASE_LENGTH) throw new ClientError('WRONG_PASSPHRASE', 'wrong passphrase');
  const material = await crypto.subtle.importKey('raw', new TextEncoder().encode(passphrase.normalize('NFC')), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, material, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

async function wrap(raw: Uint8Array<ArrayBuffer>, passphrase: string): Promise<PassphraseLock> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const kek = await deriveWrappingKey(passphrase, salt, PASSPHRASE_ITERATIONS);
  const wrapped = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: WRAP_AAD }, kek, raw);
  return { v: 1, kdf: 'PBKDF2-SHA256', iterations: PASSPHRASE_ITERATIONS, salt, iv, wrapped };
}

/** The sealing key's bytes; WRONG_PASSPHRASE when the tag does not check. The caller zeroes them. */
async function openLock(lock: PassphraseLock, passphrase: string): Promise<Uint8Array<ArrayBuffer>> {
  const kek = await deriveWrappingKey(passphrase, lock.salt, lock.iterations);
  try {
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: lock.iv, additionalData: WRAP_AAD }, kek, lock.wrapped));
  } catch {
    throw new ClientError('WRONG_PASSPHRASE', 'wrong passphrase');
  }
}

function importSealingKey(raw: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', raw, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

/** The sealing key for this page, from the passphrase; WRONG_PASSPHRASE and nothing changes otherwise. */
export async function unlockSealingKey(lock: PassphraseLock, passphrase: string): Promise<CryptoKey> {
  requireWebCrypto();
  const raw = await openLock(lock, passphrase);
  try {
    return await importSealingKey(raw);
  } finally {
    raw.fill(0);
  }
}

/** Writes the sealing-key record, and (turning the lock on) every record sealed again, in one transaction. */
async function writeSealing(db: IDBDatabase, value: CryptoKey | PassphraseLock, expected: Sealing, records?: { key: string; value: unknown }[]): Promise<void> {
  const tx = db.transaction([KEY_STORE, RECORD_STORE], 'readwrite', { durability: 'strict' });
  const done = transactionDone(tx);
  const keys = tx.objectStore(KEY_STORE);
  const get = keys.get(SEALING_KEY_RECORD);
  get.onsuccess = () => {
    // Another tab changed the lock meanwhile: change nothing.
    const now: unknown = get.result;
    const same = expected.kind === 'device' ? now === undefined || isSealingKey(now) : isPassphraseLock(now) && expected.kind === 'passphrase' && sameLock(now, expected.lock);
    if (!same) {
      tx.abort();
      return;
    }
    keys.put(value, SEALING_KEY_RECORD);
    if (records !== undefined) {
      const store = tx.objectStore(RECORD_STORE);
      store.clear();
      for (const r of records) store.put(r.value, r.key);
    }
  };
  await done.catch((e: unknown) => {
    throw e instanceof ClientError ? e : storageUnavailable('the passphrase lock could not be written');
  });
}

function sameLock(a: PassphraseLock, b: PassphraseLock): boolean {
  const eq = (x: Uint8Array, y: Uint8Array) => x.length === y.length && x.every((v, i) => v === y[i]);
  return a.iterations === b.iterations && eq(a.salt, b.salt) && eq(a.iv, b.iv) && eq(new Uint8Array(a.wrapped), new Uint8Array(b.wrapped));
}

/**
 * Turns the lock on: a fresh sealing key, wrapped under `passphrase`, and every record sealed
 * again under it, in one transaction. The records must not change meanwhile: call it with the
 * client closed. Returns the new key (non-extractable).
 */
export async function setPassphraseLock(db: IDBDatabase, currentKey: CryptoKey, passphrase: string): Promise<CryptoKey> {
  requireWebCrypto();
  checkNew(passphrase);
  const raw = crypto.getRandomValues(new Uint8Array(KEY_BYTES));
  try {
    const lock = await wrap(raw, passphrase);
    const next = await importSealingKey(raw);
    const all = await new IndexedDbRecordStore(db, currentKey).list('');
    const records = await Promise.all(all.map(async (r) => ({ key: r.key, value: await sealRecordValue(next, r.key, r.value) })));
    await writeSealing(db, lock, { kind: 'device', key: currentKey }, records);
    return next;
  } finally {
    raw.fill(0);
  }
}

/** A new passphrase for the same sealing key. The current one must be right; otherwise nothing changes. */
export async function changePassphrase(db: IDBDatabase, lock: PassphraseLock, current: string, next: string): Promise<void> {
  requireWebCrypto();
  checkNew(next);
  const raw = await openLock(lock, current);
  try {
    await writeSealing(db, await wrap(raw, next), { kind: 'passphrase', lock });
  } finally {
    raw.fill(0);
  }
}

/**
 * Turns the lock off: the sealing key is stored again as a non-extractable CryptoKey (so, in
 * Chromium, in the clear in the profile's files). The passphrase must be right.
 */
export async function removePassphraseLock(db: IDBDatabase, lock: PassphraseLock, passphrase: string): Promise<CryptoKey> {
  requireWebCrypto();
  const raw = await openLock(lock, passphrase);
  try {
    const key = await importSealingKey(raw);
    await writeSealing(db, key, { kind: 'passphrase', lock });
    return key;
  } finally {
    raw.fill(0);
  }
}
