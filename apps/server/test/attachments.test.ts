/**
 * The attachment routes through a real listening server (files blob store in a temporary
 * directory): authentication, caps, quota, resumable pieces, ranges, expiry, hostile requests.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ATTACHMENT_FRAME_BYTES, attachmentBlobLength, type DeviceCredentials } from '@tacit/api';
import { FsBlobStore, type Limits } from '../src/index.js';
import { parseRange } from '../src/attachments/routes.js';
import { auth, register, start, type Harness } from './helpers.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface Setup {
  h: Harness;
  dir: string;
  clock: { now: number };
  url: (path: string) => string;
}

async function setup(limits: Partial<Limits> = {}, blobs = true): Promise<Setup> {
  const root = await mkdtemp(join(tmpdir(), 'tacit-att-'));
  dirs.push(root);
  const dir = join(root, 'attachments');
  const clock = { now: Date.now() };
  const h = await start({ ...(blobs ? { blobs: await FsBlobStore.open(dir) } : {}), now: () => clock.now, limits });
  return { h, dir, clock, url: (p) => `http://127.0.0.1:${h.port}${p}` };
}

type Creds = DeviceCredentials;

async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

async function create(s: Setup, a: Creds, length: number): Promise<Response> {
  return fetch(s.url('/v1/attachments'), { method: 'POST', headers: { ...auth(a), 'content-type': 'application/json' }, body: JSON.stringify({ length }) });
}

async function createId(s: Setup, a: Creds, length: number): Promise<string> {
  const res = await create(s, a, length);
  assert.equal(res.status, 201);
  return (await json(res))['id'] as string;
}

function patch(s: Setup, a: Creds, id: string, offset: number, body: Uint8Array): Promise<Response> {
  return fetch(s.url(`/v1/attachments/${id}`), {
    method: 'PATCH',
    headers: { ...auth(a), 'content-type': 'application/octet-stream', 'upload-offset': String(offset) },
    body: body as Uint8Array<ArrayBuffer>,
  });
}

async function status(s: Setup, a: Creds, id: string): Promise<Response> {
  return fetch(s.url(`/v1/attachments/${id}/upload`), { headers: auth(a) });
}

async function upload(s: Setup, a: Creds, bytes: Uint8Array, piece = 300_000): Promise<string> {
  const id = await createId(s, a, bytes.length);
  for (let at = 0; at < bytes.length; at += piece) {
    const res = await patch(s, a, id, at, bytes.subarray(at, at + piece));
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal((await json(res))['received'], Math.min(bytes.length, at + piece));
  }
  return id;
}

async function errorCode(res: Response): Promise<string> {
  return ((await json(res))['error'] as { code: string }).code;
}

/** A PATCH over a raw socket that sends `send` bytes of a `declared`-byte body, then stalls until `stop()` destroys it. */
function stalledPatch(s: Setup, a: Creds, id: string, offset: number, declared: number, send: Uint8Array) {
  const req = request(s.url(`/v1/attachments/${id}`), {
    method: 'PATCH',
    headers: { ...auth(a), 'content-type': 'application/octet-stream', 'upload-offset': String(offset), 'content-length': String(declared) },
  });
  const closed = new Promise<void>((resolve) => {
    req.on('error', () => resolve());
    req.on('close', () => resolve());
  });
  req.write(send);
  return { stop: () => req.destroy(), closed };
}

async function waitFor(pred: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('attachments: upload in pieces, download whole and in ranges, by another registered device', async () => {
  const s = await setup();
  try {
    const [alice, bob] = [await register(s.h), await register(s.h)];
    const bytes = new Uint8Array(randomBytes(1_000_000));
    const id = await upload(s, alice, bytes);
    assert.match(id, /^[0-9a-f]{48}$/);
    const st = await json(await status(s, alice, id));
    assert.equal(st['received'], bytes.length);
    assert.equal(st['length'], bytes.length);

    const whole = await fetch(s.url(`/v1/attachments/${id}`), { headers: auth(bob) });
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('content-length'), String(bytes.length));
    assert.equal(whole.headers.get('accept-ranges'), 'bytes');
    assert.equal(whole.headers.get('cache-control'), 'private, no-store');
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(bytes));

    for (const [range, start, end] of [
      ['bytes=0-0', 0, 1],
      ['bytes=1000-299999', 1000, 300_000],
      ['bytes=999990-', 999_990, 1_000_000],
      ['bytes=-10', 999_990, 1_000_000],
      ['bytes=5-99999999', 5, 1_000_000],
    ] as const) {
      const r = await fetch(s.url(`/v1/attachments/${id}`), { headers: { ...auth(bob), range } });
      assert.equal(r.status, 206, range);
      assert.equal(r.headers.get('content-range'), `bytes ${start}-${end - 1}/${bytes.length}`);
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(bytes.subarray(start, end)), range);
    }
    const bad = await fetch(s.url(`/v1/attachments/${id}`), { headers: { ...auth(bob), range: 'bytes=1000000-' } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.get('content-range'), `bytes */${bytes.length}`);
    assert.equal(await errorCode(bad), 'RANGE_NOT_SATISFIABLE');
    const head = await fetch(s.url(`/v1/attachments/${id}`), { method: 'HEAD', headers: auth(bob) });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(bytes.length));

    // Only the uploader's account sees the upload's status or deletes it.
    assert.equal((await status(s, bob, id)).status, 404);
    assert.equal((await fetch(s.url(`/v1/attachments/${id}`), { method: 'DELETE', headers: auth(bob) })).status, 404);
    assert.equal((await patch(s, bob, id, bytes.length, new Uint8Array(0))).status, 404);
    assert.equal((await fetch(s.url(`/v1/attachments/${id}`), { method: 'DELETE', headers: auth(alice) })).status, 204);
    assert.equal((await fetch(s.url(`/v1/attachments/${id}`), { headers: auth(bob) })).status, 404);
  } finally {
    await s.h.close();
  }
});

test('attachments: only registered devices, valid ids and well-formed pieces', async () => {
  const s = await setup();
  try {
    const alice = await register(s.h);
    const id = await createId(s, alice, 100);
    const none = { username: alice.username, deviceId: 1, secret: Buffer.from(randomBytes(32)).toString('base64') };
    for (const [method, path] of [
      ['GET', '/v1/attachments'],
      ['POST', '/v1/attachments'],
      ['GET', `/v1/attachments/${id}`],
      ['GET', `/v1/attachments/${id}/upload`],
      ['PATCH', `/v1/attachments/${id}`],
      ['DELETE', `/v1/attachments/${id}`],
    ] as const) {
      for (const headers of [{}, auth(none)]) {
        const r = await fetch(s.url(path), { method, headers });
        assert.equal(r.status, 401, `${method} ${path}`);
        assert.equal(await errorCode(r), 'UNAUTHORIZED');
      }
    }
    for (const bad of ['x', id.toUpperCase(), `${id}0`, '../../etc/passwd']) {
      const r = await fetch(s.url(`/v1/attachments/${encodeURIComponent(bad)}`), { headers: auth(alice) });
      assert.ok(r.status === 400 || r.status === 404, bad);
    }
    assert.equal((await fetch(s.url(`/v1/attachments/${randomBytes(24).toString('hex')}`), { headers: auth(alice) })).status, 404);
    for (const body of [{}, { length: 0 }, { length: -1 }, { length: 1.5 }, { length: '5' }, { length: 5, name: 'x' }]) {
      const r = await fetch(s.url('/v1/attachments'), { method: 'POST', headers: { ...auth(alice), 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(r.status, 400, JSON.stringify(body));
    }
    // Offsets: missing, malformed, past the end, or not where the blob stands.
    const piece = new Uint8Array(10);
    for (const offset of [undefined, '', '-1', '01', '1e3', '0x5']) {
      const headers: Record<string, string> = { ...auth(alice), 'content-type': 'application/octet-stream' };
      if (offset !== undefined) headers['upload-offset'] = offset;
      const r = await fetch(s.url(`/v1/attachments/${id}`), { method: 'PATCH', headers, body: piece });
      assert.equal(r.status, 400, String(offset));
    }
    assert.equal(await errorCode(await patch(s, alice, id, 95, piece)), 'PAYLOAD_TOO_LARGE');
    const mismatch = await patch(s, alice, id, 5, piece);
    assert.equal(mismatch.status, 409);
    assert.equal(await errorCode(mismatch), 'OFFSET_MISMATCH');
    // A piece without a declared length (chunked transfer encoding) is refused.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(s.url(`/v1/attachments/${id}`), { method: 'PATCH', headers: { ...auth(alice), 'content-type': 'application/octet-stream', 'upload-offset': '0' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(piece);
      req.end();
    });
    assert.equal(chunked, 400);
    assert.equal((await json(await status(s, alice, id)))['received'], 0, 'nothing stored by refused pieces');
    // Pieces far larger than the JSON body limit stream through.
    const big = await createId(s, alice, 3 * 1024 * 1024);
    const r = await patch(s, alice, big, 0, new Uint8Array(randomBytes(3 * 1024 * 1024)));
    assert.equal(r.status, 200);
    // An incomplete blob cannot be downloaded.
    assert.equal((await fetch(s.url(`/v1/attachments/${id}`), { headers: auth(alice) })).status, 404);
  } finally {
    await s.h.close();
  }
});

test('attachments: a file over the cap is refused before any byte is stored; the quota holds', async () => {
  const s = await setup({ maxAttachmentBytes: 100_000, attachmentQuotaBytes: 250_000 });
  try {
    const alice = await register(s.h);
    // The server sees blob lengths only, so it caps by the padding bucket of the largest file.
    assert.equal(attachmentBlobLength(100_001), attachmentBlobLength(100_000), 'the same bucket');
    const over = await create(s, alice, attachmentBlobLength(100_000) + 1);
    assert.equal(over.status, 413);
    assert.equal(await errorCode(over), 'ATTACHMENT_TOO_LARGE');
    assert.match(((await json(await create(s, alice, attachmentBlobLength(110_000)))) as { error: { message: string } }).error.message, /100000 bytes/);
    assert.deepEqual(await readdir(s.dir), [], 'nothing on disk');
    const limits = await json(await fetch(s.url('/v1/attachments'), { headers: auth(alice) }));
    assert.deepEqual(limits, { maxBytes: 100_000, quotaBytes: 250_000, usedBytes: 0, ttlMs: 30 * 24 * 3600 * 1000 });
    const max = attachmentBlobLength(100_000);
    assert.equal((await create(s, alice, max)).status, 201);
    assert.equal((await create(s, alice, max)).status, 201);
    const q = await create(s, alice, max);
    assert.equal(q.status, 403);
    assert.equal(await errorCode(q), 'QUOTA_EXCEEDED');
    assert.equal((await json(await fetch(s.url('/v1/attachments'), { headers: auth(alice) })))['usedBytes'], 2 * max);
    // Another account has its own quota.
    assert.equal((await create(s, await register(s.h), max)).status, 201);
  } finally {
    await s.h.close();
  }
});

test('attachments: an interrupted piece keeps what arrived, and the upload resumes from there', async () => {
  const s = await setup();
  try {
    const alice = await register(s.h);
    const bytes = new Uint8Array(randomBytes(2 * ATTACHMENT_FRAME_BYTES + 1234));
    const id = await createId(s, alice, bytes.length);
    const cut = stalledPatch(s, alice, id, 0, bytes.length, bytes.subarray(0, 70_000));
    // While the piece is in progress, the status counts nothing of it; once it is cut off, it
    // counts what arrived.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await json(await status(s, alice, id)))['received'], 0);
    cut.stop();
    await cut.closed;
    let received = 0;
    await waitFor(async () => {
      received = (await json(await status(s, alice, id)))['received'] as number;
      return received > 0;
    }, 'the stored offset');
    assert.ok(received <= 70_000);
    const r = await patch(s, alice, id, received, bytes.subarray(received));
    assert.equal(r.status, 200);
    const got = Buffer.from(await (await fetch(s.url(`/v1/attachments/${id}`), { headers: auth(alice) })).arrayBuffer());
    assert.ok(got.equals(bytes));
  } finally {
    await s.h.close();
  }
});

test('attachments: a newer piece for the same blob takes over from a stalled one', async () => {
  const s = await setup();
  try {
    const alice = await register(s.h);
    const bytes = new Uint8Array(randomBytes(200_000));
    const id = await createId(s, alice, bytes.length);
    const stalled = stalledPatch(s, alice, id, 0, bytes.length, bytes.subarray(0, 50_000));
    // Let the server write what the stalled request sent so far.
    await new Promise((r) => setTimeout(r, 200));
    // The client thinks it lost the connection and starts over at 0: the stalled request is ended,
    // its bytes kept, and the newcomer is told where the blob stands.
    const again = await patch(s, alice, id, 0, bytes);
    await stalled.closed;
    let at = 0;
    if (again.status === 409) {
      assert.equal(await errorCode(again), 'OFFSET_MISMATCH');
      at = (await json(await status(s, alice, id)))['received'] as number;
      assert.ok(at > 0 && at <= 50_000);
      assert.equal((await patch(s, alice, id, at, bytes.subarray(at))).status, 200);
    } else {
      assert.equal(again.status, 200, 'the stalled request had stored nothing yet');
    }
    assert.ok(Buffer.from(await (await fetch(s.url(`/v1/attachments/${id}`), { headers: auth(alice) })).arrayBuffer()).equals(bytes));
  } finally {
    await s.h.close();
  }
});

test('attachments: unfinished uploads and old blobs expire, and the sweep deletes their files', async () => {
  const s = await setup({ attachmentUploadTtlMs: 60_000, attachmentTtlMs: 3_600_000, expirySweepIntervalMs: 20 });
  try {
    const alice = await register(s.h);
    const done = await upload(s, alice, new Uint8Array(5000));
    const unfinished = await createId(s, alice, 5000);
    s.clock.now += 61_000;
    assert.equal((await status(s, alice, unfinished)).status, 404);
    assert.equal((await patch(s, alice, unfinished, 0, new Uint8Array(10))).status, 404);
    assert.equal((await fetch(s.url(`/v1/attachments/${done}`), { headers: auth(alice) })).status, 200);
    await waitFor(async () => (await readdir(join(s.dir, unfinished.slice(0, 2))).catch(() => [])).every((n) => !n.startsWith(unfinished)), 'the sweep');
    s.clock.now += 3_600_000;
    const gone = await fetch(s.url(`/v1/attachments/${done}`), { headers: auth(alice) });
    assert.equal(gone.status, 404);
    assert.match(((await json(gone)) as { error: { message: string } }).error.message, /expired or been deleted/);
    await waitFor(async () => (await readdir(join(s.dir, done.slice(0, 2))).catch(() => [])).every((n) => !n.startsWith(done)), 'the sweep');
  } finally {
    await s.h.close();
  }
});

test('attachments: requests are rate limited per device; a server without a blob store says so', async () => {
  const s = await setup({ attachmentCreateBurst: 2, attachmentCreatePerHour: 1, attachmentRequestBurst: 3, attachmentRequestsPerSecond: 0.001 });
  try {
    const alice = await register(s.h);
    assert.equal((await create(s, alice, 10)).status, 201);
    assert.equal((await create(s, alice, 10)).status, 201);
    const third = await create(s, alice, 10);
    assert.equal(third.status, 429);
    assert.equal(await errorCode(third), 'RATE_LIMITED');
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await fetch(s.url('/v1/attachments'), { headers: auth(alice) })).status);
    assert.deepEqual(codes, [200, 200, 200, 429]);
    assert.equal((await fetch(s.url('/v1/attachments'), { headers: auth(await register(s.h)) })).status, 200, 'per device');
  } finally {
    await s.h.close();
  }
  const bare = await setup({}, false);
  try {
    const r = await create(bare, await register(bare.h), 10);
    assert.equal(r.status, 503);
    assert.equal(await errorCode(r), 'UNAVAILABLE');
  } finally {
    await bare.h.close();
  }
});

test('attachments: Range header parsing', () => {
  assert.deepEqual(parseRange(undefined, 10), undefined);
  assert.deepEqual(parseRange('bytes=0-', 10), { start: 0, end: 10 });
  assert.deepEqual(parseRange('bytes=2-4', 10), { start: 2, end: 5 });
  assert.deepEqual(parseRange('bytes=-3', 10), { start: 7, end: 10 });
  assert.deepEqual(parseRange('bytes=-30', 10), { start: 0, end: 10 });
  assert.equal(parseRange('bytes=10-', 10), 'unsatisfiable');
  assert.equal(parseRange('bytes=-0', 10), 'unsatisfiable');
  for (const ignored of ['bytes=4-2', 'bytes=0-1,3-4', 'items=0-1', 'bytes=-', 'bytes=a-b', 'bytes=99999999999999999-']) {
    const r = parseRange(ignored, 10);
    assert.ok(r === undefined || r === 'unsatisfiable', ignored);
  }
});
