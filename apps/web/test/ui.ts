/** Page-level steps of the browser tests, written against labels and roles a person would use. */
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';

export async function register(page: Page, username: string, invite?: string): Promise<void> {
  await page.getByLabel('Username').fill(username);
  if (invite !== undefined) await page.getByLabel('Invite code').fill(invite);
  await page.getByRole('button', { name: 'Register' }).click();
  await page.getByTestId('me').filter({ hasText: username }).waitFor();
}

export async function toList(page: Page): Promise<void> {
  await page.evaluate(() => {
    location.hash = '#/';
  });
  await page.getByLabel('Start a conversation').waitFor();
}

export async function startConversation(page: Page, name: string): Promise<void> {
  await toList(page);
  const box = page.getByLabel('Start a conversation');
  await box.fill(name);
  await box.press('Enter');
  await page.locator('#conv-title').filter({ hasText: name }).waitFor();
}

export async function openConversation(page: Page, name: string): Promise<void> {
  await page.locator(`a[data-contact="${name}"]`).click();
  await page.locator('#conv-title').filter({ hasText: name }).waitFor();
}

export async function unreadCount(page: Page, name: string): Promise<number> {
  const badge = page.locator(`a[data-contact="${name}"] [data-testid="unread"]`);
  if ((await badge.count()) === 0) return 0;
  return Number(await badge.textContent());
}

export async function waitUnread(page: Page, name: string, n: number): Promise<void> {
  await page.locator(`a[data-contact="${name}"] [data-testid="unread"]`).filter({ hasText: new RegExp(`^${n}$`) }).waitFor();
}

/** Types into the composer and presses Enter (the keyboard path). */
export async function send(page: Page, text: string): Promise<void> {
  const box = page.locator('#composer-text');
  await box.fill(text);
  await box.press('Enter');
}

export async function waitOutgoing(page: Page, text: string, state: 'queued' | 'sent' | 'failed' = 'sent'): Promise<void> {
  await page.locator(`li.msg.out[data-state="${state}"]`).filter({ hasText: text }).first().waitFor();
}

export async function waitIncoming(page: Page, text: string): Promise<void> {
  await page.locator('li.msg.in').filter({ hasText: text }).first().waitFor();
}

/** The texts of the open conversation, in display order, with direction. */
export async function transcript(page: Page): Promise<string[]> {
  return page.locator('li.msg').evaluateAll((els) =>
    els.map((e) => `${(e as HTMLElement).dataset['dir']}:${e.querySelector('.msg-text')?.textContent ?? ''}`),
  );
}

export async function safetyDigits(page: Page): Promise<string> {
  const el = page.getByTestId('safety-number');
  await el.waitFor();
  return ((await el.textContent()) ?? '').replace(/\D/g, '');
}

/** Polls a page expression, bounded (waitForFunction would need eval, which the page's CSP refuses). */
export async function until(page: Page, expr: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if ((await page.evaluate(expr)) === true) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${expr}`);
}

/** Sends the page to the background or brings it back (a headless page is always visible). */
export async function setVisibility(page: Page, state: 'hidden' | 'visible'): Promise<void> {
  await page.evaluate(`(() => {
      Object.defineProperty(document, 'visibilityState', { get: () => '${state}', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    })()`);
}

/**
 * Wraps the page's Notification constructor to record what it is given in `window.__notes`
 * (headless Chromium shows nothing on screen); with `closes`, also the tag of every notification
 * the page closes, in `window.__closed`. A string, not a function: tsx would wrap a function.
 */
export async function recordNotifications(page: Page, opts: { closes?: boolean } = {}): Promise<void> {
  const closes = opts.closes
    ? `
      window.__closed = [];
      const close = Real.prototype.close;
      Real.prototype.close = function () { window.__closed.push(this.tag); return close.call(this); };`
    : '';
  await page.evaluate(`(() => {
      window.__notes = [];
      const Real = window.Notification;${closes}
      function Recorder(title, options) {
        window.__notes.push({ title, body: options && options.body, tag: options && options.tag });
        return new Real(title, options);
      }
      Object.defineProperty(Recorder, 'permission', { get: () => Real.permission });
      Recorder.requestPermission = (...args) => Real.requestPermission(...args);
      window.Notification = Recorder;
    })()`);
}

/** The notifications recorded by `recordNotifications`. */
export async function notes(page: Page): Promise<{ title: string; body: string; tag: string }[]> {
  return page.evaluate('window.__notes');
}

/** On a new device's first screen: asks to link it under `deviceName` and returns the code it shows. */
export async function showLinkCode(page: Page, deviceName: string): Promise<string> {
  await page.getByRole('button', { name: 'Link to an existing account' }).click();
  await page.getByLabel('Name of this device').fill(deviceName);
  await page.getByRole('button', { name: 'Show a link code' }).click();
  return ((await page.getByTestId('link-code').textContent()) ?? '').trim();
}

/** A CLI run (web.cli(...).run) that must succeed; its stderr is the failure message. */
export async function ok(r: Promise<{ code: number | null; stderr: string }>): Promise<void> {
  const x = await r;
  assert.equal(x.code, 0, x.stderr);
}
