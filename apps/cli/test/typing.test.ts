// Typing indicators end to end: a real server process and real `tacit chat` processes. To a device
// that is not connected the indicator is dropped: the server stores nothing (its database is
// inspected) and the device never sees it; to a connected one it arrives as a `typing` event and
// ends with the message. Turned off, none is sent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ChatProcess, ok, recv, serverWithUsers } from './harness.ts';

let env: Awaited<ReturnType<typeof serverWithUsers>>;
before(async () => {
  env = await serverWithUsers('typing', ['alice', 'bob']);
});
after(async () => {
  await env?.remove();
});

const h = (name: string): string => env.homes[name]!;
const stored = (): number => {
  const db = new Database(join(env.server.dataDir, 'tacit.db'), { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM messages').get() as { n: number }).n;
  } finally {
    db.close();
  }
};

test('typing to an offline device: nothing stored, nothing seen later; to a live one: shown, ended by the message', async () => {
  // Sessions both ways first.
  await ok(h('alice'), ['send', 'bob', 'hi']);
  assert.deepEqual(await recv(h('bob')), ['alice: hi']);
  await ok(h('alice'), ['recv']);
  const before = stored();

  // Bob is offline: alice types.
  const a = new ChatProcess(h('alice'), 'bob');
  await a.waitFor(() => a.count('chat-ready') === 1, 'alice ready');
  a.say('/typing');
  await a.waitFor(() => a.count('typing-sent') === 1, 'typing sent');
  // Sent to bob's one device; the server dropped it without saying bob was offline.
  assert.equal(a.events.find((e) => e['event'] === 'typing-sent')?.['devices'], 1);
  assert.equal(await a.end(), 0);
  assert.equal(stored(), before, 'the server stored nothing for the offline device');
  const later = await ok(h('bob'), ['recv']);
  assert.deepEqual(later.filter((e) => e['event'] === 'typing' || e['event'] === 'message'), []);

  // Bob is connected: he sees alice typing, then her message, which ends it.
  const b = new ChatProcess(h('bob'), 'alice');
  await b.waitFor(() => b.count('chat-ready') === 1, 'bob ready');
  const a2 = new ChatProcess(h('alice'), 'bob');
  await a2.waitFor(() => a2.count('chat-ready') === 1, 'alice ready');
  const before2 = stored();
  a2.say('/typing');
  await b.waitFor(() => b.events.some((e) => e['event'] === 'typing' && e['from'] === 'alice' && e['typing'] === true), 'bob sees alice typing');
  assert.equal(a2.events.find((e) => e['event'] === 'typing-sent')?.['devices'], 1);
  assert.equal(stored(), before2, 'a typing indicator is never stored, even for a live device');
  a2.say('here it is');
  await b.waitFor(() => b.received().includes('here it is'), 'the message');
  await b.waitFor(() => b.events.some((e) => e['event'] === 'typing' && e['from'] === 'alice' && e['typing'] === false), 'typing ended');

  // Bob turns typing indicators off (in another run): alice's are not shown, his are not sent.
  assert.equal(await b.end(), 0);
  await ok(h('bob'), ['settings', 'typing', 'off']);
  const b2 = new ChatProcess(h('bob'), 'alice');
  await b2.waitFor(() => b2.count('chat-ready') === 1, 'bob ready again');
  b2.say('/typing');
  await b2.waitFor(() => b2.count('typing-sent') === 1, 'bob typing (off)');
  assert.equal(b2.events.find((e) => e['event'] === 'typing-sent')?.['devices'], 0);
  await new Promise((r) => setTimeout(r, 3_100)); // alice's next `started` is past the SDK's rate limit
  a2.say('/typing');
  await a2.waitFor(() => a2.count('typing-sent') === 2, 'alice typing again');
  a2.say('after');
  await b2.waitFor(() => b2.received().includes('after'), 'bob gets the message');
  assert.equal(b2.events.filter((e) => e['event'] === 'typing').length, 0, 'none shown with typing off');
  assert.equal(await a2.end(), 0);
  assert.equal(await b2.end(), 0);
});
