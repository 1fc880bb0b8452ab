/**
 * Download, verify and decrypt one attachment. The blob streams in and each chunk is checked
 * before its bytes are passed on; a dropped connection, or one that stalls, is picked up again
 * with a Range request from the byte where it stopped. The file as a whole is genuine only once
 * `downloadAttachment` has run to its end: callers keep what it produced out of sight until then
 * (`downloadAttachmentBlob` here, `saveAttachment` in `@tacit/client/node`).
 */
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../backoff.js';
import { ClientError, isClientError } from '../errors.js';
import { AttachmentDecryption } from './cipher.js';
import type { AttachmentCrypto } from './crypto.js';
import type { AttachmentApi } from './blob-api.js';
import { abortableSleep, isRetriableTransferError, MAX_UPLOAD_ATTEMPTS } from './upload.js';

/** What a download needs from an attachment pointer. */
export interface BlobReference {
  id: string;
  key: Uint8Array;
  digest: Uint8Array;
  size: number;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  /** Blob bytes received, of `total`, as they arrive. */
  onProgress?: (received: number, total: number) => void;
  backoff?: BackoffPolicy;
  /** A connection that delivers nothing for this long is dropped and resumed, ms. */
  idleTimeoutMs?: number;
  /** Injected for tests: the wait between attempts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Default: a download that receives nothing for 30 s is resumed on a new connection. */
export const DOWNLOAD_IDLE_TIMEOUT_MS = 30_000;

/** The blob's bytes, resumed across dropped connections (with the same attempt budget as uploads). */
async function* blobBytes(api: AttachmentApi, ref: BlobReference, maxLength: number, options: DownloadOptions): AsyncGenerator<Uint8Array> {
  const sleep = options.sleep ?? abortableSleep;
  let received = 0;
  let failures = 0;
  for (;;) {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    options.signal?.addEventListener('abort', onAbort);
    let idle: ReturnType<typeof setTimeout> | undefined;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        controller.abort();
        // A body that ignores the abort still gets its pending read ended.
        reader?.cancel().catch(() => undefined);
      }, options.idleTimeoutMs ?? DOWNLOAD_IDLE_TIMEOUT_MS);
    };
    try {
      if (options.signal?.aborted) throw new ClientError('CANCELLED', 'cancelled');
      arm();
      const { total, body } = await api.open(ref.id, received, controller.signal);
      if (total > maxLength) throw new ClientError('ATTACHMENT_CORRUPT', 'the attachment does not check out: it is longer than its size allows');
      options.onProgress?.(received, total);
      reader = body.getReader();
      try {
        for (;;) {
          arm();
          let chunk: ReadableStreamReadResult<Uint8Array>;
          try {
            chunk = await reader.read();
          } catch {
            throw controller.signal.aborted && !options.signal?.aborted
              ? new ClientError('TIMEOUT', 'the download stalled')
              : new ClientError('NETWORK', 'the download was interrupted');
          }
          if (chunk.done && controller.signal.aborted) throw new ClientError(options.signal?.aborted ? 'CANCELLED' : 'TIMEOUT', 'the download stalled');
          if (chunk.done) break;
          received += chunk.value.length;
          if (received > total) throw new ClientError('BAD_RESPONSE', 'the server sent more than the blob length');
          failures = 0;
          options.onProgress?.(received, total);
          yield chunk.value;
        }
      } finally {
        await reader.cancel().catch(() => undefined);
      }
      if (received === total) return;
      throw new ClientError('NETWORK', 'the download ended early');
    } catch (e) {
      if (options.signal?.aborted || (isClientError(e) && e.code === 'CANCELLED')) throw new ClientError('CANCELLED', 'the download was cancelled');
      if (!isRetriableTransferError(e) || ++failures >= MAX_UPLOAD_ATTEMPTS) throw e;
      await sleep(backoffDelay(failures - 1, options.backoff ?? DEFAULT_BACKOFF), options.signal);
    } finally {
      clearTimeout(idle);
      controller.abort();
      options.signal?.removeEventListener('abort', onAbort);
    }
  }
}

/**
 * The file's bytes, decrypted and checked chunk by chunk; throws ATTACHMENT_CORRUPT if anything
 * does not check out (the last bytes come only after the digest matched), SERVER NOT_FOUND when
 * the blob expired or was deleted, CANCELLED when `signal` fired.
 */
export async function* downloadAttachment(api: AttachmentApi, crypto: AttachmentCrypto, ref: BlobReference, options: DownloadOptions = {}): AsyncGenerator<Uint8Array> {
  const dec = await AttachmentDecryption.start(crypto, ref.key, ref.size, ref.digest);
  yield* dec.plaintext(blobBytes(api, ref, dec.maxBlobLength, options));
}

/** The whole file as a Blob of `type`, made only once every byte checked out (browsers). */
export async function downloadAttachmentBlob(api: AttachmentApi, crypto: AttachmentCrypto, ref: BlobReference, type: string, options: DownloadOptions = {}): Promise<Blob> {
  const parts: Uint8Array<ArrayBuffer>[] = [];
  for await (const p of downloadAttachment(api, crypto, ref, options)) parts.push(p.buffer instanceof ArrayBuffer ? (p as Uint8Array<ArrayBuffer>) : new Uint8Array(p));
  return new Blob(parts, { type });
}
