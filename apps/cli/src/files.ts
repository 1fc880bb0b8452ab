/**
 * Files from the terminal: `tacit send <user> --file <path> [caption]`, and received files saved
 * under `<home>/downloads` (or `--out <dir>`) before the message is printed, so the line that
 * shows a file names where it is. Saving never overwrites (`name (1)`), uses the sender's name only
 * in its safe form, and keeps nothing of a file that does not check out.
 */
import { stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { contentTypeFromName, describeError, isClientError, type HistoryMessage, type SendResult, type TacitClient } from '@tacit/client';
import { fileSource, saveMessageAttachment } from '@tacit/client/node';
import { UsageError } from './args.js';
import type { Ctx } from './context.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { sanitize } from './output.js';

/** Where received files go inside the home directory, without --out. */
export const DOWNLOADS_DIR = 'downloads';
/** Width of the progress bar, in characters. */
export const PROGRESS_BAR_WIDTH = 30;
/** Unread messages looked at for files to save, per receive. */
const MAX_SAVE_SCAN = 1_000;

export function downloadsDir(ctx: Ctx): string {
  return ctx.args.out !== undefined ? resolve(ctx.args.out) : join(ctx.home, DOWNLOADS_DIR);
}

/** Files of this run that could not be saved (message key → what went wrong). */
const failures = new Map<string, { code: string; message: string }>();
const keyOf = (m: HistoryMessage): string => `${m.conversation}#${m.seq}`;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** The `file` member of a message or history event (JSON). */
export function fileFields(m: HistoryMessage): Record<string, unknown> {
  const a = m.attachment;
  if (a === undefined) return {};
  const f = failures.get(keyOf(m));
  return {
    file: {
      name: a.name,
      type: a.type,
      size: a.size,
      ...(a.savedAs !== undefined ? { path: a.savedAs } : {}),
      ...(a.width !== undefined ? { width: a.width, height: a.height } : {}),
      ...(f !== undefined ? { error: f } : {}),
    },
  };
}

/** How a message's file reads on a terminal (empty for a text message). */
export function fileLine(m: HistoryMessage): string {
  const a = m.attachment;
  if (a === undefined) return '';
  const f = failures.get(keyOf(m));
  const where = a.savedAs !== undefined ? ` saved as ${sanitize(a.savedAs)}` : f !== undefined ? ` NOT saved: ${f.message}` : '';
  return `[file: ${sanitize(a.name)}, ${formatBytes(a.size)}, ${a.type}]${where}`;
}

/**
 * Saves the files of messages not yet shown, before they are shown. A file that cannot be saved
 * (tampered, expired, …) is reported on its message and leaves nothing behind; the others go on.
 * Resolves with how many failed.
 */
export async function saveIncoming(ctx: Ctx, client: TacitClient): Promise<number> {
  const dir = downloadsDir(ctx);
  let failed = 0;
  for (const m of (await client.unread()).slice(0, MAX_SAVE_SCAN)) {
    if (m.attachment === undefined || m.attachment.savedAs !== undefined || failures.has(keyOf(m))) continue;
    try {
      await saveMessageAttachment(client, m.conversation, m.seq, dir);
    } catch (e) {
      failed++;
      const code = isClientError(e) ? (e.serverCode ?? e.code) : 'INTERNAL';
      failures.set(keyOf(m), { code, message: describeError(e) });
      ctx.out.notice('file-not-saved', { from: m.from, id: m.id, name: m.attachment.name, code, message: describeError(e) }, `tacit: warning: the file "${sanitize(m.attachment.name)}" from ${m.from} was not saved: ${describeError(e)}`);
    }
  }
  return failed;
}

/** A progress bar on stderr, only when stderr is a terminal (and not --json). */
export function progressBar(ctx: Ctx, label: string): { update(sent: number, total: number): void; done(): void } {
  if (ctx.stderr.isTTY !== true || ctx.out.json) return { update: () => undefined, done: () => undefined };
  let last = -1;
  return {
    update(sent, total) {
      const pct = total === 0 ? 100 : Math.floor((sent / total) * 100);
      if (pct === last) return;
      last = pct;
      const filled = Math.round((pct / 100) * PROGRESS_BAR_WIDTH);
      ctx.stderr.write(`\r${label} [${'#'.repeat(filled)}${' '.repeat(PROGRESS_BAR_WIDTH - filled)}] ${String(pct).padStart(3)}% of ${formatBytes(total)}`);
    },
    done() {
      if (last >= 0) ctx.stderr.write('\n');
    },
  };
}

/**
 * `send <user> --file <path> [caption]`: uploads and sends; exits 0 once the server stored the
 * message. Sent again after an interruption (Ctrl-C, a crash, the network), the same file
 * continues its upload where the server stands, in the same message.
 */
export async function sendFileCommand(ctx: Ctx, to: string, path: string, caption: string | undefined): Promise<number> {
  const full = resolve(path);
  const st = await stat(full).catch(() => undefined);
  if (st === undefined || !st.isFile()) throw new UsageError(`${path}: no such file (or not a regular file)`);
  const name = basename(full);
  const h = await ctx.open();
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const bar = progressBar(ctx, `sending ${sanitize(name).slice(0, 40)}`);
  try {
    const c = h.client;
    let r: SendResult;
    try {
      r = await c.sendFile(to, await fileSource(full), {
        name,
        type: contentTypeFromName(name),
        ...(caption !== undefined ? { caption } : {}),
        // The same file (path, size, modification time) to the same person continues its upload.
        resumeKey: `${full}\u0000${st.size}\u0000${st.mtimeMs}`,
        signal: controller.signal,
        onProgress: (sent, total) => bar.update(sent, total),
      });
    } finally {
      bar.done();
    }
    ctx.out.event('sent', { to: r.to, id: r.id, sentAt: r.sentAt, devices: r.serverIds.length, file: { name, size: st.size } }, `sent ${name} (${formatBytes(st.size)}) to ${r.to}`);
    return EXIT.OK;
  } catch (e) {
    if (isClientError(e) && e.code === 'CANCELLED') {
      ctx.out.error({ code: 'CANCELLED', message: 'the upload was cancelled; run the same command again to send it', exit: EXIT.CANCELLED });
      return EXIT.CANCELLED;
    }
    if (isClientError(e)) {
      ctx.out.error({ code: e.code, serverCode: e.serverCode, message: `the file was not sent: ${e.message}`, exit: exitCodeFor(e.code), contact: e.contact });
      return exitCodeFor(e.code);
    }
    throw e;
  } finally {
    process.removeListener('SIGINT', onSigint);
    await h.close();
  }
}
