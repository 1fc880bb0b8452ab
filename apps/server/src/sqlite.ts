/**
 * SQLite adapter (better-sqlite3, synchronous, one process).
 *
 * Durability: WAL with `synchronous = FULL`, so every committed transaction is fsynced before
 * `writeBatch` returns and the sender gets `sent`: an acknowledged message survives a process
 * crash AND an OS crash or power loss. (`NORMAL` in WAL mode survives a process crash but may lose
 * the last transactions on power loss — not what "stored durably before acknowledged" promises.)
 * The cost, one fsync per transaction, is paid once per batch: the relay groups all sends and
 * acks of one event-loop turn into one `writeBatch`.
 */
import Database from 'better-sqlite3';
import { Worker } from 'node:worker_threads';
import { MessageBatchWriter } from './sqlite-batch.js';
import { RESEND_WINDOW_MS } from './resend.js';
import { checkpointWal, configureConnection } from './sqlite-connection.js';
import type { WorkerReply, WorkerRequest } from './sqlite-worker.js';
import type { FanoutResult, NewFanout } from './fanout.js';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  addressKey,
  type AccountInfo,
  type AccountSummary,
  type Address,
  type CiphertextKind,
  type CreateAccountResult,
  type DeviceAuth,
  type DeviceBundleRecord,
  type DeviceKeys,
  type DeviceSummary,
  type EnqueueResult,
  type NewDevice,
  type NewMessage,
  type RemovedAccount,
  type RemoveDeviceResult,
  type Store,
  type StoredMessage,
  type Ticket,
} from './store.js';

/** 2: accounts.admin. 3: sent_memory, sent_memory_heads (resend.ts). 4: device_info (linked devices). */
const SCHEMA_VERSION = 4;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS accounts (
  id INTEGER PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  identity_key BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  admin INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS devices (
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  device_id INTEGER NOT NULL,
  addr TEXT NOT NULL UNIQUE,
  registration_id INTEGER NOT NULL,
  secret_salt BLOB NOT NULL,
  secret_hash BLOB NOT NULL,
  spk_id INTEGER NOT NULL, spk BLOB NOT NULL, spk_sig BLOB NOT NULL,
  kyber_lr_id INTEGER NOT NULL, kyber_lr BLOB NOT NULL, kyber_lr_sig BLOB NOT NULL,
  UNIQUE (account_id, device_id)
) STRICT;
CREATE TABLE IF NOT EXISTS pre_keys (
  device INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  key_id INTEGER NOT NULL,
  public_key BLOB NOT NULL,
  PRIMARY KEY (device, key_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kyber_pre_keys (
  device INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  key_id INTEGER NOT NULL,
  public_key BLOB NOT NULL,
  signature BLOB NOT NULL,
  PRIMARY KEY (device, key_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS invites (
  code_hash BLOB PRIMARY KEY,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) STRICT;
-- AUTOINCREMENT: ids are never reused, even after the newest message is deleted, because clients
-- suppress duplicates by id.
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient TEXT NOT NULL,
  sender TEXT NOT NULL,
  sender_device INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  body BLOB NOT NULL,
  ts INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS messages_by_recipient ON messages (recipient, id);
-- No index on expires_at: every send would pay for it, while the expiry sweep runs once a minute
-- over a table that holds only undelivered messages.
-- Resends (resend.ts): per sending device a ring of RESEND_MEMORY_PER_DEVICE slots, each the digest
-- of a stored send and its message's id and time; heads hold each device's next slot number.
CREATE TABLE IF NOT EXISTS sent_memory (
  sender TEXT NOT NULL,
  slot INTEGER NOT NULL,
  digest BLOB NOT NULL,
  message_id INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  PRIMARY KEY (sender, slot)
) STRICT, WITHOUT ROWID;
-- No index on the digest: the writer looks digests up in memory (sqlite-batch.ts,
-- RESEND_CACHE_MAX_ROWS); a digest is random, so such an index cost a random page per send.
DROP INDEX IF EXISTS sent_memory_by_digest;
CREATE INDEX IF NOT EXISTS sent_memory_by_time ON sent_memory (ts);
CREATE TABLE IF NOT EXISTS sent_memory_heads (sender TEXT PRIMARY KEY, next INTEGER NOT NULL) STRICT, WITHOUT ROWID;
-- Linked devices: what the account's owner sees in its device list. A device from before this
-- table has no row (listed with an empty name, the account's creation time, never seen).
CREATE TABLE IF NOT EXISTS device_info (
  device INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_seen INTEGER NOT NULL
) STRICT;
`;

type Row = Record<string, unknown>;

const u8 = (b: unknown): Uint8Array => {
  const buf = b as Buffer;
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
};
const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/**
 * The worker is TypeScript like the rest of the server; Node 20 does not apply `--import tsx`
 * hooks to a worker's entry module, so a small script registers tsx first, then imports it.
 */
const WORKER_BOOTSTRAP = `
const { register } = await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))});
register();
await import(${JSON.stringify(new URL('./sqlite-worker.ts', import.meta.url).href)});
`;

/**
 * The database reveals who talks to whom: keep it from other local users. A new data directory
 * is made 0700 and a new database file 0600 (SQLite gives its -wal and -shm files the database
 * file's mode); an existing database file, -wal or -shm readable by others is narrowed to 0600.
 */
function protectFiles(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
  for (const f of [path, `${path}-wal`, `${path}-shm`]) {
    if (existsSync(f) && (statSync(f).mode & 0o077) !== 0) chmodSync(f, 0o600);
  }
}

/**
 * How often the WAL is checkpointed and truncated, ms. A deleted row (a delivered message, a used
 * one-time key) lives on in old WAL frames until then: SQLite's own checkpoint runs only every
 * 1,000 pages and never shrinks the file, so on a quiet server old frames lingered indefinitely.
 * With `secure_delete` the checkpointed pages hold zeros where deleted rows were. Shorter means
 * less time for deleted rows on disk, at one more fsync (and a file regrown from zero) per interval.
 */
export const WAL_CHECKPOINT_INTERVAL_MS = 10_000;

export interface SqliteStoreOptions {
  /** File path, or ':memory:'. */
  path: string;
  /**
   * 'FULL' (default): a commit is fsynced before it returns; acknowledged messages survive power
   * loss. 'NORMAL' survives a process crash only; offered for measuring what fsync costs.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /**
   * Write message batches on a second connection in a worker thread, so commits (and their
   * fsyncs) overlap with socket work on the main thread. File databases only. Default off.
   */
  worker?: boolean;
  /** See WAL_CHECKPOINT_INTERVAL_MS (file databases only). */
  checkpointIntervalMs?: number;
}

/** Rolls back an addOneTimeKeys transaction that went over its bound. */
class KeysFull extends Error {}

export class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly #s;
  readonly #writer: MessageBatchWriter;
  /** Undefined when not configured, or after the worker died (then writes run inline). */
  #worker: Worker | undefined;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; assigned?: (results: EnqueueResult[]) => void }>();
  /** The highest id the worker announced before a commit (see `writeBatch`). */
  #announced = 0;
  #seq = 0;
  #closed = false;
  readonly #tickets = new Map<string, { ticket: Ticket; expiresAt: number }>();
  #checkpointTimer: ReturnType<typeof setInterval> | undefined;

  constructor(opts: SqliteStoreOptions) {
    if (opts.path !== ':memory:') protectFiles(opts.path);
    const db = new Database(opts.path);
    this.#db = db;
    configureConnection(db, opts.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL');
    db.pragma('foreign_keys = ON');
    db.exec(SCHEMA);
    db.transaction(() => {
      const v = db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as Row | undefined;
      if (v === undefined) db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
      else if (v['value'] === '1' || v['value'] === '2' || v['value'] === '3') {
        // Version 1 had no admins; the operator names them (`admin <username>`).
        if (v['value'] === '1') db.exec('ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0');
        // Version 3's and 4's tables are new ones, made by SCHEMA above.
        db.prepare("UPDATE meta SET value = ? WHERE key = 'schema'").run(String(SCHEMA_VERSION));
      } else if (v['value'] !== String(SCHEMA_VERSION)) throw new Error(`unsupported schema version ${String(v['value'])}`);
    }).immediate();

    this.#writer = new MessageBatchWriter(db);
    if (opts.path !== ':memory:') this.#writer.skipIdsOnOpen();
    this.#worker =
      opts.worker === true && opts.path !== ':memory:'
        ? new Worker(WORKER_BOOTSTRAP, {
            eval: true,
            workerData: { path: opts.path, synchronous: opts.synchronous ?? 'FULL' },
          })
        : undefined;
    this.#worker?.on('message', (r: WorkerReply) => {
      const p = this.#pending.get(r.seq);
      if (p === undefined) return;
      if (r.ok && r.assigned === true) {
        const results = r.results as EnqueueResult[];
        for (const x of results) if (x.ok && x.id > this.#announced) this.#announced = x.id;
        // Once per write: a retried transaction (SQLITE_BUSY) announces again; the final reply holds the ids that count.
        const f = p.assigned;
        p.assigned = undefined;
        f?.(results);
        return;
      }
      this.#pending.delete(r.seq);
      if (r.ok) p.resolve(r.results);
      else p.reject(Object.assign(new Error('batch write failed'), { name: r.error.name, code: r.error.code }));
    });
    const lost = (err?: unknown) => {
      if (process.env['TACIT_DEBUG_WORKER'] && err !== undefined) console.error(err);
      // Fall back to writing on this connection. Batches in flight fail: their senders get
      // INTERNAL and retry (if one had committed just before the worker died, its messages are
      // then stored twice; the recipient's session layer rejects the copy as a duplicate).
      this.#worker = undefined;
      // Ids the worker announced may be rolled back with its last transaction; never reuse them.
      this.#writer.raiseFloor(this.#announced);
      for (const p of this.#pending.values()) p.reject(new Error('sqlite worker failed'));
      this.#pending.clear();
    };
    if (opts.path !== ':memory:') {
      this.#checkpointTimer = setInterval(() => void this.checkpoint().catch(() => undefined), opts.checkpointIntervalMs ?? WAL_CHECKPOINT_INTERVAL_MS);
      this.#checkpointTimer.unref();
    }
    this.#worker?.on('error', lost);
    this.#worker?.on('exit', () => {
      if (!this.#closed) lost();
    });
    this.#s = {
      insertAccount: db.prepare('INSERT INTO accounts (username, identity_key, created_at, admin) VALUES (?, ?, ?, ?)'),
      accountId: db.prepare('SELECT id, identity_key, admin FROM accounts WHERE username = ?'),
      countAccounts: db.prepare('SELECT count(*) AS n FROM accounts'),
      countQueued: db.prepare('SELECT count(*) AS n FROM messages'),
      listAccounts: db.prepare('SELECT id, username, admin, created_at FROM accounts ORDER BY username LIMIT ?'),
      setAdmin: db.prepare('UPDATE accounts SET admin = ? WHERE username = ?'),
      insertDevice: db.prepare(
        `INSERT INTO devices (account_id, device_id, addr, registration_id, secret_salt, secret_hash, spk_id, spk, spk_sig, kyber_lr_id, kyber_lr, kyber_lr_sig)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      devicesOf: db.prepare('SELECT id, device_id, registration_id FROM devices WHERE account_id = ? ORDER BY device_id'),
      deviceByAddr: db.prepare('SELECT id, registration_id, secret_salt, secret_hash FROM devices WHERE addr = ?'),
      deleteDevice: db.prepare('DELETE FROM devices WHERE addr = ?'),
      // The devices of the account that holds this address (0: no such device).
      countSiblingDevices: db.prepare('SELECT count(*) AS n FROM devices WHERE account_id = (SELECT account_id FROM devices WHERE addr = ?)'),
      insertDeviceInfo: db.prepare('INSERT INTO device_info (device, name, created_at, last_seen) VALUES (?, ?, ?, 0)'),
      listDevices: db.prepare(
        `SELECT d.device_id, d.registration_id, coalesce(i.name, '') AS name, coalesce(i.created_at, a.created_at) AS created_at, coalesce(i.last_seen, 0) AS last_seen
         FROM devices d JOIN accounts a ON a.id = d.account_id LEFT JOIN device_info i ON i.device = d.id WHERE a.username = ? ORDER BY d.device_id`,
      ),
      touchDevice: db.prepare(
        `INSERT INTO device_info (device, name, created_at, last_seen) SELECT d.id, '', a.created_at, ? FROM devices d JOIN accounts a ON a.id = d.account_id WHERE d.addr = ?
         ON CONFLICT (device) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)`,
      ),
      deleteQueue: db.prepare('DELETE FROM messages WHERE recipient = ?'),
      deleteAccountQueues: db.prepare('DELETE FROM messages WHERE recipient IN (SELECT addr FROM devices WHERE account_id = ?)'),
      deleteAccountPreKeys: db.prepare('DELETE FROM pre_keys WHERE device IN (SELECT id FROM devices WHERE account_id = ?)'),
      deleteAccountKyberPreKeys: db.prepare('DELETE FROM kyber_pre_keys WHERE device IN (SELECT id FROM devices WHERE account_id = ?)'),
      deleteAccountDevices: db.prepare('DELETE FROM devices WHERE account_id = ?'),
      deleteAccount: db.prepare('DELETE FROM accounts WHERE id = ?'),
      setSpk: db.prepare('UPDATE devices SET spk_id = ?, spk = ?, spk_sig = ? WHERE id = ?'),
      setKyberLr: db.prepare('UPDATE devices SET kyber_lr_id = ?, kyber_lr = ?, kyber_lr_sig = ? WHERE id = ?'),
      clearPreKeys: db.prepare('DELETE FROM pre_keys WHERE device = ?'),
      clearKyberPreKeys: db.prepare('DELETE FROM kyber_pre_keys WHERE device = ?'),
      insertPreKey: db.prepare('INSERT INTO pre_keys (device, key_id, public_key) VALUES (?, ?, ?)'),
      upsertPreKey: db.prepare('INSERT OR REPLACE INTO pre_keys (device, key_id, public_key) VALUES (?, ?, ?)'),
      upsertKyberPreKey: db.prepare('INSERT OR REPLACE INTO kyber_pre_keys (device, key_id, public_key, signature) VALUES (?, ?, ?, ?)'),
      insertKyberPreKey: db.prepare('INSERT INTO kyber_pre_keys (device, key_id, public_key, signature) VALUES (?, ?, ?, ?)'),
      countPreKeys: db.prepare('SELECT count(*) AS n FROM pre_keys WHERE device = ?'),
      countKyberPreKeys: db.prepare('SELECT count(*) AS n FROM kyber_pre_keys WHERE device = ?'),
      takePreKey: db.prepare(
        'DELETE FROM pre_keys WHERE device = ? AND key_id = (SELECT min(key_id) FROM pre_keys WHERE device = ?) RETURNING key_id, public_key',
      ),
      takeKyberPreKey: db.prepare(
        'DELETE FROM kyber_pre_keys WHERE device = ? AND key_id = (SELECT min(key_id) FROM kyber_pre_keys WHERE device = ?) RETURNING key_id, public_key, signature',
      ),
      deviceKeys: db.prepare(
        'SELECT id, device_id, registration_id, spk_id, spk, spk_sig, kyber_lr_id, kyber_lr, kyber_lr_sig FROM devices WHERE account_id = ? ORDER BY device_id',
      ),
      insertInvite: db.prepare('INSERT INTO invites (code_hash, created_at, expires_at) VALUES (?, ?, ?)'),
      useInvite: db.prepare('DELETE FROM invites WHERE code_hash = ? AND expires_at > ?'),
      expireInvites: db.prepare('DELETE FROM invites WHERE expires_at <= ?'),
      fetchQueue: db.prepare(
        'SELECT id, sender, sender_device, kind, body, ts, expires_at FROM messages WHERE recipient = ? AND id > ? AND expires_at > ? ORDER BY id LIMIT ?',
      ),
      expireMessages: db.prepare('DELETE FROM messages WHERE expires_at <= ?'),
      expireSentMemory: db.prepare('DELETE FROM sent_memory WHERE ts <= ?'),
    };
  }

  #insertDevice(accountId: number, username: string, deviceId: number, d: NewDevice): void {
    const k = d.keys;
    const r = this.#s.insertDevice.run(
      accountId,
      deviceId,
      addressKey({ username, deviceId }),
      d.registrationId,
      buf(d.secretSalt),
      buf(d.secretHash),
      k.signedPreKey.keyId,
      buf(k.signedPreKey.publicKey),
      buf(k.signedPreKey.signature),
      k.kyberLastResortKey.keyId,
      buf(k.kyberLastResortKey.publicKey),
      buf(k.kyberLastResortKey.signature),
    );
    const row = Number(r.lastInsertRowid);
    this.#s.insertDeviceInfo.run(row, d.name ?? '', d.createdAt ?? 0);
    for (const p of k.preKeys) this.#s.insertPreKey.run(row, p.keyId, buf(p.publicKey));
    for (const p of k.kyberPreKeys) this.#s.insertKyberPreKey.run(row, p.keyId, buf(p.publicKey), buf(p.signature));
  }

  async createAccount(
    account: { username: string; identityKey: Uint8Array; createdAt: number },
    device: NewDevice,
    invite: { hash: Uint8Array; now: number } | null,
  ): Promise<CreateAccountResult> {
    const tx = this.#db.transaction((): CreateAccountResult => {
      if (this.#s.accountId.get(account.username) !== undefined) return 'USERNAME_TAKEN';
      if (invite !== null && this.#s.useInvite.run(buf(invite.hash), invite.now).changes !== 1) return 'INVITE_INVALID';
      const first = ((this.#s.countAccounts.get() as Row)['n'] as number) === 0;
      const r = this.#s.insertAccount.run(account.username, buf(account.identityKey), account.createdAt, first ? 1 : 0);
      this.#insertDevice(Number(r.lastInsertRowid), account.username, 1, device);
      return 'ok';
    });
    const result = tx.immediate();
    // The username may have been freed by `reset-account` in another process, which cannot reach
    // this process's cached queue lengths; forget them so the new device starts from a true count.
    if (result === 'ok') this.#invalidate();
    return result;
  }

  async addDevice(username: string, device: NewDevice, maxDevices: number, maxDeviceId: number): Promise<number | 'TOO_MANY_DEVICES' | 'NOT_FOUND'> {
    const tx = this.#db.transaction((): number | 'TOO_MANY_DEVICES' | 'NOT_FOUND' => {
      const acct = this.#s.accountId.get(username) as Row | undefined;
      if (acct === undefined) return 'NOT_FOUND';
      const accountId = acct['id'] as number;
      const used = new Set((this.#s.devicesOf.all(accountId) as Row[]).map((r) => r['device_id'] as number));
      if (used.size >= maxDevices) return 'TOO_MANY_DEVICES';
      let id = 1;
      while (used.has(id)) id++;
      if (id > maxDeviceId) return 'TOO_MANY_DEVICES';
      this.#insertDevice(accountId, username, id, device);
      return id;
    });
    return tx.immediate();
  }

  async listDevices(username: string): Promise<DeviceSummary[] | undefined> {
    const read = this.#db.transaction(() => {
      if (this.#s.accountId.get(username) === undefined) return undefined;
      return (this.#s.listDevices.all(username) as Row[]).map((r) => ({
        deviceId: r['device_id'] as number,
        registrationId: r['registration_id'] as number,
        name: r['name'] as string,
        createdAt: r['created_at'] as number,
        lastSeenAt: r['last_seen'] as number,
      }));
    });
    return read();
  }

  async touchDevice(device: Address, at: number): Promise<void> {
    this.#s.touchDevice.run(at, addressKey(device));
  }

  async removeDevice(device: Address): Promise<RemoveDeviceResult> {
    const key = addressKey(device);
    // IMMEDIATE: the write lock is taken before the count, so two removals cannot both see two devices.
    const tx = this.#db.transaction((): RemoveDeviceResult => {
      const n = (this.#s.countSiblingDevices.get(key) as Row)['n'] as number;
      if (n === 0) return 'NOT_FOUND';
      if (n === 1) return 'LAST_DEVICE';
      this.#s.deleteQueue.run(key);
      return this.#s.deleteDevice.run(key).changes === 1 ? 'removed' : 'NOT_FOUND';
    });
    const removed = tx.immediate();
    if (removed !== 'removed') return removed;
    this.#purgeTickets(device.username, device.deviceId);
    this.#invalidate();
    return removed;
  }

  async removeAccount(username: string): Promise<RemovedAccount | undefined> {
    // Explicit deletes (rather than ON DELETE CASCADE) so each count is exact.
    const tx = this.#db.transaction((): RemovedAccount | undefined => {
      const a = this.#s.accountId.get(username) as Row | undefined;
      if (a === undefined) return undefined;
      const id = a['id'] as number;
      const messages = this.#s.deleteAccountQueues.run(id).changes;
      const preKeys = this.#s.deleteAccountPreKeys.run(id).changes;
      const kyberPreKeys = this.#s.deleteAccountKyberPreKeys.run(id).changes;
      const devices = this.#s.deleteAccountDevices.run(id).changes;
      this.#s.deleteAccount.run(id);
      return { devices, preKeys, kyberPreKeys, messages };
    });
    const removed = tx.immediate();
    this.#purgeTickets(username);
    if (removed !== undefined) this.#invalidate();
    return removed;
  }

  async getDeviceAuth(device: Address): Promise<DeviceAuth | undefined> {
    const r = this.#s.deviceByAddr.get(addressKey(device)) as Row | undefined;
    if (r === undefined) return undefined;
    return { registrationId: r['registration_id'] as number, secretSalt: u8(r['secret_salt']), secretHash: u8(r['secret_hash']) };
  }

  async getAccount(username: string): Promise<AccountInfo | undefined> {
    const a = this.#s.accountId.get(username) as Row | undefined;
    if (a === undefined) return undefined;
    const devices = (this.#s.devicesOf.all(a['id']) as Row[]).map((r) => ({
      deviceId: r['device_id'] as number,
      registrationId: r['registration_id'] as number,
    }));
    return { username, identityKey: u8(a['identity_key']), admin: a['admin'] === 1, devices };
  }

  async countAccounts(): Promise<number> {
    return (this.#s.countAccounts.get() as Row)['n'] as number;
  }

  async countQueued(): Promise<number> {
    return (this.#s.countQueued.get() as Row)['n'] as number;
  }

  async listAccounts(limit: number): Promise<{ accounts: AccountSummary[]; truncated: boolean }> {
    // One read transaction: accounts and their devices from the same snapshot.
    const read = this.#db.transaction(() => {
      const rows = this.#s.listAccounts.all(limit + 1) as Row[];
      const accounts = rows.slice(0, limit).map((a) => ({
        username: a['username'] as string,
        admin: a['admin'] === 1,
        createdAt: a['created_at'] as number,
        devices: (this.#s.devicesOf.all(a['id']) as Row[]).map((r) => ({ deviceId: r['device_id'] as number, registrationId: r['registration_id'] as number })),
      }));
      return { accounts, truncated: rows.length > limit };
    });
    return read();
  }

  async setAdmin(username: string, admin: boolean): Promise<boolean> {
    return this.#s.setAdmin.run(admin ? 1 : 0, username).changes === 1;
  }

  async replaceKeys(device: Address, keys: Partial<DeviceKeys>): Promise<boolean> {
    const tx = this.#db.transaction((): boolean => {
      const d = this.#s.deviceByAddr.get(addressKey(device)) as Row | undefined;
      if (d === undefined) return false;
      const row = d['id'] as number;
      if (keys.signedPreKey) this.#s.setSpk.run(keys.signedPreKey.keyId, buf(keys.signedPreKey.publicKey), buf(keys.signedPreKey.signature), row);
      if (keys.kyberLastResortKey) {
        const k = keys.kyberLastResortKey;
        this.#s.setKyberLr.run(k.keyId, buf(k.publicKey), buf(k.signature), row);
      }
      if (keys.preKeys) {
        this.#s.clearPreKeys.run(row);
        for (const p of keys.preKeys) this.#s.insertPreKey.run(row, p.keyId, buf(p.publicKey));
      }
      if (keys.kyberPreKeys) {
        this.#s.clearKyberPreKeys.run(row);
        for (const p of keys.kyberPreKeys) this.#s.insertKyberPreKey.run(row, p.keyId, buf(p.publicKey), buf(p.signature));
      }
      return true;
    });
    return tx.immediate();
  }

  async addOneTimeKeys(device: Address, keys: Pick<Partial<DeviceKeys>, 'preKeys' | 'kyberPreKeys'>, maxHeld: number): Promise<'added' | 'full' | 'unknown'> {
    const tx = this.#db.transaction((): 'added' | 'full' | 'unknown' => {
      const d = this.#s.deviceByAddr.get(addressKey(device)) as Row | undefined;
      if (d === undefined) return 'unknown';
      const row = d['id'] as number;
      for (const p of keys.preKeys ?? []) this.#s.upsertPreKey.run(row, p.keyId, buf(p.publicKey));
      for (const p of keys.kyberPreKeys ?? []) this.#s.upsertKyberPreKey.run(row, p.keyId, buf(p.publicKey), buf(p.signature));
      // Counted after the writes (a replaced id counts once); over the bound, all of it is undone.
      const pre = (this.#s.countPreKeys.get(row) as Row)['n'] as number;
      const kyber = (this.#s.countKyberPreKeys.get(row) as Row)['n'] as number;
      if (pre > maxHeld || kyber > maxHeld) throw new KeysFull();
      return 'added';
    });
    try {
      return tx.immediate();
    } catch (e) {
      if (e instanceof KeysFull) return 'full';
      throw e;
    }
  }

  async keyCounts(device: Address): Promise<{ preKeys: number; kyberPreKeys: number }> {
    const d = this.#s.deviceByAddr.get(addressKey(device)) as Row | undefined;
    if (d === undefined) return { preKeys: 0, kyberPreKeys: 0 };
    return {
      preKeys: (this.#s.countPreKeys.get(d['id']) as Row)['n'] as number,
      kyberPreKeys: (this.#s.countKyberPreKeys.get(d['id']) as Row)['n'] as number,
    };
  }

  async takeBundles(username: string, deviceId?: number): Promise<{ identityKey: Uint8Array; devices: DeviceBundleRecord[] } | undefined> {
    // One immediate transaction: the DELETE ... RETURNING of each one-time key is atomic, and the
    // write lock also serializes against other processes sharing the file.
    const tx = this.#db.transaction(() => {
      const a = this.#s.accountId.get(username) as Row | undefined;
      if (a === undefined) return undefined;
      const out: DeviceBundleRecord[] = [];
      for (const d of this.#s.deviceKeys.all(a['id']) as Row[]) {
        if (deviceId !== undefined && d['device_id'] !== deviceId) continue;
        const row = d['id'] as number;
        const pre = this.#s.takePreKey.get(row, row) as Row | undefined;
        const kyber = this.#s.takeKyberPreKey.get(row, row) as Row | undefined;
        const rec: DeviceBundleRecord = {
          deviceId: d['device_id'] as number,
          registrationId: d['registration_id'] as number,
          signedPreKey: { keyId: d['spk_id'] as number, publicKey: u8(d['spk']), signature: u8(d['spk_sig']) },
          kyberPreKey: kyber
            ? { keyId: kyber['key_id'] as number, publicKey: u8(kyber['public_key']), signature: u8(kyber['signature']) }
            : { keyId: d['kyber_lr_id'] as number, publicKey: u8(d['kyber_lr']), signature: u8(d['kyber_lr_sig']) },
          kyberPreKeyIsLastResort: kyber === undefined,
        };
        if (pre) rec.preKey = { keyId: pre['key_id'] as number, publicKey: u8(pre['public_key']) };
        out.push(rec);
      }
      return { identityKey: u8(a['identity_key']), devices: out };
    });
    return tx.immediate();
  }

  async createInvite(hash: Uint8Array, createdAt: number, expiresAt: number): Promise<void> {
    this.#s.insertInvite.run(buf(hash), createdAt, expiresAt);
  }

  /**
   * With the worker, `onAssigned` is called while the worker's commit is in flight. Inline, the
   * commit is synchronous, so there is nothing to announce early and it is not called.
   */
  async writeBatch(messages: NewMessage[], acks: { to: Address; id: number }[], maxQueue: number, onAssigned?: (results: EnqueueResult[]) => void): Promise<EnqueueResult[]> {
    if (this.#worker === undefined) return this.#writer.write(messages, acks, maxQueue);
    return this.#call({ op: 'write', seq: 0, messages, acks, maxQueue, announce: onAssigned !== undefined }, onAssigned) as Promise<EnqueueResult[]>;
  }

  async writeFanout(fanout: NewFanout, maxQueue: number): Promise<FanoutResult> {
    if (this.#worker === undefined) return this.#writer.writeFanout(fanout, maxQueue);
    return this.#call({ op: 'fanout', seq: 0, fanout, maxQueue }) as Promise<FanoutResult>;
  }

  #call(req: WorkerRequest & { seq: number }, assigned?: (results: EnqueueResult[]) => void): Promise<unknown> {
    const w = this.#worker!;
    req.seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(req.seq, { resolve, reject, ...(assigned !== undefined ? { assigned } : {}) });
      w.postMessage(req);
    });
  }

  async fetchQueue(to: Address, afterId: number, limit: number, now: number): Promise<StoredMessage[]> {
    const rows = this.#s.fetchQueue.all(addressKey(to), afterId, now, limit) as Row[];
    return rows.map((r) => ({
      id: r['id'] as number,
      to,
      from: { username: r['sender'] as string, deviceId: r['sender_device'] as number },
      kind: r['kind'] as CiphertextKind,
      body: u8(r['body']),
      timestamp: r['ts'] as number,
      expiresAt: r['expires_at'] as number,
    }));
  }

  async expire(now: number): Promise<number> {
    const tx = this.#db.transaction(() => {
      this.#s.expireInvites.run(now);
      this.#s.expireSentMemory.run(now - RESEND_WINDOW_MS);
      return this.#s.expireMessages.run(now).changes;
    });
    const n = tx.immediate();
    if (n > 0) this.#invalidate();
    for (const [k, t] of this.#tickets) if (t.expiresAt <= now) this.#tickets.delete(k);
    return n;
  }

  async putTicket(hash: Uint8Array, ticket: Ticket, expiresAt: number): Promise<void> {
    this.#tickets.set(Buffer.from(hash).toString('hex'), { ticket: { device: { ...ticket.device }, credential: Uint8Array.from(ticket.credential) }, expiresAt });
  }

  async takeTicket(hash: Uint8Array, now: number): Promise<Ticket | undefined> {
    const key = Buffer.from(hash).toString('hex');
    const t = this.#tickets.get(key);
    if (t === undefined) return undefined;
    this.#tickets.delete(key);
    return t.expiresAt > now ? t.ticket : undefined;
  }

  /** Deletes the tickets of an account's devices (of one device, if given). */
  #purgeTickets(username: string, deviceId?: number): void {
    for (const [k, t] of this.#tickets) {
      if (t.ticket.device.username === username && (deviceId === undefined || t.ticket.device.deviceId === deviceId)) this.#tickets.delete(k);
    }
  }

  /** The durability settings in force on this store's connection (for tests and operators). */
  durability(): { journalMode: string; synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA' } {
    const sync = this.#db.pragma('synchronous', { simple: true }) as number;
    return {
      journalMode: String(this.#db.pragma('journal_mode', { simple: true })),
      synchronous: (['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const)[sync] ?? 'OFF',
    };
  }

  /**
   * Checkpoints and truncates the WAL (see WAL_CHECKPOINT_INTERVAL_MS). On the writer thread when
   * there is one: it owns the writes, and waiting for readers there never stalls the event loop.
   */
  async checkpoint(): Promise<void> {
    if (this.#closed || !this.#db.open) return;
    if (this.#worker !== undefined) await this.#call({ op: 'checkpoint', seq: 0 });
    else checkpointWal(this.#db);
  }

  /** Stops the writer thread; later batches are written inline on this connection. */
  async stopWorker(): Promise<void> {
    const w = this.#worker;
    if (w === undefined) return;
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    await w.terminate();
    await exited;
  }

  #invalidate(): void {
    this.#writer.invalidate();
    this.#worker?.postMessage({ op: 'invalidate' } satisfies WorkerRequest);
  }

  async close(): Promise<void> {
    clearInterval(this.#checkpointTimer);
    if (this.#worker !== undefined && !this.#closed) {
      this.#closed = true;
      await this.#call({ op: 'close', seq: 0 });
      await this.#worker.terminate();
    }
    if (this.#db.open) this.#db.close();
  }
}
