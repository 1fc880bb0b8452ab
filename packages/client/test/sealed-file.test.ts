import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { SealedFile, scryptLogNFromEnv } from '../src/node.ts';
import { isClientError } from '../src/index.ts';

// Low scrypt cost keeps the tests fast; the format records N so reading uses the same value.
const N = 1024;

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'tacit-sealed-'));
}

function code(e: unknown): string {
  return isClientError(e) ? e.code : `not a ClientError: ${String(e)}`;
}

test('round trip: what was written is what is read, by a fresh open with the passphrase', async () => {
  const dir = await tmp();
  try {
    const path = join(dir, 'state');
    const f = await SealedFile.create(path, 'pass phrase', { scryptN: N });
    assert.equal(await f.read(), undefined);
    const data = new TextEncoder().encode('{"v":1,"hello":"world"}');
    await f.write(data);
    assert.deepEqual(await f.read(), data);
    const reopened = await SealedFile.open(path, 'pass phrase');
    assert.deepEqual(reopened.state, data);
    // A second write replaces the first.
    const data2 = new Uint8Array(10_000).fill(7);
    await reopened.file.write(data2);
    assert.deepEqual((await SealedFile.open(path, 'pass phrase')).state, data2);
    // The file holds no plaintext and is private to the user.
    const raw = await readFile(path);
    assert.equal(raw.includes(Buffer.from('hello')), false);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('wrong passphrase is a clear WRONG_PASSPHRASE error', async () => {
  const dir = await tmp();
  try {
    const path = join(dir, 'state');
    const f = await SealedFile.create(path, 'right', { scryptN: N });
    await f.write(new Uint8Array([1, 2, 3]));
    await assert.rejects(SealedFile.open(path, 'wrong'), (e) => code(e) === 'WRONG_PASSPHRASE');
    await assert.rejects(SealedFile.open(path, ''), (e) => code(e) === 'WRONG_PASSPHRASE');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a missing file is NOT_REGISTERED', async () => {
  const dir = await tmp();
  try {
    await assert.rejects(SealedFile.open(join(dir, 'nope'), 'x'), (e) => code(e) === 'NOT_REGISTERED');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tampering with any byte of the ciphertext, tag, nonce or parameters is detected; truncation too', async () => {
  const dir = await tmp();
  try {
    const path = join(dir, 'state');
    const f = await SealedFile.create(path, 'pw', { scryptN: N });
    await f.write(new TextEncoder().encode('secret state '.repeat(20)));
    const good = await readFile(path);
    // Header: magic 8 | logN r p 3 | salt 16 | verifier 16 | nonce 12.
    const positions = [0, 8, 9, 10, 11, 27, 43, 50, 55, good.length - 20, good.length - 1];
    for (const pos of positions) {
      const bad = Buffer.from(good);
      bad[pos]! ^= 0x01;
      await writeFile(path, bad);
      await assert.rejects(SealedFile.open(path, 'pw'), (e) => ['STATE_CORRUPT', 'WRONG_PASSPHRASE'].includes(code(e)), `byte ${pos}`);
    }
    // Body and tag damage under the right passphrase is STATE_CORRUPT, not a passphrase problem.
    for (const pos of [60, good.length - 1]) {
      const bad = Buffer.from(good);
      bad[pos]! ^= 0x80;
      await writeFile(path, bad);
      await assert.rejects(SealedFile.open(path, 'pw'), (e) => code(e) === 'STATE_CORRUPT', `byte ${pos}`);
    }
    for (const len of [0, 5, 60, good.length - 1]) {
      await writeFile(path, good.subarray(0, len));
      await assert.rejects(SealedFile.open(path, 'pw'), (e) => code(e) === 'STATE_CORRUPT', `length ${len}`);
    }
    await writeFile(path, good);
    assert.equal((await SealedFile.open(path, 'pw')).state.length, 13 * 20);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('atomic write: a crash before the rename leaves the old state intact and no temp file behind', async () => {
  const dir = await tmp();
  try {
    const path = join(dir, 'state');
    const old = new TextEncoder().encode('old state');
    await (await SealedFile.create(path, 'pw', { scryptN: N })).write(old);
    let tempSeen = '';
    const { file } = await SealedFile.open(path, 'pw', {
      beforeRename: async (temp) => {
        tempSeen = temp;
        // The new content is complete and synced in the temp file, but the old file is untouched.
        assert.deepEqual((await SealedFile.open(path, 'pw')).state, old);
        throw new Error('simulated crash');
      },
    });
    await assert.rejects(file.write(new TextEncoder().encode('new state')), /simulated crash/);
    assert.ok(tempSeen.startsWith(dir));
    assert.deepEqual((await SealedFile.open(path, 'pw')).state, old);
    assert.deepEqual(await readdir(dir), ['state']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('atomic write: a temp file left by a killed process does not affect reads or later writes', async () => {
  const dir = await tmp();
  try {
    const path = join(dir, 'state');
    const f = await SealedFile.create(path, 'pw', { scryptN: N });
    await f.write(new Uint8Array([1]));
    await writeFile(join(dir, '.state.123.abc.tmp'), Buffer.from('half a write'));
    assert.deepEqual((await SealedFile.open(path, 'pw')).state, new Uint8Array([1]));
    await f.write(new Uint8Array([2]));
    assert.deepEqual((await SealedFile.open(path, 'pw')).state, new Uint8Array([2]));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('concurrent writes each leave a complete file', async () => {
  const dir = await tmp();
  try {
    const path = join(dir, 'state');
    const f = await SealedFile.create(path, 'pw', { scryptN: N });
    await Promise.all(Array.from({ length: 20 }, (_, i) => f.write(new Uint8Array(1000).fill(i))));
    const { state } = await SealedFile.open(path, 'pw');
    assert.equal(state.length, 1000);
    assert.ok(state.every((b) => b === state[0]));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the key never shows in inspect or JSON', async () => {
  const dir = await tmp();
  try {
    const f = await SealedFile.create(join(dir, 'state'), 'pw', { scryptN: N });
    assert.equal(inspect(f), `SealedFile { path: ${JSON.stringify(join(dir, 'state'))}, scryptLogN: 10 }`);
    assert.throws(() => JSON.stringify(f));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('TACIT_SCRYPT_N must be a power of two in range', () => {
  assert.equal(scryptLogNFromEnv(undefined), undefined);
  assert.equal(scryptLogNFromEnv(''), undefined);
  assert.equal(scryptLogNFromEnv('1024'), 10);
  assert.equal(scryptLogNFromEnv('131072'), 17);
  for (const bad of ['1000', '512', '2097152', 'abc', '-1024', '1024.5']) assert.throws(() => scryptLogNFromEnv(bad), (e) => code(e) === 'INVALID_ARGUMENT', bad);
});
