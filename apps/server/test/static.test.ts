import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start } from './helpers.js';

test('staticDir: serves files, falls back to index.html for routes, never escapes the root, API still wins', async () => {
  const root = mkdtempSync(join(tmpdir(), 'tacit-static-'));
  const dir = join(root, 'dist');
  mkdirSync(join(dir, 'assets'), { recursive: true });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>tacit</title>');
  writeFileSync(join(dir, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(root, 'secret.txt'), 'outside');
  const h = await start({ staticDir: dir });
  try {
    const index = await h.server.app.inject({ method: 'GET', url: '/' });
    assert.equal(index.statusCode, 200);
    assert.match(index.headers['content-type'] as string, /text\/html/);
    assert.match(index.body, /<title>tacit/);
    // The web client must not be framed (clickjacking on "accept new key").
    assert.equal(index.headers['content-security-policy'], "frame-ancestors 'none'");
    assert.equal(index.headers['x-frame-options'], 'DENY');
    const js = await h.server.app.inject({ method: 'GET', url: '/assets/app.js' });
    assert.equal(js.statusCode, 200);
    assert.match(js.headers['content-type'] as string, /javascript/);
    // A script may be a worker's (the key worker), whose policy is its response's: same-origin scripts, fetches and WebAssembly only.
    assert.equal(js.headers['content-security-policy'], "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; frame-ancestors 'none'");
    const route = await h.server.app.inject({ method: 'GET', url: '/chat/bob' });
    assert.match(route.body, /<title>tacit/);
    assert.equal((await h.server.app.inject({ method: 'GET', url: '/missing.js' })).statusCode, 404);
    for (const url of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt', '/%00']) {
      const r = await h.server.app.inject({ method: 'GET', url });
      assert.ok(!r.body.includes('outside'), url);
    }
    assert.deepEqual((await h.server.app.inject({ method: 'GET', url: '/healthz' })).json(), { ok: true });
    assert.equal((await h.server.app.inject({ method: 'GET', url: '/v1/keys/count' })).statusCode, 401);
  } finally {
    await h.close();
    rmSync(root, { recursive: true, force: true });
  }
});
