/**
 * What the terminal can do, the web page can do too (the parity items not covered elsewhere), end
 * to end: a real server process, alice in Chromium, bob and carol on the CLI. A group member's
 * safety number is one click from the members screen and equals the one the member's terminal
 * shows; any single emoji can be a reaction (as `tacit react` allows), not only the six offered;
 * typing indicators off in Settings send none and show none; Leave group hands the group on and
 * the terminals see it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, Profile } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

/** Bounded polls of a terminal for what the page did (each is one `tacit` process). */
const POLLS = 100;
const POLL_PAUSE_MS = 200;

describe('web client parity with the terminal', { timeout: 15 * 60_000 }, () => {
  const alice = new Profile('p-alice', DESKTOP);
  const web = browserSuite('p', { profiles: [alice] });
  const bob = web.cli('bob');
  const carol = web.cli('carol');
  let group = '';

  it('a group member’s safety number is one click from the members screen, and equals the one on their terminal', async () => {
    const a = await alice.open(web.server.url);
    await ui.register(a, 'alice');
    await bob.ok('register', 'bob', '--server', web.server.url);
    await carol.ok('register', 'carol', '--server', web.server.url);
    await a.getByTestId('new-group').click();
    await a.getByLabel('Title').fill('Parity');
    await a.getByLabel('Members').fill('bob, carol');
    await a.getByRole('button', { name: 'Create group' }).click();
    await a.locator('#conv-title').filter({ hasText: 'Parity' }).waitFor();
    group = (await a.evaluate(() => location.hash)).replace('#/g/', '');
    await a.getByTestId('members-link').click();
    // Every member but alice herself has the link.
    await a.locator('[data-member="carol"]').waitFor();
    assert.equal(await a.locator('[data-member="alice"] [data-testid="member-safety"]').count(), 0);
    await a.getByRole('link', { name: 'Safety number with bob' }).click();
    await a.locator('#safety-title').filter({ hasText: 'Safety number with bob' }).waitFor();
    const digits = await ui.safetyDigits(a);
    const theirs = (await bob.ok('safety-number', 'alice')).find((e) => e['event'] === 'safety-number');
    assert.equal(digits, theirs?.['safetyNumber']);
    assert.equal(digits.length, 60);
  });

  it('reacts with any single emoji, as the terminal can; something else is refused in words', async () => {
    const a = alice.page;
    await bob.ok('send', 'alice', 'one for the unicorn');
    await ui.toList(a);
    await ui.openConversation(a, 'bob');
    const theirs = a.locator('li.msg.in').filter({ hasText: 'one for the unicorn' });
    await theirs.waitFor();
    await theirs.getByTestId('react-button').click();
    const other = theirs.getByLabel('Another emoji');
    await other.fill('ok');
    await other.press('Enter');
    await theirs.getByRole('alert').filter({ hasText: 'a reaction is one emoji' }).waitFor();
    await other.fill('🦄');
    await other.press('Enter');
    await theirs.locator('[data-testid="reactions"] li[data-emoji="🦄"]').waitFor();
    let reactions: unknown;
    for (let i = 0; i < POLLS; i++) {
      await bob.ok('recv');
      reactions = (await bob.ok('history', 'alice')).find((e) => e['text'] === 'one for the unicorn')?.['reactions'];
      if (reactions !== undefined) break;
      await new Promise((r) => setTimeout(r, POLL_PAUSE_MS));
    }
    assert.deepEqual(reactions, [{ from: 'alice', emoji: '🦄' }]);
  });

  it('typing indicators off in Settings: the page sends none and shows none', async () => {
    const a = alice.page;
    await a.getByRole('link', { name: 'Settings' }).click();
    const box = a.getByTestId('typing-indicators');
    await box.waitFor();
    assert.equal(await box.isChecked(), true);
    await box.uncheck();
    await a.waitForFunction(() => !(document.querySelector('[data-testid="typing-indicators"]') as HTMLInputElement | null)?.checked);
    // The setting is kept with the account's records: a reload still has it off.
    await a.reload();
    await a.getByTestId('typing-indicators').waitFor();
    await a.waitForFunction(() => (document.querySelector('[data-testid="chat-settings"]') as HTMLFieldSetElement | null)?.disabled === false);
    assert.equal(await a.getByTestId('typing-indicators').isChecked(), false);
    await ui.toList(a);
    await ui.openConversation(a, 'bob');
    // Anything the typing line ever says from now on is recorded.
    await a.evaluate(() => {
      const w = window as unknown as { typingSeen: string[] };
      w.typingSeen = [];
      const el = document.querySelector('[data-testid="typing"]')!;
      new MutationObserver(() => {
        const t = el.textContent ?? '';
        if (t !== '') w.typingSeen.push(t);
      }).observe(el, { childList: true, characterData: true, subtree: true });
    });

    const chat = bob.chat('alice');
    try {
      await chat.seen((e) => e['event'] === 'chat-ready', 'chat ready');
      // bob types, then sends: the message arrives, the typing never showed.
      chat.write('/typing\n');
      await chat.seen((e) => e['event'] === 'typing-sent', 'typing sent');
      chat.write('typed while alice had indicators off\n');
      await ui.waitIncoming(a, 'typed while alice had indicators off');
      // alice types, then sends: bob gets the message and never a typing event from her.
      await a.locator('#composer-text').pressSequentially('writing quietly');
      await a.locator('#composer-text').press('Enter');
      await chat.seen((e) => e['event'] === 'message' && e['text'] === 'writing quietly', 'bob gets the message');
      assert.deepEqual(chat.events().filter((e) => e['event'] === 'typing'), [], 'no typing from alice reached bob');
      assert.deepEqual(await a.evaluate(() => (window as unknown as { typingSeen: string[] }).typingSeen), [], 'the page showed no typing');
    } finally {
      await chat.end();
    }
  });

  it('Leave group: the page says alice is no longer a member; the terminals see her leave and bob becomes admin', async () => {
    const a = alice.page;
    await a.evaluate((g) => {
      location.hash = `#/g/${g}/members`;
    }, group);
    await a.getByRole('button', { name: 'Leave group' }).click();
    await a.getByText('You are no longer a member of this group.').waitFor();
    assert.equal(await a.getByRole('button', { name: 'Leave group' }).count(), 0);
    await a.locator(`a[data-contact="g:${group}"]`).click();
    await a.locator('li.system-line').filter({ hasText: 'alice left the group' }).waitFor();
    assert.equal(await a.locator('#composer-text').count(), 0, 'no composer in a group alice left');

    for (const [who, name] of [[bob, 'bob'], [carol, 'carol']] as const) {
      let lines: unknown[] = [];
      for (let i = 0; i < POLLS; i++) {
        await who.ok('recv');
        lines = (await who.ok('history', '#parity')).filter((e) => e['system'] === true).map((e) => e['text']);
        if (lines.includes('alice left the group')) break;
        await new Promise((r) => setTimeout(r, POLL_PAUSE_MS));
      }
      assert.ok(lines.includes('alice left the group'), `${name}: ${JSON.stringify(lines)}`);
    }
    const members = (await carol.ok('group', 'members', '#parity')).filter((e) => e['event'] === 'member');
    assert.deepEqual(members.map((e) => [e['username'], e['admin']]), [['bob', true], ['carol', false]]);
  });
});
