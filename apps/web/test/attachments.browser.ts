/**
 * Files between the browser and the CLI through a real server, on the phone layout: a 20 MiB file
 * CLI → browser and browser → CLI with equal SHA-256, an image shown inline from the decrypted
 * bytes (screenshot docs/screenshots/attachment-image.png), a cancelled upload retried, and the
 * page's CSP allowing blob: images and nothing broader.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PHONE, Profile, events, png, screenshot } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('files in the web client', { timeout: 10 * 60_000 }, () => {
  const alice = new Profile('att-alice', PHONE, { acceptDownloads: true });
  const web = browserSuite('att', { profiles: [alice], checks: { foreign: { message: 'the page only talks to the tacit server', ignore: (u) => u.startsWith('blob:') } } });
  const bob = web.cli('bob');
  const files = web.dir('files');

  before(async () => {
    const r = await bob.run('register', 'bob', '--server', web.server.url);
    assert.equal(r.code, 0, r.stderr);
  });

  it('allows blob: images in its CSP and nothing broader', async () => {
    const html = await (await fetch(web.server.url + '/')).text();
    const csp = /Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1] ?? '';
    assert.match(csp, /img-src 'self' data: blob:;/);
    assert.doesNotMatch(csp, /\*|https?:|unsafe-inline/);
  });

  it('shows an image from the CLI inline, from the decrypted bytes', async () => {
    const a = await alice.open(web.server.url);
    await ui.register(a, 'alice');
    await ui.startConversation(a, 'bob');
    const image = join(files, 'sunset.png');
    writeFileSync(image, png(480, 300));
    const r = await bob.run('send', 'alice', '--file', image, 'the view from here');
    assert.equal(r.code, 0, r.stderr);
    const img = a.getByTestId('file-image');
    await img.waitFor();
    await a.waitForFunction(() => {
      const el = document.querySelector('[data-testid="file-image"]') as HTMLImageElement | null;
      return el !== null && el.complete && el.naturalWidth === 480;
    });
    assert.match((await img.getAttribute('src')) ?? '', /^blob:/);
    await ui.waitIncoming(a, 'the view from here');
    await screenshot(a, 'attachment-image');
  });

  it('moves 20 MiB CLI → browser and browser → CLI with equal SHA-256', async () => {
    const a = alice.page;
    const big = randomBytes(20 * MiB);
    const path = join(files, 'data.bin');
    writeFileSync(path, big);
    const r = await bob.run('send', 'alice', '--file', path);
    assert.equal(r.code, 0, r.stderr);
    const card = a.locator('[data-testid="file"][data-name="data.bin"]');
    await card.getByTestId('file-download').click();
    const save = card.getByTestId('file-save');
    await save.waitFor({ timeout: 120_000 });
    assert.match((await save.getAttribute('href')) ?? '', /^blob:/);
    const [download] = await Promise.all([a.waitForEvent('download'), save.click()]);
    assert.equal(download.suggestedFilename(), 'data.bin', 'saved under its original name');
    assert.equal(sha(readFileSync(await download.path())), sha(big));

    // Browser → CLI: the attach button's file input, progress shown while it goes up.
    const up = randomBytes(20 * MiB);
    const upPath = join(files, 'from-browser.bin');
    writeFileSync(upPath, up);
    await a.getByTestId('attach').waitFor();
    await a.getByTestId('file-input').setInputFiles(upPath);
    await a.locator('li.msg.out[data-state="sent"] [data-name="from-browser.bin"]').waitFor({ timeout: 180_000 });
    const got = await bob.run('recv');
    assert.equal(got.code, 0, got.stderr);
    const ev = events<{ event: string; file?: { name: string; path: string } }>(got.stdout).find((e) => e.event === 'message' && e.file?.name === 'from-browser.bin');
    assert.ok(ev?.file, got.stdout);
    assert.equal(sha(readFileSync(ev.file.path)), sha(up));
  });

  it('cancels an upload (the message fails) and Retry sends it', async () => {
    const a = alice.page;
    const path = join(files, 'cancel-me.bin');
    writeFileSync(path, randomBytes(30 * MiB));
    await a.getByTestId('file-input').setInputFiles(path);
    const msg = a.locator('li.msg.out').filter({ has: a.locator('[data-name="cancel-me.bin"]') });
    await msg.getByTestId('file-cancel').click();
    await msg.and(a.locator('[data-state="failed"]')).waitFor();
    await msg.getByRole('button', { name: 'Retry' }).click();
    await msg.and(a.locator('[data-state="sent"]')).waitFor({ timeout: 180_000 });
    const history = await bob.run('recv');
    assert.match(history.stdout, /cancel-me\.bin/);
  });
});
