// The Node backend's X25519 key generation must never park the process. On Node 20, a JWK export
// of a key made by `generateKeyPairSync` could start a garbage collection that destroyed a finished
// key-generation job, which waited for a mutex the export held: the main thread on a futex for good
// (gdb: ExportJWK → GC → ~KeyGenJob → uv_mutex_lock). That was the rare hang of `tacit register` and
// of test processes in CI. The backend now makes keys from random bytes and derives the public key
// by an agreement with the base point, with no key-generation job and no JWK export.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const SRC = join(import.meta.dirname, '..', 'src', 'backend-node.ts');
/** Keys made in the child: the old code deadlocked here after some thousands. */
const KEYS = 40_000;
/** Far above the time the child needs (a few seconds), far below a hang's. */
const CHILD_TIMEOUT_MS = 120_000;

test('the Node backend uses neither generateKeyPairSync nor a JWK export', () => {
  const code = readFileSync(SRC, 'utf8').replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '');
  assert.ok(!code.includes('generateKeyPairSync'), 'generateKeyPairSync in backend-node.ts');
  assert.doesNotMatch(code, /export\(\{\s*format:\s*'jwk'/, 'a JWK export in backend-node.ts');
});

test(`${KEYS} X25519 key pairs in a small heap finish (no deadlock), and each is a valid pair`, async () => {
  // A small young generation makes garbage collections frequent, as in the long runs that hung.
  const script = `
    import { nodeBackend } from ${JSON.stringify(SRC)};
    const b = nodeBackend();
    let last;
    for (let i = 0; i < ${KEYS}; i++) last = b.x25519GenerateKeyPair();
    const other = b.x25519GenerateKeyPair();
    const s1 = Buffer.from(b.x25519(last.privateKey, other.publicKey));
    const s2 = Buffer.from(b.x25519(other.privateKey, last.publicKey));
    process.stdout.write(s1.equals(s2) && s1.some((x) => x !== 0) ? 'ok' : 'mismatch');
  `;
  const child = spawn(process.execPath, ['--max-semi-space-size=1', '--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  assert.equal(signal, null, `the key loop was killed after ${CHILD_TIMEOUT_MS} ms: it hung`);
  assert.equal(code, 0, err);
  assert.equal(out, 'ok');
});
