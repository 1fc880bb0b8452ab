/**
 * What every part of the client shares: the record store and its cache, the key layout, the
 * backend and clock, the event emitter, the locks, the account and the store's counters, and the
 * one way to change state (`mutate`).
 *
 * A state change runs under the state lock on a fresh transaction and is committed once; if it
 * throws, nothing is written. Protocol stores (protocol-stores.ts) write into the transaction of
 * the change that is running (`active()`), so a session step and the message it carried are
 * committed together.
 */
import { IdentityKeyPair, type CryptoBackend } from '@tacit/protocol';
import { accountCodec, type Account } from './account.js';
import type { ClientEvents } from './events.js';
import { Emitter } from './emitter.js';
import { ClientError, isClientError } from './errors.js';
import { NAME_KEY_BYTES, PREFIX, RecordKeys } from './keys.js';
import { KeyedLock } from './lock.js';
import { bytesCodec, isInt, isObj, jsonCodec } from './record-codec.js';
import type { RecordStore } from './record-store.js';
import { RecordCache, Txn, type TxnMark } from './txn.js';
import { unb64 } from './bytes.js';

/**
 * Version of the record layout (1 was the single sealed JSON document, see upgrade.ts). 3: every
 * writer keeps the search index (chat/search-index.ts) exact; a format-2 store opened here
 * becomes 3 and has its index built in the background. A release that knows only 2 refuses a 3,
 * as it would not keep the index in step with the messages.
 */
export const STORE_FORMAT = 3;
/** Formats this release opens and raises to STORE_FORMAT in place. */
const UPGRADABLE_FORMATS: ReadonlySet<number> = new Set([2]);

export const FORMAT_KEY = `${PREFIX.meta}format`;
export const NAMES_KEY = `${PREFIX.meta}names`;

/** Sequence numbers and counts that bound the store; one small record, written with each change. */
export interface Counters {
  /** Last sequence number handed out (messages, outbox entries, seen ids and held messages share it). */
  seq: number;
  /** Messages in history, and the bytes of their records. */
  messages: number;
  historyBytes: number;
  conversations: number;
  seenServerIds: number;
  seenMessageIds: number;
  quarantined: number;
  /** Outgoing messages waiting to be encrypted, and ciphertexts waiting for `sent`. */
  queued: number;
  ciphertexts: number;
  /** Messages in history that may not be dropped (outgoing, still queued), and their bytes. */
  pinned: number;
  pinnedBytes: number;
  /** Messages whose search postings wait to be merged (chat/search-index.ts). */
  searchPending: number;
}

export function emptyCounters(): Counters {
  return { seq: 0, messages: 0, historyBytes: 0, conversations: 0, seenServerIds: 0, seenMessageIds: 0, quarantined: 0, queued: 0, ciphertexts: 0, pinned: 0, pinnedBytes: 0, searchPending: 0 };
}

export const countersCodec = jsonCodec<Counters>('store counters', (v) => {
  if (!isObj(v)) return undefined;
  const c = emptyCounters();
  for (const k of Object.keys(c) as (keyof Counters)[]) {
    const n = v[k] ?? 0;
    if (!isInt(n)) return undefined;
    c[k] = n;
  }
  return c;
});

export const formatCodec = jsonCodec<{ v: number }>('store metadata', (v) => (isObj(v) && isInt(v['v']) ? { v: v['v'] } : undefined));
export const nameKeyCodec = bytesCodec('store metadata', (b) => b.length === NAME_KEY_BYTES);

/** A transaction of a state change: records plus the counters it moves. */
export class StateTxn extends Txn {
  readonly counters: Counters;
  readonly #before: string;

  constructor(store: RecordStore, cache: RecordCache | undefined, counters: Counters) {
    super(store, cache);
    this.counters = { ...counters };
    this.#before = JSON.stringify(counters);
  }

  nextSeq(): number {
    return ++this.counters.seq;
  }

  override mark(): TxnMark & { counters: Counters } {
    return { ...super.mark(), counters: { ...this.counters } };
  }

  override rollback(mark: TxnMark & { counters?: Counters }): void {
    super.rollback(mark);
    // The sequence number never goes back: a number handed out stays used.
    if (mark.counters) Object.assign(this.counters, { ...mark.counters, seq: this.counters.seq });
  }

  /** Adds the counters record if they moved; called once, right before commit. */
  seal(): void {
    if (JSON.stringify(this.counters) !== this.#before) this.write(countersCodec, PREFIX.counters, this.counters);
  }
}

export interface CoreOptions {
  store: RecordStore;
  backend: CryptoBackend;
  now: () => number;
  events: Emitter<ClientEvents>;
}

export class Core {
  readonly store: RecordStore;
  readonly backend: CryptoBackend;
  readonly now: () => number;
  readonly events: Emitter<ClientEvents>;
  readonly keys: RecordKeys;
  readonly cache = new RecordCache();
  /** Serializes state changes (key ''). */
  readonly stateLock = new KeyedLock();
  /** Per-contact serialization of whole operations (device check, bundle fetch, encrypt). */
  readonly peerLock = new KeyedLock();
  account: Account;
  readonly identity: IdentityKeyPair;
  counters: Counters;
  /** Frees space when a commit hits STORAGE_FULL (drops the oldest read history); set by the history. */
  onStorageFull: ((t: StateTxn) => Promise<boolean>) | undefined;
  #active: StateTxn | undefined;

  private constructor(o: CoreOptions, keys: RecordKeys, account: Account, counters: Counters) {
    this.store = o.store;
    this.backend = o.backend;
    this.now = o.now;
    this.events = o.events;
    this.keys = keys;
    this.account = account;
    this.identity = IdentityKeyPair.deserialize(unb64(account.identityKeyPair));
    this.counters = counters;
  }

  /** Opens the state in `store`: NOT_REGISTERED if it holds no account. */
  static async load(o: CoreOptions): Promise<Core> {
    const t = new Txn(o.store);
    const format = await t.read(formatCodec, FORMAT_KEY);
    if (format === undefined) throw new ClientError('NOT_REGISTERED', 'no account here yet; run register first');
    if (format.v !== STORE_FORMAT && !UPGRADABLE_FORMATS.has(format.v)) throw new ClientError('STATE_CORRUPT', `the local state has an unknown format (${format.v})`);
    const nameKey = await t.read(nameKeyCodec, NAMES_KEY);
    const account = await t.read(accountCodec, PREFIX.account);
    if (nameKey === undefined || account === undefined) throw new ClientError('STATE_CORRUPT', 'the local state lacks its account records');
    const counters = (await t.read(countersCodec, PREFIX.counters)) ?? emptyCounters();
    if (format.v !== STORE_FORMAT) {
      // 2 → 3: the records stay; the search index starts empty and unbuilt (its build state is
      // absent), and is built from the messages after opening.
      const up = new Txn(o.store);
      up.write(formatCodec, FORMAT_KEY, { v: STORE_FORMAT });
      await up.commit();
    }
    return new Core(o, new RecordKeys(o.backend, nameKey), account, counters);
  }

  /** The records every new store starts with, written by `register` and by the upgrade. */
  static initialRecords(t: Txn, backend: CryptoBackend): RecordKeys {
    const nameKey = backend.randomBytes(NAME_KEY_BYTES);
    t.write(formatCodec, FORMAT_KEY, { v: STORE_FORMAT });
    t.write(nameKeyCodec, NAMES_KEY, nameKey);
    return new RecordKeys(backend, nameKey);
  }

  /** The transaction of the state change that is running (protocol stores write into it). */
  active(): StateTxn {
    if (this.#active === undefined) throw new ClientError('INVALID_ARGUMENT', 'protocol state used outside a state change');
    return this.#active;
  }

  /** A read-only view of what is committed (does not fill the cache: it runs beside changes). */
  view(): Txn {
    return new Txn(this.store);
  }

  /** Runs `fn` on a fresh transaction under the state lock and commits what it wrote, once. */
  mutate<T>(fn: (t: StateTxn) => Promise<T> | T): Promise<T> {
    return this.stateLock.run('', () => this.#run(fn, true));
  }

  async #run<T>(fn: (t: StateTxn) => Promise<T> | T, mayFree: boolean): Promise<T> {
    const t = new StateTxn(this.store, this.cache, this.counters);
    t.afterCommit(() => (this.counters = t.counters));
    this.#active = t;
    let result: T;
    try {
      result = await fn(t);
    } finally {
      this.#active = undefined;
    }
    t.seal();
    try {
      await t.commit();
    } catch (e) {
      if (!(isClientError(e) && e.code === 'STORAGE_FULL' && mayFree && this.onStorageFull)) throw e;
      // The medium is full: free space (the oldest read history goes first, and the user is
      // told), then run the change once more from the start.
      const freed = await this.#run((f) => this.onStorageFull!(f), false);
      if (!freed) throw e;
      return this.#run(fn, false);
    }
    return result;
  }
}
