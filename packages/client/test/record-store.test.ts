// The record store conformance suite on the in-memory and SQLite implementations (the IndexedDB
// one runs in Chromium: apps/web/test/record-store.browser.ts), plus what is specific to SQLite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import Database from 'better-sqlite3';
import { MemoryRecordStore, isClientError } from '../src/index.ts';
import { SqliteRecordStore } from '../src/node.ts';
import { recordStoreConformance } from './record-store-conformance.ts';

const N = 1024;
const code = (e: unknown): string => (isClientError(e) ? e.code : `not a ClientError: ${String(e)}`);

recordStoreConformance('memory', test, async () => ({ store: new MemoryRecordStore() }));

recordStoreConformance('sqlite', test, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tacit-records-'));
  const path = join(dir, 'state.db');
  const raw = (fn: (db: Database.Database) => void): void => {
    const db = new Database(path);
    try {
      fn(db);
    } finally {
      db.close();
    }
  };
  const t = {
    store: await SqliteRecordStore.open(path, 'pass phrase', { create: true, scryptN: N }),
    reopen: async () => {
      await t.store.close();
      return SqliteRecordStore.open(path, 'pass phrase');
    },
    corrupt: async (key: string) => {
      raw((db) => {
        const row = db.prepare<[string], { value: Buffer }>('SELECT value FROM records WHERE key = ?').get(key)!;
        row.value[row.value.length - 20]! ^= 1;
        db.prepare('UPDATE records SET value = ? WHERE key = ?').run(row.value, key);
      });
    },
    transplant: async (from: string, to: string) => {
      raw((db) => {
        const row = db.prepare<[string], { value: Buffer }>('SELECT value FROM records WHERE key = ?').get(from)!;
        db.prepare('UPDATE records SET value = ? WHERE key = ?').run(row.value, to);
      });
    },
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
  return t;
});

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tacit-records-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('sqlite: a missing store is NOT_REGISTERED; a wrong passphrase is refused before anything is written', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'state.db');
    await assert.rejects(SqliteRecordStore.open(path, 'x'), (e) => code(e) === 'NOT_REGISTERED');
    const s = await SqliteRecordStore.open(path, 'right', { create: true, scryptN: N });
    await s.commit([{ key: 'a', value: new Uint8Array([1]) }], []);
    await s.close();
    const files = async () => Promise.all((await readdir(dir)).sort().map(async (f) => [f, (await readFile(join(dir, f))).toString('hex')]));
    const before = await files();
    await assert.rejects(SqliteRecordStore.open(path, 'wrong'), (e) => code(e) === 'WRONG_PASSPHRASE');
    await assert.rejects(SqliteRecordStore.open(path, 'wrong', { create: true }), (e) => code(e) === 'WRONG_PASSPHRASE');
    assert.deepEqual(await files(), before, 'a wrong passphrase changed nothing on disk');
    const again = await SqliteRecordStore.open(path, 'right');
    assert.deepEqual(await again.get('a'), new Uint8Array([1]));
    await again.close();
  });
});

test('sqlite: a passphrase change seals every record again; the old passphrase opens nothing, and no old ciphertext is left in the files', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'state.db');
    const s = await SqliteRecordStore.open(path, 'old passphrase', { create: true, scryptN: N });
    // More than one page of records, some of them large, and a few deleted before the change.
    const records = Array.from({ length: 600 }, (_, i) => ({ key: `r/${String(i).padStart(4, '0')}`, value: new Uint8Array(i % 50 === 0 ? 20_000 : 40).fill(i % 251) }));
    await s.commit(records, []);
    await s.commit([], ['r/0001', 'r/0002']);
    await s.close();
    // The sealed values as they are now: none may remain after the change.
    const raw = new Database(path, { readonly: true });
    const sealed = raw.prepare<[], { value: Buffer }>('SELECT value FROM records').all().map((r) => r.value);
    raw.close();
    assert.equal(sealed.length, 598);

    const open = await SqliteRecordStore.open(path, 'old passphrase');
    await open.changePassphrase('new passphrase', { scryptN: N });
    // The open store goes on under the new key.
    assert.deepEqual(await open.get('r/0003'), records[3]!.value);
    await open.commit([{ key: 'after', value: new Uint8Array([7]) }], []);
    await open.close();

    await assert.rejects(SqliteRecordStore.open(path, 'old passphrase'), (e) => code(e) === 'WRONG_PASSPHRASE');
    const reopened = await SqliteRecordStore.open(path, 'new passphrase');
    const all = await reopened.list('r/');
    assert.deepEqual(
      all.map((r) => r.key),
      records.map((r) => r.key).filter((k) => k !== 'r/0001' && k !== 'r/0002'),
    );
    for (const r of all) assert.deepEqual(r.value, records[Number(r.key.slice(2))]!.value);
    assert.deepEqual(await reopened.get('after'), new Uint8Array([7]));
    await reopened.close();
    // Neither the database nor its WAL holds a value sealed under the old key (a 28-byte window
    // of each: nonce and the first bytes of ciphertext).
    const files = await Promise.all((await readdir(dir)).map((f) => readFile(join(dir, f))));
    for (const v of sealed) {
      for (const bytes of files) assert.equal(bytes.includes(v.subarray(0, 28)), false, 'an old ciphertext is still in the files');
    }
  });
});

test('sqlite: the file is private, holds no plaintext, and a stranger file is STATE_CORRUPT', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'state.db');
    const s = await SqliteRecordStore.open(path, 'pass', { create: true, scryptN: N });
    await s.commit([{ key: 'msg/1', value: new TextEncoder().encode('a secret marker 8d1f') }], []);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    for (const f of await readdir(dir)) {
      const bytes = await readFile(join(dir, f));
      assert.equal(bytes.includes(Buffer.from('secret marker 8d1f')), false, `${f} holds plaintext`);
      assert.equal((await stat(join(dir, f))).mode & 0o077, 0, `${f} is readable by others`);
    }
    assert.doesNotMatch(inspect(s), /key|secret/i);
    assert.throws(() => JSON.stringify(s), (e) => code(e) === 'INVALID_ARGUMENT');
    await s.close();
    const junk = join(dir, 'junk.db');
    await writeFile(junk, 'this is not a database at all, just some text that is long enough to look like a header..');
    await assert.rejects(SqliteRecordStore.open(junk, 'pass'), (e) => code(e) === 'STATE_CORRUPT');
    const other = join(dir, 'other.db');
    const db = new Database(other);
    db.exec('CREATE TABLE records (key TEXT PRIMARY KEY, value BLOB)');
    db.close();
    await assert.rejects(SqliteRecordStore.open(other, 'pass', { create: true }), (e) => code(e) === 'STATE_CORRUPT');
  });
});

test('memory: a commit past the quota is STORAGE_FULL and changes nothing; deletes still go through', async () => {
  const s = new MemoryRecordStore();
  s.quotaBytes = 100;
  await s.commit([{ key: 'a', value: new Uint8Array(60) }], []);
  await assert.rejects(s.commit([{ key: 'b', value: new Uint8Array(60) }], []), (e) => code(e) === 'STORAGE_FULL');
  assert.equal(await s.get('b'), undefined);
  await s.commit([{ key: 'b', value: new Uint8Array(10) }], ['a']);
  assert.equal(s.bytes, 11);
});
