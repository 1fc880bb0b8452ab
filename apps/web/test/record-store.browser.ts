/**
 * The record store conformance suite on the IndexedDB implementation, in Chromium: the suite and
 * the store are bundled into a page (test/pages/record-store.page.ts), which runs every case and
 * hands back the results (a failure names the case).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, STEP_TIMEOUT_MS } from './harness.ts';
import { servePage, type ServedPage } from './pagebuild.ts';
import { recordStoreConformance } from '../../../packages/client/test/record-store-conformance.ts';

interface Result {
  title: string;
  ok: boolean;
  error?: string;
}

describe('record store conformance in Chromium (IndexedDB)', { timeout: 10 * 60_000 }, () => {
  let page: ServedPage;
  let browser: Browser;
  let results: Result[] = [];

  before(async () => {
    page = await servePage('record-store.html');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: STEP_TIMEOUT_MS });
    const p = await browser.newPage();
    const errors: string[] = [];
    p.on('pageerror', (e) => errors.push(e.message.split('\n')[0] ?? ''));
    await p.goto(page.url);
    results = await p.evaluate(() => (window as unknown as { conformance: Promise<Result[]> }).conformance);
    assert.deepEqual(errors, []);
  });

  after(async () => {
    await browser?.close();
    await page?.close();
  });

  it('ran every case of the suite', () => {
    const titles: string[] = [];
    recordStoreConformance('indexeddb', (title) => titles.push(title), async () => assert.fail('not run here'));
    assert.deepEqual(results.map((r) => r.title), titles);
  });

  it('passes every case', () => {
    const failed = results.filter((r) => !r.ok).map((r) => `${r.title}: ${r.error}`);
    assert.deepEqual(failed, []);
  });
});
