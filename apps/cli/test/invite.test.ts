// Registration by invite (the server's default) and the one-process-per-home lock.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ChatProcess, ServerProcess, ok, tacit, tempDir } from './harness.ts';

let dir: { path: string; remove(): Promise<void> };
let server: ServerProcess;

before(async () => {
  dir = await tempDir('invite');
  server = await ServerProcess.start(join(dir.path, 'server'), { TACIT_REGISTRATION: 'invite' });
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

test('register needs the invite the server printed at first start; a used invite is refused', async () => {
  const code = (await server.waitForOutput(/invite code[^:]*: (\S+)/))[1]!;
  const home = join(dir.path, 'alice');
  const none = await tacit(home, ['register', 'alice', '--server', server.url]);
  assert.equal(none.code, 8, none.stderr);
  // In words for people; the code for scripts.
  assert.equal(none.stderr, 'tacit: the invite code is missing, wrong, already used or expired; ask an admin for a new one\n');
  const json = await tacit(home, ['--json', 'register', 'alice', '--server', server.url]);
  assert.deepEqual(JSON.parse(json.stderr), {
    event: 'error',
    code: 'SERVER',
    serverCode: 'INVITE_INVALID',
    message: 'the invite code is missing, wrong, already used or expired; ask an admin for a new one',
    exit: 8,
  });
  const wrong = await tacit(home, ['register', 'alice', '--server', server.url, '--invite', 'not-a-real-code']);
  assert.equal(wrong.code, 8);
  assert.equal(existsSync(home), false, 'a refused registration leaves no directory behind');
  const r = await ok(home, ['register', 'alice', '--server', server.url, '--invite', code]);
  assert.equal(r[0]!['username'], 'alice');
  const again = await tacit(join(dir.path, 'bob'), ['register', 'bob', '--server', server.url, '--invite', code]);
  assert.equal(again.code, 8, 'single use');
  // A refused registration leaves no half-made account behind, and whoami creates nothing.
  const who = await tacit(join(dir.path, 'bob'), ['whoami']);
  assert.equal(who.code, 3);
  assert.equal(existsSync(join(dir.path, 'bob')), false);
  const nested = join(dir.path, 'no', 'such', 'home');
  assert.equal((await tacit(nested, ['whoami'])).code, 3);
  assert.equal(existsSync(join(dir.path, 'no')), false, 'whoami on a missing home creates no directory');
  // A directory the user made is theirs: a failed registration leaves it (empty) in place.
  const mine = join(dir.path, 'made-by-user');
  mkdirSync(mine);
  assert.equal((await tacit(mine, ['register', 'carol', '--server', server.url])).code, 8);
  assert.deepEqual(readdirSync(mine), []);
});

test('a second process on the same home fails with exit code 6 while the first holds it', async () => {
  const home = join(dir.path, 'alice');
  const chat = new ChatProcess(home, 'nobody');
  try {
    await chat.waitFor(() => chat.count('chat-ready') === 1, 'chat running');
    const r = await tacit(home, ['whoami']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /another tacit process/);
  } finally {
    await chat.end();
  }
  // Released on exit.
  await ok(home, ['whoami']);
});
