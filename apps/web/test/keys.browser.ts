/**
 * Pre-key refills in the key worker: a browser user's one-time keys are taken from the server
 * (bundle fetches by another account) until fewer than the refill threshold are left; on its next
 * start the page refills them, and the keys are made in the key worker (a worker was started from
 * keygen-worker-*.js, no fallback warning), with the ids the client allocated after
 * registration's, and the server hands them out.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authorizationHeader, type BundleResponse } from '@tacit/api';
import { registerBare } from '../../../packages/client/test/support/server-process.ts';
import { DESKTOP, Profile } from './harness.ts';
import { browserSuite } from './suite.ts';
import * as ui from './ui.ts';

/** One-time keys per batch and the refill threshold (packages/client/src/prekeys.ts). */
const BATCH = 100;
const THRESHOLD = 20;

describe('tacit web client, pre-key refills', { timeout: 10 * 60_000 }, () => {
  const hana = new Profile('hana', DESKTOP);
  // Draining a device's stock takes more bundle fetches than the default burst.
  const web = browserSuite('keys', { profiles: [hana], env: { TACIT_BUNDLE_FETCH_BURST: '1000' }, checks: { foreign: { message: 'the page only talks to the tacit server' } } });

  it('refills one-time keys in the key worker', async () => {
    const page = await hana.open(web.server.url);
    const warnings: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'warning') warnings.push(m.text().slice(0, 200));
    });
    await ui.register(page, 'hana');
    // An account that only fetches bundles.
    const who = await registerBare(web.server.url, 'drainer');
    const bundle = async (): Promise<BundleResponse['devices'][number]> => {
      const r = await fetch(`${web.server.url}/v1/keys/hana/1`, { headers: { authorization: authorizationHeader(who) } });
      assert.equal(r.status, 200);
      return ((await r.json()) as BundleResponse).devices[0]!;
    };
    // Registration's keys: EC ids 1..100, Kyber 2..101. Take all but THRESHOLD - 1 of them.
    for (let i = 0; i < BATCH - THRESHOLD + 1; i++) {
      const b = await bundle();
      assert.ok(b.preKey !== undefined && b.preKey.keyId <= BATCH && b.kyberPreKey.keyId <= BATCH + 1 && !b.kyberPreKeyIsLastResort);
    }
    // The page's next start checks the stock and refills it; record the workers it starts.
    const workers: string[] = [];
    page.on('worker', (w) => workers.push(new URL(w.url()).pathname));
    await page.reload();
    await page.getByTestId('me').filter({ hasText: 'hana' }).waitFor();
    let refilled: BundleResponse['devices'][number] | undefined;
    for (let i = 0; i < 600 && refilled === undefined; i++) {
      const b = await bundle();
      if (b.preKey !== undefined && b.preKey.keyId > BATCH) refilled = b;
      else await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(refilled, 'the server hands out refilled keys');
    // The next ids after registration's, from the refill's batch.
    assert.ok(refilled.preKey!.keyId <= 2 * BATCH);
    assert.ok(refilled.kyberPreKey.keyId > BATCH + 1 && refilled.kyberPreKey.keyId <= 2 * BATCH + 1 && !refilled.kyberPreKeyIsLastResort);
    assert.ok(workers.some((p) => /\/assets\/keygen-worker-[\w-]+\.js$/.test(p)), `the keys were made in the key worker (workers: ${workers.join(', ')})`);
    assert.deepEqual(warnings.filter((w) => w.includes('key worker')), [], 'no fallback to the page');
  });
});
