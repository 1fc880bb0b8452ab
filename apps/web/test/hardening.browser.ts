/**
 * Hardening of the browser client (issue 13): someone else's text cannot reorder what the page
 * shows (bidirectional overrides are neutralized as the CLI does).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Cli, DESKTOP, Profile, ServerProcess, assertBuilt, freePort, tempDir } from './harness.ts';
import * as ui from './ui.ts';

describe('tacit web client, hardening', { timeout: 10 * 60_000 }, () => {
  let server: ServerProcess;
  const rae = new Profile('rae', DESKTOP);
  const samHome = tempDir('sam');
  const sam = new Cli(samHome);
  const dataDir = tempDir('server-hardening');

  before(async () => {
    assertBuilt();
    server = new ServerProcess(dataDir, await freePort(), 'open');
    await server.start();
  });

  after(async () => {
    await rae.close().catch(() => undefined);
    await server?.stop();
    const errors = [...rae.pageErrors];
    rae.destroy();
    for (const d of [samHome, dataDir]) rmSync(d, { recursive: true, force: true });
    assert.deepEqual(errors, [], 'no uncaught errors in the page');
  });

  it('bidirectional overrides and control characters in a message are shown as U+FFFD, in the conversation and its preview', async () => {
    await rae.open(server.url);
    await ui.register(rae.page, 'rae');
    const r = await sam.run('register', 'sam', '--server', server.url);
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
});
