// Local damage is named and contained: a damaged record is STATE_CORRUPT naming what it is,
// only what needs that record fails, and nothing else is rewritten. The key layout keeps names
// out of the keys (which are stored in the clear).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { nodeBackend } from '@tacit/protocol/node';
import { MemoryRecordStore, TacitClient, isClientError } from '../src/index.ts';
import { SqliteRecordStore } from '../src/node.ts';
import { PREFIX } from '../src/keys.ts';
import { MemoryServer } from './support/memory-server.ts';

const backend = nodeBackend();

async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('record prefixes never overlap', () => {
  const prefixes = Object.values(PREFIX);
  for (const a of prefixes) for (const b of prefixes) if (a !== b) assert.ok(!b.startsWith(a), `${a} is a prefix of ${b}`);
});

test('a damaged session record is STATE_CORRUPT naming it; other contacts are unaffected; the message waits on the server', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tacit-integrity-'));
  const path = join(dir, 'state.db');
  const server = new MemoryServer();
  const opts = (store: SqliteRecordStore | MemoryRecordStore) => ({ store, backend, connect: server.factory, fetch: server.fetch });
  let alice = await TacitClient.register(opts(await SqliteRecordStore.open(path, 'pass', { create: true, scryptN: 1024 })), { server: 'http://tacit.test', username: 'alice' });
  const bob = await TacitClient.register(opts(new MemoryRecordStore()), { server: 'http://tacit.test', username: 'bob' });
  const carol = await TacitClient.register(opts(new MemoryRecordStore()), { server: 'http://tacit.test', username: 'carol' });
  try {
    await Promise.all([alice.connect(), bob.connect(), carol.connect()]);
    await bob.send('alice', 'from bob');
    await carol.send('alice', 'from carol');
    await until(async () => (await alice.unread()).length === 2, 'both');
    await alice.close();

    // No name in any key; one bit of bob's session record flipped.
    const db = new Database(path);
    const keys = db.prepare<[], { key: string }>('SELECT key FROM records').all().map((r) => r.key);
    assert.ok(keys.length > 200);
    for (const k of keys) assert.doesNotMatch(k, /alice|bob|carol/, k);
    const sessions = db.prepare<[], { key: string; value: Buffer }>("SELECT key, value FROM records WHERE key LIKE 'ses/%'").all();
    assert.equal(sessions.length, 2);
    // Which one is bob's: the one whose contact sends next fails.
    const damaged = sessions[0]!;
    damaged.value[damaged.value.length - 20]! ^= 1;
    db.prepare('UPDATE records SET value = ? WHERE key = ?').run(damaged.value, damaged.key);
    const before = db.prepare<[], { key: string; value: Buffer }>('SELECT key, value FROM records ORDER BY key').all();
    db.close();

    alice = await TacitClient.open(opts(await SqliteRecordStore.open(path, 'pass')));
    const corrupt: { from: string; message: string }[] = [];
    alice.on('state-corrupt', (e) => corrupt.push(e));
    await alice.connect();
    await bob.send('alice', 'second from bob');
    await carol.send('alice', 'second from carol');
    await until(async () => corrupt.length > 0 && (await alice.unread()).length >= 3, 'one contact through, one refused');
    const victim = corrupt[0]!.from;
    const other = victim === 'bob' ? 'carol' : 'bob';
    assert.match(corrupt[0]!.message, /is damaged.*\(a session record\)/);
    assert.deepEqual((await alice.unread()).map((m) => m.text), ['from bob', 'from carol', `second from ${other}`]);
    assert.equal(server.mailboxes.get('alice.1')!.length, 1, 'the unreadable message stays on the server');
    await assert.rejects(alice.send(victim, 'hello?'), (e) => isClientError(e) && e.code === 'STATE_CORRUPT' && /session/.test(e.message));
    await alice.close();

    // Nothing was rewritten but what the working conversation changed.
    const db2 = new Database(path);
    const after = new Map(db2.prepare<[], { key: string; value: Buffer }>('SELECT key, value FROM records').all().map((r) => [r.key, r.value]));
    db2.close();
    assert.deepEqual(after.get(damaged.key), before.find((r) => r.key === damaged.key)!.value, 'the damaged record is left as it was');
  } finally {
    await alice.close();
    await bob.close();
    await carol.close();
    await rm(dir, { recursive: true, force: true });
  }
});
