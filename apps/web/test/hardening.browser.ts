/**
 * Hardening of the browser client (issue 13): someone else's text cannot reorder what the page
 * shows (bidirectional overrides are neutralized as the CLI does); the optional passphrase lock
 * leaves nothing in the profile that opens the records without the passphrase.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, DESKTOP, Profile } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

describe('tacit web client, hardening', { timeout: 10 * 60_000 }, () => {
  const rae = new Profile('rae', DESKTOP);
  const copy = new Profile('rae-copy', DESKTOP);
  const web = browserSuite('hardening', { profiles: [rae, copy] });
  const sam = web.cli('sam');

  it('opened over plain http from another machine, the page says WebCrypto needs a secure context and how to fix it', async () => {
    // A name other than localhost for this loopback server: to the browser, a LAN address over http.
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, '--host-resolver-rules=MAP tacit-lan.test 127.0.0.1'] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.name));
      const origin = `http://tacit-lan.test:${web.server.port}`;
      await page.goto(origin + '/');
      assert.equal(await page.evaluate(() => window.isSecureContext), false);
      await page.getByRole('heading', { name: 'tacit needs a secure (https) address' }).waitFor();
      assert.equal(await page.getByTestId('insecure-address').textContent(), origin);
      const text = (await page.locator('main').textContent()) ?? '';
      assert.match(text, /WebCrypto/);
      assert.match(text, /TACIT_TLS_CERT/);
      assert.match(text, new RegExp(`http://localhost:${web.server.port}`));
      assert.doesNotMatch(text, /Opening tacit/);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });

  it('bidirectional overrides and control characters in a message are shown as U+FFFD, in the conversation and its preview', async () => {
    await rae.open(web.server.url);
    await ui.register(rae.page, 'rae');
    const r = await sam.run('register', 'sam', '--server', web.server.url);
    assert.equal(r.code, 0, r.stderr);
    // Displayed as sent, this would read "see invoice_fdp.exe" and isolate a fake name.
    const text = 'see invoice_\u202eexe.pdf from \u2066boss\u2069 \u202aok\u202c\u200b\u0007';
    const s = await sam.run('send', 'rae', text);
    assert.equal(s.code, 0, s.stderr);
    const p = rae.page;
    const preview = p.locator('a[data-contact="sam"] .conv-preview');
    await preview.filter({ hasText: 'see invoice_' }).waitFor();
    assert.equal(await preview.textContent(), 'see invoice_\ufffdexe.pdf from \ufffdboss\ufffd \ufffdok\ufffd\u200b\ufffd');
    await ui.openConversation(p, 'sam');
    await ui.waitIncoming(p, 'see invoice_');
    assert.deepEqual(await ui.transcript(p), ['in:see invoice_\ufffdexe.pdf from \ufffdboss\ufffd \ufffdok\ufffd\u200b\ufffd']);
    // Nothing of the kind anywhere in the rendered page.
    const body = await p.evaluate(() => document.body.innerText);
    assert.doesNotMatch(body, /[\u202a-\u202e\u2066-\u2069]/);
  });

  const PASS = 'correct horse battery staple';

  /** Everything this origin keeps in IndexedDB, as the page (or a copy of the profile) can read it. */
  async function stored(p: Page): Promise<{ sealing: string; keysFound: number; records: number; fingerprint: string; lock: string; receipts: number }> {
    // A string, not a function: tsx would wrap the helpers below in __name(), which the page lacks.
    return p.evaluate(`(async () => {
      const db = await new Promise((res, rej) => {
        const r = indexedDB.open('tacit');
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(new Error('open'));
      });
      const all = (store) =>
        new Promise((res) => {
          const s = db.transaction(store).objectStore(store);
          const k = s.getAllKeys();
          const v = s.getAll();
          v.onsuccess = () => res({ keys: k.result, values: v.result });
        });
      const meta = await all('records');
      const kv = await all('kv');
      db.close();
      let keysFound = 0;
      const walk = (v) => {
        if (v instanceof CryptoKey) keysFound++;
        else if (v !== null && typeof v === 'object' && !(v instanceof ArrayBuffer) && !ArrayBuffer.isView(v)) Object.values(v).forEach(walk);
      };
      [...meta.values, ...kv.values].forEach(walk);
      const sealing = meta.values[meta.keys.indexOf('sealing-key')];
      const hex = (b) => [...new Uint8Array(b instanceof ArrayBuffer ? b : b.buffer)].map((x) => x.toString(16).padStart(2, '0')).join('');
      const fingerprint = kv.values.map((v) => hex(v.ct)).join('.') + '|' + (sealing instanceof CryptoKey ? 'key' : hex(sealing.wrapped));
      return { sealing: sealing instanceof CryptoKey ? 'CryptoKey' : JSON.stringify(Object.keys(sealing).sort()), keysFound, records: kv.values.length, receipts: kv.keys.filter((k) => String(k).startsWith('rq/')).length, fingerprint, lock: sealing instanceof CryptoKey ? 'key' : hex(sealing.wrapped) + hex(sealing.salt) };
})()`);
  }

  async function unlock(p: Page, passphrase: string): Promise<void> {
    await p.getByLabel('Passphrase').fill(passphrase);
    await p.getByRole('button', { name: 'Unlock' }).click();
  }

  it('passphrase lock: turned on in settings, asked for on every load; a copy of the profile cannot open the records without it', async () => {
    const p = rae.page;
    // Receipts of what the page showed leave the queue (rq/) once the server has them: let them go
    // first, so the count below compares the same records.
    for (let i = 0; i < 300 && (await stored(p)).receipts > 0; i++) await new Promise((r) => setTimeout(r, 50));
    const before = await stored(p);
    assert.equal(before.sealing, 'CryptoKey', 'without the lock the key itself is in storage (and so in the profile’s files)');
    await p.getByRole('link', { name: 'Settings' }).click();
    await p.getByTestId('lock-state').filter({ hasText: /^Off/ }).waitFor();
    // Too short: refused, nothing changes.
    await p.getByLabel('Passphrase', { exact: true }).fill('short');
    await p.getByLabel('Passphrase again').fill('short');
    await p.getByRole('button', { name: 'Turn on passphrase lock' }).click();
    await p.getByTestId('lock-message').filter({ hasText: 'at least 8 characters' }).waitFor();
    assert.equal((await stored(p)).sealing, 'CryptoKey');
    await p.getByLabel('Passphrase', { exact: true }).fill(PASS);
    await p.getByLabel('Passphrase again').fill(PASS);
    await p.getByRole('button', { name: 'Turn on passphrase lock' }).click();
    // The page reloads and asks.
    await p.getByRole('heading', { name: 'tacit is locked' }).waitFor();
    const locked = await stored(p);
    assert.equal(locked.keysFound, 0, 'no CryptoKey anywhere in storage');
    assert.equal(locked.sealing, JSON.stringify(['iterations', 'iv', 'kdf', 'salt', 'v', 'wrapped']));
    assert.equal(locked.records, before.records, 'every record kept, sealed again');
    assert.equal(await p.locator('li.msg, .conv-preview').count(), 0, 'nothing shown before the passphrase');

    // A copy of the profile, opened elsewhere: locked too; a wrong passphrase is refused and changes nothing.
    await rae.close();
    cpSync(rae.dir, copy.dir, { recursive: true });
    const c = await copy.open(web.server.url);
    await c.getByRole('heading', { name: 'tacit is locked' }).waitFor();
    await unlock(c, 'correct horse battery stapler');
    await c.getByRole('alert').filter({ hasText: 'not the one that locks tacit' }).waitFor();
    assert.equal((await stored(c)).fingerprint, locked.fingerprint, 'a wrong passphrase changed nothing');
    await unlock(c, PASS);
    await c.getByTestId('me').filter({ hasText: 'rae' }).waitFor();
    await ui.openConversation(c, 'sam');
    await ui.waitIncoming(c, 'see invoice_');
    await copy.close();
  });

  /** How late the page's frames and timers come in the test below: well past the boot's IndexedDB reads. */
  const LATE_FRAME_MS = 3_000;

  it('passphrase lock: the lock screen shows even when the page’s first frame comes late (its boot is done before the view listens)', async () => {
    const p = await rae.open(web.server.url);
    await p.getByRole('heading', { name: 'tacit is locked' }).waitFor();
    // The view subscribes to the model in an effect, which runs after the next frame (or a short
    // timer). On a busy machine the boot's lock and IndexedDB reads can all finish first, and
    // 'locked' is the boot's last change: the view stayed at "Opening tacit…" for good (CI saw it
    // after "Turn on passphrase lock" and after a reload). Holding frames and timers back makes
    // that order certain.
    await p.context().addInitScript(`(() => {
      const later = window.setTimeout.bind(window);
      window.requestAnimationFrame = (cb) => later(() => cb(performance.now()), ${LATE_FRAME_MS});
      window.setTimeout = (fn, ms, ...args) => later(fn, (ms ?? 0) + ${LATE_FRAME_MS}, ...args);
      window.tacitLateFrames = true;
    })()`);
    await p.reload();
    assert.equal(await p.evaluate('window.tacitLateFrames'), true, 'frames and timers are held back in this page');
    await p.getByRole('heading', { name: 'tacit is locked' }).waitFor();
    await rae.close();
  });

  it('passphrase lock: changed with the right current passphrase only; turned off', async () => {
    const p = await rae.open(web.server.url);
    await p.getByRole('heading', { name: 'tacit is locked' }).waitFor();
    await unlock(p, PASS);
    await p.getByTestId('me').filter({ hasText: 'rae' }).waitFor();
    await p.getByRole('link', { name: 'Settings' }).click();
    await p.getByTestId('lock-state').filter({ hasText: /^On/ }).waitFor();
    const NEXT = 'another long passphrase';
    const change = async (current: string) => {
      await p.getByLabel('Current passphrase').fill(current);
      await p.getByLabel('New passphrase', { exact: true }).fill(NEXT);
      await p.getByLabel('New passphrase again').fill(NEXT);
      await p.getByRole('button', { name: 'Change passphrase' }).click();
    };
    const before = await stored(p);
    await change('not the passphrase');
    await p.getByTestId('lock-message').filter({ hasText: 'not the one that locks tacit' }).waitFor();
    assert.equal((await stored(p)).lock, before.lock, 'a wrong current passphrase changed nothing');
    await change(PASS);
    await p.getByTestId('lock-message').filter({ hasText: 'Passphrase changed.' }).waitFor();
    assert.notEqual((await stored(p)).lock, before.lock);
    await p.reload();
    await unlock(p, PASS);
    await p.getByRole('alert').filter({ hasText: 'not the one that locks tacit' }).waitFor();
    await unlock(p, NEXT);
    await p.getByTestId('me').filter({ hasText: 'rae' }).waitFor();
    // Off: the right passphrase is needed; then the page opens without asking.
    await p.getByRole('link', { name: 'Settings' }).click();
    await p.getByLabel('Current passphrase').fill(PASS);
    await p.getByRole('button', { name: 'Turn off passphrase lock' }).click();
    await p.getByTestId('lock-message').filter({ hasText: 'not the one that locks tacit' }).waitFor();
    await p.getByLabel('Current passphrase').fill(NEXT);
    await p.getByRole('button', { name: 'Turn off passphrase lock' }).click();
    await p.getByTestId('lock-message').filter({ hasText: 'Passphrase lock off.' }).waitFor();
    await p.reload();
    await p.getByTestId('me').filter({ hasText: 'rae' }).waitFor();
    await ui.openConversation(p, 'sam');
    await ui.waitIncoming(p, 'see invoice_');
  });
});
