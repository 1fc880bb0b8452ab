/** The one-shot commands: register, send, recv, safety-number, trust, contacts, whoami. */
import { createInterface } from 'node:readline';
import { toBase64 } from '@tacit/api';
import { parseUsername, type StoredMessage, type TacitClient } from '@tacit/client';
import { UsageError } from './args.js';
import { CONNECT_TIMEOUT_MS, DRAIN_TIMEOUT_MS, type Ctx } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatSafetyNumber, formatTime, sanitize, type Output } from './output.js';

/** Messages read from stdin by `send <user> -` at most (one per line). */
export const MAX_STDIN_MESSAGES = 10_000;

function need(ctx: Ctx, n: number, usage: string): string[] {
  const p = ctx.args.positionals;
  if (p.length !== n) throw new UsageError(`usage: tacit ${usage}`);
  return p;
}

export async function cmdRegister(ctx: Ctx): Promise<number> {
  const [name] = need(ctx, 1, 'register <username> --server <url> [--invite <code>]');
  if (ctx.args.server === undefined) throw new UsageError('register needs --server <url>');
  const username = parseUsername(name!);
  const h = await ctx.register({ server: ctx.args.server, username, ...(ctx.args.invite !== undefined ? { inviteCode: ctx.args.invite } : {}) });
  try {
    const c = h.client;
    ctx.out.event('registered', { username: c.username, deviceId: c.deviceId, server: c.server, home: ctx.home }, `registered ${c.username} (device ${c.deviceId}) on ${c.server}`);
  } finally {
    await h.close();
  }
  return EXIT.OK;
}

export function printMessage(out: Output, m: StoredMessage): void {
  out.event(
    'message',
    { from: m.from, fromDevice: m.fromDevice, id: m.id, text: m.text, sentAt: m.sentAt, serverTimestamp: m.serverTimestamp, serverId: m.serverId },
    `[${formatTime(m.sentAt)}] ${m.from}: ${sanitize(m.text)}`,
  );
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
  client.on('undecryptable', ({ from, fromDevice, reason }) =>
    ctx.out.notice('undecryptable', { from, fromDevice, reason }, `tacit: warning: dropped a message from ${from} (device ${fromDevice}) that could not be decrypted (${reason})`),
  );
  // Until the user trusts, every receive reminds them (once per run).
  return { remindPending: () => client.changedIdentities().forEach(tell) };
}

async function readStdinLines(ctx: Ctx): Promise<string[]> {
  const rl = createInterface({ input: ctx.stdin, crlfDelay: Infinity, terminal: false });
  const lines: string[] = [];
  for await (const line of rl) {
    if (line.length === 0) continue;
    if (lines.length >= MAX_STDIN_MESSAGES) throw new UsageError(`at most ${MAX_STDIN_MESSAGES} messages per send`);
    lines.push(line);
  }
  return lines;
}

export async function cmdSend(ctx: Ctx): Promise<number> {
  const p = ctx.args.positionals;
  if (p.length !== 2) throw new UsageError('usage: tacit send <username> <text>   (or - to send each line of stdin)');
  const to = parseUsername(p[0]!);
  const texts = p[1] === '-' ? await readStdinLines(ctx) : [p[1]!];
  if (texts.some((t) => t.length === 0) || texts.length === 0) throw new UsageError('nothing to send');
  const h = await ctx.open();
  try {
    const c = h.client;
    attachNotices(ctx, c);
    await c.connect(CONNECT_TIMEOUT_MS);
    // All sends are queued at once (in order) and confirmed together: a burst is one round of frames.
    const pending = texts.map((t) => c.send(to, t));
    const results = await Promise.allSettled(pending);
    let failure: unknown;
    for (const r of results) {
      if (r.status === 'fulfilled') {
        const v = r.value;
        ctx.out.event('sent', { to: v.to, id: v.id, sentAt: v.sentAt, devices: v.serverIds.length }, texts.length === 1 ? `sent to ${v.to}` : undefined);
      } else failure ??= r.reason;
    }
    if (failure !== undefined) throw failure;
    if (texts.length > 1 && !ctx.out.json) ctx.out.event('sent', {}, `sent ${texts.length} messages to ${to}`);
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
    const printUnread = async (): Promise<number> => {
      const list = c.unread();
      for (const m of list) printMessage(ctx.out, m);
      if (list.length > 0) await c.markRead(list.map((m) => m.serverId));
      return list.length;
    };
    await c.connect(CONNECT_TIMEOUT_MS);
    await c.waitDrained(DRAIN_TIMEOUT_MS);
    let printed = await printUnread();
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
      printed += await printUnread();
    }
    notices.remindPending();
    if (printed === 0 && !ctx.out.json) ctx.stderr.write('no new messages\n');
  } finally {
    await h.close();
  }
  return EXIT.OK;
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
    const list = h.client.contacts();
    if (list.length === 0 && !ctx.out.json) ctx.stderr.write('no contacts yet\n');
    for (const c of list) {
      ctx.out.event(
        'contact',
        { username: c.username, devices: c.devices, identityChanged: c.identityChanged, unread: c.unread, lastMessageAt: c.lastMessageAt ?? null },
        `${c.username.padEnd(20)} ${String(c.unread).padStart(4)} unread${c.identityChanged ? '   ! safety number changed (tacit safety-number ' + c.username + ')' : ''}`,
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


