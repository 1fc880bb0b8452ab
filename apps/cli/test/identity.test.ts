// A contact's identity key changes (bob re-registers with new keys): alice's next send fails with
// a clear message naming bob, bob's new messages are held, and after `trust` everything flows.
//
// The server has no re-registration endpoint yet (a taken username stays taken), so the test plays
// the operator who deletes bob's lost account: with the server stopped, it removes bob's rows from
// the SQLite database, then bob registers again under the same name.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ServerProcess, ok, recv, tacit, tempDir } from './harness.ts';

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

async function operatorDeletesAccount(username: string): Promise<void> {
  await server.stop();
  const db = new Database(join(server.dataDir, 'tacit.db'));
  try {
    db.pragma('foreign_keys = ON');
    db.prepare('DELETE FROM messages WHERE recipient LIKE ?').run(`${username}.%`);
    assert.equal(db.prepare('DELETE FROM accounts WHERE username = ?').run(username).changes, 1);
  } finally {
    db.close();
  }
  await server.restart();
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

  await operatorDeletesAccount('bob');
  await ok(bobNew, ['register', 'bob', '--server', server.url]);

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
  await operatorDeletesAccount('dave');
  await ok(daveNew, ['register', 'dave', '--server', server.url]);
  const refused = await tacit(carol, ['send', 'dave', 'two']);
  assert.equal(refused.code, 9);
  assert.match(refused.stderr, /dave/);
  // Nothing was delivered to the new dave while untrusted.
  assert.deepEqual(await recv(daveNew), []);
  await ok(carol, ['trust', 'dave']);
  await ok(carol, ['send', 'dave', 'three']);
  assert.deepEqual(await recv(daveNew), ['carol: three']);
});
