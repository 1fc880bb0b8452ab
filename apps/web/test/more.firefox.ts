/**
 * More of the web client's features in Firefox (Debian's firefox-esr over WebDriver BiDi), end to
 * end through a real tacit server process on an invite-only server, with the other parties on the
 * CLI: receipts (sent → delivered → read, both ways) and typing indicators; disappearing messages
 * (gone from the page and from IndexedDB after the timer); blocking and unblocking (Settings →
 * Blocked); muting (no title count while muted); the Devices page linking a CLI device by its
 * pasted code, read state synced with it both ways, and removing it; the safety number equal to
 * the CLI's; a message typed while the server is down sent once it is back; the admin screen (the
 * first account is the admin; its invite link registers a CLI user). Run with
 * `npm run test:firefox -w @tacit/web` (needs a built app).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Cli, ServerProcess, assertBuilt, freePort, tempDir } from './harness.ts';
import { FirefoxPage, message } from './firefox.ts';

const outState = (text: string, state: 'queued' | 'sent' | 'failed') => `${message('out', text)}?.dataset.state === ${JSON.stringify(state)}`;
/** A page expression: the delivery state (sent, delivered, read) shown on an outgoing message. */
const delivery = (text: string) => `${message('out', text)}?.querySelector('[data-testid="delivery"]')?.dataset.delivery`;
/** A page expression: the open conversation as `dir:text` lines, in display order. */
const TRANSCRIPT = `[...document.querySelectorAll('li.msg')].map((e) => e.dataset.dir + ':' + (e.querySelector('.msg-text')?.textContent ?? ''))`;
/** A page expression: the unread count on a conversation in the list (0 without a badge). */
const unread = (who: string) => `Number(document.querySelector('a[data-contact="${who}"] [data-testid="unread"]')?.textContent ?? 0)`;
/** A page expression: keys of this browser's IndexedDB vault that hold messages (keys are in the clear, values sealed). */
const MESSAGE_RECORDS = `new Promise((res, rej) => {
  const r = indexedDB.open('tacit');
  r.onerror = () => rej(new Error('open'));
  r.onsuccess = () => {
    const k = r.result.transaction('kv', 'readonly').objectStore('kv').getAllKeys();
    k.onsuccess = () => { r.result.close(); res(k.result.map(String).filter((s) => s.startsWith('m/')).length); };
  };
})`;

type Ev = Record<string, unknown>;
const messages = (evs: Ev[]): string[] => evs.filter((e) => e['event'] === 'message').map((e) => String(e['text']));

describe('more of the web client\u2019s features in Firefox', { timeout: 10 * 60_000 }, () => {
  let server: ServerProcess;
  const ff = new FirefoxPage();
  const dirs = ['server', 'bob', 'mallory', 'fern-cli', 'dana', 'erin'].map((n) => tempDir(`ffm-${n}`));
  const [dataDir, bobHome, malloryHome, fernCliHome, danaHome, erinHome] = dirs as [string, string, string, string, string, string];
  const bob = new Cli(bobHome);
  const mallory = new Cli(malloryHome);
  /** fern's second device: a CLI home linked from the Firefox page's Devices screen. */
  const fernCli = new Cli(fernCliHome);
  const dana = new Cli(danaHome);
  const erin = new Cli(erinHome);
  const toList = async () => {
    await ff.route('#/');
    await ff.waitFor(`document.querySelector('#new-conv-name')`, 'the conversation list');
  };
  /** Clicks the button (in `scope`) whose text is `text`. */
  const clickButton = (text: string, scope = 'document') =>
    ff.eval(`(() => {
      const b = [...${scope}.querySelectorAll('button')].find((e) => e.textContent.trim() === ${JSON.stringify(text)});
      if (!b) throw new Error('no button');
      b.click();
      return true;
    })()`);
  /** Types into the composer with the real keyboard and sends with Enter. */
  const send = async (text: string) => {
    await ff.eval(`(document.querySelector('#composer-text').focus(), true)`);
    await ff.type(text, 'Enter');
  };
  /** Bob takes what came; then his last message to fern as his history has it. */
  const bobsLast = async (): Promise<Ev | undefined> => {
    await bob.ok('recv');
    return (await bob.ok('history', 'fern')).filter((e) => e['event'] === 'history' && e['direction'] === 'out').at(-1);
  };
  /** Polls `bobsLast` (bounded) until its delivery is `state`. */
  const bobsLastUntil = async (state: string): Promise<Ev | undefined> => {
    let last: Ev | undefined;
    for (let i = 0; i < 60; i++) {
      last = await bobsLast();
      if (last?.['delivery'] === state) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    return last;
  };

  before(async () => {
    assertBuilt();
    server = new ServerProcess(dataDir, await freePort(), 'invite');
    await server.start();
    await ff.launch();
  });

  after(async () => {
    await ff.close().catch(() => undefined);
    await server?.stop();
    const ffErrors = [...ff.pageErrors];
    const refused = [...new Set(ff.refusedConnections)];
    ff.destroy();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    assert.deepEqual(ffErrors, [], 'no uncaught errors in the Firefox page');
    // Firefox logs each refused reconnection while the server was down (no page error): only ever to the tacit server.
    const ws = server ? `${server.url.replace(/^http/, 'ws')}/v1/ws` : '';
    assert.deepEqual(refused.filter((l) => !l.includes(` ${ws}.`)), [], 'refused connections only to the tacit server');
  });

  it('receipts: one tick, delivered when bob\u2019s device has it, read when he read it, and back; typing both ways', async () => {
    const first = server.firstInvite;
    assert.ok(first !== undefined, 'the first start prints an invite code');
    // The server's first invite link opens the register form filled in; this is the first account.
    await ff.goto(`${server.url}/#invite=${first}`);
    await ff.waitFor(`document.querySelector('#reg-username')`, 'the register screen');
    assert.equal(await ff.eval<string>(`document.querySelector('#reg-invite').value`), first);
    await ff.fill('#reg-username', 'fern');
    await ff.click('button[type="submit"]');
    await ff.waitFor(`document.querySelector('[data-testid="me"]')?.textContent === 'fern'`, 'registration');
    const [i1, i2] = await server.invites(2);
    await bob.ok('register', 'bob', '--server', server.url, '--invite', i1!);
    await mallory.ok('register', 'mallory', '--server', server.url, '--invite', i2!);

    await ff.fill('#new-conv-name', 'bob');
    await ff.eval(`(document.querySelector('#new-conv-name').form.requestSubmit(), true)`);
    await ff.waitFor(`document.querySelector('#conv-title')?.textContent === 'bob'`, 'the conversation with bob');
    await send('did you get this?');
    await ff.waitFor(outState('did you get this?', 'sent'), 'the message to be stored');
    assert.equal(await ff.eval<string>(delivery('did you get this?')), 'sent', 'one tick: bob\u2019s device has not fetched it');
    // Bob's device stores it without showing it: delivered.
    await bob.ok('group', 'list');
    await ff.waitFor(`${delivery('did you get this?')} === 'delivered'`, 'delivered');
    assert.deepEqual(messages(await bob.ok('recv')), ['did you get this?']);
    await ff.waitFor(`${delivery('did you get this?')} === 'read'`, 'read');

    // Bob's answer is shown in the open conversation: his history says read.
    await bob.ok('send', 'fern', 'yes, got it');
    await ff.waitFor(message('in', 'yes, got it'), 'bob\u2019s answer');
    assert.equal((await bobsLastUntil('read'))?.['delivery'], 'read');

    const chat = bob.chat('fern');
    try {
      await chat.seen((e) => e['event'] === 'chat-ready', 'chat ready');
      chat.write('/typing\n');
      await ff.waitFor(`document.querySelector('[data-testid="typing"]')?.textContent === 'bob is typing\u2026'`, 'bob typing');
      chat.write('/typing off\n');
      await ff.waitFor(`document.querySelector('[data-testid="typing"]')?.textContent === ''`, 'bob stopped typing');
      // Fern types in the composer, without sending: bob's chat says so.
      await ff.eval(`(document.querySelector('#composer-text').focus(), true)`);
      await ff.type('writing');
      await chat.seen((e) => e['event'] === 'typing' && e['from'] === 'fern' && e['typing'] === true, 'bob sees fern typing');
      await ff.fill('#composer-text', '');
    } finally {
      await chat.end();
    }
  });

  it('disappearing: bob sets 3 seconds; both messages leave the page and IndexedDB; turned off in Firefox, bob is told', async () => {
    await bob.ok('timer', 'fern', '3s');
    await ff.waitFor(
      `[...document.querySelectorAll('li.system-line')].some((e) => e.textContent.includes('bob set disappearing messages to 3 seconds'))`,
      'the timer notice',
    );
    assert.equal(await ff.eval<string>(`document.querySelector('[data-testid="timer-select"]').value`), '3000');
    const before = await ff.eval<number>(MESSAGE_RECORDS);
    await send('this vanishes soon');
    await bob.ok('send', 'fern', 'so does my answer');
    await ff.waitFor(message('in', 'so does my answer'), 'bob\u2019s answer');
    assert.ok((await ff.eval<number>(MESSAGE_RECORDS)) > before, 'both are stored first');
    // Both leave the page and the store (the timer runs from sending, and from reading on screen).
    await ff.waitFor(`!${message('out', 'this vanishes soon')} && !${message('in', 'so does my answer')}`, 'both messages gone from the page');
    // (waitFor awaits the expression's promise.)
    await ff.waitFor(`${MESSAGE_RECORDS}.then((n) => n === ${before})`, 'both records gone from IndexedDB');
    await ff.eval(`(() => {
      const s = document.querySelector('[data-testid="timer-select"]');
      s.value = '0';
      s.dispatchEvent(new Event('change', { bubbles: true }));
      return true;
    })()`);
    const off = (await bob.ok('recv')).filter((e) => e['event'] === 'message' && /fern turned off disappearing messages/.test(String(e['text'])));
    assert.equal(off.length, 1, 'bob is told');
  });

  it('blocks mallory from the header: nothing of hers shown; unblocked in Settings, her next message is', async () => {
    await mallory.ok('send', 'fern', 'hello fern');
    await ff.waitFor(`document.querySelector('a[data-contact="mallory"]')`, 'mallory in the list');
    await ff.openChat('mallory');
    await ff.waitFor(message('in', 'hello fern'), 'mallory\u2019s message');
    await ff.click('[data-testid="block"]');
    assert.match((await ff.text('[data-testid="block-confirm"]')) ?? '', /no longer see their messages.*nothing you send reaches them.*They are not\s+told/s);
    await ff.waitFor(`document.activeElement?.dataset.testid === 'confirm-block'`, 'the confirmation focused');
    await ff.click('[data-testid="confirm-block"]');
    await ff.waitFor(`document.querySelector('[data-testid="blocked-notice"]')`, 'the blocked notice');
    assert.deepEqual(
      await ff.eval<boolean[]>(`['#composer-text', '[data-testid="timer-select"]'].map((s) => document.querySelector(s).disabled)`),
      [true, true],
      'no composer and no timer for a blocked contact',
    );

    await mallory.ok('send', 'fern', 'blocked hello');
    await bob.ok('send', 'fern', 'bob after her');
    // Bob's later message is counted: the page handled hers before it.
    await ff.waitFor(`${unread('bob')} === 1`, 'bob\u2019s message counted');
    assert.deepEqual(await ff.eval<string[]>(TRANSCRIPT), ['in:hello fern']);
    assert.equal(await ff.eval<boolean>(`Boolean(document.querySelector('a.conv[data-contact="mallory"] [data-testid="blocked-badge"]'))`), true, 'the list marks her blocked');

    await ff.route('#/settings');
    await ff.waitFor(`document.querySelector('[data-testid="blocked-list"]')?.textContent.includes('mallory')`, 'Settings \u2192 Blocked lists her');
    await ff.click('[data-testid="unblock-mallory"]');
    await ff.waitFor(`document.querySelector('[data-testid="blocked-none"]') && !document.querySelector('[data-testid="blocked-badge"]')`, 'unblocked');
    await mallory.ok('send', 'fern', 'after unblock');
    await ff.openChat('mallory');
    await ff.waitFor(message('in', 'after unblock'), 'her message after unblocking');
    assert.deepEqual(await ff.eval<string[]>(TRANSCRIPT), ['in:hello fern', 'in:after unblock']);
    assert.equal(await ff.eval<boolean>(`document.querySelector('#composer-text').disabled`), false);
  });

  it('mutes bob from the header: his message counts in the list but not in the title; unmuted, the badge goes', async () => {
    await ff.openChat('bob');
    await ff.waitFor(message('in', 'bob after her'), 'bob\u2019s message, read');
    await ff.click('[data-testid="mute"]');
    assert.deepEqual(
      await ff.eval<string[]>(`[...document.querySelectorAll('[data-testid="mute-menu"] [role="menuitem"]')].map((e) => e.textContent.trim())`),
      ['1 hour', '8 hours', '1 day', '7 days', 'Always'],
    );
    await clickButton('1 hour', `document.querySelector('[data-testid="mute-menu"]')`);
    await ff.waitFor(`document.querySelector('[data-testid="muted-until"]')?.textContent.startsWith('\u{1F515} Muted until ')`, 'muted');
    await ff.waitFor(`document.querySelector('a.conv[data-contact="bob"] [data-testid="muted-badge"]')`, 'the list marks bob muted');

    // In the background, on the list: bob's message is counted in the list, not in the title;
    // mallory's after it is (so the page handled bob's first).
    await toList();
    await ff.waitFor(`document.title === 'tacit'`, 'nothing unread');
    await ff.eval(`(() => {
      Object.defineProperty(document, 'visibilityState', { get: () => 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
      return true;
    })()`);
    await bob.ok('send', 'fern', 'muted ping');
    await ff.waitFor(`${unread('bob')} === 1`, 'bob\u2019s message counted in the list');
    await mallory.ok('send', 'fern', 'mallory rings');
    await ff.waitFor(`${unread('mallory')} === 1`, 'mallory\u2019s message counted');
    await ff.waitFor(`document.title === '(1) tacit'`, 'the title counts mallory only');
    assert.equal(await ff.eval<number>(unread('bob')), 1, 'bob’s is still unread, only not in the title');
    const visible = await ff.eval<boolean>(`(() => {
      delete document.visibilityState;
      document.dispatchEvent(new Event('visibilitychange'));
      return document.visibilityState === 'visible';
    })()`);
    assert.equal(visible, true);
    await ff.openChat('bob');
    await ff.click('[data-testid="unmute"]');
    await ff.waitFor(`document.querySelector('[data-testid="mute"]') && !document.querySelector('a.conv[data-contact="bob"] [data-testid="muted-badge"]')`, 'unmuted');
  });

  it('the Devices page links a CLI device by its pasted code; read state syncs both ways; then removes it', async () => {
    await ff.route('#/settings');
    await ff.waitFor(`document.querySelector('[data-testid="devices-link"]')`, 'the settings screen');
    await ff.click('[data-testid="devices-link"]');
    await ff.waitFor(`document.querySelector('[data-testid="device-1"]')?.textContent.includes('(this browser)')`, 'the device list');
    const link = fernCli.start('link', '--server', server.url, '--name', 'terminal');
    let code = '';
    try {
      await link.seen((e) => e['event'] === 'link-code', 'the CLI\u2019s link code');
      code = String(link.events().find((e) => e['event'] === 'link-code')?.['code']);
      assert.match(code, /^tacit-link:/);
      await ff.fill('#link-code-input', code);
      await ff.eval(`(document.querySelector('#link-code-input').form.requestSubmit(), true)`);
      await ff.waitFor(`document.querySelector('[data-testid="devices-message"]')?.textContent === 'Linked device 2.'`, 'the device linked');
      await link.seen((e) => e['event'] === 'linked', 'the CLI linked');
      assert.equal(await link.exited(), 0);
    } finally {
      await link.end();
    }
    const linked = link.events().find((e) => e['event'] === 'linked');
    assert.deepEqual([linked?.['username'], linked?.['deviceId']], ['fern', 2]);
    await ff.waitFor(`document.querySelector('[data-testid="device-2"]')?.textContent.includes('terminal')`, 'device 2 listed');

    // Read on the page (the conversation is open): the CLI device has it read, nothing to print.
    await bob.ok('send', 'fern', 'read me on the web');
    await ff.openChat('bob');
    await ff.waitFor(message('in', 'read me on the web'), 'bob\u2019s message on the page');
    const printed: string[] = [];
    let synced = false;
    for (let i = 0; i < 40 && !synced; i++) {
      const got = await fernCli.ok('recv');
      printed.push(...messages(got));
      synced = got.some((e) => e['event'] === 'read-sync' && e['conversation'] === 'u:bob');
      if (!synced) await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(synced, 'the CLI device got the read sync from the page');
    // At most once, if the message came before the sync did; read in its history either way.
    assert.ok(printed.every((t) => t === 'read me on the web') && printed.length <= 1, JSON.stringify(printed));
    const h = (await fernCli.ok('history', 'bob')).find((e) => e['event'] === 'history' && e['text'] === 'read me on the web');
    assert.equal(h?.['read'], true);

    // Read on the CLI device: the page's unread count clears without the conversation opened.
    await toList();
    await bob.ok('send', 'fern', 'read me on the terminal');
    await ff.waitFor(`${unread('bob')} === 1`, 'unread on the page');
    assert.deepEqual(messages(await fernCli.ok('recv')), ['read me on the terminal']);
    await ff.waitFor(`${unread('bob')} === 0`, 'read on the CLI device, cleared on the page');

    // Remove it, with a confirmation: the list shows one again, and the server refuses it.
    await ff.route('#/devices');
    await ff.waitFor(`document.querySelector('[data-testid="device-2"]')`, 'the device list');
    await clickButton('Remove', `document.querySelector('[data-testid="device-2"]')`);
    await clickButton('Remove device 2');
    await ff.waitFor(`document.querySelector('[data-testid="devices-message"]')?.textContent === 'Removed device 2.'`, 'the device removed');
    assert.equal(await ff.eval<boolean>(`Boolean(document.querySelector('[data-testid="device-2"]'))`), false);
    const refused = await fernCli.run('recv');
    assert.notEqual(refused.code, 0, 'the removed device is refused');
    assert.match(refused.stderr, /no longer accepts this device/);
  });

  it('the safety number with bob is the one bob\u2019s terminal shows', async () => {
    await ff.route('#/c/bob/safety');
    await ff.waitFor(`document.querySelector('[data-testid="safety-number"]')?.textContent.replace(/\\D/g, '').length === 60`, 'the safety number');
    const digits = ((await ff.text('[data-testid="safety-number"]')) ?? '').replace(/\D/g, '');
    const theirs = (await bob.ok('safety-number', 'fern')).find((e) => e['event'] === 'safety-number');
    assert.equal(digits, theirs?.['safetyNumber']);
  });

  it('a message typed while the server is down waits, and is sent once it is back', async () => {
    await ff.openChat('bob');
    await server.stop();
    await ff.waitFor(`/offline/i.test(document.querySelector('[data-testid="connection"]')?.textContent ?? '')`, 'offline shown');
    await send('typed while you were away');
    await ff.waitFor(outState('typed while you were away', 'queued'), 'waiting for the server');
    await server.start();
    await ff.waitFor(`document.querySelector('[data-testid="connection"]')?.textContent === 'Online'`, 'online again');
    await ff.waitFor(outState('typed while you were away', 'sent'), 'sent after reconnecting');
    assert.deepEqual(messages(await bob.ok('recv')).filter((t) => t === 'typed while you were away'), ['typed while you were away']);
  });

  it('the first account is the admin: its invite link registers a new user on this invite-only server', async () => {
    await ff.waitFor(`[...document.querySelectorAll('a')].some((a) => a.textContent === 'Admin')`, 'the Admin link');
    await ff.route('#/admin');
    await ff.waitFor(`document.querySelector('.invite-create')`, 'the admin screen');
    await ff.waitFor(`document.querySelector('[data-testid="accounts"] tr[data-account="fern"] .badge')?.textContent === 'admin'`, 'fern listed as admin');
    await ff.eval(`(document.querySelector('.invite-create').requestSubmit(), true)`);
    await ff.waitFor(`document.querySelector('[data-testid="invite-link"] input')?.value`, 'an invite link');
    const inviteLink = await ff.eval<string>(`document.querySelector('[data-testid="invite-link"] input').value`);
    assert.match(inviteLink, new RegExp(`^${server.url}/#invite=[A-Za-z0-9_-]{20,}$`));
    // The whole link, as it would be handed over: it names the server too.
    await dana.ok('register', 'dana', '--invite', inviteLink);
    await dana.ok('send', 'fern', 'thanks for the invite');
    await ff.waitFor(`document.querySelector('a[data-contact="dana"]')`, 'dana\u2019s message in the list');
    const again = await erin.run('register', 'erin', '--invite', inviteLink);
    assert.notEqual(again.code, 0, 'the link was single use');
  });
});
