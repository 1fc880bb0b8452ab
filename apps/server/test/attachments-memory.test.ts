/**
 * The server's memory stays flat whatever the attachment size: a server process (main.ts, files
 * blob store) takes a 160 MiB upload and serves it back, to a fast reader and to one that stops
 * reading for a while, and an uploader that trickles its bytes; its peak resident memory
 * (VmHWM) grows by far less than the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authorizationHeader } from '@tacit/api';
import { makeDevice, registration } from './helpers.js';
import { startServer, stopServer } from './processes.js';

const MiB = 1024 * 1024;
const FILE = 160 * MiB;
const PIECE = 8 * MiB;
/** Peak growth allowed while moving FILE bytes through: a fraction of the file. */
const MAX_GROWTH = 48 * MiB;

function memory(pid: number): { rss: number; peak: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

test('attachments: server memory stays flat for a 160 MiB upload and download, a stalled reader and a trickling uploader', { skip: !existsSync('/proc/self/status') && 'needs /proc' }, async (t) => {
  const data = await mkdtemp(join(tmpdir(), 'tacit-attmem-'));
  const server = await startServer({ TACIT_DATA_DIR: data, TACIT_MAX_ATTACHMENT_BYTES: String(256 * MiB), TACIT_ATTACHMENT_QUOTA_BYTES: String(1024 * MiB) });
  const pid = server.proc.pid!;
  const base = `http://127.0.0.1:${server.port}`;
  try {
    const device = makeDevice();
    const username = `mem${process.pid}`;
    const reg = await fetch(`${base}/v1/accounts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(registration(username, device)) });
    assert.equal(reg.status, 201);
    const authz = authorizationHeader({ username, deviceId: 1, secret: device.secret });
    const create = async (length: number) => {
      const r = await fetch(`${base}/v1/attachments`, { method: 'POST', headers: { authorization: authz, 'content-type': 'application/json' }, body: JSON.stringify({ length }) });
      assert.equal(r.status, 201);
      return ((await r.json()) as { id: string }).id;
    };
    const piece = new Uint8Array(randomBytes(PIECE));
    const upload = async (id: string, length: number) => {
      for (let at = 0; at < length; at += PIECE) {
        const n = Math.min(PIECE, length - at);
        const r = await fetch(`${base}/v1/attachments/${id}`, {
          method: 'PATCH',
          headers: { authorization: authz, 'content-type': 'application/octet-stream', 'upload-offset': String(at) },
          body: piece.subarray(0, n) as Uint8Array<ArrayBuffer>,
        });
        assert.equal(r.status, 200);
      }
    };
    const download = async (id: string) => {
      const r = await fetch(`${base}/v1/attachments/${id}`, { headers: { authorization: authz } });
      assert.equal(r.status, 200);
      const h = createHash('sha256');
      let n = 0;
      for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
        h.update(chunk);
        n += chunk.length;
      }
      return { n, digest: h.digest('hex') };
    };
    // Warm up every code path once, so the baseline includes them.
    const warm = await create(2 * PIECE);
    await upload(warm, 2 * PIECE);
    await download(warm);

    const before = memory(pid);
    const id = await create(FILE);
    await upload(id, FILE);
    const expected = createHash('sha256');
    for (let at = 0; at < FILE; at += PIECE) expected.update(piece);
    const got = await download(id);
    assert.equal(got.n, FILE);
    assert.equal(got.digest, expected.digest('hex'));

    // A reader that takes 1 MiB and then stops reading: the server must wait, not buffer the rest.
    const stalled = await new Promise<{ rss: number }>((resolve, reject) => {
      const req = request(`${base}/v1/attachments/${id}`, { headers: { authorization: authz } }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n < MiB) return;
          res.pause();
          setTimeout(() => {
            const m = memory(pid);
            req.destroy();
            resolve(m);
          }, 1500);
        });
      });
      req.on('error', (e) => (e.message.includes('socket hang up') || e.message.includes('aborted') ? undefined : reject(e)));
      req.end();
    });

    // An uploader that trickles 16 KiB every 10 ms for a second and then goes away.
    const slowId = await create(FILE);
    await new Promise<void>((resolve) => {
      const req = request(`${base}/v1/attachments/${slowId}`, {
        method: 'PATCH',
        headers: { authorization: authz, 'content-type': 'application/octet-stream', 'upload-offset': '0', 'content-length': String(FILE) },
      });
      req.on('error', () => undefined);
      let sent = 0;
      const t = setInterval(() => {
        req.write(piece.subarray(sent, sent + 16 * 1024));
        sent += 16 * 1024;
        if (sent >= 100 * 16 * 1024) {
          clearInterval(t);
          req.destroy();
          resolve();
        }
      }, 10);
    });

    const after = memory(pid);
    const growth = after.peak - before.peak;
    t.diagnostic(
      `server peak RSS ${Math.round(before.peak / MiB)} MiB -> ${Math.round(after.peak / MiB)} MiB (+${Math.round(growth / MiB)} MiB) for a ${FILE / MiB} MiB file; ` +
        `RSS with a stalled reader ${Math.round(stalled.rss / MiB)} MiB`,
    );
    assert.ok(growth < MAX_GROWTH, `peak RSS grew by ${Math.round(growth / MiB)} MiB`);
    assert.ok(stalled.rss - before.rss < MAX_GROWTH, `a stalled reader grew RSS by ${Math.round((stalled.rss - before.rss) / MiB)} MiB`);
  } finally {
    await stopServer(server);
    await rm(data, { recursive: true, force: true });
  }
});
