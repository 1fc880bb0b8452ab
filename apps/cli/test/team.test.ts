// Admins and the team directory from the terminal, through a real invite-only server: invite
// links, accounts, reset (as the operator's reset-account), the directory; refusals in words.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ServerProcess, ok, tacit, tempDir } from './harness.ts';

let dir: { path: string; remove(): Promise<void> };
let server: ServerProcess;
const home = (name: string) => join(dir.path, name);

before(async () => {
  dir = await tempDir('team');
  server = await ServerProcess.start(join(dir.path, 'server'), { TACIT_REGISTRATION: 'invite' });
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

const codeOf = (link: string): string => {
  const m = /#invite=([A-Za-z0-9_-]+)$/.exec(link);
  assert.ok(m, link);
  return m[1]!;
};

test('the first account is an admin: it makes invite links others register with; non-admins are told why not', async () => {
  const first = (await server.waitForOutput(/invite code: (\S+)/))[1]!;
  assert.match(server.output, new RegExp(`${server.url}/#invite=${first}\\n`), 'the first start prints a ready link');
  await ok(home('alice'), ['register', 'alice', '--server', server.url, '--invite', first]);

  const invites = await ok(home('alice'), ['admin', 'invite', '2']);
  assert.equal(invites.length, 2);
  for (const e of invites) {
    assert.equal(e['event'], 'invite');
    assert.equal(e['link'], `${server.url}/#invite=${String(e['code'])}`);
    assert.ok(Number(e['expiresAt']) > Date.now());
  }
  await ok(home('bob'), ['register', 'bob', '--server', server.url, '--invite', codeOf(String(invites[0]!['link']))]);
  await ok(home('carol'), ['register', 'carol', '--server', server.url, '--invite', codeOf(String(invites[1]!['link']))]);

  const human = await tacit(home('alice'), ['admin', 'invite']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^invite link \(single use, valid until .+\):\n {2}http:\/\/127\.0\.0\.1:\d+\/#invite=[A-Za-z0-9_-]+\n$/);

  for (const args of [['admin', 'invite'], ['admin', 'accounts'], ['admin', 'reset', 'carol', '--yes']]) {
    const r = await tacit(home('bob'), args);
    assert.equal(r.code, 8, args.join(' '));
    assert.match(r.stderr, /^tacit: only admins can/, args.join(' '));
    const j = await tacit(home('bob'), ['--json', ...args]);
    const err = JSON.parse(j.stderr) as Record<string, unknown>;
    assert.equal(err['code'], 'SERVER');
    assert.equal(err['serverCode'], 'FORBIDDEN', 'the code stays in --json');
  }
});

test('admin accounts lists every account with its devices; directory lists usernames for everyone', async () => {
  const accounts = await ok(home('alice'), ['admin', 'accounts']);
  assert.deepEqual(
    accounts.map((a) => [a['username'], a['admin'], (a['devices'] as { deviceId: number }[]).map((d) => d.deviceId)]),
    [
      ['alice', true, [1]],
      ['bob', false, [1]],
      ['carol', false, [1]],
    ],
  );
  const human = await tacit(home('alice'), ['admin', 'accounts']);
  assert.match(human.stdout, /^alice +admin +1 device +registered /m);
  const users = await ok(home('carol'), ['directory']);
  assert.deepEqual(users, ['alice', 'bob', 'carol'].map((username) => ({ event: 'user', username })));
  assert.equal((await tacit(home('carol'), ['directory'])).stdout, 'alice\nbob\ncarol\n');
});

test('admin reset: needs --yes without a terminal; resets as reset-account does; the invite registers the name again', async () => {
  const unconfirmed = await tacit(home('alice'), ['admin', 'reset', 'bob']);
  assert.equal(unconfirmed.code, 2);
  assert.match(unconfirmed.stderr, /add --yes to confirm/);
  await ok(home('bob'), ['directory']); // bob still works

  const self = await tacit(home('alice'), ['admin', 'reset', 'alice', '--yes']);
  assert.equal(self.code, 8);
  assert.match(self.stderr, /not their own/);

  const human = await tacit(home('alice'), ['admin', 'reset', 'Bob', '--yes']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^reset bob: removed 1 device, \d+ one-time keys and 0 undelivered messages\.\nGive bob this invite link to register again/);
  const link = /\n {2}(\S+)\n/.exec(human.stdout)?.[1];
  assert.ok(link !== undefined, human.stdout);

  // The old device is refused, in words.
  const old = await tacit(home('bob'), ['directory']);
  assert.equal(old.code, 8);
  assert.match(old.stderr, /^tacit: the server no longer accepts this device/);
  assert.ok(!old.stderr.includes('UNAUTHORIZED'));

  await ok(home('bob-again'), ['register', 'bob', '--server', server.url, '--invite', codeOf(link)]);
  const again = await ok(home('alice'), ['admin', 'accounts']);
  assert.equal(again.find((a) => a['username'] === 'bob')?.['admin'], false);

  const gone = await tacit(home('alice'), ['admin', 'reset', 'nobody', '--yes']);
  assert.equal(gone.code, 8);
  assert.match(gone.stderr, /no such user/);
});
