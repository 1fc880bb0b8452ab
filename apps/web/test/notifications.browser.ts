/**
 * Notifications in the browser, end to end: a real server process, alice in Chromium and bob on
 * the CLI. Permission is asked from the Settings button; with the page hidden, bob's message
 * shows a notification (with its text, then without it once alice turns the text off); the tab
 * title and the favicon badge carry the unread count. The page's Notification constructor is
 * wrapped to record what it is given (headless Chromium shows nothing on screen).
 * Screenshot: docs/screenshots/notifications-settings.png.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Cli, DESKTOP, Profile, ServerProcess, assertBuilt, freePort, screenshot, tempDir } from './harness.ts';
import * as ui from './ui.ts';

describe('notifications in the web client', { timeout: 10 * 60_000 }, () => {
  let server: ServerProcess;
  const alice = new Profile('n-alice', DESKTOP);
  const bobHome = tempDir('n-bob');
  const bob = new Cli(bobHome);
  const dataDir = tempDir('n-server');

  before(async () => {
    assertBuilt();
    server = new ServerProcess(dataDir, await freePort(), 'open');
    await server.start();
  });

  after(async () => {
    await alice.close().catch(() => undefined);
    await server?.stop();
    const errors = alice.pageErrors;
    alice.destroy();
    for (const d of [bobHome, dataDir]) rmSync(d, { recursive: true, force: true });
    assert.deepEqual(errors, [], 'no uncaught errors in the page');
  });

  /** Polls a page expression (waitForFunction would need eval, which the page's CSP refuses). */
  const until = async (expr: string): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      if ((await alice.page.evaluate(expr)) === true) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`timed out waiting for ${expr}`);
  };
  const notes = (): Promise<{ title: string; body: string; tag: string }[]> => alice.page.evaluate('window.__notes');

  it('asked on a click in Settings; a message to a hidden page notifies, with or without its text; title and favicon count unread', async () => {
    const a = await alice.open(server.url);
    await alice.context!.grantPermissions(['notifications'], { origin: server.url });
    // Record what the page hands to Notification (as a string: tsx would wrap a function).
    await a.evaluate(`(() => {
      window.__notes = [];
      const Real = window.Notification;
      function Recorder(title, options) {
        window.__notes.push({ title, body: options && options.body, tag: options && options.tag });
        return new Real(title, options);
      }
      Object.defineProperty(Recorder, 'permission', { get: () => Real.permission });
      Recorder.requestPermission = (...args) => Real.requestPermission(...args);
      window.Notification = Recorder;
    })()`);
    await ui.register(a, 'alice');
    assert.equal((await bob.run('register', 'bob', '--server', server.url)).code, 0);
    await a.getByRole('link', { name: 'Settings' }).click();
    await a.getByTestId('notify-state').filter({ hasText: /^Off/ }).waitFor();
    await a.getByTestId('notify-on').click();
    await a.getByTestId('notify-state').filter({ hasText: /^On/ }).waitFor();
    await screenshot(a, 'notifications-settings');

    // The page goes to the background.
    await a.evaluate(`(() => {
      Object.defineProperty(document, 'visibilityState', { get: () => 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    })()`);
    assert.equal((await bob.run('send', 'alice', 'ping alice')).code, 0);
    await until('window.__notes.length === 1');
    assert.deepEqual(await notes(), [{ title: 'bob', body: 'ping alice', tag: 'u:bob' }]);
    await until('document.title === "(1) tacit"');
    assert.equal(await a.locator('link[rel="icon"]').getAttribute('data-badge'), '1');
    assert.match((await a.locator('link[rel="icon"]').getAttribute('href')) ?? '', /^data:image\/png;base64,/);

    // Text hidden: only who wrote.
    await a.getByTestId('notify-text').uncheck();
    assert.equal((await bob.run('send', 'alice', 'the secret plan')).code, 0);
    await until('window.__notes.length === 2');
    assert.deepEqual((await notes())[1], { title: 'bob', body: 'New message', tag: 'u:bob' });
    await until('document.title === "(2) tacit"');
    assert.equal(await a.locator('link[rel="icon"]').getAttribute('data-badge'), '2');

    // Visible again and the conversation read: no notification, badge and title back to none.
    await a.evaluate(`(() => {
      Object.defineProperty(document, 'visibilityState', { get: () => 'visible', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    })()`);
    await ui.toList(a);
    await ui.openConversation(a, 'bob');
    await ui.waitIncoming(a, 'the secret plan');
    await until('document.title === "tacit"');
    assert.equal(await a.locator('link[rel="icon"]').getAttribute('data-badge'), '0');
    assert.equal((await bob.run('send', 'alice', 'while you look')).code, 0);
    await ui.waitIncoming(a, 'while you look');
    assert.equal((await notes()).length, 2, 'no notification while the page is visible');
  });
});
