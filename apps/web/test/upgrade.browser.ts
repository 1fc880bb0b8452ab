/**
 * Upgrade in place in the browser: a profile written by the release before record storage (its
 * IndexedDB database version 1 with the SDK's state document and the web journal, sealed as that
 * release's vault.ts did) opens with today's client, which converts it in one commit and then
 * deletes the old records. The records are the fixture made by that release
 * (packages/client/test/fixtures/legacy-v1/web-carol.json).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DESKTOP, Profile, ROOT } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

const FIXTURE = join(ROOT, 'packages/client/test/fixtures/legacy-v1/web-carol.json');

describe('browser profile of the previous release', { timeout: 10 * 60_000 }, () => {
  const carol = new Profile('carol-upgrade', DESKTOP);
  const web = browserSuite('upgrade', { profiles: [carol] });

  it('converts the old state and journal into the history, and removes the old records', async () => {
    const fixture = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { clientState: string; journal: string };
    // Write the old release's database on the origin before the client ever runs there.
    const p = await carol.open(web.server.url + '/healthz');
    const written = await p.evaluate(`(async () => {
      const f = ${JSON.stringify(fixture)};
      const db = await new Promise((res, rej) => {
        const r = indexedDB.open('tacit', 1);
        r.onupgradeneeded = () => r.result.createObjectStore('records');
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(new Error('open'));
      });
      const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
      const seal = async (name, text) => {
        const iv = crypto.getRandomValues(new Uint8Array(12));
        const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: new TextEncoder().encode('tacit-web/' + name + '/v1') }, key, new TextEncoder().encode(text));
        return { v: 1, iv, ct };
      };
      const state = await seal('client-state', f.clientState);
      const journal = await seal('journal', f.journal);
      await new Promise((res, rej) => {
        const tx = db.transaction('records', 'readwrite');
        const s = tx.objectStore('records');
        s.put(key, 'sealing-key');
        s.put(state, 'client-state');
        s.put(journal, 'journal');
        tx.oncomplete = () => res();
        tx.onerror = () => rej(new Error('write'));
      });
      db.close();
      return true;
    })()`);
    assert.equal(written, true);

    await p.goto(web.server.url + '/');
    await p.getByTestId('me').filter({ hasText: 'carol' }).waitFor();
    await ui.toList(p);
    for (const c of ['alice', 'bob', 'dave']) await p.locator(`a[data-contact="${c}"]`).waitFor();
    await ui.waitUnread(p, 'bob', 1);
    await ui.openConversation(p, 'alice');
    await ui.waitIncoming(p, 'hello carol');
    assert.deepEqual(await ui.transcript(p), ['out:hello alice (sent)', 'out:this one failed', 'out:page closed while sending', 'in:hello carol']);
    await ui.waitOutgoing(p, 'hello alice (sent)', 'sent');
    await ui.waitOutgoing(p, 'this one failed', 'failed');
    await p.locator('li.msg.out .msg-error').filter({ hasText: /page closed while this was sending/ }).waitFor();
    await ui.openConversation(p, 'dave');
    await ui.waitOutgoing(p, 'still sending', 'failed');

    // The old records are gone; the new ones are there.
    const left = (await p.evaluate(`(async () => {
      const db = await new Promise((res, rej) => { const r = indexedDB.open('tacit'); r.onsuccess = () => res(r.result); r.onerror = () => rej(new Error('open')); });
      const keys = (store) => new Promise((res) => { const r = db.transaction(store).objectStore(store).getAllKeys(); r.onsuccess = () => res(r.result); });
      const out = { records: await keys('records'), kv: (await keys('kv')).length, version: db.version };
      db.close();
      return out;
    })()`)) as { records: string[]; kv: number; version: number };
    assert.deepEqual(left.records, ['sealing-key']);
    assert.equal(left.version, 2);
    assert.ok(left.kv > 200, `${left.kv} records`);

    // A reload opens the converted records (no second conversion).
    await p.reload();
    await p.getByTestId('me').filter({ hasText: 'carol' }).waitFor();
    await ui.openConversation(p, 'alice');
    await ui.waitIncoming(p, 'hello carol');
    assert.equal((await ui.transcript(p)).length, 4);
  });
});
