/**
 * The web client's features in Firefox (Debian's firefox-esr over WebDriver BiDi), end to end
 * through a real tacit server process, with the other parties on the CLI: the Firefox page links
 * as a second device of an account made on the CLI and gets a message sent to it; files both ways
 * (a file and an image picked in the file input reach the CLI byte for byte; an image from the CLI shows
 * inline and, like a file, is saved by the browser with the sent bytes); a group of three created
 * in Firefox; an edit (typed), a deletion for everyone and a reaction, as the CLI sees them;
 * search. Run with `npm run test:firefox -w @tacit/web` (needs a built app).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cli, ServerProcess, assertBuilt, freePort, png, tempDir } from './harness.ts';
import { FirefoxPage, message } from './firefox.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const sent = (text: string) => `${message('out', text)}?.dataset.state === 'sent'`;
/** A page expression: the file card named `name`, in a message of direction `dir`. */
const fileCard = (dir: 'in' | 'out', name: string) => `document.querySelector('li.msg.${dir} [data-testid="file"][data-name=${JSON.stringify(name)}]')`;

interface CliEvent {
  event: string;
  direction?: 'in' | 'out';
  from?: string;
  text?: string;
  groupTitle?: string;
  id?: string;
  emoji?: string;
  edited?: unknown;
  deleted?: boolean;
  reactions?: { from: string; emoji: string }[];
  file?: { name: string; path: string; type?: string; width?: number; height?: number };
}

describe('the web client\u2019s features in Firefox', { timeout: 10 * 60_000 }, () => {
  let server: ServerProcess;
  const ff = new FirefoxPage();
  const dirs = ['server', 'fern', 'bob', 'carol', 'files'].map((n) => tempDir(`ffx-${n}`));
  const [dataDir, fernHome, bobHome, carolHome, files] = dirs as [string, string, string, string, string];
  /** fern's first device (the CLI); Firefox becomes her second. */
  const fern = new Cli(fernHome);
  const bob = new Cli(bobHome);
  const carol = new Cli(carolHome);
  const recv = async (cli: Cli): Promise<CliEvent[]> => (await cli.ok('recv')) as unknown as CliEvent[];

  before(async () => {
    assertBuilt();
    server = new ServerProcess(dataDir, await freePort(), 'open');
    await server.start();
    await ff.launch();
    for (const [cli, name] of [[fern, 'fern'], [bob, 'bob'], [carol, 'carol']] as const) await cli.ok('register', name, '--server', server.url);
  });

  after(async () => {
    await ff.close().catch(() => undefined);
    await server?.stop();
    const ffErrors = [...ff.pageErrors];
    ff.destroy();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    assert.deepEqual(ffErrors, [], 'no uncaught errors in the Firefox page');
  });

  it('links as a second device of an account made on the CLI, and gets a message sent to that account', async () => {
    await ff.goto(server.url + '/');
    await ff.waitFor(`document.querySelector('#reg-username')`, 'the register screen');
    await ff.eval(`([...document.querySelectorAll('button')].find((b) => b.textContent === 'Link to an existing account').click(), true)`);
    await ff.waitFor(`document.querySelector('#link-name')`, 'the link screen');
    await ff.fill('#link-name', 'firefox');
    await ff.eval(`(document.querySelector('#link-name').form.requestSubmit(), true)`);
    await ff.waitFor(`document.querySelector('[data-testid="link-code"]')?.textContent.trim().startsWith('tacit-link:')`, 'the link code');
    const code = ((await ff.text('[data-testid="link-code"]')) ?? '').trim();
    const added = await fern.ok('devices', 'add', code);
    assert.equal(added.find((e) => e['event'] === 'device-added')?.['deviceId'], 2);
    await ff.waitFor(`document.querySelector('[data-testid="me"]')?.textContent === 'fern'`, 'signed in as fern');

    await bob.ok('send', 'fern', 'hello fern, on every device');
    await ff.waitFor(`document.querySelector('a[data-contact="bob"]')`, 'the conversation with bob in the list');
    await ff.openChat('bob');
    await ff.waitFor(message('in', 'hello fern, on every device'), 'bob\u2019s message on the linked device');
    // The CLI device has it too: the account got it, not just this browser.
    await fern.ok('recv');
    const onCli = (await fern.ok('history', 'bob')).filter((e) => e['event'] === 'history').map((e) => e['text']);
    assert.deepEqual(onCli, ['hello fern, on every device']);
  });

  it('sends files picked in the file input (the CLI gets the same bytes); an image and a file from the CLI show and are saved with the sent bytes', async () => {
    // Two files at once (the input takes several): a file, and an image, which Firefox decodes
    // (for its size and a thumbnail) before it goes.
    const upBytes = randomBytes(48 * 1024);
    const upPath = join(files, 'from-firefox.bin');
    writeFileSync(upPath, upBytes);
    const upImage = png(120, 90);
    const upImagePath = join(files, 'from-firefox.png');
    writeFileSync(upImagePath, upImage);
    await ff.setFiles('[data-testid="file-input"]', [upPath, upImagePath]);
    for (const name of ['from-firefox.bin', 'from-firefox.png']) await ff.waitFor(`${fileCard('out', name)}?.closest('li.msg').dataset.state === 'sent'`, `${name} to be sent`);
    const got = (await recv(bob)).filter((e) => e.event === 'message' && e.file !== undefined);
    const bin = got.find((e) => e.file?.name === 'from-firefox.bin')?.file;
    const img = got.find((e) => e.file?.name === 'from-firefox.png')?.file;
    assert.ok(bin && img, 'bob got both files');
    assert.equal(sha(readFileSync(bin.path)), sha(upBytes));
    assert.equal(sha(readFileSync(img.path)), sha(upImage));
    assert.deepEqual([img.type, img.width, img.height], ['image/png', 120, 90], 'sent as an image, with the size Firefox read from it');

    const image = png(240, 150);
    const imagePath = join(files, 'view.png');
    writeFileSync(imagePath, image);
    await bob.ok('send', 'fern', '--file', imagePath, 'the view');
    await ff.waitFor(
      `(() => { const i = ${fileCard('in', 'view.png')}?.querySelector('img[data-testid="file-image"]'); return i && i.complete && i.naturalWidth === 240 && i.src.startsWith('blob:'); })()`,
      'the image shown inline',
    );
    await ff.waitFor(message('in', 'the view'), 'the caption');
    // Save: the browser writes the decrypted bytes to disk.
    await ff.eval(`(${fileCard('in', 'view.png')}.querySelector('[data-testid="file-save"]').click(), true)`);
    assert.equal(sha(await ff.download('view.png')), sha(image), 'the saved image has the sent bytes');

    const docBytes = randomBytes(40 * 1024);
    const docPath = join(files, 'notes.bin');
    writeFileSync(docPath, docBytes);
    await bob.ok('send', 'fern', '--file', docPath);
    await ff.waitFor(`${fileCard('in', 'notes.bin')}?.querySelector('[data-testid="file-download"]')`, 'the file card');
    // Download: fetched, checked and decrypted, then handed to the browser to save.
    await ff.eval(`(${fileCard('in', 'notes.bin')}.querySelector('[data-testid="file-download"]').click(), true)`);
    assert.equal(sha(await ff.download('notes.bin')), sha(docBytes), 'the downloaded file has the sent bytes');
    await ff.waitFor(`${fileCard('in', 'notes.bin')}?.querySelector('[data-testid="file-save"]')?.href.startsWith('blob:')`, 'Save after the download');
  });

  it('creates a group with two others, sends to it and gets a member\u2019s reply', async () => {
    await ff.route('#/new-group');
    await ff.waitFor(`document.querySelector('#group-title')`, 'the new group form');
    await ff.fill('#group-title', 'Ops');
    await ff.fill('#group-members', 'bob, carol');
    await ff.eval(`(document.querySelector('#group-title').form.requestSubmit(), true)`);
    await ff.waitFor(`document.querySelector('#conv-title')?.textContent === 'Ops'`, 'the new group');
    assert.match(await ff.eval<string>('location.hash'), /^#\/g\/[0-9a-f]{32}$/);
    // The composer has the focus: the keyboard sends.
    await ff.waitFor(`document.activeElement?.id === 'composer-text'`, 'the composer focused');
    await ff.type('hello ops', 'Enter');
    await ff.waitFor(sent('hello ops'), 'the group message to be stored');
    for (const cli of [bob, carol]) {
      const texts = (await recv(cli)).filter((e) => e.event === 'message' && e.groupTitle === 'Ops').map((e) => [e.from, e.text]);
      assert.deepEqual(texts.at(-1), ['fern', 'hello ops']);
    }
    await carol.ok('send', '#ops', 'carol here');
    await ff.waitFor(`[...document.querySelectorAll('li.msg.in[data-from="carol"] .msg-text')].some((e) => e.textContent === 'carol here')`, 'carol\u2019s reply in the group');
  });

  it('edits, deletes for everyone and reacts; the CLI sees each', async () => {
    await ff.openChat('bob');
    await ff.waitFor(`document.activeElement?.id === 'composer-text'`, 'the composer focused');
    await ff.type('teh meeting is at noon', 'Enter');
    await ff.waitFor(sent('teh meeting is at noon'), 'the first message');
    await ff.type('the door code is 4711', 'Enter');
    await ff.waitFor(sent('the door code is 4711'), 'the second message');
    await recv(bob);

    // Edit: the editor has the focus with the text selected as it opens; typing replaces it.
    // (Buttons are clicked: see FirefoxPage.type on Enter and buttons in this browser.)
    await ff.eval(`(${message('out', 'teh meeting is at noon')}.querySelector('[data-testid="edit-button"]').click(), true)`);
    await ff.waitFor(`document.activeElement?.dataset.testid === 'edit-text'`, 'the editor focused');
    await ff.type('the meeting is at noon', 'Enter');
    await ff.waitFor(`${message('out', 'the meeting is at noon')}?.querySelector('[data-testid="msg-edited"]')`, 'the edit');

    // Delete for everyone: a second, explicit step, which has the focus.
    await ff.eval(`(${message('out', 'the door code is 4711')}.querySelector('[data-testid="delete-button"]').click(), true)`);
    await ff.waitFor(`document.activeElement?.dataset.testid === 'confirm-delete'`, 'the confirmation focused');
    await ff.eval(`(document.activeElement.click(), true)`);
    await ff.waitFor(`document.querySelector('li.msg.out [data-testid="msg-deleted"]') && !${message('out', 'the door code is 4711')}`, 'the deletion');

    // React: the first emoji (👍) has the focus when the picker opens.
    await ff.eval(`(${message('in', 'hello fern, on every device')}.querySelector('[data-testid="react-button"]').click(), true)`);
    await ff.waitFor(`document.activeElement?.getAttribute('aria-label') === 'React 👍'`, 'the picker focused');
    await ff.eval(`(document.activeElement.click(), true)`);
    await ff.waitFor(`${message('in', 'hello fern, on every device')}?.querySelector('[data-testid="reactions"] li[data-emoji="👍"].mine')`, 'the reaction');

    const seen = (await recv(bob)).filter((e) => ['edited', 'deleted', 'reaction'].includes(e.event));
    assert.deepEqual(seen.map((e) => e.event), ['edited', 'deleted', 'reaction']);
    assert.equal(seen[2]?.emoji, '👍');
    const history = ((await bob.ok('history', 'fern')) as unknown as CliEvent[]).filter((e) => e.event === 'history');
    const mine = history.filter((e) => e.direction === 'in' && e.file === undefined).slice(-2);
    assert.deepEqual(
      mine.map((e) => [e.text, e.edited !== undefined, e.deleted === true]),
      [
        ['the meeting is at noon', true, false],
        ['', false, true],
      ],
    );
    assert.deepEqual(history.find((e) => e.text === 'hello fern, on every device')?.reactions, [{ from: 'fern', emoji: '👍' }]);
  });

  it('search finds a sent word, and not a deleted or edited-away one', async () => {
    await ff.route('#/');
    await ff.waitFor(`document.querySelector('#search-box')`, 'the search box');
    const search = async (q: string) => {
      // An empty search clears the results first, so a wait cannot pass on the previous ones.
      for (const text of ['', q]) {
        await ff.fill('#search-box', text);
        await ff.eval(`(document.querySelector('#search-box').form.requestSubmit(), true)`);
        if (text === '') await ff.waitFor(`!document.querySelector('[data-testid="search-results"]')`, 'the results cleared');
      }
    };
    await search('noon');
    await ff.waitFor(
      `[...document.querySelectorAll('[data-testid="search-hit"]')].some((e) => e.textContent.includes('You: the meeting is at noon'))`,
      'the hit for a sent word',
    );
    assert.equal(await ff.eval<number>(`document.querySelectorAll('[data-testid="search-hit"]').length`), 1);
    for (const gone of ['4711', 'teh']) {
      await search(gone);
      await ff.waitFor(`document.querySelector('[data-testid="search-results"]')?.textContent === 'Nothing found.'`, `no hit for ${gone}`);
    }
  });
});
