// The Node backend's X25519 key generation must never park the process. On Node 20, a JWK export
// of a key made by `generateKeyPairSync` could start a garbage collection that destroyed a finished
// key-generation job, which waited for a mutex the export held: the main thread on a futex for good
// (gdb: ExportJWK → GC → ~KeyGenJob → uv_mutex_lock). That was the rare hang of `tacit register` and
// of test processes in CI. The mutex is the generated key's own (`~KeyPairGenConfig` locks it), so
// the hang needs a key that a key-generation job holds. The backend makes keys from random bytes,
// imports them (`createPrivateKey`, a key object with a mutex of its own) and copies out the public
// half OpenSSL computed at import with a JWK export; it runs no key-generation job at all.
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

test('the Node backend runs no key-generation job, and its one JWK export is of a key it imported', () => {
  const code = readFileSync(SRC, 'utf8').replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '');
  const imports = /import\s*\{([^}]*)\}\s*from\s*'node:crypto'/.exec(code);
  assert.ok(imports !== null, 'backend-node.ts imports node:crypto by name');
  const names = (imports[1] as string).split(',').map((n) => n.replace(/^\s*type\s+/, '').trim());
  assert.deepEqual(
    names.filter((n) => /generate/i.test(n)),
    [],
    'a key-generation function imported from node:crypto',
  );
  assert.doesNotMatch(code, /webcrypto|subtle|require\(|import\s*\*\s*as|from\s*'crypto'/, 'another way to reach node:crypto');
  // The one JWK export copies the public half out of a private key made by createPrivateKey.
  assert.equal((code.match(/\.export\(\{[^}]*'jwk'/g) ?? []).length, 1, 'JWK exports in backend-node.ts');
  assert.match(code, /createPublicKey\(privateKeyObject\(priv\)\)\.export\(\{\s*format:\s*'jwk'\s*\}\)/, 'the JWK export is of an imported key');
});

/** Runs `body` (module code using `b`, a Node backend) in a child with a small young generation. */
async function inSmallHeap(body: string): Promise<void> {
  // A small young generation makes garbage collections frequent, as in the long runs that hung.
  const script = `
    import { generateKeyPairSync } from 'node:crypto';
    import { nodeBackend } from ${JSON.stringify(SRC)};
    const b = nodeBackend();
    ${body}
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
}

/** Module code: checks that the last key made and a fresh one agree on a shared secret. */
const CHECK_LAST = `
  const other = b.x25519GenerateKeyPair();
  const s1 = Buffer.from(b.x25519(last.privateKey, other.publicKey));
  const s2 = Buffer.from(b.x25519(other.privateKey, last.publicKey));
  process.stdout.write(s1.equals(s2) && s1.some((x) => x !== 0) ? 'ok' : 'mismatch');
`;

test(`${KEYS} X25519 key pairs in a small heap finish (no deadlock), and each is a valid pair`, async () => {
  await inSmallHeap(`
    let last;
    for (let i = 0; i < ${KEYS}; i++) last = b.x25519GenerateKeyPair();
    ${CHECK_LAST}
  `);
});

test(`${KEYS} X25519 key pairs finish while other code's generated keys are collected`, async () => {
  // Key-generation jobs of other code in the process (never exported here) are destroyed by the
  // collections that run inside the backend's JWK exports: their configs lock their own keys'
  // mutexes, never one the export holds. A shared mutex would hang this loop.
  await inSmallHeap(`
    let last;
    for (let i = 0; i < ${KEYS}; i++) {
      last = b.x25519GenerateKeyPair();
      generateKeyPairSync('x25519');
    }
    ${CHECK_LAST}
  `);
});
