/**
 * The attachment pointer: the content kind that carries a file inside an ordinary end-to-end
 * encrypted message (docs/PROTOCOL.md, "Attachment pointer"). The file itself is a blob on the
 * server (cipher.ts); the pointer says where it is and how to open and check it, and what the
 * file is called. It travels as the `file` member of the message envelope (envelope.ts), beside
 * the message's `text`, which is then the caption (possibly empty):
 *
 *   file = { id, key, digest, size, name, type, thumb?, width?, height? }
 *
 *   id      the blob id (48 lower-case hex digits)
 *   key     base64 of the 32-byte AES-256 key of this one file
 *   digest  base64 of SHA-256 of the file (unpadded)
 *   size    the file's length in bytes; the blob is padded to its bucket (@tacit/api
 *           paddedAttachmentLength), which the reader derives, so it is not sent
 *   name    the sender's file name (at most MAX_WIRE_NAME_BYTES); receivers only ever use
 *           safeFileName(name)
 *   type    a MIME type `type/subtype`, lower case, no parameters
 *   thumb   images only: base64 of a small JPEG preview (at most MAX_THUMBNAIL_BYTES)
 *   width, height  images only, together: pixels, 1..MAX_IMAGE_DIMENSION
 *
 * Nothing about conversations is in the pointer: a pairwise message and a group message
 * (`g:<id>`) carry it the same way.
 *
 * Decoding is strict and total: anything else (a hostile size, a name too long, a type with
 * parameters, base64 that is not canonical or a key of the wrong length) is a typed problem, the
 * message is dropped with an `undecryptable` event (reason BAD_ATTACHMENT), and the conversation
 * goes on. Unknown members are ignored, for later versions.
 *
 * In the local history the pointer is kept in the message record (StoredAttachment, sealed at
 * rest like the rest of the record), together with what only this device knows: the upload to
 * continue, and where a received file was saved.
 */
import { ATTACHMENT_ID_PATTERN } from '@tacit/api';
import { fromBase64, toBase64 } from '../bytes.js';
import { ATTACHMENT_DIGEST_BYTES, ATTACHMENT_KEY_BYTES } from './cipher.js';
import { safeFileName } from './file-name.js';
import { ownValue } from '../record-codec.js';

/**
 * Largest file a pointer may describe (4 GiB). Far above any server's cap (100 MiB by default);
 * a pointer claiming more is refused before anything is fetched or allocated for it.
 */
export const MAX_POINTER_FILE_BYTES = 4 * 1024 ** 3;

/** Longest file name a pointer may carry, in UTF-8 bytes (what file systems allow). */
export const MAX_WIRE_NAME_BYTES = 255;

/** Longest MIME type (RFC 6838 allows 127 characters on each side of the slash). */
export const MAX_CONTENT_TYPE_LENGTH = 255;

/**
 * Largest thumbnail, in bytes before base64. Enough for a clear 256-pixel JPEG preview, and small
 * enough that a thumbnail and the longest caption still fit one message envelope.
 */
export const MAX_THUMBNAIL_BYTES = 16 * 1024;

/** Largest image width or height a pointer may state, in pixels. */
export const MAX_IMAGE_DIMENSION = 65_535;

/** The type a file is sent as when its own type is unknown or not a valid MIME type. */
export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

/** RFC 6838 restricted names, lower case: `type/subtype`, no parameters. */
const CONTENT_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

/** A JPEG starts with SOI and a marker. */
const JPEG_MAGIC = [0xff, 0xd8, 0xff] as const;

/** An attachment pointer, decoded. */
export interface AttachmentPointer {
  readonly id: string;
  readonly key: Uint8Array;
  readonly digest: Uint8Array;
  readonly size: number;
  /** Already made safe (safeFileName): never a path, never empty. */
  readonly name: string;
  readonly type: string;
  readonly thumbnail?: Uint8Array;
  readonly width?: number;
  readonly height?: number;
}

/** What is wrong with a pointer, as a clause (lower case, no final period). */
export type PointerProblem = string;

const utf8Length = (s: string): number => new TextEncoder().encode(s).length;

/** Lone surrogates cannot be encoded faithfully (and are never part of a real name). */
function wellFormed(s: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/** Whether `type` is a content type a pointer may carry. */
export function isContentType(type: unknown): type is string {
  return typeof type === 'string' && type.length <= MAX_CONTENT_TYPE_LENGTH && CONTENT_TYPE.test(type);
}

/**
 * A content type as a sender should send it: lower case, parameters dropped (`text/plain;
 * charset=utf-8` → `text/plain`), DEFAULT_CONTENT_TYPE for anything that is not a MIME type.
 */
export function normalizeContentType(type: string | undefined): string {
  if (type === undefined) return DEFAULT_CONTENT_TYPE;
  const bare = (type.split(';')[0] ?? '').trim().toLowerCase();
  return isContentType(bare) ? bare : DEFAULT_CONTENT_TYPE;
}

export function isImageType(type: string): boolean {
  return type.startsWith('image/');
}

/** The content type for a file name's extension, for senders that know nothing better (the CLI). */
export function contentTypeFromName(name: string): string {
  const dot = name.lastIndexOf('.');
  const ext = dot >= 0 ? name.slice(dot + 1).toLowerCase() : '';
  return ownValue(EXTENSION_TYPES, ext) ?? DEFAULT_CONTENT_TYPE;
}

const EXTENSION_TYPES: Readonly<Record<string, string>> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  txt: 'text/plain',
  md: 'text/markdown',
  csv: 'text/csv',
  json: 'application/json',
  pdf: 'application/pdf',
  zip: 'application/zip',
  gz: 'application/gzip',
  tar: 'application/x-tar',
  mp3: 'audio/mpeg',
  mp4: 'video/mp4',
  webm: 'video/webm',
};

/** Image types shown inline from decrypted bytes (never SVG: it can carry script). */
export const INLINE_IMAGE_TYPES: ReadonlySet<string> = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

function isJpeg(b: Uint8Array): boolean {
  return b.length > JPEG_MAGIC.length && JPEG_MAGIC.every((x, i) => b[i] === x);
}

function isDimension(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 && v <= MAX_IMAGE_DIMENSION;
}

function bytesOf(v: unknown, length: number | { max: number }): Uint8Array | undefined {
  if (typeof v !== 'string') return undefined;
  const max = typeof length === 'number' ? length : length.max;
  // Check the encoded length first: nothing larger than allowed is decoded.
  if (v.length > Math.ceil(max / 3) * 4) return undefined;
  const b = fromBase64(v);
  if (b === undefined) return undefined;
  if (typeof length === 'number' ? b.length !== length : b.length > max || b.length === 0) return undefined;
  return b;
}

/**
 * Checks the parts every pointer shares (name, type, size, thumbnail, dimensions), whether on the
 * wire or in a local record. Returns the problem, or undefined.
 */
function describeProblem(o: Record<string, unknown>): PointerProblem | undefined {
  const { size, name, type, thumb, width, height } = o;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return 'its size is not a byte count';
  if (size > MAX_POINTER_FILE_BYTES) return `it claims ${size} bytes, more than any file tacit accepts`;
  if (typeof name !== 'string' || name.length === 0) return 'it has no file name';
  if (name.length > MAX_WIRE_NAME_BYTES || utf8Length(name) > MAX_WIRE_NAME_BYTES) return `its file name is longer than ${MAX_WIRE_NAME_BYTES} bytes`;
  if (!wellFormed(name)) return 'its file name is not valid text';
  if (!isContentType(type)) return 'its content type is not a MIME type';
  if ((width === undefined) !== (height === undefined)) return 'it gives a width without a height, or the reverse';
  if (width !== undefined && (!isDimension(width) || !isDimension(height))) return `its image dimensions are not 1 to ${MAX_IMAGE_DIMENSION} pixels`;
  if ((width !== undefined || thumb !== undefined) && !isImageType(type)) return 'it has image dimensions or a thumbnail but is not an image';
  if (thumb !== undefined) {
    const t = bytesOf(thumb, { max: MAX_THUMBNAIL_BYTES });
    if (t === undefined) return `its thumbnail is not base64 of 1 to ${MAX_THUMBNAIL_BYTES} bytes`;
    if (!isJpeg(t)) return 'its thumbnail is not a JPEG image';
  }
  return undefined;
}

/**
 * Decodes the `file` member of an envelope. Total: returns the pointer, or the problem with it
 * (never throws).
 */
export function decodeAttachmentPointer(v: unknown): { ok: true; pointer: AttachmentPointer } | { ok: false; problem: PointerProblem } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, problem: 'it is not an object' };
  const o = v as Record<string, unknown>;
  if (typeof o['id'] !== 'string' || !ATTACHMENT_ID_PATTERN.test(o['id'])) return { ok: false, problem: 'its blob id is malformed' };
  const key = bytesOf(o['key'], ATTACHMENT_KEY_BYTES);
  if (key === undefined) return { ok: false, problem: `its key is not base64 of ${ATTACHMENT_KEY_BYTES} bytes` };
  const digest = bytesOf(o['digest'], ATTACHMENT_DIGEST_BYTES);
  if (digest === undefined) return { ok: false, problem: `its digest is not base64 of ${ATTACHMENT_DIGEST_BYTES} bytes` };
  const problem = describeProblem(o);
  if (problem !== undefined) return { ok: false, problem };
  const thumbnail = o['thumb'] === undefined ? undefined : fromBase64(o['thumb'] as string);
  return {
    ok: true,
    pointer: {
      id: o['id'],
      key,
      digest,
      size: o['size'] as number,
      name: safeFileName(o['name'] as string),
      type: o['type'] as string,
      ...(thumbnail !== undefined ? { thumbnail } : {}),
      ...(o['width'] !== undefined ? { width: o['width'] as number, height: o['height'] as number } : {}),
    },
  };
}

/** The `file` member of an envelope for `p` (plain JSON). */
export function encodeAttachmentPointer(p: AttachmentPointer): Record<string, unknown> {
  return {
    id: p.id,
    key: toBase64(p.key),
    digest: toBase64(p.digest),
    size: p.size,
    name: p.name,
    type: p.type,
    ...(p.thumbnail !== undefined ? { thumb: toBase64(p.thumbnail) } : {}),
    ...(p.width !== undefined && p.height !== undefined ? { width: p.width, height: p.height } : {}),
  };
}

// ---- in the local history ----

/**
 * An attachment as a message record keeps it: the pointer's members (base64 as on the wire;
 * `id`, `key` and `digest` only once the file is on the server), and this device's own notes.
 */
export interface StoredAttachment {
  name: string;
  type: string;
  size: number;
  thumb?: string;
  width?: number;
  height?: number;
  id?: string;
  key?: string;
  digest?: string;
  /** Outgoing, while uploading: the blob reserved and its key, to continue the upload. */
  up?: string;
  upKey?: string;
  /** Outgoing: the sender's own name for its source (a path), to find the upload again. */
  rk?: string;
  /** Where this device saved the file (Node: a path). */
  saved?: string;
}

/** Longest resume key and saved path kept in a record. */
export const MAX_LOCAL_NOTE_LENGTH = 4096;

export function isStoredAttachment(v: unknown): v is StoredAttachment {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  if (describeProblem(o) !== undefined) return false;
  const note = (x: unknown) => x === undefined || (typeof x === 'string' && x.length <= MAX_LOCAL_NOTE_LENGTH);
  const b64 = (x: unknown, n: number) => x === undefined || bytesOf(x, n) !== undefined;
  const id = (x: unknown) => x === undefined || (typeof x === 'string' && ATTACHMENT_ID_PATTERN.test(x));
  return id(o['id']) && b64(o['key'], ATTACHMENT_KEY_BYTES) && b64(o['digest'], ATTACHMENT_DIGEST_BYTES) && id(o['up']) && b64(o['upKey'], ATTACHMENT_KEY_BYTES) && note(o['rk']) && note(o['saved']);
}

/** A received pointer as a record keeps it. */
export function storedFromPointer(p: AttachmentPointer): StoredAttachment {
  const w = encodeAttachmentPointer(p) as unknown as StoredAttachment;
  return { ...w };
}

/** The complete pointer of a stored attachment, or undefined while it is not on the server. */
export function pointerOf(s: StoredAttachment): AttachmentPointer | undefined {
  if (s.id === undefined || s.key === undefined || s.digest === undefined) return undefined;
  const r = decodeAttachmentPointer(s);
  return r.ok ? r.pointer : undefined;
}

/** What apps see of an attachment (HistoryMessage.attachment): never the key. */
export interface AttachmentInfo {
  /** The file name, safe to show and to save under (safeFileName). */
  name: string;
  type: string;
  /** Bytes. */
  size: number;
  width?: number;
  height?: number;
  /** A small JPEG preview (images). */
  thumbnail?: Uint8Array;
  /** The file is on the server: it can be downloaded (outgoing: the upload finished). */
  uploaded: boolean;
  /** Where this device saved it (the CLI). */
  savedAs?: string;
}

export function attachmentInfo(s: StoredAttachment): AttachmentInfo {
  const thumbnail = s.thumb === undefined ? undefined : fromBase64(s.thumb);
  return {
    name: safeFileName(s.name),
    type: s.type,
    size: s.size,
    ...(s.width !== undefined && s.height !== undefined ? { width: s.width, height: s.height } : {}),
    ...(thumbnail !== undefined ? { thumbnail } : {}),
    uploaded: s.id !== undefined && s.key !== undefined && s.digest !== undefined,
    ...(s.saved !== undefined ? { savedAs: s.saved } : {}),
  };
}
