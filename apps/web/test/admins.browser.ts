/**
 * Group admins in the browser, end to end: a real server process, alice in Chromium, bob and
 * carol on the CLI. On the Members screen alice makes bob an admin (bob then renames the group
 * from the terminal, and the page follows), takes it away again ("Remove admin"; bob is refused
 * from then on), and, once carol is an admin too, gives up her own admin rights: the buttons go.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, events, Profile } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('group admins in the web client', { timeout: 15 * 60_000 }, () => {
  const alice = new Profile('ga-alice', DESKTOP);
  const web = browserSuite('ga', { profiles: [alice] });
  const bob = web.cli('bob');
  const carol = web.cli('carol');
  let group = '';

  it('alice creates a group with bob and carol (terminal) and makes bob an admin on the Members screen', async () => {
    const a = await alice.open(web.server.url);
    await ui.register(a, 'alice');
    for (const [cli, name] of [[bob, 'bob'], [carol, 'carol']] as const) {
      const r = await cli.run('register', name, '--server', web.server.url);
      assert.equal(r.code, 0, r.stderr);
    }
    await a.getByTestId('new-group').click();
    await a.getByLabel('Title').fill('Ops');
    await a.getByLabel('Members').fill('bob, carol');
    await a.getByRole('button', { name: 'Create group' }).click();
    await a.locator('#conv-title').filter({ hasText: 'Ops' }).waitFor();
    group = (await a.evaluate(() => location.hash)).replace('#/g/', '');
    assert.match(group, /^[0-9a-f]{32}$/);

    await a.getByTestId('members-link').click();
    await a.locator('[data-member="bob"]').waitFor();
    // Alice is the only admin: she cannot unmake herself, so she has no "Remove admin" button.
    assert.equal(await a.getByTestId('remove-admin').count(), 0);
    await a.getByRole('button', { name: 'Make bob an admin' }).click();
    await a.locator('[data-member="bob"] .badge').filter({ hasText: 'admin' }).waitFor();
    await a.getByRole('button', { name: 'Remove admin rights of alice' }).waitFor();

    const r = await bob.run('recv');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(events(r.stdout).some((e) => e['system'] === true && e['text'] === 'alice made you an admin'), r.stdout);
  });

  it('bob, an admin now, renames from the terminal; the page follows', async () => {
    const r = await bob.run('group', 'rename', `g:${group}`, 'Ops team');
    assert.equal(r.code, 0, r.stderr);
    await alice.page.locator('#members-title').filter({ hasText: 'Ops team' }).waitFor();
  });

  it('"Remove admin" takes it away: bob is refused from then on', async () => {
    const a = alice.page;
    await a.getByRole('button', { name: 'Remove admin rights of bob' }).click();
    await a.getByRole('button', { name: 'Make bob an admin' }).waitFor();
    assert.equal(await a.locator('[data-member="bob"] .badge').filter({ hasText: 'admin' }).count(), 0);
    const seen = await bob.run('recv');
    assert.ok(events(seen.stdout).some((e) => e['system'] === true && e['text'] === 'alice removed you as an admin'), seen.stdout);
    const r = await bob.run('group', 'rename', `g:${group}`, 'Mine');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /only an admin/);
  });

  it('alice makes carol an admin and gives up her own rights: the admin buttons go', async () => {
    const a = alice.page;
    await a.getByRole('button', { name: 'Make carol an admin' }).click();
    await a.getByRole('button', { name: 'Remove admin rights of alice' }).click();
    await a.locator('[data-member="alice"] .badge').filter({ hasText: 'admin' }).waitFor({ state: 'detached' });
    assert.equal(await a.getByTestId('make-admin').count(), 0);
    assert.equal(await a.getByTestId('remove-admin').count(), 0);
    const r = await carol.run('group', 'members', `g:${group}`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(events(r.stdout).filter((e) => e['admin'] === true).map((e) => e['username']), ['carol']);
  });
});
