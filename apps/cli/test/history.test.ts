// The SDK's history through the `tacit` command: `history` shows both directions of a
// conversation; a send while the server is unreachable is stored as queued (exit 11), shown as
// waiting, and delivered once, in order, the next time tacit connects — to a contact never
// written to before as well, whose key bundle needs the server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ChatProcess, ServerProcess, ok, recv, tacit, tempDir } from './harness.ts';

let dir: { path: string; remove(): Promise<void> };
let server: ServerProcess;
let alice: string;
let bob: string;
let carol: string;

before(async () => {
  dir = await tempDir('history');
  server = await ServerProcess.start(join(dir.path, 'server'));
  alice = join(dir.path, 'alice');
  bob = join(dir.path, 'bob');
  carol = join(dir.path, 'carol');
  await ok(alice, ['register', 'alice', '--server', server.url]);
  await ok(bob, ['register', 'bob', '--server', server.url]);
  await ok(carol, ['register', 'carol', '--server', server.url]);
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

const lines = (events: Record<string, unknown>[]): string[] =>
  events.filter((e) => e['event'] === 'history').map((e) => `${String(e['direction'])}:${String(e['text'])}${e['direction'] === 'out' ? `:${String(e['state'])}` : ''}`);

test('history shows both directions, in order, with --limit', async () => {
  await ok(alice, ['send', 'bob', 'one']);
  assert.deepEqual(await recv(bob), ['alice: one']);
  await ok(bob, ['send', 'alice', 'two']);
  // History is in the order this device stored things: receive first, then answer.
  assert.deepEqual(await recv(alice), ['bob: two']);
  await ok(alice, ['send', 'bob', 'three']);
  assert.deepEqual(lines(await ok(alice, ['history', 'bob'])), ['out:one:sent', 'in:two', 'out:three:sent']);
  assert.deepEqual(lines(await ok(alice, ['history', 'bob', '--limit', '2'])), ['in:two', 'out:three:sent']);
  assert.deepEqual(lines(await ok(bob, ['history', 'alice'])), ['in:one', 'out:two:sent']);
  assert.deepEqual(await recv(bob), ['alice: three']);
  const human = await tacit(alice, ['history', 'bob']);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /you: one  ✓.*\n.*bob: two\n.*you: three  ✓.*\n/);
  const empty = await tacit(alice, ['history', 'carol']);
  assert.equal(empty.code, 0);
  assert.match(empty.stderr, /no messages with carol/);
  assert.equal((await tacit(alice, ['history', 'bob', '--limit', '0'])).code, 2);
  assert.equal((await tacit(alice, ['history'])).code, 2);
});

test('send while the server is down: queued (exit 11), shown as waiting, delivered once and in order when it is back', async () => {
  await server.kill9();
  // carol is new to alice: her key bundle needs the server.
  for (const t of ['first while down', 'second while down']) {
    const r = await tacit(alice, ['--json', 'send', 'carol', t, '--wait', '1']);
    assert.equal(r.code, 11, r.stderr);
    assert.ok(r.events.some((e) => e['event'] === 'queued'));
    assert.match(r.stderr, /queued|stored/);
  }
  const r = await tacit(alice, ['send', 'bob', 'to bob while down', '--wait', '1']);
  assert.equal(r.code, 11);
  assert.match(r.stderr, /do not send them again/);
  assert.deepEqual(lines(await ok(alice, ['history', 'carol'])), ['out:first while down:queued', 'out:second while down:queued']);
  assert.match((await tacit(alice, ['history', 'carol'])).stdout, /queued: not yet stored by the server/);

  await server.restart();
  // Any command that connects sends what is queued.
  assert.deepEqual(await recv(alice), []);
  assert.deepEqual(lines(await ok(alice, ['history', 'carol'])), ['out:first while down:sent', 'out:second while down:sent']);
  assert.deepEqual(await recv(carol), ['alice: first while down', 'alice: second while down']);
  assert.deepEqual(await recv(bob), ['alice: to bob while down']);
  assert.deepEqual(await recv(carol), []);
});

test('chat while the server is down: lines are shown as waiting and sent in order when it is back', async () => {
  await server.kill9();
  const a = new ChatProcess(alice, 'carol', ['--wait', '1']);
  try {
    await a.waitFor(() => a.count('chat-ready') === 1, 'chat ready without a server');
    a.say('typed while down 1');
    a.say('typed while down 2');
    await a.waitFor(() => a.count('queued') === 2, 'both shown as waiting');
    await server.restart();
    await a.waitFor(() => a.count('sent') === 2, 'both sent');
    assert.equal(await a.end(), 0);
  } finally {
    a.kill();
  }
  assert.deepEqual(await recv(carol), ['alice: typed while down 1', 'alice: typed while down 2']);
});
