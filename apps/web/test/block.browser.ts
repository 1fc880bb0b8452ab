/**
 * Blocking in the browser, end to end: alice in Chromium, mallory and bob on the CLI. Alice blocks
 * mallory from the conversation header (the confirmation says what blocking does); the
 * conversation says she is blocked and its composer is disabled; what mallory sends then is not
 * shown (bob's later message is, so alice's queue was processed past it); Settings lists mallory
 * with Unblock, and after unblocking her next message is shown. A message to bob waiting for the
 * server (stopped) when alice blocks him is marked not sent, with why; after Unblock, Retry sends
 * it. Screenshot: docs/screenshots/block.png.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, Profile, screenshot } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('blocking in the web client', { timeout: 10 * 60_000 }, () => {
  const alice = new Profile('b-alice', DESKTOP);
  const web = browserSuite('b', { profiles: [alice] });
  const mallory = web.cli('mallory');
  const bob = web.cli('bob');

  it('block from the header, nothing of hers shown, unblock in Settings shows her next message', async () => {
    const a = await alice.open(web.server.url);
    await ui.register(a, 'alice');
    await ui.ok(mallory.run('register', 'mallory', '--server', web.server.url));
    await ui.ok(bob.run('register', 'bob', '--server', web.server.url));
    await ui.ok(mallory.run('send', 'alice', 'hello alice'));
    await ui.waitUnread(a, 'mallory', 1);
    await ui.openConversation(a, 'mallory');
    await ui.waitIncoming(a, 'hello alice');

    await a.getByTestId('block').click();
    const confirm = a.getByTestId('block-confirm');
    assert.match((await confirm.textContent()) ?? '', /no longer see their messages.*nothing you send reaches them.*They are not told/s);
    await a.getByTestId('confirm-block').click();
    await a.getByTestId('blocked-notice').waitFor();
    assert.equal(await a.locator('#composer-text').isDisabled(), true);
    // The disappearing timer is a message to her too: not offered while she is blocked.
    assert.equal(await a.getByTestId('timer-select').isDisabled(), true);
    await screenshot(a, 'block');

    await ui.ok(mallory.run('send', 'alice', 'blocked hello'));
    await ui.ok(bob.run('send', 'alice', 'bob after her'));
    await ui.waitUnread(a, 'bob', 1);
    assert.deepEqual(await ui.transcript(a), ['in:hello alice']);
    const badge = a.locator('a.conv[data-contact="mallory"]').getByTestId('blocked-badge');
    assert.equal(await badge.count(), 1, 'the list marks her blocked');
    assert.equal(await a.locator('a.conv[data-contact="bob"]').getByTestId('blocked-badge').count(), 0);

    await a.getByRole('link', { name: 'Settings' }).click();
    await a.getByTestId('blocked-list').filter({ hasText: 'mallory' }).waitFor();
    await a.getByTestId('unblock-mallory').click();
    await a.getByTestId('blocked-none').waitFor();
    await badge.waitFor({ state: 'detached' });
    await ui.ok(mallory.run('send', 'alice', 'after unblock'));
    await ui.openConversation(a, 'mallory');
    await ui.waitIncoming(a, 'after unblock');
    assert.deepEqual(await ui.transcript(a), ['in:hello alice', 'in:after unblock']);
    assert.equal(await a.locator('#composer-text').isDisabled(), false);
    assert.equal(await a.getByTestId('timer-select').isDisabled(), false);
  });

  it('a message waiting for the server when bob is blocked is not sent: it says why, Retry is offered after Unblock and sends it', async () => {
    const a = alice.page!;
    await ui.openConversation(a, 'bob');
    await ui.send(a, 'hi bob');
    await ui.waitOutgoing(a, 'hi bob', 'sent');
    await web.server.stop();
    await a.getByTestId('connection').filter({ hasText: /offline/i }).waitFor();
    // A session with bob exists: it is encrypted now and waits for the connection.
    await ui.send(a, 'queued for bob');
    await ui.waitOutgoing(a, 'queued for bob', 'queued');
    await a.getByTestId('block').click();
    await a.getByTestId('confirm-block').click();
    await a.getByTestId('blocked-notice').waitFor();
    await ui.waitOutgoing(a, 'queued for bob', 'failed');
    const msg = a.locator('li.msg.out').filter({ hasText: 'queued for bob' });
    await msg.locator('.msg-error').filter({ hasText: 'Not sent: you blocked bob before it went out. Unblock them to send it (Retry).' }).waitFor();
    assert.equal(await msg.getByRole('button', { name: 'Retry' }).count(), 0, 'no Retry while he is blocked');

    // Back online and unblocked: it stays failed (nothing went out), and Retry sends it.
    await web.server.start();
    await a.getByTestId('connection').filter({ hasText: 'Online' }).waitFor();
    await a.getByTestId('unblock').click();
    await a.getByTestId('block').waitFor();
    await ui.send(a, 'after unblock');
    await ui.waitOutgoing(a, 'after unblock', 'sent');
    assert.equal(await a.locator('li.msg.out[data-state="failed"]').filter({ hasText: 'queued for bob' }).count(), 1);
    const received = async (): Promise<string[]> => (await bob.ok('recv')).filter((e) => e['event'] === 'message').map((e) => String(e['text']));
    assert.deepEqual((await received()).filter((t) => t !== 'bob after her'), ['hi bob', 'after unblock'], 'the blocked-while-waiting message did not reach bob');
    await msg.getByRole('button', { name: 'Retry' }).click();
    await ui.waitOutgoing(a, 'queued for bob', 'sent');
    assert.equal(await msg.locator('.msg-error').count(), 0);
    assert.deepEqual(await received(), ['queued for bob']);
  });
});
