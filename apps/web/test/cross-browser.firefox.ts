/**
 * Firefox (Debian's firefox-esr over WebDriver BiDi) and Chromium users chat through one tacit
 * server; the Firefox page keeps its keys and history across a reload and its IndexedDB key is
 * non-extractable. Run with `npm run test:firefox -w @tacit/web` (needs `apt-get install
 * firefox-esr` and a built app).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DESKTOP, Profile, SCREENSHOTS, ServerProcess, assertBuilt, freePort, tempDir } from './harness.ts';
import { FirefoxPage, message } from './firefox.ts';
import * as ui from './ui.ts';

const outgoing = (text: string, state: string) => `${message('out', text)}?.dataset.state === ${JSON.stringify(state)}`;
const incoming = (text: string) => `${message('in', text)} !== undefined`;

describe('tacit web client in Firefox', { timeout: 10 * 60_000 }, () => {
  let server: ServerProcess;
  const ff = new FirefoxPage();
  const chrome = new Profile('carl', DESKTOP);
  const dataDir = tempDir('server-ff');

  before(async () => {
    assertBuilt();
    server = new ServerProcess(dataDir, await freePort(), 'open');
    await server.start();
    await ff.launch();
  });

  after(async () => {
    await ff.close().catch(() => undefined);
    await chrome.close().catch(() => undefined);
    await server?.stop();
    const ffErrors = [...ff.pageErrors];
    const seen = { requests: chrome.requests.length, foreign: server ? chrome.foreignRequests(server.url) : [], errors: [...chrome.pageErrors] };
    ff.destroy();
    chrome.destroy();
    rmSync(dataDir, { recursive: true, force: true });
    assert.deepEqual(ffErrors, [], 'no uncaught errors in the Firefox page');
    assert.ok(seen.requests > 0);
    assert.deepEqual(seen.foreign, [], 'the Chromium page only talks to the tacit server');
    assert.deepEqual(seen.errors, []);
  });

  it('registers in Firefox and chats with a Chromium user both ways', async () => {
    await ff.goto(server.url + '/');
    await ff.waitFor(`document.querySelector('#reg-username')`, 'the register screen');
    await ff.fill('#reg-username', 'fern');
    await ff.click('button[type="submit"]');
    await ff.waitFor(`document.querySelector('[data-testid="me"]')?.textContent === 'fern'`, 'registration');

    const c = await chrome.open(server.url);
    await ui.register(c, 'carl');

    await ff.fill('#new-conv-name', 'carl');
    await ff.click('.new-conv button[type="submit"]');
    await ff.waitFor(`document.querySelector('#conv-title')?.textContent === 'carl'`, 'the conversation');
    await ff.fill('#composer-text', 'hello from firefox');
    await ff.press('#composer-text', 'Enter');
    await ff.waitFor(outgoing('hello from firefox', 'sent'), 'the message to be stored');

    await ui.waitUnread(c, 'fern', 1);
    await ui.openConversation(c, 'fern');
    await ui.waitIncoming(c, 'hello from firefox');
    await ui.send(c, 'hello from chromium');
    await ff.waitFor(incoming('hello from chromium'), 'the reply');
    // On screen in a visible tab: marked read.
    await ff.waitFor(`!document.querySelector('a[data-contact="carl"] [data-testid="unread"]')`, 'the reply to be marked read');
    mkdirSync(SCREENSHOTS, { recursive: true });
    await ff.screenshot(join(SCREENSHOTS, 'conversation-firefox.png'));
  });

  it('keeps keys and history across a reload in Firefox, sealed under a non-extractable key', async () => {
    await ff.reload();
    await ff.waitFor(`document.querySelector('[data-testid="me"]')?.textContent === 'fern'`, 'signed in again');
    await ff.goto(server.url + '/#/c/carl');
    await ff.waitFor(incoming('hello from chromium'), 'history after reload');
    assert.equal(await ff.eval<boolean>(outgoing('hello from firefox', 'sent')), true);
    const key = await ff.eval<{ extractable: boolean; alg: string }>(`new Promise((res, rej) => {
      const r = indexedDB.open('tacit');
      r.onerror = () => rej(new Error('open'));
      r.onsuccess = () => {
        const g = r.result.transaction('records').objectStore('records').get('sealing-key');
        g.onsuccess = () => { r.result.close(); res({ extractable: g.result.extractable, alg: g.result.algorithm.name }); };
      };
    })`);
    assert.deepEqual(key, { extractable: false, alg: 'AES-GCM' });
    await ff.fill('#composer-text', 'still me after reload');
    await ff.press('#composer-text', 'Enter');
    await ff.waitFor(outgoing('still me after reload', 'sent'), 'the message after reload');
    await ui.waitIncoming(chrome.page, 'still me after reload');
  });

  it('turns the passphrase lock on in Firefox: asked for after the reload, a wrong one refused, the right one opens the history', async () => {
    const pass = 'firefox keeps a secret';
    await ff.goto(server.url + '/#/settings');
    await ff.waitFor(`document.querySelector('#lock-new')`, 'the settings screen');
    await ff.fill('#lock-new', pass);
    await ff.fill('#lock-again', pass);
    // The client closes for the re-sealing while its view may still be reading: no error may escape.
    await ff.eval(`(document.querySelector('#lock-again').form.requestSubmit(), true)`);
    await ff.waitFor(`document.querySelector('#unlock-title')?.textContent === 'tacit is locked'`, 'the lock screen after the reload');
    assert.equal(await ff.eval<number>(`document.querySelectorAll('li.msg').length`), 0, 'nothing shown before the passphrase');
    await ff.fill('#unlock-passphrase', 'not the passphrase');
    await ff.eval(`(document.querySelector('#unlock-passphrase').form.requestSubmit(), true)`);
    await ff.waitFor(`document.querySelector('#unlock-error')`, 'a wrong passphrase to be refused');
    await ff.fill('#unlock-passphrase', pass);
    await ff.eval(`(document.querySelector('#unlock-passphrase').form.requestSubmit(), true)`);
    await ff.waitFor(`document.querySelector('[data-testid="me"]')?.textContent === 'fern'`, 'unlocked');
    await ff.goto(server.url + '/#/c/carl');
    await ff.waitFor(incoming('hello from chromium'), 'the history, opened with the passphrase');
    await ui.send(chrome.page, 'can you still read me');
    await ff.waitFor(incoming('can you still read me'), 'a new message after unlocking');
  });
});
