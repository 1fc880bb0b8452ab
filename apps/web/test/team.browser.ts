/**
 * Invites and administration from the browser, on an invite-only server: the first start's link
 * opens the register form filled in; the first account is the admin, creates an invite link,
 * sees the accounts and their devices and resets one (whose page then says so in words); the
 * team directory suggests usernames; the sign-out prompt says what is lost.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DESKTOP, PHONE, Profile, screenshot } from './harness.ts';
import { browserSuite } from './suite.ts';

describe('tacit web client, invites and admins', { timeout: 10 * 60_000 }, () => {
  const ada = new Profile('ada', DESKTOP);
  const bob = new Profile('bob', PHONE);
  const web = browserSuite('team', { profiles: [ada, bob], registration: 'invite', checks: { foreign: { message: 'the page only talks to the tacit server' } } });

  it('the invite link the server printed opens the register form filled in; the first account is the admin', async () => {
    const code = web.server.firstInvite;
    assert.ok(code !== undefined);
    const a = await ada.open(`${web.server.url}/#invite=${code}`);
    assert.equal(await a.getByLabel('Invite code').inputValue(), code);
    await a.getByLabel('Username').fill('ada');
    await a.getByRole('button', { name: 'Register' }).click();
    await a.getByTestId('me').filter({ hasText: 'ada' }).waitFor();
    assert.equal(await a.evaluate(() => location.hash), '', 'the used code leaves the address bar');
    await a.getByRole('link', { name: 'Admin' }).waitFor();
  });

  it('an admin creates an invite link; opened elsewhere it registers a second, ordinary account', async () => {
    const a = ada.page;
    await a.getByRole('link', { name: 'Admin' }).click();
    await a.getByRole('heading', { name: 'Admin' }).waitFor();
    await a.getByRole('button', { name: 'Create invite link' }).click();
    const link = await a.getByTestId('invite-link').locator('input').inputValue();
    assert.match(link, new RegExp(`^${web.server.url}/#invite=[A-Za-z0-9_-]{20,}$`));
    await screenshot(a, 'admin-desktop');

    const b = await bob.open(link);
    assert.equal(await b.getByLabel('Invite code').inputValue(), link.split('#invite=')[1]);
    await b.getByLabel('Username').fill('bob');
    await b.getByRole('button', { name: 'Register' }).click();
    await b.getByTestId('me').filter({ hasText: 'bob' }).waitFor();
    // The link was single use.
    assert.equal(await b.getByRole('link', { name: 'Admin' }).count(), 0, 'bob is no admin');
    await b.evaluate(() => {
      location.hash = '#/admin';
    });
    await b.getByText('Only admins see this page.').waitFor();
  });

  it('an admin creates several invite links at once, as tacit admin invite <count>; a count out of range is refused in words', async () => {
    const a = ada.page;
    const links = a.getByTestId('invite-link').locator('input');
    const before = await links.count();
    await a.getByLabel('How many').fill('3');
    await a.getByRole('button', { name: 'Create invite links' }).click();
    await a.waitForFunction((n) => document.querySelectorAll('[data-testid="invite-link"]').length === n, before + 3);
    const all = await links.evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value));
    assert.equal(new Set(all).size, all.length, 'every link is a different code');
    for (const l of all) assert.match(l, new RegExp(`^${web.server.url}/#invite=[A-Za-z0-9_-]{20,}$`));
    for (const bad of ['21', '0']) {
      await a.getByLabel('How many').fill(bad);
      await a.getByRole('button', { name: 'Create invite links' }).click();
      await a.getByRole('alert').filter({ hasText: 'a whole number from 1 to 20' }).waitFor();
      assert.equal(await links.count(), before + 3, `nothing made for ${bad}`);
    }
    await a.getByLabel('How many').fill('1');
    await a.getByRole('button', { name: 'Create invite link', exact: true }).click();
    await a.waitForFunction((n) => document.querySelectorAll('[data-testid="invite-link"]').length === n, before + 4);
    assert.equal(await a.getByRole('alert').count(), 0, 'the error is gone after a good request');
  });

  it('the directory suggests registered usernames in "Start a conversation"', async () => {
    const b = bob.page;
    await b.evaluate(() => {
      location.hash = '#/';
    });
    await b.getByLabel('Start a conversation').focus();
    const options = b.getByTestId('directory').locator('option');
    await options.first().waitFor({ state: 'attached' });
    assert.deepEqual(await options.evaluateAll((els) => els.map((e) => (e as HTMLOptionElement).value)), ['ada'], 'everyone but oneself');
    assert.equal(await b.getByLabel('Start a conversation').getAttribute('list'), 'directory-users');
  });

  it('an admin sees accounts with their devices and resets one; that browser is told in words', async () => {
    const a = ada.page;
    await a.reload();
    await a.getByRole('link', { name: 'Admin' }).click();
    const row = (name: string) => a.getByTestId('accounts').locator(`tr[data-account="${name}"]`);
    await row('bob').waitFor();
    assert.match((await row('ada').textContent()) ?? '', /adaadmin#1/);
    assert.match((await row('bob').textContent()) ?? '', /bob#1/);
    assert.equal(await row('ada').getByRole('button').count(), 0, 'an admin cannot reset their own account here');

    await row('bob').getByRole('button', { name: 'Reset…' }).click();
    const confirm = a.getByRole('group', { name: 'Confirm reset of bob' });
    assert.match((await confirm.textContent()) ?? '', /devices, keys and undelivered messages are deleted/);
    await confirm.getByRole('button', { name: 'Reset', exact: true }).click();
    const done = a.getByTestId('reset-done');
    await done.waitFor();
    const again = await done.locator('input').inputValue();
    assert.match(again, new RegExp(`^${web.server.url}/#invite=`));

    // bob's open page loses its connection and says why, without the raw code.
    const b = bob.page;
    const stopped = b.getByRole('alert').filter({ hasText: 'The server no longer accepts this device' });
    await stopped.waitFor();
    assert.ok(!((await stopped.textContent()) ?? '').includes('UNAUTHORIZED'));

    // Signing out says what is lost, then the reset's link registers bob again.
    await b.getByRole('button', { name: 'Sign out' }).click();
    assert.match((await b.getByTestId('sign-out-warning').textContent()) ?? '', /only keys/);
    await b.getByRole('button', { name: 'Delete keys and sign out' }).click();
    await b.getByLabel('Username').waitFor();
    // Opened as a person would: a fresh load of the link.
    await b.goto('about:blank');
    await b.goto(again);
    await b.getByLabel('Username').fill('bob');
    assert.equal(await b.getByLabel('Invite code').inputValue(), again.split('#invite=')[1]);
    await b.getByRole('button', { name: 'Register' }).click();
    await b.getByTestId('me').filter({ hasText: 'bob' }).waitFor();
  });
});
