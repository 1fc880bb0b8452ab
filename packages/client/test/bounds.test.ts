// Issue 13, item 1: a contact cannot make an account unopenable by filling its local state.
// Messages of the largest size a contact can send, full of control characters (six bytes each
// when JSON-escaped, which grew the old single-document state past its read cap) and of
// three-byte characters, arrive until the history passes its byte bound. The store stays within
// the bound after encoding, the oldest read messages go first, the flooding conversation loses its
// own oldest messages before anyone else's unread ones, the user is told, and the account opens
// again afterwards with the history readable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeBackend } from '@tacit/protocol/node';
import { MAX_HISTORY_BYTES, MAX_TEXT_LENGTH, MemoryRecordStore, TacitClient } from '../src/index.ts';
import { SqliteRecordStore } from '../src/node.ts';
import { MemoryServer } from './support/memory-server.ts';

const backend = nodeBackend();
const PASS = 'bounds test passphrase';

async function until(cond: () => Promise<boolean>, what: string, rounds = 6_000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('a flood of maximal messages from a contact keeps the store bounded and the account openable', { timeout: 10 * 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tacit-bounds-'));
  const path = join(dir, 'state.db');
  const server = new MemoryServer();
  const opts = (store: SqliteRecordStore | MemoryRecordStore) => ({ store, backend, connect: server.factory, fetch: server.fetch });
  let alice = await TacitClient.register(opts(await SqliteRecordStore.open(path, PASS, { create: true, scryptN: 1024 })), { server: 'http://tacit.test', username: 'alice' });
  const bob = await TacitClient.register(opts(new MemoryRecordStore()), { server: 'http://tacit.test', username: 'bob' });
  const mallory = await TacitClient.register(opts(new MemoryRecordStore()), { server: 'http://tacit.test', username: 'mallory' });
  try {
    await Promise.all([alice.connect(), bob.connect(), mallory.connect()]);
    for (const t of ['b1', 'b2', 'b3']) await bob.send('alice', t);
    await until(async () => (await alice.unread()).length === 3, "bob's messages");
    const b2 = (await alice.history('bob'))[1]!;
    await alice.markRead('bob', b2.seq);
    const trimmed: { conversation: string; dropped: number; droppedUnread: number }[] = [];
    alice.on('history-trimmed', (e) => trimmed.push(e));

    // The largest texts the envelope allows: control characters escape to six bytes in the
    // envelope's JSON, so fewer of them fit; three-byte characters fit at full length.
    const control = '\u0001\u001b\u0007'.repeat(4_300);
    const wide = '\u2603'.repeat(MAX_TEXT_LENGTH);
    // Every tenth message of control characters; together well past the byte bound.
    const n = Math.ceil(MAX_HISTORY_BYTES / (2.5 * MAX_TEXT_LENGTH)) + 50;
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) sends.push(mallory.send('alice', i % 10 === 0 ? control : wide));
    await Promise.all(sends);
    await until(async () => server.mailboxes.get('alice.1')!.length === 0, 'everything delivered and acknowledged');

    // Within the bound, after encoding; the user was told.
    const convs = await alice.conversations();
    const m = convs.find((c) => c.contact === 'mallory')!;
    const b = convs.find((c) => c.contact === 'bob')!;
    assert.ok(trimmed.length > 0, 'a history-trimmed event');
    assert.ok(m.dropped > 0, 'the flooding conversation lost its oldest messages');
    assert.equal(b.dropped, 2, "bob's two read messages went first");
    assert.equal(b.droppedUnread, 0, "bob's unread message stays");
    assert.deepEqual((await alice.history('bob')).map((x) => x.text), ['b3']);
    assert.equal(m.messages + m.dropped, n, 'every message either kept or counted as dropped');
    const held = await alice.history('mallory', { limit: 1_000 });
    const bytes = held.reduce((s, x) => s + new TextEncoder().encode(x.text).length, 0);
    assert.ok(bytes <= MAX_HISTORY_BYTES, `${bytes} bytes of text kept`);
    assert.equal(held.at(-1)!.text.length, MAX_TEXT_LENGTH, 'a maximal message reads back whole');
    await alice.close();

    // The account opens again, with its history.
    assert.ok((await stat(path)).size < 2 * MAX_HISTORY_BYTES, 'the file stays near the bound');
    alice = await TacitClient.open(opts(await SqliteRecordStore.open(path, PASS)));
    assert.equal(alice.username, 'alice');
    assert.deepEqual((await alice.history('bob')).map((x) => x.text), ['b3']);
    const again = await alice.history('mallory', { limit: 3 });
    assert.equal(again.length, 3);
    assert.ok(again.every((x) => x.text === control || x.text === wide));
  } finally {
    await alice.close();
    await bob.close();
    await mallory.close();
    await rm(dir, { recursive: true, force: true });
  }
});
