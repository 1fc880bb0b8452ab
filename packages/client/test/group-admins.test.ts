// Making a group member an admin and taking it away (group/groups.ts `setAdmin`), through a real
// server process: a promoted member can then add, remove and rename; a demoted one cannot; a
// non-admin cannot promote; the last admin cannot unmake itself; a forged promotion sent by a
// hostile member is ignored; the author's own linked device learns the change too.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeBackend } from '@tacit/protocol/node';
import { encodeEnvelope, encodeGroupPayload, isClientError, MemoryRecordStore, TacitClient, type GroupState } from '../src/index.ts';
import { wsSocketFactory } from '../src/node.ts';
import { ServerProcess } from './support/server-process.js';
import { rawDevice } from './support/raw-device.ts';

const backend = nodeBackend();
let server: ServerProcess;
let n = 0;
const open: TacitClient[] = [];

before(async () => {
  server = await ServerProcess.start({ TACIT_REGISTRATION_BURST: '100', TACIT_REGISTRATION_PER_HOUR: '1000' });
});
after(async () => {
  for (const c of open) await c.close().catch(() => undefined);
  await server?.stop();
});

const opts = () => ({ store: new MemoryRecordStore(), backend, connect: wsSocketFactory, backoff: { baseMs: 10, maxMs: 50 } });
const name = (base: string) => `${base}${++n}x${process.pid}`;

async function register(base: string): Promise<TacitClient> {
  const c = await TacitClient.register(opts(), { server: server.url, username: name(base) });
  open.push(c);
  await c.connect();
  return c;
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const refused = (pattern: RegExp) => (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT' && pattern.test(e.message);

test('promote: the new admin adds, removes and renames; demote takes it away; non-admins and the last admin are refused; own linked device follows', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  const carol = await register('carol');
  const dave = await register('dave');
  // Alice's second device, linked before the group exists.
  let added: Promise<unknown> | undefined;
  const laptop = await TacitClient.link(opts(), { server: server.url, name: 'laptop', onCode: (code) => (added = alice.linkDevice(code)) });
  open.push(laptop);
  await added;
  await laptop.connect();

  const g = await alice.createGroup('Ops', [bob.username, carol.username]);
  for (const c of [bob, carol, laptop]) await until(async () => (await c.groups()).length === 1, `${c.username} learns of the group`);

  // Not an admin: refused before anything is sent.
  await assert.rejects(bob.setGroupAdmin(g.conversation, carol.username, true), refused(/only an admin/));
  // Not a member, already an admin, not an admin, the last admin.
  await assert.rejects(alice.setGroupAdmin(g.conversation, dave.username, true), refused(/not a member/));
  await assert.rejects(alice.setGroupAdmin(g.conversation, alice.username, true), refused(/admin already/));
  await assert.rejects(alice.setGroupAdmin(g.conversation, bob.username, false), refused(/not an admin/));
  await assert.rejects(alice.setGroupAdmin(g.conversation, alice.username, false), refused(/needs an admin/));

  const promoted = await alice.setGroupAdmin(g.conversation, bob.username, true);
  assert.deepEqual(promoted.admins, [alice.username, bob.username].sort());
  for (const c of [bob, carol, laptop]) await until(async () => (await c.group(g.conversation)).admins.includes(bob.username), `${c.username} sees bob promoted`);
  assert.equal((await carol.history(g.conversation)).at(-1)?.text, `${alice.username} made ${bob.username} an admin`);
  assert.equal((await bob.history(g.conversation)).at(-1)?.text, `${alice.username} made you an admin`);

  // Bob, now an admin, changes the group; every device takes his changes.
  await bob.addToGroup(g.conversation, [dave.username]);
  await bob.renameGroup(g.conversation, 'Ops team');
  await bob.removeFromGroup(g.conversation, [carol.username]);
  for (const c of [alice, laptop, dave]) {
    await until(async () => {
      const x = await c.group(g.conversation).catch(() => undefined);
      return x?.title === 'Ops team' && x.members.includes(dave.username) && !x.members.includes(carol.username);
    }, `${c.username} takes bob's changes`);
  }

  // Demote: bob is an admin no more, everywhere, and is refused from then on.
  const demoted = await alice.setGroupAdmin(g.conversation, bob.username, false);
  assert.deepEqual(demoted.admins, [alice.username]);
  for (const c of [bob, dave, laptop]) await until(async () => !(await c.group(g.conversation)).admins.includes(bob.username), `${c.username} sees bob demoted`);
  assert.equal((await dave.history(g.conversation)).at(-1)?.text, `${alice.username} removed ${bob.username} as an admin`);
  await assert.rejects(bob.renameGroup(g.conversation, 'mine'), refused(/only an admin/));

  // An admin may unmake itself while another admin remains.
  await alice.setGroupAdmin(g.conversation, dave.username, true);
  const self = await alice.setGroupAdmin(g.conversation, alice.username, false);
  assert.deepEqual(self.admins, [dave.username]);
  await until(async () => (await bob.group(g.conversation)).admins.join() === dave.username, 'bob sees dave as the only admin');
  await assert.rejects(dave.setGroupAdmin(g.conversation, dave.username, false), refused(/needs an admin/));
});

test('a forged promotion from a non-admin member is ignored, as a forged removal is', async () => {
  const alice = await register('alice');
  const bob = await register('bob');
  const mallory = await rawDevice(server, name('mallory'));
  try {
    const g = await alice.createGroup('Secure', [bob.username, mallory.username]);
    await until(async () => (await bob.groups()).length === 1, 'bob learns of the group');
    const state = (admins: string[], rev: number, title: string): GroupState => {
      const members: GroupState['members'] = Object.create(null) as GroupState['members'];
      for (const u of [alice.username, bob.username, mallory.username]) members[u] = { in: true, admin: admins.includes(u), rev, by: alice.username };
      return { id: g.id, title: { v: title, rev, by: alice.username }, members };
    };
    // Mallory claims Alice made her an admin (and, as that admin, renamed the group).
    await mallory.send(bob.username, 1, encodeGroupPayload({ grp: 'state', state: state([alice.username, mallory.username], 50, 'Owned') }));
    // A plain message after it on the same session: once it is read, the forgery was handled.
    await mallory.send(bob.username, 1, encodeEnvelope({ v: 1, id: 'm1', text: 'hi bob', sentAt: 1 }));
    await until(async () => (await bob.history(mallory.username)).length === 1, 'bob reads mallory');
    // Then an honest change from Alice still applies.
    await alice.renameGroup(g.conversation, 'Secure 2');
    await until(async () => (await bob.group(g.conversation)).title === 'Secure 2', 'bob takes the honest rename');
    const seen = await bob.group(g.conversation);
    assert.deepEqual(seen.admins, [alice.username]);
    assert.ok(!(await bob.history(g.conversation)).some((m) => /Owned|an admin/.test(m.text)), 'no trace of the forged promotion');
  } finally {
    mallory.close();
  }
});
