/**
 * The key layout of the client's record store (docs/CLIENT.md, "Local storage"). Every record
 * kind has a prefix here; the module that owns a kind builds its keys through `RecordKeys`.
 *
 * Keys may be stored in the clear (the SQLite file's keys are; IndexedDB's too), so they never
 * hold a name or anything a contact chose: a username or conversation id appears as a pseudonym,
 * HMAC-SHA256 under a random key kept in a sealed record (`meta/names`), truncated to 96 bits.
 * What a copy of the files shows is how many records of each kind there are, not who they are
 * about. Numbers are zero-padded so that key order is numeric order.
 *
 * To add a kind of record: add its prefix below (one that is not a prefix of another) and build
 * its keys in the module that owns it.
 */
import type { CryptoBackend } from '@tacit/protocol';
import { toHex, utf8Encode } from './bytes.js';

export const PREFIX = {
  /** Format version of the store and the pseudonym key. */
  meta: 'meta/',
  /** This device's account: server, username, device id, secret, identity key pair. */
  account: 'account',
  /** Pre-key bookkeeping (next ids, current signed and last-resort ids) and a planned upload. */
  keys: 'keys/',
  /** One-time EC pre-keys, by id. */
  preKey: 'pk/',
  /** Signed pre-keys, by id. */
  signedPreKey: 'spk/',
  /** Kyber pre-keys (one-time and last-resort), by id. */
  kyberPreKey: 'kpk/',
  /** Session records, per contact and device. */
  session: 'ses/',
  /** A contact's trusted identity key, and a changed one awaiting `trust`. */
  identity: 'idk/',
  /** What we know of a contact: username and devices. */
  contact: 'ct/',
  /** Conversation summaries: id, read cursor, counts. */
  conversation: 'cv/',
  /** Messages of a conversation, in order. */
  message: 'm/',
  /** Outgoing messages waiting to be encrypted, per contact, in order. */
  outboxQueue: 'ox/',
  /** Encrypted outgoing messages waiting for the server's `sent`, in order. */
  outboxCiphertext: 'oc/',
  /** Server envelope ids already handled, and their order (for eviction). */
  seenServerId: 'ss/',
  seenServerOrder: 'ssq/',
  /** (sender, message id) pairs already stored, and their order. */
  seenMessageId: 'sm/',
  seenMessageOrder: 'smq/',
  /** Envelopes held (undecrypted) until the user trusts a changed identity. */
  quarantine: 'q/',
  /** Envelopes of a throttled sender, parked in arrival order until tried (throttle.ts). */
  parked: 'pq/',
  /** Groups this device is (or was) in: shared state and this device's sender-key bookkeeping (group/). */
  group: 'gs/',
  /** Outgoing group messages waiting to be encrypted and sent, per group, in order. */
  groupQueue: 'gq/',
  /** Sender-key records (the protocol's serialization), per (sender device, distribution id). */
  senderKey: 'sk/',
  /** Which group a received sender key belongs to, per (sender device, distribution id). */
  senderKeyGroup: 'gd/',
  /** The sender keys received from one member device for one group, oldest first (group/groups.ts). */
  senderKeyList: 'gk/',
  /** Message index: (conversation, author, message id) → seq (history.ts findById). */
  messageId: 'mi/',
  /** Receipts waiting to be sent, in order (chat/receipts.ts). */
  receiptQueue: 'rq/',
  /** This device's chat settings: read receipts, typing indicators (chat/settings.ts). */
  settings: 'set',
  /** Blocked users and when the list last changed (chat/block.ts). */
  blocked: 'blk',
  /** Muted conversations and when the list last changed (chat/mute.ts). */
  muted: 'mut',
  /** Disappearing messages by the time they go (`xp/<time>/<seq>`), for the sweep (chat/edits.ts). */
  expiry: 'xp/',
  /** Edits, deletions and reactions that arrived before their message, held a while (chat/edits.ts). */
  heldAction: 'ha/',
  /** Read syncs that arrived before their message, held a while (chat/read-sync.ts). */
  heldRead: 'hr/',
  /** The search index: posting chunks `sx/<bucket>/<seq span>` (chat/search-index.ts). */
  searchIndex: 'sx/',
  /** Sequence numbers and counts that bound the store. */
  counters: 'ctr',
} as const;

/** Bytes of the pseudonym key. */
export const NAME_KEY_BYTES = 32;
/** Bytes of a pseudonym (hex-encoded in keys: 24 characters). */
const PSEUDONYM_BYTES = 12;

/** A non-negative integer as 16 decimal digits (sorts numerically; 2^53 has 16 digits). */
export function seqKey(n: number): string {
  return String(n).padStart(16, '0');
}

/** Key ids (24-bit) and device ids (31-bit) as 10 decimal digits. */
export function idKey(n: number): string {
  return String(n).padStart(10, '0');
}

/** Parses the number at the end of a key built with seqKey or idKey. */
export function keyNumber(key: string): number {
  const i = key.lastIndexOf('/');
  return Number(key.slice(i + 1));
}

export class RecordKeys {
  readonly #backend: CryptoBackend;
  readonly #nameKey: Uint8Array;

  constructor(backend: CryptoBackend, nameKey: Uint8Array) {
    this.#backend = backend;
    this.#nameKey = nameKey;
  }

  /** The pseudonym of a name in one domain (usernames and conversation ids do not share pseudonyms). */
  pseudonym(domain: string, name: string): string {
    return toHex(this.#backend.hmacSha256(this.#nameKey, utf8Encode(`${domain}\0${name}`)).subarray(0, PSEUDONYM_BYTES));
  }

  user(username: string): string {
    return this.pseudonym('user', username);
  }

  session(username: string, deviceId: number): string {
    return `${PREFIX.session}${this.user(username)}/${idKey(deviceId)}`;
  }
  sessionsOf(username: string): string {
    return `${PREFIX.session}${this.user(username)}/`;
  }
  identity(username: string): string {
    return PREFIX.identity + this.user(username);
  }
  contact(username: string): string {
    return PREFIX.contact + this.user(username);
  }
  conversation(conversationId: string): string {
    return PREFIX.conversation + this.pseudonym('conversation', conversationId);
  }
  messagesOf(conversationId: string): string {
    return `${PREFIX.message}${this.pseudonym('conversation', conversationId)}/`;
  }
  message(conversationId: string, seq: number): string {
    return this.messagesOf(conversationId) + seqKey(seq);
  }
  queuedFor(username: string): string {
    return `${PREFIX.outboxQueue}${this.user(username)}/`;
  }
  queued(username: string, seq: number): string {
    return this.queuedFor(username) + seqKey(seq);
  }
  group(groupId: string): string {
    return PREFIX.group + this.pseudonym('group', groupId);
  }
  groupQueueFor(groupId: string): string {
    return `${PREFIX.groupQueue}${this.pseudonym('group', groupId)}/`;
  }
  groupQueued(groupId: string, seq: number): string {
    return this.groupQueueFor(groupId) + seqKey(seq);
  }
  /** `name` is the protocol's sender-key name (address and distribution id). */
  senderKey(name: string): string {
    return PREFIX.senderKey + this.pseudonym('sender-key', name);
  }
  senderKeyGroup(name: string): string {
    return PREFIX.senderKeyGroup + this.pseudonym('sender-key', name);
  }
  /** `sender` is the protocol address of a member device (`name.deviceId`). */
  senderKeyList(groupId: string, sender: string): string {
    return PREFIX.senderKeyList + this.pseudonym('sender-key-list', `${groupId}\0${sender}`);
  }
  /** A message by (conversation, author, id): all three hashed, ids are chosen by senders. */
  messageId(conversationId: string, from: string, messageId: string): string {
    return PREFIX.messageId + this.pseudonym('message-id', `${conversationId}\0${from}\0${messageId}`);
  }
  expiry(at: number, seq: number): string {
    return `${PREFIX.expiry}${seqKey(at)}/${seqKey(seq)}`;
  }
  /** What is held for one target message (chat/held.ts): `<prefix><target pseudonym>/` (`ha/`, `hr/`). */
  heldFor(prefix: string, conversationId: string, author: string, messageId: string): string {
    return `${prefix}${this.pseudonym('message-index', `${conversationId}\0${author}\0${messageId}`)}/`;
  }
  /** A (sender, message id) pair: the id is chosen by the sender, so it too is hashed. */
  seenMessage(username: string, messageId: string): string {
    return PREFIX.seenMessageId + this.pseudonym('message', `${username}\0${messageId}`);
  }
}

/** What a key's prefix says the record is, for error messages. */
export function describeKey(key: string): string {
  const names: Record<string, string> = {
    [PREFIX.meta]: 'store metadata',
    [PREFIX.account]: 'account',
    [PREFIX.keys]: 'pre-key bookkeeping',
    [PREFIX.preKey]: 'one-time pre-key',
    [PREFIX.signedPreKey]: 'signed pre-key',
    [PREFIX.kyberPreKey]: 'Kyber pre-key',
    [PREFIX.session]: 'session',
    [PREFIX.identity]: 'identity key',
    [PREFIX.contact]: 'contact',
    [PREFIX.conversation]: 'conversation',
    [PREFIX.message]: 'message',
    [PREFIX.outboxQueue]: 'queued outgoing message',
    [PREFIX.outboxCiphertext]: 'outgoing ciphertext',
    [PREFIX.seenServerOrder]: 'duplicate-suppression',
    [PREFIX.seenServerId]: 'duplicate-suppression',
    [PREFIX.seenMessageOrder]: 'duplicate-suppression',
    [PREFIX.seenMessageId]: 'duplicate-suppression',
    [PREFIX.quarantine]: 'held message',
    [PREFIX.parked]: 'parked message',
    [PREFIX.counters]: 'store counters',
    [PREFIX.messageId]: 'message index',
    [PREFIX.receiptQueue]: 'queued receipt',
    [PREFIX.settings]: 'settings',
    [PREFIX.blocked]: 'block list',
    [PREFIX.muted]: 'mute list',
    [PREFIX.group]: 'group',
    [PREFIX.groupQueue]: 'queued group message',
    [PREFIX.senderKey]: 'sender key',
    [PREFIX.senderKeyGroup]: 'sender key owner',
    [PREFIX.senderKeyList]: 'received sender keys',
    [PREFIX.expiry]: 'disappearing message',
    [PREFIX.heldAction]: 'held edit or reaction',
    [PREFIX.heldRead]: 'held read',
    [PREFIX.searchIndex]: 'search index',
  };
  let best = '';
  for (const p of Object.keys(names)) if (key.startsWith(p) && p.length > best.length) best = p;
  return best === '' ? 'unknown' : names[best]!;
}
