// The SDK owns the conversation history: both directions in order, outgoing states (queued,
// sent, failed, retry), unread counts and the read cursor, paging, "take for display", and
// sending through an outage. Clients run against the in-memory server double.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeBackend } from '@tacit/protocol/node';
import { MemoryRecordStore, TacitClient, isClientError, type HistoryMessage } from '../src/index.ts';
import { MemoryServer } from './support/memory-server.ts';

const backend = nodeBackend();

async function user(server: MemoryServer, name: string, store = new MemoryRecordStore()): Promise<{ client: TacitClient; store: MemoryRecordStore }> {
  const client = await TacitClient.register({ store, backend, connect: server.factory, fetch: server.fetch, backoff: { baseMs: 5, maxMs: 20 } }, { server: 'http://tacit.test', username: name });
  return { client, store };
}

function reopen(server: MemoryServer, store: MemoryRecordStore): Promise<TacitClient> {
  return TacitClient.open({ store: store.reopen(), backend, connect: server.factory, fetch: server.fetch, backoff: { baseMs: 5, maxMs: 20 } });
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const texts = (list: HistoryMessage[]): string[] => list.map((m) => `${m.direction}:${m.text}${m.direction === 'out' ? `:${m.state}` : ''}`);

test('one history for both directions, in order, with unread counts, the read cursor and paging', async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  try {
    await alice.connect();
    await bob.connect();
    const sent = await alice.send('bob', 'hello bob');
    assert.equal(sent.serverIds.length, 1);
    assert.equal(sent.conversation, 'u:bob');
    await until(async () => (await bob.unread()).length === 1, 'bob receives');
    await bob.send('alice', 'hi alice');
    await bob.send('alice', 'how are you?');
    await until(async () => (await alice.unread()).length === 2, 'alice receives');

    assert.deepEqual(texts(await alice.history('bob')), ['out:hello bob:sent', 'in:hi alice', 'in:how are you?']);
    assert.deepEqual(texts(await bob.history('u:alice')), ['in:hello bob', 'out:hi alice:sent', 'out:how are you?:sent']);
    const [conv] = await alice.conversations();
    assert.equal(conv?.id, 'u:bob');
    assert.equal(conv?.contact, 'bob');
    assert.equal(conv?.unread, 2);
    assert.equal(conv?.last?.text, 'how are you?');
    assert.deepEqual((await alice.contacts()).map((c) => [c.username, c.unread, c.known]), [['bob', 2, true]]);

    // Read up to the first reply: one unread is left.
    const all = await alice.history('bob');
    assert.equal(await alice.markRead('bob', all[1]!.seq), 1);
    assert.deepEqual((await alice.unread()).map((m) => m.text), ['how are you?']);
    assert.equal((await alice.history('bob'))[1]!.read, true);

    // Paging: newest first pages, oldest first within a page.
    for (let i = 0; i < 5; i++) await alice.send('bob', `n${i}`);
    const page1 = await alice.history('bob', { limit: 3 });
    assert.deepEqual(page1.map((m) => m.text), ['n2', 'n3', 'n4']);
    const page2 = await alice.history('bob', { limit: 3, before: page1[0]!.seq });
    assert.deepEqual(page2.map((m) => m.text), ['how are you?', 'n0', 'n1']);
    assert.deepEqual((await alice.history('bob', { before: page2[0]!.seq })).map((m) => m.text), ['hello bob', 'hi alice']);
    assert.deepEqual(await alice.history('nobody'), []);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('takeForDisplay hands each new message over once; a display whose commit did not happen is repeated', async () => {
  const server = new MemoryServer();
  const { client: alice, store } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  const { client: carol } = await user(server, 'carol');
  try {
    await Promise.all([alice.connect(), bob.connect(), carol.connect()]);
    await bob.send('alice', 'b1');
    await carol.send('alice', 'c1');
    await bob.send('alice', 'b2');
    await until(async () => (await alice.unread()).length === 3, 'three messages');
    const shown: string[] = [];
    const render = (list: HistoryMessage[]): void => void shown.push(...list.map((m) => m.text));
    // One conversation only.
    assert.equal(await alice.takeForDisplay(render, { conversation: 'carol' }), 1);
    assert.deepEqual(shown, ['c1']);
    // A render that fails marks nothing.
    await assert.rejects(
      alice.takeForDisplay(() => {
        throw new Error('screen gone');
      }),
    );
    assert.equal(await alice.takeForDisplay(render), 2);
    assert.deepEqual(shown, ['c1', 'b1', 'b2'], 'everything, in arrival order, once');
    assert.equal(await alice.takeForDisplay(render), 0);

    // A process that dies after rendering but before the commit: the same messages come again.
    await bob.send('alice', 'b3');
    await until(async () => (await alice.unread()).length === 1, 'b3');
    const dying = new MemoryRecordStore();
    const real = store.reopen();
    // Copy the records as they are now (a crash leaves exactly what was committed).
    await dying.commit(await real.list(''), []);
    const crashed = await reopen(server, dying);
    const again: string[] = [];
    assert.equal(await crashed.takeForDisplay((l) => void again.push(...l.map((m) => m.text))), 1);
    assert.deepEqual(again, ['b3']);
    await crashed.close();
  } finally {
    await alice.close();
    await bob.close();
    await carol.close();
  }
});

test('sends while the server is down are queued durably (a new contact too) and delivered in order when it is back', async () => {
  const server = new MemoryServer();
  const { client: alice, store } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  const { client: dave } = await user(server, 'dave');
  await bob.close();
  try {
    await alice.connect();
    await dave.connect();
    await alice.send('dave', 'known contact first');
    server.stop();
    // bob is new to alice: his bundle needs the server.
    const outgoing: string[] = [];
    alice.on('outgoing', (m) => outgoing.push(`${m.text}:${m.state}`));
    const p1 = alice.send('bob', 'are you there?');
    const p2 = alice.send('bob', 'second');
    const p3 = alice.send('dave', 'while down');
    await until(async () => (await alice.history('bob')).length === 2, 'queued in history');
    assert.deepEqual(texts(await alice.history('bob')), ['out:are you there?:queued', 'out:second:queued']);
    assert.equal(alice.outboxSize, 3);
    // The process goes away while they wait (no close, no flush): a new one takes over.
    const relaunched = await reopen(server, store);
    assert.deepEqual(texts(await relaunched.history('bob')), ['out:are you there?:queued', 'out:second:queued']);
    await alice.close();
    await Promise.allSettled([p1, p2, p3]);
    server.start();
    await relaunched.connect();
    await until(async () => (await relaunched.history('bob')).every((m) => m.state === 'sent'), 'sent after the outage');
    await until(async () => (await relaunched.history('dave')).every((m) => m.state === 'sent'), 'dave sent');
    assert.equal(relaunched.outboxSize, 0);
    assert.deepEqual(server.mailboxes.get('bob.1')!.length, 2);
    await until(async () => (await dave.unread()).length === 2, 'dave receives');
    assert.deepEqual((await dave.unread()).map((m) => m.text), ['known contact first', 'while down']);
    await relaunched.close();
    assert.ok(outgoing.includes('are you there?:queued'));
  } finally {
    await alice.close();
    await dave.close();
  }
});

test('a definite failure leaves the message failed with a retry; retry sends it once the cause is gone', async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  try {
    await alice.connect();
    await assert.rejects(alice.send('erin', 'hello?'), (e) => isClientError(e) && e.code === 'UNKNOWN_USER' && e.contact === 'erin');
    const [m] = await alice.history('erin');
    assert.equal(m?.state, 'failed');
    assert.equal(m?.error?.code, 'UNKNOWN_USER');
    await assert.rejects(alice.retry('erin', m!.seq + 1000), (e) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
    const { client: erin } = await user(server, 'erin');
    const r = await alice.retry('u:erin', m!.seq);
    assert.equal(r.id, m!.id, 'same message id: a device that had it drops the copy');
    assert.deepEqual(texts(await alice.history('erin')), ['out:hello?:sent']);
    await erin.connect();
    await until(async () => (await erin.unread()).length === 1, 'erin receives');
    await erin.close();
  } finally {
    await alice.close();
  }
});

test('usernames that are Object.prototype names are ordinary contacts', async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  const { client: ctor } = await user(server, 'constructor');
  const changed: string[] = [];
  alice.on('identity-changed', (e) => changed.push(e.contact));
  try {
    await alice.connect();
    await ctor.connect();
    await alice.send('constructor', 'hi');
    await until(async () => (await ctor.unread()).length === 1, 'constructor receives');
    await ctor.send('alice', 'hello back');
    await until(async () => (await alice.unread()).length === 1, 'alice receives');
    assert.deepEqual(changed, [], 'no false identity change');
    assert.deepEqual(await alice.changedIdentities(), []);
    assert.deepEqual(await alice.trust('constructor'), { changed: false, released: 0 });
    assert.equal((await alice.safetyNumber('constructor')).keyState, 'trusted');
    assert.deepEqual((await alice.contacts()).map((c) => c.username), ['constructor']);
    assert.deepEqual(texts(await alice.history('constructor')), ['out:hi:sent', 'in:hello back']);
  } finally {
    await alice.close();
    await ctor.close();
  }
});

test('what arrives together is stored in one commit and acknowledged after it; a failed commit acknowledges nothing', async () => {
  const server = new MemoryServer();
  const { client: alice, store } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  try {
    await bob.connect();
    // A session first, so later messages are ordinary ones.
    await alice.connect();
    await bob.send('alice', 'first');
    await until(async () => (await alice.unread()).length === 1, 'first');
    await alice.close();
    for (let i = 0; i < 40; i++) await bob.send('alice', `m${i}`);
    // Commits fail: nothing is acknowledged, nothing shown.
    const failing = store.reopen();
    const commit = failing.commit.bind(failing);
    let fail = true;
    failing.commit = async (p, d) => {
      if (fail && p.some((r) => r.key.startsWith('m/'))) throw new Error('disk error');
      return commit(p, d);
    };
    const a1 = await TacitClient.open({ store: failing, backend, connect: server.factory, fetch: server.fetch });
    const acksBefore = server.acks.length;
    const shown: string[] = [];
    a1.on('message', (m) => shown.push(m.text));
    await a1.connect();
    await a1.waitDrained();
    assert.equal(server.acks.length, acksBefore, 'nothing acknowledged');
    assert.equal(shown.length, 0, 'nothing shown');
    await a1.close();
    // It works again: everything arrives, once, in a few commits.
    fail = false;
    const healthy = store.reopen();
    const a2 = await TacitClient.open({ store: healthy, backend, connect: server.factory, fetch: server.fetch });
    const commitsBefore = healthy.commits;
    a2.on('message', (m) => shown.push(m.text));
    await a2.connect();
    await a2.waitDrained();
    assert.deepEqual(shown, Array.from({ length: 40 }, (_, i) => `m${i}`));
    assert.equal(server.mailboxes.get('alice.1')!.length, 0, 'all acknowledged');
    assert.ok(healthy.commits - commitsBefore < 20, `${healthy.commits - commitsBefore} commits for 40 messages`);
    await a2.close();
  } finally {
    await bob.close();
  }
});
