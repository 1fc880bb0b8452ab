/**
 * `tacit chat <user>`: interactive. Incoming messages appear live above the input line; each
 * line typed is sent. Stays connected through server restarts (the SDK reconnects and resends).
 * With --json (or stdin not a terminal) it is line-oriented for scripts: one event per line out,
 * one message per line in; end of input waits for unsent messages, then exits.
 */
import { clearLine, createInterface, cursorTo } from 'node:readline';
import { describeError, isClientError, parseUsername } from '@tacit/client';
import { UsageError } from './args.js';
import { CONNECT_TIMEOUT_MS, type Ctx } from './context.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { makeOutput } from './output.js';
import { attachNotices, printMessage } from './commands.js';

/** After end of input, how long to wait for unconfirmed messages before giving up, ms. */
export const CHAT_FLUSH_TIMEOUT_MS = 60_000;

export async function cmdChat(ctx: Ctx): Promise<number> {
  const p = ctx.args.positionals;
  if (p.length !== 1) throw new UsageError('usage: tacit chat <username>');
  const partner = parseUsername(p[0]!);
  const h = await ctx.open();
  const c = h.client;
  const interactive = ctx.stdin.isTTY === true && ctx.stdout.isTTY === true && !ctx.args.json;
  let started = false;
  const rl = createInterface({ input: ctx.stdin, output: interactive ? ctx.stdout : undefined, terminal: interactive, crlfDelay: Infinity });
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
  try {
    attachNotices(chatCtx, c);
    c.on('message', (m) => {
      printMessage(out, m);
      void c.markRead([m.serverId]).catch(() => undefined);
    });
    c.on('connection', (e) => {
      if (e.state === 'disconnected') out.notice('connection', { state: 'disconnected', retryInMs: e.retryInMs }, `(connection lost; retrying in ${Math.ceil((e.retryInMs ?? 0) / 1000)}s)`);
      else if (e.state === 'ready') out.notice('connection', { state: 'ready' }, '(connected)');
    });
    c.on('fatal', (e) => {
      out.error({ code: e.serverCode ?? e.code, message: e.message, exit: EXIT.SERVER });
      fatal = EXIT.SERVER;
      rl.close();
    });
    if (interactive) ctx.stdout.write(`chatting with ${partner}; type a message and press Enter, /quit to leave\n`);
    await c.connect(CONNECT_TIMEOUT_MS);
    const backlog = c.unread();
    for (const m of backlog) printMessage(out, m);
    if (backlog.length > 0) await c.markRead(backlog.map((m) => m.serverId));
    if (interactive) {
      rl.setPrompt('> ');
      started = true;
      rl.prompt();
    } else out.event('chat-ready', { with: partner }, undefined);

    const sends: Promise<void>[] = [];
    for await (const line of rl) {
      if (line === '/quit') break;
      if (line.trim().length === 0) {
        if (interactive) rl.prompt();
        continue;
      }
      sends.push(
        c.send(partner, line).then(
          (r) => out.event('sent', { to: r.to, id: r.id, sentAt: r.sentAt, devices: r.serverIds.length }, undefined),
          (e: unknown) => {
            const code = isClientError(e) ? e.code : 'INTERNAL';
            out.error({ code, message: `not sent: ${describeError(e)}`, exit: isClientError(e) ? exitCodeFor(e.code) : EXIT.INTERNAL, contact: isClientError(e) ? e.contact : undefined });
          },
        ),
      );
      if (interactive) rl.prompt();
    }
    // End of input: give queued messages a bounded time to reach the server.
    await Promise.race([Promise.all(sends), new Promise((r) => setTimeout(r, CHAT_FLUSH_TIMEOUT_MS).unref())]);
    if (c.outboxSize > 0) out.notice('unsent', { count: c.outboxSize }, `tacit: ${c.outboxSize} message(s) not yet confirmed by the server; they are sent next time tacit connects`);
  } finally {
    rl.close();
    await h.close();
  }
  return fatal ?? EXIT.OK;
}
