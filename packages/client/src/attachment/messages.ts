/**
 * Files in conversations: the SDK's side of the attachment pointer (pointer.ts).
 *
 * Sending a file is two steps under one history message. The message is stored first, as
 * `uploading`, with the file's name, type and size (and an image's thumbnail); the file is then
 * encrypted and uploaded (upload.ts), the reserved blob and its key noted in the message as soon
 * as the server gave an id, so an interrupted upload continues where it stopped. Once the blob is
 * complete the message gets the full pointer and goes through the outbox like any text message:
 * `queued`, then `sent`. An upload that fails or is cancelled leaves the message `failed`, and
 * `retry` continues it (from the file this process still holds, or one passed again).
 *
 * A message left `uploading` by a process that ended is shown as `failed` (nothing is uploading
 * it): `present` says so without a write. Sending the same file again with the same `resumeKey`
 * (the CLI passes the file's path, size and modification time) continues that message rather
 * than starting another.
 *
 * Receiving needs nothing here: the inbox stores the pointer with the message. `download`
 * fetches, checks and decrypts it; nothing unverified leaves it as the file (download.ts).
 */
import { ClientError, isClientError } from '../errors.js';
import { fromBase64, toBase64, toHex } from '../bytes.js';
import type { Core } from '../core.js';
import { encodeEnvelope, ENVELOPE_VERSION, MAX_ENVELOPE_BYTES } from '../envelope.js';
import { contactOf, messageError, type ConversationId, type History, type HistoryMessage, type MessageMeta } from '../history.js';
import { MESSAGE_ID_BYTES, type Outbox, type SendResult } from '../outbox.js';
import { checkText, describeTextProblem } from '../text.js';
import type { AttachmentApi } from './blob-api.js';
import { ATTACHMENT_DIGEST_BYTES, ATTACHMENT_KEY_BYTES } from './cipher.js';
import type { AttachmentCrypto } from './crypto.js';
import { downloadAttachment, downloadAttachmentBlob, type BlobReference, type DownloadOptions } from './download.js';
import { safeFileName } from './file-name.js';
import {
  isImageType,
  MAX_IMAGE_DIMENSION,
  MAX_LOCAL_NOTE_LENGTH,
  MAX_POINTER_FILE_BYTES,
  MAX_THUMBNAIL_BYTES,
  normalizeContentType,
  pointerOf,
  type AttachmentInfo,
  type StoredAttachment,
} from './pointer.js';
import { uploadAttachment, type PlaintextSource, type UploadHandle } from './upload.js';

/** Newest messages of a conversation looked through for an interrupted upload of the same file. */
export const MAX_RESUME_SCAN = 200;

export interface SendFileOptions {
  /** The file's name as the user knows it (a path's last part); made safe before it is sent. */
  name: string;
  /** MIME type; normalized (application/octet-stream when unknown). */
  type?: string;
  /** Text sent with the file. */
  caption?: string;
  /** Images: a small JPEG preview (at most MAX_THUMBNAIL_BYTES) and the image's size in pixels. */
  thumbnail?: Uint8Array;
  width?: number;
  height?: number;
  /**
   * Identifies the source across runs (the CLI: path, size and modification time). An earlier
   * upload of the same key to the same conversation that did not finish is continued instead of
   * starting a new message.
   */
  resumeKey?: string;
  signal?: AbortSignal;
  /** Blob bytes on the server, of `total`. */
  onProgress?: (sent: number, total: number) => void;
  /** The message as stored, before a byte is uploaded (to show it, with progress, at once). */
  onStarted?: (message: HistoryMessage) => void;
}

export interface TransferOptions {
  signal?: AbortSignal;
  onProgress?: (sent: number, total: number) => void;
}

export interface AttachmentMessagesOptions {
  core: Core;
  history: History;
  outbox: Outbox;
  api: () => AttachmentApi;
  crypto: AttachmentCrypto;
  /** Sends a group message whose file is uploaded (group/groups.ts sendStored). */
  sendToGroup: (conversation: ConversationId, seq: number, change: (m: MessageMeta) => MessageMeta) => Promise<SendResult>;
}

interface Active {
  controller: AbortController;
  promise: Promise<SendResult>;
}

const key = (conversation: ConversationId, seq: number): string => `${conversation}#${seq}`;

/** The file's record without the local notes of an upload in progress. */
function finished(file: StoredAttachment, up: { id: string; key: Uint8Array; digest: Uint8Array }): StoredAttachment {
  const next: StoredAttachment = { ...file, id: up.id, key: toBase64(up.key), digest: toBase64(up.digest) };
  delete next.up;
  delete next.upKey;
  return next;
}

export class AttachmentMessages {
  readonly #o: AttachmentMessagesOptions;
  /** Uploads running now, in this client. */
  readonly #active = new Map<string, Active>();
  /** Sources of messages sent from this process, for `retry` without passing the file again. */
  readonly #sources = new Map<string, PlaintextSource>();

  constructor(o: AttachmentMessagesOptions) {
    this.#o = o;
  }

  /** Cancels every upload of this process (the client is closing); their messages become `failed`. */
  close(): void {
    for (const a of this.#active.values()) a.controller.abort();
  }

  /** Whether this process is uploading the message's file now. */
  isUploading(conversation: ConversationId, seq: number): boolean {
    return this.#active.has(key(conversation, seq));
  }

  /** A message as apps see it: an upload that no process runs any more is `failed`, and retry continues it. */
  present(m: HistoryMessage): HistoryMessage {
    if (m.direction !== 'out' || m.state !== 'uploading' || this.isUploading(m.conversation, m.seq)) return m;
    return { ...m, state: 'failed', error: messageError('CANCELLED', 'the upload was interrupted; retry to continue it') };
  }

  /** Cancels an upload in progress (its message becomes `failed`, retry continues it). */
  cancel(conversation: ConversationId, seq: number): boolean {
    const a = this.#active.get(key(conversation, seq));
    a?.controller.abort();
    return a !== undefined;
  }

  /**
   * Stores a message carrying `source` in `conversation`, uploads the file and sends the pointer.
   * Resolves once the server stored the message for every device (as `send` does).
   */
  async send(conversation: ConversationId, source: PlaintextSource, o: SendFileOptions): Promise<SendResult> {
    const contact = this.#recipient(conversation);
    const a = this.#o.core.account;
    if (contact === a.username) throw new ClientError('INVALID_ARGUMENT', 'cannot send a message to yourself');
    const file = this.#describe(source, o);
    const caption = o.caption ?? '';
    this.#checkEnvelope(file, caption);
    if (o.resumeKey !== undefined) {
      const earlier = await this.#interrupted(conversation, o.resumeKey, source.size);
      if (earlier !== undefined) return this.retry(conversation, earlier, source, o);
    }
    const stored = await this.#o.core.mutate((t) => {
      const meta: MessageMeta = {
        d: 'out',
        id: toHex(this.#o.core.backend.randomBytes(MESSAGE_ID_BYTES)),
        from: a.username,
        dev: a.deviceId,
        sentAt: this.#o.core.now(),
        st: 'uploading',
        to: {},
        pend: 0,
        att: 0,
        file,
      };
      return this.#o.history.append(t, conversation, meta, caption);
    });
    this.#o.core.events.emit('outgoing', { ...stored });
    o.onStarted?.(stored);
    return this.#start(conversation, stored.seq, contact, source, o);
  }

  /**
   * Continues a file message that failed or was interrupted: from the blob already on the server
   * when there is one. `source` is needed when this process did not send it. A message whose
   * file is uploaded (the send itself failed) is for the outbox's retry, not this.
   */
  async retry(conversation: ConversationId, seq: number, source?: PlaintextSource, o: TransferOptions & { onStarted?: (m: HistoryMessage) => void } = {}): Promise<SendResult> {
    const contact = this.#recipient(conversation);
    const running = this.#active.get(key(conversation, seq));
    if (running !== undefined) return running.promise;
    const cur = await this.#o.history.message(this.#o.core.view(), conversation, seq);
    if (cur === undefined || cur.meta.d !== 'out' || cur.meta.file === undefined) throw new ClientError('INVALID_ARGUMENT', 'no such outgoing file');
    if (pointerOf(cur.meta.file) !== undefined) throw new ClientError('INVALID_ARGUMENT', 'the file is already uploaded');
    if (cur.meta.st !== 'failed' && cur.meta.st !== 'uploading') throw new ClientError('INVALID_ARGUMENT', 'only a failed upload can be retried');
    const src = source ?? this.#sources.get(key(conversation, seq));
    if (src === undefined) throw new ClientError('INVALID_ARGUMENT', 'the file is no longer at hand here; send it again');
    if (src.size !== cur.meta.file.size) throw new ClientError('INVALID_ARGUMENT', 'that is not the same file (its size differs)');
    const m = await this.#o.core.mutate((t) =>
      this.#o.history.update(t, conversation, seq, (x) => {
        const next: MessageMeta = { ...x, st: 'uploading' };
        delete next.err;
        return next;
      }),
    );
    if (m !== undefined) {
      this.#o.core.events.emit('outgoing', { ...m });
      o.onStarted?.(m);
    }
    return this.#start(conversation, seq, contact, src, o);
  }

  #start(conversation: ConversationId, seq: number, contact: string | undefined, source: PlaintextSource, o: TransferOptions): Promise<SendResult> {
    const k = key(conversation, seq);
    this.#sources.set(k, source);
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    if (o.signal?.aborted) controller.abort();
    const promise = this.#upload(conversation, seq, contact, source, controller.signal, o.onProgress).finally(() => {
      o.signal?.removeEventListener('abort', onAbort);
      if (this.#active.get(k)?.controller === controller) this.#active.delete(k);
    });
    this.#active.set(k, { controller, promise });
    return promise;
  }

  async #upload(conversation: ConversationId, seq: number, contact: string | undefined, source: PlaintextSource, signal: AbortSignal, onProgress?: (sent: number, total: number) => void): Promise<SendResult> {
    const cur = await this.#o.history.message(this.#o.core.view(), conversation, seq);
    const file = cur?.meta.file;
    if (file === undefined) throw new ClientError('INVALID_ARGUMENT', 'the message is no longer in history');
    const resume: UploadHandle | undefined =
      file.up !== undefined && file.upKey !== undefined ? { id: file.up, key: fromBase64(file.upKey) ?? new Uint8Array(0) } : undefined;
    let uploaded;
    try {
      uploaded = await uploadAttachment(this.#o.api(), this.#o.crypto, source, {
        signal,
        ...(onProgress ? { onProgress } : {}),
        ...(resume ? { resume } : {}),
        onCreated: async (h) => {
          await this.#o.core.mutate((t) =>
            this.#o.history.update(t, conversation, seq, (x) => (x.file === undefined ? x : { ...x, file: { ...x.file, up: h.id, upKey: toBase64(h.key) } })),
          );
        },
      });
    } catch (e) {
      const err = isClientError(e) ? e : new ClientError('NETWORK', 'the upload failed');
      const updated = await this.#o.core
        .mutate((t) =>
          this.#o.history.update(t, conversation, seq, (x) => {
            const next: MessageMeta = { ...x, st: 'failed', err: messageError(err.code, err.code === 'CANCELLED' ? 'the upload was cancelled; retry to continue it' : err.message, err.serverCode) };
            // A cancelled upload deleted its blob: a retry starts a fresh one.
            if (err.code === 'CANCELLED' && next.file !== undefined) {
              next.file = { ...next.file };
              delete next.file.up;
              delete next.file.upKey;
            }
            return next;
          }),
        )
        .catch(() => undefined);
      if (updated !== undefined) this.#o.core.events.emit('outgoing', { ...updated });
      throw err;
    }
    this.#sources.delete(key(conversation, seq));
    const complete = (x: MessageMeta): MessageMeta => (x.file === undefined ? x : { ...x, file: finished(x.file, uploaded) });
    if (contact === undefined) return this.#o.sendToGroup(conversation, seq, complete);
    return this.#o.outbox.sendStored(conversation, seq, contact, complete);
  }

  /** The contact of a two-person conversation, or undefined for a group (`g:<id>`); anything else is refused. */
  #recipient(conversation: ConversationId): string | undefined {
    const contact = contactOf(conversation);
    if (contact !== undefined || conversation.startsWith('g:')) return contact;
    throw new ClientError('INVALID_ARGUMENT', 'files go to a contact or a group');
  }

  /** The stored form of a file about to be sent, checked. */
  #describe(source: PlaintextSource, o: SendFileOptions): StoredAttachment {
    if (!Number.isSafeInteger(source.size) || source.size < 0) throw new ClientError('INVALID_ARGUMENT', 'the file has no size');
    if (source.size > MAX_POINTER_FILE_BYTES) throw new ClientError('INVALID_ARGUMENT', `the file is ${source.size} bytes; tacit sends files up to ${MAX_POINTER_FILE_BYTES} bytes`);
    const type = normalizeContentType(o.type);
    const file: StoredAttachment = { name: safeFileName(o.name), type, size: source.size };
    if ((o.width === undefined) !== (o.height === undefined)) throw new ClientError('INVALID_ARGUMENT', 'an image size needs both width and height');
    if (o.width !== undefined && o.height !== undefined) {
      const ok = (n: number) => Number.isSafeInteger(n) && n >= 1 && n <= MAX_IMAGE_DIMENSION;
      if (!isImageType(type)) throw new ClientError('INVALID_ARGUMENT', 'only an image has a width and height');
      if (!ok(o.width) || !ok(o.height)) throw new ClientError('INVALID_ARGUMENT', `an image is 1 to ${MAX_IMAGE_DIMENSION} pixels wide and high`);
      file.width = o.width;
      file.height = o.height;
    }
    if (o.thumbnail !== undefined) {
      if (!isImageType(type)) throw new ClientError('INVALID_ARGUMENT', 'only an image has a thumbnail');
      if (o.thumbnail.length === 0 || o.thumbnail.length > MAX_THUMBNAIL_BYTES) throw new ClientError('INVALID_ARGUMENT', `a thumbnail is 1 to ${MAX_THUMBNAIL_BYTES} bytes`);
      if (o.thumbnail[0] !== 0xff || o.thumbnail[1] !== 0xd8 || o.thumbnail[2] !== 0xff) throw new ClientError('INVALID_ARGUMENT', 'a thumbnail is a JPEG image');
      file.thumb = toBase64(o.thumbnail);
    }
    if (o.resumeKey !== undefined) {
      if (o.resumeKey.length > MAX_LOCAL_NOTE_LENGTH) throw new ClientError('INVALID_ARGUMENT', 'the resume key is too long');
      file.rk = o.resumeKey;
    }
    return file;
  }

  /** The caption and the pointer (at its largest) must fit one envelope. */
  #checkEnvelope(file: StoredAttachment, caption: string): void {
    if (caption !== '') {
      const p = checkText(caption);
      if (p !== undefined) throw new ClientError('INVALID_ARGUMENT', describeTextProblem(p));
    }
    const probe = {
      id: '0'.repeat(48),
      key: new Uint8Array(ATTACHMENT_KEY_BYTES),
      digest: new Uint8Array(ATTACHMENT_DIGEST_BYTES),
      size: file.size,
      name: file.name,
      type: file.type,
      ...(file.thumb !== undefined ? { thumbnail: fromBase64(file.thumb) ?? new Uint8Array(0) } : {}),
      ...(file.width !== undefined && file.height !== undefined ? { width: file.width, height: file.height } : {}),
    };
    const bytes = encodeEnvelope({ v: ENVELOPE_VERSION, id: 'f'.repeat(32), text: caption, sentAt: Number.MAX_SAFE_INTEGER, file: probe }).length;
    if (bytes > MAX_ENVELOPE_BYTES) throw new ClientError('INVALID_ARGUMENT', `the caption and the file's details are too large for one message (${Math.ceil(bytes / 1024)} KiB; at most ${MAX_ENVELOPE_BYTES / 1024} KiB): shorten the caption`);
  }

  /** An earlier, unfinished upload of the same source to the conversation (newest first). */
  async #interrupted(conversation: ConversationId, resumeKey: string, size: number): Promise<number | undefined> {
    for (const m of (await this.#o.history.page(conversation, { limit: MAX_RESUME_SCAN })).reverse()) {
      if (m.direction !== 'out' || m.attachment === undefined || m.attachment.uploaded || m.attachment.size !== size) continue;
      if (m.state !== 'failed' && !(m.state === 'uploading' && !this.isUploading(conversation, m.seq))) continue;
      const rec = await this.#o.history.message(this.#o.core.view(), conversation, m.seq);
      if (rec?.meta.file?.rk === resumeKey) return m.seq;
    }
    return undefined;
  }

  // ---- receiving ----

  /** What a download needs, and the file's details; throws INVALID_ARGUMENT when the message has no file on the server. */
  async reference(conversation: ConversationId, seq: number): Promise<{ ref: BlobReference; info: AttachmentInfo }> {
    const cur = await this.#o.history.message(this.#o.core.view(), conversation, seq);
    const file = cur?.meta.file;
    if (file === undefined) throw new ClientError('INVALID_ARGUMENT', 'that message has no file');
    const p = pointerOf(file);
    if (p === undefined) throw new ClientError('INVALID_ARGUMENT', 'that file is not uploaded yet');
    const info: AttachmentInfo = { name: p.name, type: p.type, size: p.size, uploaded: true, ...(file.saved !== undefined ? { savedAs: file.saved } : {}) };
    return { ref: { id: p.id, key: p.key, digest: p.digest, size: p.size }, info };
  }

  /** The file's bytes, checked chunk by chunk; the last ones only once the digest matched. */
  async *download(conversation: ConversationId, seq: number, options: DownloadOptions = {}): AsyncGenerator<Uint8Array> {
    const { ref } = await this.reference(conversation, seq);
    yield* downloadAttachment(this.#o.api(), this.#o.crypto, ref, options);
  }

  /** The whole file as a Blob, made only once every byte checked out. */
  async blob(conversation: ConversationId, seq: number, options: DownloadOptions = {}): Promise<Blob> {
    const { ref, info } = await this.reference(conversation, seq);
    return downloadAttachmentBlob(this.#o.api(), this.#o.crypto, ref, info.type, options);
  }

  /** Notes where this device saved the file (shown by history). */
  async markSaved(conversation: ConversationId, seq: number, where: string): Promise<void> {
    if (where.length > MAX_LOCAL_NOTE_LENGTH) return;
    await this.#o.core.mutate((t) =>
      this.#o.history.update(t, conversation, seq, (x) => (x.file === undefined ? x : { ...x, file: { ...x.file, saved: where } })),
    );
  }
}
