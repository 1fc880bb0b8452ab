// `tacit group admin <group> <user> [--remove]` end to end: a real server process and real `tacit`
// processes. An admin makes a member an admin, who can then change the group; a non-admin is
// refused (exit 2); the last admin cannot unmake itself; --remove takes admin rights away; usage
// errors exit 2. The SDK side is in packages/client/test/group-admins.test.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ServerProcess, ok, tacit, tempDir } from './harness.ts';

let dir: { path: string; remove(): Promise<void> };
let server: ServerProcess;

before(async () => {
  dir = await tempDir('group-admins');
  server = await ServerProcess.start(join(dir.path, 'server'));
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

const home = (name: string): string => join(dir.path, name);

let group = '';

async function admins(name: string): Promise<string[]> {
  const members = await ok(home(name), ['group', 'members', group]);
  return members.filter((e) => e['admin'] === true).map((e) => String(e['username']));
}

test('group admin: promote, the new admin renames, non-admins and the last admin refused, --remove demotes', async () => {
  for (const u of ['alice', 'bob', 'carol']) await ok(home(u), ['register', u, '--server', server.url]);
  group = `g:${String((await ok(home('alice'), ['group', 'create', 'Ops', 'bob', 'carol'])).find((e) => e['event'] === 'group')!['id'])}`;
  await ok(home('bob'), ['recv']);

  // Bob is not an admin yet.
  const denied = await tacit(home('bob'), ['--json', 'group', 'admin', '#ops', 'carol']);
  assert.equal(denied.code, 2, denied.stderr);
  assert.match(denied.stderr, /only an admin/);
  // The last admin cannot unmake itself; usage errors.
  const last = await tacit(home('alice'), ['group', 'admin', '#ops', 'alice', '--remove']);
  assert.equal(last.code, 2, last.stderr);
  assert.match(last.stderr, /needs an admin/);
  assert.equal((await tacit(home('alice'), ['group', 'admin', '#ops'])).code, 2);
  assert.equal((await tacit(home('alice'), ['group', 'rename', '#ops', 'X', '--remove'])).code, 2);

  const promoted = (await ok(home('alice'), ['group', 'admin', '#ops', 'bob'])).find((e) => e['event'] === 'group')!;
  assert.deepEqual([promoted['change'], promoted['username'], promoted['admins']], ['promote', 'bob', ['alice', 'bob']]);
  const human = await tacit(home('alice'), ['group', 'members', '#ops']);
  assert.match(human.stdout, /^bob {2}\(admin\)$/m);

  assert.deepEqual(await admins('bob'), ['alice', 'bob']);
  const recv = await ok(home('bob'), ['recv']);
  assert.ok(recv.some((e) => e['system'] === true && e['text'] === 'alice made you an admin'), JSON.stringify(recv));
  // Bob, an admin now, renames; carol takes it from him.
  await ok(home('bob'), ['group', 'rename', '#ops', 'Ops 2']);
  const carol = await ok(home('carol'), ['recv']);
  assert.deepEqual(
    carol.filter((e) => e['system'] === true).map((e) => e['text']),
    ['alice added you to "Ops" (alice, bob, carol)', 'alice made bob an admin', 'bob renamed the group to "Ops 2"'],
  );

  // --remove: bob is an admin no more, and refused from then on.
  const demoted = (await ok(home('alice'), ['group', 'admin', group, 'bob', '--remove'])).find((e) => e['event'] === 'group')!;
  assert.deepEqual([demoted['change'], demoted['admins']], ['demote', ['alice']]);
  assert.deepEqual(await admins('bob'), ['alice']);
  const again = await tacit(home('bob'), ['group', 'rename', group, 'Mine']);
  assert.equal(again.code, 2, again.stderr);
  assert.match(again.stderr, /only an admin/);
});
