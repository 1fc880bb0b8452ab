import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ERRORS, MAX_SENT_BATCH, type Envelope } from '@tacit/api';
import { DEFAULT_BACKOFF, Relay, RECONNECT_ELSEWHERE_SPREAD_MS, backoffDelay, type SocketFactory, type SocketHandlers, type EnvelopeOutcome } from '../src/index.ts';
import { MAX_RECEIVE_BATCH_CHARS, MAX_UNHANDLED_ENVELOPES } from '../src/relay.ts';

/** An in-memory socket pair: the test plays the server. */
class FakeServer {
  connections: { handlers: SocketHandlers; sent: unknown[]; closed: boolean }[] = [];
  factory: SocketFactory = (_url, handlers) => {
    const conn = { handlers, sent: [] as unknown[], closed: false };
    this.connections.push(conn);
    queueMicrotask(() => handlers.open());
    return {
      send: (text) => {
        if (conn.closed) throw new Error('closed');
        conn.sent.push(JSON.parse(text));
      },
      close: () => {
        conn.closed = true;
      },
    };
  };
  get last() {
    return this.connections[this.connections.length - 1]!;
  }
  push(frame: unknown): void {
    this.last.handlers.message(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }
  drop(code = 1006, reason = ''): void {
    this.last.closed = true;
    this.last.handlers.close(code, reason);
  }
}

const creds = { username: 'bob', deviceId: 1, secret: 'A'.repeat(43) + '=' };
const tick = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Polls (bounded) until `cond` holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (cond()) return;
    await tick(5);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** The envelope ids acknowledged in these client frames, single and batched acks alike, in order. */
function ackedIds(frames: unknown[]): string[] {
  const ids: string[] = [];
  for (const f of frames as { type: string; id?: string; ids?: string[] }[]) {
    if (f.type !== 'ack') continue;
    if (f.ids !== undefined) ids.push(...f.ids);
    else ids.push(f.id!);
  }
  return ids;
}

function envelope(id: string): Envelope {
  return { id, type: 'whisper', body: 'AAAA', source: { username: 'alice', deviceId: 1 }, timestamp: 1 };
}

/** Every relay made here, closed at the end even if a test fails (so no timer keeps the process alive). */
const relays: Relay[] = [];
after(() => {
  for (const r of relays) r.close();
});

function makeRelay(server: FakeServer, onEnvelope: (e: Envelope) => Promise<EnvelopeOutcome> = async () => 'ack') {
  const onEnvelopes = async (envs: Envelope[]): Promise<EnvelopeOutcome[]> => {
    const out: EnvelopeOutcome[] = [];
    for (const e of envs) out.push(await onEnvelope(e));
    return out;
  };
  return track(new Relay({ url: 'ws://test', credentials: creds, connect: server.factory, onEnvelopes, backoff: { baseMs: 1, maxMs: 5 }, random: () => 0.5 }));
}

function track(r: Relay): Relay {
  relays.push(r);
  return r;
}

test('authenticates with the first frame, then sends queued messages once ready', async () => {
  const server = new FakeServer();
  const relay = makeRelay(server);
  const sent = relay.send({ type: 'send', id: 'c1', to: { username: 'alice', deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
  relay.start();
  await until(() => server.connections.length === 1 && server.last.sent.length === 1, 'auth');
  assert.deepEqual(server.last.sent[0], { type: 'auth', ...creds, batched: true });
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  await until(() => server.last.sent.length === 2, 'send');
  assert.equal((server.last.sent[1] as { id: string }).id, 'c1');
  server.push({ type: 'sent', id: 'c1', serverId: 's1', timestamp: 5 });
  assert.deepEqual(await sent, { serverId: 's1', timestamp: 5 });
  relay.close();
});

test('after a dropped connection it reconnects and resends unconfirmed sends with the same id, in order', async () => {
  const server = new FakeServer();
  const relay = makeRelay(server);
  relay.start();
  await until(() => server.connections.length === 1 && server.last.sent.length === 1, 'auth');
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  const a = relay.send({ type: 'send', id: 'a', to: { username: 'alice', deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
  const b = relay.send({ type: 'send', id: 'b', to: { username: 'alice', deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
  await until(() => server.last.sent.length === 3, 'two sends');
  server.push({ type: 'sent', id: 'a', serverId: '1', timestamp: 1 });
  await a;
  server.drop();
  await until(() => server.connections.length === 2 && server.last.sent.length === 1, 'reconnect + auth');
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  await until(() => server.last.sent.length === 2, 'resend');
  assert.deepEqual(
    server.last.sent.map((f) => (f as { type: string; id?: string }).id ?? (f as { type: string }).type),
    ['auth', 'b'],
  );
  server.push({ type: 'sent', id: 'b', serverId: '2', timestamp: 2 });
  assert.equal((await b).serverId, '2');
  relay.close();
});

test('acks each envelope only after the handler stored it, one at a time in order; drained after queue-empty', async () => {
  const server = new FakeServer();
  const order: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const relay = makeRelay(server, async (e) => {
    order.push(`start ${e.id}`);
    if (e.id === '1') await gate;
    order.push(`end ${e.id}`);
    return 'ack';
  });
  let drained = false;
  relay.on('drained', () => (drained = true));
  relay.start();
  await until(() => server.last?.sent.length === 1, 'auth');
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  server.push({ type: 'message', envelope: envelope('1') });
  server.push({ type: 'message', envelope: envelope('2') });
  server.push({ type: 'queue-empty' });
  await tick(20);
  assert.deepEqual(order, ['start 1']);
  assert.equal(server.last.sent.length, 1); // no ack yet
  assert.equal(drained, false);
  release();
  await until(() => drained, 'drained');
  assert.deepEqual(order, ['start 1', 'end 1', 'start 2', 'end 2']);
  // Both arrived before the first was handled, so they form one batch: one commit, one ack frame.
  assert.deepEqual(server.last.sent.slice(1), [{ type: 'ack', ids: ['1', '2'] }]);
  relay.close();
});

test('a handler failure means no ack (the server redelivers later)', async () => {
  const server = new FakeServer();
  const relay = makeRelay(server, async () => {
    throw new Error('disk full');
  });
  relay.start();
  await until(() => server.last?.sent.length === 1, 'auth');
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  server.push({ type: 'message', envelope: envelope('9') });
  let drained = false;
  relay.on('drained', () => (drained = true));
  server.push({ type: 'queue-empty' });
  await until(() => drained, 'drained');
  assert.equal(server.last.sent.length, 1);
  relay.close();
});

test('frames that break the contract are dropped without disturbing the connection', async () => {
  const server = new FakeServer();
  const seen: string[] = [];
  const relay = makeRelay(server, async (e) => {
    seen.push(e.id);
    return 'ack';
  });
  const rejected: string[] = [];
  relay.on('rejectedFrame', (r) => rejected.push(r));
  relay.start();
  await until(() => server.last?.sent.length === 1, 'auth');
  server.push('not json {');
  server.push({ type: 'message', envelope: envelope('early') }); // before ready
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  for (const bad of [
    [],
    null,
    42,
    '"str"',
    { type: 'message' },
    { type: 'message', envelope: { ...envelope('x'), body: '!!!' } },
    { type: 'message', envelope: { ...envelope('x'), source: { username: 'A B', deviceId: 1 } } },
    { type: 'message', envelope: { ...envelope('x'), extra: 1 } },
    { type: 'sent', id: 'nobody', serverId: '1', timestamp: 1 },
    { type: 'bogus' },
    { type: 'ready', username: 'bob', deviceId: 1 },
  ]) {
    server.push(typeof bad === 'string' ? bad : JSON.stringify(bad));
  }
  server.push({ type: 'message', envelope: envelope('good') });
  let drained = false;
  relay.on('drained', () => (drained = true));
  server.push({ type: 'queue-empty' });
  await until(() => drained, 'drained');
  assert.deepEqual(seen, ['good']);
  assert.ok(rejected.length >= 12, `rejected ${rejected.length}`);
  assert.equal(relay.state, 'ready');
  relay.close();
});

test('REPLACED and UNAUTHORIZED closes are fatal: no reconnect loop, pending sends fail', async () => {
  for (const code of ['REPLACED', 'UNAUTHORIZED'] as const) {
    const server = new FakeServer();
    const relay = makeRelay(server);
    const fatal: string[] = [];
    relay.on('fatal', (e) => fatal.push(e.serverCode ?? ''));
    relay.start();
    await until(() => server.last?.sent.length === 1, 'auth');
    const p = relay.send({ type: 'send', id: 'z', to: { username: 'alice', deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
    server.drop(ERRORS[code].close, code);
    await assert.rejects(p, (e: { serverCode?: string }) => e.serverCode === code);
    await tick(30);
    assert.equal(server.connections.length, 1);
    assert.deepEqual(fatal, [code]);
    assert.equal(relay.state, 'closed');
  }
});

test('a retriable refusal is retried; a final refusal rejects that send only', async () => {
  const server = new FakeServer();
  const relay = makeRelay(server);
  relay.start();
  await until(() => server.last?.sent.length === 1, 'auth');
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  const a = relay.send({ type: 'send', id: 'a', to: { username: 'alice', deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
  const b = relay.send({ type: 'send', id: 'b', to: { username: 'nobody', deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
  await until(() => server.last.sent.length === 3, 'sends');
  server.push({ type: 'error', id: 'a', code: 'RATE_LIMITED', message: 'slow down' });
  server.push({ type: 'error', id: 'b', code: 'NOT_FOUND', message: 'no such device' });
  await assert.rejects(b, (e: { serverCode?: string }) => e.serverCode === 'NOT_FOUND');
  await until(() => server.last.sent.length === 4, 'retry of a');
  assert.equal((server.last.sent[3] as { id: string }).id, 'a');
  server.push({ type: 'sent', id: 'a', serverId: '7', timestamp: 1 });
  assert.equal((await a).serverId, '7');
  relay.close();
});

test('connection failures back off: attempts keep coming, bounded by the policy', async () => {
  const server = new FakeServer();
  const delays: number[] = [];
  const relay = makeRelay(server);
  relay.on('disconnected', (d) => delays.push(d.retryInMs));
  relay.start();
  for (let i = 0; i < 5; i++) {
    await until(() => server.connections.length === i + 1, `attempt ${i + 1}`);
    server.drop();
  }
  assert.equal(delays.length, 5);
  assert.ok(delays.every((d) => d >= 0 && d <= 5));
  relay.close();
});

test('a server that pushes past the in-flight window is dropped; unhandled envelopes stay bounded', async () => {
  const server = new FakeServer();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let handled = 0;
  const relay = makeRelay(server, async () => {
    await gate; // a slow store: nothing is handled until released
    handled++;
    return 'ack';
  });
  const rejected: string[] = [];
  relay.on('rejectedFrame', (r) => rejected.push(r));
  relay.start();
  await until(() => server.last?.sent.length === 1, 'auth');
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  const first = server.last;
  for (let i = 0; i < MAX_UNHANDLED_ENVELOPES; i++) server.push({ type: 'message', envelope: envelope(String(i)) });
  await tick(5); // the first envelope is being handled (stuck in the store), the rest wait
  assert.equal(first.closed, false, 'the window itself is allowed');
  assert.equal(server.connections.length, 1);
  // One more than the contract allows: the connection is dropped and retried.
  server.push({ type: 'message', envelope: envelope('over') });
  assert.equal(first.closed, true);
  assert.ok(rejected.some((r) => r.includes('unacknowledged')));
  await until(() => server.connections.length === 2 && server.last.sent.length === 1, 'reconnect');
  // Reconnecting does not reset the count: the new connection cannot pile up more either.
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  server.push({ type: 'message', envelope: envelope('again') });
  assert.equal(server.last.closed, true);
  release();
  // The batch being handled (everything that arrived together) finishes, without acks: its
  // connection is gone, so the server redelivers and the SDK drops what it already stored.
  await tick(20);
  assert.equal(handled, MAX_UNHANDLED_ENVELOPES);
  assert.ok(!first.sent.some((f) => (f as { type: string }).type === 'ack'));
  relay.close();
});

test('RECONNECT_ELSEWHERE (a draining node) reconnects at once, whatever the backoff, and resends what was not confirmed', async () => {
  const server = new FakeServer();
  // A backoff of a minute: only the prompt path can reconnect within the test.
  const relay = track(new Relay({ url: 'ws://test', credentials: creds, connect: server.factory, onEnvelopes: async (envs) => envs.map(() => 'ack' as const), backoff: { baseMs: 60_000, maxMs: 60_000 }, random: () => 0.5 }));
  const delays: number[] = [];
  relay.on('disconnected', (d) => delays.push(d.retryInMs));
  relay.start();
  await until(() => server.last?.sent.length === 1, 'auth');
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  const p = relay.send({ type: 'send', id: 'q', to: { username: 'alice', deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
  await until(() => server.last.sent.length === 2, 'send');
  server.drop(ERRORS.RECONNECT_ELSEWHERE.close, 'RECONNECT_ELSEWHERE');
  assert.deepEqual(delays, [RECONNECT_ELSEWHERE_SPREAD_MS / 2]);
  await until(() => server.connections.length === 2 && server.last.sent.length === 1, 'prompt reconnect');
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  await until(() => server.last.sent.length === 2, 'resend');
  assert.equal((server.last.sent[1] as { id: string }).id, 'q');
  server.push({ type: 'sent', id: 'q', serverId: '9', timestamp: 1 });
  assert.equal((await p).serverId, '9');
  relay.close();
});

test('retryNow (the browser went online or visible) reconnects at once instead of waiting out the backoff', async () => {
  const server = new FakeServer();
  // A backoff of a minute: only retryNow can reconnect within the test.
  const relay = track(new Relay({ url: 'ws://test', credentials: creds, connect: server.factory, onEnvelopes: async (envs) => envs.map(() => 'ack' as const), backoff: { baseMs: 60_000, maxMs: 60_000 }, random: () => 0.5 }));
  relay.retryNow(); // idle: nothing to do
  assert.equal(server.connections.length, 0);
  relay.start();
  await until(() => server.last?.sent.length === 1, 'auth');
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  await until(() => relay.state === 'ready', 'ready');
  relay.retryNow(); // connected: nothing to do
  assert.equal(server.connections.length, 1);
  server.drop();
  assert.equal(relay.state, 'connecting');
  assert.equal(server.connections.length, 1, 'waiting out the backoff');
  relay.retryNow();
  assert.equal(server.connections.length, 2, 'a new attempt at once');
  relay.retryNow(); // already connecting: no second socket
  assert.equal(server.connections.length, 2);
  await until(() => server.last.sent.length === 1, 'auth again');
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  await until(() => relay.state === 'ready', 'ready again');
  relay.close();
});

test('the default backoff: first retry within 250 ms, never more than 5 s apart', () => {
  assert.deepEqual(DEFAULT_BACKOFF, { baseMs: 250, maxMs: 5_000 });
  assert.ok(backoffDelay(0, DEFAULT_BACKOFF, () => 0.999) < 250);
  assert.ok(backoffDelay(40, DEFAULT_BACKOFF, () => 0.999) < 5_000);
});

/** Receive batches as the SDK sees them, from a fake server whose socket may read frames turn by turn. */
async function batchesOf(framesPerReadTurn: boolean, deliver: (server: FakeServer) => Promise<void>): Promise<number[]> {
  const server = new FakeServer();
  const base = server.factory;
  server.factory = (url, handlers) => ({ ...base(url, handlers), framesPerReadTurn });
  const sizes: number[] = [];
  const relay = track(
    new Relay({
      url: 'ws://test',
      credentials: creds,
      connect: server.factory,
      onEnvelopes: async (envs) => {
        sizes.push(envs.length);
        return envs.map(() => 'ack' as const);
      },
      backoff: { baseMs: 1, maxMs: 5 },
      random: () => 0.5,
    }),
  );
  relay.start();
  await until(() => server.connections.length === 1 && server.last.sent.length === 1, 'auth');
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  await deliver(server);
  await until(() => sizes.reduce((a, b) => a + b, 0) === ackedIds(server.last.sent).length && sizes.length > 0, 'acks');
  relay.close();
  return sizes;
}

test('a transport that reads frames turn by turn: a batch takes what the next read brought, not one read', async () => {
  // One envelope now, 49 more in the next turn of the event loop (as ws reads a second chunk).
  const deliver = async (server: FakeServer) => {
    server.push({ type: 'message', envelope: envelope('1') });
    await new Promise((r) => setImmediate(r));
    for (let i = 2; i <= 50; i++) server.push({ type: 'message', envelope: envelope(String(i)) });
    await until(() => ackedIds(server.last.sent).length === 50, 'all acked');
  };
  assert.deepEqual(await batchesOf(true, deliver), [50], 'one batch, one commit');
  // Without the flag (a transport that hands frames over as they come) the first one goes alone.
  assert.equal((await batchesOf(false, deliver))[0], 1);
});

test('a receive batch stays under MAX_RECEIVE_BATCH_CHARS of ciphertext, however large the messages', async () => {
  const big = 'A'.repeat(80_000);
  const sizes = await batchesOf(true, async (server) => {
    for (let i = 1; i <= 40; i++) server.push({ type: 'message', envelope: { ...envelope(String(i)), body: big } });
    await until(() => ackedIds(server.last.sent).length === 40, 'all acked');
  });
  assert.equal(sizes.reduce((a, b) => a + b, 0), 40);
  const perBatch = Math.ceil(MAX_RECEIVE_BATCH_CHARS / big.length);
  assert.ok(sizes.every((n) => n <= perBatch), `batches ${sizes.join(',')} of at most ${perBatch}`);
  assert.ok(sizes.length >= Math.ceil(40 / perBatch));
});

test('batched: the acks of one receive batch leave in one frame; sent-batch settles each send it names', async () => {
  const server = new FakeServer();
  const relay = makeRelay(server);
  const rejected: string[] = [];
  relay.on('rejectedFrame', (r) => rejected.push(r));
  relay.start();
  await until(() => server.last?.sent.length === 1, 'auth');
  assert.equal((server.last.sent[0] as { batched?: boolean }).batched, true);
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  const sends = ['a', 'b', 'c'].map((id) => relay.send({ type: 'send', id, to: { username: 'alice', deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } }));
  await until(() => server.last.sent.length === 4, 'three sends');
  // One frame answers a and c (with an id nobody sent among them), a later one b.
  server.push({ type: 'sent-batch', sent: [{ id: 'a', serverId: '10', timestamp: 1 }, { id: 'nobody', serverId: '11', timestamp: 1 }, { id: 'c', serverId: '12', timestamp: 2 }] });
  assert.deepEqual(await sends[0], { serverId: '10', timestamp: 1 });
  assert.deepEqual(await sends[2], { serverId: '12', timestamp: 2 });
  assert.equal(relay.pendingSends, 1);
  assert.deepEqual(rejected, ['sent for an unknown id']);
  server.push({ type: 'sent-batch', sent: [{ id: 'b', serverId: '13', timestamp: 3 }] });
  assert.equal((await sends[1]!).serverId, '13');
  // Invalid batches are dropped whole: empty, too long, an entry with an unknown field.
  const before = rejected.length;
  const entry = (i: number) => ({ id: `x${i}`, serverId: String(i), timestamp: 1 });
  server.push({ type: 'sent-batch', sent: [] });
  server.push({ type: 'sent-batch', sent: Array.from({ length: MAX_SENT_BATCH + 1 }, (_, i) => entry(i)) });
  server.push({ type: 'sent-batch', sent: [{ ...entry(1), extra: 1 }] });
  server.push({ type: 'sent-batch', sent: [entry(1)], id: 'x' });
  assert.equal(rejected.length - before, 4);
  // 30 envelopes that arrive together are stored in one batch and acknowledged in one frame.
  const start = server.last.sent.length;
  for (let i = 1; i <= 30; i++) server.push({ type: 'message', envelope: envelope(String(i)) });
  await until(() => ackedIds(server.last.sent).length === 30, 'acks');
  assert.deepEqual(server.last.sent.slice(start), [{ type: 'ack', ids: Array.from({ length: 30 }, (_, i) => String(i + 1)) }]);
  relay.close();
});

test('an older server that refuses the batched auth: the relay reconnects without it and keeps to single acks', async () => {
  const server = new FakeServer();
  const relay = makeRelay(server);
  relay.start();
  await until(() => server.last?.sent.length === 1, 'auth');
  assert.equal((server.last.sent[0] as { batched?: boolean }).batched, true);
  // What a server before batched frames does with an auth frame it does not know.
  server.push({ type: 'error', code: 'INVALID_REQUEST', message: '$.batched: unknown property' });
  server.drop(ERRORS.INVALID_REQUEST.close, 'INVALID_REQUEST');
  await until(() => server.connections.length === 2 && server.last.sent.length === 1, 'auth again');
  assert.deepEqual(server.last.sent[0], { type: 'auth', ...creds });
  server.push({ type: 'ready', username: 'bob', deviceId: 1 });
  const s = relay.send({ type: 'send', id: 'a', to: { username: 'alice', deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
  await until(() => server.last.sent.length === 2, 'send');
  server.push({ type: 'sent', id: 'a', serverId: '5', timestamp: 1 });
  assert.equal((await s).serverId, '5');
  for (let i = 1; i <= 3; i++) server.push({ type: 'message', envelope: envelope(String(i)) });
  await until(() => ackedIds(server.last.sent).length === 3, 'acks');
  assert.deepEqual(server.last.sent.slice(2), [1, 2, 3].map((i) => ({ type: 'ack', id: String(i) })));
  // Still single after a later reconnect.
  server.drop();
  await until(() => server.connections.length === 3 && server.last.sent.length === 1, 'third auth');
  assert.deepEqual(server.last.sent[0], { type: 'auth', ...creds });
  relay.close();
});
