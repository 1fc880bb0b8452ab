// Blocking and the outbox (outbox.ts, group/groups.ts), through a real server process: what was
// queued while offline for someone blocked afterwards is not sent when the connection is back.
// A pairwise message still waiting for its contact's bundle (a job) and one already encrypted
// (its ciphertexts waiting in the relay) are both marked failed with BLOCKED, kept with their
// text, and sent by `retry` after `unblock`; the same holds after a restart. A group message leaves
// a blocked member out, also when its frames were waiting offline when the block came.
//
// Whether something was sent is read from the order of a device's queue: the server keeps each
// device's messages in order, so once a later message arrived, an earlier one would have too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isClientError, type TacitClient } from '../src/index.ts';
import { serverDevices, until } from './support/devices.ts';
import { NetworkSwitch } from './support/network-switch.ts';

const { register, link, reopen } = serverDevices();
/** A send that never settles fails its test instead of hanging the run. */
const TEST_TIMEOUT_MS = 120_000;

const texts = async (c: TacitClient, conversation: string): Promise<string[]> => (await c.history(conversation)).map((m) => m.text);

/** Resolves when `c` reports `state` (connection events). */
function connection(c: TacitClient, state: 'ready' | 'disconnected'): Promise<void> {
  return new Promise((resolve) => {
    const off = c.on('connection', (e) => {
      if (e.state !== state) return;
      off();
      resolve();
    });
  });
}

const isBlockedError = (contact: string) => (e: unknown) => isClientError(e) && e.code === 'BLOCKED' && e.contact === contact;

test('queued offline, then blocked: not sent, failed with BLOCKED and kept; retry after unblock sends it', { timeout: TEST_TIMEOUT_MS }, async () => {
  const net = new NetworkSwitch();
  const alice = await register('alice', net.connect, undefined, net.fetch);
  const laptop = await link(alice.client, 'laptop');
  const bob = await register('bob');
  const dave = await register('dave');
  const [a, b, d] = [alice.client.username, bob.client.username, dave.client.username];
  await alice.client.send(b, 'hi bob');
  await until(async () => (await texts(bob.client, a)).includes('hi bob'), 'bob has a session with alice');

  const down = connection(alice.client, 'disconnected');
  net.off();
  await down;
  // bob: sessions exist, so it is encrypted at once and waits in the relay. dave: a new contact,
  // whose bundle needs the server, so it waits as a job.
  const toBob = alice.client.send(b, 'queued for bob');
  const toDave = alice.client.send(d, 'queued for dave');
  await until(async () => (await alice.client.history(b)).some((m) => m.text === 'queued for bob' && m.state === 'queued') && (await alice.client.history(d)).length === 1, 'both queued');
  await until(() => alice.client.outboxSize === 2 + 1, 'two ciphertexts (bob, the laptop transcript) and a job');

  assert.equal(await alice.client.block(b), true);
  assert.equal(await alice.client.block(d), true);
  for (const [who, text] of [[b, 'queued for bob'], [d, 'queued for dave']] as const) {
    await until(async () => (await alice.client.history(who)).find((x) => x.text === text)?.state === 'failed', `${text}: failed, still in history`);
    const m = (await alice.client.history(who)).find((x) => x.text === text);
    assert.equal(m?.error?.code, 'BLOCKED');
    assert.match(m?.error?.message ?? '', /was blocked before it went out; unblock them to send it/);
  }
  await assert.rejects(toBob, isBlockedError(b));
  await assert.rejects(toDave, isBlockedError(d));
  assert.equal(alice.client.outboxSize, 0, 'nothing is left to send');
  await assert.rejects(alice.client.retry(b, (await alice.client.history(b)).at(-1)!.seq), isBlockedError(b), 'no retry while blocked');

  // Back online: the relay reconnects; nothing of it goes out.
  const up = connection(alice.client, 'ready');
  net.on();
  await up;
  await alice.client.unblock(b);
  await alice.client.unblock(d);
  await alice.client.send(b, 'after unblock');
  await alice.client.send(d, 'hello dave');
  await until(async () => (await texts(bob.client, a)).includes('after unblock'), 'bob gets the next message');
  await until(async () => (await texts(dave.client, a)).includes('hello dave'), 'dave gets the next message');
  await until(async () => (await texts(laptop.client, b)).includes('after unblock'), 'the laptop gets its transcript');
  assert.deepEqual(await texts(bob.client, a), ['hi bob', 'after unblock'], 'the blocked-while-queued message never reached bob');
  assert.deepEqual(await texts(dave.client, a), ['hello dave']);
  assert.deepEqual(await texts(laptop.client, b), ['hi bob', 'after unblock'], 'nor was the laptop told it was sent');

  // Retry sends each, with its id.
  for (const [who, client, text] of [[b, bob.client, 'queued for bob'], [d, dave.client, 'queued for dave']] as const) {
    const m = (await alice.client.history(who)).find((x) => x.text === text)!;
    const r = await alice.client.retry(who, m.seq);
    assert.equal(r.id, m.id);
    await until(async () => (await texts(client, a)).includes(text), `${text} arrives after retry`);
    assert.equal((await alice.client.history(who)).find((x) => x.id === m.id)?.state, 'sent');
  }
  await until(async () => (await texts(laptop.client, b)).includes('queued for bob'), 'and the laptop gets its transcript');
});

test('queued offline, the process ends, blocked in the next one: nothing goes out when it connects', { timeout: TEST_TIMEOUT_MS }, async () => {
  const net = new NetworkSwitch();
  const alice = await register('alice', net.connect, undefined, net.fetch);
  const bob = await register('bob');
  const [a, b] = [alice.client.username, bob.client.username];
  await alice.client.send(b, 'hi bob');
  await until(async () => (await texts(bob.client, a)).includes('hi bob'), 'a session');
  net.off();
  const queued = alice.client.send(b, 'written before the restart');
  await until(() => alice.client.outboxSize === 1, 'encrypted, stored');
  await alice.client.close();
  await assert.rejects(queued, (e: unknown) => isClientError(e) && e.code === 'CLOSED');
  net.on();
  // As `tacit block bob` does: open, block, connect.
  const next = await reopen(alice, net.connect, undefined, net.fetch);
  assert.equal(next.client.outboxSize, 1);
  await next.client.block(b);
  await next.client.connect();
  await until(async () => (await next.client.history(b)).find((m) => m.text === 'written before the restart')?.error?.code === 'BLOCKED', 'failed as blocked');
  assert.equal(next.client.outboxSize, 0);
  await next.client.unblock(b);
  await next.client.send(b, 'after unblock');
  await until(async () => (await texts(bob.client, a)).includes('after unblock'), 'bob gets the next message');
  assert.deepEqual(await texts(bob.client, a), ['hi bob', 'after unblock']);
  const m = (await next.client.history(b)).find((x) => x.text === 'written before the restart')!;
  await next.client.retry(b, m.seq);
  await until(async () => (await texts(bob.client, a)).includes('written before the restart'), 'retry sends it');
});

test('a group message leaves a blocked member out, also one waiting offline when the block came', { timeout: TEST_TIMEOUT_MS }, async () => {
  const net = new NetworkSwitch();
  const alice = await register('alice', net.connect, undefined, net.fetch);
  const bob = await register('bob');
  const carol = await register('carol');
  const [b, c] = [bob.client.username, carol.client.username];
  const g = await alice.client.createGroup('Three', [b, c]);
  for (const x of [bob, carol]) await until(async () => (await x.client.groups()).some((y) => y.id === g.id), 'members learn the group');
  await alice.client.sendToGroup(g.conversation, 'all three');
  for (const x of [bob, carol]) await until(async () => (await texts(x.client, g.conversation)).includes('all three'), 'both have it');

  await alice.client.block(c);
  const sent = await alice.client.sendToGroup(g.conversation, 'carol is blocked');
  assert.equal((await alice.client.history(g.conversation)).find((m) => m.id === sent.id)?.state, 'sent');

  // Offline: encrypted for all three and waiting in the relay; carol is blocked only then.
  await alice.client.unblock(c);
  const down = connection(alice.client, 'disconnected');
  net.off();
  await down;
  const waiting = alice.client.sendToGroup(g.conversation, 'queued, then carol blocked');
  await until(async () => (await alice.client.history(g.conversation)).some((m) => m.text === 'queued, then carol blocked'), 'queued');
  await until(() => alice.client.pendingSends === 1, 'its frame waits in the relay');
  await alice.client.block(c);
  net.on();
  await waiting;

  await alice.client.unblock(c);
  await alice.client.sendToGroup(g.conversation, 'carol is back');
  for (const x of [bob, carol]) await until(async () => (await texts(x.client, g.conversation)).includes('carol is back'), 'the next message reaches both');
  const shown = async (x: TacitClient): Promise<string[]> => (await x.history(g.conversation)).filter((m) => m.system !== true).map((m) => m.text);
  assert.deepEqual(await shown(bob.client), ['all three', 'carol is blocked', 'queued, then carol blocked', 'carol is back']);
  assert.deepEqual(await shown(carol.client), ['all three', 'carol is back'], 'carol got nothing sent while she was blocked');
});
