/**
 * `tacit block <user>`, `tacit unblock <user>`, `tacit blocked`: the block list (chat/block.ts in
 * the SDK). Blocking drops everything the user sends (pairwise and in groups) unseen and refuses
 * to send them anything; they are not told. A change is synced to this account's other devices:
 * the command connects briefly to send it (if the server cannot be reached, it goes with the next
 * command that connects).
 */
import { parseUsername, type TacitClient } from '@tacit/client';
import { UsageError } from './args.js';
import type { Ctx } from './context.js';
import { EXIT } from './exit-codes.js';

/** How long block, unblock, mute and unmute try to reach the server to tell this account's other devices, ms. */
export const BLOCK_SYNC_CONNECT_MS = 5_000;

/**
 * Opens the home, makes a change synced to this account's other devices (`change` resolves to
 * whether anything changed) and, if it changed, connects briefly so the sync goes out (closing a
 * connected client sends it); then `report` says what happened.
 */
export async function syncedChange<T extends { changed: boolean }>(ctx: Ctx, change: (c: TacitClient) => Promise<T>, report: (c: TacitClient, r: T) => Promise<void>): Promise<number> {
  const h = await ctx.open();
  try {
    const r = await change(h.client);
    if (r.changed) await h.client.connect(BLOCK_SYNC_CONNECT_MS).catch(() => undefined);
    await report(h.client, r);
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

async function change(ctx: Ctx, block: boolean): Promise<number> {
  const verb = block ? 'block' : 'unblock';
  const p = ctx.args.positionals;
  if (p.length !== 1) throw new UsageError(`usage: tacit ${verb} <username>`);
  const user = parseUsername(p[0]!);
  return syncedChange(ctx, async (c) => ({ changed: block ? await c.block(user) : await c.unblock(user) }), async (c, { changed }) => {
    const human = block
      ? changed
        ? `blocked ${user}: their messages, reactions, receipts and typing are dropped unseen (pairwise and in groups), and nothing is sent to them; they are not told`
        : `${user} was already blocked`
      : changed
        ? `unblocked ${user}: their next messages are shown again`
        : `${user} was not blocked`;
    ctx.out.event(block ? 'blocked' : 'unblocked', { user, changed, blocked: await c.blocked() }, human);
  });
}

export function cmdBlock(ctx: Ctx): Promise<number> {
  return change(ctx, true);
}

export function cmdUnblock(ctx: Ctx): Promise<number> {
  return change(ctx, false);
}

export async function cmdBlocked(ctx: Ctx): Promise<number> {
  if (ctx.args.positionals.length !== 0) throw new UsageError('usage: tacit blocked');
  const h = await ctx.open();
  try {
    const users = await h.client.blocked();
    ctx.out.event('block-list', { users }, users.length === 0 ? 'nobody is blocked' : users.join('\n'));
  } finally {
    await h.close();
  }
  return EXIT.OK;
}
