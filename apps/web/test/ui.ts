/** Page-level steps of the browser tests, written against labels and roles a person would use. */
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
