/**
 * Attachments: files travel as encrypted blobs in a blob store, and only a pointer (blob id, key,
 * digest, size, name, type) travels inside the end-to-end encrypted message. The server stores
 * bytes it cannot read and never learns a name, a type or an exact size.
 *
 * Blob format (docs/PROTOCOL.md, "Attachments"): the plaintext, padded with zero bytes to a size
 * bucket (`paddedAttachmentLength`), is cut into chunks of ATTACHMENT_CHUNK_BYTES (the last one
 * may be shorter); each chunk is sealed with AES-256-GCM under the attachment's own random key,
 * its nonce the chunk's index and a final-chunk flag, and the blob is the concatenation of the
 * sealed chunks (each ATTACHMENT_TAG_BYTES longer than its chunk). The arithmetic lives here
 * because the server needs it too: its cap on a blob is the blob length of the largest file it
 * accepts.
 *
 * Routes (all authenticated as a device; see routes.ts and docs/API.md):
 *   GET    /v1/attachments                      AttachmentLimitsResponse (caps, quota, usage)
 *   POST   /v1/attachments                      CreateAttachmentRequest → 201 CreateAttachmentResponse
 *   GET    /v1/attachments/:id/upload           AttachmentUploadStatus (the uploader only)
 *   PATCH  /v1/attachments/:id                  bytes at `Upload-Offset` → 200 AttachmentUploadStatus
 *   GET    /v1/attachments/:id                  the blob (Range supported) once complete
 *   DELETE /v1/attachments/:id                  204 (the uploader only)
 */
import { KiB } from './limits.js';
import { integer, object, string, type Validator } from './validate.js';

/** Plaintext bytes per sealed chunk. Part of the blob format: never change it for a format version. */
export const ATTACHMENT_CHUNK_BYTES = 64 * KiB;

/** AES-GCM tag bytes after each chunk. */
export const ATTACHMENT_TAG_BYTES = 16;

/** A full sealed chunk on the wire. */
export const ATTACHMENT_FRAME_BYTES = ATTACHMENT_CHUNK_BYTES + ATTACHMENT_TAG_BYTES;

/**
 * The smallest padded size (Signal's): every file below it looks the same size. Above it, sizes
 * grow in steps of 5% (`paddedAttachmentLength`), so the server learns a file's size to within 5%
 * and never exactly, for at most 5% more bytes stored and sent.
 */
export const ATTACHMENT_MIN_PADDED_BYTES = 541;

/**
 * The largest plaintext length the format's arithmetic is defined for (1 TiB): far above any
 * configured cap, and low enough that every step below is exact in a double.
 */
export const ATTACHMENT_FORMAT_MAX_BYTES = 2 ** 40;

/**
 * The padded length of a plaintext of `size` bytes: the smallest bucket ≥ size, where buckets are
 * 541, then each the previous × 21/20 rounded down. Integer arithmetic (not Signal's
 * `1.05 ** ceil(log(size) / log(1.05))`), so every engine computes the same buckets.
 */
export function paddedAttachmentLength(size: number): number {
  if (!Number.isSafeInteger(size) || size < 0 || size > ATTACHMENT_FORMAT_MAX_BYTES) throw new RangeError('attachment size out of range');
  let bucket = ATTACHMENT_MIN_PADDED_BYTES;
  while (bucket < size) bucket = Math.floor((bucket * 21) / 20);
  return bucket;
}

/** Sealed chunks of a padded plaintext of `padded` bytes (at least one). */
export function attachmentChunkCount(padded: number): number {
  return Math.max(1, Math.ceil(padded / ATTACHMENT_CHUNK_BYTES));
}

/** Length of the blob that holds a file of `size` plaintext bytes. */
export function attachmentBlobLength(size: number): number {
  const padded = paddedAttachmentLength(size);
  return padded + ATTACHMENT_TAG_BYTES * attachmentChunkCount(padded);
}

/** Random bytes in an attachment id: 192 bits, beyond guessing. */
export const ATTACHMENT_ID_BYTES = 24;

/** An attachment id: ATTACHMENT_ID_BYTES random bytes as lower-case hex (safe as a file name anywhere). */
export const ATTACHMENT_ID_PATTERN = /^[0-9a-f]{48}$/;

export const attachmentId: Validator<string> = string({ min: ATTACHMENT_ID_BYTES * 2, max: ATTACHMENT_ID_BYTES * 2, pattern: ATTACHMENT_ID_PATTERN });

/** Largest blob length a request may declare (the server's own cap is far lower). */
const blobLength = integer(1, attachmentBlobLength(ATTACHMENT_FORMAT_MAX_BYTES));

/** POST /v1/attachments: reserve a blob of `length` bytes (the whole ciphertext). */
export interface CreateAttachmentRequest {
  length: number;
}
export const validateCreateAttachmentRequest: Validator<CreateAttachmentRequest> = object({ length: blobLength });

export interface CreateAttachmentResponse {
  id: string;
  /** Until then the upload must be complete, or it is deleted (ms since epoch). */
  expiresAt: number;
}
export const validateCreateAttachmentResponse: Validator<CreateAttachmentResponse> = object({ id: attachmentId, expiresAt: integer(0, Number.MAX_SAFE_INTEGER) });

/** Where an upload stands: `received` of `length` bytes; complete when they are equal. */
export interface AttachmentUploadStatus {
  length: number;
  received: number;
  /** When the blob (or the unfinished upload) is deleted, ms since epoch. */
  expiresAt: number;
}
export const validateAttachmentUploadStatus: Validator<AttachmentUploadStatus> = (v, path = '$') => {
  const r = uploadStatus(v, path);
  if (r.ok && r.value.received > r.value.length) return { ok: false, path: `${path}.received`, reason: 'more than length' };
  return r;
};
const uploadStatus = object({ length: blobLength, received: integer(0, Number.MAX_SAFE_INTEGER), expiresAt: integer(0, Number.MAX_SAFE_INTEGER) });

/** GET /v1/attachments: this server's attachment limits and the account's use of its quota. */
export interface AttachmentLimitsResponse {
  /** Largest file (plaintext bytes) the server accepts; its blob is attachmentBlobLength(maxBytes). */
  maxBytes: number;
  /** Blob bytes the account may hold at once (unexpired uploads, finished or not). */
  quotaBytes: number;
  /** Blob bytes the account holds now. */
  usedBytes: number;
  /** How long a finished blob stays downloadable, ms. */
  ttlMs: number;
}
export const validateAttachmentLimitsResponse: Validator<AttachmentLimitsResponse> = object({
  maxBytes: integer(0, ATTACHMENT_FORMAT_MAX_BYTES),
  quotaBytes: integer(0, Number.MAX_SAFE_INTEGER),
  usedBytes: integer(0, Number.MAX_SAFE_INTEGER),
  ttlMs: integer(0, Number.MAX_SAFE_INTEGER),
});

/** Request header of PATCH: the blob offset the body's first byte belongs at. */
export const UPLOAD_OFFSET_HEADER = 'upload-offset';

/** Content type of a PATCH body (raw ciphertext bytes). */
export const ATTACHMENT_CONTENT_TYPE = 'application/octet-stream';

/** Parses an `Upload-Offset` header value: a decimal integer without sign or leading zeros. */
export function parseUploadOffset(value: string | undefined): number | undefined {
  if (value === undefined || !/^(0|[1-9][0-9]{0,15})$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}
