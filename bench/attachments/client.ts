// bench:attachments' client, in its own process so its memory is its own. Commands over IPC:
//   {cmd: 'tacit', file, out}  encrypt + upload `file` through the SDK, then download + verify +
//                              decrypt it to `out` (saveAttachment); answers the two times in ms
//   {cmd: 'plain', file, out}  PUT `file` to the bare server, GET it back to `out` (fsynced)
//   {cmd: 'mem'}               answers VmRSS and VmHWM (bytes)
//   {cmd: 'reset-peak'}        resets VmHWM to the current RSS (Linux clear_refs), answers whether it could
import { createReadStream, createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { request } from 'node:http';
import { dirname, basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { DeviceCredentials } from '@tacit/api';
import { AttachmentApi, uploadAttachment } from '@tacit/client';
import { fileSource, nodeAttachmentCrypto, nodeBlobFetch, saveAttachment } from '@tacit/client/node';

const tacitUrl = process.env['TACIT_URL']!;
const plainUrl = process.env['PLAIN_URL']!;
const creds = JSON.parse(process.env['TACIT_CREDENTIALS']!) as DeviceCredentials;
const api = new AttachmentApi(tacitUrl, creds, nodeBlobFetch);
const crypto = nodeAttachmentCrypto();

function memory(): { rss: number; peak: number } {
  const text = readFileSync('/proc/self/status', 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

async function tacit(file: string, out: string): Promise<{ up: number; down: number }> {
  const t0 = performance.now();
  const up = await uploadAttachment(api, crypto, await fileSource(file));
  const t1 = performance.now();
  const path = await saveAttachment(api, crypto, up, dirname(out), basename(out));
  const t2 = performance.now();
  await unlink(path);
  await api.delete(up.id);
  return { up: t1 - t0, down: t2 - t1 };
}

function put(file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(`${plainUrl}/blob`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Error(`PUT ${res.statusCode}`))));
    });
    req.on('error', reject);
    pipeline(createReadStream(file, { highWaterMark: 256 * 1024 }), req).catch(reject);
  });
}

function get(out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    request(`${plainUrl}/blob`, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`GET ${res.statusCode}`));
      pipeline(res, createWriteStream(out))
        .then(async () => {
          const f = await open(out, 'r+');
          await f.datasync();
          await f.close();
          resolve();
        })
        .catch(reject);
    })
      .on('error', reject)
      .end();
  });
}

async function plain(file: string, out: string): Promise<{ up: number; down: number }> {
  const t0 = performance.now();
  await put(file);
  const t1 = performance.now();
  await get(out);
  const t2 = performance.now();
  await unlink(out);
  return { up: t1 - t0, down: t2 - t1 };
}

process.on('message', (m: { cmd: string; file?: string; out?: string }) => {
  const answer = (x: object) => process.send!(x);
  const run = async () => {
    if (m.cmd === 'tacit') return answer({ ev: 'done', ...(await tacit(m.file!, m.out!)) });
    if (m.cmd === 'plain') return answer({ ev: 'done', ...(await plain(m.file!, m.out!)) });
    if (m.cmd === 'mem') return answer({ ev: 'mem', ...memory() });
    if (m.cmd === 'reset-peak') {
      try {
        writeFileSync('/proc/self/clear_refs', '5');
        return answer({ ev: 'reset', ok: true });
      } catch {
        return answer({ ev: 'reset', ok: false });
      }
    }
  };
  run().catch((e: unknown) => answer({ ev: 'error', message: e instanceof Error ? e.message : String(e) }));
});
process.send!({ ev: 'ready' });
