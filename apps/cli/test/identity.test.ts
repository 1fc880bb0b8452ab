// A contact's identity key changes (bob re-registers with new keys): alice's next send fails with
// a clear message naming bob, bob's new messages are held, and after `trust` everything flows.
//
// A taken username stays taken until the operator frees it, so the test plays the operator after
// bob lost his device: `reset-account bob` on the running server's data directory (docs/OPERATIONS.md),
// then bob registers again under the same name.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ChatProcess, ServerProcess, ok, recv, tacit, tempDir } from './harness.ts';

let dir: { path: string; remove(): Promise<void> };
let server: ServerProcess;

before(async () => {
  dir = await tempDir('identity');
  server = await ServerProcess.start(join(dir.path, 'server'));
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

/**
 * The operator resets a lost account while the server keeps running; the old device is locked
 * out. Returns the invite printed for the user's new registration (this server registers openly,
 * so the code is passed along as a user would, but not required).
 */
async function operatorResetsAccount(username: string, oldHome: string): Promise<string> {
  const r = await server.command(['reset-account', username]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^reset-account: removed account ${username}: 1 device\\(s\\), `));
  const code = /\ninvite code \(single use, valid \d+ days\): (\S+)\nlink: \S+\n$/.exec(r.stdout)?.[1];
  assert.ok(code !== undefined, r.stdout);
  // The lost device's secret no longer authenticates: the server refuses it (exit 8).
  const stale = await tacit(oldHome, ['--json', 'recv']);
  assert.equal(stale.code, 8, stale.stderr);
  const err = JSON.parse(stale.stderr) as Record<string, unknown>;
  assert.equal(err['code'], 'SERVER', stale.stderr);
  assert.equal(err['serverCode'], 'UNAUTHORIZED', stale.stderr);
  assert.match(String(err['message']), /the server no longer accepts this device/);
  return code;
}

test('identity change: sending stops with a clear error until trust; held messages are released', async () => {
  const alice = join(dir.path, 'alice');
  const bobOld = join(dir.path, 'bob-old');
  const bobNew = join(dir.path, 'bob-new');
  await ok(alice, ['register', 'alice', '--server', server.url]);
  await ok(bobOld, ['register', 'bob', '--server', server.url]);
  await ok(alice, ['send', 'bob', 'to the old bob']);
  assert.deepEqual(await recv(bobOld), ['alice: to the old bob']);
  await ok(bobOld, ['send', 'alice', 'from the old bob']);
  assert.deepEqual(await recv(alice), ['bob: from the old bob']);
  const before = (await ok(alice, ['safety-number', 'bob']))[0]!['safetyNumber'];

  const invite = await operatorResetsAccount('bob', bobOld);
  await ok(bobNew, ['register', 'bob', '--server', server.url, '--invite', invite]);

  // The new bob writes first: alice is told, the message is held, not shown.
  await ok(bobNew, ['send', 'alice', 'from the new bob']);
  const held = await ok(alice, ['recv']);
  assert.deepEqual(held.filter((e) => e['event'] === 'message'), []);
  assert.deepEqual(held.filter((e) => e['event'] === 'identity-changed').map((e) => e['contact']), ['bob']);

  // Sending fails loudly, naming bob, with the documented exit code.
  const refused = await tacit(alice, ['send', 'bob', 'are you really bob?']);
  assert.equal(refused.code, 9, refused.stderr);
  assert.match(refused.stderr, /safety number with bob has changed/);
  assert.match(refused.stderr, /tacit trust bob/);
  assert.equal(refused.stderr.trim().split('\n').length, 1);
  const refusedJson = await tacit(alice, ['--json', 'send', 'bob', 'still?']);
  assert.equal(refusedJson.code, 9);
  const err = JSON.parse(refusedJson.stderr) as Record<string, unknown>;
  assert.equal(err['code'], 'UNTRUSTED_IDENTITY');
  assert.equal(err['contact'], 'bob');

  // Every receive keeps reminding until the user decides.
  const reminder = await ok(alice, ['recv']);
  assert.deepEqual(reminder.filter((e) => e['event'] === 'identity-changed').map((e) => e['contact']), ['bob']);

  // The safety number shown is the new one, marked as changed; it matches the new bob's.
  const changed = (await ok(alice, ['safety-number', 'bob']))[0]!;
  assert.equal(changed['keyState'], 'changed');
  assert.notEqual(changed['safetyNumber'], before);
  assert.equal((await ok(bobNew, ['safety-number', 'alice']))[0]!['safetyNumber'], changed['safetyNumber']);
  const contacts = await ok(alice, ['contacts']);
  assert.equal(contacts.find((c) => c['username'] === 'bob')?.['identityChanged'], true);

  // Trust: the held message becomes readable, and messages flow both ways again.
  const trusted = (await ok(alice, ['trust', 'bob']))[0]!;
  assert.deepEqual([trusted['changed'], trusted['released']], [true, 1]);
  const afterTrust = await ok(alice, ['recv']);
  assert.deepEqual(afterTrust.filter((e) => e['event'] === 'message').map((e) => e['text']), ['from the new bob']);
  assert.equal(afterTrust.filter((e) => e['event'] === 'identity-changed').length, 0, 'no reminder once trusted');
  await ok(alice, ['send', 'bob', 'welcome back']);
  assert.deepEqual(await recv(bobNew), ['alice: welcome back']);
  await ok(bobNew, ['send', 'alice', 'thanks']);
  assert.deepEqual(await recv(alice), ['bob: thanks']);
  assert.equal((await ok(alice, ['safety-number', 'bob']))[0]!['keyState'], 'trusted');
});

test('identity change detected on send before anything was received from the new key', async () => {
  const carol = join(dir.path, 'carol');
  const dave = join(dir.path, 'dave');
  const daveNew = join(dir.path, 'dave-new');
  await ok(carol, ['register', 'carol', '--server', server.url]);
  await ok(dave, ['register', 'dave', '--server', server.url]);
  await ok(carol, ['send', 'dave', 'one']);
  assert.deepEqual(await recv(dave), ['carol: one']);
  const invite = await operatorResetsAccount('dave', dave);
  await ok(daveNew, ['register', 'dave', '--server', server.url, '--invite', invite]);
  const refused = await tacit(carol, ['send', 'dave', 'two']);
  assert.equal(refused.code, 9);
  assert.match(refused.stderr, /dave/);
  // Nothing was delivered to the new dave while untrusted.
  assert.deepEqual(await recv(daveNew), []);
  await ok(carol, ['trust', 'dave']);
  await ok(carol, ['send', 'dave', 'three']);
  assert.deepEqual(await recv(daveNew), ['carol: three']);
});

test('identity change within the device-list cache: a running client is refused, not silently sent on the dead session', async () => {
  const erin = join(dir.path, 'erin');
  const frank = join(dir.path, 'frank');
  const frankNew = join(dir.path, 'frank-new');
  await ok(erin, ['register', 'erin', '--server', server.url]);
  await ok(frank, ['register', 'frank', '--server', server.url]);
  // One long-running client: its first send caches frank's device list (DEVICE_LIST_TTL_MS, far
  // longer than this test's reset takes), so its next send starts from the stale list.
  const chat = new ChatProcess(erin, 'frank');
  try {
    await chat.waitFor(() => chat.count('chat-ready') === 1, 'erin ready');
    chat.say('before the reset');
    await chat.waitFor(() => chat.count('sent') === 1, 'first message sent');
    assert.deepEqual(await recv(frank), ['erin: before the reset']);

    const invite = await operatorResetsAccount('frank', frank);
    await ok(frankNew, ['register', 'frank', '--server', server.url, '--invite', invite]);

    // The server refuses the old session's message (STALE_DEVICE); the client refreshes the
    // device list, sees the new identity key and reports it, naming frank.
    chat.say('after the reset');
    const errors = (): Record<string, unknown>[] =>
      chat.stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((e) => e['event'] === 'error');
    await chat.waitFor(() => errors().length > 0 || chat.count('sent') > 1, 'the second send to finish');
    assert.equal(chat.count('sent'), 1, 'the second message must not be reported as sent');
    const [err] = errors();
    assert.equal(err!['code'], 'UNTRUSTED_IDENTITY', chat.stderr);
    assert.equal(err!['contact'], 'frank');
    assert.match(String(err!['message']), /safety number with frank has changed/);
    assert.equal(await chat.end(), 0);
  } finally {
    chat.kill();
  }
  // Nothing reached the new frank.
  assert.deepEqual(await recv(frankNew), []);
  // A fresh process sees the same state: the change is pending trust.
  const refused = await tacit(erin, ['send', 'frank', 'again']);
  assert.equal(refused.code, 9, refused.stderr);
  assert.match(refused.stderr, /frank/);
});
