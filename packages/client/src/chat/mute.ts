/**
 * Muting a conversation, as Signal and Slack have it: a muted conversation (pairwise or group)
 * still receives, stores and counts everything as unread; apps only stop alerting for it (no
 * sound, no bell, no notification, no count in the title). A mute lasts until a time (Signal's
 * 1 hour, 8 hours, 1 day, 7 days) or until unmuted (MUTED_FOREVER, Signal's "Always"). An
 * expired mute ends by itself: `mutedUntil` is compared with the clock when read; expired entries
 * are dropped from the record at the next change.
 *
 * The mutes are one record (`mut`), synced whole to our own other devices like the block list
 * (chat/own-list.ts): kind `mute` on the receipts queue, wire `{v: 1, muteSync: {mutes: {<conversation
 * id>: <until ms>}, at}}`, at most MAX_MUTED_CONVERSATIONS entries; accepted only from our own
 * account (FORGED_SYNC otherwise), malformed: BAD_MUTE_SYNC; the latest change wins.
 */
import type { Core, StateTxn } from '../core.js';
import { ClientError } from '../errors.js';
import { contactOf, groupIdOf, type ConversationId } from '../history.js';
import { PREFIX } from '../keys.js';
import { isInt, isObj } from '../record-codec.js';
import type { Txn } from '../txn.js';
import { OwnSyncedList } from './own-list.js';

/**
 * Conversations muted at once at most. Keeps the record and its sync one small message (each
 * entry ~60 bytes); a small team's conversations are far fewer.
 */
export const MAX_MUTED_CONVERSATIONS = 500;
/** Largest mute-sync plaintext accepted: MAX_MUTED_CONVERSATIONS of the longest entries, and the JSON around them. */
export const MAX_MUTE_SYNC_BYTES = 40 * 1024;
/** `mutedUntil` of a conversation muted until unmuted (Signal stores Long.MAX_VALUE likewise). */
export const MUTED_FOREVER = Number.MAX_SAFE_INTEGER;
/** Shortest mute, ms: shorter is a mistake, not a choice. */
export const MIN_MUTE_MS = 1_000;
/** Longest timed mute, ms (4 weeks; Signal's longest is 7 days); past it, mute until unmuted. */
export const MAX_MUTE_MS = 28 * 24 * 3600_000;
/** The durations Signal offers, ms, in its order (and "always": MUTED_FOREVER). */
export const MUTE_CHOICES = [
  { label: '1 hour', ms: 3600_000 },
  { label: '8 hours', ms: 8 * 3600_000 },
  { label: '1 day', ms: 24 * 3600_000 },
  { label: '7 days', ms: 7 * 24 * 3600_000 },
] as const;

export interface MuteList {
  /** Muted conversations and until when (ms; MUTED_FOREVER: until unmuted). May hold expired ones. */
  mutes: Record<ConversationId, number>;
  /** When the list last changed (ms; 0: never). */
  at: number;
}

/** What a `mute` event says: the mutes changed, here (`fromDevice` absent) or on another device of ours. */
export interface MuteEvent {
  /** Conversations muted now, and until when. */
  mutes: Record<ConversationId, number>;
  fromDevice?: number;
}

function isConversationId(v: string): boolean {
  return contactOf(v) !== undefined || groupIdOf(v) !== undefined;
}

function checkList(v: unknown): MuteList | undefined {
  if (!isObj(v)) return undefined;
  const { mutes, at } = v;
  if (!isObj(mutes) || !isInt(at)) return undefined;
  const entries = Object.entries(mutes);
  if (entries.length > MAX_MUTED_CONVERSATIONS || !entries.every(([c, until]) => isConversationId(c) && isInt(until) && until > 0)) return undefined;
  return { mutes: Object.fromEntries(entries) as Record<ConversationId, number>, at };
}

/** The mutes: one record (`mut`), synced whole to our own devices. */
export const muteList = new OwnSyncedList<MuteList>({
  kind: 'mute list',
  key: PREFIX.muted,
  field: 'muteSync',
  maxBytes: MAX_MUTE_SYNC_BYTES,
  bad: 'BAD_MUTE_SYNC',
  empty: () => ({ mutes: {}, at: 0 }),
  check: checkList,
});

/** Conversations muted at `now`, and until when (expired mutes left out). */
export async function activeMutes(t: Txn, now: number): Promise<Map<ConversationId, number>> {
  const { mutes } = await muteList.read(t);
  return new Map(Object.entries(mutes).filter(([, until]) => until > now));
}

/**
 * The end of a mute for `duration` ms from `now`, or MUTED_FOREVER for 'always'. INVALID_ARGUMENT
 * outside MIN_MUTE_MS..MAX_MUTE_MS.
 */
export function muteEnd(duration: number | 'always', now: number): number {
  if (duration === 'always') return MUTED_FOREVER;
  if (!Number.isSafeInteger(duration) || duration < MIN_MUTE_MS || duration > MAX_MUTE_MS) {
    throw new ClientError('INVALID_ARGUMENT', `a mute lasts from ${MIN_MUTE_MS / 1000} second to ${MAX_MUTE_MS / (24 * 3600_000)} days, or always`);
  }
  return now + duration;
}

/**
 * Inside a state change: mutes `conversation` until `until` (undefined: unmutes it). Expired
 * mutes are dropped. Returns the new list, or undefined when nothing changed (unmuting a
 * conversation that is not muted).
 */
export async function changeMutes(t: StateTxn, conversation: ConversationId, until: number | undefined, now: number): Promise<MuteList | undefined> {
  const cur = await muteList.read(t);
  const live = Object.entries(cur.mutes).filter(([c, u]) => u > now && c !== conversation);
  if (until === undefined && !(cur.mutes[conversation]! > now)) return undefined;
  if (until !== undefined && live.length >= MAX_MUTED_CONVERSATIONS) throw new ClientError('INVALID_ARGUMENT', `at most ${MAX_MUTED_CONVERSATIONS} conversations can be muted`);
  if (until !== undefined) live.push([conversation, until]);
  return muteList.write(t, { mutes: Object.fromEntries(live) as Record<ConversationId, number> }, now);
}

export function encodeMuteSync(list: MuteList): Uint8Array {
  return muteList.encode(list);
}

/** Does this plaintext claim to be a mute sync (so the text decoder should not see it)? */
export function looksLikeMuteSync(bytes: Uint8Array): boolean {
  return muteList.looksLike(bytes);
}

/** Total: the mutes in `bytes`, or undefined (not a mute sync, or malformed). */
export function decodeMuteSync(bytes: Uint8Array): MuteList | undefined {
  return muteList.decode(bytes);
}

/** Inside the inbox's state change: a mute sync that came over the pairwise session from `from`. */
export async function receiveMuteSync(core: Core, t: StateTxn, from: string, fromDevice: number, plaintext: Uint8Array): Promise<void> {
  const next = await muteList.receive(core, t, from, fromDevice, plaintext);
  if (next === undefined) return;
  const now = core.now();
  const mutes = Object.fromEntries(Object.entries(next.mutes).filter(([, u]) => u > now));
  t.afterCommit(() => core.events.emit('mute', { mutes, fromDevice }));
}
