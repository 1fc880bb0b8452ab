/**
 * The conversation history the SDK owns: both directions, per conversation, in order.
 *
 * A conversation is identified by a string: `u:<username>` for two people (the only kind today),
 * `g:<id>` reserved for groups. Each has a summary record (`cv/`) with its read cursor, unread
 * count and sizes, and one record per message (`m/<conversation>/<seq>`), where `seq` is a
 * sequence number of this store: it orders messages as they were received or sent, and is the
 * cursor for paging and for the read marker.
 *
 * Reading is a cursor per conversation: every incoming message with `seq` at or below it has been
 * shown to the user. `takeForDisplay` hands the new messages to a render function and moves the
 * cursor in the same commit, so a display that completed is never repeated and one that did not
 * (the process died before the commit) is repeated.
 *
 * Bounds (issue 13): at most MAX_STORED_MESSAGES messages and MAX_HISTORY_BYTES of message
 * records, measured after encoding. Past either, the oldest read messages are dropped first (then,
 * if everything is unread, the oldest unread ones), and the conversation records how many were
 * dropped; a `history-trimmed` event says so. A store that is out of space (STORAGE_FULL) drops
 * read history the same way and retries, so it never locks the user out.
 */
import { utf8Decode, utf8Encode } from './bytes.js';
import type { Core, StateTxn } from './core.js';
import { ClientError } from './errors.js';
import { keyNumber, PREFIX, seqKey } from './keys.js';
import { blobCodec, isInt, isObj, isStr, jsonCodec, optional, ownValue } from './record-codec.js';
import type { Txn } from './txn.js';
import { attachmentInfo, isStoredAttachment, type AttachmentInfo, type StoredAttachment } from './attachment/pointer.js';
import { USERNAME_MAX_LENGTH, USERNAME_PATTERN } from '@tacit/api';
import { decodeAction, isExpiry, isTimerMs, type Action } from './chat/actions.js';
import { isOldVersions, isReactionMap, type Reaction, type ReactionMap, type TextVersion } from './chat/meta.js';

/** Messages kept in history, all conversations together. Oldest read ones are dropped first past this. */
export const MAX_STORED_MESSAGES = 20_000;
/**
 * Bytes of message records kept, after encoding (text as UTF-8, at most three bytes per
 * character; no escaping). 20,000 ordinary messages take a few MB; this bounds what contacts
 * sending maximal messages can make a device keep.
 */
export const MAX_HISTORY_BYTES = 64 * 1024 * 1024;
/** Conversations kept; past it, the oldest conversations without messages are forgotten. */
export const MAX_CONVERSATIONS = 10_000;
/**
 * When a bound is crossed, trim to this fraction of it, so trimming runs once per many messages
 * (hundreds of ordinary ones, dozens of maximal ones), not on every one.
 */
export const TRIM_TARGET = 0.95;
/** Messages dropped at least, when the medium itself is full. */
export const MIN_FREED_ON_FULL = 50;
/** Messages one `history()` page or one `takeForDisplay` returns at most. */
export const MAX_PAGE = 1_000;
/** Longest error text kept with a failed outgoing message. */
export const MAX_ERROR_TEXT = 300;

export type ConversationId = string;
export type Direction = 'in' | 'out';
/**
 * `uploading`: a file still going up to the blob store (attachment/messages.ts); `queued`: waiting
 * to be encrypted or for the server; `sent`: the server stored it for every device; `failed`:
 * refused or interrupted (retry offered).
 */
export type OutgoingState = 'uploading' | 'queued' | 'sent' | 'failed';

export interface MessageError {
  /** A ClientError code. */
  code: string;
  message: string;
  /** The server's error code, when the server refused it. */
  serverCode?: string;
}

/** One message of a conversation, as the SDK hands it to apps. */
export interface HistoryMessage {
  conversation: ConversationId;
  /** Position in this store: orders a conversation, and is the cursor for paging and reading. */
  seq: number;
  direction: Direction;
  /** Sender-chosen message id (equal ids are one message). */
  id: string;
  from: string;
  fromDevice: number;
  /** The text; for a file, its caption (possibly empty). */
  text: string;
  /** A file sent or received with this message (attachment/pointer.ts). */
  attachment?: AttachmentInfo;
  /** Sender's clock, ms. */
  sentAt: number;
  /** Incoming: the server envelope id of the delivery that carried it. */
  serverId?: string;
  /** Incoming: the server's store timestamp. */
  serverTimestamp?: number;
  /** Incoming: when this device stored it. */
  receivedAt?: number;
  /** Incoming: shown to the user (at or below the conversation's read cursor). */
  read?: boolean;
  /** Outgoing. */
  state?: OutgoingState;
  error?: MessageError;
  /** Outgoing: one server id per recipient device that stored it. */
  serverIds?: string[];
  /** A group's system line (a join, a removal, a rename), not a message someone wrote. */
  system?: true;
  /**
   * Outgoing, once `sent`: how far it got, as Signal shows it (chat/receipts.ts): `sent` (one
   * tick), `delivered` (every recipient has it on a device: two ticks), `read` (every recipient
   * was shown it: filled ticks).
   */
  delivery?: Delivery;
  /** Outgoing: per recipient (a group: per member), when it was delivered and read, ms. */
  receipts?: Record<string, { delivered?: number; read?: number }>;
  /** Edited by its author (chat/edits.ts): when the shown text was written (the author's clock, ms). */
  edited?: number;
  /** Earlier texts of an edited message, oldest first (kept on this device only). */
  versions?: TextVersion[];
  /** Deleted for everyone: `text` is empty, and shown as "This message was deleted". */
  deleted?: true;
  /** Reactions, one per person, in the order they were made. */
  reactions?: Reaction[];
  /** Disappearing: the timer it carries (ms), and when this device deletes it (once read or sent). */
  expireTimer?: number;
  expiresAt?: number;
  /** Internal: the record only carries an edit, deletion, reaction or timer (never shown; events skip it). */
  carrier?: true;
}

/** An outgoing message's receipts summed up (chat/receipts.ts). */
export type Delivery = 'sent' | 'delivered' | 'read';

export interface ConversationSummary {
  id: ConversationId;
  /** The other person of a two-person conversation ('' for a group). */
  contact: string;
  /** A group conversation: the group's id (its title and members: TacitClient.groups()). */
  group?: string;
  createdAt: number;
  unread: number;
  /** Messages held, and the newest one. */
  messages: number;
  last: HistoryMessage | undefined;
  lastAt: number;
  /** Messages dropped to stay within the local bounds, and how many of them were unread. */
  dropped: number;
  droppedUnread: number;
  /** The conversation's disappearing timer, ms (absent: off). */
  timer?: number;
}

/** A group conversation id: `g:` and the group's 32 hex digits (group/state.ts). */
export function groupIdOf(id: ConversationId): string | undefined {
  const g = id.startsWith('g:') ? id.slice(2) : '';
  return /^[0-9a-f]{32}$/.test(g) ? g : undefined;
}

export function directConversation(username: string): ConversationId {
  return `u:${username}`;
}

/** The contact of a two-person conversation id, or undefined if it is not one. */
export function contactOf(id: ConversationId): string | undefined {
  if (!id.startsWith('u:')) return undefined;
  const name = id.slice(2);
  return name.length <= USERNAME_MAX_LENGTH && USERNAME_PATTERN.test(name) ? name : undefined;
}

// ---- records ----

export interface ConversationRecord {
  id: ConversationId;
  createdAt: number;
  /** Read cursor: incoming messages with seq <= read have been shown. */
  read: number;
  unread: number;
  last: number;
  lastAt: number;
  count: number;
  bytes: number;
  dropped: number;
  droppedUnread: number;
  /** Disappearing timer for messages sent from now on, ms (chat/actions.ts); absent: off. */
  timer?: number;
}

export const conversationCodec = jsonCodec<ConversationRecord>('conversation', (v) => {
  if (!isObj(v) || !isStr(v['id'], 200) || (contactOf(v['id']) === undefined && groupIdOf(v['id']) === undefined)) return undefined;
  const r: ConversationRecord = { id: v['id'], createdAt: 0, read: 0, unread: 0, last: 0, lastAt: 0, count: 0, bytes: 0, dropped: 0, droppedUnread: 0 };
  for (const k of ['createdAt', 'read', 'unread', 'last', 'lastAt', 'count', 'bytes', 'dropped', 'droppedUnread'] as const) {
    const n = v[k];
    if (!isInt(n)) return undefined;
    r[k] = n;
  }
  if (v['timer'] !== undefined) {
    if (!isTimerMs(v['timer'])) return undefined;
    if (v['timer'] > 0) r.timer = v['timer'];
  }
  return r;
});

export interface MessageMeta {
  d: Direction;
  id: string;
  from: string;
  dev: number;
  sentAt: number;
  srv?: string;
  ts?: number;
  rcv?: number;
  st?: OutgoingState;
  err?: MessageError;
  /** Outgoing: device id → server id, for every device that stored it. */
  to?: Record<string, string>;
  /** Outgoing: this account's other devices that stored the "sent" transcript (device id → server id). */
  own?: Record<string, string>;
  /** Outgoing: ciphertexts on their way (waiting for `sent`). */
  pend?: number;
  /** Outgoing: times it was encrypted again after the server refused a stale device. */
  att?: number;
  /** Outgoing: a job in the outbox queue still has to encrypt it. */
  job?: number;
  /** A system line of a group (a join, a removal, a rename): `from` is who did it. */
  sys?: 1;
  /** A file: its pointer and this device's notes on it. */
  file?: StoredAttachment;
  /** Outgoing: who it was sent to (a group's members at the time; absent: the contact). */
  rt?: string[];
  /** Outgoing: recipient → when a delivery receipt came, and when a read receipt came, ms. */
  dlv?: Record<string, number>;
  rd?: Record<string, number>;
  /**
   * Outgoing: this record only carries an edit, deletion, reaction or timer to the other devices
   * (chat/edits.ts); it is not shown and goes once sent.
   */
  act?: Action;
  /** Edited: the author's clock when the current text was written. */
  ed?: number;
  /** Earlier texts of an edited message. */
  old?: TextVersion[];
  /** Deleted for everyone. */
  del?: 1;
  /** Reactions: username → [emoji, the reactor's clock]. */
  rx?: ReactionMap;
  /** Disappearing: the message's timer, ms, and when it goes (this device's clock, ms). */
  exp?: number;
  xat?: number;
}

const STATES: ReadonlySet<string> = new Set<OutgoingState>(['uploading', 'queued', 'sent', 'failed']);

function isError(v: unknown): v is MessageError {
  return isObj(v) && isStr(v['code'], 64) && isStr(v['message'], MAX_ERROR_TEXT) && optional(v['serverCode'], (x): x is string => isStr(x, 64));
}

/** Recipients of one message at most (a group's members; chat/receipts.ts). */
export const MAX_RECEIPT_RECIPIENTS = 1_000;

function isTimeMap(v: unknown): v is Record<string, number> {
  if (!isObj(v)) return false;
  const entries = Object.entries(v);
  return entries.length <= MAX_RECEIPT_RECIPIENTS && entries.every(([k, n]) => USERNAME_PATTERN.test(k) && k.length <= USERNAME_MAX_LENGTH && isInt(n));
}

function isUserList(v: unknown): v is string[] {
  return Array.isArray(v) && v.length <= MAX_RECEIPT_RECIPIENTS && v.every((u) => typeof u === 'string' && u.length <= USERNAME_MAX_LENGTH && USERNAME_PATTERN.test(u));
}

function isDeviceMap(v: unknown): v is Record<string, string> {
  if (!isObj(v)) return false;
  const entries = Object.entries(v);
  return entries.length <= 1_000 && entries.every(([k, s]) => /^[1-9][0-9]{0,9}$/.test(k) && isStr(s, 64));
}

/** `mi/…`: where the message a sender's id names sits in its conversation (History.findById). */
const messageIdCodec = jsonCodec<{ seq: number }>('message index', (v) => (isObj(v) && isInt(v['seq'], 1) ? { seq: v['seq'] } : undefined));

export const messageCodec = blobCodec<MessageMeta>('message', (v) => {
  if (!isObj(v)) return undefined;
  const { d, id, from, dev, sentAt, srv, ts, rcv, st, err, to, pend, att, job, file } = v;
  if ((d !== 'in' && d !== 'out') || !isStr(id, 64) || !isStr(from, 64) || !isInt(dev) || !isInt(sentAt)) return undefined;
  if (!optional(srv, (x): x is string => isStr(x, 64)) || !optional(ts, isInt) || !optional(rcv, isInt)) return undefined;
  if (!optional(st, (x): x is OutgoingState => typeof x === 'string' && STATES.has(x)) || !optional(err, isError)) return undefined;
  if (!optional(v['own'], isDeviceMap)) return undefined;
  if (!optional(to, isDeviceMap) || !optional(pend, isInt) || !optional(att, isInt) || !optional(job, isInt)) return undefined;
  if (v['sys'] !== undefined && v['sys'] !== 1) return undefined;
  if (!optional(file, isStoredAttachment)) return undefined;
  if (!optional(v['rt'], isUserList) || !optional(v['dlv'], isTimeMap) || !optional(v['rd'], isTimeMap)) return undefined;
  if (v['act'] !== undefined && decodeAction(v['act']) === undefined) return undefined;
  if (!optional(v['ed'], isInt) || !optional(v['old'], isOldVersions) || (v['del'] !== undefined && v['del'] !== 1) || !optional(v['rx'], isReactionMap)) return undefined;
  if (!optional(v['exp'], isExpiry) || !optional(v['xat'], isInt)) return undefined;
  // Spread keeps only the fields that are present (a record never grows `undefined`s).
  return v as unknown as MessageMeta;
});

/** Cuts an error to what a record keeps. */
export function messageError(code: string, message: string, serverCode?: string): MessageError {
  return { code: code.slice(0, 64), message: message.slice(0, MAX_ERROR_TEXT), ...(serverCode !== undefined ? { serverCode: serverCode.slice(0, 64) } : {}) };
}

export function toHistory(conversation: ConversationId, seq: number, meta: MessageMeta, text: string, readCursor: number): HistoryMessage {
  const m: HistoryMessage = { conversation, seq, direction: meta.d, id: meta.id, from: meta.from, fromDevice: meta.dev, text, sentAt: meta.sentAt };
  if (meta.sys === 1) m.system = true;
  if (meta.file !== undefined) m.attachment = attachmentInfo(meta.file);
  if (meta.ed !== undefined) m.edited = meta.ed;
  if (meta.old !== undefined && meta.old.length > 0) m.versions = meta.old.map((x) => ({ ...x }));
  if (meta.del === 1) m.deleted = true;
  if (meta.rx !== undefined) {
    const list = Object.entries(meta.rx).filter(([, [emoji]]) => emoji !== '').map(([from, [emoji, at]]) => ({ from, emoji, at }));
    if (list.length > 0) m.reactions = list.sort((a, b) => a.at - b.at || a.from.localeCompare(b.from));
  }
  if (meta.exp !== undefined) m.expireTimer = meta.exp;
  if (meta.xat !== undefined) m.expiresAt = meta.xat;
  if (meta.act !== undefined) m.carrier = true;
  if (meta.d === 'in') {
    if (meta.srv !== undefined) m.serverId = meta.srv;
    if (meta.ts !== undefined) m.serverTimestamp = meta.ts;
    if (meta.rcv !== undefined) m.receivedAt = meta.rcv;
    m.read = seq <= readCursor;
  } else {
    m.state = meta.st ?? 'sent';
    if (meta.err !== undefined) m.error = { ...meta.err };
    m.serverIds = Object.values(meta.to ?? {});
    if (meta.sys !== 1) Object.assign(m, receiptView(conversation, meta));
  }
  return m;
}

/** An outgoing message's receipts as apps see them: per recipient, and summed up. */
function receiptView(conversation: ConversationId, meta: MessageMeta): Pick<HistoryMessage, 'delivery' | 'receipts'> {
  const contact = contactOf(conversation);
  const to = meta.rt ?? (contact !== undefined ? [contact] : []);
  const receipts: Record<string, { delivered?: number; read?: number }> = {};
  for (const u of to) {
    const delivered = ownValue(meta.dlv, u);
    const read = ownValue(meta.rd, u);
    receipts[u] = { ...(delivered !== undefined ? { delivered } : {}), ...(read !== undefined ? { read } : {}) };
  }
  if (meta.st !== 'sent' && meta.st !== undefined) return { receipts };
  const all = (m: Record<string, number> | undefined): boolean => to.length > 0 && to.every((u) => ownValue(m, u) !== undefined);
  return { receipts, delivery: all(meta.rd) ? 'read' : all(meta.dlv) ? 'delivered' : 'sent' };
}

/** A message record's weight against MAX_HISTORY_BYTES: its key and its encoded value. */
export function messageWeight(key: string, value: Uint8Array): number {
  return key.length + value.length;
}

interface Dropped {
  dropped: number;
  droppedUnread: number;
}

/** May this message be dropped to make room? Queued outgoing messages never; unread ones only in `unreadToo`. */
function evictable(meta: MessageMeta, seq: number, conv: ConversationRecord, unreadToo: boolean): boolean {
  if (meta.d === 'out') return meta.st !== 'queued';
  return seq <= conv.read || unreadToo;
}

/** Told by History inside the state change that made it (chat/receipts.ts sets them). */
export interface HistoryHooks {
  /** An incoming message someone wrote was stored. */
  incoming?(t: StateTxn, m: HistoryMessage): Promise<void>;
  /** Incoming messages were shown (the read cursor passed them) at `at` (ms; their timers start then). */
  shown?(t: StateTxn, messages: readonly HistoryMessage[], at: number): Promise<void>;
}

/** Where a disappearing message sits in the sweep order (`xp/<time>/<seq>` → conversation and seq). */
export const seqCodec = jsonCodec<{ c: ConversationId; s: number }>('message index', (v) => (isObj(v) && isStr(v['c'], 200) && isInt(v['s']) ? { c: v['c'], s: v['s'] } : undefined));

/** Does a view show this record? Records that only carry an edit, deletion or reaction do not. */
function shown(meta: MessageMeta): boolean {
  return meta.act === undefined;
}

export class History {
  readonly #core: Core;
  hooks: HistoryHooks = {};
  /**
   * Told of every change to a message's text or searchability, in the change's transaction
   * (chat/search-index.ts keeps its index exact with it): `before` undefined for a new message,
   * `after` undefined for a removed one.
   */
  indexer: ((t: StateTxn, conversation: ConversationId, seq: number, before: { meta: MessageMeta; text: string } | undefined, after: { meta: MessageMeta; text: string } | undefined) => Promise<void>) | undefined;
  /**
   * Run in order after a message was appended, in its change: what was held for it applies
   * (chat/edits.ts: edits and reactions; chat/read-sync.ts: reads on our other devices).
   */
  readonly onAppend: ((t: StateTxn, conversation: ConversationId, seq: number, meta: MessageMeta) => Promise<void>)[] = [];

  constructor(core: Core) {
    this.#core = core;
    core.onStorageFull = (t) => this.#freeSpace(t);
  }

  // ---- inside a state change ----

  async conversation(t: Txn, id: ConversationId): Promise<ConversationRecord | undefined> {
    return t.read(conversationCodec, this.#core.keys.conversation(id));
  }

  /** The conversation's record, created if new. */
  async ensureConversation(t: StateTxn, id: ConversationId): Promise<ConversationRecord> {
    const existing = await this.conversation(t, id);
    if (existing) return existing;
    const now = this.#core.now();
    const c: ConversationRecord = { id, createdAt: now, read: 0, unread: 0, last: 0, lastAt: now, count: 0, bytes: 0, dropped: 0, droppedUnread: 0 };
    t.write(conversationCodec, this.#core.keys.conversation(id), c);
    t.counters.conversations++;
    t.afterCommit(() => this.#core.events.emit('history', { conversation: id }));
    return c;
  }

  /** Appends a message to a conversation (and trims history if a bound is crossed). */
  async append(t: StateTxn, id: ConversationId, meta: MessageMeta, text: string): Promise<HistoryMessage> {
    const conv = await this.ensureConversation(t, id);
    const seq = t.nextSeq();
    // Disappearing (chat/actions.ts): our own messages carry the conversation's timer, and their
    // clock starts now; an incoming one's starts when it is read.
    // Edits, deletions and reactions carry it too, so the server keeps them no longer (`ttlMs`);
    // a timer change does not: a device offline for longer must still learn the new timer.
    if (meta.d === 'out' && meta.act?.k !== 'timer' && meta.sys === undefined && meta.exp === undefined && conv.timer !== undefined) meta = { ...meta, exp: conv.timer };
    if (meta.d === 'out' && meta.exp !== undefined && meta.xat === undefined) meta = { ...meta, xat: meta.sentAt + meta.exp };
    // A record carrying an edit or reaction in a disappearing conversation goes no later than its messages.
    if (meta.act !== undefined && conv.timer !== undefined && meta.xat === undefined) meta = { ...meta, xat: meta.sentAt + conv.timer };
    if (meta.xat !== undefined) t.write(seqCodec, this.#core.keys.expiry(meta.xat, seq), { c: id, s: seq });
    const key = this.#core.keys.message(id, seq);
    const value = messageCodec.encode({ meta, blob: utf8Encode(text) });
    t.putBytes(key, value);
    const w = messageWeight(key, value);
    conv.count++;
    conv.bytes += w;
    conv.last = seq;
    conv.lastAt = meta.d === 'in' ? (meta.rcv ?? this.#core.now()) : meta.sentAt;
    if (meta.d === 'in') conv.unread++;
    else if (conv.read < seq && conv.unread === 0) conv.read = seq; // nothing unread before our own message
    t.write(conversationCodec, this.#core.keys.conversation(id), conv);
    t.counters.messages++;
    t.counters.historyBytes += w;
    if (meta.d === 'out' && meta.st === 'queued') {
      t.counters.pinned++;
      t.counters.pinnedBytes += w;
    }
    t.afterCommit(() => this.#core.events.emit('history', { conversation: id }));
    if (meta.sys !== 1) t.write(messageIdCodec, this.#core.keys.messageId(id, meta.from, meta.id), { seq });
    await this.indexer?.(t, id, seq, undefined, { meta, text });
    // What waited for this message applies now, before anyone sees it: edits and reactions, and a
    // read on another device of ours (which moves the read cursor).
    const released = meta.act === undefined && this.onAppend.length > 0;
    if (released) for (const hook of this.onAppend) await hook(t, id, seq, meta);
    const after = released ? await this.message(t, id, seq) : undefined;
    const read = released ? ((await this.conversation(t, id))?.read ?? conv.read) : conv.read;
    const m = toHistory(id, seq, after?.meta ?? meta, after?.text ?? text, read);
    if (meta.d === 'in' && meta.sys !== 1) await this.hooks.incoming?.(t, m);
    await this.#trim(t);
    return m;
  }

  /** The message `from` sent with `messageId` in a conversation (its author and id name it exactly), or undefined. */
  async findById(t: Txn, id: ConversationId, from: string, messageId: string): Promise<{ seq: number; meta: MessageMeta; text: string } | undefined> {
    const ref = await t.read(messageIdCodec, this.#core.keys.messageId(id, from, messageId));
    if (ref === undefined) return undefined;
    const m = await this.message(t, id, ref.seq);
    // The index outlives nothing it names: a message dropped (or another in its place) does not match.
    if (m === undefined || m.meta.id !== messageId || m.meta.from !== from) return undefined;
    return { seq: ref.seq, ...m };
  }

  /** Reads one message; undefined if it is gone (dropped, or never existed). */
  async message(t: Txn, id: ConversationId, seq: number): Promise<{ meta: MessageMeta; text: string } | undefined> {
    const r = await t.read(messageCodec, this.#core.keys.message(id, seq));
    return r === undefined ? undefined : { meta: r.meta, text: utf8Decode(r.blob) };
  }

  /** Rewrites a message's header (an outgoing message's state); returns the new view. */
  async update(t: StateTxn, id: ConversationId, seq: number, change: (m: MessageMeta) => MessageMeta, newText?: (text: string) => string): Promise<HistoryMessage | undefined> {
    const key = this.#core.keys.message(id, seq);
    const old = await t.getBytes(key);
    const conv = await this.conversation(t, id);
    if (old === undefined || conv === undefined) return undefined;
    const decoded = messageCodec.decode(old);
    const meta = decoded.meta;
    const blob = newText === undefined ? decoded.blob : utf8Encode(newText(utf8Decode(decoded.blob)));
    const next = change({ ...meta });
    // The sweep order follows the record (a timer started by reading, or a deletion).
    if (meta.xat !== next.xat) {
      if (meta.xat !== undefined) t.delete(this.#core.keys.expiry(meta.xat, seq));
      if (next.xat !== undefined) t.write(seqCodec, this.#core.keys.expiry(next.xat, seq), { c: id, s: seq });
    }
    const value = messageCodec.encode({ meta: next, blob });
    t.putBytes(key, value);
    await this.indexer?.(t, id, seq, { meta, text: utf8Decode(decoded.blob) }, { meta: next, text: utf8Decode(blob) });
    const before = messageWeight(key, old);
    const after = messageWeight(key, value);
    conv.bytes += after - before;
    t.write(conversationCodec, this.#core.keys.conversation(id), conv);
    t.counters.historyBytes += after - before;
    // A queued message may not be dropped; once sent or failed it may.
    const wasPinned = meta.d === 'out' && meta.st === 'queued';
    const isPinned = next.d === 'out' && next.st === 'queued';
    t.counters.pinned += Number(isPinned) - Number(wasPinned);
    t.counters.pinnedBytes += (isPinned ? after : 0) - (wasPinned ? before : 0);
    t.afterCommit(() => this.#core.events.emit('history', { conversation: id }));
    return toHistory(id, seq, next, utf8Decode(blob), conv.read);
  }

  /** The seq of `author`'s message `messageId` in a conversation, if this device holds it. */
  async seqOf(t: Txn, id: ConversationId, author: string, messageId: string): Promise<number | undefined> {
    return (await this.findById(t, id, author, messageId))?.seq;
  }

  /** Removes a message from the store altogether (a disappearing message whose time ran out). */
  async remove(t: StateTxn, id: ConversationId, seq: number): Promise<boolean> {
    const key = this.#core.keys.message(id, seq);
    const value = await t.getBytes(key);
    const conv = await this.conversation(t, id);
    if (value === undefined || conv === undefined) return false;
    const { meta, blob } = messageCodec.decode(value);
    const w = messageWeight(key, value);
    t.delete(key);
    this.#unindex(t, id, seq, meta);
    await this.indexer?.(t, id, seq, { meta, text: utf8Decode(blob) }, undefined);
    conv.count--;
    conv.bytes -= w;
    if (meta.d === 'in' && seq > conv.read) conv.unread = Math.max(0, conv.unread - 1);
    t.write(conversationCodec, this.#core.keys.conversation(id), conv);
    t.counters.messages--;
    t.counters.historyBytes -= w;
    if (meta.d === 'out' && meta.st === 'queued') {
      t.counters.pinned--;
      t.counters.pinnedBytes -= w;
    }
    t.afterCommit(() => this.#core.events.emit('history', { conversation: id }));
    return true;
  }

  #unindex(t: StateTxn, id: ConversationId, seq: number, meta: MessageMeta): void {
    if (meta.sys !== 1) t.delete(this.#core.keys.messageId(id, meta.from, meta.id));
    if (meta.xat !== undefined) t.delete(this.#core.keys.expiry(meta.xat, seq));
  }

  /** Sets the conversation's disappearing timer (0: off). */
  async setTimer(t: StateTxn, id: ConversationId, ms: number): Promise<void> {
    const conv = await this.ensureConversation(t, id);
    if (ms > 0) conv.timer = ms;
    else delete conv.timer;
    t.write(conversationCodec, this.#core.keys.conversation(id), conv);
    t.afterCommit(() => this.#core.events.emit('history', { conversation: id }));
  }

  /**
   * Incoming disappearing messages in (after, upTo] were just read: their clocks start now, or for
   * a message in `readAt` at that time (read on another device of ours; never later than now).
   */
  async #startTimers(t: StateTxn, conv: ConversationRecord, after: number, upTo: number, now: number, readAt?: ReadonlyMap<number, number>): Promise<void> {
    const prefix = this.#core.keys.messagesOf(conv.id);
    for (const r of await t.list(prefix, { after: prefix + seqKey(after), before: prefix + seqKey(upTo + 1) })) {
      const { meta } = messageCodec.decode(r.value);
      const seq = keyNumber(r.key);
      const start = Math.min(now, readAt?.get(seq) ?? now);
      if (meta.d === 'in' && meta.exp !== undefined && meta.xat === undefined) await this.update(t, conv.id, seq, (m) => ({ ...m, xat: start + meta.exp! }));
    }
    // `update` rewrote the conversation's sizes; the caller writes `conv` next.
    const fresh = await this.conversation(t, conv.id);
    if (fresh !== undefined) conv.bytes = fresh.bytes;
  }

  // ---- reading ----

  async summaries(): Promise<ConversationSummary[]> {
    const t = this.#core.view();
    const out: ConversationSummary[] = [];
    for (const r of await t.list(PREFIX.conversation)) {
      const c = conversationCodec.decode(r.value);
      const contact = contactOf(c.id);
      const group = groupIdOf(c.id);
      if (contact === undefined && group === undefined) continue;
      let last: HistoryMessage | undefined;
      // The newest record that is shown (a few edit or reaction carriers may be newer).
      for (const lastRec of await t.list(this.#core.keys.messagesOf(c.id), { reverse: true, limit: 8 })) {
        const { meta, blob } = messageCodec.decode(lastRec.value);
        if (!shown(meta)) continue;
        last = toHistory(c.id, keyNumber(lastRec.key), meta, utf8Decode(blob), c.read);
        break;
      }
      out.push({ id: c.id, contact: contact ?? '', ...(group !== undefined ? { group } : {}), createdAt: c.createdAt, unread: c.unread, messages: c.count, last, lastAt: c.lastAt, dropped: c.dropped, droppedUnread: c.droppedUnread, ...(c.timer !== undefined ? { timer: c.timer } : {}) });
    }
    return out.sort((a, b) => b.lastAt - a.lastAt || a.id.localeCompare(b.id));
  }

  /** Messages of a conversation before `before` (a seq; default: the newest), oldest first, at most `limit`. */
  async page(id: ConversationId, options: { before?: number; limit?: number } = {}): Promise<HistoryMessage[]> {
    const limit = Math.min(options.limit ?? 100, MAX_PAGE);
    if (!Number.isSafeInteger(limit) || limit < 0) throw new ClientError('INVALID_ARGUMENT', 'limit must be a non-negative integer');
    const t = this.#core.view();
    const conv = await this.conversation(t, id);
    if (conv === undefined) return [];
    const prefix = this.#core.keys.messagesOf(id);
    let before = options.before === undefined ? undefined : prefix + seqKey(Math.max(0, Math.floor(options.before)));
    const out: HistoryMessage[] = [];
    // Records that only carry an edit or reaction are skipped: read on until the page is full.
    for (let round = 0; round < 1_000 && out.length < limit; round++) {
      const want = limit - out.length;
      const recs = await t.list(prefix, { reverse: true, limit: want, ...(before !== undefined ? { before } : {}) });
      for (const r of recs) {
        const { meta, blob } = messageCodec.decode(r.value);
        if (shown(meta)) out.push(toHistory(id, keyNumber(r.key), meta, utf8Decode(blob), conv.read));
      }
      if (recs.length < want) break;
      before = recs[recs.length - 1]!.key;
    }
    return out.reverse();
  }

  /** Incoming messages not yet shown, of one conversation or all, in the order they arrived. */
  async unread(t: Txn, only?: ConversationId): Promise<{ conv: ConversationRecord; messages: HistoryMessage[] }[]> {
    const convs: ConversationRecord[] = [];
    if (only !== undefined) {
      const c = await this.conversation(t, only);
      if (c) convs.push(c);
    } else {
      for (const r of await t.list(PREFIX.conversation)) convs.push(conversationCodec.decode(r.value));
    }
    const out: { conv: ConversationRecord; messages: HistoryMessage[] }[] = [];
    for (const conv of convs) {
      if (conv.unread === 0) continue;
      const prefix = this.#core.keys.messagesOf(conv.id);
      // Everything after the cursor: the unread incoming messages and our own sent since.
      const recs = await t.list(prefix, { after: prefix + seqKey(conv.read) });
      const messages: HistoryMessage[] = [];
      for (const r of recs) {
        const { meta, blob } = messageCodec.decode(r.value);
        if (meta.d === 'in') messages.push(toHistory(conv.id, keyNumber(r.key), meta, utf8Decode(blob), conv.read));
      }
      if (messages.length > 0) out.push({ conv, messages });
    }
    return out;
  }

  /**
   * Hands the incoming messages not yet shown (of one conversation, or all, oldest first) to
   * `render`, then marks them read in one commit. `render` runs synchronously right before the
   * commit; if it throws, nothing is marked. Returns how many were handed over.
   */
  takeForDisplay(render: (messages: HistoryMessage[]) => void, options: { conversation?: ConversationId; limit?: number } = {}): Promise<number> {
    const limit = Math.min(options.limit ?? MAX_PAGE, MAX_PAGE);
    return this.#core.mutate(async (t) => {
      const groups = await this.unread(t, options.conversation);
      const all = groups.flatMap((g) => g.messages).sort((a, b) => a.seq - b.seq).slice(0, limit);
      if (all.length === 0) return 0;
      const now = this.#core.now();
      const upTo = new Map<ConversationId, number>();
      for (const m of all) upTo.set(m.conversation, Math.max(upTo.get(m.conversation) ?? 0, m.seq));
      for (const { conv } of groups) {
        const cursor = upTo.get(conv.id);
        if (cursor === undefined) continue;
        const shown = all.filter((m) => m.conversation === conv.id).length;
        await this.#startTimers(t, conv, conv.read, cursor, now);
        this.#moveCursor(t, conv, cursor, shown);
      }
      for (const m of all) {
        m.read = true;
        if (m.expireTimer !== undefined && m.expiresAt === undefined) m.expiresAt = now + m.expireTimer;
      }
      await this.hooks.shown?.(t, all.filter((m) => m.system !== true), now);
      render(all);
      return all.length;
    });
  }

  /** Marks a conversation read up to `upTo` (a seq; default everything). */
  markRead(id: ConversationId, upTo?: number): Promise<number> {
    return this.#core.mutate((t) => this.readUpTo(t, id, upTo, { shown: true }));
  }

  /**
   * Inside a state change: moves the read cursor of a conversation to `upTo` (default: its
   * newest message) and starts the disappearing timers of what it passed. `shown`: this device
   * showed them (the `shown` hook runs: read receipts, and the read sync to our other devices);
   * otherwise another device of ours did (chat/read-sync.ts), and `readAt` (seq → when, ms) says
   * when it read the messages it named. Returns how many incoming messages it marked.
   */
  async readUpTo(t: StateTxn, id: ConversationId, upTo: number | undefined, how: { shown: boolean; readAt?: ReadonlyMap<number, number> }): Promise<number> {
    const conv = await this.conversation(t, id);
    if (conv === undefined || conv.unread === 0) return 0;
    const cursor = upTo === undefined ? conv.last : Math.min(upTo, conv.last);
    if (cursor <= conv.read) return 0;
    const prefix = this.#core.keys.messagesOf(id);
    let shown = 0;
    const seen: HistoryMessage[] = [];
    for (const r of await t.list(prefix, { after: prefix + seqKey(conv.read), before: prefix + seqKey(cursor + 1) })) {
      const { meta, blob } = messageCodec.decode(r.value);
      if (meta.d !== 'in') continue;
      shown++;
      if (meta.sys !== 1 && how.shown) seen.push(toHistory(id, keyNumber(r.key), meta, utf8Decode(blob), cursor));
    }
    const now = this.#core.now();
    await this.#startTimers(t, conv, conv.read, cursor, now, how.readAt);
    this.#moveCursor(t, conv, cursor, shown);
    if (how.shown) await this.hooks.shown?.(t, seen, now);
    return shown;
  }

  #moveCursor(t: StateTxn, conv: ConversationRecord, cursor: number, shown: number): void {
    conv.read = Math.max(conv.read, cursor);
    conv.unread = Math.max(0, conv.unread - shown);
    t.write(conversationCodec, this.#core.keys.conversation(conv.id), conv);
    t.afterCommit(() => this.#core.events.emit('history', { conversation: conv.id }));
  }

  // ---- bounds ----

  async #trim(t: StateTxn): Promise<void> {
    const c = t.counters;
    if (c.messages <= MAX_STORED_MESSAGES && c.historyBytes <= MAX_HISTORY_BYTES && c.conversations <= MAX_CONVERSATIONS) return;
    const countTarget = Math.floor(MAX_STORED_MESSAGES * TRIM_TARGET);
    const bytesTarget = Math.floor(MAX_HISTORY_BYTES * TRIM_TARGET);
    // Queued outgoing messages are never dropped (MAX_OUTBOX bounds them): when they alone are
    // over the bound there is nothing to look for.
    const droppable = (): boolean => t.counters.messages > t.counters.pinned;
    if ((c.messages > MAX_STORED_MESSAGES || c.historyBytes > MAX_HISTORY_BYTES) && droppable()) {
      const enough = (): boolean => !droppable() || (t.counters.messages <= countTarget && t.counters.historyBytes <= bytesTarget);
      await this.#dropOldestRead(t, enough);
      if (!enough()) await this.#dropFromLargest(t, enough);
    }
    if (c.conversations > MAX_CONVERSATIONS) await this.#forgetEmptyConversations(t, c.conversations - Math.floor(MAX_CONVERSATIONS * TRIM_TARGET));
  }

  /** On STORAGE_FULL: drop the oldest read messages (at least MIN_FREED_ON_FULL, or 1 %). */
  async #freeSpace(t: StateTxn): Promise<boolean> {
    const goal = Math.max(MIN_FREED_ON_FULL, Math.ceil(t.counters.messages / 100));
    const start = t.counters.messages;
    const enough = (): boolean => start - t.counters.messages >= goal;
    await this.#dropOldestRead(t, enough);
    if (start === t.counters.messages) await this.#dropFromLargest(t, enough);
    return t.counters.messages < start;
  }

  /**
   * Drops the oldest read messages across conversations until `enough()`. Reads the oldest
   * messages of every conversation in rounds (32, then twice as many each round, at most 256),
   * so the work stays near what is dropped.
   */
  async #dropOldestRead(t: StateTxn, enough: () => boolean): Promise<void> {
    const convs = await this.#withMessages(t);
    const dropped = new Map<ConversationId, Dropped>();
    const exhausted = new Set<ConversationId>();
    const after = new Map<ConversationId, string>();
    for (let round = 0, limit = 32; round < 10_000 && !enough() && exhausted.size < convs.length; round++, limit = Math.min(256, limit * 2)) {
      const candidates: { conv: ConversationRecord; key: string; value: Uint8Array; seq: number; meta: MessageMeta; weight: number }[] = [];
      for (const conv of convs) {
        if (exhausted.has(conv.id)) continue;
        const from = after.get(conv.id);
        // Read messages are at or below the read cursor (our own are too, unless something
        // was unread when we sent them): only that range is read here.
        const recs = await t.list(this.#core.keys.messagesOf(conv.id), {
          limit,
          before: this.#core.keys.message(conv.id, conv.read + 1),
          ...(from !== undefined ? { after: from } : {}),
        });
        if (recs.length < limit) exhausted.add(conv.id);
        if (recs.length > 0) after.set(conv.id, recs[recs.length - 1]!.key);
        for (const r of recs) {
          const seq = keyNumber(r.key);
          const { meta } = messageCodec.decode(r.value);
          if (evictable(meta, seq, conv, false)) candidates.push({ conv, key: r.key, value: r.value, seq, meta, weight: messageWeight(r.key, r.value) });
        }
      }
      candidates.sort((a, b) => a.seq - b.seq);
      for (const x of candidates) {
        if (enough()) break;
        await this.#dropOne(t, x, dropped);
      }
    }
    this.#report(t, convs, dropped);
  }

  /**
   * When everything left is unread: drops the oldest messages of whichever conversation holds
   * the most, so one contact flooding a device loses its own messages first, not everyone's.
   */
  async #dropFromLargest(t: StateTxn, enough: () => boolean): Promise<void> {
    const convs = await this.#withMessages(t);
    const dropped = new Map<ConversationId, Dropped>();
    const exhausted = new Set<ConversationId>();
    const after = new Map<ConversationId, string>();
    for (let round = 0; round < 100_000 && !enough(); round++) {
      let conv: ConversationRecord | undefined;
      for (const c of convs) if (!exhausted.has(c.id) && (conv === undefined || c.bytes > conv.bytes)) conv = c;
      if (conv === undefined) break;
      const from = after.get(conv.id);
      const recs = await t.list(this.#core.keys.messagesOf(conv.id), { limit: 64, ...(from !== undefined ? { after: from } : {}) });
      if (recs.length < 64) exhausted.add(conv.id);
      for (const r of recs) {
        if (enough()) break;
        after.set(conv.id, r.key);
        const seq = keyNumber(r.key);
        const { meta } = messageCodec.decode(r.value);
        if (evictable(meta, seq, conv, true)) await this.#dropOne(t, { conv, key: r.key, value: r.value, seq, meta, weight: messageWeight(r.key, r.value) }, dropped);
        if (convs.some((c) => c !== conv && !exhausted.has(c.id) && c.bytes > conv!.bytes)) break;
      }
    }
    this.#report(t, convs, dropped);
  }

  async #withMessages(t: Txn): Promise<ConversationRecord[]> {
    const out: ConversationRecord[] = [];
    for (const r of await t.list(PREFIX.conversation)) {
      const c = conversationCodec.decode(r.value);
      if (c.count > 0) out.push(c);
    }
    return out;
  }

  async #dropOne(t: StateTxn, x: { conv: ConversationRecord; key: string; value: Uint8Array; seq: number; meta: MessageMeta; weight: number }, dropped: Map<ConversationId, Dropped>): Promise<void> {
    const unread = x.meta.d === 'in' && x.seq > x.conv.read;
    t.delete(x.key);
    this.#unindex(t, x.conv.id, x.seq, x.meta);
    if (this.indexer !== undefined) await this.indexer(t, x.conv.id, x.seq, { meta: x.meta, text: utf8Decode(messageCodec.decode(x.value).blob) }, undefined);
    x.conv.count--;
    x.conv.bytes -= x.weight;
    x.conv.dropped++;
    if (unread) {
      x.conv.unread = Math.max(0, x.conv.unread - 1);
      x.conv.droppedUnread++;
    }
    t.counters.messages--;
    t.counters.historyBytes -= x.weight;
    const d = dropped.get(x.conv.id) ?? { dropped: 0, droppedUnread: 0 };
    d.dropped++;
    if (unread) d.droppedUnread++;
    dropped.set(x.conv.id, d);
  }

  /** Writes the conversations that lost messages and tells the app. */
  #report(t: StateTxn, convs: ConversationRecord[], dropped: Map<ConversationId, Dropped>): void {
    for (const conv of convs) if (dropped.has(conv.id)) t.write(conversationCodec, this.#core.keys.conversation(conv.id), conv);
    for (const [conversation, d] of dropped) t.afterCommit(() => this.#core.events.emit('history-trimmed', { conversation, ...d }));
  }

  async #forgetEmptyConversations(t: StateTxn, n: number): Promise<void> {
    const empty: ConversationRecord[] = [];
    for (const r of await t.list(PREFIX.conversation)) {
      const c = conversationCodec.decode(r.value);
      if (c.count === 0) empty.push(c);
    }
    empty.sort((a, b) => a.lastAt - b.lastAt);
    for (const c of empty.slice(0, n)) {
      t.delete(this.#core.keys.conversation(c.id));
      t.counters.conversations--;
    }
  }
}
