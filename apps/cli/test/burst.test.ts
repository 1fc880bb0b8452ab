// 200 messages sent in a burst each way, at the same time: all arrive, in order, once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ServerProcess, ok, recv, tempDir } from './harness.ts';

/** Messages per direction. */
const BURST = 200;

let dir: { path: string; remove(): Promise<void> };
let server: ServerProcess;

before(async () => {
  dir = await tempDir('burst');
  server = await ServerProcess.start(join(dir.path, 'server'));
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

test(`${BURST} messages in a burst each way all arrive`, async () => {
  const alice = join(dir.path, 'alice');
  const bob = join(dir.path, 'bob');
  await ok(alice, ['register', 'alice', '--server', server.url]);
  await ok(bob, ['register', 'bob', '--server', server.url]);
  // One message first so both sides have a session, then both bursts at once.
  await ok(alice, ['send', 'bob', 'hi']);
  assert.deepEqual(await recv(bob), ['alice: hi']);
  const fromAlice = Array.from({ length: BURST }, (_, i) => `a${i} ${'x'.repeat(i % 50)}`);
  const fromBob = Array.from({ length: BURST }, (_, i) => `b${i}`);
  const [sa, sb] = await Promise.all([
    ok(alice, ['send', 'bob', '-'], { input: fromAlice.join('\n') + '\n' }),
    ok(bob, ['send', 'alice', '-'], { input: fromBob.join('\n') + '\n' }),
  ]);
  assert.equal(sa.filter((e) => e['event'] === 'sent').length, BURST);
  assert.equal(sb.filter((e) => e['event'] === 'sent').length, BURST);
  const [ra, rb] = await Promise.all([recv(alice), recv(bob)]);
  assert.deepEqual(rb, fromAlice.map((t) => `alice: ${t}`));
  assert.deepEqual(ra, fromBob.map((t) => `bob: ${t}`));
});
