/**
 * Group conversations on this device (docs/CLIENT.md, "Groups"; docs/PROTOCOL.md, "Groups").
 *
 * - State (state.ts) lives only on members' devices, in `gs/<group>`, with this device's sender-key
 *   bookkeeping: the distribution id of its current sender key for the group, which member
 *   devices have been handed that key, and whether the key must be replaced before the next
 *   message (someone was removed or left).
 * - Changes (create, add, remove, rename, make or unmake an admin, leave) are applied here and sent, as the whole state,
 *   over the pairwise sessions to every member device (and to those removed). Received states are
 *   merged (state.ts's rule); an admin whose merged state beats what it received sends it on, so
 *   concurrent changes reach every device.
 * - A group message is queued in history (`gq/<group>/<seq>`), then, under the group's lock: every
 *   member's sessions are checked as for a pairwise send (a changed identity holds the message
 *   until `trust`), the distribution message goes over the pairwise session to each member device
 *   lacking our current key, and the text is encrypted once with the sender key and sent to every
 *   member device in `send-multi` frames. Devices the server reports missing, extra or stale are
 *   repaired (fresh device list, sessions of gone installs dropped, key handed again) and the
 *   message is encrypted and sent again; receivers drop the copy they may already have by its id.
 * - Blocked members (chat/block.ts) are left out of our group messages, as Signal leaves them out
 *   of a group send: neither our sender key nor the message goes to their devices, and they are
 *   not among the members whose receipts are awaited. A message whose frames were still waiting
 *   in the relay (offline) when a member was blocked is taken back and sent again without them
 *   (`refuseBlocked`). Group state changes still go to every member, so the group stays one.
 */
import { pointerOf, type AttachmentPointer } from '../attachment/pointer.js';
import { MAX_FANOUT_DEVICES, MAX_FRAME_BYTES, type DeviceMismatch, type Envelope as WireEnvelope } from '@tacit/api';
import { DistributionId, GroupCipher, isProtocolError, ProtocolAddress, SenderKeyDistributionMessage, type SessionManager } from '@tacit/protocol';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../backoff.js';
import { fromBase64, toHex } from '../bytes.js';
import type { Core, StateTxn } from '../core.js';
import { MAX_CONTACT_DEVICES, type Directory } from '../directory.js';
import { ClientError } from '../errors.js';
import { buildSendMulti, type FanoutTarget, type SendMultiAnswer } from '../fanout.js';
import { messageError, type History, type HistoryMessage, type MessageMeta } from '../history.js';
import { PREFIX } from '../keys.js';
import { isInt, isObj, isStr, jsonCodec } from '../record-codec.js';
import type { Relay } from '../relay.js';
import { checkText, describeTextProblem } from '../text.js';
import type { Trust } from '../trust.js';
import type { Txn } from '../txn.js';
import { MAX_SENDER_KEYS_PER_DEVICE, RecordSenderKeyStore, senderKeyGroupCodec, senderKeyListCodec, senderKeyName } from './sender-keys.js';
import {
  admins,
  currentMembers,
  GROUP_ID_BYTES,
  groupConversation,
  groupOf,
  isAdmin,
  isGroupId,
  isMember,
  isUsername,
  MAX_GROUP_ENTRIES,
  MAX_GROUP_MEMBERS,
  mergeGroupState,
  parseGroupState,
  revision,
  titleProblem,
  type GroupState,
} from './state.js';
import { decodeGroupPayload, encodeGroupPayload, type GroupPayload } from './wire.js';
import type { Action } from '../chat/actions.js';
import { blockedUsers, isBlocked } from '../chat/block.js';
import type { SendOptions } from '../outbox.js';

/** Groups one device keeps (current and left). */
export const MAX_GROUPS = 1_000;
/** Times one group message is encrypted and sent again after the server named devices to repair. */
export const MAX_GROUP_REPAIRS = 3;
/** Frame budget for one `send-multi` (below MAX_FRAME_BYTES, leaving room for the JSON around the ciphertexts). */
const FRAME_BUDGET = MAX_FRAME_BYTES - 8 * 1024;
/** How long `close` waits for group states still being sent on to other members, ms. */
export const GROUP_CLOSE_GRACE_MS = 10_000;
/** Shortest id prefix that names a group on a command line. */
export const MIN_GROUP_PREFIX = 4;
/** Message ids: 16 random bytes in hex (as pairwise). */
const MESSAGE_ID_BYTES = 16;

/** What apps see of a group. */
export interface GroupInfo {
  id: string;
  conversation: string;
  title: string;
  members: string[];
  admins: string[];
  revision: number;
  /** This device's account is a member (false after leaving or being removed). */
  member: boolean;
}

/** This device's record of a group: the shared state and its own sender-key bookkeeping. */
interface GroupRecord {
  state: GroupState;
  /** Distribution id (UUID) of our current sender key, once we made one. */
  dist?: string;
  /** Member installs that hold our current sender key: username → `<device id>.<registration id>`. */
  has: Record<string, string[]>;
  /** Someone was removed or left: start a new sender key before our next message. */
  rotate: boolean;
  /** Members not yet told of our last change (sent again after every connect until done). */
  tell?: string[];
  createdAt: number;
}

const recordCodec = jsonCodec<GroupRecord>('group', (v) => {
  if (!isObj(v) || !isObj(v['has']) || typeof v['rotate'] !== 'boolean' || !isInt(v['createdAt'])) return undefined;
  const state = parseGroupState(v['state']);
  if (state === undefined) return undefined;
  if (v['dist'] !== undefined && !isStr(v['dist'], 36)) return undefined;
  const has: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (const [u, d] of Object.entries(v['has'])) {
    if (!isUsername(u) || !Array.isArray(d) || d.length > MAX_CONTACT_DEVICES || !d.every((x) => isStr(x, 24))) return undefined;
    has[u] = d as string[];
  }
  const tell = v['tell'];
  if (tell !== undefined && (!Array.isArray(tell) || tell.length > MAX_GROUP_ENTRIES || !tell.every(isUsername))) return undefined;
  return { state, ...(v['dist'] !== undefined ? { dist: v['dist'] as string } : {}), has, rotate: v['rotate'], ...(tell !== undefined ? { tell: tell as string[] } : {}), createdAt: v['createdAt'] };
});

interface GroupJob {
  group: string;
  msg: number;
}
const jobCodec = jsonCodec<GroupJob>('queued group message', (v) => (isObj(v) && isGroupId(v['group']) && isInt(v['msg'], 1) ? { group: v['group'], msg: v['msg'] } : undefined));

export interface GroupSendResult {
  id: string;
  group: string;
  conversation: string;
  seq: number;
  sentAt: number;
  /** Member devices the server stored the message for. */
  devices: number;
}

/** A group message as the inbox stores it. */
export interface ReceivedGroupMessage {
  conversation: string;
  id: string;
  text: string;
  sentAt: number;
  /** A file sent with it (attachment/pointer.ts). */
  file?: AttachmentPointer;
  /** An edit, deletion, reaction or timer, and the message's own timer (chat/actions.ts). */
  act?: Action;
  exp?: number;
}

export interface GroupsOptions {
  core: Core;
  history: History;
  directory: Directory;
  trust: Trust;
  sessions: SessionManager;
  relay: () => Relay | undefined;
  startRelay: () => Relay;
  backoff?: BackoffPolicy;
}

const TRANSIENT: ReadonlySet<string> = new Set(['NETWORK', 'TIMEOUT', 'CLOSED']);
const TRANSIENT_SERVER: ReadonlySet<string> = new Set(['RATE_LIMITED', 'UNAVAILABLE', 'INTERNAL', 'TOO_MANY_IN_FLIGHT']);

function info(r: GroupRecord, self: string): GroupInfo {
  const s = r.state;
  return { id: s.id, conversation: groupConversation(s.id), title: s.title.v, members: currentMembers(s), admins: admins(s), revision: revision(s), member: isMember(s, self) };
}

export class Groups {
  readonly #o: GroupsOptions;
  readonly #core: Core;
  readonly cipher: GroupCipher;
  readonly #waiters = new Map<string, { resolve: (r: GroupSendResult) => void; reject: (e: ClientError) => void }[]>();
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #attempts = new Map<string, number>();
  /** States being sent on after a merge (see #afterCommitSend). */
  readonly #background = new Set<Promise<unknown>>();
  /** Message frames (relay send ids) waiting for the server, per group, so a block can take them back. */
  readonly #inFlight = new Map<string, Set<string>>();
  /** Groups whose message frames `refuseBlocked` took back: their job runs again. */
  readonly #withdrawn = new Set<string>();
  #closed = false;

  constructor(o: GroupsOptions) {
    this.#o = o;
    this.#core = o.core;
    this.cipher = new GroupCipher(o.core.backend, new RecordSenderKeyStore(o.core));
  }

  get #self(): string {
    return this.#core.account.username;
  }
  get #address(): ProtocolAddress {
    return new ProtocolAddress(this.#core.account.username, this.#core.account.deviceId);
  }

  async #load(t: Txn, id: string): Promise<GroupRecord | undefined> {
    return t.read(recordCodec, this.#core.keys.group(id));
  }

  #save(t: StateTxn, r: GroupRecord): void {
    t.write(recordCodec, this.#core.keys.group(r.state.id), r);
  }

  // ---- reading ----

  async list(): Promise<GroupInfo[]> {
    const out: GroupInfo[] = [];
    for (const r of await this.#core.view().list(PREFIX.group)) out.push(info(recordCodec.decode(r.value), this.#self));
    return out.sort((a, b) => a.title.localeCompare(b.title) || a.id.localeCompare(b.id));
  }

  /** The states of the groups this account is in, encoded as pairwise state payloads (for a newly linked device). */
  async exportStates(): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (const r of await this.#core.view().list(PREFIX.group)) {
      const rec = recordCodec.decode(r.value);
      if (isMember(rec.state, this.#self)) out.push(encodeGroupPayload({ grp: 'state', state: rec.state }));
    }
    return out;
  }

  /** A group state another device of this account handed over when linking this one (merged like any state from a member). */
  async importState(t: StateTxn, payload: Uint8Array): Promise<boolean> {
    const p = decodeGroupPayload(payload);
    if (p === undefined || p.grp !== 'state' || !isMember(p.state, this.#self)) return false;
    await this.#receiveState(t, this.#self, p.state);
    return true;
  }

  async get(ref: string): Promise<GroupInfo> {
    const id = await this.resolve(ref);
    const r = await this.#load(this.#core.view(), id);
    return info(r!, this.#self);
  }

  /**
   * A group named by `g:<id>`, `g:<id prefix>` (at least MIN_GROUP_PREFIX hex digits), or
   * `#<title>` (case-insensitive; must name one group). INVALID_ARGUMENT if none or several match.
   */
  async resolve(ref: string): Promise<string> {
    const all = await this.list();
    let matches: GroupInfo[];
    if (ref.startsWith('#')) {
      const title = ref.slice(1).trim().toLowerCase();
      matches = all.filter((g) => g.title.toLowerCase() === title);
      // A title shared by a group we are in and one we left: the current one is meant.
      if (matches.length > 1 && matches.filter((g) => g.member).length === 1) matches = matches.filter((g) => g.member);
    } else {
      const prefix = ref.startsWith('g:') ? ref.slice(2) : ref;
      if (!/^[0-9a-f]+$/.test(prefix) || prefix.length < MIN_GROUP_PREFIX) throw new ClientError('INVALID_ARGUMENT', `"${ref.slice(0, 40)}" is not a group: name one as #title or g:<id> (at least ${MIN_GROUP_PREFIX} hex digits)`);
      matches = all.filter((g) => g.id.startsWith(prefix));
    }
    if (matches.length === 1) return matches[0]!.id;
    if (matches.length === 0) throw new ClientError('INVALID_ARGUMENT', `no group ${ref.slice(0, 60)}`);
    throw new ClientError('INVALID_ARGUMENT', `${ref.slice(0, 60)} names ${matches.length} groups; use g:<id> (${matches.map((g) => `g:${g.id.slice(0, 8)}`).join(', ')})`);
  }

  // ---- changes ----

  /** Creates a group with us as its admin and `members`, and tells them. */
  async create(title: string, members: string[]): Promise<GroupInfo> {
    const problem = titleProblem(title);
    if (problem !== undefined) throw new ClientError('INVALID_ARGUMENT', problem);
    const users = await this.#checkUsers(members);
    if (users.length + 1 > MAX_GROUP_MEMBERS) throw new ClientError('INVALID_ARGUMENT', `a group has at most ${MAX_GROUP_MEMBERS} members`);
    const id = toHex(this.#core.backend.randomBytes(GROUP_ID_BYTES));
    const self = this.#self;
    const state: GroupState = { id, title: { v: title.trim(), rev: 1, by: self }, members: Object.create(null) as GroupState['members'] };
    state.members[self] = { in: true, admin: true, rev: 1, by: self };
    for (const u of users) state.members[u] = { in: true, admin: false, rev: 1, by: self };
    const r = await this.#core.mutate(async (t) => {
      if ((await t.list(PREFIX.group)).length >= MAX_GROUPS) throw new ClientError('INVALID_ARGUMENT', `at most ${MAX_GROUPS} groups per device`);
      const rec: GroupRecord = { state, has: Object.create(null) as Record<string, string[]>, rotate: false, tell: users, createdAt: this.#core.now() };
      this.#save(t, rec);
      await this.#system(t, id, self, `${self} created the group "${state.title.v}" with ${users.join(', ')}`);
      return rec;
    });
    await this.#tellPending(id);
    return info(r, self);
  }

  add(ref: string, users: string[]): Promise<GroupInfo> {
    return this.#change(ref, 'add', users);
  }
  remove(ref: string, users: string[]): Promise<GroupInfo> {
    return this.#change(ref, 'remove', users);
  }
  rename(ref: string, title: string): Promise<GroupInfo> {
    return this.#change(ref, 'rename', [], title);
  }
  leave(ref: string): Promise<GroupInfo> {
    return this.#change(ref, 'leave', []);
  }
  /** Makes a member an admin (`admin` true) or takes admin rights away; only an admin may, and never from the last admin. */
  setAdmin(ref: string, user: string, admin: boolean): Promise<GroupInfo> {
    return this.#change(ref, admin ? 'promote' : 'demote', [user]);
  }

  async #checkUsers(list: string[]): Promise<string[]> {
    const users = [...new Set(list)];
    for (const u of users) {
      if (!isUsername(u)) throw new ClientError('INVALID_ARGUMENT', `"${String(u).slice(0, 40)}" is not a valid username`);
      if (u === this.#self) throw new ClientError('INVALID_ARGUMENT', 'you are in the group already');
    }
    // Each must exist on the server (and this checks their identity key is the trusted one later).
    for (const u of users) await this.#o.directory.deviceList(u, true);
    return users.sort();
  }

  async #change(ref: string, kind: 'add' | 'remove' | 'rename' | 'promote' | 'demote' | 'leave', list: string[], title?: string): Promise<GroupInfo> {
    const id = await this.resolve(ref);
    if (kind === 'rename') {
      const p = titleProblem(title ?? '');
      if (p !== undefined) throw new ClientError('INVALID_ARGUMENT', p);
    }
    if ((kind === 'add' || kind === 'remove') && list.length === 0) throw new ClientError('INVALID_ARGUMENT', `name at least one user to ${kind}`);
    const users = kind === 'add' ? await this.#checkUsers(list) : [...new Set(list)];
    const self = this.#self;
    return this.#core.peerLock.run(groupConversation(id), async () => {
      const { rec, tell } = await this.#core.mutate(async (t) => {
        const rec = (await this.#load(t, id))!;
        const s = rec.state;
        if (!isMember(s, self)) throw new ClientError('INVALID_ARGUMENT', 'you are not a member of this group');
        if (kind !== 'leave' && !isAdmin(s, self)) throw new ClientError('INVALID_ARGUMENT', 'only an admin of the group can do this');
        const before = currentMembers(s);
        const rev = revision(s) + 1;
        let line: string;
        if (kind === 'add') {
          const fresh = users.filter((u) => !isMember(s, u));
          if (fresh.length === 0) throw new ClientError('INVALID_ARGUMENT', 'they are members already');
          if (before.length + fresh.length > MAX_GROUP_MEMBERS) throw new ClientError('INVALID_ARGUMENT', `a group has at most ${MAX_GROUP_MEMBERS} members`);
          for (const u of fresh) s.members[u] = { in: true, admin: false, rev, by: self };
          line = `${self} added ${fresh.join(', ')}`;
        } else if (kind === 'remove') {
          for (const u of users) {
            if (u === self) throw new ClientError('INVALID_ARGUMENT', 'to leave a group, use leave');
            if (!isMember(s, u)) throw new ClientError('INVALID_ARGUMENT', `${u.slice(0, 40)} is not a member of this group`);
          }
          for (const u of users) s.members[u] = { in: false, admin: false, rev, by: self };
          rec.rotate = true;
          line = `${self} removed ${users.join(', ')}`;
        } else if (kind === 'rename') {
          s.title = { v: title!.trim(), rev, by: self };
          line = `${self} renamed the group to "${s.title.v}"`;
        } else if (kind === 'promote' || kind === 'demote') {
          const u = users[0]!;
          if (!isUsername(u) || !isMember(s, u)) throw new ClientError('INVALID_ARGUMENT', `${String(u).slice(0, 40)} is not a member of this group`);
          const admin = kind === 'promote';
          if (isAdmin(s, u) === admin) throw new ClientError('INVALID_ARGUMENT', admin ? `${u} is an admin already` : `${u} is not an admin`);
          // As with leaving, a group is never left without an admin.
          if (!admin && admins(s).length === 1) throw new ClientError('INVALID_ARGUMENT', 'a group needs an admin: make another member an admin first');
          s.members[u] = { in: true, admin, rev, by: self };
          line = admin ? `${self} made ${u} an admin` : u === self ? `${self} is no longer an admin` : `${self} removed ${u} as an admin`;
        } else {
          s.members[self] = { in: false, admin: false, rev, by: self };
          // The last admin to leave hands the group to the remaining members (first by name), as
          // Signal does, so a group is never left without an admin.
          const rest = currentMembers(s);
          if (admins(s).length === 0 && rest.length > 0) s.members[rest[0]!] = { in: true, admin: true, rev, by: self };
          line = `${self} left the group`;
        }
        const tell = [...new Set([...(rec.tell ?? []), ...before, ...currentMembers(s)])].filter((u) => u !== self).sort();
        rec.tell = tell;
        this.#save(t, rec);
        await this.#system(t, id, self, line);
        return { rec, tell };
      });
      await this.#sendTell(id, rec.state, tell);
      return info(rec, self);
    });
  }

  /**
   * Sends our state to the members not yet told of our last change, and forgets them once it went
   * out. Kept in the group's record, so a change made while the server could not be reached (or by
   * a process that ended first) goes out after the next connect.
   */
  #tellPending(id: string): Promise<void> {
    return this.#core.peerLock.run(groupConversation(id), async () => {
      const rec = await this.#load(this.#core.view(), id);
      if (rec?.tell === undefined || rec.tell.length === 0) return;
      await this.#sendTell(id, rec.state, rec.tell);
    });
  }

  async #sendTell(id: string, state: GroupState, users: string[]): Promise<void> {
    await this.#broadcast(state, users);
    await this.#core.mutate(async (t) => {
      const r = await this.#load(t, id);
      if (r === undefined) return;
      // Told; unless the state moved on meanwhile (then its own send, to everyone in `tell`, clears it).
      if (revision(r.state) !== revision(state) || r.tell === undefined) return;
      delete r.tell;
      this.#save(t, r);
    });
  }

  /** Sends our state of the group to every device of `users` (failures are per user: they learn later). */
  async #broadcast(state: GroupState, users: string[]): Promise<void> {
    if (users.length === 0) return;
    // Our own other devices learn every change we make or pass on, too.
    await this.#sendPairwise([...new Set([...users, this.#self])], encodeGroupPayload({ grp: 'state', state }));
  }

  /** Encrypts `payload` for every device of `users` and sends it in `send-multi` frames, repairing device lists. */
  async #sendPairwise(users: string[], payload: Uint8Array): Promise<{ devices: number; skipped: string[] }> {
    let todo = users;
    let devices = 0;
    const skipped: string[] = [];
    for (let round = 0; round <= MAX_GROUP_REPAIRS && todo.length > 0; round++) {
      const lists = new Map<string, number[]>();
      for (const u of todo) {
        try {
          // Our own account: its other devices (none is the common case, and nothing is sent).
          const ds = await this.#o.directory.prepareSessions(u, u === this.#self ? this.#core.account.deviceId : undefined);
          if (ds.length > 0) lists.set(u, ds);
        } catch (e) {
          if (e instanceof ClientError && TRANSIENT.has(e.code)) throw e;
          skipped.push(u);
        }
      }
      const targets = await this.#core.mutate(async (t) => {
        const out: FanoutTarget[] = [];
        for (const [u, ds] of lists) {
          const target: FanoutTarget = { username: u, devices: [] };
          for (const d of ds) {
            const ct = await this.#o.sessions.encrypt(new ProtocolAddress(u, d), payload);
            target.devices.push({ deviceId: d, registrationId: await this.#registrationId(t, u, d), message: { type: ct.type, body: ct.body } });
          }
          out.push(target);
        }
        return out;
      });
      const refused = await this.#sendFrames(targets);
      devices += targets.reduce((n, x) => n + x.devices.length, 0);
      todo = await this.#repair(refused);
    }
    return { devices, skipped };
  }

  async #registrationId(t: Txn, user: string, deviceId: number): Promise<number> {
    const fromSession = await this.#o.directory.sessionRegistrationId(t, user, deviceId);
    if (fromSession !== undefined) return fromSession;
    const c = await this.#o.directory.contact(t, user);
    return c?.devices.find((d) => d.deviceId === deviceId)?.registrationId || 1;
  }

  /**
   * Sends to `targets` (per-device ciphertexts, or `shared` for all) in frames within the
   * contract's limits. Returns the accounts the server asked to repair (their frames were not stored).
   */
  async #sendFrames(targets: FanoutTarget[], shared?: { type: 'sender-key'; body: Uint8Array }, ttlMs?: number, group?: string): Promise<DeviceMismatch[]> {
    const relay = this.#o.relay() ?? this.#o.startRelay();
    const frames: FanoutTarget[][] = [];
    let cur: FanoutTarget[] = [];
    let count = 0;
    let bytes = 0;
    for (const target of targets) {
      // An account's devices stay in one frame: the server checks an account's list as a whole.
      const size = target.devices.reduce((n, d) => n + 120 + Math.ceil(((shared ? 0 : d.message?.body.length) ?? 0) * 1.34), 0);
      if (cur.length > 0 && (count + target.devices.length > MAX_FANOUT_DEVICES || bytes + size > FRAME_BUDGET - (shared ? Math.ceil(shared.body.length * 1.34) : 0))) {
        frames.push(cur);
        cur = [];
        count = 0;
        bytes = 0;
      }
      cur.push(target);
      count += target.devices.length;
      bytes += size;
    }
    if (cur.length > 0) frames.push(cur);
    const ids = frames.map(() => toHex(this.#core.backend.randomBytes(12)));
    // A group message's frames, so a block can take them back while they wait (refuseBlocked).
    if (group !== undefined) {
      const tracked = this.#inFlight.get(group) ?? new Set<string>();
      for (const id of ids) tracked.add(id);
      this.#inFlight.set(group, tracked);
    }
    let answers: SendMultiAnswer[];
    try {
      answers = await Promise.all(frames.map((f, i) => relay.sendMulti(buildSendMulti(ids[i]!, f, shared, ttlMs))));
    } finally {
      const tracked = group === undefined ? undefined : this.#inFlight.get(group);
      for (const id of ids) tracked?.delete(id);
      if (group !== undefined && tracked?.size === 0) this.#inFlight.delete(group);
    }
    const refused: DeviceMismatch[] = [];
    for (const a of answers) if (!a.ok) refused.push(...a.accounts);
    return refused;
  }

  /** After a refusal: fresh device lists, sessions of gone or re-installed devices dropped. Returns the users to send to again. */
  async #repair(accounts: DeviceMismatch[]): Promise<string[]> {
    if (accounts.length === 0) return [];
    await this.#core.mutate(async (t) => {
      for (const a of accounts) {
        const gone = new Set([...a.extra, ...a.stale]);
        if (gone.size === 0) continue;
        const keep = new Set(((await this.#o.directory.contact(t, a.username))?.devices ?? []).map((d) => d.deviceId).filter((d) => !gone.has(d)));
        await this.#o.directory.forgetSessions(t, a.username, keep);
      }
    });
    for (const a of accounts) this.#o.directory.forget(a.username);
    return [...new Set(accounts.map((a) => a.username))];
  }

  // ---- receiving (inside the inbox's state change) ----

  /** A group payload that came over a pairwise session from (from, fromDevice). */
  async receivePairwise(t: StateTxn, from: string, fromDevice: number, plaintext: Uint8Array): Promise<void> {
    const p = decodeGroupPayload(plaintext);
    if (p === undefined) {
      t.afterCommit(() => this.#core.events.emit('undecryptable', { from, fromDevice, reason: 'BAD_GROUP_MESSAGE' }));
      return;
    }
    if (p.grp === 'state') return this.#receiveState(t, from, p.state);
    if (p.grp === 'key') return this.#receiveKey(t, from, fromDevice, p);
    // A group text never travels pairwise.
    t.afterCommit(() => this.#core.events.emit('undecryptable', { from, fromDevice, reason: 'BAD_GROUP_MESSAGE' }));
  }

  async #receiveState(t: StateTxn, from: string, incoming: GroupState): Promise<void> {
    const self = this.#self;
    const rec = await this.#load(t, incoming.id);
    if (rec === undefined && (await t.list(PREFIX.group)).length >= MAX_GROUPS) return;
    // A blocked user cannot add us to a group we are not in (chat/block.ts); their changes to ours apply.
    if (from !== self && !isMember(rec?.state, self) && (await isBlocked(t, from))) return;
    const m = mergeGroupState(this.#core.backend, rec?.state, incoming, from, self);
    if (!m.changed) {
      if (m.ahead && rec !== undefined && isAdmin(rec.state, self)) this.#afterCommitSend(t, rec.state, [from]);
      return;
    }
    const next: GroupRecord = rec ?? { state: m.state, has: Object.create(null) as Record<string, string[]>, rotate: false, createdAt: this.#core.now() };
    next.state = m.state;
    if (m.removed.length > 0) next.rotate = true;
    this.#save(t, next);
    const id = incoming.id;
    if (rec === undefined || (!isMember(rec.state, self) && isMember(m.state, self))) {
      await this.#system(t, id, from, `${from} added you to "${m.state.title.v}" (${currentMembers(m.state).join(', ')})`);
    } else {
      const added = m.added.filter((u) => u !== self);
      if (added.length > 0) await this.#system(t, id, from, `${from} added ${added.join(', ')}`);
      for (const u of m.removed) await this.#system(t, id, from, u === from ? `${u} left the group` : u === self ? `${from} removed you` : `${from} removed ${u}`);
      if (m.renamed) await this.#system(t, id, from, `${from} renamed the group to "${m.state.title.v}"`);
      for (const u of m.promoted) await this.#system(t, id, from, `${from} made ${u === self ? 'you' : u} an admin`);
      for (const u of m.demoted) await this.#system(t, id, from, u === from ? `${u} is no longer an admin` : `${from} removed ${u === self ? 'you' : u} as an admin`);
    }
    t.afterCommit(() => this.#core.events.emit('group', { group: info(next, self) }));
    // We hold something the sender lacked: an admin sends the merged state on to everyone it concerns.
    if (m.ahead && isAdmin(m.state, self)) {
      const tell = [...new Set([...currentMembers(m.state), ...m.removed, from])].filter((u) => u !== self);
      this.#afterCommitSend(t, m.state, tell);
    }
  }

  #afterCommitSend(t: StateTxn, state: GroupState, users: string[]): void {
    const snapshot = structuredClone(state);
    t.afterCommit(() => {
      const job = this.#core.peerLock.run(groupConversation(state.id), () => this.#broadcast(snapshot, users)).catch(() => undefined);
      this.#background.add(job);
      void job.finally(() => this.#background.delete(job));
    });
  }

  /** Waits (at most `ms`) for states being sent on to other members, so a short-lived client does not cut them off. */
  async idle(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, ms)));
    await Promise.race([Promise.all([...this.#background]), late]);
    clearTimeout(timer);
  }

  async #receiveKey(t: StateTxn, from: string, fromDevice: number, p: Extract<GroupPayload, { grp: 'key' }>): Promise<void> {
    let skdm: SenderKeyDistributionMessage;
    try {
      skdm = SenderKeyDistributionMessage.deserialize(p.skdm);
    } catch (e) {
      const reason = isProtocolError(e) ? e.code : 'BAD_GROUP_MESSAGE';
      t.afterCommit(() => this.#core.events.emit('undecryptable', { from, fromDevice, reason }));
      return;
    }
    const rec = await this.#load(t, p.group);
    // Keys only from members, for groups we are in.
    if (!isMember(rec?.state, from) || !isMember(rec?.state, this.#self)) return;
    const sender = new ProtocolAddress(from, fromDevice);
    const name = senderKeyName(sender, skdm.distributionId);
    const owner = await t.read(senderKeyGroupCodec, this.#core.keys.senderKeyGroup(name));
    // A distribution id belongs to one group: a key handed for another group is not taken.
    if (owner !== undefined && owner.group !== p.group) return;
    await this.cipher.processSenderKeyDistributionMessage(sender, skdm);
    t.write(senderKeyGroupCodec, this.#core.keys.senderKeyGroup(name), { group: p.group });
    if (owner === undefined) await this.#keepReceivedKey(t, p.group, sender, name);
  }

  /** Lists a member device's new sender key; past MAX_SENDER_KEYS_PER_DEVICE its oldest is deleted. */
  async #keepReceivedKey(t: StateTxn, group: string, sender: ProtocolAddress, name: string): Promise<void> {
    const key = this.#core.keys.senderKeyList(group, sender.toString());
    const names = [...((await t.read(senderKeyListCodec, key))?.names ?? []), name];
    for (const old of names.splice(0, Math.max(0, names.length - MAX_SENDER_KEYS_PER_DEVICE))) {
      t.delete(this.#core.keys.senderKey(old));
      t.delete(this.#core.keys.senderKeyGroup(old));
    }
    t.write(senderKeyListCodec, key, { names });
  }

  /**
   * A `sender-key` envelope: decrypted with the sender's key, checked against the group it was
   * handed for and against membership. Returns what to store, or undefined (dropped, and said).
   */
  async receiveGroupMessage(t: StateTxn, env: WireEnvelope): Promise<ReceivedGroupMessage | undefined> {
    const from = env.source.username;
    const fromDevice = env.source.deviceId;
    const undecryptable = (reason: string): undefined => {
      t.afterCommit(() => this.#core.events.emit('undecryptable', { from, fromDevice, reason }));
      return undefined;
    };
    const body = fromBase64(env.body);
    if (body === undefined) return undecryptable('DECODE');
    const sender = new ProtocolAddress(from, fromDevice);
    let plaintext: Uint8Array;
    let distributionId: DistributionId;
    try {
      const r = await this.cipher.groupDecrypt(sender, body);
      plaintext = r.plaintext;
      distributionId = r.distributionId;
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      // A duplicate is a redelivery of something already stored; anything else is said.
      return e.code === 'DUPLICATE' ? undefined : undecryptable(e.code);
    }
    const p = decodeGroupPayload(plaintext);
    if (p === undefined || p.grp !== 'text') return undecryptable('BAD_GROUP_MESSAGE');
    const owner = await t.read(senderKeyGroupCodec, this.#core.keys.senderKeyGroup(senderKeyName(sender, distributionId)));
    const rec = await this.#load(t, p.group);
    if (owner?.group !== p.group || !isMember(rec?.state, from) || !isMember(rec?.state, this.#self)) return undecryptable('NOT_A_MEMBER');
    return { conversation: groupConversation(p.group), id: p.id, text: p.text, sentAt: p.sentAt, ...(p.file !== undefined ? { file: p.file } : {}), ...(p.act !== undefined ? { act: p.act } : {}), ...(p.exp !== undefined ? { exp: p.exp } : {}) };
  }

  /** A system line in the group's history ("alice added carol"); another member's counts as unread. */
  async #system(t: StateTxn, group: string, actor: string, text: string): Promise<void> {
    const now = this.#core.now();
    // Our own changes are lines we wrote (outgoing, already read); others' count as unread.
    const mine = actor === this.#self;
    const id = toHex(this.#core.backend.randomBytes(MESSAGE_ID_BYTES));
    const meta: MessageMeta = mine ? { d: 'out', id, from: actor, dev: this.#core.account.deviceId, sentAt: now, st: 'sent', sys: 1 } : { d: 'in', id, from: actor, dev: 0, sentAt: now, rcv: now, sys: 1 };
    const m = await this.#o.history.append(t, groupConversation(group), meta, text.slice(0, 1_000));
    t.afterCommit(() => this.#core.events.emit(mine ? 'outgoing' : 'message', { ...m }));
  }

  // ---- sending ----

  /** Stores `text` as queued in the group's history and sends it to every member device. */
  async send(ref: string, text: string, options: SendOptions = {}): Promise<GroupSendResult> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    const problem = options.act !== undefined ? undefined : checkText(text);
    if (problem !== undefined) throw new ClientError('INVALID_ARGUMENT', describeTextProblem(problem));
    const id = await this.resolve(ref);
    const a = this.#core.account;
    const m = await this.#core.mutate(async (t) => {
      const rec = await this.#load(t, id);
      if (!isMember(rec?.state, a.username)) throw new ClientError('INVALID_ARGUMENT', 'you are not a member of this group');
      const meta: MessageMeta = { d: 'out', id: toHex(this.#core.backend.randomBytes(MESSAGE_ID_BYTES)), from: a.username, dev: a.deviceId, sentAt: this.#core.now(), st: 'queued', to: {}, pend: 0, att: 0, job: 1, ...(options.act !== undefined ? { act: options.act } : {}) };
      // Who receipts may come from (chat/receipts.ts): the members it goes to (not the blocked).
      if (options.act === undefined) meta.rt = await this.#receiptFrom(t, rec!.state);
      // An edit, deletion, reaction or timer applies here in the commit that queues it (chat/edits.ts).
      await options.before?.(t, meta.sentAt);
      const msg = await this.#o.history.append(t, groupConversation(id), meta, text);
      t.write(jobCodec, this.#core.keys.groupQueued(id, t.nextSeq()), { group: id, msg: msg.seq });
      t.counters.queued++;
      t.afterCommit(() => this.#core.events.emit('outgoing', { ...msg }));
      return msg;
    });
    return this.#start(id, m);
  }

  /**
   * Sends a group message already in history but never queued (a file whose upload just
   * finished, attachment/messages.ts): `change` completes its record, then it goes like `send`.
   */
  async sendStored(conversation: string, seq: number, change: (m: MessageMeta) => MessageMeta): Promise<GroupSendResult> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    const id = groupOf(conversation);
    if (id === undefined) throw new ClientError('INVALID_ARGUMENT', 'not a group conversation');
    const a = this.#core.account;
    const m = await this.#core.mutate(async (t) => {
      const rec = await this.#load(t, id);
      if (!isMember(rec?.state, a.username)) throw new ClientError('INVALID_ARGUMENT', 'you are not a member of this group');
      const rt = await this.#receiptFrom(t, rec!.state);
      const updated = await this.#o.history.update(t, conversation, seq, (x) => {
        const next: MessageMeta = { ...change(x), st: 'queued', job: 1, rt };
        delete next.err;
        return next;
      });
      if (updated === undefined) throw new ClientError('INVALID_ARGUMENT', 'the message is no longer in history');
      t.write(jobCodec, this.#core.keys.groupQueued(id, t.nextSeq()), { group: id, msg: seq });
      t.counters.queued++;
      t.afterCommit(() => this.#core.events.emit('outgoing', { ...updated }));
      return updated;
    });
    return this.#start(id, m);
  }

  /** Sends a failed group message again (same id: members that got it drop the copy). */
  async retry(conversation: string, seq: number): Promise<GroupSendResult> {
    const id = groupOf(conversation);
    if (id === undefined) throw new ClientError('INVALID_ARGUMENT', 'not a group conversation');
    const m = await this.#core.mutate(async (t) => {
      const cur = await this.#o.history.message(t, conversation, seq);
      if (cur === undefined || cur.meta.d !== 'out' || cur.meta.st !== 'failed') throw new ClientError('INVALID_ARGUMENT', 'only a failed message can be retried');
      t.write(jobCodec, this.#core.keys.groupQueued(id, t.nextSeq()), { group: id, msg: seq });
      t.counters.queued++;
      return this.#o.history.update(t, conversation, seq, (x) => {
        const next: MessageMeta = { ...x, st: 'queued', job: 1 };
        delete next.err;
        return next;
      });
    });
    return this.#start(id, m!);
  }

  #start(id: string, m: HistoryMessage): Promise<GroupSendResult> {
    const done = new Promise<GroupSendResult>((resolve, reject) => {
      const key = `${m.conversation}#${m.seq}`;
      this.#waiters.set(key, [...(this.#waiters.get(key) ?? []), { resolve, reject }]);
    });
    this.#o.startRelay();
    void this.kick(id);
    return done;
  }

  /** Works on every group with queued messages (after connecting, and after `trust`). */
  async kickAll(): Promise<void> {
    // Changes not yet sent to every member go first.
    for (const r of await this.#core.view().list(PREFIX.group)) {
      const rec = recordCodec.decode(r.value);
      if (rec.tell === undefined || rec.tell.length === 0) continue;
      const job = this.#tellPending(rec.state.id).catch(() => undefined);
      this.#background.add(job);
      void job.finally(() => this.#background.delete(job));
    }
    const groups = new Set<string>();
    for (const r of await this.#core.view().list(PREFIX.groupQueue)) groups.add(jobCodec.decode(r.value).group);
    for (const g of groups) void this.kick(g);
  }

  kick(group: string): Promise<void> {
    return this.#core.peerLock
      .run(groupConversation(group), () => this.#pump(group))
      .catch(() => this.#retryLater(group));
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    const err = new ClientError('CLOSED', 'the client closed before the server confirmed the message; it is sent the next time the client connects');
    for (const list of this.#waiters.values()) for (const w of list) w.reject(err);
    this.#waiters.clear();
  }

  #retryLater(group: string): void {
    if (this.#closed || this.#timers.has(group)) return;
    const attempt = this.#attempts.get(group) ?? 0;
    this.#attempts.set(group, attempt + 1);
    const timer = setTimeout(() => {
      this.#timers.delete(group);
      void this.kick(group);
    }, backoffDelay(attempt, this.#o.backoff ?? DEFAULT_BACKOFF));
    (timer as { unref?: () => void }).unref?.();
    this.#timers.set(group, timer);
  }

  async #pump(group: string): Promise<void> {
    for (let guard = 0; guard < 10_000 && !this.#closed; guard++) {
      const next = (await this.#core.view().list(this.#core.keys.groupQueueFor(group), { limit: 1 }))[0];
      if (next === undefined) return;
      const job = jobCodec.decode(next.value);
      try {
        if ((await this.#sendJob(next.key, job)) === 'held') return;
      } catch (e) {
        // Frames taken back because a member was blocked: the job runs again without them.
        if (e instanceof ClientError && e.code === 'CANCELLED' && this.#withdrawn.delete(group)) continue;
        const transient = !(e instanceof ClientError) || TRANSIENT.has(e.code) || (e.code === 'SERVER' && TRANSIENT_SERVER.has(e.serverCode ?? ''));
        if (transient) throw e;
        await this.#finish(next.key, job, e);
      }
    }
  }

  async #sendJob(jobKey: string, job: GroupJob): Promise<'done' | 'held'> {
    const self = this.#self;
    const rec = await this.#load(this.#core.view(), job.group);
    if (!isMember(rec?.state, self)) {
      await this.#finish(jobKey, job, new ClientError('INVALID_ARGUMENT', 'you are no longer a member of this group'));
      return 'done';
    }
    const members = await this.#receiptFrom(this.#core.view(), rec!.state);
    for (let round = 0; round <= MAX_GROUP_REPAIRS; round++) {
      const lists = new Map<string, number[]>();
      // Our other devices get the message (and our sender key) like a member's; trouble reaching
      // them never holds the message up.
      const own = await this.#o.directory.prepareSessions(self, this.#core.account.deviceId).catch(() => [] as number[]);
      if (own.length > 0) lists.set(self, own);
      for (const u of members) {
        try {
          lists.set(u, await this.#o.directory.prepareSessions(u));
        } catch (e) {
          if (e instanceof ClientError && e.code === 'UNTRUSTED_IDENTITY') {
            await this.#hold(job, e);
            return 'held';
          }
          if (e instanceof ClientError && e.code === 'UNKNOWN_USER') continue; // the account is gone
          throw e; // transient: retried with backoff
        }
      }
      this.#attempts.delete(job.group);
      const prepared = await this.#core.mutate((t) => this.#encrypt(t, jobKey, job, lists));
      if (prepared === undefined) return 'done';
      // The key first: the server keeps each device's queue in order, so it arrives before the message.
      const keys = await this.#unblocked(prepared.keys);
      const keyRefused = await this.#sendFrames(keys, undefined, undefined, job.group);
      if (keyRefused.length === 0 && keys.length > 0) await this.#core.mutate((t) => this.#noteHas(t, job.group, prepared.dist, keys));
      // A member blocked while the key went out is left out of the message.
      const refused = keyRefused.length > 0 ? keyRefused : await this.#sendFrames(await this.#unblocked(prepared.everyone), { type: 'sender-key', body: prepared.body }, prepared.ttl, job.group);
      if (refused.length === 0) {
        await this.#finish(jobKey, job, undefined, prepared.everyone.reduce((n, x) => n + x.devices.length, 0));
        return 'done';
      }
      await this.#repair(refused);
      // Devices the server named get the key again (a re-installed device lost it).
      await this.#core.mutate(async (t) => {
        const r = await this.#load(t, job.group);
        if (r === undefined) return;
        for (const a of refused) delete r.has[a.username];
        this.#save(t, r);
      });
    }
    await this.#finish(jobKey, job, new ClientError('SERVER', 'the server kept refusing the member devices named in the message', { serverCode: 'MISMATCHED_DEVICES' }));
    return 'done';
  }

  /** The members a message goes to, whose receipts it waits for: the others, not blocked. */
  async #receiptFrom(t: Txn, state: GroupState): Promise<string[]> {
    const blocked = await blockedUsers(t);
    return currentMembers(state).filter((u) => u !== this.#self && !blocked.has(u));
  }

  /** `targets` without the users blocked now. */
  async #unblocked(targets: FanoutTarget[]): Promise<FanoutTarget[]> {
    const blocked = await blockedUsers(this.#core.view());
    return targets.filter((x) => !blocked.has(x.username));
  }

  /**
   * `users` were blocked (here, or on another device of ours): message frames of groups they are
   * in that are still waiting in the relay (not written to the server on this connection) are
   * taken back, and those messages are encrypted and sent again without them.
   */
  async refuseBlocked(users: readonly string[]): Promise<void> {
    for (const [group, ids] of this.#inFlight) {
      const rec = await this.#load(this.#core.view(), group);
      if (rec === undefined || !users.some((u) => isMember(rec.state, u))) continue;
      const relay = this.#o.relay();
      let taken = false;
      for (const id of ids) if (relay?.withdraw(id) === 'withdrawn') taken = true;
      if (taken) this.#withdrawn.add(group);
    }
  }

  /** Inside a state change: our current sender key (new after a removal), its distribution to devices lacking it, and the message. */
  async #encrypt(t: StateTxn, jobKey: string, job: GroupJob, lists: Map<string, number[]>): Promise<{ dist: string; keys: FanoutTarget[]; everyone: FanoutTarget[]; body: Uint8Array; ttl?: number } | undefined> {
    if ((await t.getBytes(jobKey)) === undefined) return undefined;
    const rec = (await this.#load(t, job.group))!;
    const msg = await this.#o.history.message(t, groupConversation(job.group), job.msg);
    if (msg === undefined) return undefined;
    if (rec.dist === undefined || rec.rotate) {
      rec.dist = DistributionId.random(this.#core.backend).toString();
      rec.has = Object.create(null) as Record<string, string[]>;
      rec.rotate = false;
      this.#save(t, rec);
    }
    const dist = DistributionId.parse(rec.dist);
    const skdm = await this.cipher.createSenderKeyDistributionMessage(this.#address, dist);
    const keyPayload = encodeGroupPayload({ grp: 'key', group: job.group, skdm: skdm.serialize() });
    const keys: FanoutTarget[] = [];
    const everyone: FanoutTarget[] = [];
    for (const [u, ds] of lists) {
      const all: FanoutTarget = { username: u, devices: [] };
      const need: FanoutTarget = { username: u, devices: [] };
      for (const d of ds) {
        const registrationId = await this.#registrationId(t, u, d);
        all.devices.push({ deviceId: d, registrationId });
        if (rec.has[u]?.includes(`${d}.${registrationId}`)) continue;
        const ct = await this.#o.sessions.encrypt(new ProtocolAddress(u, d), keyPayload);
        need.devices.push({ deviceId: d, registrationId, message: { type: ct.type, body: ct.body } });
      }
      if (need.devices.length > 0) keys.push(need);
      if (all.devices.length > 0) everyone.push(all);
    }
    // A file goes out only with its complete pointer (its upload finished).
    const file = msg.meta.file === undefined ? undefined : pointerOf(msg.meta.file);
    if (msg.meta.file !== undefined && file === undefined) throw new ClientError('INVALID_ARGUMENT', 'the file is not uploaded yet');
    const body = await this.cipher.groupEncrypt(
      this.#address,
      dist,
      encodeGroupPayload({ grp: 'text', group: job.group, id: msg.meta.id, text: msg.text, sentAt: msg.meta.sentAt, ...(file !== undefined ? { file } : {}), ...(msg.meta.act !== undefined ? { act: msg.meta.act } : {}), ...(msg.meta.exp !== undefined ? { exp: msg.meta.exp } : {}) }),
    );
    // A disappearing message stays queued on the server no longer than its timer.
    return { dist: rec.dist, keys, everyone, body, ...(msg.meta.exp !== undefined ? { ttl: msg.meta.exp } : {}) };
  }

  async #noteHas(t: StateTxn, group: string, dist: string, targets: FanoutTarget[]): Promise<void> {
    const r = await this.#load(t, group);
    if (r === undefined || r.dist !== dist) return;
    for (const x of targets) r.has[x.username] = [...new Set([...(r.has[x.username] ?? []), ...x.devices.map((d) => `${d.deviceId}.${d.registrationId}`)])].slice(-MAX_CONTACT_DEVICES);
    this.#save(t, r);
  }

  /** A member's identity changed: the message stays queued until `trust`; the sender is told. */
  async #hold(job: GroupJob, e: ClientError): Promise<void> {
    const conversation = groupConversation(job.group);
    const updated = await this.#core.mutate((t) => this.#o.history.update(t, conversation, job.msg, (m) => ({ ...m, err: messageError(e.code, `held until you trust ${e.contact ?? 'a member'}: ${e.message}`) })));
    if (updated) this.#settle(updated, e);
  }

  async #finish(jobKey: string, job: GroupJob, error?: ClientError, devices = 0): Promise<void> {
    const updated = await this.#core.mutate(async (t) => {
      if ((await t.getBytes(jobKey)) !== undefined) {
        t.delete(jobKey);
        t.counters.queued--;
      }
      return this.#o.history.update(t, groupConversation(job.group), job.msg, (m) => {
        const next: MessageMeta = { ...m, st: error ? 'failed' : 'sent' };
        delete next.job;
        delete next.err;
        if (error) next.err = messageError(error.code, error.message, error.serverCode);
        return next;
      });
    });
    if (updated) this.#settle(updated, error, devices);
  }

  #settle(m: HistoryMessage, error?: ClientError, devices = 0): void {
    this.#core.events.emit('outgoing', { ...m });
    const key = `${m.conversation}#${m.seq}`;
    const list = this.#waiters.get(key);
    if (list === undefined) return;
    this.#waiters.delete(key);
    const group = groupOf(m.conversation) ?? '';
    for (const w of list) {
      if (error) w.reject(error);
      else w.resolve({ id: m.id, group, conversation: m.conversation, seq: m.seq, sentAt: m.sentAt, devices });
    }
  }
}
