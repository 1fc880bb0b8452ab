/**
 * The attachment cipher: a file is encrypted under a fresh random key into a blob the server
 * stores, in a stream with constant memory, and checked chunk by chunk as it is decrypted.
 *
 * Format (docs/PROTOCOL.md, "Attachments"), after the STREAM construction (Hoang, Reyhanitabar,
 * Rogaway, Vizár 2015) as age uses it, with AES-256-GCM:
 *
 *   padded    = plaintext ‖ zero bytes, to paddedAttachmentLength(size) (@tacit/api)
 *   chunk i   = padded[i·64 KiB, (i+1)·64 KiB)            (the last one may be shorter, never empty)
 *   nonce i   = i as an 11-byte big-endian integer ‖ 0x01 if chunk i is the last, else 0x00
 *   blob      = AES-256-GCM(key, nonce 0, chunk 0) ‖ … ‖ AES-256-GCM(key, nonce n−1, chunk n−1)
 *               (each sealed chunk is its ciphertext then its 16-byte tag)
 *   digest    = SHA-256(plaintext)                          (unpadded; travels in the pointer)
 *
 * Binding the index into the nonce stops chunks being reordered, dropped or repeated; the final
 * flag stops truncation at a chunk boundary and anything appended after the last chunk. A reader
 * therefore knows a chunk is genuine before it uses it, and the whole file is genuine once the
 * chunk marked last has opened. The digest binds the pointer to one plaintext (GCM alone does not
 * commit to its key) and is what a user can compare (`sha256sum`).
 *
 * The key is used for this one attachment only, so a nonce never repeats under a key.
 */
import {
  ATTACHMENT_CHUNK_BYTES,
  ATTACHMENT_FRAME_BYTES,
  ATTACHMENT_TAG_BYTES,
  attachmentChunkCount,
  paddedAttachmentLength,
} from '@tacit/api';
import { bytesEqual } from '../bytes.js';
import { ClientError } from '../errors.js';
import type { AttachmentCrypto, ChunkCipher, IncrementalHash } from './crypto.js';

/** Bytes of an attachment key (AES-256). */
export const ATTACHMENT_KEY_BYTES = 32;

/** Bytes of an attachment digest (SHA-256 of the plaintext). */
export const ATTACHMENT_DIGEST_BYTES = 32;

/** The nonce of chunk `index`: an 11-byte big-endian counter, then the final-chunk flag. */
export function chunkNonce(index: number, final: boolean): Uint8Array {
  const nonce = new Uint8Array(12);
  let v = index;
  for (let i = 10; i >= 0 && v > 0; i--) {
    nonce[i] = v % 256;
    v = Math.floor(v / 256);
  }
  nonce[11] = final ? 1 : 0;
  return nonce;
}

function corrupt(reason: string): ClientError {
  return new ClientError('ATTACHMENT_CORRUPT', `the attachment does not check out: ${reason}`);
}

function checkKey(key: Uint8Array): void {
  if (key.length !== ATTACHMENT_KEY_BYTES) throw new ClientError('INVALID_ARGUMENT', `an attachment key is ${ATTACHMENT_KEY_BYTES} bytes`);
}

/**
 * Encrypts one file of `size` bytes into blob chunks. Feed it the whole plaintext from its first
 * byte; with `fromChunk` > 0 (resuming an upload) the chunks before it are only hashed, not
 * encrypted or produced. Memory: one chunk, whatever the file size.
 */
export class AttachmentEncryption {
  readonly size: number;
  readonly padded: number;
  readonly chunks: number;
  readonly fromChunk: number;
  readonly #cipher: ChunkCipher;
  readonly #hash: IncrementalHash;
  #digest: Uint8Array | undefined;
  #started = false;

  private constructor(cipher: ChunkCipher, hash: IncrementalHash, size: number, fromChunk: number) {
    this.#cipher = cipher;
    this.#hash = hash;
    this.size = size;
    this.padded = paddedAttachmentLength(size);
    this.chunks = attachmentChunkCount(this.padded);
    this.fromChunk = fromChunk;
  }

  static async start(crypto: AttachmentCrypto, key: Uint8Array, size: number, fromChunk = 0): Promise<AttachmentEncryption> {
    checkKey(key);
    if (!Number.isSafeInteger(size) || size < 0) throw new ClientError('INVALID_ARGUMENT', 'an attachment size is a non-negative integer');
    const chunks = attachmentChunkCount(paddedAttachmentLength(size));
    if (!Number.isSafeInteger(fromChunk) || fromChunk < 0 || fromChunk >= chunks) throw new ClientError('INVALID_ARGUMENT', 'no such chunk to resume from');
    return new AttachmentEncryption(await crypto.chunkCipher(key), crypto.sha256(), size, fromChunk);
  }

  /** SHA-256 of the plaintext, once `frames` has run to its end. */
  get digest(): Uint8Array {
    if (this.#digest === undefined) throw new ClientError('INVALID_ARGUMENT', 'the digest is known once the whole file was read');
    return this.#digest;
  }

  /**
   * The sealed chunks from `fromChunk` on (each ATTACHMENT_FRAME_BYTES, the last one possibly
   * shorter), pulled one at a time. `source` must yield exactly `size` bytes in all, in any
   * pieces; a file that grows or shrinks while it is read is refused.
   */
  async *frames(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.#started) throw new ClientError('INVALID_ARGUMENT', 'an encryption runs once');
    this.#started = true;
    const chunk = new Uint8Array(ATTACHMENT_CHUNK_BYTES);
    let filled = 0;
    let index = 0;
    let read = 0;
    const seal = async (): Promise<Uint8Array | undefined> => {
      const i = index++;
      const n = filled;
      filled = 0;
      if (i < this.fromChunk) return undefined;
      return this.#cipher.seal(chunkNonce(i, i === this.chunks - 1), chunk.subarray(0, n));
    };
    for await (const piece of source) {
      if (read + piece.length > this.size) throw new ClientError('INVALID_ARGUMENT', 'the file grew while it was read');
      this.#hash.update(piece);
      read += piece.length;
      for (let at = 0; at < piece.length; ) {
        const take = Math.min(ATTACHMENT_CHUNK_BYTES - filled, piece.length - at);
        if (index >= this.fromChunk) chunk.set(piece.subarray(at, at + take), filled);
        filled += take;
        at += take;
        if (filled === ATTACHMENT_CHUNK_BYTES) {
          const frame = await seal();
          if (frame !== undefined) yield frame;
        }
      }
    }
    if (read !== this.size) throw new ClientError('INVALID_ARGUMENT', 'the file shrank while it was read');
    this.#digest = this.#hash.digest();
    for (let padding = this.padded - this.size; padding > 0; ) {
      const take = Math.min(ATTACHMENT_CHUNK_BYTES - filled, padding);
      chunk.fill(0, filled, filled + take);
      filled += take;
      padding -= take;
      if (filled === ATTACHMENT_CHUNK_BYTES) {
        const frame = await seal();
        if (frame !== undefined) yield frame;
      }
    }
    if (filled > 0) {
      const frame = await seal();
      if (frame !== undefined) yield frame;
    }
  }
}

/**
 * Decrypts and checks one blob against the pointer's size and digest. Every chunk is
 * authenticated before its bytes are produced, but the file as a whole is genuine only when
 * `plaintext` has run to its end without throwing: until then, keep what it produced out of
 * sight (a temporary file, unassembled Blob parts). Memory: two sealed chunks.
 *
 * Throws ATTACHMENT_CORRUPT for a chunk that does not authenticate (tampered, reordered, or not
 * this key), a truncated blob, a blob longer than the size allows (at most the size's padding
 * bucket), non-zero padding, or a digest that differs.
 */
export class AttachmentDecryption {
  readonly size: number;
  readonly #cipher: ChunkCipher;
  readonly #hash: IncrementalHash;
  readonly #digest: Uint8Array;
  readonly #maxPadded: number;
  #started = false;

  private constructor(cipher: ChunkCipher, hash: IncrementalHash, size: number, digest: Uint8Array) {
    this.#cipher = cipher;
    this.#hash = hash;
    this.size = size;
    this.#digest = digest;
    this.#maxPadded = paddedAttachmentLength(size);
  }

  static async start(crypto: AttachmentCrypto, key: Uint8Array, size: number, digest: Uint8Array): Promise<AttachmentDecryption> {
    checkKey(key);
    if (digest.length !== ATTACHMENT_DIGEST_BYTES) throw new ClientError('INVALID_ARGUMENT', `an attachment digest is ${ATTACHMENT_DIGEST_BYTES} bytes`);
    if (!Number.isSafeInteger(size) || size < 0) throw new ClientError('INVALID_ARGUMENT', 'an attachment size is a non-negative integer');
    return new AttachmentDecryption(await crypto.chunkCipher(key), crypto.sha256(), size, digest);
  }

  /** The longest blob this pointer's size allows (its padding bucket, sealed). */
  get maxBlobLength(): number {
    return this.#maxPadded + ATTACHMENT_TAG_BYTES * attachmentChunkCount(this.#maxPadded);
  }

  /** The file's bytes, checked chunk by chunk; the digest is checked at the end. */
  async *plaintext(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.#started) throw new ClientError('INVALID_ARGUMENT', 'a decryption runs once');
    this.#started = true;
    // A sealed chunk is known not to be the last once a byte after it has arrived. Chunks inside
    // a piece are opened where they lie; only a chunk that ends a piece is held (copied) until
    // the next byte or the end of the blob decides, and a chunk split across pieces is gathered.
    const partial = new Uint8Array(ATTACHMENT_FRAME_BYTES);
    let have = 0;
    let held: Uint8Array | undefined;
    let index = 0;
    let produced = 0;
    const open = async (sealed: Uint8Array, final: boolean): Promise<Uint8Array | undefined> => {
      if (sealed.length <= ATTACHMENT_TAG_BYTES) throw corrupt('it is truncated');
      if (produced + sealed.length - ATTACHMENT_TAG_BYTES > this.#maxPadded) throw corrupt('it is longer than its size allows');
      const plain = await this.#cipher.open(chunkNonce(index, final), sealed);
      if (plain === null) throw corrupt(final ? `chunk ${index} is not authentic, or the blob is truncated` : `chunk ${index} is not authentic`);
      index++;
      const start = produced;
      produced += plain.length;
      // Bytes at or past `size` are padding and must be zero.
      const fileEnd = Math.max(0, Math.min(plain.length, this.size - start));
      for (let i = fileEnd; i < plain.length; i++) if (plain[i] !== 0) throw corrupt('its padding is not zero');
      if (fileEnd === 0) return undefined;
      const file = fileEnd === plain.length ? plain : plain.subarray(0, fileEnd);
      this.#hash.update(file);
      return file;
    };
    for await (const piece of source) {
      if (piece.length === 0) continue;
      if (held !== undefined) {
        const file = await open(held, false);
        held = undefined;
        if (file !== undefined) yield file;
      }
      let at = 0;
      if (have > 0) {
        const take = Math.min(ATTACHMENT_FRAME_BYTES - have, piece.length);
        partial.set(piece.subarray(0, take), have);
        have += take;
        at = take;
        if (have === ATTACHMENT_FRAME_BYTES) {
          have = 0;
          if (at === piece.length) held = partial.slice();
          else {
            const file = await open(partial, false);
            if (file !== undefined) yield file;
          }
        }
      }
      for (; piece.length - at >= ATTACHMENT_FRAME_BYTES; at += ATTACHMENT_FRAME_BYTES) {
        if (piece.length - at === ATTACHMENT_FRAME_BYTES) held = piece.slice(at);
        else {
          const file = await open(piece.subarray(at, at + ATTACHMENT_FRAME_BYTES), false);
          if (file !== undefined) yield file;
        }
      }
      if (at < piece.length) {
        partial.set(piece.subarray(at), 0);
        have = piece.length - at;
      }
    }
    const last = await open(held ?? partial.subarray(0, have), true);
    if (produced < this.size) throw corrupt('it is shorter than its size');
    if (!bytesEqual(this.#hash.digest(), this.#digest)) throw corrupt('its digest differs from the one the sender gave');
    if (last !== undefined) yield last;
  }
}
