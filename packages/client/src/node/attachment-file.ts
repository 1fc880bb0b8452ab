/**
 * Attachments and the file system (Node): a file as an upload source, and a download saved so
 * that nothing half-written ever looks like the file. The bytes go to a hidden temporary file in
 * the target directory (`.<name>.<random>.part`, mode 0600); only when every chunk and the digest
 * checked out is it fsynced and linked under its final name, which is never an existing file's
 * (`name`, `name (1)`, …: a hard link fails rather than replace). On any failure the temporary
 * file is removed.
 */
import { link, open, stat, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ClientError } from '../errors.js';
import type { AttachmentApi } from '../attachment/blob-api.js';
import type { AttachmentCrypto } from '../attachment/crypto.js';
import { downloadAttachment, type BlobReference, type DownloadOptions } from '../attachment/download.js';
import { numberedFileName, safeFileName } from '../attachment/file-name.js';
import type { PlaintextSource } from '../attachment/upload.js';

/** Read size for an upload source. */
const READ_BYTES = 256 * 1024;

/** Bytes written to the temporary file at a time (two such buffers per download). */
const WRITE_BATCH_BYTES = 1024 * 1024;

/** Names tried (`name`, `name (1)`, … `name (999)`) before a save gives up. */
export const MAX_NAME_ATTEMPTS = 1000;

/**
 * A regular file as an upload source. Every read checks that the file still has the size and
 * modification time it had: a file changed between attempts is refused, not sent mixed.
 */
export async function fileSource(path: string): Promise<PlaintextSource> {
  const first = await stat(path).catch(() => undefined);
  if (first === undefined || !first.isFile()) throw new ClientError('INVALID_ARGUMENT', 'no such file, or not a regular file');
  return {
    size: first.size,
    async *read() {
      const now = await stat(path).catch(() => undefined);
      if (now === undefined || now.size !== first.size || now.mtimeMs !== first.mtimeMs) throw new ClientError('INVALID_ARGUMENT', 'the file changed while it was being sent');
      // One buffer for the whole read: the consumer uses each piece before it asks for the next.
      const f = await open(path, 'r');
      try {
        const buffer = new Uint8Array(READ_BYTES);
        for (;;) {
          const { bytesRead } = await f.read(buffer, 0, buffer.length, null);
          if (bytesRead === 0) return;
          yield buffer.subarray(0, bytesRead);
        }
      } finally {
        await f.close();
      }
    },
  };
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Downloads, checks and decrypts an attachment into `dir` under a safe form of `name`; resolves to
 * the path it was saved at. Throws as `downloadAttachment` does; nothing is left behind then.
 */
export function saveAttachment(
  api: AttachmentApi,
  crypto: AttachmentCrypto,
  ref: BlobReference,
  dir: string,
  name: string,
  options: DownloadOptions = {},
): Promise<string> {
  return saveVerified(downloadAttachment(api, crypto, ref, options), dir, name);
}

/**
 * Saves a checked stream (one that throws before its last bytes unless everything checked out,
 * as `downloadAttachment` and `TacitClient.downloadAttachment` do) into `dir` under a safe form
 * of `name`, never replacing a file; resolves to the path. On any failure nothing is left.
 */
export async function saveVerified(stream: AsyncIterable<Uint8Array>, dir: string, name: string): Promise<string> {
  const safe = safeFileName(name);
  const temp = join(dir, `.${safe.slice(0, 60)}.${randomBytes(6).toString('hex')}.part`);
  const f = await open(temp, 'wx', 0o600);
  let linked: string | undefined;
  // Decrypting goes on while the last batch is written: at most one write in flight.
  let writing: Promise<unknown> = Promise.resolve();
  try {
    let batch = new Uint8Array(WRITE_BATCH_BYTES);
    let spare = new Uint8Array(WRITE_BATCH_BYTES);
    let filled = 0;
    const flush = async () => {
      await writing;
      writing = f.write(batch, 0, filled);
      writing.catch(() => undefined);
      [batch, spare] = [spare, batch];
      filled = 0;
    };
    for await (const piece of stream) {
      for (let at = 0; at < piece.length; ) {
        const take = Math.min(batch.length - filled, piece.length - at);
        batch.set(piece.subarray(at, at + take), filled);
        filled += take;
        at += take;
        if (filled === batch.length) await flush();
      }
    }
    if (filled > 0) await flush();
    await writing;
    await f.sync();
    await f.close();
    for (let n = 0; n < MAX_NAME_ATTEMPTS && linked === undefined; n++) {
      const candidate = join(dir, numberedFileName(safe, n));
      try {
        await link(temp, candidate);
        linked = candidate;
      } catch (e) {
        if ((e as { code?: string }).code !== 'EEXIST') throw e;
      }
    }
    if (linked === undefined) throw new ClientError('INVALID_ARGUMENT', `too many files named like "${safe}" in the download directory`);
    await unlink(temp);
    await syncDir(dir);
    return linked;
  } catch (e) {
    await writing.catch(() => undefined);
    await f.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw e;
  }
}
