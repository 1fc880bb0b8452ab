// Read state synced between the devices of one account (chat/read-sync.ts), through a real server
// process: alice on two devices; what one shows is read on the other (unread count, read flag),
// pairwise and in a group, and the other sends no read receipt of its own; a disappearing
// message's timer starts on the other device when it was read on the first, and the record is
// gone from that device's store afterwards; a read sync from another account changes nothing.
// Also: edits, deletions and reactions in a disappearing conversation go with its `ttlMs`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeReadSync, encodeEnvelope, encodeReadSync, looksLikeReadSync, MAX_READ_SYNC_ENTRIES, type SocketFactory, type TacitClient } from '../src/index.ts';
import { utf8Encode } from '../src/bytes.ts';
import { wsSocketFactory } from '../src/node.ts';
import { rawDevice } from './support/raw-device.ts';
import { assertRefused, padded as pad, serverDevices, until, type Device } from './support/devices.ts';

const { register, link, unique, server } = serverDevices();

const unreadIn = async (c: TacitClient, conversation: string): Promise<number> => (await c.conversations()).find((x) => x.id === conversation)?.unread ?? -1;

test('read-sync payloads: round trip, batch bound, strict decoding', () => {
  const g = '0123456789abcdef0123456789abcdef';
  const entries = [
    { from: 'bob', id: 'a1', at: 1_700_000_000_000 },
    { from: 'carol', id: 'b2', at: 1_700_000_000_001, group: g },
  ];
  const bytes = encodeReadSync(entries);
  assert.ok(looksLikeReadSync(bytes));
  assert.deepEqual(decodeReadSync(bytes), entries);
  assert.throws(() => encodeReadSync([]));
  assert.throws(() => encodeReadSync(Array.from({ length: MAX_READ_SYNC_ENTRIES + 1 }, (_, i) => ({ from: 'bob', id: `m${i}`, at: 1 }))));
  assert.deepEqual(decodeReadSync(pad('{"v":1,"readSync":[{"from":"bob","id":"x","at":5}]}')), [{ from: 'bob', id: 'x', at: 5 }]);
  const bad = [
    '{"v":1,"readSync":[]}',
    '{"v":1,"readSync":{"from":"bob","id":"x","at":5}}',
    '{"v":1,"readSync":[{"from":"Bob!","id":"x","at":5}]}',
    '{"v":1,"readSync":[{"from":"bob","id":"","at":5}]}',
    `{"v":1,"readSync":[{"from":"bob","id":"${'x'.repeat(65)}","at":5}]}`,
    '{"v":1,"readSync":[{"from":"bob","id":"x","at":-1}]}',
    '{"v":1,"readSync":[{"from":"bob","id":"x","at":1.5}]}',
    '{"v":1,"readSync":[{"from":"bob","id":"x"}]}',
    '{"v":1,"readSync":[{"from":"bob","id":"x","at":5,"group":"nothex"}]}',
    '{"v":1,"readSync":[null]}',
    `{"v":1,"readSync":${JSON.stringify(Array.from({ length: MAX_READ_SYNC_ENTRIES + 1 }, (_, i) => ({ from: 'bob', id: `m${i}`, at: 1 })))}}`,
    '{"v":2,"readSync":[{"from":"bob","id":"x","at":5}]}',
    '[1]',
  ];
  assertRefused(decodeReadSync, bad, '{"v":1,"readSync":[{"from":"bob","id":"x","at":5}]}');
});

test('pairwise and in a group: read on one device, read on the other; only the reading device sends read receipts', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  const laptop = await link(alice.client, 'laptop');
  const conv = `u:${bob.client.username}`;
  const syncs: string[] = [];
  laptop.client.on('read-sync', (e) => syncs.push(`${e.conversation}:${e.count}:${e.fromDevice}`));

  await bob.client.send(alice.client.username, 'one');
  await bob.client.send(alice.client.username, 'two');
  for (const d of [alice, laptop]) await until(async () => (await unreadIn(d.client, conv)) === 2, `device ${d.client.deviceId} has two unread`);
  // The terminal shows them; the laptop learns they were read.
  const shown: string[] = [];
  await alice.client.takeForDisplay((ms) => shown.push(...ms.map((m) => m.text)));
  assert.deepEqual(shown, ['one', 'two']);
  await until(async () => (await unreadIn(laptop.client, conv)) === 0, 'the laptop has them read');
  assert.deepEqual((await laptop.client.history(bob.client.username)).map((m) => [m.text, m.read]), [['one', true], ['two', true]]);
  assert.deepEqual(await laptop.client.unread(), []);
  assert.deepEqual(syncs, [`${conv}:2:${alice.client.deviceId}`]);
  // Bob sees them read (the terminal's receipts).
  await until(async () => (await bob.client.history(alice.client.username)).every((m) => m.delivery === 'read'), 'bob sees them read');

  // And the other way, in a group: the laptop reads bob's group message; the terminal learns it.
  const g = await alice.client.createGroup('Plans', [bob.client.username]);
  await until(async () => (await laptop.client.groups()).length === 1 && (await bob.client.groups()).length === 1, 'the group is known everywhere');
  await bob.client.send(g.conversation, 'group hello');
  for (const d of [alice, laptop]) await until(async () => (await d.client.history(g.conversation)).some((m) => m.text === 'group hello'), `device ${d.client.deviceId} has the group message`);
  assert.equal((await alice.client.history(g.conversation)).find((m) => m.text === 'group hello')?.read, false);
  await laptop.client.markRead(g.conversation);
  await until(async () => (await alice.client.history(g.conversation)).find((m) => m.text === 'group hello')?.read === true, 'the terminal has the group message read');
  const mine = async () => (await bob.client.history(g.conversation)).find((m) => m.text === 'group hello')!;
  await until(async () => (await mine()).receipts?.[alice.client.username]?.read !== undefined, 'bob sees alice read it');

  // Every read receipt came from the device that showed the message; the other queued none,
  // only read syncs for the other device.
  await until(async () => (await alice.client.pendingReceipts()) === 0 && (await laptop.client.pendingReceipts()) === 0, 'queues empty');
  const kinds = (d: Device) => d.store.queued.map((q) => String(q['k']));
  assert.equal(kinds(alice).filter((k) => k === 'read').length, 2, 'the terminal: read receipts for the two it showed');
  assert.equal(kinds(laptop).filter((k) => k === 'read').length, 1, 'the laptop: a read receipt for the group message it showed');
  assert.equal(kinds(alice).filter((k) => k === 'sync').length, 2);
  assert.equal(kinds(laptop).filter((k) => k === 'sync').length, 1);
});

test('disappearing: a read on one device starts the timer on the other, from when it was read; the record is gone from its store', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  const laptop = await link(alice.client, 'laptop');
  const conv = `u:${bob.client.username}`;
  await bob.client.send(alice.client.username, 'hello first');
  for (const d of [alice, laptop]) await until(async () => (await unreadIn(d.client, conv)) === 1, `device ${d.client.deviceId} has it`);
  await alice.client.markRead(conv);
  await until(async () => (await unreadIn(laptop.client, conv)) === 0, 'the laptop read the first');
  await bob.client.setDisappearingTimer(alice.client.username, 2_000);
  for (const d of [alice, laptop]) await until(async () => (await d.client.disappearingTimer(conv)) === 2_000, `device ${d.client.deviceId} has the timer`);
  const expired: string[] = [];
  laptop.client.on('expired', (e) => expired.push(...e.ids));
  const sent = await bob.client.send(alice.client.username, 'this will vanish');
  for (const d of [alice, laptop]) await until(async () => (await d.client.history(conv)).some((m) => m.text === 'this will vanish'), `device ${d.client.deviceId} has it`);
  // Unread: no clock yet on either device.
  const onLaptop = async () => (await laptop.client.history(conv)).find((m) => m.text === 'this will vanish');
  assert.equal((await onLaptop())?.expiresAt, undefined);
  assert.equal(await laptop.store.holds('this will vanish'), true);
  const before = Date.now();
  await alice.client.markRead(conv);
  const readOnAlice = (await alice.client.history(conv)).find((m) => m.text === 'this will vanish')!;
  assert.ok(readOnAlice.expiresAt !== undefined);
  // The laptop's clock starts from the read on the terminal (never later than its own now).
  await until(async () => (await onLaptop())?.expiresAt !== undefined || expired.includes(sent.id), 'the laptop started the timer');
  const m = await onLaptop();
  if (m !== undefined) {
    assert.ok(m.expiresAt! >= before + 2_000 && m.expiresAt! <= readOnAlice.expiresAt!, `laptop ${m.expiresAt} vs terminal ${readOnAlice.expiresAt}`);
    assert.equal(m.read, true);
  }
  // The running laptop deletes it on time, without being reopened: the store no longer holds it.
  await until(() => expired.includes(sent.id), 'the laptop swept it');
  assert.equal(await laptop.store.holds('this will vanish'), false);
  assert.equal(await laptop.store.holds('hello first'), true);
  await until(async () => !(await alice.store.holds('this will vanish')), 'the terminal swept it');
});

test('edits, deletions and reactions in a disappearing conversation go with the timer as ttlMs (a timer change does not)', async () => {
  const frames: { ttlMs?: number; body: string }[] = [];
  // Every send frame alice's device writes, seen at the socket.
  const tap: SocketFactory = (url, handlers) => {
    const s = wsSocketFactory(url, handlers);
    const send = s.send.bind(s);
    s.send = (data: string) => {
      const f = JSON.parse(data) as { type: string; ttlMs?: number; message?: { body: string } };
      if (f.type === 'send' && f.message !== undefined) frames.push({ ...(f.ttlMs !== undefined ? { ttlMs: f.ttlMs } : {}), body: f.message.body });
      send(data);
    };
    return s;
  };
  const tapped = (await register('alice', tap)).client;
  const bob = await register('bob');
  await tapped.send(bob.client.username, 'plain');
  await tapped.setDisappearingTimer(bob.client.username, 60_000);
  const timerFrames = frames.length;
  const m = await tapped.send(bob.client.username, 'typo');
  await tapped.editMessage(bob.client.username, m.id, 'fixed');
  await tapped.react(bob.client.username, m.id, '👍');
  await tapped.deleteForEveryone(bob.client.username, m.id);
  const after = frames.slice(timerFrames);
  assert.equal(after.length, 4, 'message, edit, reaction, deletion (one device each)');
  assert.deepEqual(after.map((f) => f.ttlMs), [60_000, 60_000, 60_000, 60_000]);
  assert.deepEqual(frames.slice(0, timerFrames).map((f) => f.ttlMs), [undefined, undefined], 'the plain message and the timer change carry none');
  await until(async () => (await bob.client.history(tapped.username)).some((x) => x.deleted === true), 'bob applied the deletion');
});

test('a read sync from another account is refused and changes nothing', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  const events: string[] = [];
  alice.client.on('undecryptable', (e) => events.push(`${e.from}:${e.reason}`));
  const sent = await bob.client.send(alice.client.username, 'unread still');
  await until(async () => (await unreadIn(alice.client, `u:${bob.client.username}`)) === 1, 'alice has it');
  const mallory = await rawDevice(server(), unique('mallory'));
  try {
    await mallory.send(alice.client.username, 1, encodeReadSync([{ from: bob.client.username, id: sent.id, at: Date.now() }]));
    // Malformed, from anyone: dropped without a crash.
    await mallory.send(alice.client.username, 1, utf8Encode('{"v":1,"readSync":[{"from":"'));
    await mallory.send(alice.client.username, 1, encodeEnvelope({ v: 1, id: 'honest', text: 'an honest hello', sentAt: 1 }));
    await until(async () => (await alice.client.history(mallory.username)).length === 1, 'the honest message arrives');
  } finally {
    mallory.close();
  }
  assert.deepEqual(events, [`${mallory.username}:FORGED_SYNC`, `${mallory.username}:FORGED_SYNC`]);
  assert.equal(await unreadIn(alice.client, `u:${bob.client.username}`), 1);
  assert.equal((await alice.client.history(bob.client.username))[0]?.read, false);
});
