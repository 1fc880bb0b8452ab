/**
 * Blobs in PostgreSQL, for several nodes sharing one database: `attachments` holds one row per
 * blob (owner, declared length, bytes received, times), `attachment_chunks` the bytes as rows of
 * at most PG_CHUNK_BYTES keyed by (blob, offset). A node holds at most one such chunk per upload
 * in memory, and reads a few chunks at a time for a download: memory stays flat whatever the blob
 * size. (Large objects would also stream, but live outside the table's transactions, cascade and
 * replication as ordinary rows do.) The chunk column is stored uncompressed (ciphertext does not
 * compress).
 *
 * Appending a chunk is one statement: it advances `received` only where it still equals the
 * chunk's offset, and inserts the chunk only if it did. Two nodes appending to the same blob at
 * once (a client resuming through another node while the first still reads its dead request)
 * therefore cannot interleave bytes: the loser gets OFFSET_MISMATCH, and the client asks where
 * the blob stands.
 *
 * Durability: chunks commit without waiting for the WAL flush (`synchronous_commit = off` on this
 * store's own connections): after a database crash an unfinished upload may have lost its last
 * chunks, and its status says so, so the client resends them. The chunk that completes a blob,
 * and every creation, commit with `synchronous_commit = on`: WAL is flushed in order, so a blob
 * reported complete (which the client then announces to its recipients) is durable as a whole.
 */
import pg from 'pg';
import { migrate } from '../postgres-migrations.js';
import { BlobOverflowError, type AppendOptions, type AppendResult, type BlobInfo, type BlobStore, type NewBlob } from './blob-store.js';

/** Bytes per stored chunk row: 512 KiB, as few rows as possible without holding much per upload. */
export const PG_CHUNK_BYTES = 512 * 1024;

/** Chunk rows fetched per query while a download streams (1–2 MiB). */
const READ_CHUNKS_PER_QUERY = 3;

/** Blobs deleted per statement by the expiry sweep, so one sweep never holds a huge transaction. */
const EXPIRE_BATCH = 100;

/** First key of the advisory lock that makes an owner's quota check and reservation atomic. */
const QUOTA_LOCK = 0x74616174; // "taat"

type Row = Record<string, unknown>;

function info(r: Row): BlobInfo {
  return {
    id: r['id'] as string,
    owner: r['owner'] as string,
    length: Number(r['length']),
    received: Number(r['received']),
    createdAt: Number(r['created_at']),
    expiresAt: Number(r['expires_at']),
  };
}

export interface PostgresBlobStoreOptions {
  /** node-postgres pool settings; the store makes its own small pool. */
  pg: pg.PoolConfig;
  /** Schema holding the tables (migrated if needed). Default `tacit`. */
  schema?: string;
}

export class PostgresBlobStore implements BlobStore {
  readonly #pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  static async open(opts: PostgresBlobStoreOptions): Promise<PostgresBlobStore> {
    const schema = opts.schema ?? 'tacit';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error('schema must be a lower-case SQL identifier');
    const admin = new pg.Client(opts.pg);
    admin.on('error', () => undefined);
    try {
      await admin.connect();
      await migrate(admin, schema);
    } finally {
      await admin.end().catch(() => undefined);
    }
    const pool = new pg.Pool({ max: 4, ...opts.pg, options: `-c search_path=${schema} -c synchronous_commit=off` });
    pool.on('error', () => undefined);
    return new PostgresBlobStore(pool);
  }

  async #tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.#pool.connect();
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL synchronous_commit TO on');
      const r = await fn(c);
      await c.query('COMMIT');
      return r;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }

  create(blob: NewBlob, quota: number, now: number): Promise<'ok' | 'QUOTA_EXCEEDED'> {
    return this.#tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [QUOTA_LOCK, blob.owner]);
      const used = Number((await c.query('SELECT coalesce(sum(length), 0) AS used FROM attachments WHERE owner = $1 AND expires_at > $2', [blob.owner, now])).rows[0]?.['used'] ?? 0);
      if (used + blob.length > quota) return 'QUOTA_EXCEEDED';
      await c.query('INSERT INTO attachments (id, owner, length, received, created_at, expires_at) VALUES ($1, $2, $3, 0, $4, $5)', [
        blob.id,
        blob.owner,
        blob.length,
        blob.createdAt,
        blob.expiresAt,
      ]);
      return 'ok';
    });
  }

  async get(id: string, now: number): Promise<BlobInfo | undefined> {
    const r = await this.#pool.query('SELECT * FROM attachments WHERE id = $1 AND expires_at > $2', [id, now]);
    const row = r.rows[0] as Row | undefined;
    return row === undefined ? undefined : info(row);
  }

  /** Stores one chunk at `offset` if the blob still stands there; the blob's new `received`, or undefined. */
  async #put(c: Pick<pg.ClientBase, 'query'>, id: string, offset: number, data: Buffer, options: AppendOptions): Promise<number | undefined> {
    const r = await c.query(
      `WITH u AS (
         UPDATE attachments
            SET received = received + $3,
                expires_at = CASE WHEN received + $3 = length THEN $4 ELSE expires_at END
          WHERE id = $1 AND received = $2 AND received + $3 <= length AND expires_at > $5
      RETURNING received)
       INSERT INTO attachment_chunks (id, off, data) SELECT $1, $2, $6 FROM u RETURNING (SELECT received FROM u) AS received`,
      [id, offset, data.length, options.completedExpiresAt, options.now, data],
    );
    const row = r.rows[0] as Row | undefined;
    return row === undefined ? undefined : Number(row['received']);
  }

  async #why(id: string, now: number): Promise<AppendResult> {
    const b = await this.get(id, now);
    return b === undefined ? { ok: false, code: 'NOT_FOUND' } : { ok: false, code: 'OFFSET_MISMATCH', received: b.received };
  }

  async append(id: string, offset: number, source: AsyncIterable<Uint8Array>, options: AppendOptions): Promise<AppendResult> {
    const blob = await this.get(id, options.now);
    if (blob === undefined) return { ok: false, code: 'NOT_FOUND' };
    if (blob.received !== offset) return { ok: false, code: 'OFFSET_MISMATCH', received: blob.received };
    const chunk = Buffer.allocUnsafe(Math.min(PG_CHUNK_BYTES, blob.length - offset));
    let filled = 0;
    let at = offset;
    const flush = async (): Promise<boolean> => {
      if (filled === 0) return true;
      const data = Buffer.from(chunk.subarray(0, filled));
      const completes = at + filled === blob.length;
      const received = completes
        ? await this.#tx((c) => this.#put(c, id, at, data, options))
        : await this.#put(this.#pool, id, at, data, options);
      if (received === undefined) return false;
      at = received;
      filled = 0;
      return true;
    };
    let failure: unknown;
    try {
      for await (const piece of source) {
        for (let p = 0; p < piece.length; ) {
          if (at + filled >= blob.length) throw new BlobOverflowError();
          const take = Math.min(chunk.length - filled, piece.length - p, blob.length - at - filled);
          chunk.set(piece.subarray(p, p + take), filled);
          filled += take;
          p += take;
          if (filled === chunk.length && !(await flush())) return this.#why(id, options.now);
        }
      }
    } catch (e) {
      failure = e;
    }
    // What arrived before a failure is kept (the client resumes after it).
    if (!(await flush())) return this.#why(id, options.now);
    if (failure !== undefined) throw failure;
    return { ok: true, received: at };
  }

  async *read(id: string, start: number, end: number): AsyncGenerator<Uint8Array> {
    if (end <= start) return;
    const first = (await this.#pool.query('SELECT off FROM attachment_chunks WHERE id = $1 AND off <= $2 ORDER BY off DESC LIMIT 1', [id, start])).rows[0] as Row | undefined;
    if (first === undefined) throw new Error('blob has no bytes at the start of the range');
    let off = Number(first['off']);
    while (off < end) {
      const rows = (
        await this.#pool.query('SELECT off, data FROM attachment_chunks WHERE id = $1 AND off >= $2 AND off < $3 ORDER BY off LIMIT $4', [id, off, end, READ_CHUNKS_PER_QUERY])
      ).rows as Row[];
      if (rows.length === 0) throw new Error('blob bytes missing');
      for (const row of rows) {
        const o = Number(row['off']);
        const data = row['data'] as Buffer;
        if (o !== off) throw new Error('blob bytes missing');
        const from = Math.max(0, start - o);
        const to = Math.min(data.length, end - o);
        if (to > from) yield data.subarray(from, to);
        off = o + data.length;
        if (off >= end) return;
      }
    }
  }

  async delete(id: string): Promise<boolean> {
    return ((await this.#pool.query('DELETE FROM attachments WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }

  async usage(owner: string, now: number): Promise<number> {
    const r = await this.#pool.query('SELECT coalesce(sum(length), 0) AS used FROM attachments WHERE owner = $1 AND expires_at > $2', [owner, now]);
    return Number((r.rows[0] as Row | undefined)?.['used'] ?? 0);
  }

  async expire(now: number): Promise<number> {
    let total = 0;
    for (;;) {
      const r = await this.#pool.query('DELETE FROM attachments WHERE id IN (SELECT id FROM attachments WHERE expires_at <= $1 LIMIT $2)', [now, EXPIRE_BATCH]);
      const n = r.rowCount ?? 0;
      total += n;
      if (n < EXPIRE_BATCH) return total;
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
