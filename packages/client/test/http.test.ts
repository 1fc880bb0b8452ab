// The SDK's HTTP client against a hostile server: an oversized body is refused without being
// read whole (a real HTTP server on loopback, a real fetch).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { HttpApi } from '../src/index.ts';
import { MAX_RESPONSE_BYTES } from '../src/http.ts';

const creds = { username: 'bob', deviceId: 1, secret: 'A'.repeat(43) + '=' };
const TOTAL = 64 * 1024 * 1024;

/** Streams `TOTAL` bytes of a JSON string, honouring backpressure; resolves with the bytes written when the peer left or all was sent. */
function stream(res: ServerResponse, declareLength: boolean): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 'a');
  res.writeHead(200, { 'content-type': 'application/json', ...(declareLength ? { 'content-length': String(TOTAL) } : {}) });
  return new Promise((resolve) => {
    let written = 0;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      resolve(written);
    };
    res.on('close', finish);
    const more = (): void => {
      while (!finished && !res.destroyed && written < TOTAL) {
        written += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', more);
          return;
        }
      }
      if (written >= TOTAL) res.end(finish);
    };
    more();
  });
}

for (const declareLength of [false, true]) {
  test(`an oversized response (${declareLength ? 'declared' : 'chunked, undeclared'} length) is refused before it is read whole`, async () => {
    let served: Promise<number> | undefined;
    const server = createServer((_req, res) => {
      served = stream(res, declareLength);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const api = new HttpApi(`http://127.0.0.1:${port}`, { credentials: creds });
      await assert.rejects(api.keyCount(), (e: { code?: string }) => e.code === 'BAD_RESPONSE');
      assert.ok(served);
      const written = await served;
      // Socket buffers let the server write a little past the limit before it notices.
      assert.ok(written < TOTAL / 4, `server wrote ${written} of ${TOTAL} bytes before the client hung up (limit ${MAX_RESPONSE_BYTES})`);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
}
