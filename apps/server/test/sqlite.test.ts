import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { sendDigest, SqliteStore } from '../src/index.js';
import { storeConformance } from './store-conformance.js';
import { ID_GAP_ON_OPEN, MessageBatchWriter } from '../src/sqlite-batch.js';
import { configureConnection } from '../src/sqlite-connection.js';

storeConformance('sqlite (memory)', async () => new SqliteStore({ path: ':memory:' }));

const dirs: string[] = [];
storeConformance('sqlite (file)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  return new SqliteStore({ path: join(dir, 'sub', 'tacit.db') });
});

storeConformance('sqlite (file, worker)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  return new SqliteStore({ path: join(dir, 'tacit.db'), worker: true });
});

test('sqlite: WAL with synchronous=FULL (acknowledged messages survive power loss)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  const path = join(dir, 'tacit.db');
  const s = new SqliteStore({ path });
  assert.deepEqual(s.durability(), { journalMode: 'wal', synchronous: 'FULL' });
  await s.close();
  // WAL is persistent in the file.
  const db = new Database(path);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  db.close();
});

test('sqlite: if the writer thread dies, batches are written inline and ids keep increasing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  const s = new SqliteStore({ path: join(dir, 'tacit.db'), worker: true });
  try {
    const dev = { registrationId: 1, secretSalt: new Uint8Array(16), secretHash: new Uint8Array(32), keys: { signedPreKey: { keyId: 1, publicKey: new Uint8Array(33), signature: new Uint8Array(64) }, kyberLastResortKey: { keyId: 1, publicKey: new Uint8Array(1569), signature: new Uint8Array(64) }, preKeys: [], kyberPreKeys: [] } };
    assert.equal(await s.createAccount({ username: 'ann', identityKey: new Uint8Array(33), createdAt: 0 }, dev, null), 'ok');
    const to = { username: 'ann', deviceId: 1 };
    const msg = { to, from: to, kind: 2 as const, body: new Uint8Array([1]), timestamp: 1, expiresAt: 1e15 };
    const [a] = await s.writeBatch([msg], [], 10);
    await s.stopWorker();
    const [b] = await s.writeBatch([msg], [], 10);
    assert.ok(a?.ok && b?.ok && b.id > a.id);
    assert.equal((await s.fetchQueue(to, 0, 10, 0)).length, 2);
  } finally {
    await s.close();
  }
});

test('sqlite worker: ids are announced before the commit, once, equal to the final ones; reopening the file skips ID_GAP_ON_OPEN ids', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  const path = join(dir, 'tacit.db');
  let s = new SqliteStore({ path, worker: true });
  const to = { username: 'ann', deviceId: 1 };
  const msg = { to, from: to, kind: 2 as const, body: new Uint8Array([1]), timestamp: 1, expiresAt: 1e15 };
  try {
    const dev = { registrationId: 1, secretSalt: new Uint8Array(16), secretHash: new Uint8Array(32), keys: { signedPreKey: { keyId: 1, publicKey: new Uint8Array(33), signature: new Uint8Array(64) }, kyberLastResortKey: { keyId: 1, publicKey: new Uint8Array(1569), signature: new Uint8Array(64) }, preKeys: [], kyberPreKeys: [] } };
    assert.equal(await s.createAccount({ username: 'ann', identityKey: new Uint8Array(33), createdAt: 0 }, dev, null), 'ok');
    const announced: unknown[] = [];
    const results = await s.writeBatch([msg, { ...msg, to: { username: 'nobody', deviceId: 1 } }, msg], [], 10, (r) => announced.push(r));
    assert.deepEqual(announced, [results]);
    assert.ok(results[0]?.ok && !results[1]?.ok && results[2]?.ok);
    // Acks only: nothing to announce.
    await s.writeBatch([], [{ to, id: 1 }], 10, (r) => announced.push(r));
    assert.equal(announced.length, 1);
    const last = results[2]!.ok ? results[2]!.id : 0;
    await s.close();
    s = new SqliteStore({ path, worker: true });
    const [next] = await s.writeBatch([msg], [], 10);
    assert.ok(next?.ok && next.id > last + ID_GAP_ON_OPEN - 1);
  } finally {
    await s.close();
  }
});

test('sqlite: an account reset by another process (reset-account) starts with a true mailbox count here', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  const path = join(dir, 'tacit.db');
  for (const worker of [false, true]) {
    const server = new SqliteStore({ path, worker });
    const operator = new SqliteStore({ path });
    try {
      const dev = () => ({ registrationId: 1, secretSalt: new Uint8Array(16), secretHash: new Uint8Array(32), keys: { signedPreKey: { keyId: 1, publicKey: new Uint8Array(33), signature: new Uint8Array(64) }, kyberLastResortKey: { keyId: 1, publicKey: new Uint8Array(1569), signature: new Uint8Array(64) }, preKeys: [], kyberPreKeys: [] } });
      const acct = { username: 'bo', identityKey: new Uint8Array(33), createdAt: 0 };
      assert.equal(await server.createAccount(acct, dev(), null), 'ok');
      const to = { username: 'bo', deviceId: 1 };
      const msg = { to, from: to, kind: 2 as const, body: new Uint8Array([1]), timestamp: 1, expiresAt: 1e15 };
      // Fill the mailbox to the cap of 2, so the serving store has a queue length cached.
      assert.deepEqual((await server.writeBatch([msg, msg, msg], [], 2)).map((r) => r.ok), [true, true, false]);
      assert.deepEqual(await operator.removeAccount('bo'), { devices: 1, preKeys: 0, kyberPreKeys: 0, messages: 2 });
      assert.equal(await server.createAccount(acct, dev(), null), 'ok');
      assert.deepEqual((await server.writeBatch([msg, msg, msg], [], 2)).map((r) => r.ok), [true, true, false], `worker: ${worker}`);
      assert.deepEqual(await server.removeAccount('bo'), { devices: 1, preKeys: 0, kyberPreKeys: 0, messages: 2 });
    } finally {
      await operator.close();
      await server.close();
    }
  }
});

test('sqlite: the data directory is created 0700, the database and its WAL 0600; a readable database is narrowed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  const path = join(dir, 'data', 'tacit.db');
  const mode = (p: string): number => statSync(p).mode & 0o777;
  const s = new SqliteStore({ path, worker: true });
  try {
    const dev = { registrationId: 1, secretSalt: new Uint8Array(16), secretHash: new Uint8Array(32), keys: { signedPreKey: { keyId: 1, publicKey: new Uint8Array(33), signature: new Uint8Array(64) }, kyberLastResortKey: { keyId: 1, publicKey: new Uint8Array(1569), signature: new Uint8Array(64) }, preKeys: [], kyberPreKeys: [] } };
    assert.equal(await s.createAccount({ username: 'ann', identityKey: new Uint8Array(33), createdAt: 0 }, dev, null), 'ok');
    assert.equal(mode(join(dir, 'data')).toString(8), '700');
    for (const f of [path, `${path}-wal`, `${path}-shm`]) assert.equal(mode(f).toString(8), '600', f);
  } finally {
    await s.close();
  }
  // A database left readable by an older version (or a copy) is narrowed when opened.
  chmodSync(path, 0o644);
  const again = new SqliteStore({ path });
  await again.close();
  assert.equal(mode(path).toString(8), '600');
});

test('sqlite: a version-1 database (no admins) is migrated in place; its accounts stay, none is an admin', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  const path = join(dir, 'tacit.db');
  const old = new Database(path);
  old.exec(`
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    INSERT INTO meta VALUES ('schema', '1');
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, identity_key BLOB NOT NULL, created_at INTEGER NOT NULL) STRICT;
    INSERT INTO accounts (username, identity_key, created_at) VALUES ('old', x'05', 3);
  `);
  old.close();
  const s = new SqliteStore({ path });
  try {
    assert.deepEqual(await s.listAccounts(10), { accounts: [{ username: 'old', admin: false, createdAt: 3, devices: [] }], truncated: false });
    assert.equal(await s.setAdmin('old', true), true);
    assert.equal((await s.listAccounts(10)).accounts[0]?.admin, true);
  } finally {
    await s.close();
  }
  const db = new Database(path);
  // Migrated to the newest version (3 added the resend memory, 4 device_info; SCHEMA creates both).
  assert.equal((db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as { value: string }).value, '4');
  assert.equal((db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'device_info'").get() as { n: number }).n, 1);
  assert.equal((db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'sent_memory'").get() as { n: number }).n, 1);
  db.close();
});

test('sqlite: the resend memory is looked up in memory and read back from the table: after the cache dropped a device (even within a transaction) and after reopening, resends are recognised and each ring goes on where it was', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  const path = join(dir, 'tacit.db');
  const s = new SqliteStore({ path });
  const dev = { registrationId: 1, secretSalt: new Uint8Array(16), secretHash: new Uint8Array(32), keys: { signedPreKey: { keyId: 1, publicKey: new Uint8Array(33), signature: new Uint8Array(64) }, kyberLastResortKey: { keyId: 1, publicKey: new Uint8Array(1569), signature: new Uint8Array(64) }, preKeys: [], kyberPreKeys: [] } };
  for (const username of ['ann', 'bob', 'cat']) assert.equal(await s.createAccount({ username, identityKey: new Uint8Array(33), createdAt: 0 }, dev, null), 'ok');
  await s.close();
  const ann = { username: 'ann', deviceId: 1 };
  const bob = { username: 'bob', deviceId: 1 };
  const cat = { username: 'cat', deviceId: 1 };
  const send = (from: typeof ann, to: typeof ann, n: number) => {
    const body = Uint8Array.of(n, from.username.charCodeAt(0));
    return { to, from, kind: 2 as const, body, timestamp: 1000 + n, expiresAt: 1e15, digest: sendDigest(to, 2, body) };
  };
  const open = (maxCachedRows: number) => {
    const db = new Database(path);
    configureConnection(db, 'FULL');
    return { db, w: new MessageBatchWriter(db, maxCachedRows) };
  };
  const rows = (db: Database.Database, sender: string) => db.prepare('SELECT slot, message_id AS id FROM sent_memory WHERE sender = ? ORDER BY slot').all(sender) as { slot: number; id: number }[];
  const head = (db: Database.Database, sender: string) => db.prepare('SELECT next FROM sent_memory_heads WHERE sender = ?').pluck().get(sender);

  // A cache of one row: every other sender's send drops ann's memory, within one batch too.
  const { db, w } = open(1);
  const first = w.write([send(ann, bob, 1), send(bob, ann, 2), send(cat, ann, 3), send(ann, cat, 4)], [], 100);
  assert.ok(first.every((r) => r.ok && r.resent === undefined));
  assert.deepEqual(rows(db, 'ann.1').map((r) => r.slot), [0, 1]);
  assert.equal(head(db, 'ann.1'), 2);
  // The same frames again (read back after the cache dropped them): answered with the stored copies.
  const again = w.write([send(bob, ann, 2), send(ann, bob, 1), send(cat, ann, 3), send(ann, cat, 4)], [], 100);
  assert.deepEqual(again.map((r) => r.ok && r.id), [first[1], first[0], first[2], first[3]].map((r) => r!.ok && r!.id));
  assert.deepEqual(again.map((r) => r.ok && r.resent), [1002, 1001, 1003, 1004]);
  // The same frame twice in one batch is stored once.
  const twice = w.write([send(ann, bob, 5), send(ann, bob, 5)], [], 100);
  assert.ok(twice[0]?.ok && twice[1]?.ok && twice[1].resent === 1005 && twice[1].id === twice[0].id);
  db.close();

  // Reopened (an empty cache): resends recognised, ann's ring goes on at slot 3.
  const reopened = open(100);
  const r = reopened.w.write([send(ann, bob, 1), send(ann, bob, 6)], [], 100);
  assert.ok(r[0]?.ok && r[0].id === (first[0]!.ok && first[0]!.id) && r[0].resent === 1001);
  assert.ok(r[1]?.ok && r[1].resent === undefined);
  assert.deepEqual(rows(reopened.db, 'ann.1').map((x) => x.slot), [0, 1, 2, 3]);
  assert.equal(head(reopened.db, 'ann.1'), 4);
  reopened.db.close();
});

/** Whether the database file or its WAL holds these bytes. */
function onDisk(path: string, needle: Buffer): { db: boolean; wal: boolean } {
  const has = (file: string) => {
    try {
      return readFileSync(file).includes(needle);
    } catch {
      return false; // no such file: a truncated or removed WAL holds nothing
    }
  };
  return { db: has(path), wal: has(path + '-wal') };
}

async function deliveredMessageOnDisk(opts: { worker: boolean; checkpointIntervalMs: number; waitForGone: boolean }): Promise<{ db: boolean; wal: boolean }> {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  const path = join(dir, 'tacit.db');
  const s = new SqliteStore({ path, ...opts });
  try {
    const keys = { signedPreKey: { keyId: 1, publicKey: new Uint8Array(33), signature: new Uint8Array(64) }, kyberLastResortKey: { keyId: 1, publicKey: new Uint8Array(1569), signature: new Uint8Array(64) }, preKeys: [], kyberPreKeys: [] };
    for (const username of ['amy', 'ben']) {
      await s.createAccount({ username, identityKey: new Uint8Array(33), createdAt: 1 }, { registrationId: 1, secretSalt: new Uint8Array(16), secretHash: new Uint8Array(32), keys }, null);
    }
    // One small body and one large enough to spill into overflow pages.
    const marker = Buffer.from(`wal-marker-${randomBytes(8).toString('hex')}`);
    const big = Buffer.concat(Array.from({ length: 2000 }, () => marker));
    const to = { username: 'ben', deviceId: 1 };
    const from = { username: 'amy', deviceId: 1 };
    const ids = await s.writeBatch(
      [marker, big].map((body) => ({ to, from, kind: 2 as const, body: new Uint8Array(body), timestamp: 1, expiresAt: Date.now() + 60_000 })),
      [],
      10,
    );
    await s.writeBatch([], ids.map((r) => ({ to, id: r.ok ? r.id : 0 })), 10);
    assert.deepEqual(await s.fetchQueue(to, 0, 10, 0), [], 'delivered and deleted');
    let found = onDisk(path, marker);
    // Bounded: 600 × 50 ms.
    for (let i = 0; opts.waitForGone && i < 600 && (found.db || found.wal); i++) {
      await new Promise((r) => setTimeout(r, 50));
      found = onDisk(path, marker);
    }
    return found;
  } finally {
    await s.close();
  }
}

test('sqlite: a delivered message leaves no bytes in the WAL or the database file once the periodic checkpoint ran', async () => {
  // Without a checkpoint the deleted message is still in the WAL: what this test guards against.
  assert.equal((await deliveredMessageOnDisk({ worker: false, checkpointIntervalMs: 3_600_000, waitForGone: false })).wal, true);
  for (const worker of [false, true]) {
    assert.deepEqual(await deliveredMessageOnDisk({ worker, checkpointIntervalMs: 100, waitForGone: true }), { db: false, wal: false }, `worker: ${worker}`);
  }
});

test('sqlite: cleanup', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
