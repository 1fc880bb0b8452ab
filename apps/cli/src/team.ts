/** `tacit admin …` (invite links, accounts, reset) and `tacit directory`: the team, over HTTP. */
import { createInterface } from 'node:readline';
import { ClientError, Team, isClientError, parseUsername, type TeamInvite } from '@tacit/client';
import { UsageError } from './args.js';
import type { Ctx } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatTime, type Output } from './output.js';

/** A refusal that means something more specific here than the general clause. */
async function refusedAs<T>(p: Promise<T>, forbidden: string): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (isClientError(e) && e.serverCode === 'FORBIDDEN') throw new ClientError('SERVER', forbidden, { serverCode: 'FORBIDDEN' });
    throw e;
  }
}

const NOT_ADMIN = 'only admins can do this (the first account on a server is one; the operator names others)';

function printInvite(out: Output, i: TeamInvite, human: string): void {
  out.event('invite', { code: i.code, link: i.link, expiresAt: i.expiresAt }, `${human} (single use, valid until ${formatTime(i.expiresAt)}):\n  ${i.link}`);
}

const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;

async function withTeam(ctx: Ctx, fn: (team: Team) => Promise<void>): Promise<number> {
  const h = await ctx.open();
  try {
    await fn(new Team(h.client));
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

/** Reads one line from a terminal: the username typed again confirms a reset. */
async function confirmOnTerminal(ctx: Ctx, username: string): Promise<boolean> {
  ctx.stderr.write(
    `Reset ${username}? This deletes ${username}'s devices, keys and undelivered messages on the server, and cannot be undone.\n` +
      `Type ${username} to confirm: `,
  );
  const rl = createInterface({ input: ctx.stdin, terminal: false });
  try {
    for await (const line of rl) return line.trim().toLowerCase() === username;
    return false;
  } finally {
    rl.close();
  }
}

export async function cmdAdmin(ctx: Ctx): Promise<number> {
  const [sub, ...rest] = ctx.args.positionals;
  switch (sub) {
    case 'invite': {
      if (rest.length > 1) throw new UsageError('usage: tacit admin invite [count]');
      const count = rest[0] === undefined ? 1 : Number(rest[0]);
      if (!/^\d{1,3}$/.test(rest[0] ?? '1') || count < 1 || count > 20) throw new UsageError('tacit admin invite takes a count from 1 to 20');
      return withTeam(ctx, async (team) => {
        const invites = await refusedAs(team.createInvites(count), NOT_ADMIN);
        for (const i of invites) printInvite(ctx.out, i, 'invite link');
      });
    }
    case 'accounts': {
      if (rest.length > 0) throw new UsageError('usage: tacit admin accounts');
      return withTeam(ctx, async (team) => {
        const r = await refusedAs(team.accounts(), NOT_ADMIN);
        for (const a of r.accounts) {
          ctx.out.event(
            'account',
            { username: a.username, admin: a.admin, createdAt: a.createdAt, devices: a.devices },
            `${a.username.padEnd(20)} ${(a.admin ? 'admin' : '').padEnd(6)} ${plural(a.devices.length, 'device').padEnd(10)} ` +
              `registered ${formatTime(a.createdAt)}${a.devices.length > 0 ? `  (device ids ${a.devices.map((d) => d.deviceId).join(', ')})` : ''}`,
          );
        }
        if (r.truncated) ctx.out.notice('truncated', {}, `tacit: only the first ${r.accounts.length} accounts are listed`);
      });
    }
    case 'reset': {
      if (rest.length !== 1) throw new UsageError('usage: tacit admin reset <username> [--yes]');
      const username = parseUsername(rest[0]!);
      const interactive = ctx.stdin.isTTY === true && !ctx.args.json;
      if (!ctx.args.yes && !interactive) throw new UsageError(`resetting ${username} cannot be undone: add --yes to confirm`);
      return withTeam(ctx, async (team) => {
        if (!ctx.args.yes && !(await confirmOnTerminal(ctx, username))) throw new UsageError('not confirmed; nothing was reset');
        const r = await refusedAs(team.resetAccount(username), `only admins can reset accounts, and not their own (the operator's reset-account command can)`);
        const m = r.removed;
        ctx.out.event(
          'reset',
          { username: r.username, removed: m, invite: { code: r.invite.code, link: r.invite.link, expiresAt: r.invite.expiresAt } },
          `reset ${r.username}: removed ${plural(m.devices, 'device')}, ${plural(m.preKeys + m.kyberPreKeys, 'one-time key')} and ${plural(m.messages, 'undelivered message')}.\n` +
            `Give ${r.username} this invite link to register again (single use, valid until ${formatTime(r.invite.expiresAt)}):\n  ${r.invite.link}\n` +
            `${r.username}'s contacts will see that their safety number changed.`,
        );
      });
    }
    default:
      throw new UsageError('usage: tacit admin invite [count] | admin accounts | admin reset <username> [--yes]');
  }
}

export async function cmdDirectory(ctx: Ctx): Promise<number> {
  if (ctx.args.positionals.length > 0) throw new UsageError('usage: tacit directory');
  return withTeam(ctx, async (team) => {
    const r = await refusedAs(team.directory(), 'the team directory is turned off on this server');
    for (const u of r.usernames) ctx.out.event('user', { username: u }, u);
    if (r.truncated) ctx.out.notice('truncated', {}, `tacit: only the first ${r.usernames.length} usernames are listed`);
  });
}
