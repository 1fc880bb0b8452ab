// Blocking a contact (chat/block.ts), through a real server process: alice on two devices blocks
// mallory on one; the other learns it. Mallory's pairwise message, reaction, typing indicator and
// group message are acknowledged (the server queue empties) but stored nowhere, and no receipt
// goes back to her; her group changes still apply, but she cannot add alice to a new group;
// sending to her is refused with BLOCKED. Unblocking shows her next message (the session
// resumed). A device linked while she is blocked learns it. A block sync from another account is
// refused and changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeBlockSync, encodeBlockSync, isClientError, looksLikeBlockSync, MAX_BLOCKED_USERS, type TacitClient } from '../src/index.ts';
import { utf8Encode } from '../src/bytes.ts';
import { assertRefused, padded as pad, serverDevices, until } from './support/devices.ts';

const { register, link, server, sendForged } = serverDevices();

/** Messages the server still holds for a device (its queue in the server's database). */
function queued(c: TacitClient): number {
  const db = new Database(join(server().dataDir, 'tacit.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM messages WHERE recipient = ?').get(`${c.username}.${c.deviceId}`) as { n: number }).n;
  } finally {
    db.close();
  }
}

test('block-sync payloads: round trip, strict decoding', () => {
  const list = { users: ['bob', 'carol'], at: 1_700_000_000_000 };
  const bytes = encodeBlockSync(list);
  assert.ok(looksLikeBlockSync(bytes));
  assert.deepEqual(decodeBlockSync(bytes), list);
  assert.deepEqual(decodeBlockSync(pad('{"v":1,"blockSync":{"users":[],"at":0}}')), { users: [], at: 0 });
  const bad = [
    '{"v":1,"blockSync":{"users":["Bob!"],"at":5}}',
    '{"v":1,"blockSync":{"users":"bob","at":5}}',
    '{"v":1,"blockSync":{"users":["bob"],"at":-1}}',
    '{"v":1,"blockSync":{"users":["bob"],"at":1.5}}',
    '{"v":1,"blockSync":{"users":["bob"]}}',
    '{"v":1,"blockSync":{"users":[null],"at":5}}',
    `{"v":1,"blockSync":{"users":["${'b'.repeat(33)}"],"at":5}}`,
    `{"v":1,"blockSync":{"users":${JSON.stringify(Array.from({ length: MAX_BLOCKED_USERS + 1 }, (_, i) => `u${i}`))},"at":5}}`,
    '{"v":2,"blockSync":{"users":["bob"],"at":5}}',
    '{"v":1,"blockSync":[]}',
    '{"v":1,"blockSync":{',
  ];
  assertRefused(decodeBlockSync, bad, '{"v":1,"blockSync":{"users":[],"at":0}}');
});

test('blocked: nothing from mallory is stored or answered, the queue empties, the other device follows, sends are refused; unblock resumes', async () => {
  const alice = await register('alice');
  const laptop = await link(alice.client, 'laptop');
  const mallory = await register('mallory');
  const m = mallory.client.username;
  const a = alice.client.username;
  // Before the block: a conversation both ways and a group mallory made.
  const hi = await alice.client.send(m, 'hi mallory');
  await mallory.client.send(a, 'hello alice');
  await until(async () => (await alice.client.history(m)).length === 2 && (await mallory.client.history(a)).length === 2, 'both have both');
  const group = await mallory.client.createGroup('Plans', [a]);
  await until(async () => (await alice.client.groups()).some((g) => g.id === group.id) && (await laptop.client.groups()).some((g) => g.id === group.id), 'alice is in the group');
  const typing: string[] = [];
  alice.client.on('typing', (e) => typing.push(e.from));
  const blockEvents: { blocked: string[]; fromDevice?: number }[] = [];
  laptop.client.on('block', (e) => blockEvents.push(e));

  assert.equal(await alice.client.block(m), true);
  assert.equal(await alice.client.block(m.toUpperCase()), false, 'already blocked (usernames are case-folded)');
  assert.deepEqual(await alice.client.blocked(), [m]);
  await until(async () => (await laptop.client.blocked()).includes(m), 'the laptop learns the block');
  assert.deepEqual(blockEvents, [{ blocked: [m], fromDevice: alice.client.deviceId }]);
  assert.equal((await alice.client.conversations()).find((c) => c.id === `u:${m}`)?.blocked, true);
  // A device linked later gets the list too (the link message does not carry it).
  const tablet = await link(alice.client, 'tablet');
  await until(async () => (await tablet.client.blocked()).includes(m), 'a newly linked device learns the block');

  // Mallory carries on: typing, a message, a reaction, a group message; a new group with alice; a rename.
  // Receipts for what she sent before the block may still arrive; none may name what she sends now.
  const receipted: string[] = [];
  mallory.client.on('receipt', (r) => receipted.push(...r.messages.map((x) => x.id)));
  assert.ok((await mallory.client.setTyping(a, true)) > 0, 'the indicator was sent');
  const sent = await mallory.client.send(a, 'blocked hello');
  await mallory.client.react(a, hi.id, '👍');
  const groupSent = await mallory.client.sendToGroup(`g:${group.id}`, 'blocked group hello');
  const trap = await mallory.client.createGroup('Trap', [a]);
  await mallory.client.renameGroup(`g:${group.id}`, 'Renamed plans');
  for (const d of [alice, laptop]) {
    await until(async () => (await d.client.groups()).find((g) => g.id === group.id)?.title === 'Renamed plans', 'her group change still applies');
    await until(() => queued(d.client) === 0, 'the server queue is empty');
    assert.equal(await d.store.holds('blocked hello'), false, 'her message is stored nowhere');
    assert.equal(await d.store.holds('blocked group hello'), false, 'her group message is stored nowhere');
    assert.equal((await d.client.groups()).some((g) => g.id === trap.id), false, 'she cannot add alice to a new group');
    assert.equal((await d.client.history(m)).length, 2);
    assert.equal((await d.client.history(m)).find((x) => x.id === hi.id)?.reactions, undefined, 'no reaction');
    assert.ok(!(await d.client.history(`g:${group.id}`)).some((x) => x.from === m && x.system !== true), 'no group text of hers');
    await until(async () => (await d.client.pendingReceipts()) === 0, 'no receipts waiting');
  }
  assert.deepEqual(typing, [], 'her typing indicator is not shown');
  assert.deepEqual(await alice.client.typingIn(m), []);
  // Give a receipt time to arrive, were one sent.
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(receipted.filter((id) => id === sent.id || id === groupSent.id), [], 'no receipt reaches her');
  assert.equal((await mallory.client.history(a)).find((x) => x.id === sent.id)?.delivery, 'sent');

  // Nothing goes to her.
  for (const attempt of [() => alice.client.send(m, 'no'), () => alice.client.react(m, hi.id, '🙂'), () => laptop.client.send(m, 'no')]) {
    await assert.rejects(attempt(), (e: unknown) => isClientError(e) && e.code === 'BLOCKED' && e.contact === m);
  }
  assert.equal(await alice.client.setTyping(m, true), 0, 'no typing indicator to her');

  // Unblocked on the laptop: alice's phone follows, and mallory's next message is shown on both.
  assert.equal(await laptop.client.unblock(m), true);
  await until(async () => (await alice.client.blocked()).length === 0, 'the phone learns the unblock');
  await mallory.client.send(a, 'after unblock');
  for (const d of [alice, laptop]) await until(async () => (await d.client.history(m)).some((x) => x.text === 'after unblock'), 'her next message arrives');
  await until(async () => (await mallory.client.history(a)).some((x) => x.text === 'after unblock' && x.delivery === 'delivered'), 'and is answered with a receipt');
  await alice.client.send(m, 'welcome back');
  await until(async () => (await mallory.client.history(a)).some((x) => x.text === 'welcome back'), 'alice can send again');
});

test('a block sync from another account is refused and changes nothing; bad input is refused in words', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  await sendForged(alice.client, [encodeBlockSync({ users: [bob.client.username], at: Date.now() + 1_000_000 }), utf8Encode('{"v":1,"blockSync":{"users":[')], async () => {
    await bob.client.send(alice.client.username, 'still shown');
    await until(async () => (await alice.client.history(bob.client.username)).length === 1, 'bob is not blocked');
  });
  assert.deepEqual(await alice.client.blocked(), []);
  for (const bad of ['', 'Bad Name!', 'x'.repeat(40)]) {
    await assert.rejects(alice.client.block(bad), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
  }
  await assert.rejects(alice.client.block(alice.client.username), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT' && /yourself/.test(e.message));
  assert.equal(await alice.client.unblock(bob.client.username), false);
});
