/**
 * `tacit chat <user>`: interactive. Incoming messages appear live above the input line; each
 * line typed is sent. Stays connected through server restarts (the SDK reconnects and resends);
 * while the server cannot be reached, what is typed is queued (and shown as waiting) and sent in
 * order when it is back. Each incoming message is printed once, even across a crash: printing and
 * marking it read are one step (TacitClient.takeForDisplay).
 * With --json (or stdin not a terminal) it is line-oriented for scripts: one event per line out,
 * one message per line in. Input is read from the start, so lines that arrive while connecting are
 * sent in order once connected; end of input waits until the server confirmed every message
 * (at most CHAT_FLUSH_TIMEOUT_MS), then exits.
 */
import { clearLine, createInterface, cursorTo } from 'node:readline';
import { checkText, describeError, describeTextProblem, isClientError } from '@tacit/client';
import { UsageError } from './args.js';
import { CONNECT_TIMEOUT_MS, type Ctx } from './context.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { makeOutput } from './output.js';
import { attachNotices, printMessage } from './commands.js';
import { groupLabels, recipient } from './group.js';
import { saveIncoming } from './files.js';

/** After end of input, how long to wait for unconfirmed messages before giving up, ms. */
export const CHAT_FLUSH_TIMEOUT_MS = 60_000;
/**
 * After /quit, how long to wait for the server to confirm messages already on their way, ms.
 * Short: the user asked to leave, and whatever is unconfirmed stays stored and is sent the next
 * time tacit connects.
 */
export const QUIT_GRACE_MS = 3_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

export async function cmdChat(ctx: Ctx): Promise<number> {
  const p = ctx.args.positionals;
  if (p.length !== 1) throw new UsageError('usage: tacit chat <username|#group> [--wait <seconds>]');
  const named = recipient(p[0]!);
  const h = await ctx.open();
  const c = h.client;
  // A group is sent to by its full id from here on (a rename cannot change what `#title` meant).
  const conversation = await c.resolveConversation(named).catch(async (e: unknown) => {
    await h.close();
    throw e;
  });
  const partner = conversation.startsWith('g:') ? conversation : named;
  const interactive = ctx.stdin.isTTY === true && ctx.stdout.isTTY === true && !ctx.args.json;
  let started = false;
  const rl = createInterface({ input: ctx.stdin, output: interactive ? ctx.stdout : undefined, terminal: interactive, crlfDelay: Infinity });
  // Read from now on, before connecting: a pipe may deliver every line, and its end, before the
  // server answers; the iterator keeps them, in order.
  const input = rl[Symbol.asyncIterator]();
  // Live output: clear the input line, print, redraw the prompt with what was typed so far.
  const out = interactive
    ? makeOutput(
        false,
        { stdout: ctx.stdout, stderr: ctx.stdout },
        () => {
          clearLine(ctx.stdout, 0);
          cursorTo(ctx.stdout, 0);
        },
        () => {
          if (started) rl.prompt(true);
        },
      )
    : ctx.out;
  const chatCtx: Ctx = { ...ctx, out };
  let fatal: number | undefined;
  let connected = false;
  /** Messages announced as waiting, so their later `sent` is announced too. */
  const waiting = new Set<string>();
  try {
    attachNotices(chatCtx, c);
    c.on('connection', (e) => {
      if (e.state === 'disconnected') {
        connected = false;
        out.notice('connection', { state: 'disconnected', retryInMs: e.retryInMs }, `(connection lost; retrying in ${Math.ceil((e.retryInMs ?? 0) / 1000)}s)`);
      } else if (e.state === 'ready') {
        connected = true;
        out.notice('connection', { state: 'ready' }, '(connected)');
      }
    });
    c.on('outgoing', (m) => {
      if (m.conversation !== conversation) return;
      if (m.state === 'queued' && !connected) {
        waiting.add(m.id);
        out.notice('queued', { to: partner, id: m.id }, `(waiting: the server is unreachable; "${m.text.slice(0, 30)}" is sent when it is back)`);
      } else if (m.state === 'sent' && waiting.delete(m.id)) {
        out.notice('delivered', { to: partner, id: m.id }, `(sent: "${m.text.slice(0, 30)}")`);
      }
    });
    // Typing indicators of this conversation: a line for people, an event for scripts.
    c.on('typing', (e) => {
      if (e.conversation !== conversation) return;
      out.event('typing', { conversation: e.conversation, from: e.from, typing: e.typing }, e.typing ? `(${e.from} is typing…)` : undefined);
    });
    // Receipts for what we wrote here, as a line (scripts get the `receipt` event of attachNotices).
    c.on('receipt', (e) => {
      if (!interactive || e.conversation !== conversation) return;
      const who = conversation.startsWith('g:') ? ` by ${e.from}` : '';
      out.event('receipt', {}, `(${e.kind === 'read' ? '✓✓ read' : '✓✓ delivered'}${who}: ${e.messages.length} message(s))`);
    });
    c.on('fatal', (e) => {
      out.error({ code: e.code, serverCode: e.serverCode, message: e.message, exit: EXIT.SERVER });
      fatal = EXIT.SERVER;
      rl.close();
    });
    if (interactive) ctx.stdout.write(`chatting with ${conversation.startsWith('g:') ? named : partner}; type a message and press Enter, /quit to leave\n`);
    // An unreachable server does not stop the chat: what is typed is queued meanwhile.
    await c.connect(ctx.args.wait !== undefined ? ctx.args.wait * 1000 : CONNECT_TIMEOUT_MS).catch((e: unknown) => {
      if (!(isClientError(e) && (e.code === 'TIMEOUT' || e.code === 'NETWORK'))) throw e;
      out.notice('connection', { state: 'unreachable' }, '(the server is unreachable; messages are queued and sent when it is back)');
    });
    const label = await groupLabels(c);
    // Received files are saved before their message is shown (files.ts); one take at a time.
    let showing = Promise.resolve();
    const show = (): void => {
      showing = showing
        .then(async () => {
          await saveIncoming(chatCtx, c);
          const muted = await c.mutes();
          await c.takeForDisplay((list) =>
            out.batch(() => {
              // A message from another conversation rings the terminal bell (once per batch), unless that conversation is muted.
              if (interactive && list.some((m) => m.conversation !== conversation && m.direction === 'in' && muted[m.conversation] === undefined)) ctx.stdout.write('\x07');
              list.forEach((m) => printMessage(out, m, label));
            }),
          );
        })
        .catch((e: unknown) => out.error({ code: isClientError(e) ? e.code : 'INTERNAL', message: describeError(e), exit: EXIT.STATE }));
    };
    c.on('message', show);
    show();
    if (interactive) {
      // Typing as you type: a keypress says `started` (rate limited in the SDK), a sent line `stopped`.
      ctx.stdin.on('keypress', (_s: unknown, key: { name?: string } | undefined) => {
        if (key?.name !== 'return' && key?.name !== 'enter') void c.setTyping(conversation, true).catch(() => undefined);
      });
      rl.on('line', () => void c.setTyping(conversation, false).catch(() => undefined));
      rl.setPrompt('> ');
      started = true;
      rl.prompt();
    } else out.event('chat-ready', { with: partner }, undefined);

    const sends: Promise<void>[] = [];
    /** Set when leaving: a send cut short by closing is kept in the outbox, not lost. */
    let closing = false;
    let quit = false;
    for (;;) {
      const next = await input.next();
      if (next.done === true) break;
      const line = next.value;
      if (line === '/quit') {
        quit = true;
        break;
      }
      // `/typing` and `/typing off`: a typing indicator by hand (scripts; a terminal sends them as you type).
      if (line === '/typing' || line === '/typing off') {
        const n = await c.setTyping(conversation, line === '/typing').catch(() => 0);
        out.event('typing-sent', { conversation, typing: line === '/typing', devices: n }, undefined);
        if (interactive) rl.prompt();
        continue;
      }
      if (line.trim().length === 0) {
        if (interactive) rl.prompt();
        continue;
      }
      const problem = checkText(line);
      if (problem !== undefined) {
        out.error({ code: 'INVALID_ARGUMENT', message: `not sent: ${describeTextProblem(problem)}`, exit: EXIT.USAGE });
        if (interactive) rl.prompt();
        continue;
      }
      sends.push(
        c.send(partner, line).then(
          (r) => out.event('sent', { to: r.to, id: r.id, sentAt: r.sentAt, devices: r.devices ?? r.serverIds.length }, undefined),
          (e: unknown) => {
            if (closing && isClientError(e) && e.code === 'CLOSED') return; // kept; told below
            const code = isClientError(e) ? e.code : 'INTERNAL';
            out.error({ code, message: `not sent: ${describeError(e)}`, exit: isClientError(e) ? exitCodeFor(e.code) : EXIT.INTERNAL, contact: isClientError(e) ? e.contact : undefined });
          },
        ),
      );
      if (interactive) rl.prompt();
    }
    // /quit leaves promptly (a moment for confirmations already on their way, none while offline);
    // end of input (a script) waits for the server to confirm everything, within a bound.
    const settled = Promise.all(sends);
    if (!quit) await Promise.race([settled, sleep(CHAT_FLUSH_TIMEOUT_MS)]);
    else if (connected) await Promise.race([settled, sleep(QUIT_GRACE_MS)]);
    closing = true;
    const unconfirmed = c.outboxSize;
    if (unconfirmed > 0) {
      out.notice(
        'unsent',
        { count: unconfirmed },
        `tacit: ${unconfirmed} message(s) not yet confirmed by the server; they are kept and sent the next time tacit connects (do not send them again)`,
      );
      if (!quit) fatal ??= EXIT.QUEUED;
    }
  } finally {
    rl.close();
    await h.close();
  }
  return fatal ?? EXIT.OK;
}
