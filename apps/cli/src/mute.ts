/**
 * `tacit mute <conversation> [<duration>|always]`, `tacit unmute <conversation>`: muting a
 * conversation (chat/mute.ts in the SDK). A muted conversation still receives, stores and counts
 * everything unread; `tacit chat` does not ring the bell for it. Durations as `tacit timer` takes
 * them (1h, 8h, 1d, 7d, 90m; 1 second to 4 weeks); without one the mute lasts until `tacit unmute`
 * (Signal's "Always", and what Slack's mute does). Synced to this account's other devices like the
 * block list (the command connects briefly to send it).
 */
import { describeDuration, MUTED_FOREVER, parseDuration } from '@tacit/client';
import { UsageError } from './args.js';
import type { Ctx } from './context.js';
import { syncedChange } from './block.js';
import { formatTime } from './output.js';

const MUTE_USAGE = 'usage: tacit mute <username|#group> [<duration>|always] (duration: 1h, 8h, 1d, 7d, 90m, …; default always)';

/** How a mute reads for a person: "muted" (until unmuted) or "muted until <time>". */
export function mutedNote(until: number): string {
  return until === MUTED_FOREVER ? 'muted' : `muted until ${formatTime(until)}`;
}

/** The JSON form of a mute's end: ms, or null for until unmuted. */
export function mutedUntilJson(until: number | undefined): number | null | undefined {
  return until === undefined ? undefined : until === MUTED_FOREVER ? null : until;
}

export async function cmdMute(ctx: Ctx): Promise<number> {
  const p = ctx.args.positionals;
  if (p.length < 1 || p.length > 2) throw new UsageError(MUTE_USAGE);
  const ref = p[0]!;
  const arg = p[1]?.toLowerCase() ?? 'always';
  const ms = arg === 'always' ? 'always' : parseDuration(arg);
  if (ms === undefined || ms === 0) throw new UsageError(`"${arg.slice(0, 20)}" is not a mute duration (1 second to 4 weeks, e.g. 1h, 8h, 1d, 7d, or always); ${MUTE_USAGE}`);
  return syncedChange(ctx, async (c) => ({ changed: true, conversation: await c.resolveConversation(ref), until: await c.mute(ref, ms) }), async (_c, r) => {
    const human = `${r.conversation.slice(2)}: ${mutedNote(r.until)}${ms === 'always' ? ' (tacit unmute to end it)' : ` (${describeDuration(ms)})`}; messages still arrive and count as unread, without the bell`;
    ctx.out.event('muted', { conversation: r.conversation, mutedUntil: mutedUntilJson(r.until), always: ms === 'always' }, human);
  });
}

export async function cmdUnmute(ctx: Ctx): Promise<number> {
  const p = ctx.args.positionals;
  if (p.length !== 1) throw new UsageError('usage: tacit unmute <username|#group>');
  const ref = p[0]!;
  return syncedChange(ctx, async (c) => ({ changed: await c.unmute(ref), conversation: await c.resolveConversation(ref) }), async (_c, r) => {
    ctx.out.event('unmuted', { conversation: r.conversation, changed: r.changed }, r.changed ? `${r.conversation.slice(2)}: unmuted` : `${r.conversation.slice(2)} was not muted`);
  });
}
