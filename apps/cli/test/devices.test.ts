// Linked devices through the `tacit` command and a real server: `tacit link` on a new home shows
// a link code, `tacit devices add <code>` on a signed-in home links it; both get Bob's messages,
// each shows what the other sent to Bob as its own; `tacit devices` lists them; removal signs the
// device out; bad codes and bad ids are refused with a clear error.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ChatProcess, ok, recv, serverWithUsers, tacit } from './harness.ts';

let env: Awaited<ReturnType<typeof serverWithUsers>>;
let laptop: string;

before(async () => {
  env = await serverWithUsers('devices', ['alice', 'bob']);
  laptop = join(env.dir, 'alice-laptop');
});
after(async () => {
  await env?.remove();
});

const history = async (home: string, who: string): Promise<string[]> =>
  (await ok(home, ['history', who])).filter((e) => e['event'] === 'history').map((e) => `${String(e['direction'])} ${String(e['from'])}: ${String(e['text'])}`);

test('tacit link + tacit devices add: a second device of alice gets bob\'s messages and shows alice\'s own', async () => {
  const { alice, bob } = env.homes as { alice: string; bob: string };
  await ok(alice, ['send', 'bob', 'hello bob']);
  const link = new ChatProcess(laptop, '', [], ['link', '--server', env.server.url, '--name', 'laptop']);
  await link.waitFor(() => link.count('link-code') === 1, 'the link code');
  const code = String(link.events.find((e) => e['event'] === 'link-code')!['code']);
  assert.match(code, /^tacit-link:/);
  const added = await ok(alice, ['devices', 'add', code]);
  assert.equal(added.find((e) => e['event'] === 'device-added')?.['deviceId'], 2);
  await link.waitFor(() => link.count('linked') === 1, 'linked');
  assert.equal(await link.end(), 0);
  assert.deepEqual(link.events.find((e) => e['event'] === 'linked')?.['deviceId'], 2);

  const devices = (await ok(laptop, ['devices'])).filter((e) => e['event'] === 'device');
  assert.deepEqual(devices.map((d) => [d['deviceId'], d['name'], d['current']]), [[1, '', false], [2, 'laptop', true]]);

  await ok(bob, ['send', 'alice', 'hi alice']);
  assert.deepEqual(await recv(alice), ['bob: hi alice']);
  // Read on the first device, so the laptop holds it as read (read sync): recv prints nothing new,
  // and the history below shows the laptop has it.
  const onLaptop = await ok(laptop, ['recv']);
  assert.deepEqual(onLaptop.filter((e) => e['event'] === 'message').map((e) => e['text']), []);
  assert.deepEqual(onLaptop.filter((e) => e['event'] === 'read-sync').map((e) => [e['conversation'], e['count']]), [['u:bob', 1]]);
  await ok(alice, ['send', 'bob', 'from the first device']);
  // History is in the order a device stored things: the laptop takes the transcript first.
  assert.deepEqual(await recv(laptop), []);
  await ok(laptop, ['send', 'bob', 'from the laptop']);
  assert.deepEqual(await recv(bob), ['alice: hello bob', 'alice: from the first device', 'alice: from the laptop']);
  // Each device shows the other's message to bob as alice's own, in the conversation with bob.
  await recv(alice);
  assert.deepEqual(await history(laptop, 'bob'), ['in bob: hi alice', 'out alice: from the first device', 'out alice: from the laptop']);
  assert.deepEqual(await history(alice, 'bob'), ['out alice: hello bob', 'in bob: hi alice', 'out alice: from the first device', 'out alice: from the laptop']);
});

test('tacit devices remove: the device is signed out; bad input is refused with a clear error', async () => {
  const { alice, bob } = env.homes as { alice: string; bob: string };
  const self = await tacit(alice, ['--json', 'devices', 'remove', '1']);
  assert.equal(self.code, 2);
  assert.match(self.stderr + self.stdout, /this is the device you are using/);
  const bad = await tacit(alice, ['--json', 'devices', 'add', 'not-a-code']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr + bad.stdout, /not a link code/);
  // A well-formed code for a channel nobody listens on.
  const nobody = await tacit(alice, ['--json', 'devices', 'add', `tacit-link:${'A'.repeat(22)}.${'B'.repeat(43)}Q`]);
  assert.notEqual(nobody.code, 0);
  const removed = await ok(alice, ['devices', 'remove', '2']);
  assert.equal(removed.find((e) => e['event'] === 'device-removed')?.['deviceId'], 2);
  const gone = await tacit(laptop, ['--json', 'recv']);
  assert.equal(gone.code, 8);
  assert.match(gone.stderr + gone.stdout, /UNAUTHORIZED|credentials/);
  await ok(bob, ['send', 'alice', 'after removal']);
  assert.deepEqual(await recv(alice), ['bob: after removal']);
  assert.deepEqual((await ok(alice, ['devices'])).filter((e) => e['event'] === 'device').map((d) => d['deviceId']), [1]);
});
