/**
 * Blocking a contact, as Signal has it. The block list is one record (`blk`, like the chat
 * settings) holding the blocked usernames and when the list last changed.
 *
 * While a user is blocked (enforced by the inbox, receipts, typing, groups and the client):
 * - their pairwise messages, edits, deletions, reactions, receipts and typing indicators are
 *   decrypted (so the session stays in step and unblocking resumes it), acknowledged to the
 *   server, and dropped: nothing is stored or shown, and no receipt goes back;
 * - their messages and actions in groups are dropped the same way; their group state changes
 *   (members, title, admins) and sender keys still apply, so the group stays consistent for
 *   everyone, but a group state from them that would add us to a group we are not in is
 *   ignored (a blocked user cannot pull us into a group);
 * - sending them anything pairwise (text, file, edit, reaction, timer) is refused with BLOCKED;
 *   no read receipts and no typing indicators go to them;
 * - their session and identity key are kept: unblocking resumes where it left off.
 * The blocked user is not told, and the server still relays their messages to us.
 *
 * Sync to our own other devices (Signal's SyncMessage.Blocked, the whole list; chat/own-list.ts,
 * shared with mutes): each change queues a block sync on the receipts queue (kind `block`).
 * Wire: `{v: 1, blockSync: {users: [...], at}}`, at most MAX_BLOCKED_USERS valid usernames.
 * Accepted only from our own account; from anyone else it is refused (FORGED_SYNC) and changes
 * nothing; a malformed one is BAD_BLOCK_SYNC.
 */
import type { Core, StateTxn } from '../core.js';
import { ClientError } from '../errors.js';
import { PREFIX } from '../keys.js';
import { isInt, isObj } from '../record-codec.js';
import type { Txn } from '../txn.js';
import { isUsername } from '../group/state.js';
import { OwnSyncedList } from './own-list.js';

/**
 * Users one account can block at most. Signal has no visible cap; ours keeps the list one small
 * record and one sync message (a few padding blocks); a team is far smaller than this.
 */
export const MAX_BLOCKED_USERS = 500;
/** Largest block-sync plaintext accepted: MAX_BLOCKED_USERS of the longest usernames, and the JSON around them. */
export const MAX_BLOCK_SYNC_BYTES = 24 * 1024;

export interface BlockList {
  /** Blocked usernames, sorted. */
  users: string[];
  /** When the list last changed (ms; 0: never). */
  at: number;
}

/** What a `block` event says: the block list changed, here (`fromDevice` absent) or on another device of ours. */
export interface BlockEvent {
  blocked: string[];
  fromDevice?: number;
}

function checkList(v: unknown): BlockList | undefined {
  if (!isObj(v)) return undefined;
  const { users, at } = v;
  if (!Array.isArray(users) || users.length > MAX_BLOCKED_USERS || !users.every(isUsername) || !isInt(at)) return undefined;
  return { users: [...new Set(users as string[])].sort(), at };
}

/** The block list: one record (`blk`), synced whole to our own devices. */
export const blockList = new OwnSyncedList<BlockList>({
  kind: 'block list',
  key: PREFIX.blocked,
  field: 'blockSync',
  maxBytes: MAX_BLOCK_SYNC_BYTES,
  bad: 'BAD_BLOCK_SYNC',
  empty: () => ({ users: [], at: 0 }),
  check: checkList,
});

export function readBlockList(t: Txn): Promise<BlockList> {
  return blockList.read(t);
}

/** The users blocked now, as a set (for filtering recipients). */
export async function blockedUsers(t: Txn): Promise<Set<string>> {
  return new Set((await readBlockList(t)).users);
}

export async function isBlocked(t: Txn, user: string): Promise<boolean> {
  return (await readBlockList(t)).users.includes(user);
}

/**
 * Inside a state change: blocks (`blocked` true) or unblocks `user` here. Returns the new list,
 * or undefined when nothing changed (already blocked, or not blocked).
 */
export async function changeBlockList(t: StateTxn, user: string, blocked: boolean, now: number): Promise<BlockList | undefined> {
  const cur = await readBlockList(t);
  if (cur.users.includes(user) === blocked) return undefined;
  if (blocked && cur.users.length >= MAX_BLOCKED_USERS) throw new ClientError('INVALID_ARGUMENT', `at most ${MAX_BLOCKED_USERS} users can be blocked`);
  return blockList.write(t, { users: blocked ? [...cur.users, user].sort() : cur.users.filter((u) => u !== user) }, now);
}

export function encodeBlockSync(list: BlockList): Uint8Array {
  return blockList.encode({ users: list.users, at: list.at });
}

/** Does this plaintext claim to be a block sync (so the text decoder should not see it)? */
export function looksLikeBlockSync(bytes: Uint8Array): boolean {
  return blockList.looksLike(bytes);
}

/** Total: the block list in `bytes`, or undefined (not one, or malformed). */
export function decodeBlockSync(bytes: Uint8Array): BlockList | undefined {
  return blockList.decode(bytes);
}

/** Inside the inbox's state change: a block sync that came over the pairwise session from `from`. */
export async function receiveBlockSync(core: Core, t: StateTxn, from: string, fromDevice: number, plaintext: Uint8Array): Promise<void> {
  const self = core.account.username;
  const next = await blockList.receive(core, t, from, fromDevice, plaintext, (l) => ({ users: l.users.filter((u) => u !== self), at: l.at }));
  if (next !== undefined) t.afterCommit(() => core.events.emit('block', { blocked: next.users, fromDevice }));
}
