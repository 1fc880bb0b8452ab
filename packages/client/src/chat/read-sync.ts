/**
 * Read state synced between the devices of one account (Signal's SyncMessage.Read): when a
 * device shows incoming messages, it tells the account's other devices which ones, and they mark
 * them read too: their unread counts drop, notifications clear, and disappearing timers start
 * (from when the messages were read on the device that showed them). The reading device alone
 * sends read receipts to the authors; a device that learns of a read this way sends none.
 *
 * Wire (padded JSON, chat/padding.ts), over the pairwise session with our own other devices:
 * `{v: 1, readSync: [{from, id, at, group?}, ...]}`: each entry names an incoming message by its
 * author and the author's message id, in the author's pairwise conversation or in `group`, and
 * when it was read (the reading device's clock, ms). At most MAX_READ_SYNC_ENTRIES entries.
 *
 * Sending: the `shown` hook queues one record per message (chat/receipts.ts, kind `sync`), sent
 * in batches with the receipts, to every other device of our account (none: nothing is sent).
 *
 * Receiving: accepted only from our own account. A message from another device of our account
 * decrypts only under our own identity key (inbox.ts refuses any other as FOREIGN_IDENTITY), so
 * `from === self` proves it came from one of our devices; from anyone else it is refused
 * (FORGED_SYNC) and changes nothing. Reading moves a conversation's read cursor (history.ts): the
 * cursor goes to the newest named message this device holds, as Signal marks everything up to a
 * read message read. An entry for a message this device does not have yet (it can come after the
 * read sync: another route, a retried send, a sender held back here) is held (chat/held.ts, the
 * shelf edits and reactions use too) and applied when the message arrives: at most
 * MAX_HELD_READS_PER_CONVERSATION per conversation and MAX_HELD_READS in all, the oldest dropped
 * first, each for HELD_READ_TTL_MS; held entries are store records and survive a restart. Our own
 * messages and system lines are never named (an entry naming one changes nothing).
 */
import type { Core, StateTxn } from '../core.js';
import { ClientError } from '../errors.js';
import { PREFIX } from '../keys.js';
import { blobCodec, isInt, isObj, isStr } from '../record-codec.js';
import { HELD_ACTION_TTL_MS } from './edits.js';
import { HeldShelf, type HeldItem } from './held.js';
import { MAX_MESSAGE_ID_LENGTH } from '../envelope.js';
import { directConversation, type ConversationId, type History, type MessageMeta } from '../history.js';
import { isGroupId } from '../group/state.js';
import { USERNAME_MAX_LENGTH, USERNAME_PATTERN } from '@tacit/api';
import { padJson, startsWith, unpadJson } from './padding.js';

/** Messages one read sync names at most (a batch is one message; past it the next batch follows). */
export const MAX_READ_SYNC_ENTRIES = 100;
/** Largest read-sync plaintext accepted: MAX_READ_SYNC_ENTRIES entries of the longest kind, and the JSON around them. */
export const MAX_READ_SYNC_BYTES = 24 * 1024;
/**
 * Read-sync entries held per conversation for messages not here yet: one full read sync's worth.
 * A flood in one conversation (only our own devices can send one) drops its own oldest, never
 * another conversation's.
 */
export const MAX_HELD_READS_PER_CONVERSATION = MAX_READ_SYNC_ENTRIES;
/** Read-sync entries held in all; past it the oldest go first. Each is a small record (~200 bytes). */
export const MAX_HELD_READS = 1_000;
/** How long a held entry waits for its message, as a held edit does; a message later than that shows unread. */
export const HELD_READ_TTL_MS = HELD_ACTION_TTL_MS;

export interface ReadSyncEntry {
  /** The author of the message (never us). */
  from: string;
  /** The author's message id. */
  id: string;
  /** When it was read on the device that showed it (its clock, ms). */
  at: number;
  /** The group of the message (absent: the pairwise conversation with `from`). */
  group?: string;
}

const HEAD = '{"v":1,"readSync":';

export function encodeReadSync(entries: readonly ReadSyncEntry[]): Uint8Array {
  if (entries.length === 0 || entries.length > MAX_READ_SYNC_ENTRIES) throw new ClientError('INVALID_ARGUMENT', `a read sync names 1 to ${MAX_READ_SYNC_ENTRIES} messages`);
  return padJson({ v: 1, readSync: entries.map((e) => ({ from: e.from, id: e.id, at: e.at, ...(e.group !== undefined ? { group: e.group } : {}) })) });
}

/** Does this plaintext claim to be a read sync (so the text decoder should not see it)? */
export function looksLikeReadSync(bytes: Uint8Array): boolean {
  return startsWith(bytes, HEAD);
}

function isEntry(v: unknown): v is ReadSyncEntry {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const { from, id, at, group } = v as Record<string, unknown>;
  if (typeof from !== 'string' || from.length > USERNAME_MAX_LENGTH || !USERNAME_PATTERN.test(from)) return false;
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_MESSAGE_ID_LENGTH) return false;
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) return false;
  return group === undefined || isGroupId(group);
}

/** Total: the entries of the read sync in `bytes`, or undefined (not one, or malformed). */
export function decodeReadSync(bytes: Uint8Array): ReadSyncEntry[] | undefined {
  const o = unpadJson(bytes, MAX_READ_SYNC_BYTES);
  if (o === undefined || o['v'] !== 1) return undefined;
  const list = o['readSync'];
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_READ_SYNC_ENTRIES || !list.every(isEntry)) return undefined;
  return list.map((e: ReadSyncEntry) => ({ from: e.from, id: e.id, at: e.at, ...(e.group !== undefined ? { group: e.group } : {}) }));
}

/** What a `read-sync` event says: a conversation was read on another device of ours. */
export interface ReadSyncEvent {
  conversation: ConversationId;
  /** Incoming messages it marked read here. */
  count: number;
  /** The device that read them. */
  fromDevice: number;
}

/**
 * Inside the inbox's state change: the payload of a sync from our own other devices (read sync,
 * block sync), or undefined when it is refused, and said: from another account (FORGED_SYNC;
 * only our own devices may say what we read or whom we block), or malformed (`bad`).
 */
export function acceptOwnSync<T>(core: Core, t: StateTxn, from: string, fromDevice: number, payload: () => T | undefined, bad: string): T | undefined {
  const reason = from !== core.account.username ? 'FORGED_SYNC' : undefined;
  const value = reason === undefined ? payload() : undefined;
  if (value === undefined) t.afterCommit(() => core.events.emit('undecryptable', { from, fromDevice, reason: reason ?? bad }));
  return value;
}

interface HeldRead {
  conversation: ConversationId;
  /** When it was read on the device that showed it (its clock, ms). */
  at: number;
  /** The device that read it. */
  fromDevice: number;
  heldAt: number;
}
export const heldReadCodec = blobCodec<HeldRead>('held read', (v) => {
  if (!isObj(v) || !isStr(v['conversation'], 200) || !isInt(v['at']) || !isInt(v['fromDevice'], 1) || !isInt(v['heldAt'])) return undefined;
  return { conversation: v['conversation'], at: v['at'], fromDevice: v['fromDevice'], heldAt: v['heldAt'] };
});

/** Read syncs from our other devices: applied to the history, or held until their message comes. */
export class ReadSyncs {
  readonly #core: Core;
  readonly #history: History;
  readonly #held: HeldShelf<HeldRead>;

  constructor(core: Core, history: History) {
    this.#core = core;
    this.#history = history;
    this.#held = new HeldShelf<HeldRead>(core, { prefix: PREFIX.heldRead, codec: heldReadCodec, group: (h) => h.conversation, perGroup: MAX_HELD_READS_PER_CONVERSATION, all: MAX_HELD_READS, ttlMs: HELD_READ_TTL_MS });
    this.#held.releaseOn(history, (t, conversation, seq, meta, held) => this.#released(t, conversation, seq, meta, held));
  }

  /** Inside the inbox's state change: a read sync that came over the pairwise session from `from`. */
  async receive(t: StateTxn, from: string, fromDevice: number, plaintext: Uint8Array): Promise<void> {
    const core = this.#core;
    const self = core.account.username;
    const entries = acceptOwnSync(core, t, from, fromDevice, () => decodeReadSync(plaintext), 'BAD_READ_SYNC');
    if (entries === undefined) return;
    // Per conversation: the newest named message held here, and when each named one was read.
    const upTo = new Map<ConversationId, { seq: number; readAt: Map<number, number> }>();
    const early: HeldItem<HeldRead>[] = [];
    for (const e of entries) {
      if (e.from === self) continue;
      const conversation = e.group !== undefined ? `g:${e.group}` : directConversation(e.from);
      const found = await this.#history.findById(t, conversation, e.from, e.id);
      if (found === undefined) {
        early.push({ conversation, author: e.from, messageId: e.id, meta: { conversation, at: e.at, fromDevice, heldAt: core.now() } });
        continue;
      }
      if (found.meta.d !== 'in' || found.meta.sys === 1) continue;
      const c = upTo.get(conversation) ?? { seq: 0, readAt: new Map<number, number>() };
      c.seq = Math.max(c.seq, found.seq);
      c.readAt.set(found.seq, e.at);
      upTo.set(conversation, c);
    }
    await this.#held.hold(t, early);
    for (const [conversation, c] of upTo) await this.#read(t, conversation, c.seq, c.readAt, fromDevice);
  }

  /** A message was stored: a read of it that came first marks it (and what is before it) read now. */
  async #released(t: StateTxn, conversation: ConversationId, seq: number, meta: MessageMeta, held: readonly HeldRead[]): Promise<void> {
    const first = held.reduce<HeldRead | undefined>((a, h) => (a === undefined || h.at < a.at ? h : a), undefined);
    if (first === undefined || meta.d !== 'in' || meta.sys === 1) return;
    await this.#read(t, conversation, seq, new Map([[seq, first.at]]), first.fromDevice);
  }

  async #read(t: StateTxn, conversation: ConversationId, seq: number, readAt: ReadonlyMap<number, number>, fromDevice: number): Promise<void> {
    const count = await this.#history.readUpTo(t, conversation, seq, { shown: false, readAt });
    if (count > 0) t.afterCommit(() => this.#core.events.emit('read-sync', { conversation, count, fromDevice }));
  }
}
