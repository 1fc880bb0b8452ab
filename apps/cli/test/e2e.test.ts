// End to end through a real server process, real sockets and real `tacit` processes:
// registration, both directions, an offline recipient, live chat, safety numbers, error exits,
// and a search for plaintext in everything the server wrote.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChatProcess, ServerProcess, ok, recv, tacit, tempDir } from './harness.ts';

/** Every message carries this; it must never appear in anything the server stores or logs. */
const MARKER = 'plaintext-marker-Zq7731';

let dir: { path: string; remove(): Promise<void> };
let server: ServerProcess;
let alice: string;
let bob: string;

before(async () => {
  dir = await tempDir('e2e');
  server = await ServerProcess.start(join(dir.path, 'server'));
  alice = join(dir.path, 'alice');
  bob = join(dir.path, 'bob');
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

test('two users register; whoami reports the account', async () => {
  const r = await ok(alice, ['register', 'Alice', '--server', server.url]);
  assert.equal(r[0]!['event'], 'registered');
  assert.equal(r[0]!['username'], 'alice'); // case-folded
  await ok(bob, ['register', 'bob', '--server', server.url]);
  const who = await ok(alice, ['whoami']);
  assert.equal(who[0]!['username'], 'alice');
  assert.equal(who[0]!['server'], server.url);
});

test('messages flow both ways', async () => {
  const sent = await ok(alice, ['send', 'bob', `hello bob ${MARKER}`]);
  assert.equal(sent[0]!['event'], 'sent');
  assert.deepEqual(await recv(bob), [`alice: hello bob ${MARKER}`]);
  await ok(bob, ['send', 'alice', `hello alice ${MARKER}`]);
  assert.deepEqual(await recv(alice), [`bob: hello alice ${MARKER}`]);
  // Nothing is shown twice.
  assert.deepEqual(await recv(bob), []);
  assert.deepEqual(await recv(alice), []);
});

test('an offline recipient gets everything later, in order, once', async () => {
  const texts = Array.from({ length: 6 }, (_, i) => `offline ${i} ${MARKER}`);
  for (const t of texts) await ok(alice, ['send', 'bob', t]);
  assert.deepEqual(await recv(bob), texts.map((t) => `alice: ${t}`));
  assert.deepEqual(await recv(bob), []);
});

test('recv --wait returns when a message arrives', async () => {
  const waiting = recv(bob, ['--wait', '120']);
  // Sent while (or before) bob waits; either way bob's recv returns with it.
  await ok(alice, ['send', 'bob', `while waiting ${MARKER}`]);
  assert.deepEqual(await waiting, [`alice: while waiting ${MARKER}`]);
});

test('interactive chat: incoming messages appear live on both sides', async () => {
  const a = new ChatProcess(alice, 'bob');
  const b = new ChatProcess(bob, 'alice');
  try {
    await a.waitFor(() => a.count('chat-ready') === 1, 'alice ready');
    await b.waitFor(() => b.count('chat-ready') === 1, 'bob ready');
    for (let i = 0; i < 3; i++) {
      a.say(`a->b ${i} ${MARKER}`);
      await b.waitFor(() => b.received().length === i + 1, `bob gets ${i}`);
      b.say(`b->a ${i} ${MARKER}`);
      await a.waitFor(() => a.received().length === i + 1, `alice gets ${i}`);
    }
    assert.deepEqual(b.received(), [0, 1, 2].map((i) => `a->b ${i} ${MARKER}`));
    assert.deepEqual(a.received(), [0, 1, 2].map((i) => `b->a ${i} ${MARKER}`));
    assert.equal(await a.end(), 0);
    assert.equal(await b.end(), 0);
    assert.equal(a.count('sent'), 3);
    assert.equal(b.count('sent'), 3);
  } finally {
    a.kill();
    b.kill();
  }
  // Shown live, so not again by recv.
  assert.deepEqual(await recv(alice), []);
  assert.deepEqual(await recv(bob), []);
});

test('safety numbers agree on both sides; contacts list each other', async () => {
  const sa = await ok(alice, ['safety-number', 'bob']);
  const sb = await ok(bob, ['safety-number', 'alice']);
  assert.match(String(sa[0]!['safetyNumber']), /^\d{60}$/);
  assert.equal(sa[0]!['safetyNumber'], sb[0]!['safetyNumber']);
  assert.equal(sa[0]!['keyState'], 'trusted');
  const human = await tacit(alice, ['safety-number', 'bob']);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /^Safety number with bob:\n  \d{5} \d{5} \d{5} \d{5}\n/);
  const contacts = await ok(alice, ['contacts']);
  assert.deepEqual(contacts.map((c) => c['username']), ['bob']);
});

test('errors: one line on stderr and a distinct exit code', async () => {
  const cases: [string[], number, RegExp, Record<string, string | undefined>?][] = [
    [['frobnicate'], 2, /unknown command/],
    [['send', 'bob'], 2, /usage: tacit send/],
    [['--wait', 'soon', 'recv'], 2, /--wait/],
    [['register', 'carol'], 2, /--server/],
    [['send', 'nobody-here', 'hi'], 10, /nobody-here/],
    [['register', 'alice2', '--server', server.url], 4, /already holds the account alice/],
    [['whoami'], 5, /wrong passphrase/, { TACIT_PASSPHRASE: 'not the passphrase' }],
    [['whoami'], 2, /TACIT_PASSPHRASE/, { TACIT_PASSPHRASE: undefined }],
  ];
  for (const [args, code, message, env] of cases) {
    const r = await tacit(alice, args, env ? { env } : {});
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.equal(r.stdout, '');
  }
  const none = await tacit(join(dir.path, 'nobody'), ['whoami']);
  assert.equal(none.code, 3);
  const json = await tacit(alice, ['--json', 'send', 'nobody-here', 'hi']);
  assert.equal(json.code, 10);
  const err = JSON.parse(json.stderr) as Record<string, unknown>;
  assert.equal(err['event'], 'error');
  assert.equal(err['code'], 'UNKNOWN_USER');
  assert.equal(err['exit'], 10);
  const help = await tacit(alice, ['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /exit codes:/);
});

test('the server stores and logs only ciphertext; local state is encrypted too', async () => {
  await server.stop();
  const needle = Buffer.from(MARKER);
  const scan = async (path: string): Promise<string[]> => {
    const hits: string[] = [];
    for (const e of await readdir(path, { withFileTypes: true, recursive: true })) {
      if (!e.isFile()) continue;
      const p = join(e.parentPath, e.name);
      if ((await readFile(p)).includes(needle)) hits.push(p);
    }
    return hits;
  };
  const serverFiles = await readdir(join(dir.path, 'server'));
  assert.ok(serverFiles.includes('tacit.db') && serverFiles.includes('server.log'), serverFiles.join(','));
  assert.ok((await readFile(join(dir.path, 'server', 'server.log'))).length > 0, 'the server logged something');
  assert.deepEqual(await scan(join(dir.path, 'server')), []);
  assert.deepEqual(await scan(alice), []);
  assert.deepEqual(await scan(bob), []);
});
