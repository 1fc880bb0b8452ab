// `tacit block`, `tacit unblock`, `tacit blocked` through a real server process: what mallory
// sends while blocked is never printed nor kept in history, sending to her exits 13 (BLOCKED),
// bad command lines exit 2; unblocking shows her next message. A second home of alice learns the
// block and prints a block-sync notice. A message queued while the server is down for someone
// blocked before it went out is not sent: history says failed and why, retry exits 13 until unblock.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { linkHome, ok, recv, serverWithUsers, tacit } from './harness.ts';

let env: Awaited<ReturnType<typeof serverWithUsers>>;

before(async () => {
  env = await serverWithUsers('block', ['alice', 'mallory']);
});
after(async () => {
  await env?.remove();
});

const home = (name: string): string => env.homes[name]!;
const texts = async (h: string, who: string) => (await ok(h, ['history', who])).filter((e) => e['event'] === 'history').map((e) => e['text']);

test('block, blocked, unblock: nothing of hers is shown while blocked; sending to her exits 13; the other home follows', async () => {
  const alice = home('alice');
  const mallory = home('mallory');
  const laptop = join(env.dir, 'alice-laptop');
  await linkHome(alice, laptop, env.server.url, 'laptop');
  await ok(mallory, ['send', 'alice', 'hello alice']);
  assert.deepEqual(await recv(alice), ['mallory: hello alice']);
  await recv(laptop);
  assert.deepEqual(await texts(laptop, 'mallory'), ['hello alice']);

  const blocked = await ok(alice, ['block', 'Mallory']);
  assert.deepEqual(blocked.filter((e) => e['event'] === 'blocked'), [{ event: 'blocked', user: 'mallory', changed: true, blocked: ['mallory'] }]);
  assert.deepEqual((await ok(alice, ['block', 'mallory'])).find((e) => e['event'] === 'blocked')?.['changed'], false);
  assert.deepEqual(await ok(alice, ['blocked']), [{ event: 'block-list', users: ['mallory'] }]);
  const human = await tacit(alice, ['blocked']);
  assert.equal(human.stdout, 'mallory\n');
  const contactBlocked = async (h: string) => (await ok(h, ['contacts'])).find((e) => e['username'] === 'mallory')?.['blocked'];
  assert.equal(await contactBlocked(alice), true, 'tacit contacts marks her blocked');
  assert.match((await tacit(alice, ['contacts'])).stdout, /mallory .* blocked \(tacit unblock mallory\)/);

  // The laptop learns it from the terminal (a notice for scripts), then drops her message too.
  const onLaptop = await ok(laptop, ['recv']);
  assert.deepEqual(onLaptop.filter((e) => e['event'] === 'block-sync').map((e) => e['blocked']), [['mallory']]);
  await ok(mallory, ['send', 'alice', 'blocked hello']);
  assert.deepEqual(await recv(alice), []);
  assert.deepEqual(await recv(laptop), []);
  assert.deepEqual(await texts(alice, 'mallory'), ['hello alice']);
  assert.deepEqual(await texts(laptop, 'mallory'), ['hello alice']);

  const refused = await tacit(alice, ['--json', 'send', 'mallory', 'no']);
  assert.equal(refused.code, 13, refused.stderr);
  assert.equal((JSON.parse(refused.stderr.trim()) as Record<string, unknown>)['code'], 'BLOCKED');
  for (const bad of [['block'], ['block', 'Bad Name!'], ['unblock', 'a', 'b'], ['blocked', 'x'], ['block', 'alice']]) {
    assert.equal((await tacit(alice, bad)).code, 2, bad.join(' '));
  }
  const help = await tacit(alice, ['--help']);
  assert.match(help.stdout, /block <username>/);
  assert.match(help.stdout, /13 the contact is blocked/);

  const unblocked = await ok(alice, ['unblock', 'mallory']);
  assert.deepEqual(unblocked.find((e) => e['event'] === 'unblocked'), { event: 'unblocked', user: 'mallory', changed: true, blocked: [] });
  assert.equal((await tacit(alice, ['blocked'])).stdout, 'nobody is blocked\n');
  assert.equal(await contactBlocked(alice), false);
  await ok(mallory, ['send', 'alice', 'after unblock']);
  assert.deepEqual(await recv(alice), ['mallory: after unblock']);
  await ok(alice, ['send', 'mallory', 'welcome back']);
  assert.deepEqual(await recv(mallory), ['alice: welcome back']);
});

test('a message queued while the server is down, then the contact blocked: history says failed and why, retry exits 13 until unblock, then sends it', async () => {
  const alice = home('alice');
  const mallory = home('mallory');
  await ok(alice, ['send', 'mallory', 'before the outage']);
  assert.deepEqual(await recv(mallory), ['alice: before the outage']);
  await env.server.stop();
  const queued = await tacit(alice, ['--json', 'send', 'mallory', 'queued for mallory', '--wait', '1']);
  assert.equal(queued.code, 11, queued.stderr);
  await ok(alice, ['block', 'mallory']);
  await env.server.restart();
  // Connecting does not send it: it failed when she was blocked.
  const line = (await tacit(alice, ['history', 'mallory'])).stdout.split('\n').find((l) => l.includes('queued for mallory')) ?? '';
  assert.match(line, /\(failed: mallory was blocked before it went out; unblock them to send it; to send it again: tacit unblock mallory, then tacit retry mallory [0-9a-f]{8}\)/);
  const failed = (await ok(alice, ['history', 'mallory'])).find((e) => e['text'] === 'queued for mallory')!;
  assert.equal(failed['state'], 'failed');
  assert.equal((failed['error'] as Record<string, unknown>)['code'], 'BLOCKED');
  const ref = String(failed['id']).slice(0, 8);
  const refused = await tacit(alice, ['--json', 'retry', 'mallory', ref]);
  assert.equal(refused.code, 13, refused.stderr);

  await ok(alice, ['unblock', 'mallory']);
  await ok(alice, ['send', 'mallory', 'after unblock']);
  assert.deepEqual(await recv(mallory), ['alice: after unblock'], 'the blocked-while-queued message never went out');
  const retried = await ok(alice, ['retry', 'mallory', ref]);
  assert.equal(retried.find((e) => e['event'] === 'sent')?.['retried'], true);
  assert.deepEqual(await recv(mallory), ['alice: queued for mallory']);
});
