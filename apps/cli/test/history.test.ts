// The SDK's history through the `tacit` command: `history` shows both directions of a
// conversation; a send while the server is unreachable is stored as queued (exit 11), shown as
// waiting, and delivered once, in order, the next time tacit connects — to a contact never
// written to before as well, whose key bundle needs the server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { BIN, ChatProcess, PASSPHRASE, ROOT, ServerProcess, ok, recv, tacit, tempDir } from './harness.ts';

/** How long the slow reader below leaves the command's output in the pipe before reading it, ms. */
const SLOW_READER_MS = 3_000;

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

test('history --before pages back past --limit\'s 1,000 without a gap or a duplicate; an unknown or malformed id is refused in words', async () => {
  const dave = join(dir.path, 'dave');
  await ok(dave, ['register', 'dave', '--server', server.url]);
  const texts = Array.from({ length: 1_005 }, (_, i) => `m${i}`);
  const sent = await ok(alice, ['send', 'dave', '-'], { input: texts.join('\n') + '\n' });
  assert.equal(sent.filter((e) => e['event'] === 'sent').length, texts.length);
  const page = async (args: string[]) => (await ok(alice, ['history', 'dave', ...args])).filter((e) => e['event'] === 'history');
  // The newest 1,000, then the 5 before the oldest of them (by its full id).
  const newest = await page(['--limit', '1000']);
  assert.equal(newest.length, 1_000);
  const older = await page(['--limit', '1000', '--before', String(newest[0]!['id'])]);
  assert.deepEqual([...older, ...newest].map((e) => e['text']), texts);
  // The same JSON shape as without --before.
  assert.deepEqual(Object.keys(older[0]!).sort(), Object.keys(newest[0]!).sort());
  // Smaller pages, each named by the first 8 characters of its oldest id as history prints it.
  const pages: Record<string, unknown>[][] = [];
  let before: string | undefined;
  for (;;) {
    const p = await page(['--limit', '300', ...(before !== undefined ? ['--before', before] : [])]);
    if (p.length === 0) break;
    pages.unshift(p);
    before = String(p[0]!['id']).slice(0, 8);
  }
  assert.deepEqual(pages.map((p) => p.length), [105, 300, 300, 300]);
  const all = pages.flat();
  assert.deepEqual(all.map((e) => e['text']), texts);
  assert.equal(new Set(all.map((e) => e['id'])).size, texts.length);
  // Human output: the page before a message, and nothing before the first.
  const human = await tacit(alice, ['history', 'dave', '--limit', '2', '--before', String(newest[2]!['id']).slice(0, 8)]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /you: m5  ✓.*\n.*you: m6  ✓.*\n$/);
  const first = await tacit(alice, ['history', 'dave', '--before', String(all[0]!['id'])]);
  assert.equal(first.code, 0);
  assert.match(first.stderr, /no messages with dave/);
  // Unknown, malformed or too short: usage errors in words, nothing printed as history.
  const unknown = await tacit(alice, ['--json', 'history', 'dave', '--before', 'abcdef12']);
  const known = new Set(all.map((e) => String(e['id']).slice(0, 8)));
  if (!known.has('abcdef12')) {
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr + unknown.stdout, /no message abcdef12 in this conversation/);
    assert.equal(unknown.events.filter((e) => e['event'] === 'history').length, 0);
  }
  // `tacit help` names the flag.
  const help = await tacit(alice, ['help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /history <username> \[--limit n\] \[--before <id>\]/);
  for (const bad of ['not-hex', 'abc', '']) {
    const r = await tacit(alice, ['history', 'dave', '--before', bad]);
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, /a message is named by its id or its first 6 or more characters/, bad);
  }
  // A message of another conversation does not name one here.
  const other = (await page(['--limit', '1']))[0]!;
  const r = await tacit(alice, ['history', 'bob', '--before', String(other['id'])]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no message .* in this conversation/);
  // A reader that is slow to start (a pager): 1,000 messages are more than a pipe holds, and the
  // command once exited with the rest unwritten. The pipe is the shell's, as with `| less`: a pipe
  // to this process would be emptied by Node when the command exits before it is read.
  const proc = spawn('bash', ['-c', 'set -o pipefail; "$0" "$1" --home "$2" --json history dave --limit 1000 | (sleep "$3"; cat)', process.execPath, BIN, alice, String(SLOW_READER_MS / 1000)], {
    cwd: ROOT,
    env: { ...process.env, TACIT_PASSPHRASE: PASSPHRASE, TACIT_SCRYPT_N: '1024' },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d: string) => (out += d));
  assert.equal(await new Promise<number | null>((resolve) => proc.once('close', resolve)), 0);
  assert.deepEqual(out.trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text), texts.slice(-1_000));
  // A reader that stops after one line (`| head -1`): the command ends quietly, no stack trace.
  const early = spawn(process.execPath, [BIN, '--home', alice, '--json', 'history', 'dave', '--limit', '1000'], {
    cwd: ROOT,
    env: { ...process.env, TACIT_PASSPHRASE: PASSPHRASE, TACIT_SCRYPT_N: '1024' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let errText = '';
  early.stderr.setEncoding('utf8');
  early.stderr.on('data', (d: string) => (errText += d));
  const ended = new Promise<number | null>((resolve) => early.once('close', resolve));
  early.stdout.once('data', () => early.stdout.destroy());
  assert.equal(await ended, 0, errText);
  assert.equal(errText, '', 'nothing on stderr');
});
