/**
 * Encrypt and upload one file: a fresh key, the blob reserved with its exact length (the server
 * refuses a file over its cap or the account's quota before anything is sent), then sealed chunks
 * sent in pieces as they are produced, the next piece encrypted while the last one travels.
 * Memory: two pieces, whatever the file size.
 *
 * Interruptions: a piece that fails (network, timeout, the server busy or restarting) is retried
 * after asking the server where the blob stands; the upload continues from there, encrypting
 * again from that chunk (the blob is deterministic for a key and file). With `resume` an upload
 * continues across restarts of the program, from the id and key that `onCreated` was given.
 */
import { ATTACHMENT_FRAME_BYTES, attachmentBlobLength } from '@tacit/api';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../backoff.js';
import { ClientError, isClientError } from '../errors.js';
import { AttachmentEncryption, ATTACHMENT_KEY_BYTES } from './cipher.js';
import type { AttachmentCrypto } from './crypto.js';
import type { AttachmentApi } from './blob-api.js';

/** A file to send: its size, and its bytes from the first, as often as asked (to resume). */
export interface PlaintextSource {
  readonly size: number;
  /**
   * The file's bytes in order, in pieces of any size; must be the same bytes every time. A piece
   * is used before the next one is asked for, so a source may reuse its buffer.
   */
  read(): AsyncIterable<Uint8Array>;
}

/** A file's bytes from a Blob (a browser File), a piece at a time. */
export function blobSource(blob: Blob, pieceBytes = 1024 * 1024): PlaintextSource {
  return {
    size: blob.size,
    async *read() {
      for (let at = 0; at < blob.size; at += pieceBytes) yield new Uint8Array(await blob.slice(at, at + pieceBytes).arrayBuffer());
    },
  };
}

/** Where an upload can be continued from: the blob's id and the file's key. */
export interface UploadHandle {
  id: string;
  key: Uint8Array;
}

export interface UploadOptions {
  signal?: AbortSignal;
  /** Blob bytes the server has stored, of `total`, after each piece. */
  onProgress?: (sent: number, total: number) => void;
  /** An earlier upload of the same file to continue; a fresh one starts if the server no longer has it. */
  resume?: UploadHandle;
  /** Called once the blob is reserved, before a byte is sent: keep it to resume after a crash. */
  onCreated?: (handle: UploadHandle) => void | Promise<void>;
  backoff?: BackoffPolicy;
  /** Injected for tests: the wait between attempts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** What the recipient needs to fetch and check the file (goes into the attachment pointer). */
export interface UploadedAttachment {
  id: string;
  key: Uint8Array;
  /** SHA-256 of the file. */
  digest: Uint8Array;
  /** The file's size in bytes. */
  size: number;
}

/**
 * Failed attempts in a row (nothing stored in between) before an upload gives up. With the
 * default backoff the last waits are capped at 30 s, so an upload rides out a minute or two of
 * network loss or a server restart.
 */
export const MAX_UPLOAD_ATTEMPTS = 8;

/**
 * Smallest and largest upload piece (whole sealed chunks): 4 chunks (~256 KiB) to 64 (~4 MiB).
 * Two pieces are held at once; 4 MiB keeps that small while a round trip per piece stays
 * negligible next to its transfer, and a piece at the largest size arrives within the server's
 * 30 s request timeout down to about 1.1 Mbit/s (slower links still progress: a piece cut off
 * keeps what arrived).
 */
export const MIN_UPLOAD_PIECE_BYTES = 4 * ATTACHMENT_FRAME_BYTES;
export const MAX_UPLOAD_PIECE_BYTES = 64 * ATTACHMENT_FRAME_BYTES;

/**
 * A file goes up in about this many pieces (within the bounds above): progress moves in steps of
 * about 5%, and a lost piece costs little to resend.
 */
export const UPLOAD_PIECES_PER_FILE = 20;

const RETRIABLE_SERVER_CODES: ReadonlySet<string> = new Set(['OFFSET_MISMATCH', 'RATE_LIMITED', 'INTERNAL', 'UNAVAILABLE', 'RECONNECT_ELSEWHERE']);

/** Whether an attempt that failed with `e` may be tried again after asking where the blob stands. */
export function isRetriableTransferError(e: unknown): boolean {
  if (!isClientError(e)) return false;
  if (e.code === 'NETWORK' || e.code === 'TIMEOUT') return true;
  return e.code === 'SERVER' && (RETRIABLE_SERVER_CODES.has(e.serverCode ?? '') || (e.status !== undefined && e.status >= 500));
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ClientError('CANCELLED', 'cancelled'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new ClientError('CANCELLED', 'cancelled'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function pieceBytesFor(blobLength: number): number {
  const frames = Math.ceil(blobLength / UPLOAD_PIECES_PER_FILE / ATTACHMENT_FRAME_BYTES);
  return Math.min(MAX_UPLOAD_PIECE_BYTES, Math.max(MIN_UPLOAD_PIECE_BYTES, frames * ATTACHMENT_FRAME_BYTES));
}

/**
 * Encrypts `source` under a fresh key and uploads it; resolves once the server holds the whole
 * blob. Memory: two pieces (see MAX_UPLOAD_PIECE_BYTES), whatever the file size.
 */
export async function uploadAttachment(api: AttachmentApi, crypto: AttachmentCrypto, source: PlaintextSource, options: UploadOptions = {}): Promise<UploadedAttachment> {
  const { signal } = options;
  const sleep = options.sleep ?? abortableSleep;
  const size = source.size;
  const limits = await api.limits(signal);
  if (size > limits.maxBytes) {
    throw new ClientError('SERVER', `cannot upload the file: it is ${size} bytes, and this server accepts files up to ${limits.maxBytes} bytes`, {
      serverCode: 'ATTACHMENT_TOO_LARGE',
      status: 413,
    });
  }
  const blobLength = attachmentBlobLength(size);

  let handle: UploadHandle | undefined;
  let offset = 0;
  if (options.resume !== undefined && options.resume.key.length === ATTACHMENT_KEY_BYTES) {
    try {
      const st = await api.status(options.resume.id, signal);
      if (st.length === blobLength) {
        handle = options.resume;
        offset = st.received;
      }
    } catch (e) {
      if (!(isClientError(e) && e.code === 'SERVER' && e.serverCode === 'NOT_FOUND')) throw e;
    }
  }
  if (handle === undefined) {
    const created = await api.create(blobLength, signal);
    handle = { id: created.id, key: crypto.randomBytes(ATTACHMENT_KEY_BYTES) };
    await options.onCreated?.(handle);
  }
  const { id, key } = handle;
  options.onProgress?.(offset, blobLength);

  // Two piece buffers: the next piece is encrypted while the last one is on its way. Only one
  // piece is ever in flight (the server lets a newer piece for a blob end an older one).
  const buffers = [new Uint8Array(pieceBytesFor(blobLength)), new Uint8Array(pieceBytesFor(blobLength))] as const;
  let failures = 0;
  try {
    for (;;) {
      let inFlight: Promise<void> | undefined;
      try {
        // Everything before `offset` is on the server: encrypt from the chunk it falls in, and
        // drop the part of that chunk already sent. Earlier chunks are only hashed (for the digest).
        const enc = await AttachmentEncryption.start(crypto, key, size, Math.min(Math.floor(offset / ATTACHMENT_FRAME_BYTES), Math.max(0, Math.ceil(blobLength / ATTACHMENT_FRAME_BYTES) - 1)));
        let skip = offset - enc.fromChunk * ATTACHMENT_FRAME_BYTES;
        let buffer: Uint8Array<ArrayBuffer> = buffers[0];
        let filled = 0;
        let next = offset;
        const send = async (piece: Uint8Array<ArrayBuffer>, at: number) => {
          const st = await api.put(id, at, piece, signal);
          if (st.received !== at + piece.length) throw new ClientError('BAD_RESPONSE', 'the server stored another amount than was sent');
          offset = st.received;
          failures = 0;
          options.onProgress?.(offset, blobLength);
        };
        const flush = async () => {
          await inFlight;
          inFlight = send(buffer.subarray(0, filled), next);
          // Handled where it is awaited; this keeps a failure meanwhile from counting as unhandled.
          inFlight.catch(() => undefined);
          next += filled;
          buffer = buffer === buffers[0] ? buffers[1] : buffers[0];
          filled = 0;
        };
        for await (const frame of enc.frames(source.read())) {
          if (signal?.aborted) throw new ClientError('CANCELLED', 'cancelled');
          for (let at = Math.min(skip, frame.length); at < frame.length; ) {
            const take = Math.min(buffer.length - filled, frame.length - at);
            buffer.set(frame.subarray(at, at + take), filled);
            filled += take;
            at += take;
            if (filled === buffer.length) await flush();
          }
          skip = Math.max(0, skip - frame.length);
        }
        if (filled > 0) await flush();
        await inFlight;
        if (offset !== blobLength) throw new ClientError('BAD_RESPONSE', 'the upload ended short of the blob length');
        return { id, key, digest: enc.digest, size };
      } catch (e) {
        // A piece still on its way must settle before anything else is sent for this blob.
        await inFlight?.catch(() => undefined);
        if (signal?.aborted || (isClientError(e) && e.code === 'CANCELLED')) throw new ClientError('CANCELLED', 'the upload was cancelled');
        if (!isRetriableTransferError(e) || ++failures >= MAX_UPLOAD_ATTEMPTS) throw e;
        await sleep(backoffDelay(failures - 1, options.backoff ?? DEFAULT_BACKOFF), signal);
        offset = await statusWithRetries(api, id, signal, () => ++failures < MAX_UPLOAD_ATTEMPTS, (ms) => sleep(ms, signal), options.backoff);
      }
    }
  } catch (e) {
    if (isClientError(e) && e.code === 'CANCELLED') await api.delete(id).catch(() => undefined);
    throw e;
  }
}

/** The upload's stored offset, asking again (within the attempt budget) while the server is unreachable. */
async function statusWithRetries(
  api: AttachmentApi,
  id: string,
  signal: AbortSignal | undefined,
  another: () => boolean,
  sleep: (ms: number) => Promise<void>,
  backoff: BackoffPolicy | undefined,
): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await api.status(id, signal)).received;
    } catch (e) {
      if (signal?.aborted || !isRetriableTransferError(e) || !another()) throw e;
      await sleep(backoffDelay(attempt, backoff ?? DEFAULT_BACKOFF));
    }
  }
}
