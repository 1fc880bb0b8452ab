/**
 * `tacit group …`: create a group, change its members, admins and title, leave it, list groups and
 * members. A group is named on the command line as `#<title>` (case-insensitive; quote it in a
 * shell) or `g:<id>` / `g:<first hex digits of the id>` (at least 4); `send`, `recv`, `chat` and
 * `history` take the same names.
 */
import { ClientError, isGroupRef, parseUsername, type GroupInfo, type HistoryMessage, type TacitClient } from '@tacit/client';
import { UsageError } from './args.js';
import { CONNECT_TIMEOUT_MS, DRAIN_TIMEOUT_MS, type Ctx } from './context.js';
import { EXIT } from './exit-codes.js';
import { sanitize } from './output.js';
import { mutedNote, mutedUntilJson } from './mute.js';

const USAGE = `usage: tacit group create <title> <user>…
       tacit group add|remove <group> <user>…
       tacit group rename <group> <title>
       tacit group admin <group> <user> [--remove]
       tacit group leave <group>
       tacit group list
       tacit group members <group>
(a group is #<title> or g:<id prefix>)`;

/** Labels for group conversations (`#title`), kept current as group events arrive. */
export async function groupLabels(client: TacitClient): Promise<(conversation: string) => string | undefined> {
  const titles = new Map<string, string>();
  for (const g of await client.groups()) titles.set(g.conversation, g.title);
  client.on('group', ({ group }) => titles.set(group.conversation, group.title));
  return (conversation) => {
    const t = titles.get(conversation);
    return t === undefined ? undefined : `#${sanitize(t)}`;
  };
}

/** The group fields a JSON event about a message of a group carries. */
export function groupFields(m: HistoryMessage, label: string | undefined): Record<string, unknown> {
  if (!m.conversation.startsWith('g:')) return {};
  return { group: m.conversation.slice(2), ...(label !== undefined ? { groupTitle: label.slice(1) } : {}), ...(m.system ? { system: true } : {}) };
}

/** A username, or a group reference left as it is. */
export function recipient(name: string): string {
  return isGroupRef(name) ? name : parseUsername(name);
}

function describe(g: GroupInfo): Record<string, unknown> {
  return { id: g.id, title: g.title, members: g.members, admins: g.admins, revision: g.revision, member: g.member };
}

function line(g: GroupInfo): string {
  return `g:${g.id.slice(0, 8)}  #${sanitize(g.title)}  (${g.members.length} member${g.members.length === 1 ? '' : 's'}${g.member ? '' : '; you are not a member'})`;
}

/** Connects and takes in what the server holds (new groups, changes), unless it cannot be reached. */
async function catchUp(client: TacitClient): Promise<void> {
  try {
    await client.connect(CONNECT_TIMEOUT_MS);
    await client.waitDrained(DRAIN_TIMEOUT_MS);
  } catch {
    // Offline: what this device knows is shown.
  }
}

/** A change waits for the server at most --wait seconds (default 30) to take it to the members. */
function reaching<T>(ctx: Ctx, change: Promise<T>): Promise<T> {
  const ms = ctx.args.wait !== undefined ? ctx.args.wait * 1000 : CONNECT_TIMEOUT_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ClientError('NETWORK', 'the server could not be reached in time: the change is made on this device and goes to the members the next time tacit connects (send, recv, chat or group)')), ms);
  });
  return Promise.race([change, late]).finally(() => clearTimeout(timer));
}

export async function cmdGroup(ctx: Ctx): Promise<number> {
  const [sub, ...rest] = ctx.args.positionals;
  const arity: Record<string, (n: number) => boolean> = {
    create: (n) => n >= 2,
    add: (n) => n >= 2,
    remove: (n) => n >= 2,
    rename: (n) => n === 2,
    admin: (n) => n === 2,
    leave: (n) => n === 1,
    list: (n) => n === 0,
    members: (n) => n === 1,
  };
  if (sub === undefined || !Object.prototype.hasOwnProperty.call(arity, sub) || !arity[sub]!(rest.length)) throw new UsageError(USAGE);
  if (ctx.args.remove && sub !== 'admin') throw new UsageError(USAGE);
  const users = (list: string[]) => list.map(parseUsername);
  if ((sub === 'create' && users(rest.slice(1)).length === 0) || (sub !== 'create' && sub !== 'list' && !isGroupRef(rest[0]!))) throw new UsageError(USAGE);
  const h = await ctx.open();
  try {
    const c = h.client;
    // Lists show what the server held for us too; a change is made on what this device knows
    // (concurrent changes converge: docs/PROTOCOL.md, "Groups").
    if (sub === 'list' || sub === 'members') await catchUp(c);
    let g: GroupInfo;
    switch (sub) {
      case 'list': {
        const list = await c.groups();
        const mutes = await c.mutes();
        if (list.length === 0 && !ctx.out.json) ctx.stderr.write('no groups yet\n');
        for (const x of list) {
          const until = mutes[x.conversation];
          ctx.out.event('group', { ...describe(x), muted: until !== undefined, mutedUntil: mutedUntilJson(until) ?? null }, `${line(x)}${until !== undefined ? `  ${mutedNote(until)}` : ''}`);
        }
        return EXIT.OK;
      }
      case 'members': {
        g = await c.group(rest[0]!);
        for (const u of g.members) ctx.out.event('member', { group: g.id, username: u, admin: g.admins.includes(u) }, `${u}${g.admins.includes(u) ? '  (admin)' : ''}`);
        return EXIT.OK;
      }
      case 'create':
        g = await reaching(ctx, c.createGroup(rest[0]!, users(rest.slice(1))));
        break;
      case 'add':
        g = await reaching(ctx, c.addToGroup(rest[0]!, users(rest.slice(1))));
        break;
      case 'remove':
        g = await reaching(ctx, c.removeFromGroup(rest[0]!, users(rest.slice(1))));
        break;
      case 'rename':
        g = await reaching(ctx, c.renameGroup(rest[0]!, rest[1]!));
        break;
      case 'admin':
        g = await reaching(ctx, c.setGroupAdmin(rest[0]!, parseUsername(rest[1]!), !ctx.args.remove));
        break;
      default:
        g = await reaching(ctx, c.leaveGroup(rest[0]!));
    }
    const change = sub === 'admin' ? (ctx.args.remove ? 'demote' : 'promote') : sub;
    ctx.out.event('group', { change, ...(sub === 'admin' ? { username: rest[1]! } : {}), ...describe(g) }, `${sub === 'leave' ? 'left' : sub === 'create' ? 'created' : 'updated'} ${line(g)}: ${g.members.map(sanitize).join(', ')}`);
  } finally {
    await h.close();
  }
  return EXIT.OK;
}
