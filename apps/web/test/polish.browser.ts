/**
 * A newcomer's first hour in the browser: a conversation that starts with an incoming message
 * shows its preview; links are clickable, safely, and only http/https; more than the limit is
 * said and kept, counted in characters a person sees; after the server is back, the page
 * reconnects at once when the browser reports it is online or visible again.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, Profile } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('tacit web client, first-hour polish', { timeout: 10 * 60_000 }, () => {
  const pia = new Profile('pia', DESKTOP);
  const web = browserSuite('polish', { profiles: [pia], checks: { foreign: { message: 'the page only talks to the tacit server (no link was followed)' } } });
  const quinn = web.cli('quinn');

  it('a conversation that starts with an incoming message shows its preview in the list', async () => {
    // Playwright's clock, installed before the page loads: time runs normally until paused below.
    await pia.open('about:blank');
    await pia.page.clock.install();
    await pia.page.goto(web.server.url);
    await ui.register(pia.page, 'pia');
    const r = await quinn.run('register', 'quinn', '--server', web.server.url);
    assert.equal(r.code, 0, r.stderr);
    const s = await quinn.run('send', 'pia', 'hello from the terminal, docs at https://example.com/start.');
    assert.equal(s.code, 0, s.stderr);
    const item = pia.page.locator('a[data-contact="quinn"]');
    await item.locator('.conv-preview').filter({ hasText: 'hello from the terminal' }).waitFor();
  });

  it('links in messages open in a new tab, without opener or referrer; only http and https', async () => {
    const p = pia.page;
    const s = await quinn.run('send', 'pia', 'not links: javascript:alert(1) data:text/html,x www.example.org https://user:pw@example.com/');
    assert.equal(s.code, 0, s.stderr);
    await ui.openConversation(p, 'quinn');
    await ui.waitIncoming(p, 'not links');
    const anchors = p.locator('li.msg.in .msg-text a');
    assert.equal(await anchors.count(), 1, 'one link across both messages');
    const a = anchors.first();
    assert.equal(await a.getAttribute('href'), 'https://example.com/start');
    assert.equal(await a.textContent(), 'https://example.com/start', 'the sentence’s period is not part of it');
    assert.equal(await a.getAttribute('target'), '_blank');
    assert.equal(await a.getAttribute('rel'), 'noopener noreferrer');
    // Every message still reads as sent.
    assert.deepEqual(await ui.transcript(p), [
      'in:hello from the terminal, docs at https://example.com/start.',
      'in:not links: javascript:alert(1) data:text/html,x www.example.org https://user:pw@example.com/',
    ]);
  });

  it('pasting more than the limit says so and keeps the text; the limit counts characters a person sees', async () => {
    const p = pia.page;
    const box = p.locator('#composer-text');
    const send = p.getByRole('button', { name: 'Send' });
    // 16,384 emoji: 32,768 UTF-16 code units, but 16,384 characters: within the limit.
    await box.fill('\u{1F600}'.repeat(16_384));
    assert.equal(await p.getByTestId('composer-error').count(), 0);
    assert.equal(await send.isEnabled(), true);
    // A real paste through the clipboard, one character over.
    await pia.context!.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: web.server.url });
    const long = 'x'.repeat(16_385);
    await p.evaluate((t) => navigator.clipboard.writeText(t), long);
    await box.fill('');
    await box.focus();
    await p.keyboard.press('Control+V');
    const alert = p.getByTestId('composer-error');
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? '', /The message is 16,385 characters long; at most 16,384 fit in one message\. .*your text is kept/);
    assert.equal((await box.inputValue()).length, 16_385, 'nothing was cut off');
    assert.equal(await send.isEnabled(), false);
    await box.press('Enter');
    assert.equal(await p.locator('li.msg.out').count(), 0, 'Enter does not send it either');
    // Shortened by one character: the warning goes, and it sends.
    await box.press('Backspace');
    await alert.waitFor({ state: 'detached' });
    await box.press('Enter');
    await ui.waitOutgoing(p, 'x'.repeat(100), 'sent');
  });

  it('reconnects at once when the browser reports it is online, or the page visible, again', async () => {
    const p = pia.page;
    const label = p.getByTestId('connection');
    // From here no timer fires on its own: the backoff's retry would wait forever, so only the
    // browser's hints can bring the connection back.
    await p.clock.pauseAt(Date.now() + 60_000);
    for (const hint of ['online', 'visibilitychange'] as const) {
      await web.server.stop();
      await label.filter({ hasText: /offline/i }).waitFor();
      await web.server.start();
      assert.match((await label.textContent()) ?? '', /offline/i, 'still waiting out its backoff');
      await p.evaluate((h) => {
        if (h === 'online') dispatchEvent(new Event('online'));
        else document.dispatchEvent(new Event('visibilitychange'));
      }, hint);
      await label.filter({ hasText: 'Online' }).waitFor();
    }
    await p.clock.resume();
    // And it works: a message both ways.
    await ui.send(p, 'back at once');
    await ui.waitOutgoing(p, 'back at once', 'sent');
    const r = await quinn.run('recv', '--wait', '30');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /back at once/);
  });
});
