import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { ERRORS, MAX_PROVISIONING_CHANNELS_PER_ADDRESS, type ErrorFrame, type MessageFrame } from '@tacit/api';
import { Client, register, sendMessage, start, type Account, type Harness } from './helpers.js';

/** Proves the server still relays between two healthy clients and the earlier queue is intact. */
async function stillServing(h: Harness, a: Account, b: Account, expectQueued: string[]) {
  const cb = await Client.connect(h.wsUrl, b);
  await cb.next((f) => f.type === 'queue-empty');
  const queued = cb.frames.filter((f) => f.type === 'message').map((f) => Buffer.from((f as MessageFrame).envelope.body, 'base64').toString());
  assert.deepEqual(queued, expectQueued);
  for (const f of cb.frames) if (f.type === 'message') cb.send({ type: 'ack', id: f.envelope.id });
  const ca = await Client.connect(h.wsUrl, a);
  const marker = `live-${randomBytes(4).toString('hex')}`;
  assert.equal((await sendMessage(ca, { username: b.username, deviceId: 1 }, marker)).type, 'sent');
  const m = await cb.next<MessageFrame>((f) => f.type === 'message' && Buffer.from(f.envelope.body, 'base64').toString() === marker);
  cb.send({ type: 'ack', id: m.envelope.id });
  cb.send({ type: 'ping', id: 'barrier' });
  await cb.next((f) => f.type === 'pong');
  ca.close();
  cb.close();
  await Promise.all([ca.closed, cb.closed]);
}

test('hostile frames close the offending socket with a code; the server keeps serving and the store is intact', async () => {
  const h = await start({ limits: { maxFrameBytes: 64 * 1024, frameBurst: 100, frameRatePerSecond: 10 } });
  try {
    const a = await register(h);
    const b = await register(h);
    const m = await register(h);
    // Queue something for b first; it must survive everything below.
    const ca = await Client.connect(h.wsUrl, a);
    await sendMessage(ca, { username: b.username, deviceId: 1 }, 'before');
    ca.close();

    const cases: [string, string | Buffer, number][] = [
      ['malformed JSON', '{"type":', ERRORS.INVALID_REQUEST.close],
      ['not an object', '[1,2,3]', ERRORS.INVALID_REQUEST.close],
      ['null', 'null', ERRORS.INVALID_REQUEST.close],
      ['unknown kind', '{"type":"launch"}', ERRORS.INVALID_REQUEST.close],
      ['wrong id type', '{"type":"ack","id":5}', ERRORS.INVALID_REQUEST.close],
      ['wrong to type', JSON.stringify({ type: 'send', id: 'x', to: 'bob', message: { type: 'whisper', body: 'AAAA' } }), ERRORS.INVALID_REQUEST.close],
      ['bad ciphertext type', JSON.stringify({ type: 'send', id: 'x', to: { username: b.username, deviceId: 1 }, message: { type: 'plain', body: 'AAAA' } }), ERRORS.INVALID_REQUEST.close],
      ['bad base64', JSON.stringify({ type: 'send', id: 'x', to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body: 'A!==' } }), ERRORS.INVALID_REQUEST.close],
      ['proto pollution', '{"type":"ping","__proto__":{"admin":true}}', ERRORS.INVALID_REQUEST.close],
      ['deep nesting', '['.repeat(30_000) + ']'.repeat(30_000), ERRORS.INVALID_REQUEST.close],
      ['second auth', JSON.stringify({ type: 'auth', username: m.username, deviceId: 1, secret: m.secret }), ERRORS.INVALID_REQUEST.close],
      ['binary frame', Buffer.from([1, 2, 3]), ERRORS.INVALID_REQUEST.close],
      ['huge frame', 'x'.repeat(64 * 1024 + 1), ERRORS.PAYLOAD_TOO_LARGE.close],
    ];
    for (const [name, frame, closeCode] of cases) {
      const c = await Client.connect(h.wsUrl, m);
      await c.next((f) => f.type === 'queue-empty');
      c.ws.send(frame, { binary: Buffer.isBuffer(frame) });
      const closed = await c.closed;
      assert.equal(closed.code, closeCode, name);
      if (closeCode !== 1009) {
        const e = c.frames.find((f) => f.type === 'error') as ErrorFrame | undefined;
        assert.equal(e?.code, 'INVALID_REQUEST', name);
        assert.equal(closed.reason, 'INVALID_REQUEST');
      }
    }
    // Unauthenticated garbage, too.
    const anon = await Client.open(h.wsUrl);
    anon.send('{{{{');
    assert.equal((await anon.closed).code, ERRORS.INVALID_REQUEST.close);

    // Flood: far more frames than the burst allows.
    const flood = await Client.connect(h.wsUrl, m);
    for (let i = 0; i < 1000 && flood.ws.readyState === flood.ws.OPEN; i++) flood.send({ type: 'ping' });
    const closed = await flood.closed;
    assert.equal(closed.code, ERRORS.RATE_LIMITED.close);

    await stillServing(h, a, b, ['before']);
  } finally {
    await h.close();
  }
});

test('random JSON frames never crash the server', async () => {
  const h = await start({ limits: { sendBurst: 10_000, frameBurst: 10_000 } });
  try {
    const a = await register(h);
    const b = await register(h);
    const m = await register(h);
    const frames = fc.sample(
      fc.oneof(
        fc.jsonValue(),
        fc.record({ type: fc.constantFrom('auth', 'send', 'ack', 'ping', 'message'), id: fc.jsonValue(), to: fc.jsonValue(), message: fc.jsonValue() }, { requiredKeys: ['type'] }),
        fc.string(),
      ),
      { numRuns: 150, seed: 42 },
    );
    let c = await Client.connect(h.wsUrl, m);
    for (const f of frames) {
      if (c.isClosed) c = await Client.connect(h.wsUrl, m);
      c.send(typeof f === 'string' ? f : JSON.stringify(f));
      // Wait for the server's verdict on this frame: a pong after it, or the close.
      c.send({ type: 'ping', id: 'verdict' });
      await Promise.race([c.next((x) => x.type === 'pong').catch(() => undefined), c.closed]);
    }
    c.close();
    await stillServing(h, a, b, []);
  } finally {
    await h.close();
  }
});

test('many sockets that never authenticate are bounded; authenticated clients still get in', async () => {
  const h = await start({ limits: { maxUnauthenticatedConnections: 5 } });
  try {
    const a = await register(h);
    const b = await register(h);
    const idle = [];
    for (let i = 0; i < 5; i++) idle.push(await Client.open(h.wsUrl));
    // Over the node's budget the oldest idle socket makes room for the newcomer.
    const extra = await Client.open(h.wsUrl);
    assert.equal((await idle[0]!.closed).code, ERRORS.UNAVAILABLE.close);
    assert.equal(h.server.relay.stats.unauthenticated, 5);
    extra.close();
    for (const c of idle) c.close();
    await Promise.all(idle.map((c) => c.closed));
    await stillServing(h, a, b, []);
  } finally {
    await h.close();
  }
});

/** A socket whose writes fail, as one whose peer reset the connection just before the server answers. */
function resetSocket(): Duplex {
  const s = new Duplex({
    read() {},
    write(_chunk, _encoding, callback) {
      callback(Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' }));
    },
  });
  Object.defineProperty(s, 'remoteAddress', { value: '127.0.0.1' });
  return s;
}

test('an upgrade refused on a socket that fails as the refusal is written does not crash the server', async () => {
  const h = await start();
  try {
    const refused = async (url: string): Promise<void> => {
      const socket = resetSocket();
      const req = { url, headers: {}, socket } as unknown as IncomingMessage;
      h.server.app.server.emit('upgrade', req, socket, Buffer.alloc(0));
      // (events.once would reject on the 'error' the server is meant to take.)
      if (!socket.destroyed) await new Promise((r) => socket.once('close', r));
    };
    // The relay's refusal: no such path.
    await refused('/v1/nowhere');
    // The provisioning channel's: this address holds as many channels as it may.
    const open: WebSocket[] = [];
    for (let i = 0; i < MAX_PROVISIONING_CHANNELS_PER_ADDRESS; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${h.port}/v1/provisioning`);
      open.push(ws);
      await once(ws, 'message');
    }
    await refused('/v1/provisioning');
    for (const ws of open) ws.close();
    // Still serving.
    const a = await register(h);
    const b = await register(h);
    await stillServing(h, a, b, []);
  } finally {
    await h.close();
  }
});
