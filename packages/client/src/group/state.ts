/**
 * Group state as every member's device keeps it (docs/PROTOCOL.md, "Groups"): a random id, a title,
 * members and admins. The server knows none of it; devices change it with control messages sent
 * over the pairwise sessions, each carrying the sender's whole state.
 *
 * Convergence rule. The state is a map of registers: one per member (`in`, `admin`) and one for the
 * title. Every register carries the revision at which it was last written and who wrote it. A
 * change writes the registers it touches at revision (the state's highest revision + 1). Merging
 * two states takes, per register, the one with the higher revision; at equal revisions the one
 * whose canonical encoding has the larger SHA-256 (a deterministic hash every device computes
 * alike). This merge is commutative, associative and idempotent, so devices that saw the same
 * changes hold the same state whatever the order; concurrent changes to different members both
 * survive, and of two concurrent changes to one member (or to the title) exactly one wins
 * everywhere. Removed members stay as registers with `in: false`, so a late, older add cannot
 * bring them back.
 *
 * Authority: a register is taken from a sender only if the sender is an admin in the receiving
 * device's state, or the register says that the sender left. A device that is not in a group yet
 * takes a state that names it as a member from a sender the state names as an admin.
 */
import type { CryptoBackend } from '@tacit/protocol';
import { USERNAME_MAX_LENGTH, USERNAME_PATTERN } from '@tacit/api';
import { toHex, utf8Encode } from '../bytes.js';
import { groupIdOf } from '../history.js';
import { isInt, isObj, isStr } from '../record-codec.js';

/** Members of one group (current ones). A sender-key message goes to every device of all of them. */
export const MAX_GROUP_MEMBERS = 100;
/** Member registers kept per group, current and removed; bounds what a group's state can grow to. */
export const MAX_GROUP_ENTRIES = 1_000;
/** Longest group title, in UTF-16 code units (shown in one line). */
export const MAX_GROUP_TITLE = 100;
/** Group ids: 16 random bytes, in hex. */
export const GROUP_ID_BYTES = 16;
const GROUP_ID_PATTERN = /^[0-9a-f]{32}$/;

export interface MemberRegister {
  in: boolean;
  admin: boolean;
  rev: number;
  by: string;
}

export interface TitleRegister {
  v: string;
  rev: number;
  by: string;
}

/** The part of a group every member shares. */
export interface GroupState {
  id: string;
  title: TitleRegister;
  members: Record<string, MemberRegister>;
}

export function isGroupId(v: unknown): v is string {
  return typeof v === 'string' && GROUP_ID_PATTERN.test(v);
}

export function groupConversation(id: string): string {
  return `g:${id}`;
}

/** The group id of a group conversation id, or undefined. */
export const groupOf = groupIdOf;

export function isUsername(v: unknown): v is string {
  return typeof v === 'string' && v.length <= USERNAME_MAX_LENGTH && USERNAME_PATTERN.test(v);
}

/** A title as typed: trimmed, one line, 1 to MAX_GROUP_TITLE characters; or a reason it is not. */
export function titleProblem(title: string): string | undefined {
  if (title.trim() === '') return 'a group title cannot be empty';
  if (title.length > MAX_GROUP_TITLE) return `a group title is at most ${MAX_GROUP_TITLE} characters`;
  if (/[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069]/.test(title)) return 'a group title is one line without control characters';
  return undefined;
}

function isRev(v: unknown): v is number {
  return isInt(v) && v <= Number.MAX_SAFE_INTEGER - 1;
}

/** Total: a GroupState, or undefined for anything that is not one (sizes checked before use). */
export function parseGroupState(v: unknown): GroupState | undefined {
  if (!isObj(v) || !isGroupId(v['id']) || !isObj(v['title']) || !isObj(v['members'])) return undefined;
  const t = v['title'];
  if (!isStr(t['v'], MAX_GROUP_TITLE) || titleProblem(t['v']) !== undefined || !isRev(t['rev']) || !isUsername(t['by'])) return undefined;
  const entries = Object.entries(v['members']);
  if (entries.length > MAX_GROUP_ENTRIES) return undefined;
  const members: Record<string, MemberRegister> = Object.create(null) as Record<string, MemberRegister>;
  let current = 0;
  for (const [name, r] of entries) {
    if (!isUsername(name) || !isObj(r) || typeof r['in'] !== 'boolean' || typeof r['admin'] !== 'boolean' || !isRev(r['rev']) || !isUsername(r['by'])) return undefined;
    members[name] = { in: r['in'], admin: r['admin'], rev: r['rev'], by: r['by'] };
    if (r['in']) current++;
  }
  if (current > MAX_GROUP_MEMBERS) return undefined;
  return { id: v['id'], title: { v: t['v'], rev: t['rev'], by: t['by'] }, members };
}

/** The highest revision in a state. */
export function revision(s: GroupState): number {
  let r = s.title.rev;
  for (const m of Object.values(s.members)) r = Math.max(r, m.rev);
  return r;
}

export function currentMembers(s: GroupState): string[] {
  return Object.keys(s.members).filter((u) => s.members[u]!.in).sort();
}

export function admins(s: GroupState): string[] {
  return Object.keys(s.members).filter((u) => s.members[u]!.in && s.members[u]!.admin).sort();
}

export function isMember(s: GroupState | undefined, user: string): boolean {
  return s?.members[user]?.in === true;
}

export function isAdmin(s: GroupState | undefined, user: string): boolean {
  return s?.members[user]?.in === true && s.members[user].admin;
}

/** -1, 0 or 1: which register wins (higher revision, then the larger hash of its encoding). */
export function compareRegisters(backend: CryptoBackend, key: string, a: MemberRegister | TitleRegister | undefined, b: MemberRegister | TitleRegister | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1;
  if (a.rev !== b.rev) return a.rev < b.rev ? -1 : 1;
  const ha = registerHash(backend, key, a);
  const hb = registerHash(backend, key, b);
  return ha === hb ? 0 : ha < hb ? -1 : 1;
}

function registerHash(backend: CryptoBackend, key: string, r: MemberRegister | TitleRegister): string {
  const canonical = 'v' in r ? ['title', r.v, r.rev, r.by] : ['member', key, r.in, r.admin, r.rev, r.by];
  return toHex(backend.sha256(utf8Encode(JSON.stringify(canonical))));
}

export interface MergeResult {
  state: GroupState;
  /** Some register of the incoming state was taken. */
  changed: boolean;
  /** The merged state holds a register that beats the incoming one's (the sender lacks something). */
  ahead: boolean;
  /** Members that went from in to out, and from out (or unknown) to in. */
  removed: string[];
  added: string[];
  /** Members (in before and after) that became admins, and that stopped being admins. */
  promoted: string[];
  demoted: string[];
  renamed: boolean;
}

/**
 * Merges `incoming`, sent by `sender`, into `local` (undefined: the group is new to this device,
 * `self`). Registers `sender` has no authority for are ignored (see the file comment).
 */
export function mergeGroupState(backend: CryptoBackend, local: GroupState | undefined, incoming: GroupState, sender: string, self: string): MergeResult {
  const bootstrap = local === undefined || (!isMember(local, self) && isMember(incoming, self) && isAdmin(incoming, sender));
  const authority = bootstrap ? incoming : local!;
  const senderIsAdmin = isAdmin(authority, sender);
  const base: GroupState = local ?? { id: incoming.id, title: { v: incoming.title.v, rev: -1, by: sender }, members: Object.create(null) as Record<string, MemberRegister> };
  const out: GroupState = { id: base.id, title: { ...base.title }, members: Object.assign(Object.create(null) as Record<string, MemberRegister>, base.members) };
  const r: MergeResult = { state: out, changed: false, ahead: false, removed: [], added: [], promoted: [], demoted: [], renamed: false };
  if (local === undefined && !senderIsAdmin) return r;
  for (const [user, reg] of Object.entries(incoming.members)) {
    const mine = out.members[user];
    const mayTake = senderIsAdmin || (user === sender && !reg.in && !reg.admin && mine !== undefined);
    if (!mayTake || compareRegisters(backend, user, reg, mine) <= 0) continue;
    if (Object.keys(out.members).length >= MAX_GROUP_ENTRIES && mine === undefined) continue;
    if (reg.in && !mine?.in && currentMembers(out).length >= MAX_GROUP_MEMBERS) continue;
    out.members[user] = { ...reg };
    r.changed = true;
    if (mine?.in === true && !reg.in) r.removed.push(user);
    if (mine?.in !== true && reg.in) r.added.push(user);
    if (mine?.in === true && reg.in && mine.admin !== reg.admin) (reg.admin ? r.promoted : r.demoted).push(user);
  }
  if (senderIsAdmin && compareRegisters(backend, 'title', incoming.title, out.title) > 0) {
    if (out.title.v !== incoming.title.v && out.title.rev >= 0) r.renamed = true;
    out.title = { ...incoming.title };
    r.changed = true;
  }
  if (compareRegisters(backend, 'title', out.title, incoming.title) > 0) r.ahead = true;
  for (const [user, reg] of Object.entries(out.members)) if (compareRegisters(backend, user, reg, incoming.members[user]) > 0) r.ahead = true;
  return r;
}
