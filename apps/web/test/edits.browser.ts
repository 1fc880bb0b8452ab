/**
 * Edits, deletions for everyone, reactions, disappearing messages and search in the browser, end
 * to end: a real server process, alice in Chromium and bob on the CLI. The edit and delete
 * controls are driven with the keyboard; the disappearing messages are checked in the browser's
 * IndexedDB records (their count), not only on screen. Screenshots: docs/screenshots/edits-*.png.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openHome } from '@tacit/client/node';
import { CLI_PASSPHRASE, DESKTOP, Profile, screenshot } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('edits, reactions, disappearing messages and search in the web client', { timeout: 15 * 60_000 }, () => {
  const alice = new Profile('e-alice', DESKTOP);
  const web = browserSuite('e', { profiles: [alice] });
  const bob = web.cli('bob');

  /** Every record key of this browser's IndexedDB vault (keys are in the clear, values sealed). */
  const vaultKeys = async (): Promise<string[]> =>
    (await alice.page.evaluate(`(async () => {
      const db = await new Promise((res, rej) => {
        const r = indexedDB.open('tacit');
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(new Error('open'));
      });
      const keys = await new Promise((res) => {
        const r = db.transaction('kv', 'readonly').objectStore('kv').getAllKeys();
        r.onsuccess = () => res(r.result);
      });
      db.close();
      return keys.map(String);
    })()`)) as string[];

  /** Message records in this browser's IndexedDB (keys are in the clear, values sealed). */
  const messageRecords = async (): Promise<number> => (await vaultKeys()).filter((k) => k.startsWith('m/')).length;

  /** Removes the search index and its build state from the vault, as a vault from before the index has neither. */
  const dropSearchIndex = async (): Promise<number> =>
    (await alice.page.evaluate(`(async () => {
      const db = await new Promise((res, rej) => {
        const r = indexedDB.open('tacit');
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(new Error('open'));
      });
      const tx = db.transaction('kv', 'readwrite');
      const store = tx.objectStore('kv');
      const keys = await new Promise((res) => {
        const r = store.getAllKeys();
        r.onsuccess = () => res(r.result.map(String));
      });
      const gone = keys.filter((k) => k.startsWith('sx/') || k === 'meta/search');
      for (const k of gone) store.delete(k);
      await new Promise((res, rej) => {
        tx.oncomplete = () => res(undefined);
        tx.onerror = () => rej(new Error('delete'));
      });
      db.close();
      return gone.length;
    })()`)) as number;

  it('alice edits and deletes her messages with the keyboard; bob (terminal) gets both', async () => {
    const a = await alice.open(web.server.url);
    await ui.register(a, 'alice');
    await bob.ok('register', 'bob', '--server', web.server.url);
    await ui.startConversation(a, 'bob');
    await ui.send(a, 'helo bob, teh plan is ready');
    await ui.waitOutgoing(a, 'teh plan');
    await ui.send(a, 'the door code is 4711');
    await ui.waitOutgoing(a, 'door code');
    await bob.ok('recv');

    // Edit: Tab-reachable button, Enter opens the editor with the text selected, Enter saves.
    const first = a.locator('li.msg.out').filter({ hasText: 'teh plan' });
    await first.getByTestId('edit-button').focus();
    await a.keyboard.press('Enter');
    await a.getByTestId('edit-text').waitFor();
    // Typing goes where the focus is: the editor has it, with its text selected, as soon as it shows.
    assert.equal(await a.evaluate(`document.activeElement?.dataset.testid`), 'edit-text');
    await a.keyboard.type('hello bob, the plan is ready');
    await screenshot(a, 'edits-editing');
    await a.keyboard.press('Enter');
    await a.locator('li.msg.out').filter({ hasText: 'hello bob, the plan is ready' }).getByTestId('msg-edited').waitFor();

    // Delete for everyone: a second, explicit step.
    const second = a.locator('li.msg.out').filter({ hasText: 'door code' });
    await second.getByTestId('delete-button').focus();
    await a.keyboard.press('Enter');
    await a.getByTestId('confirm-delete').waitFor();
    await a.keyboard.press('Enter');
    await a.getByTestId('msg-deleted').filter({ hasText: 'This message was deleted' }).waitFor();
    assert.equal(await a.locator('li.msg').filter({ hasText: 'door code' }).count(), 0);

    const got = (await bob.ok('recv')).filter((e) => e['event'] === 'edited' || e['event'] === 'deleted');
    assert.deepEqual(got.map((e) => e['event']), ['edited', 'deleted']);
    const hist = (await bob.ok('history', 'alice')).filter((e) => e['event'] === 'history');
    assert.deepEqual(hist.map((e) => [e['text'], e['edited'] !== undefined, e['deleted'] === true]), [
      ['hello bob, the plan is ready', true, false],
      ['', false, true],
    ]);
  });

  it('reactions both ways: alice picks one with the keyboard and replaces it; bob reacts from the terminal', async () => {
    const a = alice.page;
    await bob.ok('send', 'alice', 'nice work');
    await ui.waitIncoming(a, 'nice work');
    const theirs = a.locator('li.msg.in').filter({ hasText: 'nice work' });
    await theirs.getByTestId('react-button').focus();
    await a.keyboard.press('Enter');
    await a.getByTestId('reaction-picker').waitFor();
    // The first emoji has focus: Enter picks 👍; then replace it with 🎉.
    await a.keyboard.press('Enter');
    await theirs.locator('[data-testid="reactions"] li[data-emoji="👍"]').waitFor();
    await theirs.getByTestId('react-button').click();
    await a.getByRole('button', { name: 'React 🎉' }).click();
    await theirs.locator('[data-testid="reactions"] li[data-emoji="🎉"]').waitFor();
    assert.equal(await theirs.locator('[data-testid="reactions"] li').count(), 1, 'one reaction per person');

    const reactions = (await bob.ok('recv')).filter((e) => e['event'] === 'reaction');
    assert.deepEqual(reactions.map((e) => e['emoji']), ['👍', '🎉']);
    const mine = (await bob.ok('history', 'alice')).filter((e) => e['event'] === 'history' && e['text'] === 'nice work');
    assert.deepEqual(mine[0]!['reactions'], [{ from: 'alice', emoji: '🎉' }]);

    const planId = String((await bob.ok('history', 'alice')).find((e) => e['text'] === 'hello bob, the plan is ready')!['id']);
    await bob.ok('react', 'alice', planId.slice(0, 8), '❤️');
    await a.locator('li.msg.out').filter({ hasText: 'the plan is ready' }).locator('li[data-emoji="❤️"]').waitFor();
    await screenshot(a, 'edits-reactions');
  });

  it('bob sets a 3 second timer: alice is shown it, and her copies go from IndexedDB after it', async () => {
    const a = alice.page;
    await bob.ok('timer', 'alice', '3s');
    await a.locator('li.system-line').filter({ hasText: 'bob set disappearing messages to 3 seconds' }).waitFor();
    assert.equal(await a.getByTestId('timer-select').inputValue(), '3000');
    await screenshot(a, 'edits-timer');
    const before = await messageRecords();
    await ui.send(a, 'this vanishes soon');
    await bob.ok('send', 'alice', 'so does my answer');
    await ui.waitIncoming(a, 'so does my answer');
    // Both leave the page and the store (the timer runs from sending, and from reading on screen).
    await a.locator('li.msg').filter({ hasText: 'this vanishes soon' }).waitFor({ state: 'detached' });
    await a.locator('li.msg').filter({ hasText: 'so does my answer' }).waitFor({ state: 'detached' });
    for (let i = 0; i < 100 && (await messageRecords()) > before; i++) await new Promise((r) => setTimeout(r, 200));
    assert.equal(await messageRecords(), before);
    // Turned off from the browser: bob is told.
    await a.getByTestId('timer-select').selectOption('0');
    const off = (await bob.ok('recv')).filter((e) => e['event'] === 'message' && /turned off disappearing messages/.test(String(e['text'])));
    assert.equal(off.length, 1);
  });

  it('a timer of any length from "Other…", as tacit timer takes it; nonsense and out of range refused in words', async () => {
    const a = alice.page;
    const select = a.getByTestId('timer-select');
    await select.selectOption('other');
    const field = a.getByTestId('timer-other');
    for (const bad of ['forever', '5w', '0.5s']) {
      await field.fill(bad);
      await field.press('Enter');
      await a.getByRole('alert').filter({ hasText: 'Type a duration from 1 second to 4 weeks' }).waitFor();
    }
    assert.equal(await select.inputValue(), 'other', 'nothing was set');
    await field.fill('90m');
    await a.getByRole('button', { name: 'Set', exact: true }).click();
    await field.waitFor({ state: 'detached' });
    await a.locator('li.system-line').filter({ hasText: 'set disappearing messages to 1 hour 30 minutes' }).waitFor();
    assert.equal(await select.inputValue(), String(90 * 60_000));
    assert.equal((await select.locator('option:checked').textContent())?.trim(), '1 hour 30 minutes');
    const told = (await bob.ok('recv')).filter((e) => e['event'] === 'message' && /alice set disappearing messages to 1 hour 30 minutes/.test(String(e['text'])));
    assert.equal(told.length, 1, 'bob is told the new timer');
    await select.selectOption('0');
    const off = (await bob.ok('recv')).filter((e) => e['event'] === 'message' && /turned off disappearing messages/.test(String(e['text'])));
    assert.equal(off.length, 1);
  });

  it('search finds a word from last week, not deleted or disappeared ones', async () => {
    const a = alice.page;
    // Bob's message from a week ago: his own SDK client with its clock set back.
    const weekAgo = Date.now() - 7 * 24 * 3600_000;
    const h = await openHome({ home: bob.home, passphrase: CLI_PASSPHRASE, now: () => weekAgo });
    try {
      await h.client.connect();
      await h.client.send('alice', 'the quarterly figures are in the shared folder');
    } finally {
      await h.close();
    }
    await ui.waitIncoming(a, 'quarterly figures');
    await ui.toList(a);
    const box = a.getByTestId('search-box');
    await box.fill('quarterly');
    await box.press('Enter');
    const hit = a.getByTestId('search-hit').filter({ hasText: 'the quarterly figures are in the shared folder' });
    await hit.waitFor();
    assert.match((await hit.locator('time').getAttribute('datetime')) ?? '', new RegExp(new Date(weekAgo).toISOString().slice(0, 10)));
    await screenshot(a, 'edits-search');
    // Deleted, disappeared and edited-away words are not found; the edited text is.
    for (const gone of ['4711', 'vanishes', 'teh', 'helo']) {
      await box.fill(gone);
      await box.press('Enter');
      await a.getByTestId('search-results').filter({ hasText: 'Nothing found.' }).waitFor();
    }
    await box.fill('PLAN hello');
    await box.press('Enter');
    await a.getByTestId('search-hit').filter({ hasText: 'hello bob, the plan is ready' }).waitFor();
    assert.equal(await a.getByTestId('search-hit').count(), 1);

    // The index is kept in the vault, beside the messages; no key shows a word.
    const keys = await vaultKeys();
    assert.ok(keys.filter((k) => k.startsWith('sx/')).length >= 3, 'index records in IndexedDB');
    for (const word of ['quarterly', 'figures', 'folder', 'plan', 'hello', 'nice']) assert.ok(!keys.some((k) => k.toLowerCase().includes(word)), word);

    // A vault from before the index (no index records, no build state): after a reload the
    // index is built and the same search finds the same message.
    assert.ok((await dropSearchIndex()) >= 3);
    await a.reload();
    await a.getByTestId('me').filter({ hasText: 'alice' }).waitFor();
    await ui.toList(a);
    const again = a.getByTestId('search-box');
    await again.fill('quarterly folder');
    await again.press('Enter');
    await a.locator('[data-testid="search-results"], form.search [role="alert"]').first().waitFor();
    assert.equal(await a.locator('form.search [role="alert"]').count(), 0, `search failed: ${await a.locator('form.search').innerText()}`);
    await a.getByTestId('search-hit').filter({ hasText: 'the quarterly figures are in the shared folder' }).waitFor();
    const rebuilt = await vaultKeys();
    assert.ok(rebuilt.includes('meta/search') && rebuilt.filter((k) => k.startsWith('sx/')).length >= 3, 'the index was built again in the vault');
    await again.fill('4711');
    await again.press('Enter');
    await a.getByTestId('search-results').filter({ hasText: 'Nothing found.' }).waitFor();
  });
});
