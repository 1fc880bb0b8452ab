// The server is killed with SIGKILL mid-conversation and restarted on the same port and data:
// the chat clients reconnect on their own, resend what the server had not confirmed, and every
// message arrives exactly once, in order.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatProcess, ServerProcess, ok, recv, serverWithUsers } from './harness.ts';

let fx: Awaited<ReturnType<typeof serverWithUsers>>;
let server: ServerProcess;
let alice: string;
let bob: string;
before(async () => {
  fx = await serverWithUsers('restart', ['alice', 'bob']);
  server = fx.server;
  alice = fx.homes['alice']!;
  bob = fx.homes['bob']!;
});
after(() => fx?.remove());

test('kill -9 and restart mid-conversation loses nothing and shows nothing twice', async () => {
  const a = new ChatProcess(alice, 'bob');
  const b = new ChatProcess(bob, 'alice');
  try {
    await a.waitFor(() => a.count('chat-ready') === 1, 'alice ready');
    await b.waitFor(() => b.count('chat-ready') === 1, 'bob ready');
    const toBob: string[] = [];
    const toAlice: string[] = [];
    const say = (who: 'a' | 'b', text: string): void => {
      if (who === 'a') {
        toBob.push(text);
        a.say(text);
      } else {
        toAlice.push(text);
        b.say(text);
      }
    };
    // Round 1: a normal conversation.
    say('a', 'before 1');
    await b.waitFor(() => b.received().length === 1, 'bob gets before 1');
    say('b', 'before 2');
    await a.waitFor(() => a.received().length === 1, 'alice gets before 2');

    // Round 2: a burst from both sides, and the server dies while it is in flight.
    for (let i = 0; i < 15; i++) {
      say('a', `burst a ${i}`);
      say('b', `burst b ${i}`);
    }
    await server.kill9();
    // Written while the server is down: queued by the clients.
    say('a', 'during outage a');
    say('b', 'during outage b');
    await a.waitFor(() => a.events.some((e) => e['event'] === 'connection' && e['state'] === 'disconnected'), 'alice notices');
    await server.restart();

    // Round 3: after the restart.
    await b.waitFor(() => b.received().length === toBob.length, `bob gets all ${toBob.length}`);
    await a.waitFor(() => a.received().length === toAlice.length, `alice gets all ${toAlice.length}`);
    say('a', 'after a');
    say('b', 'after b');
    await b.waitFor(() => b.received().length === toBob.length, 'bob gets after');
    await a.waitFor(() => a.received().length === toAlice.length, 'alice gets after');
    assert.equal(await a.end(), 0);
    assert.equal(await b.end(), 0);

    assert.deepEqual(b.received(), toBob);
    assert.deepEqual(a.received(), toAlice);
    assert.equal(a.count('sent'), toBob.length);
    assert.equal(b.count('sent'), toAlice.length);
    assert.equal(a.count('error'), 0, a.stderr);
    assert.equal(b.count('error'), 0, b.stderr);
  } finally {
    a.kill();
    b.kill();
  }
  // Nothing left over or repeated for the one-shot receiver.
  assert.deepEqual(await recv(alice), []);
  assert.deepEqual(await recv(bob), []);
});

test('kill -9 between send and recv: the stored message survives', async () => {
  await ok(alice, ['send', 'bob', 'stored before the crash']);
  await server.kill9();
  await server.restart();
  assert.deepEqual(await recv(bob), ['alice: stored before the crash']);
  assert.deepEqual(await recv(bob), []);
});
