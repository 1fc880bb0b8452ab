// What the web page does, the terminal does too (the parity items not covered elsewhere), through
// a real server process and real `tacit` processes:
// - an invite link, as the web page opens it, registers from the terminal too (`--invite <link>`,
//   the server taken from the link);
// - `tacit passphrase` changes the passphrase that seals the home, as Settings → Passphrase lock
//   does on the page;
// - a message that failed is sent again with `tacit retry`, as the web page's Retry button does:
//   under its own id, once. Here it failed because the contact's safety number changed: bob lost
//   his device, the operator freed his name (`reset-account`, docs/OPERATIONS.md) and bob
//   registered again with new keys, so alice's next send to him is refused (exit 9).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ServerProcess, ok, recv, tacit, tempDir } from './harness.ts';

let dir: { path: string; remove(): Promise<void> };
let server: ServerProcess;

before(async () => {
  dir = await tempDir('parity');
  server = await ServerProcess.start(join(dir.path, 'server'), { TACIT_REGISTRATION: 'invite' });
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

/** alice's outgoing messages to `contact` as `history --json` prints them. */
async function outgoing(home: string, contact: string): Promise<Record<string, unknown>[]> {
  return (await ok(home, ['history', contact])).filter((e) => e['direction'] === 'out');
}

test('register takes the whole invite link (the server printed one, an admin makes more); a link without a code is refused in words', async () => {
  const link = (await server.waitForOutput(/(http:\/\/\S+\/#invite=\S+)/))[1]!;
  const alice = join(dir.path, 'alice');
  const r = await ok(alice, ['register', 'alice', '--invite', link]);
  assert.equal(r[0]!['username'], 'alice');
  assert.equal(r[0]!['server'], new URL(link).origin);
  const made = (await ok(alice, ['admin', 'invite'])).find((e) => e['event'] === 'invite')!;
  const bob = join(dir.path, 'bob-old');
  const broken = await tacit(bob, ['register', 'bob', '--invite', `${server.url}/#invite=`]);
  assert.equal(broken.code, 2, broken.stderr);
  assert.match(broken.stderr, /the invite link holds no valid invite code/);
  // With --server as well (as the README shows it), the link's code is what counts.
  await ok(bob, ['register', 'bob', '--server', server.url, '--invite', String(made['link'])]);
  assert.equal((await ok(bob, ['whoami']))[0]!['username'], 'bob');
});

test('a failed message is sent again with tacit retry, under its own id, once; what cannot be retried is refused in words', async () => {
  const alice = join(dir.path, 'alice');
  const bobOld = join(dir.path, 'bob-old');
  const bobNew = join(dir.path, 'bob-new');
  await ok(alice, ['send', 'bob', 'first']);
  assert.deepEqual(await recv(bobOld), ['alice: first']);
  await ok(bobOld, ['send', 'alice', 'from the old bob']);
  assert.deepEqual(await recv(alice), ['bob: from the old bob']);

  const reset = await server.command(['reset-account', 'bob']);
  assert.equal(reset.code, 0, reset.stderr);
  const invite = /\nlink: (\S+)\n/.exec(reset.stdout)?.[1];
  assert.ok(invite !== undefined, reset.stdout);
  await ok(bobNew, ['register', 'bob', '--server', server.url, '--invite', invite]);

  // The send is refused (exit 9) and the message stays in the history as failed, with its id.
  const refused = await tacit(alice, ['send', 'bob', 'are you still there?']);
  assert.equal(refused.code, 9, refused.stderr);
  const failed = (await outgoing(alice, 'bob')).at(-1)!;
  assert.equal(failed['text'], 'are you still there?');
  assert.equal(failed['state'], 'failed');
  assert.equal((failed['error'] as Record<string, unknown>)['code'], 'UNTRUSTED_IDENTITY');
  const id = String(failed['id']);
  const short = id.slice(0, 8);
  // `history` tells a person how to send it again.
  const human = await tacit(alice, ['history', 'bob']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, new RegExp(`are you still there\\?.*failed: .*tacit retry bob ${short}`));

  // Before trust, a retry is refused the same way and the message stays failed.
  const early = await tacit(alice, ['retry', 'bob', short]);
  assert.equal(early.code, 9, early.stderr);
  assert.equal((await outgoing(alice, 'bob')).at(-1)!['state'], 'failed');

  await ok(alice, ['trust', 'bob']);
  const sent = await ok(alice, ['retry', 'bob', short]);
  const ev = sent.find((e) => e['event'] === 'sent');
  assert.ok(ev !== undefined, JSON.stringify(sent));
  assert.equal(ev['id'], id, 'the same message, not a new one');
  assert.equal(ev['devices'], 1);

  // The new bob gets it once; alice's history holds it once, sent.
  assert.deepEqual(await recv(bobNew), ['alice: are you still there?']);
  const after = await outgoing(alice, 'bob');
  assert.deepEqual(after.filter((e) => e['text'] === 'are you still there?').map((e) => [e['id'], e['state']]), [[id, 'sent']]);

  // What cannot be sent again is refused with a reason (exit 2): a sent message, someone else's,
  // an id that names nothing.
  const again = await tacit(alice, ['retry', 'bob', short]);
  assert.equal(again.code, 2, again.stderr);
  assert.match(again.stderr, /sent already/);
  const theirs = (await ok(alice, ['history', 'bob'])).find((e) => e['direction'] === 'in')!;
  const notMine = await tacit(alice, ['retry', 'bob', String(theirs['id']).slice(0, 8)]);
  assert.equal(notMine.code, 2, notMine.stderr);
  assert.match(notMine.stderr, /only a message you sent/);
  const bad = await tacit(alice, ['retry', 'bob']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /usage: tacit retry/);
  assert.deepEqual(await recv(bobNew), [], 'nothing more reached bob');
});

test('tacit passphrase seals the home under a new passphrase (as the web page\u2019s Change passphrase): the old one opens nothing, nothing is lost; a wrong current one changes nothing', async () => {
  const alice = join(dir.path, 'alice');
  const bobNew = join(dir.path, 'bob-new');
  const NEW = 'a new passphrase 2';
  const before = (await ok(alice, ['history', 'bob'])).map((e) => [e['id'], e['text']]);
  assert.ok(before.length >= 3);

  // Refused, each with a reason, and nothing changed: a wrong current passphrase (exit 5), a short
  // new one, no new one at all (no terminal to ask on).
  const wrong = await tacit(alice, ['passphrase'], { env: { TACIT_PASSPHRASE: 'not the passphrase', TACIT_NEW_PASSPHRASE: NEW } });
  assert.equal(wrong.code, 5, wrong.stderr);
  const short = await tacit(alice, ['passphrase'], { env: { TACIT_NEW_PASSPHRASE: 'short' } });
  assert.equal(short.code, 2, short.stderr);
  assert.match(short.stderr, /at least 8 characters; nothing was changed/);
  const none = await tacit(alice, ['passphrase']);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /TACIT_NEW_PASSPHRASE/);
  assert.equal((await tacit(alice, ['whoami'])).code, 0, 'the old passphrase still opens it');

  const changed = await tacit(alice, ['--json', 'passphrase'], { env: { TACIT_NEW_PASSPHRASE: NEW } });
  assert.equal(changed.code, 0, changed.stderr);
  assert.deepEqual(changed.events, [{ event: 'passphrase-changed', home: alice }]);
  const old = await tacit(alice, ['whoami']);
  assert.equal(old.code, 5, old.stderr);

  // Under the new one: the same history, and messages flow both ways.
  const withNew = { env: { TACIT_PASSPHRASE: NEW } };
  const history = await tacit(alice, ['--json', 'history', 'bob'], withNew);
  assert.equal(history.code, 0, history.stderr);
  assert.deepEqual(history.events.map((e) => [e['id'], e['text']]), before);
  await ok(bobNew, ['send', 'alice', 'after the change']);
  const got = await tacit(alice, ['--json', 'recv'], withNew);
  assert.equal(got.code, 0, got.stderr);
  assert.deepEqual(got.events.filter((e) => e['event'] === 'message').map((e) => e['text']), ['after the change']);
  const sent = await tacit(alice, ['send', 'bob', 'sent under the new passphrase'], withNew);
  assert.equal(sent.code, 0, sent.stderr);
  assert.deepEqual(await recv(bobNew), ['alice: sent under the new passphrase']);
});
