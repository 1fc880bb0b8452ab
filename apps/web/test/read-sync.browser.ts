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
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { openHomeStore } from '@tacit/client/node';
import { Cli, DESKTOP, Profile, ServerProcess, assertBuilt, freePort, tempDir } from './harness.ts';
import * as ui from './ui.ts';

/** The web harness's CLI passphrase (harness.ts `Cli`). */
const CLI_PASSPHRASE = 'browser-test passphrase';

describe('read state synced between the web page and the CLI of one account', { timeout: 15 * 60_000 }, () => {
  let server: ServerProcess;
  const browser = new Profile('rs-alice-browser', DESKTOP);
  const aliceHome = tempDir('rs-alice');
  const bobHome = tempDir('rs-bob');
  const alice = new Cli(aliceHome);
  const bob = new Cli(bobHome);
  const dataDir = tempDir('rs-server');

  before(async () => {
    assertBuilt();
    server = new ServerProcess(dataDir, await freePort(), 'open');
    await server.start();
  });

  after(async () => {
    await browser.close().catch(() => undefined);
    await server?.stop();
    const errors = browser.pageErrors;
    browser.destroy();
    for (const d of [aliceHome, bobHome, dataDir]) rmSync(d, { recursive: true, force: true });
    assert.deepEqual(errors, [], 'no uncaught errors in the page');
  });

  const events = (out: string): Record<string, unknown>[] =>
    out
      .split('\n')
      .filter((l) => l.trim().startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const ok = async (cli: Cli, ...args: string[]): Promise<Record<string, unknown>[]> => {
    const r = await cli.run(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return events(r.stdout);
  };
  const messages = (evs: Record<string, unknown>[]): string[] => evs.filter((e) => e['event'] === 'message').map((e) => String(e['text']));
  const historyOf = async (cli: Cli, who: string) => (await ok(cli, 'history', who)).filter((e) => e['event'] === 'history' && e['system'] !== true);
  /** Polls a page expression (waitForFunction would need eval, which the page's CSP refuses). */
  const until = async (expr: string): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      if ((await browser.page.evaluate(expr)) === true) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`timed out waiting for ${expr}`);
  };
  /** Bob's client learns alice read `text` (his `recv` takes her receipt); the page sent its read sync before it. */
  const bobSeesRead = async (text: string): Promise<void> => {
    for (let i = 0; i < 60; i++) {
      await ok(bob, 'recv');
      if ((await historyOf(bob, 'alice')).find((e) => e['text'] === text)?.['delivery'] === 'read') return;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.fail(`bob never saw "${text}" read`);
  };
  const setHidden = async (hidden: boolean): Promise<void> => {
    await browser.page.evaluate(`(() => {
      Object.defineProperty(document, 'visibilityState', { get: () => '${hidden ? 'hidden' : 'visible'}', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    })()`);
  };

  it('read on the web page: read on the CLI device; read on the CLI: unread, title, badge and notification clear on the page', async () => {
    for (const [cli, name] of [[alice, 'alice'], [bob, 'bob']] as const) assert.equal((await cli.run('register', name, '--server', server.url)).code, 0);
    const p = await browser.open(server.url);
    await browser.context!.grantPermissions(['notifications'], { origin: server.url });
    // Record what the page hands to Notification, and which notifications it closes.
    await p.evaluate(`(() => {
      window.__notes = [];
      window.__closed = [];
      const Real = window.Notification;
      const close = Real.prototype.close;
      Real.prototype.close = function () { window.__closed.push(this.tag); return close.call(this); };
      function Recorder(title, options) {
        window.__notes.push({ title, body: options && options.body, tag: options && options.tag });
        return new Real(title, options);
      }
      Object.defineProperty(Recorder, 'permission', { get: () => Real.permission });
      Recorder.requestPermission = (...args) => Real.requestPermission(...args);
      window.Notification = Recorder;
    })()`);
    await p.getByRole('button', { name: 'Link to an existing account' }).click();
    await p.getByLabel('Name of this device').fill('laptop browser');
    await p.getByRole('button', { name: 'Show a link code' }).click();
    const code = ((await p.getByTestId('link-code').textContent()) ?? '').trim();
    await ok(alice, 'devices', 'add', code);
    await p.getByTestId('me').filter({ hasText: 'alice' }).waitFor();
    await p.getByRole('link', { name: 'Settings' }).click();
    await p.getByTestId('notify-on').click();
    await p.getByTestId('notify-state').filter({ hasText: /^On/ }).waitFor();
    // Sessions between the two devices of alice (each one's transcript to the other).
    await ok(alice, 'send', 'bob', 'hello from the terminal');
    await ui.toList(p);
    await ui.openConversation(p, 'bob');
    await ui.waitOutgoing(p, 'hello from the terminal');
    await ui.send(p, 'hello from the browser');
    await ui.waitOutgoing(p, 'hello from the browser');
    await ok(bob, 'recv');
    await ok(alice, 'recv');

    // 1. The conversation is open on the page: bob's message is shown, so read there.
    await ok(bob, 'send', 'alice', 'read me on the web');
    await ui.waitIncoming(p, 'read me on the web');
    await bobSeesRead('read me on the web');
    const got = await ok(alice, 'recv');
    assert.deepEqual(messages(got), [], 'nothing new for the CLI to print: it was read on the web page');
    assert.deepEqual(got.filter((e) => e['event'] === 'read-sync').map((e) => [e['conversation'], e['count']]), [['u:bob', 1]]);
    assert.equal((await historyOf(alice, 'bob')).find((e) => e['text'] === 'read me on the web')?.['read'], true);
    assert.equal((await ok(alice, 'contacts')).find((e) => e['username'] === 'bob')?.['unread'], 0);

    // 2. The page is in the background, on the list: bob's next message is unread there, notified.
    await ui.toList(p);
    await setHidden(true);
    await ok(bob, 'send', 'alice', 'read me on the terminal');
    await ui.waitUnread(p, 'bob', 1);
    await until('window.__notes.some((n) => n.body === "read me on the terminal")');
    await until('document.title === "(1) tacit"');
    assert.equal(await p.locator('link[rel="icon"]').getAttribute('data-badge'), '1');
    // Alice reads it on the terminal: the hidden page learns it and clears everything.
    assert.deepEqual(messages(await ok(alice, 'recv')), ['read me on the terminal']);
    await until('document.title === "tacit"');
    assert.equal(await ui.unreadCount(p, 'bob'), 0);
    assert.equal(await p.locator('link[rel="icon"]').getAttribute('data-badge'), '0');
    await until('window.__closed.includes("u:bob")');
    await setHidden(false);
  });

  it('disappearing: a read on the web page starts the timer on the CLI device; its store no longer holds the message after it', async () => {
    const p = browser.page;
    await ok(bob, 'timer', 'alice', '20s');
    await ok(alice, 'recv');
    await ui.openConversation(p, 'bob');
    await ok(bob, 'send', 'alice', 'vanishes after the web read it');
    await ui.waitIncoming(p, 'vanishes after the web read it');
    await bobSeesRead('vanishes after the web read it');
    const holds = async (): Promise<boolean> => {
      const store = await openHomeStore({ home: aliceHome, passphrase: CLI_PASSPHRASE }, false);
      try {
        const needle = Buffer.from('vanishes after the web read it', 'utf8');
        return (await store.list('')).some((r) => Buffer.from(r.value).includes(needle));
      } finally {
        await store.close();
      }
    };
    // The CLI device takes it and the read sync together: read, its clock running, nothing to print.
    const got = await ok(alice, 'recv');
    assert.deepEqual(messages(got), []);
    const h = (await historyOf(alice, 'bob')).find((e) => e['text'] === 'vanishes after the web read it');
    if (h !== undefined) {
      assert.equal(h['read'], true);
      assert.equal(typeof h['expiresAt'], 'number');
    }
    // Every later command deletes what ran out before it reads anything (the timer began on the web).
    for (let i = 0; i < 60 && (await holds()); i++) {
      await new Promise((r) => setTimeout(r, 500));
      await ok(alice, 'history', 'bob');
    }
    assert.equal(await holds(), false, 'the CLI device\u2019s store no longer holds it');
    // And the page, which read it, removed it too.
    await p.locator('li.msg').filter({ hasText: 'vanishes after the web read it' }).waitFor({ state: 'detached' });
  });
});
