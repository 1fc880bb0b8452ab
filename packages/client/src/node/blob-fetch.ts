/**
 * `BlobFetch` on node:http(s) for attachment transfers in Node. The global `fetch` copies a
 * request body before sending it (the Fetch standard's "extract a body"), so every upload piece
 * (up to 4 MiB) would be allocated twice, and the garbage lifts peak memory by tens of MiB on a
 * large file. Here the piece is written to the socket as it is, and a response body is a stream
 * read with backpressure.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import type { BlobFetch } from '../attachment/blob-api.js';

export const nodeBlobFetch: BlobFetch = (url, init) =>
  new Promise((resolve, reject) => {
    const u = new URL(url);
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const body = typeof init.body === 'string' ? Buffer.from(init.body) : init.body;
    const headers: Record<string, string> = { ...init.headers };
    if (body !== undefined) headers['content-length'] = String(body.length);
    const req = send(u, { method: init.method, headers, ...(init.signal ? { signal: init.signal } : {}) }, (res: IncomingMessage) => {
      const stream = Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>;
      resolve({
        status: res.statusCode ?? 0,
        headers: { get: (name) => (res.headers[name.toLowerCase()] as string | undefined) ?? null },
        body: stream,
        async text() {
          const parts: Buffer[] = [];
          for await (const c of res) parts.push(c as Buffer);
          return Buffer.concat(parts).toString('utf8');
        },
      });
    });
    req.on('error', reject);
    req.end(body);
  });
