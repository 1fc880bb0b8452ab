/**
 * PostgreSQL + Redis adapter, for several server nodes sharing one database.
 *
 * PostgreSQL holds accounts, devices, keys, invites and mailboxes (durable: commits wait for the
 * WAL flush under the default `synchronous_commit = on`). Redis holds what is short-lived and
 * shared between nodes: WebSocket tickets. The schema is versioned (postgres-migrations.ts).
 *
 * Order, per recipient queue, with no lock shared by every send: a batch write (the write_batch
 * function of migration 3, one call) first locks the device row of each recipient it writes to
 * (`FOR NO KEY UPDATE`, in address order, so two batches never wait on each other in a cycle), and
 * only then takes ids from the shared sequence; the row locks are held until commit. So for one recipient, a later transaction can take its ids only
 * after every earlier one has committed, and ids increase in commit order per recipient queue. A
 * reader paging that queue by `id > cursor` never skips a message that commits later: any
 * message still uncommitted when it read will get a larger id than everything it saw. Batches to
 * different recipients never wait for each other; the sequence is a non-transactional counter
 * (no lock held past the call; it must stay uncached, migration 2). Removal of a device or
 * account locks the same rows first, so a message cannot land in a queue being emptied.
 * The argument is written out in docs/OPERATIONS.md ("Write path").
 */
import pg from 'pg';
import { migrate, type MigrationReport } from './postgres-migrations.js';
import { RESEND_MEMORY_PER_DEVICE, RESEND_WINDOW_MS } from './resend.js';
import type { Redis } from 'ioredis';
import { checkDeviceLists, fanoutTargets, resentFanout, type FanoutResult, type NewFanout, type StoredCopy } from './fanout.js';
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

/** Advisory lock serializing account creation, so exactly one first account becomes admin. */
const ACCOUNTS_LOCK = 0x74616361; // "taca"

type Row = Record<string, unknown>;
const u8 = (b: unknown): Uint8Array => {
  const x = b as Buffer;
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
};
const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const num = (v: unknown): number => Number(v);

export interface PostgresStoreOptions {
  /** node-postgres pool settings (host, port, database, user, ...). */
  pg: pg.PoolConfig;
  /** A connected ioredis client; the store does not close it unless `ownsRedis`. */
  redis: Redis;
  ownsRedis?: boolean;
  /** Schema holding the tables (created if absent). Default `tacit`. */
  schema?: string;
  /** Prefix of Redis keys. Default `tacit:`. */
  redisPrefix?: string;
}

/**
 * Inserts messages in one statement and returns their ids, in input order. Ids are allocated
 * first, ascending, so each row gets the id of its place; the caller holds its recipients'
 * device rows, so ids increase in commit order per recipient (see "Order" above).
 */
async function insertMessages(
  c: pg.PoolClient,
  rows: { key: string; from: Address; kind: CiphertextKind; body: Uint8Array; timestamp: number; expiresAt: number }[],
): Promise<number[]> {
  const ids = (await c.query("SELECT nextval('messages_id_seq') AS id FROM generate_series(1, $1)", [rows.length])).rows
    .map((r: Row) => num(r['id']))
    .sort((x: number, y: number) => x - y);
  await c.query(
    `INSERT INTO messages (id, recipient, sender, sender_device, kind, body, ts, expires_at)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::smallint[], $6::bytea[], $7::bigint[], $8::bigint[])`,
    [
      ids,
      rows.map((r) => r.key),
      rows.map((r) => r.from.username),
      rows.map((r) => r.from.deviceId),
      rows.map((r) => r.kind),
      rows.map((r) => buf(r.body)),
      rows.map((r) => r.timestamp),
      rows.map((r) => r.expiresAt),
    ],
  );
  return ids;
}

/** Rolls back an addOneTimeKeys transaction that went over its bound. */
class KeysFull extends Error {}

export class PostgresStore implements Store {
  readonly #pool: pg.Pool;
  readonly #redis: Redis;
  readonly #ownsRedis: boolean;
  readonly #prefix: string;

  /** What `open` did to the schema (versions before and after, migrations applied). */
  readonly migration: MigrationReport;

  private constructor(pool: pg.Pool, redis: Redis, ownsRedis: boolean, prefix: string, migration: MigrationReport) {
    this.#pool = pool;
    this.#redis = redis;
    this.#ownsRedis = ownsRedis;
    this.#prefix = prefix;
    this.migration = migration;
  }

  /**
   * Connects and brings the schema up to date (creating it if absent), under the migration lock,
   * so several nodes may open at once. Throws SchemaError on a schema newer than this code.
   */
  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const schema = opts.schema ?? 'tacit';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error('schema must be a lower-case SQL identifier');
    const admin = new pg.Client(opts.pg);
    // A connection lost mid-migration surfaces as the failing query's error, not as a crash.
    admin.on('error', () => undefined);
    let migration: MigrationReport;
    try {
      await admin.connect();
      migration = await migrate(admin, schema);
    } catch (e) {
      if (opts.ownsRedis === true) opts.redis.disconnect();
      throw e;
    } finally {
      await admin.end().catch(() => undefined);
    }
    const pool = new pg.Pool({ ...opts.pg, options: `-c search_path=${schema}` });
    // An idle client's error (e.g. the server restarting) must not crash the process.
    pool.on('error', () => undefined);
    return new PostgresStore(pool, opts.redis, opts.ownsRedis ?? false, opts.redisPrefix ?? 'tacit:', migration);
  }

  async #tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.#pool.connect();
    try {
      await c.query('BEGIN');
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

  async #insertDevice(c: pg.PoolClient, accountId: number, username: string, deviceId: number, d: NewDevice): Promise<void> {
    const k = d.keys;
    const r = await c.query(
      `INSERT INTO devices (account_id, device_id, addr, registration_id, secret_salt, secret_hash, spk_id, spk, spk_sig, kyber_lr_id, kyber_lr, kyber_lr_sig)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
      [
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
      ],
    );
    const row = num((r.rows[0] as Row)['id']);
    await c.query('INSERT INTO device_info (device, name, created_at, last_seen) VALUES ($1, $2, $3, 0)', [row, d.name ?? '', d.createdAt ?? 0]);
    await this.#insertOneTimeKeys(c, row, k);
  }

  async #insertOneTimeKeys(c: pg.PoolClient, row: number, k: Partial<DeviceKeys>): Promise<void> {
    if (k.preKeys && k.preKeys.length > 0) {
      await c.query('INSERT INTO pre_keys (device, key_id, public_key) SELECT $1, * FROM unnest($2::bigint[], $3::bytea[])', [
        row,
        k.preKeys.map((p) => p.keyId),
        k.preKeys.map((p) => buf(p.publicKey)),
      ]);
    }
    if (k.kyberPreKeys && k.kyberPreKeys.length > 0) {
      await c.query('INSERT INTO kyber_pre_keys (device, key_id, public_key, signature) SELECT $1, * FROM unnest($2::bigint[], $3::bytea[], $4::bytea[])', [
        row,
        k.kyberPreKeys.map((p) => p.keyId),
        k.kyberPreKeys.map((p) => buf(p.publicKey)),
        k.kyberPreKeys.map((p) => buf(p.signature)),
      ]);
    }
  }

  async createAccount(
    account: { username: string; identityKey: Uint8Array; createdAt: number },
    device: NewDevice,
    invite: { hash: Uint8Array; now: number } | null,
  ): Promise<CreateAccountResult> {
    try {
      return await this.#tx(async (c) => {
        // Under the lock each statement's snapshot sees every earlier registration, so "no
        // account yet" is true for exactly one of two concurrent first registrations.
        await c.query('SELECT pg_advisory_xact_lock($1)', [ACCOUNTS_LOCK]);
        const a = await c.query(
          `INSERT INTO accounts (username, identity_key, created_at, admin) VALUES ($1, $2, $3, NOT EXISTS (SELECT 1 FROM accounts))
           ON CONFLICT (username) DO NOTHING RETURNING id`,
          [account.username, buf(account.identityKey), account.createdAt],
        );
        if (a.rowCount !== 1) throw new Abort('USERNAME_TAKEN');
        if (invite !== null) {
          const i = await c.query('DELETE FROM invites WHERE code_hash = $1 AND expires_at > $2', [buf(invite.hash), invite.now]);
          if (i.rowCount !== 1) throw new Abort('INVITE_INVALID');
        }
        await this.#insertDevice(c, num((a.rows[0] as Row)['id']), account.username, 1, device);
        return 'ok' as const;
      });
    } catch (e) {
      if (e instanceof Abort) return e.result as CreateAccountResult;
      throw e;
    }
  }

  async addDevice(username: string, device: NewDevice, maxDevices: number, maxDeviceId: number): Promise<number | 'TOO_MANY_DEVICES' | 'NOT_FOUND'> {
    return this.#tx(async (c) => {
      // The account row lock serializes device id allocation.
      const a = await c.query('SELECT id FROM accounts WHERE username = $1 FOR UPDATE', [username]);
      if (a.rowCount !== 1) return 'NOT_FOUND' as const;
      const accountId = num((a.rows[0] as Row)['id']);
      const used = new Set((await c.query('SELECT device_id FROM devices WHERE account_id = $1', [accountId])).rows.map((r: Row) => num(r['device_id'])));
      if (used.size >= maxDevices) return 'TOO_MANY_DEVICES' as const;
      let id = 1;
      while (used.has(id)) id++;
      if (id > maxDeviceId) return 'TOO_MANY_DEVICES' as const;
      await this.#insertDevice(c, accountId, username, id, device);
      return id;
    });
  }

  async listDevices(username: string): Promise<DeviceSummary[] | undefined> {
    // One statement, one snapshot: the account and its devices together.
    const r = await this.#pool.query(
      `SELECT d.device_id, d.registration_id, coalesce(i.name, '') AS name, coalesce(i.created_at, a.created_at) AS created_at, coalesce(i.last_seen, 0) AS last_seen
       FROM accounts a LEFT JOIN devices d ON d.account_id = a.id LEFT JOIN device_info i ON i.device = d.id WHERE a.username = $1 ORDER BY d.device_id`,
      [username],
    );
    if (r.rowCount === 0) return undefined;
    return r.rows
      .filter((x: Row) => x['device_id'] !== null)
      .map((x: Row) => ({
        deviceId: num(x['device_id']),
        registrationId: num(x['registration_id']),
        name: x['name'] as string,
        createdAt: num(x['created_at']),
        lastSeenAt: num(x['last_seen']),
      }));
  }

  async touchDevice(device: Address, at: number): Promise<void> {
    await this.#pool.query(
      `INSERT INTO device_info (device, name, created_at, last_seen) SELECT d.id, '', a.created_at, $1 FROM devices d JOIN accounts a ON a.id = d.account_id WHERE d.addr = $2
       ON CONFLICT (device) DO UPDATE SET last_seen = greatest(device_info.last_seen, excluded.last_seen)`,
      [at, addressKey(device)],
    );
  }

  async removeDevice(device: Address): Promise<RemoveDeviceResult> {
    const key = addressKey(device);
    const removed = await this.#tx(async (c): Promise<RemoveDeviceResult> => {
      // The account row first (as addDevice and removeAccount take it): removals of two devices of
      // one account run one after the other, so the second counts what the first left.
      const a = await c.query('SELECT id FROM accounts WHERE username = $1 FOR UPDATE', [device.username]);
      if (a.rowCount !== 1) return 'NOT_FOUND';
      // Then the device row: a batch write holding it commits before the queue is emptied, and
      // one that comes later finds no device (see "Order" above).
      if ((await c.query('SELECT 1 FROM devices WHERE addr = $1 FOR UPDATE', [key])).rowCount !== 1) return 'NOT_FOUND';
      const n = num(((await c.query('SELECT count(*) AS n FROM devices WHERE account_id = $1', [num((a.rows[0] as Row)['id'])])).rows[0] as Row)['n']);
      if (n <= 1) return 'LAST_DEVICE';
      await c.query('DELETE FROM messages WHERE recipient = $1', [key]);
      return (await c.query('DELETE FROM devices WHERE addr = $1', [key])).rowCount === 1 ? 'removed' : 'NOT_FOUND';
    });
    if (removed === 'removed') await this.#purgeTickets(device.username, device.deviceId);
    return removed;
  }

  async removeAccount(username: string): Promise<RemovedAccount | undefined> {
    const removed = await this.#tx(async (c) => {
      const a = await c.query('SELECT id FROM accounts WHERE username = $1 FOR UPDATE', [username]);
      if (a.rowCount !== 1) return undefined;
      const id = num((a.rows[0] as Row)['id']);
      // The device rows before the queues, in the batch writes' order: a concurrent batch that
      // locked one of them commits first (its messages are then deleted below), and a later one
      // finds the device gone, so nothing lands in a queue of a re-registered device.
      await c.query('SELECT 1 FROM devices WHERE account_id = $1 ORDER BY addr FOR UPDATE', [id]);
      // Explicit deletes (rather than ON DELETE CASCADE) so each count is exact.
      const messages = await c.query('DELETE FROM messages WHERE recipient IN (SELECT addr FROM devices WHERE account_id = $1)', [id]);
      const preKeys = await c.query('DELETE FROM pre_keys WHERE device IN (SELECT id FROM devices WHERE account_id = $1)', [id]);
      const kyberPreKeys = await c.query('DELETE FROM kyber_pre_keys WHERE device IN (SELECT id FROM devices WHERE account_id = $1)', [id]);
      const devices = await c.query('DELETE FROM devices WHERE account_id = $1', [id]);
      await c.query('DELETE FROM accounts WHERE id = $1', [id]);
      return {
        devices: devices.rowCount ?? 0,
        preKeys: preKeys.rowCount ?? 0,
        kyberPreKeys: kyberPreKeys.rowCount ?? 0,
        messages: messages.rowCount ?? 0,
      };
    });
    await this.#purgeTickets(username);
    return removed;
  }

  async getDeviceAuth(device: Address): Promise<DeviceAuth | undefined> {
    const r = await this.#pool.query('SELECT registration_id, secret_salt, secret_hash FROM devices WHERE addr = $1', [addressKey(device)]);
    const row = r.rows[0] as Row | undefined;
    if (row === undefined) return undefined;
    return { registrationId: num(row['registration_id']), secretSalt: u8(row['secret_salt']), secretHash: u8(row['secret_hash']) };
  }

  async getAccount(username: string): Promise<AccountInfo | undefined> {
    const a = await this.#pool.query('SELECT id, identity_key, admin FROM accounts WHERE username = $1', [username]);
    const row = a.rows[0] as Row | undefined;
    if (row === undefined) return undefined;
    const d = await this.#pool.query('SELECT device_id, registration_id FROM devices WHERE account_id = $1 ORDER BY device_id', [row['id']]);
    return {
      username,
      identityKey: u8(row['identity_key']),
      admin: row['admin'] === true,
      devices: d.rows.map((r: Row) => ({ deviceId: num(r['device_id']), registrationId: num(r['registration_id']) })),
    };
  }

  async countAccounts(): Promise<number> {
    return num(((await this.#pool.query('SELECT count(*) AS n FROM accounts')).rows[0] as Row)['n']);
  }

  async countQueued(): Promise<number> {
    return num(((await this.#pool.query('SELECT count(*) AS n FROM messages')).rows[0] as Row)['n']);
  }

  async listAccounts(limit: number): Promise<{ accounts: AccountSummary[]; truncated: boolean }> {
    // One statement, one snapshot: accounts and their devices agree.
    const r = await this.#pool.query(
      `SELECT a.username, a.admin, a.created_at, d.device_id, d.registration_id
       FROM (SELECT id, username, admin, created_at FROM accounts ORDER BY username LIMIT $1) a
       LEFT JOIN devices d ON d.account_id = a.id
       ORDER BY a.username, d.device_id`,
      [limit + 1],
    );
    const accounts: AccountSummary[] = [];
    for (const row of r.rows as Row[]) {
      let last = accounts[accounts.length - 1];
      if (last === undefined || last.username !== row['username']) {
        last = { username: row['username'] as string, admin: row['admin'] === true, createdAt: num(row['created_at']), devices: [] };
        accounts.push(last);
      }
      if (row['device_id'] !== null) last.devices.push({ deviceId: num(row['device_id']), registrationId: num(row['registration_id']) });
    }
    return { accounts: accounts.slice(0, limit), truncated: accounts.length > limit };
  }

  async setAdmin(username: string, admin: boolean): Promise<boolean> {
    return (await this.#pool.query('UPDATE accounts SET admin = $1 WHERE username = $2', [admin, username])).rowCount === 1;
  }

  async replaceKeys(device: Address, keys: Partial<DeviceKeys>): Promise<boolean> {
    return this.#tx(async (c) => {
      const d = await c.query('SELECT id FROM devices WHERE addr = $1 FOR UPDATE', [addressKey(device)]);
      if (d.rowCount !== 1) return false;
      const row = num((d.rows[0] as Row)['id']);
      if (keys.signedPreKey) {
        const k = keys.signedPreKey;
        await c.query('UPDATE devices SET spk_id = $1, spk = $2, spk_sig = $3 WHERE id = $4', [k.keyId, buf(k.publicKey), buf(k.signature), row]);
      }
      if (keys.kyberLastResortKey) {
        const k = keys.kyberLastResortKey;
        await c.query('UPDATE devices SET kyber_lr_id = $1, kyber_lr = $2, kyber_lr_sig = $3 WHERE id = $4', [k.keyId, buf(k.publicKey), buf(k.signature), row]);
      }
      if (keys.preKeys) await c.query('DELETE FROM pre_keys WHERE device = $1', [row]);
      if (keys.kyberPreKeys) await c.query('DELETE FROM kyber_pre_keys WHERE device = $1', [row]);
      await this.#insertOneTimeKeys(c, row, keys);
      return true;
    });
  }

  async addOneTimeKeys(device: Address, keys: Pick<Partial<DeviceKeys>, 'preKeys' | 'kyberPreKeys'>, maxHeld: number): Promise<'added' | 'full' | 'unknown'> {
    try {
      return await this.#tx(async (c) => {
        // The device row locked: concurrent adds and replaces of one device run one at a time.
        const d = await c.query('SELECT id FROM devices WHERE addr = $1 FOR UPDATE', [addressKey(device)]);
        if (d.rowCount !== 1) return 'unknown';
        const row = num((d.rows[0] as Row)['id']);
        const pre = keys.preKeys ?? [];
        const kyber = keys.kyberPreKeys ?? [];
        if (pre.length > 0) {
          await c.query(
            'INSERT INTO pre_keys (device, key_id, public_key) SELECT $1, * FROM unnest($2::bigint[], $3::bytea[]) ON CONFLICT (device, key_id) DO UPDATE SET public_key = EXCLUDED.public_key',
            [row, pre.map((p) => p.keyId), pre.map((p) => buf(p.publicKey))],
          );
        }
        if (kyber.length > 0) {
          await c.query(
            'INSERT INTO kyber_pre_keys (device, key_id, public_key, signature) SELECT $1, * FROM unnest($2::bigint[], $3::bytea[], $4::bytea[]) ON CONFLICT (device, key_id) DO UPDATE SET public_key = EXCLUDED.public_key, signature = EXCLUDED.signature',
            [row, kyber.map((p) => p.keyId), kyber.map((p) => buf(p.publicKey)), kyber.map((p) => buf(p.signature))],
          );
        }
        // Counted after the writes (a replaced id counts once); over the bound, all of it is undone.
        const n = await c.query('SELECT (SELECT count(*) FROM pre_keys WHERE device = $1) AS pre, (SELECT count(*) FROM kyber_pre_keys WHERE device = $1) AS kyber', [row]);
        const counts = n.rows[0] as Row;
        if (num(counts['pre']) > maxHeld || num(counts['kyber']) > maxHeld) throw new KeysFull();
        return 'added' as const;
      });
    } catch (e) {
      if (e instanceof KeysFull) return 'full';
      throw e;
    }
  }

  async keyCounts(device: Address): Promise<{ preKeys: number; kyberPreKeys: number }> {
    const r = await this.#pool.query(
      `SELECT (SELECT count(*) FROM pre_keys p WHERE p.device = d.id) AS pre, (SELECT count(*) FROM kyber_pre_keys k WHERE k.device = d.id) AS kyber
       FROM devices d WHERE d.addr = $1`,
      [addressKey(device)],
    );
    const row = r.rows[0] as Row | undefined;
    return row === undefined ? { preKeys: 0, kyberPreKeys: 0 } : { preKeys: num(row['pre']), kyberPreKeys: num(row['kyber']) };
  }

  async takeBundles(username: string, deviceId?: number): Promise<{ identityKey: Uint8Array; devices: DeviceBundleRecord[] } | undefined> {
    return this.#tx(async (c) => {
      const a = await c.query('SELECT id, identity_key FROM accounts WHERE username = $1', [username]);
      const acct = a.rows[0] as Row | undefined;
      if (acct === undefined) return undefined;
      const ds = await c.query(
        'SELECT id, device_id, registration_id, spk_id, spk, spk_sig, kyber_lr_id, kyber_lr, kyber_lr_sig FROM devices WHERE account_id = $1 ORDER BY device_id',
        [acct['id']],
      );
      const out: DeviceBundleRecord[] = [];
      for (const d of ds.rows as Row[]) {
        if (deviceId !== undefined && num(d['device_id']) !== deviceId) continue;
        // SKIP LOCKED: concurrent fetches each take a different row instead of waiting for (and
        // then missing) the one another transaction is deleting.
        const pre = (
          await c.query(
            `DELETE FROM pre_keys WHERE (device, key_id) = (SELECT device, key_id FROM pre_keys WHERE device = $1 ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING key_id, public_key`,
            [d['id']],
          )
        ).rows[0] as Row | undefined;
        const kyber = (
          await c.query(
            `DELETE FROM kyber_pre_keys WHERE (device, key_id) = (SELECT device, key_id FROM kyber_pre_keys WHERE device = $1 ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING key_id, public_key, signature`,
            [d['id']],
          )
        ).rows[0] as Row | undefined;
        const rec: DeviceBundleRecord = {
          deviceId: num(d['device_id']),
          registrationId: num(d['registration_id']),
          signedPreKey: { keyId: num(d['spk_id']), publicKey: u8(d['spk']), signature: u8(d['spk_sig']) },
          kyberPreKey: kyber
            ? { keyId: num(kyber['key_id']), publicKey: u8(kyber['public_key']), signature: u8(kyber['signature']) }
            : { keyId: num(d['kyber_lr_id']), publicKey: u8(d['kyber_lr']), signature: u8(d['kyber_lr_sig']) },
          kyberPreKeyIsLastResort: kyber === undefined,
        };
        if (pre) rec.preKey = { keyId: num(pre['key_id']), publicKey: u8(pre['public_key']) };
        out.push(rec);
      }
      return { identityKey: u8(acct['identity_key']), devices: out };
    });
  }

  async createInvite(hash: Uint8Array, createdAt: number, expiresAt: number): Promise<void> {
    await this.#pool.query('INSERT INTO invites (code_hash, created_at, expires_at) VALUES ($1, $2, $3)', [buf(hash), createdAt, expiresAt]);
  }

  async writeBatch(messages: NewMessage[], acks: { to: Address; id: number }[], maxQueue: number): Promise<EnqueueResult[]> {
    if (messages.length === 0 && acks.length === 0) return [];
    // One call (migration 6's write_batch_once around migration 3's write_batch, in its own
    // transaction): answer resends from the senders' memory (resend.ts), then lock the recipients'
    // device rows in address order, delete the acknowledged rows, check each message (device,
    // expected registration id, queue cap) under the locks, take ids from the sequence, insert,
    // and remember each new message's digest.
    const r = await this.#pool.query({
      name: 'write_batch_once',
      text: 'SELECT status, id, after, ts FROM write_batch_once($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)',
      values: [
        acks.map((a) => a.id),
        acks.map((a) => addressKey(a.to)),
        messages.map((m) => addressKey(m.to)),
        messages.map((m) => m.expectedRegistrationId ?? null),
        messages.map((m) => m.from.username),
        messages.map((m) => m.from.deviceId),
        messages.map((m) => m.kind),
        messages.map((m) => buf(m.body)),
        messages.map((m) => m.timestamp),
        messages.map((m) => m.expiresAt),
        messages.map((m) => (m.digest === undefined ? null : buf(m.digest))),
        maxQueue,
        RESEND_WINDOW_MS,
        RESEND_MEMORY_PER_DEVICE,
      ],
    });
    return (r.rows as Row[]).map((row): EnqueueResult => {
      const status = num(row['status']);
      if (status === 0) return { ok: true, id: num(row['id']), after: num(row['after']) };
      if (status === 4) return { ok: true, id: num(row['id']), resent: num(row['ts']) };
      return { ok: false, code: status === 1 ? 'NOT_FOUND' : status === 2 ? 'STALE_DEVICE' : 'MAILBOX_FULL' };
    });
  }

  async writeFanout(f: NewFanout, maxQueue: number): Promise<FanoutResult> {
    return this.#tx(async (c) => {
      const sender = addressKey(f.from);
      if (f.digest !== undefined) {
        // The sender's ring head first (as write_batch_once, before any recipient lock), so two
        // nodes writing the same device's sends take turns; then a resend of a stored fan-out is
        // answered as it was (resend.ts), before any other check.
        await c.query('INSERT INTO sent_memory_heads (sender, next) VALUES ($1, 0) ON CONFLICT (sender) DO NOTHING', [sender]);
        await c.query('SELECT 1 FROM sent_memory_heads WHERE sender = $1 FOR UPDATE', [sender]);
        const seen = (await c.query('SELECT message_id, ts FROM sent_memory WHERE sender = $1 AND digest = $2 AND ts > $3 LIMIT 1', [sender, buf(f.digest), f.timestamp - RESEND_WINDOW_MS]))
          .rows as Row[];
        if (seen[0] !== undefined) return resentFanout(f, num(seen[0]['ts']), num(seen[0]['message_id']));
      }
      // The named accounts (FOR SHARE: addDevice locks its account FOR UPDATE, so no device can be
      // added before this commits), then every device of them in address order (FOR NO KEY
      // UPDATE, as writeBatch locks its recipients: per-recipient order, and no device removed in
      // between; see "Order" above). Accounts before devices, as removeAccount takes them.
      const usernames = [...f.recipients.map((r) => r.username)].sort();
      const accounts = (await c.query('SELECT id, username FROM accounts WHERE username = ANY($1::text[]) ORDER BY username FOR SHARE', [usernames])).rows as Row[];
      const current = new Map<string, Map<number, number>>(accounts.map((a) => [String(a['username']), new Map()]));
      const nameOf = new Map(accounts.map((a) => [num(a['id']), String(a['username'])]));
      const rows = (
        await c.query('SELECT account_id, device_id, registration_id FROM devices WHERE account_id = ANY($1::bigint[]) ORDER BY addr FOR NO KEY UPDATE', [
          accounts.map((a) => num(a['id'])),
        ])
      ).rows as Row[];
      for (const r of rows) current.get(nameOf.get(num(r['account_id']))!)!.set(num(r['device_id']), num(r['registration_id']));
      const refused = checkDeviceLists(f, (u) => current.get(u));
      if (refused !== null) return { ok: false, ...refused };
      const targets = [...fanoutTargets(f)];
      const keys = [...new Set(targets.map((t) => addressKey(t.to)))];
      // Under the row locks: exact queue lengths, and the newest id in each queue (`after`).
      const lengths = new Map<string, number>();
      const last = new Map<string, number>();
      for (const r of (await c.query('SELECT recipient, count(*) AS n, max(id) AS last FROM messages WHERE recipient = ANY($1::text[]) GROUP BY recipient', [keys])).rows as Row[]) {
        lengths.set(String(r['recipient']), num(r['n']));
        last.set(String(r['recipient']), num(r['last']));
      }
      const stored: (StoredCopy | null)[][] = f.recipients.map((r) => r.devices.map(() => null));
      const mailboxFull: Address[] = [];
      const accepted: typeof targets = [];
      for (const t of targets) {
        const key = addressKey(t.to);
        const n = lengths.get(key) ?? 0;
        if (n >= maxQueue) {
          mailboxFull.push(t.to);
          continue;
        }
        lengths.set(key, n + 1);
        accepted.push(t);
      }
      if (accepted.length > 0) {
        const newIds = await insertMessages(
          c,
          accepted.map((t) => ({ ...f, key: addressKey(t.to), kind: t.device.kind, body: t.device.body })),
        );
        accepted.forEach((t, k) => {
          const key = addressKey(t.to);
          stored[t.i]![t.j] = { id: newIds[k]!, after: last.get(key) ?? 0 };
          last.set(key, newIds[k]!);
        });
        if (f.digest !== undefined) {
          const slot = num(((await c.query('UPDATE sent_memory_heads SET next = next + 1 WHERE sender = $1 RETURNING next', [sender])).rows as Row[])[0]!['next']);
          await c.query(
            'INSERT INTO sent_memory (sender, slot, digest, message_id, ts) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sender, slot) DO UPDATE SET digest = EXCLUDED.digest, message_id = EXCLUDED.message_id, ts = EXCLUDED.ts',
            [sender, slot % RESEND_MEMORY_PER_DEVICE, buf(f.digest), accepted.length, f.timestamp],
          );
        }
      }
      return { ok: true, stored, mailboxFull };
    });
  }

  async fetchQueue(to: Address, afterId: number, limit: number, now: number): Promise<StoredMessage[]> {
    const r = await this.#pool.query(
      'SELECT id, sender, sender_device, kind, body, ts, expires_at FROM messages WHERE recipient = $1 AND id > $2 AND expires_at > $3 ORDER BY id LIMIT $4',
      [addressKey(to), afterId, now, limit],
    );
    return (r.rows as Row[]).map((row) => ({
      id: num(row['id']),
      to,
      from: { username: String(row['sender']), deviceId: num(row['sender_device']) },
      kind: num(row['kind']) as CiphertextKind,
      body: u8(row['body']),
      timestamp: num(row['ts']),
      expiresAt: num(row['expires_at']),
    }));
  }

  async expire(now: number): Promise<number> {
    await this.#pool.query('DELETE FROM invites WHERE expires_at <= $1', [now]);
    await this.#pool.query('DELETE FROM sent_memory WHERE ts <= $1', [now - RESEND_WINDOW_MS]);
    return (await this.#pool.query('DELETE FROM messages WHERE expires_at <= $1', [now])).rowCount ?? 0;
  }

  #ticketKey(hash: Uint8Array): string {
    return `${this.#prefix}ticket:${Buffer.from(hash).toString('hex')}`;
  }

  /** The set of an account's live tickets (members `deviceId:hash`), for purging on removal. */
  #ticketsOfKey(username: string): string {
    return `${this.#prefix}tickets-of:${username}`;
  }

  async putTicket(hash: Uint8Array, ticket: Ticket, expiresAt: number): Promise<void> {
    // The stored expiry decides (by the caller's clock); Redis drops the key a minute after it
    // at the latest, so unused tickets do not accumulate.
    const ttl = Math.min(Math.max(expiresAt - Date.now(), 0), 10 * 60_000) + 60_000;
    const { username, deviceId } = ticket.device;
    const value = JSON.stringify({ username, deviceId, credential: Buffer.from(ticket.credential).toString('base64'), expiresAt });
    await this.#redis
      .multi()
      .set(this.#ticketKey(hash), value, 'PX', ttl, 'NX')
      .sadd(this.#ticketsOfKey(username), `${deviceId}:${Buffer.from(hash).toString('hex')}`)
      .pexpire(this.#ticketsOfKey(username), ttl)
      .exec();
  }

  async takeTicket(hash: Uint8Array, now: number): Promise<Ticket | undefined> {
    const v = await this.#redis.getdel(this.#ticketKey(hash));
    if (v === null) return undefined;
    const t = JSON.parse(v) as Address & { credential: string; expiresAt: number };
    await this.#redis.srem(this.#ticketsOfKey(t.username), `${t.deviceId}:${Buffer.from(hash).toString('hex')}`);
    if (!(t.expiresAt > now)) return undefined;
    return { device: { username: t.username, deviceId: t.deviceId }, credential: new Uint8Array(Buffer.from(t.credential, 'base64')) };
  }

  /** Deletes the tickets of an account's devices (of one device, if given). */
  async #purgeTickets(username: string, deviceId?: number): Promise<void> {
    const setKey = this.#ticketsOfKey(username);
    const members = await this.#redis.smembers(setKey);
    const mine = members.filter((m) => deviceId === undefined || m.startsWith(`${deviceId}:`));
    if (mine.length === 0) return;
    const hex = (m: string) => m.slice(m.indexOf(':') + 1);
    await this.#redis
      .multi()
      .del(...mine.map((m) => `${this.#prefix}ticket:${hex(m)}`))
      .srem(setKey, ...mine)
      .exec();
  }

  async close(): Promise<void> {
    await this.#pool.end();
    if (this.#ownsRedis) this.#redis.disconnect();
  }
}

/** Rolls a transaction back with a result instead of an error. */
class Abort extends Error {
  constructor(readonly result: string) {
    super(result);
  }
}
