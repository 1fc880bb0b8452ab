/**
 * `tacit edit`, `delete`, `react`, `timer` and `search` (issue 14; the SDK's chat/). A message is
 * named by its id as `send --json` and `history` print it, or by the first MIN_MESSAGE_PREFIX or
 * more hex digits of it (`history` shows the first eight); the conversation is a username,
 * `#group` or `g:<id prefix>` as for `send`.
 */
import { describeDuration, MIN_MESSAGE_PREFIX, parseDuration, type ActionResult, type AppliedAction, type HistoryMessage, type TacitClient } from '@tacit/client';
import { UsageError } from './args.js';
import { CONNECT_TIMEOUT_MS, type Ctx } from './context.js';
import { EXIT } from './exit-codes.js';
import { groupLabels, recipient } from './group.js';
import { formatTime, sanitize, type Output } from './output.js';

/** Characters of a message id `history` shows. */
export const SHOWN_ID_LENGTH = 8;

function need(ctx: Ctx, n: number, usage: string): string[] {
  const p = ctx.args.positionals;
  if (p.length !== n) throw new UsageError(`usage: tacit ${usage}`);
  return p;
}

export function checkRef(ref: string): string {
  if (!/^[0-9a-fA-F]+$/.test(ref) || ref.length < MIN_MESSAGE_PREFIX || ref.length > 64) {
    throw new UsageError(`a message is named by its id or its first ${MIN_MESSAGE_PREFIX} or more characters (tacit history shows them)`);
  }
  return ref.toLowerCase();
}

/** Sends an action and reports it; waits for the server like `send` (queued: exit 11). */
async function run(ctx: Ctx, event: string, act: (c: TacitClient) => Promise<ActionResult>, human: (r: ActionResult) => string): Promise<number> {
  const h = await ctx.open();
  try {
    const c = h.client;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settled = act(c).then(
      (r) => ({ r }),
      (error: unknown) => ({ error }),
    );
    const outcome = await Promise.race([
      settled,
      new Promise<{ timeout: true }>((resolve) => {
        timer = setTimeout(() => resolve({ timeout: true }), ctx.args.wait !== undefined ? ctx.args.wait * 1000 : CONNECT_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if ('error' in outcome) throw outcome.error;
    if ('timeout' in outcome) {
      ctx.out.error({ code: 'QUEUED', message: 'the server could not be reached; the change is stored and will be sent the next time tacit connects', exit: EXIT.QUEUED });
      return EXIT.QUEUED;
    }
    const r = outcome.r;
    ctx.out.event(event, { conversation: r.conversation, id: r.id, ...(r.target !== undefined ? { target: r.target } : {}), sentAt: r.sentAt, devices: r.devices }, human(r));
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

export async function cmdEdit(ctx: Ctx): Promise<number> {
  const [to, ref, text] = need(ctx, 3, 'edit <username|#group> <message id> <new text>');
  const conversation = recipient(to!);
  const id = checkRef(ref!);
  return run(ctx, 'edited', async (c) => c.editMessage(conversation, id, text!), () => `edited the message in ${to}`);
}

export async function cmdDelete(ctx: Ctx): Promise<number> {
  const [to, ref] = need(ctx, 2, 'delete <username|#group> <message id>');
  const conversation = recipient(to!);
  const id = checkRef(ref!);
  return run(ctx, 'deleted', async (c) => c.deleteForEveryone(conversation, id), () => `deleted the message for everyone in ${to}`);
}

export async function cmdReact(ctx: Ctx): Promise<number> {
  const [to, ref, emoji] = need(ctx, 3, 'react <username|#group> <message id> <emoji|->   (- removes your reaction)');
  const conversation = recipient(to!);
  const id = checkRef(ref!);
  const e = emoji === '-' ? '' : emoji!;
  return run(ctx, 'reacted', async (c) => c.react(conversation, id, e), () => (e === '' ? 'removed your reaction' : `reacted ${e}`));
}

export async function cmdTimer(ctx: Ctx): Promise<number> {
  const p = ctx.args.positionals;
  if (p.length !== 1 && p.length !== 2) throw new UsageError('usage: tacit timer <username|#group> [<duration>|off]   (30s, 5m, 1h, 1d, 1w; without one: show it)');
  const conversation = recipient(p[0]!);
  if (p.length === 1) {
    const h = await ctx.open();
    try {
      const ms = await h.client.disappearingTimer(conversation);
      ctx.out.event('timer', { conversation: await h.client.resolveConversation(conversation), ms }, ms === 0 ? 'disappearing messages: off' : `disappearing messages: ${describeDuration(ms)}`);
    } finally {
      await h.close();
    }
    return EXIT.OK;
  }
  const ms = parseDuration(p[1]!);
  if (ms === undefined) throw new UsageError('a timer is off, or 1s to 4w (for example 30s, 5m, 1h, 1d, 1w)');
  return run(ctx, 'timer-set', async (c) => c.setDisappearingTimer(conversation, ms), () => (ms === 0 ? 'disappearing messages turned off' : `disappearing messages set to ${describeDuration(ms)}`));
}

export async function cmdSearch(ctx: Ctx): Promise<number> {
  const words = ctx.args.positionals;
  if (words.length === 0) throw new UsageError('usage: tacit search <words>… [--limit <n>]');
  const h = await ctx.open();
  try {
    const c = h.client;
    const label = await groupLabels(c);
    const hits = await c.search(words.join(' '), ctx.args.limit !== undefined ? { limit: ctx.args.limit } : {});
    if (hits.length === 0 && !ctx.out.json) ctx.stderr.write('nothing found\n');
    for (const m of hits) {
      const where = m.conversation.startsWith('g:') ? (label(m.conversation) ?? m.conversation.slice(0, 10)) : m.conversation.slice(2);
      ctx.out.event(
        'found',
        { conversation: m.conversation, seq: m.seq, id: m.id, direction: m.direction, from: m.from, text: m.text, sentAt: m.sentAt, ...(m.edited !== undefined ? { edited: m.edited } : {}) },
        `[${formatTime(m.sentAt)}] ${where} ${m.id.slice(0, SHOWN_ID_LENGTH)} ${m.direction === 'out' ? 'you' : m.from}: ${sanitize(m.text)}`,
      );
    }
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

/** The suffix `history` adds to a message line: edited, reactions, disappearing. */
export function annotations(m: HistoryMessage): string {
  const parts: string[] = [];
  if (m.edited !== undefined) parts.push('(edited)');
  if (m.reactions !== undefined && m.reactions.length > 0) parts.push(`[${m.reactions.map((r) => `${sanitize(r.emoji)} ${r.from}`).join(', ')}]`);
  if (m.expireTimer !== undefined) parts.push(`(disappears ${m.expiresAt !== undefined ? `at ${formatTime(m.expiresAt)}` : `${describeDuration(m.expireTimer)} after reading`})`);
  return parts.length > 0 ? ' ' + parts.join(' ') : '';
}

/** The JSON fields `history` adds for edits, deletions, reactions and timers. */
export function annotationFields(m: HistoryMessage): Record<string, unknown> {
  return {
    ...(m.edited !== undefined ? { edited: m.edited, versions: m.versions ?? [] } : {}),
    ...(m.deleted === true ? { deleted: true } : {}),
    ...(m.reactions !== undefined ? { reactions: m.reactions.map((r) => ({ from: r.from, emoji: r.emoji })) } : {}),
    ...(m.expireTimer !== undefined ? { expireTimer: m.expireTimer, ...(m.expiresAt !== undefined ? { expiresAt: m.expiresAt } : {}) } : {}),
  };
}

/** What a contact's edit, deletion, reaction or timer change prints (recv, send, chat). */
export function printAction(out: Output, a: AppliedAction): void {
  const where = a.conversation.startsWith('g:') ? `${a.conversation.slice(0, 10)} ` : '';
  const id = a.message?.id;
  const base = { conversation: a.conversation, from: a.actor, ...(id !== undefined ? { target: id } : {}) };
  switch (a.action.k) {
    case 'edit':
      out.event('edited', { ...base, text: a.action.text }, `${where}${a.actor} edited a message: ${sanitize(a.action.text)}`);
      break;
    case 'delete':
      out.event('deleted', base, `${where}${a.actor} deleted a message`);
      break;
    case 'react':
      out.event('reaction', { ...base, emoji: a.action.emoji }, a.action.emoji === '' ? `${where}${a.actor} removed a reaction` : `${where}${a.actor} reacted ${sanitize(a.action.emoji)} to ${a.message?.text !== undefined ? `"${sanitize(a.message.text.slice(0, 40))}"` : 'a message'}`);
      break;
    case 'timer':
      out.event('timer', { ...base, ms: a.action.ms }, undefined);
      break;
  }
}
