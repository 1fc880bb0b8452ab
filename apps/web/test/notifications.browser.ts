/**
 * Notifications in the browser, end to end: a real server process, alice in Chromium and bob on
 * the CLI. Permission is asked from the Settings button; with the page hidden, bob's message
 * shows a notification (with its text, then without it once alice turns the text off); the tab
 * title and the favicon badge carry the unread count. The page's Notification constructor is
 * wrapped to record what it is given (headless Chromium shows nothing on screen).
 * Screenshot: docs/screenshots/notifications-settings.png.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, Profile, screenshot } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('notifications in the web client', { timeout: 10 * 60_000 }, () => {
  const alice = new Profile('n-alice', DESKTOP);
  const web = browserSuite('n', { profiles: [alice] });
  const bob = web.cli('bob');

  it('asked on a click in Settings; a message to a hidden page notifies, with or without its text; title and favicon count unread', async () => {
    const a = await alice.open(web.server.url);
    await alice.context!.grantPermissions(['notifications'], { origin: web.server.url });
    // Record what the page hands to Notification.
    await ui.recordNotifications(a);
    await ui.register(a, 'alice');
    assert.equal((await bob.run('register', 'bob', '--server', web.server.url)).code, 0);
    await a.getByRole('link', { name: 'Settings' }).click();
    await a.getByTestId('notify-state').filter({ hasText: /^Off/ }).waitFor();
    await a.getByTestId('notify-on').click();
    await a.getByTestId('notify-state').filter({ hasText: /^On/ }).waitFor();
    await screenshot(a, 'notifications-settings');

    // The page goes to the background.
    await ui.setVisibility(a, 'hidden');
    assert.equal((await bob.run('send', 'alice', 'ping alice')).code, 0);
    await ui.until(a, 'window.__notes.length === 1');
    assert.deepEqual(await ui.notes(a), [{ title: 'bob', body: 'ping alice', tag: 'u:bob' }]);
    await ui.until(a, 'document.title === "(1) tacit"');
    assert.equal(await a.locator('link[rel="icon"]').getAttribute('data-badge'), '1');
    assert.match((await a.locator('link[rel="icon"]').getAttribute('href')) ?? '', /^data:image\/png;base64,/);

    // Text hidden: only who wrote.
    await a.getByTestId('notify-text').uncheck();
    assert.equal((await bob.run('send', 'alice', 'the secret plan')).code, 0);
    await ui.until(a, 'window.__notes.length === 2');
    assert.deepEqual((await ui.notes(a))[1], { title: 'bob', body: 'New message', tag: 'u:bob' });
    await ui.until(a, 'document.title === "(2) tacit"');
    assert.equal(await a.locator('link[rel="icon"]').getAttribute('data-badge'), '2');

    // Visible again and the conversation read: no notification, badge and title back to none.
    await ui.setVisibility(a, 'visible');
    await ui.toList(a);
    await ui.openConversation(a, 'bob');
    await ui.waitIncoming(a, 'the secret plan');
    await ui.until(a, 'document.title === "tacit"');
    assert.equal(await a.locator('link[rel="icon"]').getAttribute('data-badge'), '0');
    assert.equal((await bob.run('send', 'alice', 'while you look')).code, 0);
    await ui.waitIncoming(a, 'while you look');
    assert.equal((await ui.notes(a)).length, 2, 'no notification while the page is visible');
  });
});
