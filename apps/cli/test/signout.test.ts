// `tacit sign-out` through a real server: a linked laptop that signs out leaves alice's device
// list, bob's next message to alice is encrypted to one device only, and the laptop's home is
// gone; the account's only device signs out without leaving the account (the name stays taken);
// with the server down the local state is still deleted and the output says to remove the device
// from another one; without --yes nothing is changed; two homes of one account signing out at once
// leave the account one device (the server refuses removing the last one).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ChatProcess, ok, recv, serverWithUsers, tacit } from './harness.ts';

let env: Awaited<ReturnType<typeof serverWithUsers>>;

before(async () => {
  env = await serverWithUsers('signout', ['alice', 'bob', 'carol']);
});
after(async () => {
  await env?.remove();
});

/** Links a new home to the account in `existing` and returns its path. */
async function linkHome(existing: string, name: string): Promise<string> {
  const home = join(env.dir, name);
  const link = new ChatProcess(home, '', [], ['link', '--server', env.server.url, '--name', name]);
  await link.waitFor(() => link.count('link-code') === 1, 'the link code');
  const code = String(link.events.find((e) => e['event'] === 'link-code')!['code']);
  await ok(existing, ['devices', 'add', code]);
  await link.waitFor(() => link.count('linked') === 1, 'linked');
  assert.equal(await link.end(), 0);
  return home;
}

const deviceIds = async (home: string): Promise<unknown[]> => (await ok(home, ['devices'])).filter((e) => e['event'] === 'device').map((d) => d['deviceId']);
const sentTo = async (from: string, to: string, text: string): Promise<unknown> => (await ok(from, ['send', to, text])).find((e) => e['event'] === 'sent')?.['devices'];

test('sign-out on a linked laptop removes it from the account and deletes its home', async () => {
  const { alice, bob } = env.homes as { alice: string; bob: string };
  const laptop = await linkHome(alice, 'laptop');
  assert.deepEqual(await deviceIds(alice), [1, 2]);
  assert.equal(await sentTo(bob, 'alice', 'to both'), 2);
  // Without --yes (and no terminal to ask on) nothing is changed.
  const unconfirmed = await tacit(laptop, ['--json', 'sign-out']);
  assert.equal(unconfirmed.code, 2);
  assert.match(unconfirmed.stderr + unconfirmed.stdout, /--yes/);
  assert.ok(existsSync(join(laptop, 'state.db')));

  const out = (await ok(laptop, ['sign-out', '--yes'])).find((e) => e['event'] === 'signed-out');
  assert.deepEqual([out?.['username'], out?.['deviceId'], out?.['unlinked'], out?.['server'], out?.['kept']], ['alice', 2, true, 'unlinked', []]);
  assert.equal(existsSync(laptop), false);
  assert.deepEqual(await deviceIds(alice), [1]);
  assert.equal(await sentTo(bob, 'alice', 'to one'), 1);
  assert.deepEqual(await recv(alice), ['bob: to both', 'bob: to one']);
  // The home is gone: the CLI says there is no account here.
  assert.equal((await tacit(laptop, ['--json', 'recv'])).code, 3);
});

test('sign-out while the server is down: the local state is deleted and the output says to remove the device elsewhere', async () => {
  const { alice } = env.homes as { alice: string };
  const desk = await linkHome(alice, 'desk');
  const id = (await deviceIds(alice)).at(-1);
  await env.server.stop();
  let r;
  try {
    r = await tacit(desk, ['sign-out', '--yes']);
  } finally {
    await env.server.restart();
  }
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`could not remove device ${String(id)} of alice from the account .*remove it from another device \\(tacit devices remove ${String(id)}`));
  assert.match(r.stdout, /deleted /);
  assert.equal(existsSync(desk), false);
  // Still on the account until removed from the first device.
  assert.deepEqual(await deviceIds(alice), [1, id]);
  await ok(alice, ['devices', 'remove', String(id)]);
  assert.deepEqual(await deviceIds(alice), [1]);
});

test("sign-out on the account's only device keeps the account registered", async () => {
  const { bob } = env.homes as { bob: string };
  const r = await tacit(bob, ['sign-out', '--yes']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /only device.*username stays taken/);
  assert.equal(existsSync(bob), false);
  // The name stays taken: registering it again is refused.
  const again = await tacit(join(env.dir, 'bob-again'), ['--json', 'register', 'bob', '--server', env.server.url]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr + again.stdout, /taken|exists|USERNAME/i);
  // And alice still finds bob's device on the server: a message to bob is encrypted to it.
  assert.equal(await sentTo(env.homes['alice']!, 'bob', 'still there?'), 1);
});

test('two homes of one account signing out at once: one leaves, the other stays the account\'s device', async () => {
  const { alice, carol } = env.homes as { alice: string; carol: string };
  const tablet = await linkHome(alice, 'tablet');
  assert.deepEqual(await deviceIds(alice), [1, 2]);
  const outs = await Promise.all([alice, tablet].map(async (home) => (await ok(home, ['sign-out', '--yes'])).find((e) => e['event'] === 'signed-out')?.['server']));
  assert.deepEqual(outs.sort(), ['only-device', 'unlinked']);
  // The account kept exactly one device: carol's message to alice is encrypted to it.
  assert.equal(await sentTo(carol, 'alice', 'anyone there?'), 1);
});
