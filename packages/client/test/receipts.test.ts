// Receipts in the SDK (chat/receipts.ts): delivery and read receipts move an outgoing message from
// sent to delivered to read, pairwise and per group member; they are batched, never stored as
// messages and never answered; the read-receipt setting stops them both ways; a receipt from
// someone who was not a recipient, or naming a message that is not ours, changes nothing.
// Clients run against the in-memory server double; apps/cli/test/receipts.test.ts goes through a
// real server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeBackend } from '@tacit/protocol/node';
import { MemoryRecordStore, TacitClient, MAX_RECEIPT_IDS, decodeReceipt, encodeReceipt, looksLikeReceipt, type ReceiptEvent } from '../src/index.ts';
import { utf8Encode } from '../src/bytes.ts';
import { MemoryServer } from './support/memory-server.ts';

const backend = nodeBackend();
const opts = (server: MemoryServer, store: MemoryRecordStore) => ({ store, backend, connect: server.factory, fetch: server.fetch, backoff: { baseMs: 5, maxMs: 20 } });

async function user(server: MemoryServer, name: string): Promise<{ client: TacitClient; store: MemoryRecordStore }> {
  const store = new MemoryRecordStore();
  const client = await TacitClient.register(opts(server, store), { server: 'http://tacit.test', username: name });
  return { client, store };
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('receipt payloads: round trip, batch bound, strict decoding', () => {
  const ids = ['a1', 'b2', 'a1'];
  const bytes = encodeReceipt({ kind: 'read', ids, group: '0123456789abcdef0123456789abcdef' });
  assert.ok(looksLikeReceipt(bytes));
  assert.deepEqual(decodeReceipt(bytes), { kind: 'read', ids: ['a1', 'b2'], group: '0123456789abcdef0123456789abcdef' });
  assert.throws(() => encodeReceipt({ kind: 'delivered', ids: Array.from({ length: MAX_RECEIPT_IDS + 1 }, (_, i) => `m${i}`) }));
  const pad = (s: string): Uint8Array => {
    const j = utf8Encode(s);
    const out = new Uint8Array(j.length + 16);
    out.set(j);
    out[j.length] = 0x80;
    return out;
  };
  assert.ok(decodeReceipt(pad('{"v":1,"rcpt":"delivered","ids":["x"]}')));
  for (const bad of [
    '{"v":1,"rcpt":"seen","ids":["x"]}',
    '{"v":1,"rcpt":"read","ids":[]}',
    '{"v":1,"rcpt":"read","ids":[1]}',
    '{"v":1,"rcpt":"read","ids":["x"],"group":"nothex"}',
    `{"v":1,"rcpt":"read","ids":${JSON.stringify(Array.from({ length: MAX_RECEIPT_IDS + 1 }, (_, i) => `m${i}`))}}`,
    '{"v":2,"rcpt":"read","ids":["x"]}',
    '[1]',
  ]) {
    assert.equal(decodeReceipt(pad(bad)), undefined, bad);
  }
  assert.equal(decodeReceipt(utf8Encode('{"v":1,"rcpt":"read","ids":["x"]}')), undefined); // unpadded
});

test('pairwise: sent → delivered when stored → read when shown; receipts batched, not in history, not answered', async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  const events: ReceiptEvent[] = [];
  alice.on('receipt', (e) => events.push(e));
  try {
    await alice.connect();
    const sent = [await alice.send('bob', 'one'), await alice.send('bob', 'two'), await alice.send('bob', 'three')];
    let hist = await alice.history('bob');
    assert.deepEqual(hist.map((m) => m.delivery), ['sent', 'sent', 'sent']);
    const before = server.stored;
    await bob.connect();
    await until(async () => (await alice.history('bob')).every((m) => m.delivery === 'delivered'), 'delivered');
    // One delivery receipt for the three (one device: one stored copy).
    await until(() => server.stored - before === 1, 'one receipt stored');
    assert.equal(server.stored - before, 1);
    hist = await alice.history('bob');
    assert.ok(hist.every((m) => typeof m.receipts?.['bob']?.delivered === 'number' && m.receipts['bob'].read === undefined));
    // Shown: read.
    const shown: string[] = [];
    await bob.takeForDisplay((ms) => shown.push(...ms.map((m) => m.text)));
    assert.deepEqual(shown, ['one', 'two', 'three']);
    await until(async () => (await alice.history('bob')).every((m) => m.delivery === 'read'), 'read');
    assert.deepEqual(events.map((e) => [e.kind, e.from, e.messages.map((m) => m.id)]), [
      ['delivered', 'bob', sent.map((s) => s.id)],
      ['read', 'bob', sent.map((s) => s.id)],
    ]);
    // Nothing but the three messages in either history; bob got no receipt for the receipts.
    assert.equal((await alice.history('bob')).length, 3);
    assert.equal((await bob.history('alice')).length, 3);
    await until(async () => (await bob.pendingReceipts()) === 0 && (await alice.pendingReceipts()) === 0, 'queues empty');
    assert.equal((await alice.conversations())[0]?.last?.delivery, 'read');
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('read receipts off: none sent, and others\u2019 are not shown; delivery receipts still flow', async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  try {
    await alice.connect();
    await bob.connect();
    assert.deepEqual(await bob.settings(), { readReceipts: true, typingIndicators: true });
    await bob.updateSettings({ readReceipts: false });
    await assert.rejects(bob.updateSettings({ readReceipts: 'no' as unknown as boolean }));
    await alice.send('bob', 'hello');
    await until(async () => (await alice.history('bob'))[0]?.delivery === 'delivered', 'delivered');
    await bob.takeForDisplay(() => undefined);
    await bob.markRead('alice');
    await until(async () => (await bob.pendingReceipts()) === 0, 'bob idle');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await alice.history('bob'))[0]?.delivery, 'delivered', 'bob sent no read receipt');

    // Bob on, alice off: bob reads alice's next message, alice does not see it as read.
    await bob.updateSettings({ readReceipts: true });
    await alice.updateSettings({ readReceipts: false });
    await alice.send('bob', 'second');
    await until(async () => (await bob.unread()).length === 1, 'bob has it');
    await bob.takeForDisplay(() => undefined);
    await until(async () => (await bob.pendingReceipts()) === 0, 'bob sent');
    await new Promise((r) => setTimeout(r, 300));
    const h = await alice.history('bob');
    assert.equal(h[1]?.delivery, 'delivered');
    assert.equal(h[1]?.receipts?.['bob']?.read, undefined);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('a group: receipts per member; the message is read once every member read it', async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  const { client: carol } = await user(server, 'carol');
  try {
    for (const c of [alice, bob, carol]) await c.connect();
    const g = await alice.createGroup('Team', ['bob', 'carol']);
    await until(async () => (await bob.groups()).length === 1 && (await carol.groups()).length === 1, 'members know the group');
    await alice.send('#team', 'hi both');
    const mine = async () => (await alice.history('#team')).filter((m) => !m.system)[0]!;
    await until(async () => (await mine()).delivery === 'delivered', 'delivered to both');
    assert.deepEqual(Object.keys((await mine()).receipts ?? {}).sort(), ['bob', 'carol']);
    await bob.takeForDisplay(() => undefined, { conversation: g.conversation });
    await until(async () => (await mine()).receipts?.['bob']?.read !== undefined, 'bob read');
    assert.equal((await mine()).delivery, 'delivered', 'carol has not read it yet');
    await carol.markRead(g.conversation);
    await until(async () => (await mine()).delivery === 'read', 'both read');
    // Receipts for the group system lines are never sent (they have no author to tell).
    assert.equal((await alice.history('#team')).length, 2);
  } finally {
    for (const c of [alice, bob, carol]) await c.close();
  }
});

test('a member named like an Object.prototype property (constructor): not delivered until its own receipt comes, which counts', async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  const { client: ctor } = await user(server, 'constructor');
  try {
    for (const c of [alice, bob]) await c.connect();
    await alice.createGroup('Team', ['bob', 'constructor']);
    await until(async () => (await bob.groups()).length === 1, 'bob knows the group');
    await alice.send('#team', 'hi both');
    const mine = async () => (await alice.history('#team')).filter((m) => !m.system)[0]!;
    await until(async () => (await mine()).receipts?.['bob']?.delivered !== undefined, 'bob delivered');
    // "constructor" is offline: an inherited Object.prototype.constructor is not its receipt.
    assert.deepEqual((await mine()).receipts?.['constructor'], {});
    assert.equal((await mine()).delivery, 'sent');
    await ctor.connect();
    await until(async () => (await mine()).delivery === 'delivered', 'delivered to both');
    assert.equal(typeof (await mine()).receipts?.['constructor']?.delivered, 'number');
  } finally {
    for (const c of [alice, bob, ctor]) await c.close();
  }
});

test('hostile receipts: from a non-recipient, for an id we do not have, for another conversation: ignored', async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  const { client: mallory, store: malloryStore } = await user(server, 'mallory');
  try {
    for (const c of [alice, bob, mallory]) await c.connect();
    const toBob = await alice.send('bob', 'for bob only');
    await alice.send('mallory', 'hi mallory');
    await until(async () => (await alice.history('mallory'))[0]?.delivery === 'delivered', 'mallory delivered');
    const g = await alice.createGroup('Pair', ['bob']);
    await until(async () => (await bob.groups()).length === 1, 'bob in group');
    const groupMsg = await alice.send('#pair', 'group secret');
    // Mallory queues receipts naming bob's message (pairwise: looked up in alice↔mallory only),
    // the group message (she is not a member), and an id nobody has.
    const forged = [
      { to: 'alice', k: 'read', id: toBob.id },
      { to: 'alice', k: 'read', id: groupMsg.id, g: g.id },
      { to: 'alice', k: 'read', id: 'f'.repeat(32) },
    ];
    await malloryStore.commit(forged.map((v, i) => ({ key: `rq/${String(9_000_000_000_000 + i).padStart(16, '0')}`, value: utf8Encode(JSON.stringify(v)) })), []);
    const before = server.stored;
    // Anything that makes mallory queue a receipt flushes the forged ones with it.
    await alice.send('mallory', 'ping');
    await until(() => server.stored - before >= 3, 'mallory sent her receipts');
    await until(async () => (await mallory.pendingReceipts()) === 0, 'mallory idle');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await alice.history('bob'))[0]?.receipts?.['mallory'], undefined);
    assert.notEqual((await alice.history('bob'))[0]?.delivery, 'read');
    const gm = (await alice.history('#pair')).find((m) => m.id === groupMsg.id)!;
    assert.equal(gm.receipts?.['mallory'], undefined);
    assert.deepEqual(Object.keys(gm.receipts ?? {}), ['bob']);
    // Mallory's genuine receipts for her own messages did apply.
    assert.equal((await alice.history('mallory'))[0]?.delivery, 'delivered');
  } finally {
    for (const c of [alice, bob, mallory]) await c.close();
  }
});
