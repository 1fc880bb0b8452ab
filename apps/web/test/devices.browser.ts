/**
 * Linked devices in the browser, end to end: a real server process, alice on the CLI links a
 * browser ("Link to an existing account" shows a code and a QR code; `tacit devices add <code>`);
 * bob (CLI) writes to alice and both of her devices show it; alice writes from the CLI and the
 * browser shows it as hers in the conversation with bob; the browser writes and the CLI shows it;
 * the Devices page lists both and links a third device (another browser) by a pasted code, then
 * removes it. Screenshots: docs/screenshots/link-*.png, devices-*.png.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, PHONE, Profile, events, screenshot } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('linked devices in the web client', { timeout: 15 * 60_000 }, () => {
  const browser = new Profile('d-alice-browser', DESKTOP);
  const phone = new Profile('d-alice-phone', PHONE);
  const web = browserSuite('d', { profiles: [browser, phone] });
  const alice = web.cli('alice');
  const bob = web.cli('bob');

  it('alice on the CLI links a browser; bob reaches both; each shows what the other sent as alice', async () => {
    for (const [cli, name] of [[alice, 'alice'], [bob, 'bob']] as const) {
      const r = await cli.run('register', name, '--server', web.server.url);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await alice.run('send', 'bob', 'hello from the terminal')).code, 0);
    const p = await browser.open(web.server.url);
    await p.getByRole('button', { name: 'Link to an existing account' }).click();
    await p.getByLabel('Name of this device').fill('laptop browser');
    await screenshot(p, 'link-name');
    await p.getByRole('button', { name: 'Show a link code' }).click();
    const codeEl = p.getByTestId('link-code');
    await codeEl.waitFor();
    await p.getByTestId('link-qr').waitFor();
    await screenshot(p, 'link-code');
    const code = ((await codeEl.textContent()) ?? '').trim();
    assert.match(code, /^tacit-link:/);
    const added = await alice.run('devices', 'add', code);
    assert.equal(added.code, 0, added.stderr);
    assert.equal(events(added.stdout).find((e) => e['event'] === 'device-added')?.['deviceId'], 2);
    await p.getByTestId('me').filter({ hasText: 'alice' }).waitFor();

    // Bob's message reaches both devices; the conversation with bob came along (its history did not).
    assert.equal((await bob.run('recv')).code, 0);
    assert.equal((await bob.run('send', 'alice', 'hi alice, on both?')).code, 0);
    await ui.openConversation(p, 'bob');
    await ui.waitIncoming(p, 'hi alice, on both?');
    // The terminal has it too. The page showed it, so it is read there, and the page tells alice's
    // other devices (read sync): the terminal prints it at most once (only if it came before the
    // sync did) and then reports the read sync; its history holds it either way.
    const printed: unknown[] = [];
    let synced = false;
    for (let i = 0; i < 20 && !synced; i++) {
      const got = events((await alice.run('recv')).stdout);
      printed.push(...got.filter((e) => e['event'] === 'message').map((e) => e['text']));
      synced = got.some((e) => e['event'] === 'read-sync' && e['conversation'] === 'u:bob');
      if (!synced) await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(synced, 'the terminal got the read sync from the page');
    assert.ok(printed.length <= 1 && printed.every((t) => t === 'hi alice, on both?'), JSON.stringify(printed));
    const cliHas = events((await alice.run('history', 'bob')).stdout).filter((e) => e['event'] === 'history').map((e) => `${String(e['direction'])}:${String(e['text'])}`);
    assert.deepEqual(cliHas, ['out:hello from the terminal', 'in:hi alice, on both?']);
    // Alice answers from the terminal: the browser shows it as hers, in the conversation with bob.
    assert.equal((await alice.run('send', 'bob', 'yes, from the terminal')).code, 0);
    await ui.waitOutgoing(p, 'yes, from the terminal');
    // And from the browser: the terminal shows it as hers.
    await ui.send(p, 'and from the browser');
    await ui.waitOutgoing(p, 'and from the browser');
    assert.deepEqual(await ui.transcript(p), ['in:hi alice, on both?', 'out:yes, from the terminal', 'out:and from the browser']);
    await screenshot(p, 'link-conversation');
    assert.equal((await alice.run('recv')).code, 0);
    const hist = events((await alice.run('history', 'bob')).stdout).filter((e) => e['event'] === 'history').map((e) => `${String(e['direction'])}:${String(e['text'])}`);
    assert.deepEqual(hist.slice(-2), ['out:yes, from the terminal', 'out:and from the browser']);
    // Bob sees one conversation with alice, every message once.
    const bobSaw = events((await bob.run('recv')).stdout).filter((e) => e['event'] === 'message').map((e) => `${String(e['from'])}: ${String(e['text'])}`);
    assert.deepEqual(bobSaw, ['alice: yes, from the terminal', 'alice: and from the browser']);
  });

  it('the Devices page lists the devices, links a third (another browser) by a pasted code and removes it', async () => {
    const p = browser.page;
    await p.evaluate(() => {
      location.hash = '#/settings';
    });
    await p.getByTestId('devices-link').click();
    await p.getByTestId('device-2').waitFor();
    assert.match((await p.getByTestId('device-1').textContent()) ?? '', /Device 1/);
    assert.match((await p.getByTestId('device-2').textContent()) ?? '', /laptop browser.*this browser/);
    const q = await phone.open(web.server.url);
    const code = await ui.showLinkCode(q, 'phone');
    await screenshot(q, 'link-code-phone');
    await p.getByLabel('Link code shown on the new device').fill(code);
    await p.getByRole('button', { name: 'Link device' }).click();
    await p.getByTestId('devices-message').filter({ hasText: 'Linked device 3.' }).waitFor();
    await q.getByTestId('me').filter({ hasText: 'alice' }).waitFor();
    await p.getByTestId('device-3').waitFor();
    await screenshot(p, 'devices-page');
    // Remove it (with a confirmation): the phone is signed out, the list shows two again.
    await p.getByTestId('device-3').getByRole('button', { name: 'Remove' }).click();
    await p.getByRole('button', { name: 'Remove device 3' }).click();
    await p.getByTestId('devices-message').filter({ hasText: 'Removed device 3.' }).waitFor();
    assert.equal(await p.getByTestId('device-3').count(), 0);
    // The removed device's socket is closed and its credentials refused: it stops, and says so.
    await q.locator('#fatal-title').waitFor();
    await screenshot(q, 'devices-removed-phone');
    // A bad code is refused with a clear message.
    await p.getByLabel('Link code shown on the new device').fill('not a code');
    await p.getByRole('button', { name: 'Link device' }).click();
    await p.getByTestId('devices-message').filter({ hasText: 'not a link code' }).waitFor();
  });
});
