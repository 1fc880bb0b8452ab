// Muting a conversation (chat/mute.ts), through a real server process: alice on two devices mutes
// bob's conversation for an hour and a group always; bob's messages are still stored and counted
// unread; the summaries and contacts carry mutedUntil; the hour ends by itself on the client's
// clock; the laptop and a device linked later learn the mutes; unmuting on the laptop reaches the
// phone. A mute sync from another account, and a malformed one, are refused and change nothing;
// bad durations and the limits are refused in words. A device that restarts in the middle of a mute
// holds it, and the block, as before; one that restarts after the end finds the mute over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMuteSync, encodeMuteSync, isClientError, looksLikeMuteSync, looksLikeBlockSync, MAX_MUTED_CONVERSATIONS, MAX_MUTE_MS, MUTED_FOREVER, MUTE_CHOICES } from '../src/index.ts';
import { utf8Encode } from '../src/bytes.ts';
import { assertRefused, padded as pad, serverDevices, until } from './support/devices.ts';

const { register, link, reopen, sendForged } = serverDevices();
const HOUR = 3600_000;
const G = `g:${'ab'.repeat(16)}`;

test('mute-sync payloads: round trip, strict decoding', () => {
  const list = { mutes: { 'u:bob': 1_700_000_000_000, [G]: MUTED_FOREVER }, at: 1_700_000_000_000 };
  const bytes = encodeMuteSync(list);
  assert.ok(looksLikeMuteSync(bytes));
  assert.ok(!looksLikeBlockSync(bytes));
  assert.deepEqual(decodeMuteSync(bytes), list);
  assert.deepEqual(decodeMuteSync(pad('{"v":1,"muteSync":{"mutes":{},"at":0}}')), { mutes: {}, at: 0 });
  const bad = [
    '{"v":1,"muteSync":{"mutes":{"bob":5},"at":5}}',
    '{"v":1,"muteSync":{"mutes":{"u:Bob!":5},"at":5}}',
    '{"v":1,"muteSync":{"mutes":{"g:abc":5},"at":5}}',
    '{"v":1,"muteSync":{"mutes":{"__proto__":5},"at":5}}',
    '{"v":1,"muteSync":{"mutes":{"u:bob":0},"at":5}}',
    '{"v":1,"muteSync":{"mutes":{"u:bob":-5},"at":5}}',
    '{"v":1,"muteSync":{"mutes":{"u:bob":1.5},"at":5}}',
    '{"v":1,"muteSync":{"mutes":{"u:bob":"5"},"at":5}}',
    '{"v":1,"muteSync":{"mutes":[["u:bob",5]],"at":5}}',
    '{"v":1,"muteSync":{"mutes":{"u:bob":5}}}',
    '{"v":1,"muteSync":{"mutes":{"u:bob":5},"at":-1}}',
    `{"v":1,"muteSync":{"mutes":${JSON.stringify(Object.fromEntries(Array.from({ length: MAX_MUTED_CONVERSATIONS + 1 }, (_, i) => [`u:u${i}`, 5])))},"at":5}}`,
    '{"v":2,"muteSync":{"mutes":{},"at":5}}',
    '{"v":1,"muteSync":[]}',
    '{"v":1,"muteSync":{',
  ];
  assertRefused(decodeMuteSync, bad, '{"v":1,"muteSync":{"mutes":{},"at":0}}');
  assert.deepEqual(MUTE_CHOICES.map((c) => c.ms / HOUR), [1, 8, 24, 168], "Signal's choices");
});

test('muted: still stored and unread, shown on the summaries, ends at its time; own devices follow; unmute', async () => {
  const clock = { t: Date.now() };
  const now = (): number => clock.t;
  const alice = await register('alice', undefined, now);
  const laptop = await link(alice.client, 'laptop', now);
  const bob = await register('bob');
  const carol = await register('carol');
  const a = alice.client.username;
  const b = bob.client.username;
  await bob.client.send(a, 'before');
  await until(async () => (await laptop.client.history(b)).length === 1, 'the laptop has bob');
  const group = await carol.client.createGroup('Plans', [a, b]);
  await until(async () => (await alice.client.groups()).some((g) => g.id === group.id), 'alice is in the group');
  const events: { mutes: Record<string, number>; fromDevice?: number }[] = [];
  laptop.client.on('mute', (e) => events.push(e));

  const until1 = await alice.client.mute(b, HOUR);
  assert.equal(until1, clock.t + HOUR);
  assert.equal(await alice.client.mute(`#Plans`, 'always'), MUTED_FOREVER);
  assert.deepEqual(await alice.client.mutes(), { [`u:${b}`]: until1, [`g:${group.id}`]: MUTED_FOREVER });
  await until(async () => Object.keys(await laptop.client.mutes()).length === 2, 'the laptop learns both mutes');
  assert.equal(await laptop.client.mutedUntil(b), until1);
  assert.deepEqual(events.at(-1), { mutes: { [`u:${b}`]: until1, [`g:${group.id}`]: MUTED_FOREVER }, fromDevice: alice.client.deviceId });

  // Still received, stored and counted unread.
  await bob.client.send(a, 'while muted');
  await carol.client.sendToGroup(`g:${group.id}`, 'group while muted');
  for (const d of [alice, laptop]) {
    await until(async () => (await d.client.history(b)).some((m) => m.text === 'while muted'), 'the muted message is stored');
    await until(async () => (await d.client.history(`g:${group.id}`)).some((m) => m.text === 'group while muted'), 'the muted group message is stored');
    const convs = await d.client.conversations();
    const pair = convs.find((c) => c.id === `u:${b}`)!;
    assert.equal(pair.unread, 2, 'unread still counts');
    assert.equal(pair.mutedUntil, until1);
    assert.equal(convs.find((c) => c.id === `g:${group.id}`)?.mutedUntil, MUTED_FOREVER);
    assert.equal((await d.client.contacts()).find((c) => c.username === b)?.mutedUntil, until1);
  }
  assert.equal((await alice.client.conversations()).find((c) => c.id === `u:${carol.client.username}`)?.mutedUntil, undefined);

  // A device linked now learns them too.
  const tablet = await link(alice.client, 'tablet', now);
  await until(async () => (await tablet.client.mutedUntil(`g:${group.id}`)) === MUTED_FOREVER, 'a newly linked device learns the mutes');

  // The hour ends by itself (the client's clock; no timer).
  clock.t += HOUR;
  assert.equal(await alice.client.mutedUntil(b), undefined, 'expired exactly at its end');
  assert.equal((await alice.client.conversations()).find((c) => c.id === `u:${b}`)?.mutedUntil, undefined);
  assert.deepEqual(Object.keys(await alice.client.mutes()), [`g:${group.id}`]);
  assert.equal(await alice.client.unmute(b), false, 'an expired mute is not muted');

  // Unmuted on the laptop: the phone follows.
  assert.equal(await laptop.client.unmute(`g:${group.id}`), true);
  await until(async () => Object.keys(await alice.client.mutes()).length === 0, 'the phone learns the unmute');
  assert.equal(await laptop.client.unmute(`g:${group.id}`), false);
});

test('a mute sync from another account is refused and changes nothing; bad input and limits are refused in words', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  const mine = await alice.client.mute(bob.client.username, 'always');
  await sendForged(alice.client, [encodeMuteSync({ mutes: {}, at: Date.now() + 1_000_000 }), utf8Encode('{"v":1,"muteSync":{"mutes":')], async () => {
    await bob.client.send(alice.client.username, 'still here');
    await until(async () => (await alice.client.history(bob.client.username)).length === 1, 'bob arrives');
  });
  assert.deepEqual(await alice.client.mutes(), { [`u:${bob.client.username}`]: mine });

  for (const d of [0, 999, MAX_MUTE_MS + 1, 1.5, Number.NaN, -HOUR]) {
    await assert.rejects(alice.client.mute(bob.client.username, d), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT' && /mute lasts/.test(e.message), String(d));
  }
  for (const c of ['', 'Bad Name!', 'u:', 'g:123']) {
    await assert.rejects(alice.client.mute(c, HOUR), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT', c);
  }
  // The limit: MAX_MUTED_CONVERSATIONS at once (one is muted already).
  for (let i = 1; i < MAX_MUTED_CONVERSATIONS; i++) await alice.client.mute(`u:m${i}`, HOUR);
  await assert.rejects(alice.client.mute('u:onetoomany', HOUR), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT' && /at most 500/.test(e.message));
  await alice.client.mute('u:m1', 'always');
  assert.equal(Object.keys(await alice.client.mutes()).length, MAX_MUTED_CONVERSATIONS, 'muting one again replaces it');
});

test('restarted mid-mute: the mutes and the block hold as before; restarted past an end: that mute is over, the others and the block stay', async () => {
  const clock = { t: Date.now() };
  const now = (): number => clock.t;
  let alice = await register('alice', undefined, now);
  const bob = await register('bob');
  const carol = await register('carol');
  const mallory = await register('mallory');
  const [a, b, c, m] = [alice.client.username, bob.client.username, carol.client.username, mallory.client.username];
  for (const x of [bob, carol, mallory]) await x.client.send(a, `hi from ${x.client.username}`);
  await until(async () => (await alice.client.conversations()).length === 3, 'three conversations');
  const bobEnd = await alice.client.mute(b, HOUR);
  const carolEnd = await alice.client.mute(c, 8 * HOUR);
  await alice.client.block(m);
  const state = async (): Promise<Record<string, [number | undefined, boolean]>> =>
    Object.fromEntries((await alice.client.conversations()).map((x) => [x.contact, [x.mutedUntil, x.blocked]]));

  // Half an hour in, the device restarts: everything as it was.
  clock.t += HOUR / 2;
  const before = await state();
  await alice.client.close();
  alice = await reopen(alice, undefined, now);
  assert.deepEqual(await state(), before);
  assert.deepEqual(await state(), { [b]: [bobEnd, false], [c]: [carolEnd, false], [m]: [undefined, true] });
  assert.deepEqual(await alice.client.mutes(), { [`u:${b}`]: bobEnd, [`u:${c}`]: carolEnd });
  assert.deepEqual(await alice.client.blocked(), [m]);

  // Closed until after bob's hour: his mute is over, carol's and the block are not.
  await alice.client.close();
  clock.t += HOUR;
  alice = await reopen(alice, undefined, now);
  assert.deepEqual(await state(), { [b]: [undefined, false], [c]: [carolEnd, false], [m]: [undefined, true] });
  assert.equal(await alice.client.mutedUntil(b), undefined);
  assert.deepEqual(Object.keys(await alice.client.mutes()), [`u:${c}`]);
  assert.equal((await alice.client.contacts()).find((x) => x.username === b)?.mutedUntil, undefined);
  // The block still drops what mallory sends (bob's later message shows the queue was read past it).
  await alice.client.connect();
  await mallory.client.send(a, 'after the restart');
  await bob.client.send(a, 'bob after her');
  await until(async () => (await alice.client.history(b)).some((x) => x.text === 'bob after her'), "bob's message arrives");
  assert.deepEqual((await alice.client.history(m)).map((x) => x.text), [`hi from ${m}`]);
  // A change now writes the record without the ended mute; muting bob again starts a new one.
  const again = await alice.client.mute(b, HOUR);
  assert.equal(again, clock.t + HOUR);
  assert.deepEqual(await alice.client.mutes(), { [`u:${c}`]: carolEnd, [`u:${b}`]: again });
});
