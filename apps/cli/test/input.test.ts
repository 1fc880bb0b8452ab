// What a newcomer types or pipes in, through a real server, real processes and real pipes:
// `chat` fed by a slow and by a short pipe, `/quit` with a message the server never confirmed,
// `send -` with one bad line, white-space-only and over-long messages, emoji at the limit.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { BIN, CLI_TIMEOUT_MS, ChatProcess, PASSPHRASE, ROOT, ServerProcess, ok, recv, tacit, tempDir } from './harness.ts';

let dir: { path: string; remove(): Promise<void> };
let server: ServerProcess;
let alice: string;
let carol: string;

before(async () => {
  dir = await tempDir('input');
  server = await ServerProcess.start(join(dir.path, 'server'));
  alice = join(dir.path, 'alice');
  carol = join(dir.path, 'carol');
  await ok(alice, ['register', 'alice', '--server', server.url]);
  await ok(carol, ['register', 'carol', '--server', server.url]);
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

/** Runs a shell pipeline into `tacit chat`, as a user would type it; returns its exit code and output. */
function pipeline(producer: string, home: string, partner: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const cmd = `${producer} | "${process.execPath}" "${BIN}" --home "${home}" --json chat ${partner}`;
    const env: NodeJS.ProcessEnv = { ...process.env, TACIT_PASSPHRASE: PASSPHRASE, TACIT_SCRYPT_N: '1024' };
    delete env['TACIT_HOME'];
    const p = spawn('/bin/sh', ['-c', cmd], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`pipeline did not finish (it should end with its input); stderr: ${stderr}`));
    }, CLI_TIMEOUT_MS);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stdout, stderr });
    });
  });
}

const events = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

test('chat from a slow pipe sends every line, in order, including those read before it connected', async () => {
  const r = await pipeline('(for i in $(seq 30); do echo pipe-$i; sleep .1; done)', alice, 'carol');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(events(r.stdout).filter((e) => e['event'] === 'sent').length, 30);
  assert.deepEqual(
    await recv(carol),
    Array.from({ length: 30 }, (_, i) => `alice: pipe-${i + 1}`),
  );
});

test('chat from a short pipe (all input and its end before connecting) sends it all and exits', async () => {
  const r = await pipeline(`printf 'a\\nb\\nc\\n'`, alice, 'carol');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(events(r.stdout).filter((e) => e['event'] === 'sent').length, 3);
  assert.deepEqual(await recv(carol), ['alice: a', 'alice: b', 'alice: c']);
});

test('/quit with a message the server has not confirmed says one true thing and leaves; the message goes out next time', async () => {
  const chat = new ChatProcess(alice, 'carol');
  try {
    await chat.waitFor(() => chat.count('chat-ready') === 1, 'chat ready');
    await server.stop();
    await chat.waitFor(() => chat.events.some((e) => e['event'] === 'connection' && e['state'] === 'disconnected'), 'disconnect noticed');
    chat.say('typed while the server was down');
    await chat.waitFor(() => chat.count('queued') === 1, 'message queued');
    chat.say('/quit');
    assert.equal(await chat.end(), 0);
    const unsent = chat.events.filter((e) => e['event'] === 'unsent');
    assert.deepEqual(unsent, [{ event: 'unsent', count: 1 }], 'exactly one statement about the message');
    assert.equal(chat.count('error'), 0, `no contradicting "not sent": ${chat.stderr}`);
    assert.equal(chat.stderr, '');
  } finally {
    chat.kill();
    await server.restart();
  }
  // The next command that connects sends it; carol gets it once.
  await ok(alice, ['recv']);
  for (let i = 0; i < 100; i++) {
    const got = await recv(carol);
    if (got.length > 0) {
      assert.deepEqual(got, ['alice: typed while the server was down']);
      break;
    }
    assert.ok(i < 99, 'the queued message arrived');
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(await recv(carol), []);
});

test('send - checks every line first: one bad line sends nothing, and says which line', async () => {
  const long = 'x'.repeat(16_385);
  const r = await tacit(alice, ['send', 'carol', '-'], { input: `first\n${long}\nthird\n` });
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr, 'tacit: line 2: the message is 16,385 characters long; at most 16,384 fit in one message; nothing was sent\n');
  assert.deepEqual(await recv(carol), [], 'not even the good lines');
  // Blank lines separate messages; they are not messages.
  await ok(alice, ['send', 'carol', '-'], { input: 'one\n\n   \ntwo\n' });
  assert.deepEqual(await recv(carol), ['alice: one', 'alice: two']);
  const none = await tacit(alice, ['send', 'carol', '-'], { input: ' \n\n' });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /nothing to send/);
});

test('a white-space-only message is refused; the limit counts characters as people see them', async () => {
  const blank = await tacit(alice, ['--json', 'send', 'carol', '  \t ']);
  assert.equal(blank.code, 2);
  assert.equal((JSON.parse(blank.stderr) as { message: string }).message, 'the message is empty (only white space)');

  const smile = '\u{1F600}';
  await ok(alice, ['send', 'carol', smile.repeat(16_384)]);
  const got = await recv(carol);
  assert.equal(got.length, 1);
  const whole = `alice: ${smile.repeat(16_384)}`;
  // (Compared without printing 64 KB of emoji on failure.)
  assert.ok(got[0] === whole, `delivered whole: ${got[0]?.length} of ${whole.length} code units, first difference at ${[...(got[0] ?? '')].findIndex((ch, i) => ch !== [...whole][i])}`);
  const over = await tacit(alice, ['send', 'carol', smile.repeat(16_385)]);
  assert.equal(over.code, 2);
  assert.equal(over.stderr, 'tacit: the message is 16,385 characters long; at most 16,384 fit in one message\n');
  assert.deepEqual(await recv(carol), []);
});
