/**
 * Signing out of a linked browser, end to end: alice on the CLI links a browser; its Sign out
 * confirmation says it removes this browser from alice's devices; signing out removes it on the
 * server (the CLI's `tacit devices` no longer lists it) and deletes the browser's data (the page
 * starts over). A second browser signs out while the server is down: its data is deleted anyway
 * and the page says to remove it from another device, which the CLI then does.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, Profile, events } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('signing out of a linked browser', { timeout: 15 * 60_000 }, () => {
  const first = new Profile('so-first', DESKTOP);
  const second = new Profile('so-second', DESKTOP);
  const web = browserSuite('so', { profiles: [first, second] });
  const alice = web.cli('alice');

  const deviceIds = async (): Promise<unknown[]> => {
    const r = await alice.run('devices');
    assert.equal(r.code, 0, r.stderr);
    return events(r.stdout).filter((e) => e['event'] === 'device').map((e) => e['deviceId']);
  };
  const link = async (profile: Profile, name: string) => {
    const p = await profile.open(web.server.url);
    const code = await ui.showLinkCode(p, name);
    const added = await alice.run('devices', 'add', code);
    assert.equal(added.code, 0, added.stderr);
    await p.getByTestId('me').filter({ hasText: 'alice' }).waitFor();
    return p;
  };

  it('the linked browser signs out: it leaves alice\u2019s devices and its data is deleted', async () => {
    const r = await alice.run('register', 'alice', '--server', web.server.url);
    assert.equal(r.code, 0, r.stderr);
    const p = await link(first, 'laptop browser');
    assert.deepEqual(await deviceIds(), [1, 2]);
    await p.getByRole('button', { name: 'Sign out' }).click();
    await p.getByTestId('sign-out-warning').filter({ hasText: /removes this browser from alice\u2019s devices/ }).waitFor();
    await p.getByRole('button', { name: 'Delete keys and sign out' }).click();
    // The page starts over with nothing stored.
    await p.getByLabel('Username').waitFor();
    assert.deepEqual(await deviceIds(), [1]);
  });

  it('signing out while the server is down deletes the data and says to remove the browser elsewhere', async () => {
    const p = await link(second, 'desk browser');
    const ids = await deviceIds();
    assert.equal(ids.length, 2);
    const id = ids[1];
    await p.getByRole('button', { name: 'Sign out' }).click();
    await web.server.stop();
    try {
      await p.getByRole('button', { name: 'Delete keys and sign out' }).click();
      const message = p.getByTestId('signed-out-message');
      await message.waitFor();
      assert.match((await message.textContent()) ?? '', /could not be removed from alice\u2019?'?s devices \(the server could not be reached\).*remove this one on another device/);
    } finally {
      await web.server.start();
    }
    // Still on the account until another device removes it.
    assert.deepEqual(await deviceIds(), [1, id]);
    assert.equal((await alice.run('devices', 'remove', String(id))).code, 0);
    assert.deepEqual(await deviceIds(), [1]);
    // The browser's data is gone: continuing starts over.
    await p.getByRole('button', { name: 'Continue' }).click();
    await p.getByLabel('Username').waitFor();
  });
});
