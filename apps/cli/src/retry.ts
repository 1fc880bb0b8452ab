/**
 * `tacit retry <conversation> <id>`: sends a failed message again, as the web client's Retry
 * button does. A message fails on a definite refusal — the contact's safety number changed (exit
 * 9; `tacit trust` first), no such user, a refusal by the server — and stays in the history as
 * failed, with its id. Sent again it keeps that id and its place in the conversation (a device
 * that already has it drops the copy), so retrying never shows the text twice.
 */
import { ClientError, type SendResult } from '@tacit/client';
import { UsageError } from './args.js';
import { CONNECT_TIMEOUT_MS, type Ctx } from './context.js';
import { EXIT } from './exit-codes.js';
import { attachNotices } from './commands.js';
import { checkRef, SHOWN_ID_LENGTH } from './edits.js';
import { recipient } from './group.js';

export async function cmdRetry(ctx: Ctx): Promise<number> {
  const p = ctx.args.positionals;
  if (p.length !== 2) throw new UsageError('usage: tacit retry <username|#group> <message id>   (a message tacit history shows as failed)');
  const to = recipient(p[0]!);
  const ref = checkRef(p[1]!);
  const h = await ctx.open();
  try {
    const c = h.client;
    attachNotices(ctx, c);
    const m = await c.findMessage(to, ref);
    if (m.direction !== 'out' || m.system === true) throw new ClientError('INVALID_ARGUMENT', 'only a message you sent can be sent again');
    if (m.attachment !== undefined && !m.attachment.uploaded) {
      throw new UsageError(`the upload of "${m.attachment.name}" did not finish: run the same tacit send ${p[0]} --file <path> again to continue it`);
    }
    if (m.state === 'sent') throw new ClientError('INVALID_ARGUMENT', 'this message was sent already (the server stored it)');
    if (m.state !== 'failed') throw new ClientError('INVALID_ARGUMENT', 'this message is still waiting for the server: it goes out the next time tacit connects');
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      c.retry(to, m.seq).then(
        (r: SendResult & { devices?: number }) => ({ r }),
        (error: unknown) => ({ error }),
      ),
      new Promise<{ timeout: true }>((resolve) => {
        timer = setTimeout(() => resolve({ timeout: true }), ctx.args.wait !== undefined ? ctx.args.wait * 1000 : CONNECT_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if ('error' in outcome) throw outcome.error;
    if ('timeout' in outcome) {
      ctx.out.error({ code: 'QUEUED', message: 'the server could not be reached; the message is stored and will be sent the next time tacit connects — do not send it again', exit: EXIT.QUEUED });
      return EXIT.QUEUED;
    }
    const r = outcome.r;
    // A group's retry reports no device count (the SDK's group send counts them only on a first send).
    const devices = r.devices ?? (r.conversation.startsWith('g:') ? undefined : r.serverIds.length);
    ctx.out.event('sent', { to: r.to, id: r.id, sentAt: r.sentAt, ...(devices !== undefined ? { devices } : {}), retried: true }, `sent ${r.id.slice(0, SHOWN_ID_LENGTH)} to ${p[0]} again`);
  } finally {
    await h.close();
  }
  return EXIT.OK;
}
