/**
 * Groups in the browser, end to end: a real server process, two Chromium profiles (alice on a
 * desktop layout, bob on a phone layout) and carol on the CLI, in one group of three. Creating a
 * group, who said what, system lines, unread counts, members (add, remove, rename), keyboard
 * sending. Screenshots: docs/screenshots/group-*.png.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, PHONE, Profile, screenshot } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('groups in the web client', { timeout: 15 * 60_000 }, () => {
  const alice = new Profile('g-alice', DESKTOP);
  const bob = new Profile('g-bob', PHONE);
  const web = browserSuite('g', { profiles: [alice, bob] });
  const carol = web.cli('carol');
  const dave = web.cli('dave');
  let group = '';

  const cliEvents = (out: string): Record<string, unknown>[] =>
    out
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('alice creates a group with bob (browser) and carol (terminal)', async () => {
    const a = await alice.open(web.server.url);
    await ui.register(a, 'alice');
    const b = await bob.open(web.server.url);
    await ui.register(b, 'bob');
    for (const [cli, name] of [[carol, 'carol'], [dave, 'dave']] as const) {
      const r = await cli.run('register', name, '--server', web.server.url);
      assert.equal(r.code, 0, r.stderr);
    }
    await a.getByTestId('new-group').click();
    await a.getByLabel('Title').fill('Design');
    await a.getByLabel('Members').fill('bob, carol');
    await screenshot(a, 'group-new-desktop');
    await a.getByRole('button', { name: 'Create group' }).click();
    await a.locator('#conv-title').filter({ hasText: 'Design' }).waitFor();
    group = (await a.evaluate(() => location.hash)).replace('#/g/', '');
    assert.match(group, /^[0-9a-f]{32}$/);
    await a.locator('li.system-line').filter({ hasText: 'alice created the group "Design" with bob, carol' }).waitFor();
    // Keyboard: Enter sends.
    await ui.send(a, 'hello group');
    await ui.waitOutgoing(a, 'hello group');
  });

  it('bob (phone) sees the group with unread counts and who said what; carol answers from the terminal', async () => {
    const b = bob.page;
    await ui.toList(b);
    await ui.waitUnread(b, `g:${group}`, 2);
    assert.match((await b.locator(`a[data-contact="g:${group}"] .conv-name`).textContent()) ?? '', /# Design/);
    const r = await carol.run('recv');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      cliEvents(r.stdout).filter((e) => e['event'] === 'message').map((e) => [e['from'], e['text'], e['groupTitle'], e['system'] ?? false]),
      [
        ['alice', 'alice added you to "Design" (alice, bob, carol)', 'Design', true],
        ['alice', 'hello group', 'Design', false],
      ],
    );
    const s = await carol.run('send', '#design', 'carol from the terminal');
    assert.equal(s.code, 0, s.stderr);
    await ui.waitUnread(b, `g:${group}`, 3);
    await b.locator(`a[data-contact="g:${group}"]`).click();
    await b.locator('li.msg.in[data-from="carol"]').filter({ hasText: 'carol from the terminal' }).waitFor();
    await b.locator('li.msg.in[data-from="alice"]').filter({ hasText: 'hello group' }).waitFor();
    await ui.send(b, 'bob on the phone');
    await ui.waitOutgoing(b, 'bob on the phone');
    await screenshot(b, 'group-conversation-phone');
    const a = alice.page;
    await a.locator('li.msg.in[data-from="bob"]').filter({ hasText: 'bob on the phone' }).waitFor();
    await a.locator('li.msg.in[data-from="carol"]').filter({ hasText: 'carol from the terminal' }).waitFor();
    await screenshot(a, 'group-conversation-desktop');
  });

  it('alice changes the members and the title; everyone sees system lines; the removed member gets nothing after', async () => {
    const a = alice.page;
    await a.getByTestId('members-link').click();
    await a.locator('[data-member="carol"]').waitFor();
    await a.getByLabel('Add members').fill('dave');
    await a.getByRole('button', { name: 'Add', exact: true }).click();
    await a.locator('[data-member="dave"]').waitFor();
    await a.getByRole('button', { name: 'Remove carol' }).click();
    await a.locator('[data-member="carol"]').waitFor({ state: 'detached' });
    await a.getByLabel('Group title').fill('Design team');
    await a.getByRole('button', { name: 'Rename' }).click();
    await a.locator('#members-title').filter({ hasText: 'Design team' }).waitFor();
    await screenshot(a, 'group-members-desktop');
    await a.locator(`a[data-contact="g:${group}"]`).click();
    await ui.send(a, 'after the changes');
    await ui.waitOutgoing(a, 'after the changes');

    const b = bob.page;
    await b.locator('li.system-line').filter({ hasText: 'alice removed carol' }).waitFor();
    await b.locator('li.system-line').filter({ hasText: 'alice renamed the group to "Design team"' }).waitFor();
    await b.locator('li.msg.in[data-from="alice"]').filter({ hasText: 'after the changes' }).waitFor();
    await b.locator('#conv-title').filter({ hasText: 'Design team' }).waitFor();

    const c = cliEvents((await carol.run('recv')).stdout).filter((e) => e['event'] === 'message').map((e) => e['text']);
    assert.deepEqual(c, ['bob on the phone', 'alice added dave', 'alice removed you']);
    const d = cliEvents((await dave.run('recv')).stdout).filter((e) => e['event'] === 'message').map((e) => e['text']);
    assert.deepEqual(d, ['alice added you to "Design" (alice, bob, carol, dave)', 'alice removed carol', 'alice renamed the group to "Design team"', 'after the changes']);
  });
});
