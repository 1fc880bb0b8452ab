/**
 * The attachment blob store: encrypted blobs (the server cannot read them) uploaded in pieces and
 * read back in byte ranges. Two implementations pass one conformance suite
 * (test/blob-store-conformance.ts): files under the data directory (`FsBlobStore`, one node, the
 * default) and PostgreSQL (`PostgresBlobStore`, several nodes sharing a database).
 *
 * Memory stays flat whatever the blob size: bytes go from the request to storage, and from
 * storage to the response, a piece at a time, with backpressure both ways.
 *
 * A blob is reserved with its final length, filled by appends at its current end (`received`),
 * and complete when `received === length`. Only a complete blob can be read. Every blob has an
 * expiry: an unfinished upload's is its creation plus the upload TTL; completing it moves it to
 * completion plus the attachment TTL. The server's sweeper calls `expire`.
 */

export interface BlobInfo {
  id: string;
  /** The uploading account (folded username). */
  owner: string;
  /** Declared length: the whole blob. */
  length: number;
  /** Bytes stored so far, from offset 0. */
  received: number;
  createdAt: number;
  expiresAt: number;
}

export interface NewBlob {
  id: string;
  owner: string;
  length: number;
  createdAt: number;
  expiresAt: number;
}

export type AppendResult =
  | { ok: true; received: number }
  /** No such blob (never made, deleted or expired); nothing written. */
  | { ok: false; code: 'NOT_FOUND' }
  /** `offset` is not the blob's `received`; nothing written. */
  | { ok: false; code: 'OFFSET_MISMATCH'; received: number };

export interface AppendOptions {
  /** The blob's expiry once this append completes it. */
  completedExpiresAt: number;
  /** Current time: an expired blob is NOT_FOUND. */
  now: number;
}

export interface BlobStore {
  /**
   * Reserves a blob, unless the owner's unexpired blobs (finished or not, by declared length)
   * plus this one would exceed `quota` bytes. Checked and reserved atomically: concurrent creates
   * by one owner never exceed the quota together.
   */
  create(blob: NewBlob, quota: number, now: number): Promise<'ok' | 'QUOTA_EXCEEDED'>;
  /** The blob, or undefined if there is none or it expired at `now`. */
  get(id: string, now: number): Promise<BlobInfo | undefined>;
  /**
   * Writes the bytes `source` yields at `offset`, which must be the blob's `received`. Never
   * writes past `length`: a source that yields more is an error, after the bytes that fit.
   * Bytes are stored as they arrive; if `source` fails midway (the client went away), what
   * arrived before is kept and counted, and the source's error is rethrown. The result counts
   * only durably stored bytes when it returns. Appends to one blob must not run concurrently
   * (the routes serialize them per blob); across nodes, the offset check decides.
   */
  append(id: string, offset: number, source: AsyncIterable<Uint8Array>, options: AppendOptions): Promise<AppendResult>;
  /** Bytes [start, end) of a complete blob, a piece at a time, read as the consumer pulls. */
  read(id: string, start: number, end: number): AsyncIterable<Uint8Array>;
  /** Deletes a blob (and what it received); false if there was none. */
  delete(id: string): Promise<boolean>;
  /** Declared bytes of the owner's unexpired blobs. */
  usage(owner: string, now: number): Promise<number>;
  /** Deletes blobs expired at `now`; returns how many. */
  expire(now: number): Promise<number>;
  close(): Promise<void>;
}

/** A source yielding more than `length - offset` bytes. */
export class BlobOverflowError extends Error {
  constructor() {
    super('more bytes than the blob has room for');
    this.name = 'BlobOverflowError';
  }
}
