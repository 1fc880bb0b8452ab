// Group conversations end to end: a real server process and real `tacit` processes. A group of
// three; a member offline throughout gets everything later, in order; a removed member handed the
// raw ciphertext of a later group message (copied inside the server's database, as a hostile
// server could) cannot decrypt it; a new member cannot read earlier messages; an identity change
// of one member holds group sends until trust; concurrent changes converge. The browser takes part
// in apps/web/test/groups.browser.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ServerProcess, ok, tacit, tempDir } from './harness.ts';

let dir: { path: string; remove(): Promise<void> };
let server: ServerProcess;

before(async () => {
  dir = await tempDir('groups');
  server = await ServerProcess.start(join(dir.path, 'server'));
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

const home = (name: string): string => join(dir.path, name);

/** Group messages and system lines printed by `recv --json`, as "from: text" and "* text". */
async function groupRecv(name: string): Promise<string[]> {
  const events = await ok(home(name), ['recv']);
  return events.filter((e) => e['event'] === 'message').map((e) => (e['system'] === true ? `* ${String(e['text'])}` : `${String(e['from'])}: ${String(e['text'])}`));
}

test('a group of three from the terminal: offline member in order, removal with a copied ciphertext, a late member, who said what', async () => {
  for (const u of ['alice', 'bob', 'carol', 'dave']) await ok(home(u), ['register', u, '--server', server.url]);
  const created = (await ok(home('alice'), ['group', 'create', 'Team', 'bob', 'carol'])).find((e) => e['event'] === 'group')!;
  assert.deepEqual([created['title'], created['members'], created['admins']], ['Team', ['alice', 'bob', 'carol'], ['alice']]);
  const id = String(created['id']);

  assert.deepEqual(await groupRecv('bob'), ['* alice added you to "Team" (alice, bob, carol)']);
  const sent = (await ok(home('alice'), ['send', '#team', 'one'])).find((e) => e['event'] === 'sent')!;
  assert.equal(sent['to'], `g:${id}`);
  assert.equal(sent['devices'], 2);
  await ok(home('alice'), ['send', `g:${id.slice(0, 6)}`, 'two']);
  await ok(home('bob'), ['send', '#Team', 'three']);
  // Carol was offline throughout: everything, in order, with who said it.
  assert.deepEqual(await groupRecv('carol'), ['* alice added you to "Team" (alice, bob, carol)', 'alice: one', 'alice: two', 'bob: three']);
  const hist = await ok(home('carol'), ['history', '#team']);
  assert.deepEqual(hist.map((e) => [e['from'], e['system'] === true]), [['alice', true], ['alice', false], ['alice', false], ['bob', false]]);
  assert.deepEqual(await groupRecv('alice'), ['bob: three']);
  const human = await tacit(home('alice'), ['history', '#team']);
  assert.match(human.stdout, /\* alice created the group "Team" with bob, carol\n.*you: one  ✓.*\n.*you: two  ✓.*\n.*bob: three\n$/);

  // Members and list; only admins change the group.
  const members = await ok(home('bob'), ['group', 'members', '#team']);
  assert.deepEqual(members.map((e) => [e['username'], e['admin']]), [['alice', true], ['bob', false], ['carol', false]]);
  const denied = await tacit(home('bob'), ['--json', 'group', 'rename', '#team', 'Mine']);
  assert.equal(denied.code, 2, denied.stderr);
  assert.match(denied.stderr, /only an admin/);
  const usage = await tacit(home('bob'), ['group', 'add', 'team', 'dave']);
  assert.equal(usage.code, 2);

  // Carol is removed while bob is offline; alice's next message goes out under a new sender key.
  await ok(home('alice'), ['group', 'remove', '#team', 'carol']);
  assert.deepEqual(await groupRecv('carol'), ['* alice removed you']);
  await ok(home('alice'), ['send', '#team', 'after carol left']);
  // The copy waiting for bob, as the server stored it: handed to carol by a hostile server.
  const db = new Database(join(server.dataDir, 'tacit.db'));
  try {
    db.pragma('busy_timeout = 10000');
    const row = db.prepare("SELECT * FROM messages WHERE sender = 'alice' AND kind = 7 AND recipient LIKE 'bob%' ORDER BY id DESC LIMIT 1").get() as Record<string, unknown> | undefined;
    assert.ok(row, 'the group message waits for bob on the server');
    db.prepare('INSERT INTO messages (recipient, sender, sender_device, kind, body, ts, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
      String(row['recipient']).replace(/^bob/, 'carol'),
      row['sender'],
      row['sender_device'],
      row['kind'],
      row['body'],
      row['ts'],
      row['expires_at'],
    );
  } finally {
    db.close();
  }
  const carolRecv = await ok(home('carol'), ['recv']);
  assert.deepEqual(carolRecv.filter((e) => e['event'] === 'message'), [], 'carol reads nothing of it');
  assert.deepEqual(carolRecv.filter((e) => e['event'] === 'undecryptable').map((e) => [e['from'], e['reason']]), [['alice', 'NO_SENDER_KEY']]);
  const carolSend = await tacit(home('carol'), ['send', '#team', 'let me back']);
  assert.equal(carolSend.code, 2, carolSend.stderr);

  // Dave joins late: he reads only what is sent after.
  await ok(home('alice'), ['group', 'add', '#team', 'dave']);
  await ok(home('alice'), ['send', '#team', 'welcome dave']);
  assert.deepEqual(await groupRecv('dave'), ['* alice added you to "Team" (alice, bob, dave)', 'alice: welcome dave']);
  assert.deepEqual(await groupRecv('bob'), ['alice: one', 'alice: two', '* alice removed carol', 'alice: after carol left', '* alice added dave', 'alice: welcome dave']);
  await ok(home('bob'), ['send', '#team', 'hi dave']);
  assert.deepEqual(await groupRecv('dave'), ['bob: hi dave']);
  await ok(home('alice'), ['group', 'rename', '#team', 'Team 2']);
  assert.deepEqual(await groupRecv('dave'), ['* alice renamed the group to "Team 2"']);
  const list = await ok(home('carol'), ['group', 'list']);
  assert.deepEqual(list.map((e) => [e['title'], e['member']]), [['Team', false]]);
});

test('an identity change of one member holds group sends until trust; concurrent changes converge', async () => {
  for (const u of ['erin', 'frank', 'gina', 'hank']) await ok(home(u), ['register', u, '--server', server.url]);
  await ok(home('erin'), ['group', 'create', 'Ring', 'frank', 'gina']);
  await ok(home('erin'), ['send', '#ring', 'first']);
  assert.deepEqual((await groupRecv('gina')).slice(1), ['erin: first']);

  // Frank re-installs: the operator frees his name, he registers again with new keys.
  const reset = await server.command(['reset-account', 'frank']);
  assert.equal(reset.code, 0, reset.stderr);
  await ok(home('frank2'), ['register', 'frank', '--server', server.url]);
  const held = await tacit(home('erin'), ['--json', 'send', '#ring', 'held for frank']);
  assert.equal(held.code, 9, held.stderr);
  assert.equal(JSON.parse(held.stderr)['contact'], 'frank');
  assert.deepEqual(await groupRecv('gina'), [], 'nothing went out while held');
  await ok(home('erin'), ['trust', 'frank']);
  await ok(home('erin'), ['recv']); // connects: the held message goes out
  assert.deepEqual(await groupRecv('gina'), ['erin: held for frank']);

  // Concurrent: erin adds hank while gina, who has not heard of it, leaves.
  await ok(home('erin'), ['group', 'add', '#ring', 'hank']);
  await ok(home('gina'), ['group', 'leave', '#ring']);
  const view = async (u: string) => {
    const members = await ok(home(u), ['group', 'members', '#ring']);
    return members.map((e) => e['username']).join(',');
  };
  let views: string[] = [];
  for (let round = 0; round < 5; round++) {
    views = [await view('erin'), await view('hank'), await view('gina')];
    if (new Set(views).size === 1) break;
  }
  assert.deepEqual(views, ['erin,frank,hank', 'erin,frank,hank', 'erin,frank,hank']);
});
