// `tacit mute`, `tacit unmute` through a real server process: a muted conversation still
// receives; contacts and the group list say muted; a second home of alice
// learns it (a mute-sync notice); bad command lines exit 2; and `tacit chat` on a terminal (a
// pseudo-terminal by script(1)) rings the bell for a message from another conversation, but not
// for one from a muted conversation.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { BIN, cliEnv, linkHome, ok, recv, ROOT, serverWithUsers, tacit } from './harness.ts';

let env: Awaited<ReturnType<typeof serverWithUsers>>;

before(async () => {
  env = await serverWithUsers('mute', ['alice', 'bob', 'carol', 'dave']);
});
after(async () => {
  await env?.remove();
});

const home = (name: string): string => env.homes[name]!;

test('mute, unmute: still received and unread; contacts and groups say muted; the other home follows; bad arguments exit 2', async () => {
  const alice = home('alice');
  const laptop = join(env.dir, 'alice-laptop');
  await linkHome(alice, laptop, env.server.url, 'laptop');
  await ok(home('bob'), ['send', 'alice', 'first']);
  assert.deepEqual(await recv(alice), ['bob: first']);
  await ok(home('carol'), ['group', 'create', 'Team', 'alice', 'bob']);
  await recv(alice);
  await recv(laptop);

  const before = Date.now();
  const muted = (await ok(alice, ['mute', 'Bob', '8h'])).find((e) => e['event'] === 'muted')!;
  assert.equal(muted['conversation'], 'u:bob');
  assert.equal(muted['always'], false);
  assert.ok(Math.abs(Number(muted['mutedUntil']) - (before + 8 * 3600_000)) < 60_000, String(muted['mutedUntil']));
  const gid = String((await ok(alice, ['group', 'list']))[0]!['id']);
  assert.deepEqual((await ok(alice, ['mute', '#Team'])).find((e) => e['event'] === 'muted'), { event: 'muted', conversation: `g:${gid}`, mutedUntil: null, always: true });
  assert.match((await tacit(alice, ['mute', 'bob', '1d'])).stdout, /^bob: muted until .* \(1 day\); messages still arrive/);

  const contact = async (h: string) => (await ok(h, ['contacts'])).find((e) => e['username'] === 'bob')!;
  assert.equal((await contact(alice))['muted'], true);
  assert.match((await tacit(alice, ['contacts'])).stdout, /bob .* muted until /);
  const groups = await ok(alice, ['group', 'list']);
  assert.deepEqual(groups.map((g) => [g['title'], g['muted'], g['mutedUntil']]), [['Team', true, null]]);
  assert.match((await tacit(alice, ['group', 'list'])).stdout, /#Team .* muted$/m);

  // Still received (recv shows it, so it is read; the SDK test checks the unread count).
  await ok(home('bob'), ['send', 'alice', 'while muted']);
  assert.deepEqual(await recv(alice), ['bob: while muted']);

  // The laptop learns it (a notice for scripts).
  const onLaptop = await ok(laptop, ['recv']);
  const sync = onLaptop.filter((e) => e['event'] === 'mute-sync').at(-1)!;
  assert.deepEqual(Object.keys(sync['mutes'] as object).sort(), [`g:${gid}`, 'u:bob']);
  assert.equal((await contact(laptop))['muted'], true);

  for (const bad of [['mute'], ['mute', 'bob', '0'], ['mute', 'bob', 'off'], ['mute', 'bob', '5y'], ['mute', 'bob', '5w'], ['mute', 'bob', '1h', 'x'], ['mute', 'Bad Name!'], ['unmute'], ['unmute', 'a', 'b']]) {
    const r = await tacit(alice, bad);
    assert.equal(r.code, 2, `${bad.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /mute|username|duration/, bad.join(' '));
  }
  assert.match((await tacit(alice, ['--help'])).stdout, /mute <username\|#group> \[<duration>\|always\]/);

  assert.deepEqual((await ok(alice, ['unmute', 'bob'])).find((e) => e['event'] === 'unmuted'), { event: 'unmuted', conversation: 'u:bob', changed: true });
  assert.equal((await tacit(alice, ['unmute', 'bob'])).stdout, 'bob was not muted\n');
  assert.equal((await contact(alice))['muted'], false);
  await ok(laptop, ['recv']);
  assert.equal((await contact(laptop))['muted'], false, 'the laptop follows the unmute');
});

test('chat on a terminal: no bell for a muted conversation, a bell for another', async () => {
  const alice = home('alice');
  await ok(alice, ['mute', 'bob']);
  await recv(alice);
  // A pseudo-terminal, so chat is interactive (the bell rings only there).
  const cmd = [process.execPath, BIN, '--home', alice, 'chat', 'carol'].map((a) => `'${a}'`).join(' ');
  const proc = spawn('script', ['-qfec', cmd, '/dev/null'], { cwd: ROOT, env: cliEnv({}), stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d: string) => (screen += d));
  const waitFor = async (re: RegExp, what: string) => {
    for (let i = 0; i < 1_200 && !re.test(screen); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(screen, re, what);
  };
  try {
    await waitFor(/chatting with carol/, 'chat started');
    await ok(home('bob'), ['send', 'alice', 'muted ping']);
    await waitFor(/muted ping/, 'the muted message is shown');
    const afterMuted = screen;
    await ok(home('dave'), ['send', 'alice', 'loud ping']);
    await waitFor(/loud ping/, 'the other message is shown');
    const lines = screen.slice(afterMuted.length);
    assert.ok(!afterMuted.includes('\x07'), 'no bell for the muted conversation');
    assert.ok(lines.includes('\x07'), 'a bell for the unmuted one');
  } finally {
    proc.stdin.end('/quit\n');
    const exited = new Promise((r) => proc.once('exit', r));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
});
