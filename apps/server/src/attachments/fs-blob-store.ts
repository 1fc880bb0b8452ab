/**
 * Blobs as files under the data directory (the single-node default), `<dir>/<id[0..2]>/<id>.blob`
 * with a small `<id>.meta` beside it (owner, declared length, times; JSON written once at creation
 * and replaced atomically on completion). `received` is the blob file's size. The index of all
 * blobs lives in memory, rebuilt from the metadata files at open: quota checks and expiry sweeps
 * never touch the disk, and one process owns the directory (as it owns the SQLite database).
 *
 * Durability: creation fsyncs both files and their directory before it returns; an append fsyncs
 * the blob file before it reports what it stored; completion replaces the metadata by rename,
 * fsynced. After a crash, an upload resumes from whatever the file holds.
 *
 * Files are 0600 in 0700 directories: blobs are ciphertext, but who uploaded what, when and how
 * big is the operator's to protect.
 */
import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { ATTACHMENT_ID_PATTERN } from '@tacit/api';
import { BlobOverflowError, type AppendOptions, type AppendResult, type BlobInfo, type BlobStore, type NewBlob } from './blob-store.js';

/** Bytes read from disk per piece of a download. */
const READ_PIECE_BYTES = 256 * 1024;

const META_VERSION = 1;

/** Bytes of an upload gathered before they are written with one system call. */
const WRITE_BATCH_BYTES = 1024 * 1024;

/** Writes all of `buffers` at `position` (writev may write less than asked). */
async function writeAll(f: FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
  let rest = buffers;
  let at = position;
  while (rest.length > 0) {
    const { bytesWritten } = await f.writev(rest, at);
    if (bytesWritten === 0) throw new Error('the blob file takes no more bytes');
    at += bytesWritten;
    let skip = bytesWritten;
    const next: Uint8Array[] = [];
    for (const b of rest) {
      if (skip >= b.length) skip -= b.length;
      else {
        next.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    rest = next;
  }
}

interface Meta {
  v: number;
  owner: string;
  length: number;
  createdAt: number;
  expiresAt: number;
}

function isMeta(x: unknown): x is Meta {
  const m = x as Partial<Meta> | null;
  return (
    typeof m === 'object' &&
    m !== null &&
    m.v === META_VERSION &&
    typeof m.owner === 'string' &&
    [m.length, m.createdAt, m.expiresAt].every((n) => Number.isSafeInteger(n) && (n as number) >= 0)
  );
}

interface Entry extends BlobInfo {
  /** Set while an append runs (the routes serialize appends; this guards the invariant). */
  writing: boolean;
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

export class FsBlobStore implements BlobStore {
  readonly #dir: string;
  readonly #index = new Map<string, Entry>();

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Opens (creating) the blob directory and indexes what it holds. Leftovers of a crash (a blob
   * file without metadata, a temporary file, an unreadable metadata file) are removed.
   */
  static async open(dir: string): Promise<FsBlobStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const store = new FsBlobStore(dir);
    for (const shard of await readdir(dir)) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      const shardDir = join(dir, shard);
      const names = new Set(await readdir(shardDir));
      for (const name of names) {
        const id = name.replace(/\.(blob|meta|meta\.tmp)$/, '');
        const known = ATTACHMENT_ID_PATTERN.test(id) && id.startsWith(shard);
        if (known && name.endsWith('.meta')) {
          const entry = await store.#load(id, shardDir);
          if (entry !== undefined) store.#index.set(id, entry);
          else await store.#remove(id);
        } else if (!known || name.endsWith('.tmp') || !names.has(`${id}.meta`)) {
          await rm(join(shardDir, name), { force: true });
        }
      }
    }
    return store;
  }

  async #load(id: string, shardDir: string): Promise<Entry | undefined> {
    try {
      const meta: unknown = JSON.parse(await readFile(join(shardDir, `${id}.meta`), 'utf8'));
      if (!isMeta(meta)) return undefined;
      const size = (await stat(join(shardDir, `${id}.blob`))).size;
      if (size > meta.length) return undefined;
      return { id, owner: meta.owner, length: meta.length, received: size, createdAt: meta.createdAt, expiresAt: meta.expiresAt, writing: false };
    } catch {
      return undefined;
    }
  }

  #paths(id: string): { dir: string; blob: string; meta: string } {
    const dir = join(this.#dir, id.slice(0, 2));
    return { dir, blob: join(dir, `${id}.blob`), meta: join(dir, `${id}.meta`) };
  }

  async #writeMeta(e: BlobInfo): Promise<void> {
    const p = this.#paths(e.id);
    const meta: Meta = { v: META_VERSION, owner: e.owner, length: e.length, createdAt: e.createdAt, expiresAt: e.expiresAt };
    const tmp = `${p.meta}.tmp`;
    const f = await open(tmp, 'w', 0o600);
    try {
      await f.writeFile(JSON.stringify(meta));
      await f.sync();
    } finally {
      await f.close();
    }
    await rename(tmp, p.meta);
    await syncDir(p.dir);
  }

  async #remove(id: string): Promise<void> {
    const p = this.#paths(id);
    await rm(p.meta, { force: true });
    await rm(p.blob, { force: true });
  }

  async create(blob: NewBlob, quota: number, now: number): Promise<'ok' | 'QUOTA_EXCEEDED'> {
    if (!ATTACHMENT_ID_PATTERN.test(blob.id)) throw new Error('not an attachment id');
    // Checked and reserved in one synchronous step: no other create can interleave.
    if (this.#usageNow(blob.owner, now) + blob.length > quota) return 'QUOTA_EXCEEDED';
    if (this.#index.has(blob.id)) throw new Error('attachment id in use');
    const entry: Entry = { ...blob, received: 0, writing: false };
    this.#index.set(blob.id, entry);
    try {
      const p = this.#paths(blob.id);
      await mkdir(p.dir, { recursive: true, mode: 0o700 });
      const f = await open(p.blob, 'wx', 0o600);
      await f.close();
      await this.#writeMeta(entry);
    } catch (e) {
      this.#index.delete(blob.id);
      await this.#remove(blob.id).catch(() => undefined);
      throw e;
    }
    return 'ok';
  }

  get(id: string, now: number): Promise<BlobInfo | undefined> {
    const e = this.#index.get(id);
    if (e === undefined || e.expiresAt <= now) return Promise.resolve(undefined);
    const { writing: _, ...info } = e;
    return Promise.resolve(info);
  }

  async append(id: string, offset: number, source: AsyncIterable<Uint8Array>, options: AppendOptions): Promise<AppendResult> {
    const e = this.#index.get(id);
    if (e === undefined || e.expiresAt <= options.now) return { ok: false, code: 'NOT_FOUND' };
    if (e.received !== offset) return { ok: false, code: 'OFFSET_MISMATCH', received: e.received };
    if (e.writing) throw new Error('concurrent append to one blob');
    e.writing = true;
    let f: FileHandle | undefined;
    let at = offset;
    let failure: unknown;
    // Pieces are gathered into batches written with one writev each, and the next batch is read
    // from the request while the last one is written (at most one write in flight).
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    let writing: Promise<void> = Promise.resolve();
    const flush = async (file: FileHandle): Promise<void> => {
      if (batchBytes === 0) return;
      const buffers = batch;
      const position = at - batchBytes;
      batch = [];
      batchBytes = 0;
      await writing;
      writing = writeAll(file, buffers, position);
      writing.catch(() => undefined);
    };
    try {
      f = await open(this.#paths(id).blob, 'r+');
      try {
        for await (const piece of source) {
          const fits = Math.min(piece.length, e.length - at);
          if (fits > 0) {
            batch.push(fits === piece.length ? piece : piece.subarray(0, fits));
            batchBytes += fits;
            at += fits;
          }
          if (fits < piece.length) throw new BlobOverflowError();
          if (batchBytes >= WRITE_BATCH_BYTES) await flush(f);
        }
      } finally {
        // What arrived is stored, whatever ended the request.
        await flush(f);
        await writing;
      }
    } catch (x) {
      failure = x;
    }
    try {
      if (f !== undefined) {
        await f.datasync();
        // The file says what is stored, also after a failed write.
        at = Math.min(e.length, (await f.stat()).size);
        await f.close();
      }
      if (this.#index.get(id) !== e) return { ok: false, code: 'NOT_FOUND' };
      e.received = at;
      if (at === e.length && e.expiresAt !== options.completedExpiresAt) {
        e.expiresAt = options.completedExpiresAt;
        await this.#writeMeta(e);
      }
    } finally {
      e.writing = false;
    }
    if (failure !== undefined) throw failure;
    return { ok: true, received: at };
  }

  async *read(id: string, start: number, end: number): AsyncGenerator<Uint8Array> {
    if (end <= start) return;
    const stream = createReadStream(this.#paths(id).blob, { start, end: end - 1, highWaterMark: READ_PIECE_BYTES });
    for await (const piece of stream) yield piece as Buffer;
  }

  async delete(id: string): Promise<boolean> {
    if (!this.#index.delete(id)) return false;
    await this.#remove(id);
    return true;
  }

  #usageNow(owner: string, now: number): number {
    let sum = 0;
    for (const e of this.#index.values()) if (e.owner === owner && e.expiresAt > now) sum += e.length;
    return sum;
  }

  usage(owner: string, now: number): Promise<number> {
    return Promise.resolve(this.#usageNow(owner, now));
  }

  async expire(now: number): Promise<number> {
    const gone = [...this.#index.values()].filter((e) => e.expiresAt <= now);
    for (const e of gone) {
      this.#index.delete(e.id);
      await this.#remove(e.id);
    }
    return gone.length;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
