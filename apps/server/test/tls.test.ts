/**
 * HTTPS served by the server itself (TACIT_TLS_CERT, TACIT_TLS_KEY): a self-signed certificate
 * made here with openssl; HTTP API and WebSocket over TLS; plain HTTP refused; bad configuration
 * is one line and exit code 2.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { runMain, startServer, stopServer } from './processes.js';

const dir = mkdtempSync(join(tmpdir(), 'tacit-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function selfSigned(name: string): { cert: string; key: string; pem: Buffer } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=tacit test', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  return { cert, key, pem: execFileSync('cat', [cert]) };
}

function get(url: string, ca?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { ...(ca ? { ca } : {}), timeout: 10_000, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

test('TACIT_TLS_CERT/TACIT_TLS_KEY: the server speaks HTTPS and WSS with that certificate, and no plain HTTP', async () => {
  const c = selfSigned('good');
  const s = await startServer({ TACIT_TLS_CERT: c.cert, TACIT_TLS_KEY: c.key, TACIT_DATA_DIR: join(dir, 'data') });
  try {
    assert.match(s.out(), /tacit server on https:\/\/127\.0\.0\.1:\d+/);
    const r = await get(`https://127.0.0.1:${s.port}/healthz`, c.pem);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { ok: true });
    // Without the certificate as a trusted CA, the client refuses it: it really is this certificate.
    await assert.rejects(get(`https://127.0.0.1:${s.port}/healthz`), /self[- ]signed/i);
    // Plain HTTP on the same port gets no HTTP answer.
    await assert.rejects(get(`http://127.0.0.1:${s.port}/healthz`));
    // The relay upgrades over TLS too (an unauthenticated socket is open until its auth timeout).
    const ws = new WebSocket(`wss://127.0.0.1:${s.port}/v1/ws`, { ca: c.pem });
    await once(ws, 'open');
    ws.close();
    await once(ws, 'close');
  } finally {
    await stopServer(s);
  }
});

test('TLS configuration mistakes stop the server with one line and exit code 2', async () => {
  const c = selfSigned('other');
  const d = selfSigned('third');
  const garbage = join(dir, 'garbage.pem');
  writeFileSync(garbage, 'not a certificate\n');
  const cases: [Record<string, string>, RegExp][] = [
    [{ TACIT_TLS_CERT: c.cert }, /^tacit-server: TACIT_TLS_CERT and TACIT_TLS_KEY go together/],
    [{ TACIT_TLS_KEY: c.key }, /^tacit-server: TACIT_TLS_CERT and TACIT_TLS_KEY go together/],
    [{ TACIT_TLS_CERT: join(dir, 'missing.crt'), TACIT_TLS_KEY: c.key }, /^tacit-server: cannot read TACIT_TLS_CERT .*missing\.crt \(ENOENT\)$/],
    [{ TACIT_TLS_CERT: garbage, TACIT_TLS_KEY: c.key }, /^tacit-server: TACIT_TLS_CERT and TACIT_TLS_KEY are not a usable PEM certificate and matching private key/],
    [{ TACIT_TLS_CERT: c.cert, TACIT_TLS_KEY: d.key }, /^tacit-server: TACIT_TLS_CERT and TACIT_TLS_KEY are not a usable PEM certificate and matching private key/],
  ];
  for (const [env, expected] of cases) {
    const r = await runMain([], { ...env, TACIT_DATA_DIR: join(dir, 'data-bad') });
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    assert.equal(r.code, 2, r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, expected);
    assert.doesNotMatch(r.stderr, /PRIVATE KEY/);
  }
});

/** Resolves once `read()` matches `re` (bounded). */
async function waitFor(read: () => string, re: RegExp): Promise<void> {
  for (let i = 0; i < 200 && !re.test(read()); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(read(), re);
}

test('SIGHUP reloads the certificate and key for new connections; a broken pair on reload keeps the previous one', async () => {
  const a = selfSigned('reload-a');
  const b = selfSigned('reload-b');
  const cert = join(dir, 'live.crt');
  const key = join(dir, 'live.key');
  copyFileSync(a.cert, cert);
  copyFileSync(a.key, key);
  const s = await startServer({ TACIT_TLS_CERT: cert, TACIT_TLS_KEY: key, TACIT_DATA_DIR: join(dir, 'data-reload') });
  try {
    const url = `https://127.0.0.1:${s.port}/healthz`;
    assert.equal((await get(url, a.pem)).status, 200);
    await assert.rejects(get(url, b.pem), /self[- ]signed/i);
    // Renewed: the files now hold b.
    copyFileSync(b.cert, cert);
    copyFileSync(b.key, key);
    s.proc.kill('SIGHUP');
    await waitFor(s.out, /certificate reloaded/);
    assert.equal((await get(url, b.pem)).status, 200);
    await assert.rejects(get(url, a.pem), /self[- ]signed/i);
    // A half-written renewal (a's certificate, b's key): refused, b stays.
    copyFileSync(a.cert, cert);
    s.proc.kill('SIGHUP');
    await waitFor(s.err, /certificate not reloaded, the previous one stays: TACIT_TLS_CERT and TACIT_TLS_KEY are not a usable/);
    assert.equal((await get(url, b.pem)).status, 200);
    assert.doesNotMatch(s.err(), /PRIVATE KEY/);
  } finally {
    await stopServer(s);
  }
});
