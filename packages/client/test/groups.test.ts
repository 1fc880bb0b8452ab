// Group conversations in the SDK (group/): state on members' devices changed by control messages,
// sender keys handed out before the first message and replaced after a removal, one shared
// ciphertext per message through `send-multi`, hostile copies of group messages, identity changes
// holding group sends, and the convergence rule. Clients run against the in-memory server double;
// apps/cli/test/groups.test.ts repeats the essentials through a real server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeBackend } from '@tacit/protocol/node';
import { MemoryRecordStore, TacitClient, isClientError, mergeGroupState, type GroupState, type HistoryMessage } from '../src/index.ts';
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

const said = (list: HistoryMessage[]): string[] => list.map((m) => (m.system ? `* ${m.text}` : `${m.from}: ${m.text}`));

test('a group of three: created by its admin, each member sends once to all, history says who said what, with system lines and unread counts', async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  const { client: carol } = await user(server, 'carol');
  try {
    for (const c of [alice, bob, carol]) await c.connect();
    const g = await alice.createGroup('Launch', ['bob', 'carol']);
    assert.deepEqual([g.title, g.members, g.admins, g.member], ['Launch', ['alice', 'bob', 'carol'], ['alice'], true]);
    await until(async () => (await bob.groups()).length === 1 && (await carol.groups()).length === 1, 'members learn of the group');
    assert.deepEqual((await bob.group('#launch')).members, ['alice', 'bob', 'carol']);

    const stored = server.stored;
    const sent = await alice.send('#Launch', 'hello team');
    assert.equal(sent.conversation, g.conversation);
    // One shared ciphertext for two devices, after one key hand-over to each.
    const groupCopies = server.multi.filter((x) => x.envelope.type === 'sender-key');
    assert.equal(groupCopies.length, 2);
    assert.equal(groupCopies[0]!.envelope.body, groupCopies[1]!.envelope.body);
    assert.equal(server.stored - stored, 4);
    await bob.sendToGroup(`g:${g.id.slice(0, 6)}`, 'hi from bob');
    await until(async () => (await carol.history(g.conversation)).length === 3, 'carol reads bob');
    await carol.send(g.conversation, 'carol here');
    for (const c of [alice, bob, carol]) await until(async () => (await c.history(g.conversation)).filter((m) => !m.system).length === 3, `${c.username} has all three`);

    assert.deepEqual(said(await carol.history(g.conversation)), ['* alice added you to "Launch" (alice, bob, carol)', 'alice: hello team', 'bob: hi from bob', 'carol: carol here']);
    assert.deepEqual(said(await alice.history('#launch')), ['* alice created the group "Launch" with bob, carol', 'alice: hello team', 'bob: hi from bob', 'carol: carol here']);
    const conv = (await bob.conversations()).find((c) => c.id === g.conversation);
    assert.equal(conv?.group, g.id);
    assert.equal(conv?.unread, 3); // the system line and the two messages from others
    // A second message needs no new key hand-over: one stored copy per member device.
    const before = server.stored;
    await alice.send('#launch', 'second');
    assert.equal(server.stored - before, 2);

    // Rename: a system line everywhere.
    await alice.renameGroup('#launch', 'Launch v2');
    await until(async () => (await carol.group(g.conversation)).title === 'Launch v2', 'carol sees the rename');
    assert.equal((await carol.history(g.conversation)).at(-1)?.text, 'alice renamed the group to "Launch v2"');
    // Only admins change the group.
    await assert.rejects(bob.renameGroup(g.conversation, 'mine'), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT' && /admin/.test(e.message));
    await assert.rejects(bob.addToGroup(g.conversation, ['dave']), (e: unknown) => isClientError(e));
    await assert.rejects(alice.createGroup('  ', ['bob']), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
    await assert.rejects(alice.send('#nosuch', 'x'), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
  } finally {
    for (const c of [alice, bob, carol]) await c.close();
  }
});

test('removal: every member starts a new sender key; the removed member cannot read a later message handed to it raw, and a new member cannot read earlier ones', async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  const { client: carol } = await user(server, 'carol');
  const { client: dave } = await user(server, 'dave');
  const undecryptable: Record<string, string[]> = { carol: [], dave: [] };
  carol.on('undecryptable', (u) => undecryptable['carol']!.push(u.reason));
  dave.on('undecryptable', (u) => undecryptable['dave']!.push(u.reason));
  try {
    for (const c of [alice, bob, carol, dave]) await c.connect();
    const g = await alice.createGroup('Ops', ['bob', 'carol']);
    await until(async () => (await carol.groups()).length === 1 && (await bob.groups()).length === 1, 'members learn');
    await alice.send(g.conversation, 'before');
    await bob.send(g.conversation, 'bob before');
    await until(async () => (await carol.history(g.conversation)).length === 3, 'carol reads');
    const early = server.multi.filter((x) => x.envelope.type === 'sender-key' && x.to === 'carol.1').map((x) => x.envelope);

    await alice.removeFromGroup(g.conversation, ['carol']);
    await alice.addToGroup(g.conversation, ['dave']);
    await until(async () => (await carol.group(g.conversation)).member === false, 'carol learns she was removed');
    await until(async () => (await bob.group(g.conversation)).members.join() === 'alice,bob,dave', 'bob sees the change');
    await until(async () => (await dave.groups()).length === 1, 'dave learns');
    assert.deepEqual(said(await carol.history(g.conversation)).slice(-1), ['* alice removed you']);

    const mark = server.multi.length;
    await alice.send(g.conversation, 'after');
    await bob.send(g.conversation, 'bob after');
    await until(async () => (await dave.history(g.conversation)).filter((m) => !m.system).length === 2, 'dave reads what follows');
    assert.deepEqual(said(await dave.history(g.conversation)).slice(1), ['alice: after', 'bob: bob after']);
    const later = server.multi.slice(mark).filter((x) => x.envelope.type === 'sender-key');
    // Neither later message went to carol, and both use new sender keys (new distribution ids).
    assert.equal(later.filter((x) => x.to === 'carol.1').length, 0);
    assert.equal(later.length, 4);

    // Carol is handed the raw ciphertexts captured from the server: nothing decrypts.
    const carolBefore = (await carol.history(g.conversation)).length;
    for (const x of later.filter((y) => y.to === 'dave.1')) server.inject('carol.1', { ...x.envelope, id: server.newId() });
    await until(() => undecryptable['carol']!.length === 2, 'carol refuses both');
    assert.deepEqual(undecryptable['carol'], ['NO_SENDER_KEY', 'NO_SENDER_KEY']);
    assert.equal((await carol.history(g.conversation)).length, carolBefore);

    // Dave is handed the earlier ciphertexts: nothing is stored.
    const daveBefore = (await dave.history(g.conversation)).length;
    for (const e of early) server.inject('dave.1', { ...e, id: server.newId() });
    await until(() => server.mailboxes.get('dave.1')?.length === 0, 'dave handles them');
    assert.equal((await dave.history(g.conversation)).length, daveBefore);
    assert.ok(undecryptable['dave']!.every((r) => r === 'NO_SENDER_KEY'), undecryptable['dave']!.join());
    // A removed member cannot send to the group.
    await assert.rejects(carol.send(g.conversation, 'let me in'), (e: unknown) => isClientError(e) && /not a member/.test(e.message));
  } finally {
    for (const c of [alice, bob, carol, dave]) await c.close();
  }
});

test('a tampered or replayed group message is refused without harm; the next one reads', async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  const reasons: string[] = [];
  bob.on('undecryptable', (u) => reasons.push(u.reason));
  try {
    await alice.connect();
    await bob.connect();
    const g = await alice.createGroup('Pair', ['bob']);
    await until(async () => (await bob.groups()).length === 1, 'bob learns');
    await alice.send(g.conversation, 'one');
    await until(async () => (await bob.history(g.conversation)).length === 2, 'bob reads one');
    const original = server.multi.filter((x) => x.envelope.type === 'sender-key').at(-1)!.envelope;
    const bytes = Buffer.from(original.body, 'base64');
    bytes[bytes.length - 70]! ^= 1; // inside the ciphertext, before the signature
    server.inject('bob.1', { ...original, id: server.newId(), body: bytes.toString('base64') });
    server.inject('bob.1', { ...original, id: server.newId() }); // replayed unchanged
    await until(() => reasons.length === 1 && server.mailboxes.get('bob.1')?.length === 0, 'bob handles both');
    assert.deepEqual(reasons, ['BAD_SIGNATURE']);
    await alice.send(g.conversation, 'two');
    await until(async () => (await bob.history(g.conversation)).length === 3, 'bob reads two');
    assert.deepEqual(said(await bob.history(g.conversation)).slice(1), ['alice: one', 'alice: two']);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test("a member's identity change holds group sends until trust", async () => {
  const server = new MemoryServer();
  const { client: alice } = await user(server, 'alice');
  let { client: bob } = await user(server, 'bob');
  const { client: carol } = await user(server, 'carol');
  try {
    for (const c of [alice, bob, carol]) await c.connect();
    const g = await alice.createGroup('Trio', ['bob', 'carol']);
    await until(async () => (await bob.groups()).length === 1 && (await carol.groups()).length === 1, 'members learn');
    await alice.send(g.conversation, 'first');
    await until(async () => (await carol.history(g.conversation)).length === 2, 'carol reads');
    // Bob re-installs: a new identity key under the same name.
    await bob.close();
    server.accounts.delete('bob');
    bob = (await user(server, 'bob')).client;
    await bob.connect();
    const copies = server.multi.length;
    await assert.rejects(alice.send(g.conversation, 'held'), (e: unknown) => isClientError(e) && e.code === 'UNTRUSTED_IDENTITY' && e.contact === 'bob');
    const held = (await alice.history(g.conversation)).at(-1)!;
    assert.equal(held.state, 'queued');
    assert.match(held.error?.message ?? '', /held until you trust bob/);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(server.multi.length, copies, 'nothing sent while held');
    await alice.trust('bob');
    await until(async () => (await carol.history(g.conversation)).length === 3, 'carol gets the held message after trust');
    assert.equal((await alice.history(g.conversation)).at(-1)?.state, 'sent');
  } finally {
    for (const c of [alice, bob, carol]) await c.close();
  }
});

test('concurrent membership changes converge on every device', async () => {
  const server = new MemoryServer();
  const alice = await user(server, 'alice');
  const bob = await user(server, 'bob');
  const carol = await user(server, 'carol');
  const dave = await user(server, 'dave');
  let bobClient = bob.client;
  try {
    for (const c of [alice.client, bob.client, carol.client, dave.client]) await c.connect();
    const g = await alice.client.createGroup('Four', ['bob', 'carol']);
    await until(async () => (await bobClient.groups()).length === 1 && (await carol.client.groups()).length === 1, 'members learn');
    // Bob goes offline; alice adds dave meanwhile; bob, not having heard of it, leaves.
    await bobClient.close();
    await alice.client.addToGroup(g.conversation, ['dave']);
    bobClient = await TacitClient.open(opts(server, bob.store.reopen()));
    await bobClient.leaveGroup(g.conversation);
    const all = [alice.client, bobClient, carol.client, dave.client];
    const view = async (c: TacitClient) => JSON.stringify(await c.group(g.conversation).then((x) => [x.members, x.admins, x.revision, x.title]));
    await until(async () => new Set(await Promise.all(all.map(view))).size === 1, 'all four agree');
    assert.deepEqual((await dave.client.group(g.conversation)).members, ['alice', 'carol', 'dave']);
    assert.equal((await bobClient.group(g.conversation)).member, false);
  } finally {
    for (const c of [alice.client, bobClient, carol.client, dave.client]) await c.close();
  }
});

test('a change made while the server is down reaches the members after the next connect, even from a process that ended', async () => {
  const server = new MemoryServer();
  const alice = await user(server, 'alice');
  const { client: bob } = await user(server, 'bob');
  let aliceClient = alice.client;
  try {
    for (const c of [aliceClient, bob]) await c.connect();
    const g = await aliceClient.createGroup('Offline', ['bob']);
    await until(async () => (await bob.groups()).length === 1, 'bob learns');
    server.stop();
    // Renamed and removed here; the process ends before the server is back.
    const renaming = aliceClient.renameGroup(g.conversation, 'Back online');
    await until(async () => (await aliceClient.group(g.conversation)).title === 'Back online', 'the change stands here');
    await aliceClient.close();
    await assert.rejects(renaming, (e: unknown) => isClientError(e) && (e.code === 'CLOSED' || e.code === 'NETWORK'));
    server.start();
    aliceClient = await TacitClient.open(opts(server, alice.store.reopen()));
    await aliceClient.connect();
    await until(async () => (await bob.group(g.conversation)).title === 'Back online', 'bob learns of the rename');
    assert.equal((await bob.history(g.conversation)).at(-1)?.text, 'alice renamed the group to "Back online"');
  } finally {
    for (const c of [aliceClient, bob]) await c.close();
  }
});

// ---- the convergence rule, on its own ----

const ID = '0123456789abcdef0123456789abcdef';
function base(): GroupState {
  return {
    id: ID,
    title: { v: 'T', rev: 1, by: 'alice' },
    members: {
      alice: { in: true, admin: true, rev: 1, by: 'alice' },
      bob: { in: true, admin: true, rev: 1, by: 'alice' },
      carol: { in: true, admin: false, rev: 1, by: 'alice' },
    },
  };
}

test('merge: any order of the same changes gives the same state (highest revision, then the larger hash)', () => {
  // Two admins change members and the title concurrently, and carol leaves: changes that do not
  // touch the admins' own rights (those are checked against each device's state; see PROTOCOL.md).
  const users = ['carol', 'dave', 'erin'];
  const change = fc.oneof(
    fc.record({ by: fc.constantFrom('alice', 'bob'), rev: fc.integer({ min: 2, max: 4 }), target: fc.constantFrom(...users, 'title'), on: fc.boolean(), admin: fc.boolean() }),
    fc.record({ by: fc.constant('carol'), rev: fc.integer({ min: 2, max: 4 }), target: fc.constant('carol'), on: fc.constant(false), admin: fc.constant(false) }),
  );
  fc.assert(
    fc.property(fc.array(change, { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 1000 }), (changes, seed) => {
      const updates = changes.map((c) => {
        const s = base();
        if (c.target === 'title') s.title = { v: `T${c.rev}${c.on ? 'a' : 'b'}`, rev: c.rev, by: c.by };
        else s.members[c.target] = { in: c.on, admin: c.admin, rev: c.rev, by: c.by };
        return { s, from: c.by };
      });
      const apply = (order: typeof updates) => order.reduce((acc, u) => mergeGroupState(backend, acc, u.s, u.from, 'erin').state, base());
      const shuffled = [...updates].sort((a, b) => ((updates.indexOf(a) * 7919 + seed) % 13) - ((updates.indexOf(b) * 7919 + seed) % 13));
      const x = apply(updates);
      const y = apply(shuffled);
      const z = apply([...updates].reverse());
      const norm = (s: GroupState) => JSON.stringify([s.title, Object.keys(s.members).sort().map((k) => [k, s.members[k]])]);
      assert.equal(norm(x), norm(y));
      assert.equal(norm(x), norm(z));
    }),
    { numRuns: 300 },
  );
});

test('merge: a non-admin may only record its own leave; a stranger cannot make itself admin', () => {
  const s = base();
  const forged = base();
  forged.members['carol'] = { in: true, admin: true, rev: 5, by: 'carol' };
  forged.members['alice'] = { in: false, admin: false, rev: 5, by: 'carol' };
  assert.equal(mergeGroupState(backend, s, forged, 'carol', 'bob').changed, false);
  const leave = base();
  leave.members['carol'] = { in: false, admin: false, rev: 2, by: 'carol' };
  const m = mergeGroupState(backend, s, leave, 'carol', 'bob');
  assert.deepEqual([m.changed, m.removed], [true, ['carol']]);
  // A group that names someone else's admin cannot be pushed onto a device that is not in it.
  const other = base();
  assert.equal(mergeGroupState(backend, undefined, other, 'mallory', 'carol').changed, false);
});
