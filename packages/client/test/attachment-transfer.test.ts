// The SDK's attachment upload and download through a real server process: round trips from a
// file and from a Blob, progress, resumption after a dropped piece, a dropped download and a
// restart, cancellation, caps, quota, expiry, tampering, and saving that never leaves a
// half-written file or overwrites one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachmentBlobLength, type DeviceCredentials } from '@tacit/api';
import {
  AttachmentApi,
  blobSource,
  downloadAttachmentBlob,
  isClientError,
  uploadAttachment,
  type BlobFetch,
  type UploadHandle,
} from '../src/index.js';
import { fileSource, nodeAttachmentCrypto, nodeBlobFetch, saveAttachment } from '../src/node.js';
import { ServerProcess } from './support/server-process.js';

const MiB = 1024 * 1024;
const crypto = nodeAttachmentCrypto();
const noWait = { sleep: () => Promise.resolve() };
let server: ServerProcess;
let dir: string;

before(async () => {
  server = await ServerProcess.start({ TACIT_MAX_ATTACHMENT_BYTES: String(8 * MiB), TACIT_ATTACHMENT_QUOTA_BYTES: String(40 * MiB) });
  dir = await mkdtemp(join(tmpdir(), 'tacit-sdk-att-'));
});
after(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function file(name: string, bytes: Uint8Array): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, bytes);
  return p;
}

async function fresh(fetchImpl?: BlobFetch): Promise<{ creds: DeviceCredentials; api: AttachmentApi }> {
  const creds = await server.register();
  return { creds, api: new AttachmentApi(server.url, creds, fetchImpl) };
}

async function outDir(): Promise<string> {
  return mkdtemp(join(dir, 'out-'));
}

async function rejectsWith(p: Promise<unknown>, code: string, serverCode?: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isClientError(e), String(e));
    assert.equal(e.code, code, e.message);
    if (serverCode !== undefined) assert.equal(e.serverCode, serverCode);
    if (message !== undefined) assert.match(e.message, message);
    return true;
  });
}

test('a file goes up and comes back identical; the saved file is 0600 and nothing else is left', async () => {
  const { api } = await fresh();
  const bytes = new Uint8Array(randomBytes(3 * MiB + 12345));
  const progress: number[] = [];
  const up = await uploadAttachment(api, crypto, await fileSource(await file('in.bin', bytes)), { onProgress: (sent) => progress.push(sent) });
  assert.equal(up.size, bytes.length);
  assert.equal(Buffer.from(up.digest).toString('hex'), sha(bytes));
  assert.deepEqual(progress, [...progress].sort((a, b) => a - b), 'progress only grows');
  assert.equal(progress.at(-1), attachmentBlobLength(bytes.length));
  const out = await outDir();
  const got: number[] = [];
  const path = await saveAttachment(api, crypto, up, out, 'report.pdf', { onProgress: (r) => got.push(r) });
  assert.equal(path, join(out, 'report.pdf'));
  assert.equal(sha(await readFile(path)), sha(bytes));
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.equal(got.at(-1), attachmentBlobLength(bytes.length));
  assert.deepEqual(await readdir(out), ['report.pdf']);
  // Saved again: a new name, the first file untouched.
  const second = await saveAttachment(api, crypto, up, out, 'report.pdf');
  assert.equal(second, join(out, 'report (1).pdf'));
  assert.deepEqual((await readdir(out)).sort(), ['report (1).pdf', 'report.pdf']);
  // A hostile name lands inside the directory, visible, under a plain name.
  const hostile = await saveAttachment(api, crypto, up, out, '../../.bashrc\u202Etxt.exe');
  assert.equal(hostile, join(out, '_.._.bashrctxt.exe'));
});

test('from a Blob to a Blob (the browser path), empty and small files included', async () => {
  const { api } = await fresh();
  for (const size of [0, 1, 600, 70_000]) {
    const bytes = new Uint8Array(randomBytes(size));
    const up = await uploadAttachment(api, crypto, blobSource(new Blob([bytes]), 1000));
    const blob = await downloadAttachmentBlob(api, crypto, up, 'image/png');
    assert.equal(blob.type, 'image/png');
    assert.deepEqual(new Uint8Array(await blob.arrayBuffer()), bytes);
  }
});

test('a piece cut off midway: the upload asks where it stands and continues (unaligned)', async () => {
  let patches = 0;
  const cutting: BlobFetch = async (url, init) => {
    if (init.method === 'PATCH' && ++patches === 2 && init.body instanceof Uint8Array) {
      // Half of the piece reaches the server, then the connection "drops".
      const half = init.body.subarray(0, Math.floor(init.body.length / 2) + 7);
      await fetch(url, { ...init, body: half });
      throw new TypeError('fetch failed');
    }
    return fetch(url, init);
  };
  const { api } = await fresh(cutting);
  const bytes = new Uint8Array(randomBytes(5 * MiB));
  const up = await uploadAttachment(api, crypto, blobSource(new Blob([bytes])), noWait);
  assert.ok(patches > 2);
  const out = await outDir();
  assert.equal(sha(await readFile(await saveAttachment(api, crypto, up, out, 'x'))), sha(bytes));
});

test('an upload interrupted by a crash resumes from the stored offset with the same key', async () => {
  let sentAfterRestart = 0;
  let restarted = false;
  const counting: BlobFetch = async (url, init) => {
    if (restarted && init.method === 'PATCH' && init.body instanceof Uint8Array) sentAfterRestart += init.body.length;
    return fetch(url, init);
  };
  const { api } = await fresh(counting);
  const bytes = new Uint8Array(randomBytes(6 * MiB));
  const source = await fileSource(await file('crash.bin', bytes));
  let handle: UploadHandle | undefined;
  // The program dies after three pieces (a throw that is not the SDK's stops it where it stands).
  class Crash extends Error {}
  let pieces = 0;
  const crashing = uploadAttachment(api, crypto, source, {
    onCreated: (h) => void (handle = h),
    onProgress: (sent) => {
      if (sent > 0 && ++pieces === 3) throw new Crash('process killed');
    },
  });
  await assert.rejects(crashing, Crash);
  restarted = true;
  assert.ok(handle !== undefined);
  const st = await api.status(handle.id);
  assert.ok(st.received > 0 && st.received < st.length, 'partly uploaded, kept');
  const up = await uploadAttachment(api, crypto, source, { resume: handle });
  assert.equal(up.id, handle.id);
  assert.equal(sentAfterRestart, st.length - st.received, 'only the rest was sent');
  assert.equal(Buffer.from(up.digest).toString('hex'), sha(bytes));
  const out = await outDir();
  assert.equal(sha(await readFile(await saveAttachment(api, crypto, up, out, 'x'))), sha(bytes));
  // A resume handle the server no longer knows starts a fresh upload.
  await api.delete(handle.id);
  const again = await uploadAttachment(api, crypto, source, { resume: handle });
  assert.notEqual(again.id, handle.id);
});

test('a download cut off or stalled resumes with a range; a cancelled one leaves nothing', async () => {
  const { creds, api } = await fresh();
  const bytes = new Uint8Array(randomBytes(2 * MiB + 5));
  const up = await uploadAttachment(api, crypto, blobSource(new Blob([bytes])));
  let gets = 0;
  const ranges: (string | undefined)[] = [];
  const flaky: BlobFetch = async (url, init) => {
    const res = await fetch(url, init);
    if (init.method !== 'GET' || !url.includes(up.id)) return res;
    ranges.push(init.headers['range']);
    gets++;
    if (gets === 1) {
      // Deliver 300,000 bytes, then fail the stream.
      const reader = res.body!.getReader();
      let n = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (n >= 300_000) return c.error(new TypeError('terminated'));
          const r = await reader.read();
          if (r.done) return c.close();
          const v = r.value.subarray(0, 300_000 - n);
          n += v.length;
          c.enqueue(v);
        },
      });
      return { status: res.status, headers: res.headers, body, text: () => res.text() };
    }
    if (gets === 2) {
      // Deliver nothing at all: the idle timeout drops it.
      return { status: res.status, headers: res.headers, body: new ReadableStream<Uint8Array>({ pull: () => new Promise(() => undefined) }), text: () => res.text() };
    }
    return res;
  };
  const out = await outDir();
  const flakyApi = new AttachmentApi(server.url, creds, flaky);
  const path = await saveAttachment(flakyApi, crypto, up, out, 'x.bin', { ...noWait, idleTimeoutMs: 300 });
  assert.equal(sha(await readFile(path)), sha(bytes));
  assert.deepEqual(ranges, [undefined, 'bytes=300000-', 'bytes=300000-']);

  const controller = new AbortController();
  const cancelled = saveAttachment(api, crypto, up, out, 'cancelled.bin', {
    signal: controller.signal,
    onProgress: (r) => r > 0 && controller.abort(),
  });
  await rejectsWith(cancelled, 'CANCELLED');
  assert.deepEqual(await readdir(out), ['x.bin']);
});

test('a cancelled upload is deleted from the server', async () => {
  const { api } = await fresh();
  const controller = new AbortController();
  let handle: UploadHandle | undefined;
  const p = uploadAttachment(api, crypto, blobSource(new Blob([new Uint8Array(4 * MiB)])), {
    signal: controller.signal,
    onCreated: (h) => void (handle = h),
    onProgress: (sent) => sent > 0 && controller.abort(),
  });
  await rejectsWith(p, 'CANCELLED');
  await rejectsWith(api.status(handle!.id), 'SERVER', 'NOT_FOUND');
  assert.equal((await api.limits()).usedBytes, 0);
});

test('tampered, truncated or foreign blobs are refused and nothing is saved', async () => {
  const { api } = await fresh();
  const bytes = new Uint8Array(randomBytes(300_000));
  const up = await uploadAttachment(api, crypto, blobSource(new Blob([bytes])));
  const blobPath = join(server.dataDir, 'attachments', up.id.slice(0, 2), `${up.id}.blob`);
  const out = await outDir();
  const f = await open(blobPath, 'r+');
  try {
    const b = Buffer.alloc(1);
    await f.read(b, 0, 1, 200_000);
    b[0]! ^= 0x10;
    await f.write(b, 0, 1, 200_000);
    await rejectsWith(saveAttachment(api, crypto, up, out, 'x'), 'ATTACHMENT_CORRUPT', undefined, /not authentic/);
    b[0]! ^= 0x10;
    await f.write(b, 0, 1, 200_000);
  } finally {
    await f.close();
  }
  await rejectsWith(saveAttachment(api, crypto, { ...up, key: crypto.randomBytes(32) }, out, 'x'), 'ATTACHMENT_CORRUPT');
  await rejectsWith(saveAttachment(api, crypto, { ...up, digest: crypto.randomBytes(32) }, out, 'x'), 'ATTACHMENT_CORRUPT', undefined, /digest/);
  await rejectsWith(saveAttachment(api, crypto, { ...up, size: 1000 }, out, 'x'), 'ATTACHMENT_CORRUPT', undefined, /longer than its size allows/);
  assert.deepEqual(await readdir(out), [], 'no file, no temporary file');
  // Untouched again, it downloads.
  assert.equal(sha(await readFile(await saveAttachment(api, crypto, up, out, 'x'))), sha(bytes));
});

test('a deleted blob, a file over the cap and an exceeded quota each give a clear error', async () => {
  const { api } = await fresh();
  const up = await uploadAttachment(api, crypto, blobSource(new Blob([new Uint8Array(1000)])));
  await api.delete(up.id);
  await rejectsWith(saveAttachment(api, crypto, up, await outDir(), 'x'), 'SERVER', 'NOT_FOUND', /no longer on the server/);

  await rejectsWith(uploadAttachment(api, crypto, blobSource(new Blob([new Uint8Array(8 * MiB + 1)]))), 'SERVER', 'ATTACHMENT_TOO_LARGE', /8388608 bytes/);
  assert.equal((await api.limits()).usedBytes, 0, 'refused before anything was reserved');

  const big = blobSource(new Blob([new Uint8Array(7 * MiB)]));
  for (let i = 0; i < 5; i++) await uploadAttachment(api, crypto, big);
  await rejectsWith(uploadAttachment(api, crypto, big), 'SERVER', 'QUOTA_EXCEEDED', /storage/);
});

test('a file that changes between attempts is refused, not sent mixed', async () => {
  const p = await file('changing.bin', new Uint8Array(randomBytes(2 * MiB)));
  const source = await fileSource(p);
  let patches = 0;
  const changing: BlobFetch = async (url, init) => {
    if (init.method === 'PATCH' && ++patches === 2) {
      await writeFile(p, new Uint8Array(randomBytes(2 * MiB)));
      throw new TypeError('fetch failed');
    }
    return fetch(url, init);
  };
  const { api } = await fresh(changing);
  await rejectsWith(uploadAttachment(api, crypto, source, noWait), 'INVALID_ARGUMENT', undefined, /changed|shrank|grew/);
});

test('the node:http transport does the same: round trip, refusals, cancellation', async () => {
  const { api } = await fresh(nodeBlobFetch);
  const bytes = new Uint8Array(randomBytes(3 * MiB + 3));
  const up = await uploadAttachment(api, crypto, await fileSource(await file('nodefetch.bin', bytes)));
  const out = await outDir();
  assert.equal(sha(await readFile(await saveAttachment(api, crypto, up, out, 'a.bin'))), sha(bytes));
  await rejectsWith(uploadAttachment(api, crypto, blobSource(new Blob([new Uint8Array(8 * MiB + 1)]))), 'SERVER', 'ATTACHMENT_TOO_LARGE');
  const controller = new AbortController();
  await rejectsWith(saveAttachment(api, crypto, up, out, 'b.bin', { signal: controller.signal, onProgress: (r) => r > 0 && controller.abort() }), 'CANCELLED');
  const c2 = new AbortController();
  await rejectsWith(uploadAttachment(api, crypto, blobSource(new Blob([bytes])), { signal: c2.signal, onProgress: (n) => n > 0 && c2.abort() }), 'CANCELLED');
  assert.deepEqual(await readdir(out), ['a.bin']);
  await api.delete(up.id);
  assert.equal((await api.limits()).usedBytes, 0);
  await rejectsWith(saveAttachment(api, crypto, up, out, 'c.bin'), 'SERVER', 'NOT_FOUND');
});
