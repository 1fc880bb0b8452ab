/**
 * Muting in the browser, end to end: alice in Chromium (notifications on), bob and carol on the
 * CLI. Alice mutes bob from the conversation header's menu (1 hour); the list shows the muted
 * icon. With the page hidden, bob's next message raises no notification and no title or favicon
 * count, while his unread badge shows; carol's raises both. After Unmute, bob's next message
 * notifies. Screenshot: docs/screenshots/mute.png.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, Profile, screenshot } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('muting in the web client', { timeout: 10 * 60_000 }, () => {
  const alice = new Profile('m-alice', DESKTOP);
  const web = browserSuite('m', { profiles: [alice] });
  const cli = { bob: web.cli('bob'), carol: web.cli('carol') };
  const { bob, carol } = cli;

  it('mute from the header: no notification or title count for bob while his unread badge shows; unmute and the next one notifies', async () => {
    const a = await alice.open(web.server.url);
    await alice.context!.grantPermissions(['notifications'], { origin: web.server.url });
    await ui.recordNotifications(a);
    await ui.register(a, 'alice');
    await ui.ok(bob.run('register', 'bob', '--server', web.server.url));
    await ui.ok(carol.run('register', 'carol', '--server', web.server.url));
    await a.getByRole('link', { name: 'Settings' }).click();
    await a.getByTestId('notify-on').click();
    await a.getByTestId('notify-state').filter({ hasText: /^On/ }).waitFor();
    await ui.ok(bob.run('send', 'alice', 'hello alice'));
    await ui.ok(carol.run('send', 'alice', 'hi from carol'));
    await ui.toList(a);
    await ui.openConversation(a, 'bob');
    await ui.waitIncoming(a, 'hello alice');

    await a.getByTestId('mute').click();
    const menu = a.getByTestId('mute-menu');
    assert.deepEqual(await menu.getByRole('menuitem').allTextContents(), ['1 hour', '8 hours', '1 day', '7 days', 'Always']);
    await menu.getByRole('menuitem', { name: '1 hour' }).click();
    await a.getByTestId('muted-until').filter({ hasText: /^🔕 Muted until / }).waitFor();
    await a.locator('a.conv[data-contact="bob"]').getByTestId('muted-badge').waitFor();
    assert.equal(await a.locator('a.conv[data-contact="carol"]').getByTestId('muted-badge').count(), 0);
    await screenshot(a, 'mute');

    // In the background: bob's message is stored and counted, but alerts nothing.
    await ui.toList(a);
    await ui.openConversation(a, 'carol');
    await ui.waitIncoming(a, 'hi from carol');
    await ui.toList(a);
    await ui.until(a, 'document.title === "tacit"');
    await ui.setVisibility(a, 'hidden');
    await ui.ok(bob.run('send', 'alice', 'muted ping'));
    await ui.waitUnread(a, 'bob', 1);
    // carol's later message proves the page handled bob's before it.
    await ui.ok(carol.run('send', 'alice', 'carol rings'));
    await ui.until(a, 'window.__notes.length === 1');
    assert.deepEqual(await ui.notes(a), [{ title: 'carol', body: 'carol rings', tag: 'u:carol' }], 'no notification for the muted conversation');
    await ui.until(a, 'document.title === "(1) tacit"');
    assert.equal(await a.locator('link[rel="icon"]').getAttribute('data-badge'), '1', 'the favicon counts carol only');
    assert.equal(await ui.unreadCount(a, 'bob'), 1, 'the unread badge still shows');

    // Unmuted: the next one notifies.
    await ui.setVisibility(a, 'visible');
    await ui.openConversation(a, 'bob');
    await a.getByTestId('unmute').click();
    await a.getByTestId('mute').waitFor();
    await a.locator('a.conv[data-contact="bob"]').getByTestId('muted-badge').waitFor({ state: 'detached' });
    await ui.toList(a);
    await ui.setVisibility(a, 'hidden');
    await ui.ok(bob.run('send', 'alice', 'loud ping'));
    await ui.until(a, 'window.__notes.length === 2');
    assert.deepEqual((await ui.notes(a))[1], { title: 'bob', body: 'loud ping', tag: 'u:bob' });
  });

  it('a timed mute ends on time: the list\'s 🔕 and the header\'s "Muted until" go when it expires, the next one later', async () => {
    // The page's clock is Playwright's (it runs on by itself; fastForward jumps it and fires the
    // timers that fall due), so an hour passes at once. Nothing else redraws the page meanwhile.
    const a = alice.page!;
    await alice.context!.clock.install();
    await a.reload();
    await ui.toList(a);
    await ui.openConversation(a, 'carol');
    await a.getByTestId('mute').click();
    await a.getByTestId('mute-menu').getByRole('menuitem', { name: '8 hours' }).click();
    await a.getByTestId('muted-until').waitFor();
    await ui.toList(a);
    await ui.openConversation(a, 'bob');
    await a.getByTestId('mute').click();
    await a.getByTestId('mute-menu').getByRole('menuitem', { name: '1 hour' }).click();
    await a.getByTestId('muted-until').filter({ hasText: /^🔕 Muted until / }).waitFor();
    const badge = (who: string) => a.locator(`a.conv[data-contact="${who}"]`).getByTestId('muted-badge');
    await badge('bob').waitFor();
    await badge('carol').waitFor();

    await alice.context!.clock.fastForward('01:00:01');
    await a.getByTestId('muted-until').waitFor({ state: 'detached' });
    await a.getByTestId('mute').waitFor();
    await badge('bob').waitFor({ state: 'detached' });
    assert.equal(await badge('carol').count(), 1, "carol's mute runs on");

    // The timer was set again for carol's end.
    await alice.context!.clock.fastForward('07:00:00');
    await badge('carol').waitFor({ state: 'detached' });
    await ui.openConversation(a, 'carol');
    await a.getByTestId('mute').waitFor();
    assert.equal(await a.getByTestId('muted-until').count(), 0);
  });
});
