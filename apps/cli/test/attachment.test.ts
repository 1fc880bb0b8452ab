// Files from the terminal, end to end through a real server and real `tacit` processes: a file
// with a hostile name goes up and lands safely in the recipient's downloads (equal SHA-256, never
// overwriting, --out), history shows it, the server holds neither its bytes nor its name, an
// upload killed half-way (SIGKILL) continues in the same message when run again, and a tampered
// blob is refused with nothing kept while the conversation goes on.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN, PASSPHRASE, ROOT, ok, serverWithUsers, tacit } from './harness.ts';

const MiB = 1024 * 1024;
const MARKER = 'file-plaintext-marker-Kq81';
/** A sender's file name with a leading dot, a right-to-left override and a newline. */
const HOSTILE_NAME = '.\u202Egnp.exe\nreport.txt';
const SAFE_NAME = 'gnp.exereport.txt';

let fx: Awaited<ReturnType<typeof serverWithUsers>>;
let alice: string;
let bob: string;
before(async () => {
  fx = await serverWithUsers('files', ['alice', 'bob']);
  alice = fx.homes['alice']!;
  bob = fx.homes['bob']!;
});
after(() => fx?.remove());

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function filesUnder(d: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) out.push(...(await filesUnder(join(d, e.name))));
    else out.push(join(d, e.name));
  }
  return out;
}

function contains(hay: Buffer, needle: string): boolean {
  return hay.includes(Buffer.from(needle, 'utf8'));
}

test('a file with a hostile name goes up and lands safely, whole, never replacing one; history shows it', async () => {
  const bytes = Buffer.concat([Buffer.from(MARKER), randomBytes(3 * MiB)]);
  const src = join(fx.dir, 'src');
  await mkdir(src);
  const path = join(src, HOSTILE_NAME);
  await writeFile(path, bytes);
  const sent = await ok(alice, ['send', 'bob', '--file', path, 'the numbers']);
  assert.equal(sent[0]!['event'], 'sent');
  // Not a terminal: no progress bar on stderr.
  const r = await tacit(alice, ['send', 'bob', '--file', path]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');

  const events = (await ok(bob, ['recv'])).filter((e) => e['event'] === 'message');
  assert.equal(events.length, 2);
  const files = events.map((e) => e['file'] as { name: string; type: string; size: number; path: string });
  assert.equal(events[0]!['text'], 'the numbers');
  assert.equal(files[0]!.name, SAFE_NAME);
  assert.equal(files[0]!.size, bytes.length);
  assert.equal(files[0]!.type, 'text/plain');
  const downloads = join(bob, 'downloads');
  assert.equal(files[0]!.path, join(downloads, SAFE_NAME));
  assert.equal(files[1]!.path, join(downloads, 'gnp.exereport (1).txt'), 'the second never replaces the first');
  for (const f of files) assert.equal(sha(await readFile(f.path)), sha(bytes));
  assert.deepEqual((await readdir(downloads)).sort(), [SAFE_NAME, 'gnp.exereport (1).txt'].sort(), 'nothing else is left there');

  // History on both sides shows the file (and, for bob, where it is).
  const mine = (await ok(alice, ['history', 'bob'])).filter((e) => e['file'] !== undefined);
  assert.equal(mine.length, 2);
  assert.equal((mine[0]!['file'] as { name: string }).name, SAFE_NAME);
  const theirs = await tacit(bob, ['history', 'alice']);
  assert.match(theirs.stdout, /\[file: gnp\.exereport\.txt, 3\.0 MiB, text\/plain\] saved as /);
  assert.doesNotMatch(theirs.stdout, /\u202E/);

  // --out puts them elsewhere.
  await ok(alice, ['send', 'bob', '--file', path]);
  const out = join(fx.dir, 'elsewhere');
  const third = (await ok(bob, ['recv', '--out', out])).find((e) => e['event'] === 'message')!;
  assert.equal((third['file'] as { path: string }).path, join(out, SAFE_NAME));

  // The server holds neither the bytes nor the name (blob files, database, logs).
  let looked = 0;
  for (const f of await filesUnder(fx.server.dataDir)) {
    const b = await readFile(f);
    looked++;
    assert.ok(!contains(b, MARKER), `plaintext in ${f}`);
    assert.ok(!contains(b, 'gnp.exe') && !contains(b, 'report.txt'), `the file name in ${f}`);
  }
  assert.ok(looked > 3);
});

test('an upload killed half-way (SIGKILL) continues in the same message when the command runs again', async () => {
  const bytes = randomBytes(40 * MiB);
  const path = join(fx.dir, 'big.bin');
  await writeFile(path, bytes);
  const blobsBefore = new Set((await filesUnder(join(fx.server.dataDir, 'attachments'))).filter((f) => f.endsWith('.blob')));
  const proc = spawn(process.execPath, [BIN, '--home', alice, '--json', 'send', 'bob', '--file', path], {
    cwd: ROOT,
    env: { ...process.env, TACIT_PASSPHRASE: PASSPHRASE, TACIT_SCRYPT_N: '1024' },
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  // Killed once the server holds part of the blob, and not all of it.
  let partial: string | undefined;
  for (let i = 0; i < 6_000 && partial === undefined; i++) {
    for (const f of await filesUnder(join(fx.server.dataDir, 'attachments'))) {
      if (!f.endsWith('.blob') || blobsBefore.has(f)) continue;
      const size = (await stat(f)).size;
      if (size > 0 && size < bytes.length / 2) partial = f;
    }
    if (partial === undefined) await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(partial !== undefined, 'the upload never showed up half-way on the server');
  proc.kill('SIGKILL');
  await exited;
  const cut = (await stat(partial)).size;
  assert.ok(cut < bytes.length, 'killed before the end');

  await ok(alice, ['send', 'bob', '--file', path]);
  const blobsAfter = (await filesUnder(join(fx.server.dataDir, 'attachments'))).filter((f) => f.endsWith('.blob') && !blobsBefore.has(f));
  assert.deepEqual(blobsAfter, [partial], 'the same blob was continued, not a new one');
  const got = (await ok(bob, ['recv'])).filter((e) => e['event'] === 'message');
  assert.equal(got.length, 1, 'one message');
  assert.equal(sha(await readFile((got[0]!['file'] as { path: string }).path)), sha(bytes));
  const mine = (await ok(alice, ['history', 'bob'])).filter((e) => (e['file'] as { name?: string } | undefined)?.name === 'big.bin');
  assert.equal(mine.length, 1);
  assert.equal(mine[0]!['state'], 'sent');
});

test('a file goes to a group from the terminal', async () => {
  const carol = join(fx.dir, 'carol');
  await ok(carol, ['register', 'carol', '--server', fx.server.url]);
  await ok(alice, ['group', 'create', 'Docs', 'bob', 'carol']);
  const bytes = randomBytes(100_000);
  const path = join(fx.dir, 'minutes.txt');
  await writeFile(path, bytes);
  await ok(alice, ['send', '#docs', '--file', path, 'minutes']);
  const got = (await ok(carol, ['recv', '--wait', '60'])).find((e) => e['event'] === 'message' && e['file'] !== undefined);
  assert.ok(got, 'carol got the file');
  assert.equal(got['text'], 'minutes');
  assert.equal(sha(await readFile((got['file'] as { path: string }).path)), sha(bytes));
  await ok(bob, ['recv']); // bob's copy, out of the way of the next test
});

test('a tampered blob is refused: nothing is kept, the warning names it, the conversation goes on', async () => {
  const bytes = randomBytes(200_000);
  const path = join(fx.dir, 'tamper.bin');
  await writeFile(path, bytes);
  const before = new Set(await filesUnder(join(fx.server.dataDir, 'attachments')));
  await ok(alice, ['send', 'bob', '--file', path]);
  const blob = (await filesUnder(join(fx.server.dataDir, 'attachments'))).find((f) => f.endsWith('.blob') && !before.has(f))!;
  const b = await readFile(blob);
  b[1000] = b[1000]! ^ 0x40;
  await writeFile(blob, b);
  await ok(alice, ['send', 'bob', 'after the bad file']);
  const out = join(fx.dir, 'tampered-out');
  const events = await ok(bob, ['recv', '--out', out]);
  const warning = events.find((e) => e['event'] === 'file-not-saved');
  assert.ok(warning, JSON.stringify(events));
  assert.equal(warning['code'], 'ATTACHMENT_CORRUPT');
  const messages = events.filter((e) => e['event'] === 'message');
  assert.equal(messages.length, 2);
  assert.equal((messages[0]!['file'] as { error?: { code: string } }).error?.code, 'ATTACHMENT_CORRUPT');
  assert.equal(messages[1]!['text'], 'after the bad file');
  assert.deepEqual(await readdir(out).catch(() => []), [], 'nothing half-written is kept');
});
