/**
 * A state change: the puts and deletes of one operation, collected while it runs and committed
 * once (all or nothing). Reads inside a transaction see its own writes first. Nothing reaches
 * the store until `commit`; a failed operation just drops its transaction, which leaves the
 * store exactly as it was (the all-or-nothing rule of DESIGN §4, decryption included).
 *
 * `RecordCache` keeps recently used committed values in memory. The SDK is the store's only
 * writer while it is open, so the cache is updated at each commit and never goes stale.
 */
import { ClientError, isClientError } from './errors.js';
import { corrupt, type RecordCodec } from './record-codec.js';
import { describeKey } from './keys.js';
import { listBounds, type ListOptions, type RecordStore, type StoredRecord } from './record-store.js';

/**
 * Bytes of committed values kept in memory: sessions, identities, contacts and conversation
 * summaries of the people one talks to fit many times over; history pages are not cached.
 */
export const RECORD_CACHE_BYTES = 8 * 1024 * 1024;
/** Values larger than this are never cached (a swollen session record is read when needed). */
const MAX_CACHED_VALUE_BYTES = 1024 * 1024;

export class RecordCache {
  #map = new Map<string, Uint8Array>();
  #bytes = 0;
  readonly #max: number;

  constructor(maxBytes = RECORD_CACHE_BYTES) {
    this.#max = maxBytes;
  }

  get(key: string): Uint8Array | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      // Most recently used last.
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }

  set(key: string, value: Uint8Array): void {
    this.delete(key);
    if (value.length > MAX_CACHED_VALUE_BYTES) return;
    this.#map.set(key, value);
    this.#bytes += value.length;
    for (const [k, v] of this.#map) {
      if (this.#bytes <= this.#max) break;
      this.#map.delete(k);
      this.#bytes -= v.length;
    }
  }

  delete(key: string): void {
    const v = this.#map.get(key);
    if (v === undefined) return;
    this.#map.delete(key);
    this.#bytes -= v.length;
  }
}

/** A store error about one record says which kind of record it is. */
function named(e: unknown, key: string): unknown {
  if (isClientError(e) && e.code === 'STATE_CORRUPT') return new ClientError('STATE_CORRUPT', `${e.message} (a ${describeKey(key)} record)`);
  return e;
}

/** Where a transaction stood: `rollback` returns to it. */
export interface TxnMark {
  readonly undo: number;
  readonly afterCommit: number;
}

/** How to undo one write: the key's pending state before it. */
interface Undo {
  key: string;
  put: Uint8Array | undefined;
  deleted: boolean;
}

export class Txn {
  readonly #store: RecordStore;
  readonly #cache: RecordCache | undefined;
  readonly #puts = new Map<string, Uint8Array>();
  readonly #deletes = new Set<string>();
  readonly #afterCommit: (() => void)[] = [];
  /** Kept while a mark is outstanding, so part of a transaction can be undone. */
  #undo: Undo[] | undefined;

  constructor(store: RecordStore, cache?: RecordCache) {
    this.#store = store;
    this.#cache = cache;
  }

  /** Nothing to write. */
  get empty(): boolean {
    return this.#puts.size === 0 && this.#deletes.size === 0;
  }

  async getBytes(key: string): Promise<Uint8Array | undefined> {
    const pending = this.#puts.get(key);
    if (pending !== undefined) return pending;
    if (this.#deletes.has(key)) return undefined;
    const cached = this.#cache?.get(key);
    if (cached !== undefined) return cached;
    let v: Uint8Array | undefined;
    try {
      v = await this.#store.get(key);
    } catch (e) {
      throw named(e, key);
    }
    if (v !== undefined) this.#cache?.set(key, v);
    return v;
  }

  putBytes(key: string, value: Uint8Array): void {
    this.#remember(key);
    this.#deletes.delete(key);
    this.#puts.set(key, value);
  }

  delete(key: string): void {
    this.#remember(key);
    this.#puts.delete(key);
    this.#deletes.add(key);
  }

  #remember(key: string): void {
    this.#undo?.push({ key, put: this.#puts.get(key), deleted: this.#deletes.has(key) });
  }

  /** Marks the current point; `rollback(mark)` undoes every write since (used per envelope of a batch). */
  mark(): TxnMark {
    this.#undo ??= [];
    return { undo: this.#undo.length, afterCommit: this.#afterCommit.length };
  }

  rollback(mark: TxnMark): void {
    const undo = this.#undo;
    if (undo === undefined) throw new ClientError('INVALID_ARGUMENT', 'rollback without a mark');
    for (let i = undo.length - 1; i >= mark.undo; i--) {
      const u = undo[i]!;
      if (u.put !== undefined) this.#puts.set(u.key, u.put);
      else this.#puts.delete(u.key);
      if (u.deleted) this.#deletes.add(u.key);
      else this.#deletes.delete(u.key);
    }
    undo.length = mark.undo;
    this.#afterCommit.length = mark.afterCommit;
  }

  async read<V>(codec: RecordCodec<V>, key: string): Promise<V | undefined> {
    const b = await this.getBytes(key);
    if (b === undefined) return undefined;
    try {
      return codec.decode(b);
    } catch (e) {
      throw isClientError(e) ? e : corrupt(codec.kind);
    }
  }

  write<V>(codec: RecordCodec<V>, key: string, value: V): void {
    this.putBytes(key, codec.encode(value));
  }

  /** Committed records merged with this transaction's own writes, in key order. */
  async list(prefix: string, options: ListOptions = {}): Promise<StoredRecord[]> {
    const limit = options.limit ?? Infinity;
    const { from, fromExclusive, to } = listBounds(prefix, options);
    const inRange = (k: string): boolean => k.startsWith(prefix) && (fromExclusive ? k > from : k >= from) && k < to;
    const deleted = [...this.#deletes].filter(inRange).length;
    let stored: StoredRecord[];
    try {
      stored = await this.#store.list(prefix, Number.isFinite(limit) ? { ...options, limit: limit + deleted } : options);
    } catch (e) {
      throw named(e, prefix);
    }
    const merged = new Map<string, Uint8Array>();
    for (const r of stored) if (!this.#deletes.has(r.key)) merged.set(r.key, r.value);
    for (const [k, v] of this.#puts) if (inRange(k)) merged.set(k, v);
    const keys = [...merged.keys()].sort();
    if (options.reverse) keys.reverse();
    // Records past what the store was asked for may be missing, so cut at the limit.
    return keys.slice(0, Number.isFinite(limit) ? limit : undefined).map((key) => ({ key, value: merged.get(key)! }));
  }

  /** Runs after a successful commit (events, waking waiters); never for a dropped transaction. */
  afterCommit(fn: () => void): void {
    this.#afterCommit.push(fn);
  }

  /**
   * Writes everything at once. The store's write is started before this function first awaits,
   * so for a synchronous store (SQLite) it has reached the operating system when the call returns.
   */
  async commit(): Promise<void> {
    if (!this.empty) {
      const puts = [...this.#puts].map(([key, value]) => ({ key, value }));
      const deletes = [...this.#deletes];
      await this.#store.commit(puts, deletes);
      for (const k of deletes) this.#cache?.delete(k);
      for (const p of puts) this.#cache?.set(p.key, p.value);
    }
    for (const fn of this.#afterCommit.splice(0)) {
      try {
        fn();
      } catch {
        // A listener's failure is its own.
      }
    }
  }
}
