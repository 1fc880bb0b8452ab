/**
 * Read state between the devices of one account, end to end: a real server process, alice on the
 * CLI and in Chromium (linked), bob on the CLI. Alice reads bob's message on the web page: her
 * CLI device has it read (`history --json`, `contacts` unread, `recv` has nothing new to print).
 * Alice reads on the CLI: the web page's unread count, tab title and favicon badge drop to none
 * and its notification for the conversation is closed, while the page stayed hidden (so only the
 * read sync can have read it). In a disappearing conversation, a read on the web page starts the
 * timer on the CLI device, whose store no longer holds the message after it (the store is opened
 * and inspected, not the screen).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openHomeStore } from '@tacit/client/node';
import { CLI_PASSPHRASE, DESKTOP, Profile, type Cli } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('read state synced between the web page and the CLI of one account', { timeout: 15 * 60_000 }, () => {
  const browser = new Profile('rs-alice-browser', DESKTOP);
  const web = browserSuite('rs', { profiles: [browser] });
  const alice = web.cli('alice');
  const bob = web.cli('bob');

  const messages = (evs: Record<string, unknown>[]): string[] => evs.filter((e) => e['event'] === 'message').map((e) => String(e['text']));
  const historyOf = async (cli: Cli, who: string) => (await cli.ok('history', who)).filter((e) => e['event'] === 'history' && e['system'] !== true);
  /** Bob's client learns alice read `text` (his `recv` takes her receipt); the page sent its read sync before it. */
  const bobSeesRead = async (text: string): Promise<void> => {
    for (let i = 0; i < 60; i++) {
      await bob.ok('recv');
      if ((await historyOf(bob, 'alice')).find((e) => e['text'] === text)?.['delivery'] === 'read') return;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.fail(`bob never saw "${text}" read`);
  };

  it('read on the web page: read on the CLI device; read on the CLI: unread, title, badge and notification clear on the page', async () => {
    for (const [cli, name] of [[alice, 'alice'], [bob, 'bob']] as const) assert.equal((await cli.run('register', name, '--server', web.server.url)).code, 0);
    const p = await browser.open(web.server.url);
    await browser.context!.grantPermissions(['notifications'], { origin: web.server.url });
    // Record what the page hands to Notification, and which notifications it closes.
    await ui.recordNotifications(p, { closes: true });
    const code = await ui.showLinkCode(p, 'laptop browser');
    await alice.ok('devices', 'add', code);
    await p.getByTestId('me').filter({ hasText: 'alice' }).waitFor();
    await p.getByRole('link', { name: 'Settings' }).click();
    await p.getByTestId('notify-on').click();
    await p.getByTestId('notify-state').filter({ hasText: /^On/ }).waitFor();
    // Sessions between the two devices of alice (each one's transcript to the other).
    await alice.ok('send', 'bob', 'hello from the terminal');
    await ui.toList(p);
    await ui.openConversation(p, 'bob');
    await ui.waitOutgoing(p, 'hello from the terminal');
    await ui.send(p, 'hello from the browser');
    await ui.waitOutgoing(p, 'hello from the browser');
    await bob.ok('recv');
    await alice.ok('recv');

    // 1. The conversation is open on the page: bob's message is shown, so read there.
    await bob.ok('send', 'alice', 'read me on the web');
    await ui.waitIncoming(p, 'read me on the web');
    await bobSeesRead('read me on the web');
    const got = await alice.ok('recv');
    assert.deepEqual(messages(got), [], 'nothing new for the CLI to print: it was read on the web page');
    assert.deepEqual(got.filter((e) => e['event'] === 'read-sync').map((e) => [e['conversation'], e['count']]), [['u:bob', 1]]);
    assert.equal((await historyOf(alice, 'bob')).find((e) => e['text'] === 'read me on the web')?.['read'], true);
    assert.equal((await alice.ok('contacts')).find((e) => e['username'] === 'bob')?.['unread'], 0);

    // 2. The page is in the background, on the list: bob's next message is unread there, notified.
    await ui.toList(p);
    await ui.setVisibility(p, 'hidden');
    await bob.ok('send', 'alice', 'read me on the terminal');
    await ui.waitUnread(p, 'bob', 1);
    await ui.until(p, 'window.__notes.some((n) => n.body === "read me on the terminal")');
    await ui.until(p, 'document.title === "(1) tacit"');
    assert.equal(await p.locator('link[rel="icon"]').getAttribute('data-badge'), '1');
    // Alice reads it on the terminal: the hidden page learns it and clears everything.
    assert.deepEqual(messages(await alice.ok('recv')), ['read me on the terminal']);
    await ui.until(p, 'document.title === "tacit"');
    assert.equal(await ui.unreadCount(p, 'bob'), 0);
    assert.equal(await p.locator('link[rel="icon"]').getAttribute('data-badge'), '0');
    await ui.until(p, 'window.__closed.includes("u:bob")');
    await ui.setVisibility(p, 'visible');
  });

  it('disappearing: a read on the web page starts the timer on the CLI device; its store no longer holds the message after it', async () => {
    const p = browser.page;
    await bob.ok('timer', 'alice', '20s');
    await alice.ok('recv');
    await ui.openConversation(p, 'bob');
    await bob.ok('send', 'alice', 'vanishes after the web read it');
    await ui.waitIncoming(p, 'vanishes after the web read it');
    await bobSeesRead('vanishes after the web read it');
    const holds = async (): Promise<boolean> => {
      const store = await openHomeStore({ home: alice.home, passphrase: CLI_PASSPHRASE }, false);
      try {
        const needle = Buffer.from('vanishes after the web read it', 'utf8');
        return (await store.list('')).some((r) => Buffer.from(r.value).includes(needle));
      } finally {
        await store.close();
      }
    };
    // The CLI device takes it and the read sync together: read, its clock running, nothing to print.
    const got = await alice.ok('recv');
    assert.deepEqual(messages(got), []);
    const h = (await historyOf(alice, 'bob')).find((e) => e['text'] === 'vanishes after the web read it');
    if (h !== undefined) {
      assert.equal(h['read'], true);
      assert.equal(typeof h['expiresAt'], 'number');
    }
    // Every later command deletes what ran out before it reads anything (the timer began on the web).
    for (let i = 0; i < 60 && (await holds()); i++) {
      await new Promise((r) => setTimeout(r, 500));
      await alice.ok('history', 'bob');
    }
    assert.equal(await holds(), false, 'the CLI device\u2019s store no longer holds it');
    // And the page, which read it, removed it too.
    await p.locator('li.msg').filter({ hasText: 'vanishes after the web read it' }).waitFor({ state: 'detached' });
  });
});
