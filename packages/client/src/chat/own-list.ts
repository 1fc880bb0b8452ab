/**
 * A small list of this account's choices (whom we block, which conversations are muted) kept in
 * one record and synced whole to our own other devices, as Signal's SyncMessage.Blocked carries
 * the whole block list: each change queues a sync on the receipts queue (chat/receipts.ts, the
 * list's kind), sent like a read sync to every other device of our account, carrying the list as
 * it is when sent. A device that is linked later is sent every list that is not empty.
 *
 * Wire (padded JSON, chat/padding.ts): `{v: 1, <field>: {..., at}}`, at most `maxBytes`; `at` is
 * when the list changed (the changing device's clock, ms, and always later than the list it
 * replaced). A device applies a list not older than its own, so the latest change wins. Accepted
 * only from our own account (`from === self`, proven by the session as for read syncs,
 * acceptOwnSync); from anyone else it is refused (FORGED_SYNC) and changes nothing; a malformed one
 * is refused as the list's `bad` reason.
 */
import type { Core, StateTxn } from '../core.js';
import { jsonCodec, type RecordCodec } from '../record-codec.js';
import type { Txn } from '../txn.js';
import { padJson, startsWith, unpadJson } from './padding.js';
import { acceptOwnSync } from './read-sync.js';

export interface OwnList {
  /** When the list last changed (ms; 0: never). */
  at: number;
}

export interface OwnListSpec<T extends OwnList> {
  /** What the record is called in errors ("block list"). */
  kind: string;
  /** Its record key (keys.ts PREFIX). */
  key: string;
  /** The wire field that carries it ("blockSync"). */
  field: string;
  /** Largest sync plaintext accepted. */
  maxBytes: number;
  /** The reason a malformed sync is refused with ("BAD_BLOCK_SYNC"). */
  bad: string;
  /** The list before any change. */
  empty: () => T;
  /** Total: the list in `v` (normalized), or undefined when it is not a valid one. */
  check: (v: unknown) => T | undefined;
}

export class OwnSyncedList<T extends OwnList> {
  readonly codec: RecordCodec<T>;
  readonly #spec: OwnListSpec<T>;
  readonly #head: string;

  constructor(spec: OwnListSpec<T>) {
    this.#spec = spec;
    this.codec = jsonCodec<T>(spec.kind, spec.check);
    this.#head = `{"v":1,"${spec.field}":`;
  }

  async read(t: Txn): Promise<T> {
    return (await t.read(this.codec, this.#spec.key)) ?? this.#spec.empty();
  }

  /** Inside a state change: writes `next` as the list changed at `now` (later than the one it replaces, even if this clock is behind). */
  async write(t: StateTxn, next: Omit<T, 'at'>, now: number): Promise<T> {
    const cur = await this.read(t);
    const list = { ...next, at: Math.max(now, cur.at + 1) } as T;
    t.write(this.codec, this.#spec.key, list);
    return list;
  }

  encode(list: T): Uint8Array {
    return padJson({ v: 1, [this.#spec.field]: list });
  }

  /** Does this plaintext claim to be this list's sync (so the text decoder should not see it)? */
  looksLike(bytes: Uint8Array): boolean {
    return startsWith(bytes, this.#head);
  }

  /** Total: the list in `bytes`, or undefined (not one, or malformed). */
  decode(bytes: Uint8Array): T | undefined {
    const o = unpadJson(bytes, this.#spec.maxBytes);
    if (o === undefined || o['v'] !== 1) return undefined;
    return this.#spec.check(o[this.#spec.field]);
  }

  /**
   * Inside the inbox's state change: a sync that came over the pairwise session from `from`.
   * Returns the list now held (after `adjust`), or undefined when it was refused or older than ours.
   */
  async receive(core: Core, t: StateTxn, from: string, fromDevice: number, plaintext: Uint8Array, adjust: (list: T) => T = (l) => l): Promise<T | undefined> {
    const list = acceptOwnSync(core, t, from, fromDevice, () => this.decode(plaintext), this.#spec.bad);
    if (list === undefined) return undefined;
    // An older list (syncs crossed, or arrived out of order) does not undo a newer change.
    if (list.at < (await this.read(t)).at) return undefined;
    const next = adjust(list);
    t.write(this.codec, this.#spec.key, next);
    return next;
  }
}
