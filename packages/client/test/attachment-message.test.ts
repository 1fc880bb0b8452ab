// Files in conversations through a real server process and two real clients: the message goes
// uploading → queued → sent and arrives with its pointer; both histories show the file; the
// download equals the file; a cancelled upload is failed and retry finishes it; an interrupted
// one is continued by sending the same file again; a tampered blob is refused and the
// conversation goes on.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeBackend } from '@tacit/protocol/node';
import { blobSource, isClientError, MemoryRecordStore, TacitClient, type BlobFetch, type HistoryMessage } from '../src/index.ts';
import { fileSource, nodeAttachmentCrypto, nodeBlobFetch, saveMessageAttachment, wsSocketFactory } from '../src/node.ts';
import { ServerProcess } from './support/server-process.js';

const MiB = 1024 * 1024;
let server: ServerProcess;
let dir: string;
let n = 0;
// One pair of clients for every test (the server limits registrations per address).
let alice: TacitClient;
let bob: TacitClient;
/** Upload pieces alice may still send before her uploads break (a refusal that is not retried). */
let piecesLeft = Infinity;
const breakable: BlobFetch = async (url, init) => {
  if (init.method === 'PATCH' && piecesLeft-- <= 0) return { status: 400, headers: { get: () => null }, body: null, text: async () => JSON.stringify({ error: { code: 'INVALID_REQUEST', message: 'test' } }) };
  return nodeBlobFetch(url, init);
};

before(async () => {
  server = await ServerProcess.start({ TACIT_MAX_ATTACHMENT_BYTES: String(16 * MiB) });
  dir = await mkdtemp(join(tmpdir(), 'tacit-att-msg-'));
  alice = await client(breakable);
  bob = await client();
});
after(async () => {
  await alice?.close();
  await bob?.close();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function client(blobFetch: BlobFetch = nodeBlobFetch): Promise<TacitClient> {
  const c = await TacitClient.register(
    { store: new MemoryRecordStore(), backend: nodeBackend(), connect: wsSocketFactory, attachmentCrypto: nodeAttachmentCrypto(), blobFetch, backoff: { baseMs: 10, maxMs: 50 } },
    { server: server.url, username: `f${++n}x${process.pid}` },
  );
  await c.connect();
  return c;
}

function nextMessage(c: TacitClient): Promise<HistoryMessage> {
  return new Promise((resolve) => {
    const off = c.on('message', (m) => {
      off();
      resolve(m);
    });
  });
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of it) parts.push(p);
  return Buffer.concat(parts);
}

test('a file with a caption arrives with its pointer; both sides see it; the bytes match', async () => {
  {
    const bytes = new Uint8Array(randomBytes(3 * MiB + 77));
    const path = join(dir, 'q3 report.pdf');
    await writeFile(path, bytes);
    const states: string[] = [];
    alice.on('outgoing', (m) => states.push(m.state ?? ''));
    const progress: number[] = [];
    const arrived = nextMessage(bob);
    const sent = await alice.sendFile(bob.username, await fileSource(path), {
      name: 'q3 report.pdf',
      type: 'application/pdf',
      caption: 'numbers for Monday',
      onProgress: (s) => progress.push(s),
    });
    assert.deepEqual([...new Set(states)], ['uploading', 'queued', 'sent']);
    assert.ok(progress.length >= 2 && progress.at(-1)! > progress[0]!);
    const got = await arrived;
    assert.equal(got.id, sent.id);
    assert.equal(got.text, 'numbers for Monday');
    assert.deepEqual(got.attachment, { name: 'q3 report.pdf', type: 'application/pdf', size: bytes.length, uploaded: true });
    const mine = (await alice.history(bob.username)).at(-1)!;
    assert.equal(mine.state, 'sent');
    assert.equal(mine.attachment?.name, 'q3 report.pdf');
    assert.equal(mine.attachment?.uploaded, true);
    // Download: as a stream, as a Blob, and saved to a directory (noted in history).
    assert.equal(sha(await collect(bob.downloadAttachment(alice.username, got.seq))), sha(bytes));
    assert.equal(sha(new Uint8Array(await (await bob.attachmentBlob(alice.username, got.seq)).arrayBuffer())), sha(bytes));
    const out = await mkdtemp(join(dir, 'dl-'));
    const saved = await saveMessageAttachment(bob, alice.username, got.seq, out);
    assert.equal(saved, join(out, 'q3 report.pdf'));
    assert.equal(sha(await readFile(saved)), sha(bytes));
    const again = await saveMessageAttachment(bob, alice.username, got.seq, out);
    assert.equal(again, join(out, 'q3 report (1).pdf'), 'never overwrites');
    assert.equal((await bob.history(alice.username)).at(-1)!.attachment?.savedAs, again);
    // The conversation goes on with text.
    const t = nextMessage(bob);
    await alice.send(bob.username, 'and a text after it');
    assert.equal((await t).text, 'and a text after it');
  }
});

test('an image carries its thumbnail and size; bad options are refused before anything is stored', async () => {
  {
    const thumb = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, ...randomBytes(500)]);
    const arrived = nextMessage(bob);
    await alice.sendFile(bob.username, blobSource(new Blob([randomBytes(2000)])), { name: 'shot.png', type: 'image/png', thumbnail: thumb, width: 800, height: 600 });
    const got = await arrived;
    assert.deepEqual(got.attachment?.thumbnail, thumb);
    assert.equal(got.attachment?.width, 800);
    const before = (await alice.history(bob.username)).length;
    const src = blobSource(new Blob([new Uint8Array(10)]));
    for (const bad of [
      { name: 'a.txt', type: 'text/plain', width: 5, height: 5 },
      { name: 'a.png', type: 'image/png', thumbnail: new Uint8Array([1, 2, 3]) },
      { name: 'a.png', type: 'image/png', width: 5 },
      { name: 'a.txt', caption: '   ' },
      { name: 'a.txt', caption: 'x'.repeat(20_000) },
    ]) {
      await assert.rejects(alice.sendFile(bob.username, src, bad), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
    }
    assert.equal((await alice.history(bob.username)).length, before, 'nothing stored');
  }
});

test('a cancelled upload is failed and nothing was sent; retry finishes it', async () => {
  {
    const bytes = new Uint8Array(randomBytes(6 * MiB));
    const src = blobSource(new Blob([bytes]));
    const controller = new AbortController();
    let received = 0;
    bob.on('message', () => received++);
    await assert.rejects(
      alice.sendFile(bob.username, src, { name: 'big.bin', signal: controller.signal, onProgress: (s) => s > 0 && controller.abort() }),
      (e: unknown) => isClientError(e) && e.code === 'CANCELLED',
    );
    const failed = (await alice.history(bob.username)).at(-1)!;
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error?.code, 'CANCELLED');
    assert.equal(failed.attachment?.uploaded, false);
    const arrived = nextMessage(bob);
    await alice.retry(bob.username, failed.seq);
    const got = await arrived;
    assert.equal(received, 1);
    assert.equal(sha(await collect(bob.downloadAttachment(alice.username, got.seq))), sha(bytes));
    assert.equal((await alice.history(bob.username)).filter((m) => m.attachment?.name === 'big.bin').length, 1, 'one message, not two');
  }
});

test('an upload that broke off is failed, and sending the same file again continues it from the server', async () => {
  const bytes = new Uint8Array(randomBytes(8 * MiB));
  const path = join(dir, 'resume.bin');
  await writeFile(path, bytes);
  let reached = 0;
  piecesLeft = 3;
  await assert.rejects(
    alice.sendFile(bob.username, await fileSource(path), { name: 'resume.bin', resumeKey: path, onProgress: (s) => (reached = Math.max(reached, s)) }),
    (e: unknown) => isClientError(e) && e.serverCode === 'INVALID_REQUEST',
  );
  piecesLeft = Infinity;
  assert.ok(reached > 0, 'part of it went up');
  const shown = (await alice.history(bob.username)).at(-1)!;
  assert.equal(shown.state, 'failed');
  assert.equal(shown.attachment?.uploaded, false);
  const arrived = nextMessage(bob);
  const progress: number[] = [];
  await alice.sendFile(bob.username, await fileSource(path), { name: 'resume.bin', resumeKey: path, onProgress: (s) => progress.push(s) });
  assert.equal(progress[0], reached, 'continued from where the server stood');
  const got = await arrived;
  assert.equal(sha(await collect(bob.downloadAttachment(alice.username, got.seq))), sha(bytes));
  const mine = (await alice.history(bob.username)).filter((m) => m.attachment?.name === 'resume.bin');
  assert.equal(mine.length, 1, 'the same message was continued, not a second one');
  assert.equal(mine[0]!.state, 'sent');
});

test('a tampered blob is refused, nothing is saved, and the conversation goes on', async () => {
  {
    const bytes = new Uint8Array(randomBytes(300_000));
    const arrived = nextMessage(bob);
    await alice.sendFile(bob.username, blobSource(new Blob([bytes])), { name: 'x.bin' });
    const got = await arrived;
    // Flip a byte of the stored blob on the server's disk.
    const blobs = join(server.dataDir, 'attachments');
    const files: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(join(d, e.name));
        else files.push(join(d, e.name));
      }
    };
    await walk(blobs);
    let flipped = false;
    for (const f of files) {
      const b = await readFile(f);
      if (b.length < 100_000) continue;
      b[b.length >> 1] = b[b.length >> 1]! ^ 1;
      await writeFile(f, b);
      flipped = true;
    }
    assert.ok(flipped, `no blob file found under ${blobs}`);
    const out = await mkdtemp(join(dir, 'bad-'));
    await assert.rejects(saveMessageAttachment(bob, alice.username, got.seq, out), (e: unknown) => isClientError(e) && e.code === 'ATTACHMENT_CORRUPT');
    assert.deepEqual(await readdir(out), [], 'nothing half-written is kept');
    const t = nextMessage(bob);
    await alice.send(bob.username, 'still here');
    assert.equal((await t).text, 'still here');
  }
});

test('a file goes to a group: every member gets the pointer and the same bytes', async () => {
  const carol = await client();
  try {
    const g = await alice.createGroup('Files', [bob.username, carol.username]);
    for (let i = 0; i < 3_000; i++) {
      if ((await bob.groups()).some((x) => x.id === g.id) && (await carol.groups()).some((x) => x.id === g.id)) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const bytes = new Uint8Array(randomBytes(700_000));
    const toBob = nextMessage(bob);
    const toCarol = nextMessage(carol);
    const sent = await alice.sendFile(g.conversation, blobSource(new Blob([bytes])), { name: 'plan.pdf', type: 'application/pdf', caption: 'for the group' });
    assert.equal(sent.conversation, g.conversation);
    for (const [who, p] of [[bob, toBob], [carol, toCarol]] as const) {
      const m = await p;
      assert.equal(m.conversation, g.conversation);
      assert.equal(m.text, 'for the group');
      assert.equal(m.attachment?.name, 'plan.pdf');
      assert.equal(sha(await collect(who.downloadAttachment(g.conversation, m.seq))), sha(bytes));
    }
    assert.equal((await alice.history(g.conversation)).at(-1)!.state, 'sent');
  } finally {
    await carol.close();
  }
});
