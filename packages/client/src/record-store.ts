/**
 * The client's local storage: a keyed, ordered, transactional record store (DESIGN §4).
 *
 * Keys are short printable-ASCII strings, compared byte by byte (so SQLite, IndexedDB and a
 * JavaScript sort agree on the order); values are opaque bytes. `commit` applies a set of puts and
 * deletes all-or-nothing. Implementations seal values at rest as they see fit: in memory
 * (`MemoryRecordStore`, tests and throwaway clients), one SQLite file with a passphrase
 * (`@tacit/client/node`), IndexedDB under a non-extractable WebCrypto key (`@tacit/client/browser`).
 * One conformance suite (test/record-store-conformance.ts) runs against all three.
 *
 * The SDK is the only writer of a store while it is open (a lock file in Node, a Web Lock in
 * the browser), so it may cache what it reads.
 */
import { ClientError } from './errors.js';

/**
 * Longest record key, in characters. Keys are built by the SDK from fixed prefixes, 24-character
 * pseudonyms and zero-padded numbers; 200 leaves room for nested ids without letting a key grow
 * with input.
 */
export const MAX_RECORD_KEY_LENGTH = 200;
/**
 * Largest record value, bytes. Must hold the largest record the SDK writes: a session record
 * may legitimately reach the protocol's bound on a serialized record (64 MiB: 41 states × 5 chains
 * × 2,000 skipped keys), so this is that bound plus room for framing. Every implementation
 * refuses larger values at commit and accepts anything up to it on read, so whatever was written
 * can always be read back.
 */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024 + 64 * 1024;
/** Puts plus deletes in one commit: bounds the memory one transaction holds (an upgrade is the largest). */
export const MAX_COMMIT_RECORDS = 100_000;

export interface ListOptions {
  /** Only keys strictly greater than this (a full key). */
  readonly after?: string;
  /** Only keys strictly less than this (a full key). */
  readonly before?: string;
  /** At most this many records. */
  readonly limit?: number;
  /** Newest (greatest key) first. */
  readonly reverse?: boolean;
}

export interface StoredRecord {
  readonly key: string;
  readonly value: Uint8Array;
}

export interface RecordStore {
  /** The value under `key`, or undefined. STATE_CORRUPT if it is damaged. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Records whose key starts with `prefix`, in key order (or reversed), within the bounds. */
  list(prefix: string, options?: ListOptions): Promise<StoredRecord[]>;
  /**
   * Writes `puts` and removes `deletes` together: after a crash either all of it is stored or
   * none. A key may not appear twice. STORAGE_FULL when the medium is out of space (nothing
   * changed); INVALID_ARGUMENT for a bad key or an oversized value (nothing changed).
   */
  commit(puts: readonly StoredRecord[], deletes: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** Printable ASCII without space (0x21–0x7e). */
const KEY_PATTERN = /^[\x21-\x7e]+$/;

export function isRecordKey(key: unknown): key is string {
  return typeof key === 'string' && key.length > 0 && key.length <= MAX_RECORD_KEY_LENGTH && KEY_PATTERN.test(key);
}

export function checkKey(key: unknown): string {
  if (!isRecordKey(key)) throw new ClientError('INVALID_ARGUMENT', 'a record key must be 1 to 200 printable ASCII characters');
  return key;
}

/** Validates a commit before anything is written; shared by every implementation. */
export function checkCommit(puts: readonly StoredRecord[], deletes: readonly string[]): void {
  if (puts.length + deletes.length > MAX_COMMIT_RECORDS) throw new ClientError('INVALID_ARGUMENT', `a commit may change at most ${MAX_COMMIT_RECORDS} records`);
  const seen = new Set<string>();
  for (const r of puts) {
    checkKey(r.key);
    if (!(r.value instanceof Uint8Array)) throw new ClientError('INVALID_ARGUMENT', 'a record value must be bytes');
    if (r.value.length > MAX_RECORD_BYTES) throw new ClientError('INVALID_ARGUMENT', `a record value exceeds ${MAX_RECORD_BYTES} bytes`);
    if (seen.has(r.key)) throw new ClientError('INVALID_ARGUMENT', 'a key appears twice in one commit');
    seen.add(r.key);
  }
  for (const k of deletes) {
    checkKey(k);
    if (seen.has(k)) throw new ClientError('INVALID_ARGUMENT', 'a key appears twice in one commit');
    seen.add(k);
  }
}

export function checkListOptions(prefix: string, o: ListOptions): void {
  if (typeof prefix !== 'string' || prefix.length > MAX_RECORD_KEY_LENGTH || (prefix !== '' && !KEY_PATTERN.test(prefix))) {
    throw new ClientError('INVALID_ARGUMENT', 'a list prefix must be printable ASCII');
  }
  if (o.limit !== undefined && (!Number.isSafeInteger(o.limit) || o.limit < 0)) throw new ClientError('INVALID_ARGUMENT', 'a list limit must be a non-negative integer');
}

/**
 * The exclusive upper bound of all keys starting with `prefix`: the prefix with its last
 * character incremented. Keys are printable ASCII, so `~` (0x7e) is the largest character and
 * the bound after it is 0x7f.
 */
export function prefixEnd(prefix: string): string {
  return prefix + '\x7f';
}

/** Effective [lower, upper) bounds of a listing (exclusive `after` is handled by the caller). */
export function listBounds(prefix: string, o: ListOptions): { from: string; fromExclusive: boolean; to: string } {
  let from = prefix;
  let fromExclusive = false;
  if (o.after !== undefined && o.after >= from) {
    from = o.after;
    fromExclusive = true;
  }
  let to = prefixEnd(prefix);
  if (o.before !== undefined && o.before < to) to = o.before;
  return { from, fromExclusive, to };
}

interface MemoryData {
  /** Sorted keys, kept in step with `values`. */
  keys: string[];
  values: Map<string, Uint8Array>;
  bytes: number;
}

/** Records in memory: the reference implementation, and the store of throwaway clients. */
export class MemoryRecordStore implements RecordStore {
  #data: MemoryData;
  #closed = false;
  /** Test hook: refuse any commit that would grow the stored bytes past this (STORAGE_FULL). */
  quotaBytes: number | undefined;
  /** Commits applied through this handle. */
  commits = 0;

  constructor(data?: MemoryData) {
    this.#data = data ?? { keys: [], values: new Map(), bytes: 0 };
  }

  /** Key plus value bytes of everything stored. */
  get bytes(): number {
    return this.#data.bytes;
  }

  get size(): number {
    return this.#data.keys.length;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.#open();
    checkKey(key);
    return this.#data.values.get(key)?.slice();
  }

  async list(prefix: string, options: ListOptions = {}): Promise<StoredRecord[]> {
    this.#open();
    checkListOptions(prefix, options);
    const { keys } = this.#data;
    const { from, fromExclusive, to } = listBounds(prefix, options);
    const limit = options.limit ?? Infinity;
    let lo = lowerBound(keys, from);
    if (fromExclusive && keys[lo] === from) lo++;
    const hi = lowerBound(keys, to);
    const out: StoredRecord[] = [];
    if (options.reverse) {
      for (let i = hi - 1; i >= lo && out.length < limit; i--) out.push(this.#record(keys[i]!));
    } else {
      for (let i = lo; i < hi && out.length < limit; i++) out.push(this.#record(keys[i]!));
    }
    return out;
  }

  async commit(puts: readonly StoredRecord[], deletes: readonly string[]): Promise<void> {
    this.#open();
    checkCommit(puts, deletes);
    const d = this.#data;
    if (this.quotaBytes !== undefined) {
      let after = d.bytes;
      for (const r of puts) after += r.key.length + r.value.length - this.#sizeOf(r.key);
      for (const k of deletes) after -= this.#sizeOf(k);
      if (after > this.quotaBytes && after > d.bytes) throw new ClientError('STORAGE_FULL', 'the local storage is full');
    }
    for (const k of deletes) {
      if (!d.values.has(k)) continue;
      d.bytes -= this.#sizeOf(k);
      d.values.delete(k);
      d.keys.splice(lowerBound(d.keys, k), 1);
    }
    for (const r of puts) {
      if (d.values.has(r.key)) d.bytes -= this.#sizeOf(r.key);
      else d.keys.splice(lowerBound(d.keys, r.key), 0, r.key);
      d.values.set(r.key, r.value.slice());
      d.bytes += r.key.length + r.value.length;
    }
    this.commits++;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  /** A new handle on the same records, as reopening a file would give (tests). */
  reopen(): MemoryRecordStore {
    const s = new MemoryRecordStore(this.#data);
    s.quotaBytes = this.quotaBytes;
    return s;
  }

  /** Test hook: replace a stored value as an attacker with write access to the medium could. */
  tamper(key: string, value: Uint8Array): void {
    if (!this.#data.values.has(key)) throw new ClientError('INVALID_ARGUMENT', 'no such record');
    this.#data.values.set(key, value.slice());
  }

  #sizeOf(key: string): number {
    const v = this.#data.values.get(key);
    return v === undefined ? 0 : key.length + v.length;
  }

  #record(key: string): StoredRecord {
    return { key, value: this.#data.values.get(key)!.slice() };
  }

  #open(): void {
    if (this.#closed) throw new ClientError('CLOSED', 'the record store is closed');
  }
}

/** First index whose key is >= `key` (keys are ASCII, so `<` is byte order). */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
