/**
 * The record store of a Node client: one SQLite file (better-sqlite3, WAL) whose values are each
 * sealed with AES-256-GCM under a key derived once from the passphrase (scrypt).
 *
 * Layout:
 *   meta(name TEXT PRIMARY KEY, value BLOB)      -- in the clear:
 *     'format' = "tacit-records-1"
 *     'kdf'    = log2 N (1) | r (1) | p (1) | salt (16) | verifier (16)
 *   records(key TEXT PRIMARY KEY, value BLOB)    -- WITHOUT ROWID, ordered by key (byte order)
 *     value = nonce (12) | AES-256-GCM ciphertext | tag (16), associated data "tacit-record\0" || key
 *
 * The key as associated data means a value copied to another key (or another file) does not
 * open. Keys are in the clear; the SDK builds them without names or other user data
 * (docs/CLIENT.md, "Local storage").
 *
 * Durability: WAL with synchronous=FULL, so a commit is on disk before `commit` resolves and
 * the SDK acknowledges a message to the server only after that. A commit runs synchronously
 * inside `commit()` (better-sqlite3 is synchronous): once the call returns, the write has reached
 * the operating system, which is what survives a kill -9 of this process.
 */
import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ClientError } from '../errors.js';
import { checkCommit, checkKey, checkListOptions, listBounds, MAX_RECORD_BYTES, type ListOptions, type RecordStore, type StoredRecord } from '../record-store.js';
import { DEFAULT_SCRYPT_LOG_N, MAX_SCRYPT_LOG_N, MIN_SCRYPT_LOG_N, SALT_BYTES, SCRYPT_P, SCRYPT_R, VERIFIER_BYTES, deriveKeys, scryptLogNFromEnv } from './passphrase-key.js';

const FORMAT = 'tacit-records-1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KDF_BYTES = 3 + SALT_BYTES + VERIFIER_BYTES;
const AAD_PREFIX = new TextEncoder().encode('tacit-record\0');
/**
 * Records read and sealed again per step of a passphrase change (all steps are one transaction):
 * bounds the memory a step holds (at most this many records of MAX_RECORD_BYTES) while keeping
 * the number of queries small.
 */
export const REKEY_PAGE_RECORDS = 256;

export interface SqliteStoreOptions {
  /** Create the file (with a fresh salt) if it does not exist. Default false: NOT_REGISTERED. */
  readonly create?: boolean;
  /** scrypt N for a new file (a power of two); defaults to TACIT_SCRYPT_N, else 2^17. */
  readonly scryptN?: number;
}

type Db = Database.Database;

function sqliteError(e: unknown, doing: string): ClientError {
  const code = (e as { code?: unknown }).code;
  if (code === 'SQLITE_FULL') return new ClientError('STORAGE_FULL', 'the disk is full: the local state could not be written');
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') return new ClientError('STATE_CORRUPT', 'the local state database is damaged');
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return new ClientError('STATE_LOCKED', 'another process is using the local state database');
  return new ClientError('STATE_CORRUPT', `the local state database failed while ${doing} (${typeof code === 'string' ? code : 'unknown error'})`);
}

function aad(key: string): Buffer {
  return Buffer.concat([AAD_PREFIX, Buffer.from(key, 'latin1')]);
}

/** nonce | AES-256-GCM(value) | tag, with the record's key as associated data. */
function seal(secret: Buffer, key: string, value: Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', secret, nonce);
  cipher.setAAD(aad(key));
  return Buffer.concat([nonce, cipher.update(value), cipher.final(), cipher.getAuthTag()]);
}

export class SqliteRecordStore implements RecordStore {
  readonly path: string;
  #db: Db | undefined;
  #key: Buffer;
  #stmt: {
    get: Database.Statement<[string], { value: Buffer }>;
    put: Database.Statement<[string, Buffer]>;
    del: Database.Statement<[string]>;
  };
  #commitTx: (puts: { key: string; value: Buffer }[], deletes: readonly string[]) => void;

  private constructor(path: string, db: Db, key: Buffer) {
    this.path = path;
    this.#db = db;
    this.#key = key;
    this.#stmt = {
      get: db.prepare('SELECT value FROM records WHERE key = ?'),
      put: db.prepare('INSERT INTO records (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      del: db.prepare('DELETE FROM records WHERE key = ?'),
    };
    this.#commitTx = db.transaction((puts: { key: string; value: Buffer }[], deletes: readonly string[]) => {
      for (const k of deletes) this.#stmt.del.run(k);
      for (const p of puts) this.#stmt.put.run(p.key, p.value);
    });
  }

  /** Whether a record store exists at `path` (whatever its passphrase). */
  static exists(path: string): boolean {
    return existsSync(path);
  }

  /**
   * Opens the store at `path`: NOT_REGISTERED if there is none (unless `create`), WRONG_PASSPHRASE
   * before anything is written, STATE_CORRUPT if the file is not a record store.
   */
  static async open(path: string, passphrase: string, options: SqliteStoreOptions = {}): Promise<SqliteRecordStore> {
    const existed = existsSync(path);
    if (!existed && !options.create) throw new ClientError('NOT_REGISTERED', `no local state at ${path}`);
    // Created private to the user; SQLite gives its -wal and -shm files the same mode.
    if (!existed) closeSync(openSync(path, 'a', 0o600));
    let db: Db;
    try {
      db = new Database(path, { fileMustExist: true });
    } catch (e) {
      throw sqliteError(e, 'opening');
    }
    try {
      const kdf = readMeta(db);
      if (kdf === undefined) {
        // No tables yet: a file this function created and did not finish initialising.
        if (tableExists(db, 'records')) throw new ClientError('STATE_CORRUPT', 'the local state database has no key parameters');
        if (!options.create) throw new ClientError('NOT_REGISTERED', `no local state at ${path}`);
        const logN = scryptLogNFromEnv(options.scryptN !== undefined ? String(options.scryptN) : process.env['TACIT_SCRYPT_N']) ?? DEFAULT_SCRYPT_LOG_N;
        const salt = randomBytes(SALT_BYTES);
        const { key, verifier } = await deriveKeys(passphrase, salt, logN);
        initialise(db, Buffer.concat([Buffer.from([logN, SCRYPT_R, SCRYPT_P]), salt, verifier]));
        configure(db);
        return new SqliteRecordStore(path, db, key);
      }
      const { key, verifier } = await deriveKeys(passphrase, kdf.salt, kdf.logN);
      if (!timingSafeEqual(verifier, kdf.verifier)) {
        key.fill(0);
        throw new ClientError('WRONG_PASSPHRASE', 'wrong passphrase for the local state');
      }
      configure(db);
      return new SqliteRecordStore(path, db, key);
    } catch (e) {
      db.close();
      if (e instanceof ClientError) throw e;
      throw sqliteError(e, 'opening');
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.#open();
    checkKey(key);
    let row: { value: Buffer } | undefined;
    try {
      row = this.#stmt.get.get(key);
    } catch (e) {
      throw sqliteError(e, 'reading');
    }
    return row === undefined ? undefined : this.#unseal(key, row.value);
  }

  async list(prefix: string, options: ListOptions = {}): Promise<StoredRecord[]> {
    const db = this.#open();
    checkListOptions(prefix, options);
    const { from, fromExclusive, to } = listBounds(prefix, options);
    if (from >= to) return [];
    const sql = `SELECT key, value FROM records WHERE key ${fromExclusive ? '>' : '>='} ? AND key < ? ORDER BY key ${options.reverse ? 'DESC' : 'ASC'}${options.limit !== undefined ? ' LIMIT ?' : ''}`;
    let rows: { key: string; value: Buffer }[];
    try {
      const stmt = db.prepare<unknown[], { key: string; value: Buffer }>(sql);
      rows = options.limit !== undefined ? stmt.all(from, to, options.limit) : stmt.all(from, to);
    } catch (e) {
      throw sqliteError(e, 'listing');
    }
    return rows.map((r) => ({ key: r.key, value: this.#unseal(r.key, r.value) }));
  }

  async commit(puts: readonly StoredRecord[], deletes: readonly string[]): Promise<void> {
    this.#open();
    checkCommit(puts, deletes);
    const sealed = puts.map((p) => ({ key: p.key, value: this.#seal(p.key, p.value) }));
    try {
      this.#commitTx(sealed, deletes);
    } catch (e) {
      throw sqliteError(e, 'writing');
    }
  }

  /**
   * Seals every record again under a key from `next` (a fresh salt; scrypt N from `scryptN`, else
   * TACIT_SCRYPT_N, else the default), in one transaction: a crash leaves the store under the old
   * passphrase or under the new one, never a mix. Then the file is rebuilt (VACUUM) and the WAL
   * checkpointed and truncated, so the database files hold no ciphertext the old passphrase
   * opens. Copies made before (backups) still open with the old passphrase; blocks the file
   * system freed are not overwritten.
   */
  async changePassphrase(next: string, options: { scryptN?: number } = {}): Promise<void> {
    const db = this.#open();
    const logN = scryptLogNFromEnv(options.scryptN !== undefined ? String(options.scryptN) : process.env['TACIT_SCRYPT_N']) ?? DEFAULT_SCRYPT_LOG_N;
    const salt = randomBytes(SALT_BYTES);
    const { key, verifier } = await deriveKeys(next, salt, logN);
    try {
      const page = db.prepare<[string, number], { key: string; value: Buffer }>('SELECT key, value FROM records WHERE key > ? ORDER BY key LIMIT ?');
      const setKdf = db.prepare<[Buffer, string]>('UPDATE meta SET value = ? WHERE name = ?');
      db.transaction(() => {
        // Keys are never empty (checkKey), so '' is before the first.
        let after = '';
        for (;;) {
          const rows = page.all(after, REKEY_PAGE_RECORDS);
          if (rows.length === 0) break;
          for (const r of rows) this.#stmt.put.run(r.key, seal(key, r.key, this.#unseal(r.key, r.value)));
          after = rows[rows.length - 1]!.key;
        }
        setKdf.run(Buffer.concat([Buffer.from([logN, SCRYPT_R, SCRYPT_P]), salt, verifier]), 'kdf');
      })();
    } catch (e) {
      key.fill(0);
      if (e instanceof ClientError) throw e;
      throw sqliteError(e, 'sealing the records again');
    }
    this.#key.fill(0);
    this.#key = key;
    try {
      db.exec('VACUUM');
      db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (e) {
      throw sqliteError(e, 'removing the old ciphertexts');
    }
  }

  async close(): Promise<void> {
    const db = this.#db;
    if (db === undefined) return;
    this.#db = undefined;
    this.#key.fill(0);
    db.close();
  }

  #open(): Db {
    if (this.#db === undefined) throw new ClientError('CLOSED', 'the record store is closed');
    return this.#db;
  }

  #seal(key: string, value: Uint8Array): Buffer {
    return seal(this.#key, key, value);
  }

  #unseal(key: string, raw: Buffer): Uint8Array {
    if (raw.length < NONCE_BYTES + TAG_BYTES || raw.length > MAX_RECORD_BYTES + NONCE_BYTES + TAG_BYTES) {
      throw new ClientError('STATE_CORRUPT', `the local record ${key} is damaged (bad length)`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, NONCE_BYTES));
      decipher.setAAD(aad(key));
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      return new Uint8Array(Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()]));
    } catch {
      throw new ClientError('STATE_CORRUPT', `the local record ${key} is damaged or was modified`);
    }
  }

  /** Never print the key. */
  toJSON(): never {
    throw new ClientError('INVALID_ARGUMENT', 'SqliteRecordStore is not serializable');
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `SqliteRecordStore { path: ${JSON.stringify(this.path)}, open: ${this.#db !== undefined} }`;
  }
}

function tableExists(db: Db, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

function readMeta(db: Db): { logN: number; salt: Buffer; verifier: Buffer } | undefined {
  if (!tableExists(db, 'meta')) return undefined;
  const rows = db.prepare<[], { name: string; value: Buffer }>('SELECT name, value FROM meta').all();
  const get = (n: string): Buffer | undefined => rows.find((r) => r.name === n)?.value;
  const format = get('format');
  const kdf = get('kdf');
  if (format === undefined || Buffer.from(format).toString('utf8') !== FORMAT) throw new ClientError('STATE_CORRUPT', 'the local state database has an unknown format');
  if (kdf === undefined || kdf.length !== KDF_BYTES) throw new ClientError('STATE_CORRUPT', 'the local state database has no valid key parameters');
  const logN = kdf[0]!;
  if (logN < MIN_SCRYPT_LOG_N || logN > MAX_SCRYPT_LOG_N || kdf[1] !== SCRYPT_R || kdf[2] !== SCRYPT_P) {
    throw new ClientError('STATE_CORRUPT', 'the local state database declares unsupported key-derivation parameters');
  }
  return { logN, salt: kdf.subarray(3, 3 + SALT_BYTES), verifier: kdf.subarray(3 + SALT_BYTES) };
}

function initialise(db: Db, kdf: Buffer): void {
  db.pragma('journal_mode = WAL');
  db.transaction(() => {
    db.exec('CREATE TABLE records (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID');
    db.exec('CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID');
    db.prepare('INSERT INTO meta (name, value) VALUES (?, ?)').run('format', Buffer.from(FORMAT, 'utf8'));
    db.prepare('INSERT INTO meta (name, value) VALUES (?, ?)').run('kdf', kdf);
  })();
}

function configure(db: Db): void {
  db.pragma('journal_mode = WAL');
  // A commit is fsynced before it returns: the server is told "stored" only after that.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = OFF');
}
