/** The one-shot commands: register, send, recv, history, safety-number, trust, contacts, whoami. */
import { createInterface } from 'node:readline';
import { inviteCodeFromFragment, toBase64 } from '@tacit/api';
import { checkText, describeTextProblem, parseUsername, type HistoryMessage, type SendResult, type TacitClient } from '@tacit/client';
import { UsageError } from './args.js';
import { CONNECT_TIMEOUT_MS, DRAIN_TIMEOUT_MS, type Ctx } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatSafetyNumber, formatTime, sanitize, type Output } from './output.js';
import { groupFields, groupLabels, recipient } from './group.js';
import { fileFields, fileLine, saveIncoming, sendFileCommand } from './files.js';
import { mutedNote, mutedUntilJson } from './mute.js';
import { annotationFields, annotations, checkRef, printAction, SHOWN_ID_LENGTH } from './edits.js';

/** How long a connected command waits for messages queued earlier to reach the server, ms. */
export const FLUSH_TIMEOUT_MS = 30_000;
/** Messages `history` prints without --limit: the newest 50. */
export const DEFAULT_HISTORY_LIMIT = 50;
/** Messages read from stdin by `send <user> -` at most (one per line). */
export const MAX_STDIN_MESSAGES = 10_000;

function need(ctx: Ctx, n: number, usage: string): string[] {
  const p = ctx.args.positionals;
  if (p.length !== n) throw new UsageError(`usage: tacit ${usage}`);
  return p;
}

/**
 * `--invite` takes the code or the whole invite link an admin hands out (`tacit admin invite`,
 * the web page's Admin screen, the server's first start): `http://host:8080/#invite=CODE`. The
 * link also names the server, so `--server` may then be left out.
 */
export function parseInvite(value: string): { code: string; server?: string } {
  const hash = value.indexOf('#invite=');
  if (!/^https?:\/\//i.test(value) || hash < 0) return { code: value };
  const code = inviteCodeFromFragment(value.slice(hash));
  if (code === undefined) throw new UsageError('the invite link holds no valid invite code (ask for a new one)');
  let server: string;
  try {
    server = new URL(value.slice(0, hash)).origin;
  } catch {
    throw new UsageError('the invite link is not a valid address');
  }
  return { code, server };
}

export async function cmdRegister(ctx: Ctx): Promise<number> {
  const [name] = need(ctx, 1, 'register <username> --server <url> [--invite <code or link>]');
  const invite = ctx.args.invite !== undefined ? parseInvite(ctx.args.invite) : undefined;
  const server = ctx.args.server ?? invite?.server;
  if (server === undefined) throw new UsageError('register needs --server <url> (or --invite with the whole invite link)');
  const username = parseUsername(name!);
  const h = await ctx.register({ server, username, ...(invite !== undefined ? { inviteCode: invite.code } : {}) });
  try {
    const c = h.client;
    ctx.out.event('registered', { username: c.username, deviceId: c.deviceId, server: c.server, home: ctx.home }, `registered ${c.username} (device ${c.deviceId}) on ${c.server}`);
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

/** `label` names the group of a group message (`#title`); group system lines print as `* text`. */
export function printMessage(out: Output, m: HistoryMessage, label?: (conversation: string) => string | undefined): void {
  const group = m.conversation.startsWith('g:') ? (label?.(m.conversation) ?? m.conversation.slice(0, 10)) : undefined;
  const where = group !== undefined ? `${group} ` : '';
  out.event(
    'message',
    { from: m.from, fromDevice: m.fromDevice, id: m.id, text: m.text, sentAt: m.sentAt, serverTimestamp: m.serverTimestamp, serverId: m.serverId, ...groupFields(m, group), ...fileFields(m), ...annotationFields(m) },
    m.system
      ? `[${formatTime(m.sentAt)}] ${where}* ${sanitize(m.text)}`
      : `[${formatTime(m.sentAt)}] ${where}${m.from}: ${m.deleted === true ? '(This message was deleted)' : [fileLine(m), sanitize(m.text)].filter((x) => x !== '').join(' ')}${annotations(m)}`,
  );
}

/**
 * Prints what arrived and was not shown yet, and marks it read in the same commit: a message
 * printed before a crash is not printed again (stdout writes are synchronous on Linux, and the
 * commit follows at once); one whose printing did not complete is printed next time.
 */
export async function displayNew(ctx: Ctx, client: TacitClient): Promise<number> {
  const out = ctx.out;
  const label = await groupLabels(client);
  // Files first, so the line that shows one says where it was saved.
  await saveIncoming(ctx, client);
  return client.takeForDisplay((list) => out.batch(() => list.forEach((m) => printMessage(out, m, label))));
}

/**
 * Messages queued by an earlier run (the server was unreachable then) go out with any command
 * that connects: wait for them a bounded time, and say how many are still waiting.
 */
async function flushQueued(ctx: Ctx, client: TacitClient): Promise<void> {
  if (client.outboxSize === 0) return;
  const left = await client.flush(FLUSH_TIMEOUT_MS);
  if (left > 0) ctx.out.notice('unsent', { count: left }, `tacit: ${left} message(s) not yet confirmed by the server; they are sent next time tacit connects`);
}

/** Warnings every connected command shows: identity changes and messages that could not be read. */
export function attachNotices(ctx: Ctx, client: TacitClient): { remindPending(): void } {
  const told = new Set<string>();
  const tell = (contact: string): void => {
    if (told.has(contact)) return;
    told.add(contact);
    ctx.out.notice('identity-changed', { contact }, `tacit: warning: the safety number with ${contact} changed. Messages from and to ${contact} are held until you run: tacit safety-number ${contact}, then tacit trust ${contact}`);
  };
  client.on('identity-changed', ({ contact }) => tell(contact));
  client.on('action', (a) => printAction(ctx.out, a));
  client.on('undecryptable', ({ from, fromDevice, reason }) =>
    ctx.out.notice('undecryptable', { from, fromDevice, reason }, `tacit: warning: dropped a message from ${from} (device ${fromDevice}) that could not be decrypted (${reason})`),
  );
  client.on('state-corrupt', ({ from, message }) =>
    ctx.out.notice('state-corrupt', { from, message }, `tacit: error: a message from ${from} cannot be read: ${message}; it stays on the server`),
  );
  client.on('history-trimmed', ({ conversation, dropped, droppedUnread }) =>
    ctx.out.notice(
      'history-trimmed',
      { conversation, dropped, droppedUnread },
      `tacit: note: ${dropped} old message(s) of ${conversation.slice(2)}${droppedUnread > 0 ? ` (${droppedUnread} unread)` : ''} were removed to keep the local history within its limits`,
    ),
  );
  // Receipts for our messages: an event for scripts (a person sees them in `history` and `chat`).
  client.on('receipt', ({ conversation, from, kind, messages }) =>
    ctx.out.event('receipt', { conversation, from, kind, ids: messages.map((m) => m.id), messages }, undefined),
  );
  // Another device of this account showed messages: read here too (scripts get an event; `history` shows it).
  client.on('read-sync', ({ conversation, count, fromDevice }) => ctx.out.event('read-sync', { conversation, count, fromDevice }, undefined));
  // Another device of this account changed the block list: the same list here.
  client.on('block', ({ blocked, fromDevice }) => {
    if (fromDevice !== undefined) ctx.out.notice('block-sync', { blocked, fromDevice }, `tacit: note: another of your devices changed whom you block; blocked now: ${blocked.length === 0 ? 'nobody' : blocked.join(', ')}`);
  });
  // Another device of this account muted or unmuted a conversation: the same here (no bell for it in chat).
  client.on('mute', ({ mutes, fromDevice }) => {
    const muted = Object.keys(mutes).map((c) => c.slice(2));
    if (fromDevice !== undefined) ctx.out.notice('mute-sync', { mutes: Object.fromEntries(Object.entries(mutes).map(([c, u]) => [c, mutedUntilJson(u)])), fromDevice }, `tacit: note: another of your devices changed what is muted; muted now: ${muted.length === 0 ? 'nothing' : muted.join(', ')}`);
  });
  // Disappearing messages whose time ran out are gone from this device's store.
  client.on('expired', ({ conversation, ids }) => ctx.out.event('disappeared', { conversation, ids }, undefined));
  // Until the user trusts, every receive reminds them (once per run).
  return { remindPending: async () => (await client.changedIdentities()).forEach(tell) };
}

/** The messages of `send <user> -`: one per line; blank lines (empty or white space) separate, they are not messages. */
async function readStdinLines(ctx: Ctx): Promise<{ text: string; line: number }[]> {
  const rl = createInterface({ input: ctx.stdin, crlfDelay: Infinity, terminal: false });
  const lines: { text: string; line: number }[] = [];
  let n = 0;
  for await (const text of rl) {
    n++;
    if (text.trim().length === 0) continue;
    if (lines.length >= MAX_STDIN_MESSAGES) throw new UsageError(`at most ${MAX_STDIN_MESSAGES} messages per send; nothing was sent`);
    lines.push({ text, line: n });
  }
  return lines;
}

/**
 * Checks every message before any is sent: one bad line refuses the whole input, so a script
 * that fixes it and runs again never sends the good lines twice.
 */
function checkAll(messages: { text: string; line: number }[], fromStdin: boolean): void {
  for (const m of messages) {
    const problem = checkText(m.text);
    if (problem === undefined) continue;
    throw new UsageError(fromStdin ? `line ${m.line}: ${describeTextProblem(problem)}; nothing was sent` : describeTextProblem(problem));
  }
}

export async function cmdSend(ctx: Ctx): Promise<number> {
  const p = ctx.args.positionals;
  if (ctx.args.file !== undefined) {
    if (p.length < 1 || p.length > 2) throw new UsageError('usage: tacit send <username|#group> --file <path> [caption]');
    if (p[1] !== undefined && p[1] !== '') {
      const problem = checkText(p[1]);
      if (problem !== undefined) throw new UsageError(`the caption: ${describeTextProblem(problem)}`);
    }
    return sendFileCommand(ctx, recipient(p[0]!), ctx.args.file, p[1]);
  }
  if (p.length !== 2) throw new UsageError('usage: tacit send <username|#group> <text> [--wait <seconds>]   (or - to send each line of stdin, or --file <path> [caption])');
  const to = recipient(p[0]!);
  const fromStdin = p[1] === '-';
  const messages = fromStdin ? await readStdinLines(ctx) : [{ text: p[1]!, line: 1 }];
  if (messages.length === 0) throw new UsageError('nothing to send: standard input held no message');
  checkAll(messages, fromStdin);
  const texts = messages.map((m) => m.text);
  const waitMs = ctx.args.wait !== undefined ? ctx.args.wait * 1000 : CONNECT_TIMEOUT_MS;
  const h = await ctx.open();
  try {
    const c = h.client;
    attachNotices(ctx, c);
    // Each message is stored as queued before anything goes on the wire, in order; all are
    // confirmed together (a burst is one round of frames).
    const results: ((SendResult & { devices?: number }) | { error: unknown } | undefined)[] = texts.map(() => undefined);
    const all = Promise.all(
      texts.map((t, i) =>
        c.send(to, t).then(
          (r) => void (results[i] = r),
          (error: unknown) => void (results[i] = { error }),
        ),
      ),
    );
    // Wait while the server is reachable; give up on reaching it after `waitMs` without a connection.
    const offline = new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined = setTimeout(resolve, waitMs);
      c.on('connection', (e) => {
        if (e.state === 'ready') {
          clearTimeout(timer);
          timer = undefined;
        } else if (e.state === 'disconnected' && timer === undefined) timer = setTimeout(resolve, waitMs);
      });
      void all.then(() => clearTimeout(timer));
    });
    await Promise.race([all, offline]);
    let failure: unknown;
    let queued = 0;
    results.forEach((r, i) => {
      if (r === undefined) {
        queued++;
        ctx.out.event('queued', { to, index: i }, undefined);
      } else if ('error' in r) failure ??= r.error;
      else ctx.out.event('sent', { to: r.to, id: r.id, sentAt: r.sentAt, devices: r.devices ?? r.serverIds.length }, texts.length === 1 ? `sent to ${to}` : undefined);
    });
    if (failure !== undefined) throw failure;
    if (queued > 0) {
      ctx.out.error({
        code: 'QUEUED',
        message: `the server could not be reached; ${queued} message(s) to ${to} are stored and will be sent the next time tacit connects (tacit send, recv or chat) — do not send them again`,
        exit: EXIT.QUEUED,
      });
      return EXIT.QUEUED;
    }
    if (texts.length > 1 && !ctx.out.json) ctx.out.event('sent', {}, `sent ${texts.length} messages to ${to}`);
    await flushQueued(ctx, c);
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

export async function cmdRecv(ctx: Ctx): Promise<number> {
  need(ctx, 0, 'recv [--wait <seconds>]');
  const wait = ctx.args.wait ?? 0;
  const h = await ctx.open();
  try {
    const c = h.client;
    const notices = attachNotices(ctx, c);
    await c.connect(CONNECT_TIMEOUT_MS);
    await c.waitDrained(DRAIN_TIMEOUT_MS);
    let printed = await displayNew(ctx, c);
    if (printed === 0 && wait > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, wait * 1000);
        const off = c.on('message', done);
        function done(): void {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
      printed += await displayNew(ctx, c);
    }
    await notices.remindPending();
    if (printed === 0 && !ctx.out.json) ctx.stderr.write('no new messages\n');
    await flushQueued(ctx, c);
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

/**
 * `tacit history <user> [--limit N] [--before <id>]`: the conversation as this device holds it,
 * both directions: the newest N, or the N before a message (its id or a prefix, as `edit` takes;
 * the oldest one printed pages on).
 */
export async function cmdHistory(ctx: Ctx): Promise<number> {
  const [name] = need(ctx, 1, 'history <username|#group> [--limit <n>] [--before <message id>]');
  const contact = recipient(name!);
  const ref = ctx.args.before === undefined ? undefined : checkRef(ctx.args.before);
  const h = await ctx.open();
  try {
    const c = h.client;
    const limit = ctx.args.limit ?? DEFAULT_HISTORY_LIMIT;
    const conversation = await c.resolveConversation(contact);
    // An unknown or ambiguous id is INVALID_ARGUMENT (exit 2), in words, as for `edit`.
    const before = ref === undefined ? undefined : (await c.findMessage(conversation, ref)).seq;
    const list = await c.history(conversation, { limit, ...(before !== undefined ? { before } : {}) });
    const info = (await c.conversations()).find((x) => x.id === conversation);
    // Shown where the history starts: when this page reaches its oldest message.
    if (info !== undefined && info.dropped > 0 && list.length < limit) {
      ctx.out.notice('history-trimmed', { conversation: info.id, dropped: info.dropped, droppedUnread: info.droppedUnread }, `(${info.dropped} older message(s) were removed to keep the local history within its limits)`);
    }
    if (list.length === 0 && !ctx.out.json) ctx.stderr.write(`no messages with ${contact}\n`);
    for (const m of list) {
      const state =
        m.direction === 'out'
          ? m.state === 'sent'
            ? ''
            : m.state === 'queued'
              ? '  (queued: not yet stored by the server)'
              : m.state === 'uploading'
                ? '  (uploading)'
                : `  (failed: ${m.error?.message ?? 'not sent'}; to send it again: ${retryHint(name!, m)})`
          : '';
      const ticks = m.direction === 'out' && m.state === 'sent' && m.system !== true ? `  ${deliveryLine(m)}` : '';
      ctx.out.event(
        'history',
        {
          conversation: m.conversation,
          seq: m.seq,
          direction: m.direction,
          from: m.from,
          id: m.id,
          text: m.text,
          sentAt: m.sentAt,
          ...fileFields(m),
          ...(m.direction === 'in' ? { serverId: m.serverId, read: m.read } : { state: m.state, ...(m.error ? { error: m.error } : {}), ...(m.delivery !== undefined ? { delivery: m.delivery, receipts: m.receipts } : {}) }),
          ...(m.system ? { system: true } : {}),
          ...annotationFields(m),
        },
        m.system
          ? `[${formatTime(m.sentAt)}] * ${sanitize(m.text)}`
          : `[${formatTime(m.sentAt)}] ${m.id.slice(0, SHOWN_ID_LENGTH)} ${m.direction === 'out' ? 'you' : m.from}: ${m.deleted === true ? '(This message was deleted)' : [fileLine(m), sanitize(m.text)].filter((x) => x !== '').join(' ')}${annotations(m)}${state}${ticks}`,
      );
    }
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

/** The command that sends a failed message again: `tacit retry`, or for an unfinished upload the same `send --file`. */
function retryHint(conversation: string, m: HistoryMessage): string {
  const quoted = /^[A-Za-z0-9_.:-]+$/.test(conversation) ? conversation : `'${conversation.replace(/'/g, '')}'`;
  if (m.attachment !== undefined && !m.attachment.uploaded) return `tacit send ${quoted} --file <the same file>`;
  const retry = `tacit retry ${quoted} ${m.id.slice(0, SHOWN_ID_LENGTH)}`;
  // Blocked after it was queued (only pairwise messages are: groups leave blocked members out): it goes once they are unblocked.
  return m.error?.code === 'BLOCKED' && !m.conversation.startsWith('g:') ? `tacit unblock ${quoted}, then ${retry}` : retry;
}

/**
 * An outgoing message's receipts as Signal shows them: ✓ sent, ✓✓ delivered, ✓✓ read (in words
 * too, since a terminal cannot fill a tick); in a group, who has read it and who has it.
 */
export function deliveryLine(m: HistoryMessage): string {
  const mark = m.delivery === 'read' ? '✓✓ read' : m.delivery === 'delivered' ? '✓✓ delivered' : '✓ sent';
  const r = m.receipts ?? {};
  const members = Object.keys(r);
  if (!m.conversation.startsWith('g:') || members.length === 0 || m.delivery === 'read') return mark;
  const read = members.filter((u) => r[u]?.read !== undefined);
  const delivered = members.filter((u) => r[u]?.delivered !== undefined && r[u]?.read === undefined);
  const parts = [read.length > 0 ? `read by ${read.join(', ')}` : '', delivered.length > 0 ? `delivered to ${delivered.join(', ')}` : ''].filter((x) => x !== '');
  return parts.length > 0 ? `${mark} (${parts.join('; ')})` : mark;
}

export async function cmdSafetyNumber(ctx: Ctx): Promise<number> {
  const [name] = need(ctx, 1, 'safety-number <username>');
  const h = await ctx.open();
  try {
    const info = await h.client.safetyNumber(name!);
    const note =
      info.keyState === 'changed'
        ? `\n${info.contact}'s identity key CHANGED. Compare this number with ${info.contact} in person or over a channel you trust, then run: tacit trust ${info.contact}`
        : info.keyState === 'unverified'
          ? `\n(key fetched from the server; you have not exchanged messages with ${info.contact} yet)`
          : '';
    ctx.out.event(
      'safety-number',
      { contact: info.contact, safetyNumber: info.displayable, keyState: info.keyState },
      `Safety number with ${info.contact}:\n${formatSafetyNumber(info.displayable)}${note}`,
    );
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

export async function cmdTrust(ctx: Ctx): Promise<number> {
  const [name] = need(ctx, 1, 'trust <username>');
  const h = await ctx.open();
  try {
    const r = await h.client.trust(name!);
    const contact = parseUsername(name!);
    ctx.out.event(
      'trusted',
      { contact, changed: r.changed, released: r.released },
      r.changed
        ? `trusted the new identity key of ${contact}${r.released > 0 ? `; ${r.released} held message(s) are now readable with tacit recv` : ''}`
        : `${contact}'s identity key is trusted`,
    );
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

export async function cmdContacts(ctx: Ctx): Promise<number> {
  need(ctx, 0, 'contacts');
  const h = await ctx.open();
  try {
    const list = await h.client.contacts();
    if (list.length === 0 && !ctx.out.json) ctx.stderr.write('no contacts yet\n');
    for (const c of list) {
      ctx.out.event(
        'contact',
        { username: c.username, devices: c.devices, identityChanged: c.identityChanged, blocked: c.blocked, muted: c.mutedUntil !== undefined, mutedUntil: mutedUntilJson(c.mutedUntil) ?? null, unread: c.unread, lastMessageAt: c.lastMessageAt ?? null },
        `${c.username.padEnd(20)} ${String(c.unread).padStart(4)} unread${c.mutedUntil !== undefined ? `   ${mutedNote(c.mutedUntil)}` : ''}${c.blocked ? '   blocked (tacit unblock ' + c.username + ')' : ''}${c.identityChanged ? '   ! safety number changed (tacit safety-number ' + c.username + ')' : ''}`,
      );
    }
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

export async function cmdWhoami(ctx: Ctx): Promise<number> {
  need(ctx, 0, 'whoami');
  const h = await ctx.open();
  try {
    const c = h.client;
    ctx.out.event(
      'whoami',
      { username: c.username, deviceId: c.deviceId, server: c.server, home: ctx.home, identityKey: toBase64(c.identityKey) },
      `${c.username} (device ${c.deviceId}) on ${c.server}\nhome: ${ctx.home}`,
    );
  } finally {
    await h.close();
  }
  return EXIT.OK;
}


