// Edits, deletions for everyone, reactions, disappearing messages and search in the SDK
// (chat/), pairwise and in groups, against the in-memory server double; forged and early actions;
// apps/cli/test/edits.test.ts repeats the essentials through a real server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeBackend } from '@tacit/protocol/node';
import {
  EDIT_WINDOW_MS,
  MAX_HELD_ACTIONS,
  MAX_HELD_ACTIONS_PER_SENDER,
  MemoryRecordStore,
  TacitClient,
  decodeAction,
  encodeEnvelope,
  decodeEnvelope,
  isClientError,
  isReactionEmoji,
  parseDuration,
  searchWords,
  type HistoryMessage,
} from '../src/index.ts';
import { uncheckedActionSend } from '../src/chat/testing.ts';
import { MessageActions } from '../src/chat/edits.ts';
import type { Action } from '../src/chat/actions.ts';
import { Core } from '../src/core.ts';
import { Emitter } from '../src/emitter.ts';
import type { ClientEvents } from '../src/events.ts';
import { History } from '../src/history.ts';
import { PREFIX } from '../src/keys.ts';
import { MemoryServer } from './support/memory-server.ts';

const backend = nodeBackend();

interface Clock {
  now: number;
}

async function user(server: MemoryServer, name: string, clock?: Clock): Promise<{ client: TacitClient; store: MemoryRecordStore }> {
  const store = new MemoryRecordStore();
  const client = await TacitClient.register(
    { store, backend, connect: server.factory, fetch: server.fetch, backoff: { baseMs: 5, maxMs: 20 }, ...(clock ? { now: () => clock.now } : {}) },
    { server: 'http://tacit.test', username: name },
  );
  return { client, store };
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Every record value of a store as text (the memory store keeps them unsealed). */
async function storeText(store: MemoryRecordStore): Promise<string> {
  return (await store.list('')).map((r) => Buffer.from(r.value).toString('latin1')).join('\n');
}

const shown = (list: HistoryMessage[]): string[] => list.filter((m) => !m.system).map((m) => (m.deleted ? `${m.from}: <deleted>` : `${m.from}: ${m.text}${m.edited !== undefined ? ' (edited)' : ''}`));

test('action decoder: the four kinds, bounds, and anything else refused', () => {
  assert.deepEqual(decodeAction({ k: 'edit', target: 'ab12', text: 'new' }), { k: 'edit', target: 'ab12', text: 'new' });
  assert.deepEqual(decodeAction({ k: 'delete', target: 'ab12' }), { k: 'delete', target: 'ab12' });
  assert.deepEqual(decodeAction({ k: 'react', author: 'bob', target: 'ab12', emoji: '👍🏽' }), { k: 'react', author: 'bob', target: 'ab12', emoji: '👍🏽' });
  assert.deepEqual(decodeAction({ k: 'react', author: 'bob', target: 'ab12', emoji: '' }), { k: 'react', author: 'bob', target: 'ab12', emoji: '' });
  assert.deepEqual(decodeAction({ k: 'timer', ms: 0 }), { k: 'timer', ms: 0 });
  for (const bad of [
    null,
    [],
    { k: 'edit', target: '', text: 'x' },
    { k: 'edit', target: 'a'.repeat(65), text: 'x' },
    { k: 'edit', target: 'ab', text: '   ' },
    { k: 'delete' },
    { k: 'react', author: 'Bob!', target: 'ab', emoji: '👍' },
    { k: 'react', author: 'bob', target: 'ab', emoji: 'ab' },
    { k: 'react', author: 'bob', target: 'ab', emoji: '👍👍' },
    { k: 'react', author: 'bob', target: 'ab', emoji: '1' },
    { k: 'timer', ms: 999 },
    { k: 'timer', ms: 1.5e3 + 0.5 },
    { k: 'timer', ms: 29 * 24 * 3600_000 },
    { k: 'nope' },
  ]) {
    assert.equal(decodeAction(bad), undefined, JSON.stringify(bad));
  }
  for (const e of ['👍', '❤️', '👨‍👩‍👧‍👦', '🇫🇷', '1️⃣', '🏳️‍🌈']) assert.ok(isReactionEmoji(e), e);
  for (const e of ['', 'a', '#', '👍 ', '👍👎', '😀'.repeat(40)]) assert.ok(!isReactionEmoji(e), e);
  assert.deepEqual([parseDuration('off'), parseDuration('30s'), parseDuration('5m'), parseDuration('1h'), parseDuration('2d'), parseDuration('1w'), parseDuration('0.5s'), parseDuration('5y'), parseDuration('5w')], [0, 30_000, 300_000, 3_600_000, 172_800_000, 604_800_000, undefined, undefined, undefined]);
  assert.deepEqual(searchWords('Déjà-vu, CAFÉ! x2'), ['déjà', 'vu', 'café', 'x2']);
});

test('envelope: act and exp ride in it; an act with text or a bad exp is not an envelope', () => {
  const act = { k: 'delete', target: 'abcd' } as const;
  const bytes = encodeEnvelope({ v: 1, id: 'x1', text: '', sentAt: 5, act, exp: 60_000 });
  assert.deepEqual(decodeEnvelope(bytes), { v: 1, id: 'x1', text: '', sentAt: 5, act, exp: 60_000 });
  const raw = (o: object): Uint8Array => {
    const j = new TextEncoder().encode(JSON.stringify(o));
    const p = new Uint8Array(j.length + 1);
    p.set(j);
    p[j.length] = 0x80;
    return p;
  };
  assert.equal(decodeEnvelope(raw({ v: 1, id: 'x', text: 'hi', sentAt: 1, act })), undefined);
  assert.equal(decodeEnvelope(raw({ v: 1, id: 'x', text: '', sentAt: 1, act: { k: 'bogus' } })), undefined);
  assert.equal(decodeEnvelope(raw({ v: 1, id: 'x', text: 'hi', sentAt: 1, exp: 10 })), undefined);
  assert.equal(decodeEnvelope(raw({ v: 1, id: 'x', text: 'hi', sentAt: 1, exp: -5 })), undefined);
});

test('pairwise: edit, delete for everyone and reactions reach the other side; text gone from both stores; rules on the sender', async () => {
  const server = new MemoryServer();
  const a = await user(server, 'alice');
  const b = await user(server, 'bob');
  const alice = a.client;
  const bob = b.client;
  try {
    await alice.connect();
    await bob.connect();
    const m1 = await alice.send('bob', 'helo wrold');
    const m2 = await alice.send('bob', 'secret plans for friday');
    await until(async () => (await bob.history('alice')).length === 2, 'bob has both');

    const edited = await alice.editMessage('bob', m1.id.slice(0, 8), 'hello world');
    assert.equal(edited.kind, 'edit');
    assert.equal(edited.target, m1.id);
    await until(async () => (await bob.history('alice'))[0]?.text === 'hello world', 'the edit reaches bob');
    const seen = (await bob.history('alice'))[0]!;
    assert.ok(seen.edited !== undefined);
    assert.deepEqual(seen.versions?.map((v) => v.text), ['helo wrold']);
    assert.deepEqual(shown(await alice.history('bob')), ['alice: hello world (edited)', 'alice: secret plans for friday']);

    await alice.deleteForEveryone('bob', m2.id);
    await until(async () => (await bob.history('alice'))[1]?.deleted === true, 'the deletion reaches bob');
    assert.deepEqual(shown(await bob.history('alice')), ['alice: hello world (edited)', 'alice: <deleted>']);
    assert.deepEqual(shown(await alice.history('bob')), ['alice: hello world (edited)', 'alice: <deleted>']);
    // Gone from the records themselves, on both devices, once the carrier records went too.
    await until(async () => !(await storeText(a.store)).includes('secret plans') && !(await storeText(b.store)).includes('secret plans'), 'text gone from the stores');

    // Reactions: bob reacts, changes it, alice reacts too; then bob removes his.
    await bob.react('alice', m1.id, '👍');
    await until(async () => (await alice.history('bob'))[0]?.reactions?.[0]?.emoji === '👍', 'reaction reaches alice');
    await bob.react('alice', m1.id, '🎉');
    await alice.react('bob', m1.id, '❤️');
    await until(async () => JSON.stringify((await alice.history('bob'))[0]?.reactions?.map((r) => [r.from, r.emoji])) === JSON.stringify([['bob', '🎉'], ['alice', '❤️']]), 'replaced');
    await until(async () => (await bob.history('alice'))[0]?.reactions?.length === 2, 'bob sees both');
    await bob.react('alice', m1.id, '');
    await until(async () => JSON.stringify((await alice.history('bob'))[0]?.reactions?.map((r) => r.from)) === '["alice"]', 'removed');

    // The sender's rules: not someone else's message, not a deleted one, not a second emoji.
    const bobsMsg = await bob.send('alice', 'from bob');
    await until(async () => (await alice.history('bob')).length === 3, 'alice has bob\'s');
    await assert.rejects(alice.editMessage('bob', bobsMsg.id, 'mine now'), (e: unknown) => isClientError(e) && /own/.test(e.message));
    await assert.rejects(alice.editMessage('bob', m2.id, 'again'), (e: unknown) => isClientError(e) && /deleted/.test(e.message));
    await assert.rejects(alice.react('bob', m1.id, '👍👍'), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
    await assert.rejects(alice.editMessage('bob', 'abc', 'x'), (e: unknown) => isClientError(e) && /first 6/.test(e.message));
    // Nothing internal is shown: the carriers are gone, history has exactly the three messages.
    assert.equal((await alice.history('bob')).length, 3);
    assert.equal((await bob.history('alice')).length, 3);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('edits only within 24 hours; a forged edit or deletion of someone else\'s message is never applied; early actions are held', async () => {
  const server = new MemoryServer();
  const clock: Clock = { now: Date.now() };
  const a = await user(server, 'alice', clock);
  const b = await user(server, 'bob');
  const c = await user(server, 'carol');
  const alice = a.client;
  const bob = b.client;
  const carol = c.client;
  try {
    for (const x of [alice, bob, carol]) await x.connect();
    const g = await alice.createGroup('Team', ['bob', 'carol']);
    await until(async () => (await bob.groups()).length === 1 && (await carol.groups()).length === 1, 'members know the group');
    const m = await alice.send(g.conversation, 'the plan');
    await until(async () => (await carol.history(g.conversation)).some((x) => x.text === 'the plan'), 'carol has it');
    const ignored: string[] = [];
    carol.on('action-ignored', (e) => ignored.push(`${e.from}:${e.kind}:${e.reason}`));

    // Bob's client is hostile: it sends an edit and a deletion naming alice's message. The
    // target is looked up with bob as its author, so nothing of alice's changes.
    const forged = { k: 'edit', target: m.id, text: 'forged by bob' } as const;
    await sendRawAction(bob, g.conversation, forged);
    await sendRawAction(bob, g.conversation, { k: 'delete', target: m.id });
    await bob.send(g.conversation, 'marker');
    await until(async () => (await carol.history(g.conversation)).some((x) => x.text === 'marker'), 'carol got bob\'s marker');
    const seen = (await carol.history(g.conversation)).find((x) => x.id === m.id)!;
    assert.equal(seen.text, 'the plan');
    assert.equal(seen.edited, undefined);
    assert.equal(seen.deleted, undefined);

    // Alice's own edit works for carol and bob.
    clock.now += 1_000;
    await alice.editMessage(g.conversation, m.id, 'the new plan');
    for (const x of [bob, carol]) await until(async () => (await x.history(g.conversation)).find((y) => y.id === m.id)?.text === 'the new plan', `${x.username} sees the edit`);

    // After 24 hours: refused on the sender's side, and ignored by receivers (forged clock).
    clock.now += EDIT_WINDOW_MS + 1_000;
    await assert.rejects(alice.editMessage(g.conversation, m.id, 'too late'), (e: unknown) => isClientError(e) && /24 hours/.test(e.message));
    await sendRawAction(alice, g.conversation, { k: 'edit', target: m.id, text: 'too late' });
    await until(() => ignored.includes('alice:edit:TOO_LATE'), 'carol ignores the late edit');
    assert.equal((await carol.history(g.conversation)).find((y) => y.id === m.id)?.text, 'the new plan');
    // A group's disappearing message goes out with the timer as its queue time (send-multi ttlMs).
    await bob.setDisappearingTimer(g.conversation, 60_000);
    await until(async () => (await carol.disappearingTimer(g.conversation)) === 60_000, 'carol learns the group timer');
    await carol.send(g.conversation, 'short-lived');
    assert.ok(server.ttls.includes(60_000));
  } finally {
    for (const x of [alice, bob, carol]) await x.close();
  }
});

/** Sends an action the SDK's own checks would refuse (a hostile client), through the normal queue. */
async function sendRawAction(client: TacitClient, conversation: string, act: Action): Promise<void> {
  const send = uncheckedActionSend.get(client);
  assert.ok(send);
  await send(conversation, act);
}

test('an action that arrives before its message is held and applied when it comes; a late one for a deleted message stays out', async () => {
  const server = new MemoryServer();
  const a = await user(server, 'alice');
  // The client stays idle; a second view of its store drives the parts directly.
  const core = await Core.load({ store: a.store, backend, now: Date.now, events: new Emitter<ClientEvents>() });
  const history = new History(core);
  const actions = new MessageActions(core, history);
  const applied: string[] = [];
  core.events.on('action', (e) => applied.push(`${e.actor}:${e.action.k}`));
  const conv = 'u:bob';
  const id = 'ab'.repeat(16);
  const now = Date.now();
  // A reaction and an edit by bob to bob's message `id`, before the message.
  await core.mutate((t) => actions.receive(t, conv, 'bob', { k: 'react', author: 'bob', target: id, emoji: '👀' }, now + 1));
  await core.mutate((t) => actions.receive(t, conv, 'bob', { k: 'edit', target: id, text: 'fixed' }, now + 2));
  // Carol (not the author) edits it too: held under carol as author, so it never meets bob's message.
  await core.mutate((t) => actions.receive(t, conv, 'carol', { k: 'edit', target: id, text: 'carol was here' }, now + 3));
  assert.deepEqual(applied, []);
  await core.mutate((t) => history.append(t, conv, { d: 'in', id, from: 'bob', dev: 1, sentAt: now, rcv: now }, 'fxied'));
  await until(() => applied.length === 2, 'held actions applied');
  const [m] = await history.page(conv);
  assert.equal(m?.text, 'fixed');
  assert.deepEqual(m?.reactions?.map((r) => r.emoji), ['👀']);
  assert.deepEqual(m?.versions?.map((v) => v.text), ['fxied']);
  // An older edit arriving late is kept as a version, not shown.
  await core.mutate((t) => actions.receive(t, conv, 'bob', { k: 'edit', target: id, text: 'older' }, now + 1));
  assert.equal((await history.page(conv))[0]?.text, 'fixed');
  // Held actions are bounded: past MAX_HELD_ACTIONS_PER_SENDER a sender's own oldest go (carol's stays),
  // past MAX_HELD_ACTIONS anyone's oldest.
  await core.mutate(async (t) => {
    for (let i = 0; i < MAX_HELD_ACTIONS_PER_SENDER + 20; i++) await actions.receive(t, conv, 'bob', { k: 'delete', target: `dead${i}` }, now);
  });
  assert.equal((await core.view().list(PREFIX.heldAction)).length, MAX_HELD_ACTIONS_PER_SENDER + 1);
  const senders = Math.ceil(MAX_HELD_ACTIONS / MAX_HELD_ACTIONS_PER_SENDER) + 1;
  await core.mutate(async (t) => {
    for (let s = 0; s < senders; s++) for (let i = 0; i < MAX_HELD_ACTIONS_PER_SENDER; i++) await actions.receive(t, conv, `m${s}`, { k: 'delete', target: `dead${i}` }, now);
  });
  assert.equal((await core.view().list(PREFIX.heldAction)).length, MAX_HELD_ACTIONS);
  await a.client.close();
});

test('disappearing: the timer is set by either side and shown to both; messages go from both stores after it, counted from reading', async () => {
  const server = new MemoryServer();
  const a = await user(server, 'alice');
  const b = await user(server, 'bob');
  const alice = a.client;
  const bob = b.client;
  try {
    await alice.connect();
    await bob.connect();
    await alice.send('bob', 'keep me');
    await bob.setDisappearingTimer('alice', 1_000);
    await until(async () => (await alice.disappearingTimer('bob')) === 1_000, 'alice learns the timer');
    assert.match((await alice.history('bob')).at(-1)?.text ?? '', /bob set disappearing messages to 1 second/);
    await alice.send('bob', 'vanishing words');
    // The server is asked to keep it queued no longer than its timer.
    assert.ok(server.ttls.includes(1_000));
    await until(async () => (await bob.history('alice')).some((m) => m.text === 'vanishing words'), 'bob has it');
    const got = (await bob.history('alice')).find((m) => m.text === 'vanishing words')!;
    assert.equal(got.expireTimer, 1_000);
    assert.equal(got.expiresAt, undefined, 'unread: its clock has not started');
    // Alice's own copy goes a second after sending.
    await until(async () => !(await storeText(a.store)).includes('vanishing words'), 'gone from alice\'s store');
    // Bob's stays while unread, then goes a second after he read it.
    assert.ok((await storeText(b.store)).includes('vanishing words'));
    await bob.markRead('alice');
    await until(async () => !(await storeText(b.store)).includes('vanishing words'), 'gone from bob\'s store');
    assert.ok((await storeText(b.store)).includes('keep me'), 'messages from before the timer stay');
    assert.deepEqual((await bob.search('vanishing')).length, 0);
    await alice.setDisappearingTimer('bob', 0);
    await until(async () => (await bob.disappearingTimer('alice')) === 0, 'timer off');
  } finally {
    await alice.close();
    await bob.close();
  }
});

test('search: every word as a word prefix, newest first, across conversations; not deleted messages', async () => {
  const server = new MemoryServer();
  const clock: Clock = { now: Date.now() - 7 * 24 * 3600_000 };
  const a = await user(server, 'alice', clock);
  const b = await user(server, 'bob');
  const alice = a.client;
  const bob = b.client;
  try {
    await alice.connect();
    await bob.connect();
    await alice.send('bob', 'The Quarterly report is attached');
    clock.now = Date.now();
    const gone = await alice.send('bob', 'quarterly numbers, do not forward');
    await alice.send('bob', 'lunch?');
    await until(async () => (await bob.history('alice')).length === 3, 'bob has all');
    const hits = await bob.search('quarter');
    assert.deepEqual(hits.map((m) => m.text), ['quarterly numbers, do not forward', 'The Quarterly report is attached']);
    assert.deepEqual((await bob.search('REPORT quarterly')).map((m) => m.text), ['The Quarterly report is attached']);
    assert.deepEqual(await bob.search('uarterly'), []);
    await alice.deleteForEveryone('bob', gone.id);
    await until(async () => (await bob.search('forward')).length === 0, 'deleted not found');
    assert.equal((await alice.search('forward')).length, 0);
    await assert.rejects(bob.search('  ,, '), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
  } finally {
    await alice.close();
    await bob.close();
  }
});
