/**
 * Receipts in the browser, end to end: a real server process, alice in Chromium and bob on the
 * CLI. Alice's message goes from one tick (sent) to two (delivered: bob's device stored it) to
 * filled (read: bob printed it); bob's message shown in alice's visible tab comes back read in
 * bob's `history`; with read receipts off in Settings, alice sends none. Screenshots:
 * docs/screenshots/receipts-*.png.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, Profile, events, screenshot } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('receipts in the web client', { timeout: 10 * 60_000 }, () => {
  const alice = new Profile('r-alice', DESKTOP);
  const web = browserSuite('r', { profiles: [alice] });
  const bob = web.cli('bob');

  /** Bob takes what came, then his last message to alice as his history has it. */
  const bobsLast = async (): Promise<Record<string, unknown> | undefined> => {
    await bob.run('recv');
    return events((await bob.run('history', 'alice')).stdout).filter((e) => e['direction'] === 'out').at(-1);
  };
  /** Polls `bobsLast` until its delivery is `state` (bounded); the last one seen. */
  const bobsLastUntil = async (state: string): Promise<Record<string, unknown> | undefined> => {
    let last: Record<string, unknown> | undefined;
    for (let i = 0; i < 100; i++) {
      last = await bobsLast();
      if (last?.['delivery'] === state) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    return last;
  };

  const delivery = (text: string) => alice.page.locator('li.msg.out').filter({ hasText: text }).getByTestId('delivery');

  it('alice → bob: one tick, two ticks when bob\u2019s device has it, filled when bob read it', async () => {
    const a = await alice.open(web.server.url);
    await ui.register(a, 'alice');
    assert.equal((await bob.run('register', 'bob', '--server', web.server.url)).code, 0);
    await ui.startConversation(a, 'bob');
    await ui.send(a, 'did you get this?');
    await ui.waitOutgoing(a, 'did you get this?');
    assert.equal(await delivery('did you get this?').getAttribute('data-delivery'), 'sent');
    await screenshot(a, 'receipts-sent');
    // Bob's device stores it without showing it.
    assert.equal((await bob.run('group', 'list')).code, 0);
    await a.locator('[data-testid="delivery"][data-delivery="delivered"]').filter({ hasText: 'Delivered' }).waitFor();
    await screenshot(a, 'receipts-delivered');
    const r = await bob.run('recv');
    assert.deepEqual(events(r.stdout).filter((e) => e['event'] === 'message').map((e) => e['text']), ['did you get this?']);
    await a.locator('[data-testid="delivery"][data-delivery="read"]').filter({ hasText: 'Read' }).waitFor();
    await screenshot(a, 'receipts-read');
  });

  it('bob → alice: shown in alice\u2019s open conversation, so bob\u2019s history says read', async () => {
    assert.equal((await bob.run('send', 'alice', 'yes, got it')).code, 0);
    await ui.waitIncoming(alice.page, 'yes, got it');
    const last = await bobsLastUntil('read');
    assert.equal(last?.['delivery'], 'read');
  });

  it('typing: bob types in `tacit chat`, alice’s page says so; alice types, bob’s chat says so', async () => {
    const a = alice.page;
    const chat = bob.chat('alice');
    try {
      await chat.seen((e) => e['event'] === 'chat-ready', 'chat ready');
      chat.write('/typing\n');
      await a.getByTestId('typing').filter({ hasText: 'bob is typing…' }).waitFor();
      await screenshot(a, 'typing');
      chat.write('/typing off\n');
      await a.getByTestId('typing').filter({ hasText: /^$/ }).waitFor();
      // Alice types in the composer (not sending): bob's chat gets the indicator.
      await a.locator('#composer-text').pressSequentially('writing');
      await chat.seen((e) => e['event'] === 'typing' && e['from'] === 'alice' && e['typing'] === true, 'bob sees alice typing');
      await a.locator('#composer-text').fill('');
    } finally {
      await chat.end();
    }
  });

  it('read receipts off in Settings: alice sends none, and bob\u2019s read receipts are not shown to her', async () => {
    const a = alice.page;
    await a.getByRole('link', { name: 'Settings' }).click();
    const box = a.getByTestId('read-receipts');
    await box.waitFor();
    assert.equal(await box.isChecked(), true);
    await box.uncheck();
    await a.waitForFunction(() => !(document.querySelector('[data-testid="read-receipts"]') as HTMLInputElement | null)?.checked);
    await screenshot(a, 'receipts-settings');
    assert.equal((await bob.run('send', 'alice', 'seen this?')).code, 0);
    await ui.openConversation(a, 'bob');
    await ui.waitIncoming(a, 'seen this?');
    // Alice's own earlier message now shows as delivered (her setting hides read).
    await delivery('did you get this?').and(a.locator('[data-delivery="delivered"]')).waitFor();
    // Bob gets the delivery receipt, never a read one.
    let last = await bobsLastUntil('delivered');
    assert.equal(last?.['text'], 'seen this?');
    assert.equal(last?.['delivery'], 'delivered');
    await new Promise((r) => setTimeout(r, 1_000));
    last = await bobsLast();
    assert.equal(last?.['delivery'], 'delivered', 'no read receipt came');
  });
});
