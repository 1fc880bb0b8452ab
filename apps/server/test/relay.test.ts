import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import WebSocket from 'ws';
import { ERRORS, MAX_ACK_IDS, MAX_MESSAGE_BYTES, MESSAGE_TTL_MS, MIN_MESSAGE_TTL_MS, validateClientFrame, validateServerFrame, type Envelope, type ErrorFrame, type MessageFrame, type SentBatchFrame, type SentFrame } from '@tacit/api';
import { SqliteStore, type Store } from '../src/index.js';
import { addDevice, auth, b64, Client, register, sendMessage, start, type Harness } from './helpers.js';

async function withServer(fn: (h: Harness) => Promise<void>, opts: Parameters<typeof start>[0] = {}) {
  const h = await start(opts);
  const clients: Client[] = [];
  try {
    await fn(h);
  } finally {
    for (const c of clients) c.close();
    await h.close();
  }
}

const isMsg = (f: { type: string }) => f.type === 'message';
const bodyText = (e: Envelope) => Buffer.from(e.body, 'base64').toString();

async function ticket(h: Harness, a: Parameters<typeof auth>[0]): Promise<string> {
  const r = await h.server.app.inject({ method: 'POST', url: '/v1/ws-ticket', headers: auth(a) });
  return (r.json() as { ticket: string }).ticket;
}

test('auth by first frame, send, sent, push, ack; source set by the server', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    const ca = await Client.connect(h.wsUrl, a);
    const cb = await Client.connect(h.wsUrl, b);
    await cb.next((f) => f.type === 'queue-empty');
    const sent = (await sendMessage(ca, { username: b.username.toUpperCase(), deviceId: 1 }, 'hello')) as SentFrame;
    assert.equal(sent.type, 'sent');
    assert.match(sent.serverId, /^[0-9]+$/);
    assert.equal(typeof sent.timestamp, 'number');
    const m = await cb.next<MessageFrame>(isMsg);
    assert.equal(m.envelope.id, sent.serverId);
    assert.equal(m.envelope.timestamp, sent.timestamp);
    assert.equal(m.envelope.type, 'whisper');
    assert.deepEqual(m.envelope.source, { username: a.username, deviceId: 1 });
    assert.equal(bodyText(m.envelope), 'hello');
    cb.send({ type: 'ack', id: m.envelope.id });
    // After the ack, a new connection of b gets an empty queue.
    cb.close();
    await cb.closed;
    const cb2 = await Client.connect(h.wsUrl, b);
    await cb2.next((f) => f.type === 'queue-empty');
    assert.equal(cb2.frames.filter(isMsg).length, 0);
    // ping → pong with id, and without
    cb2.send({ type: 'ping', id: 'p1' });
    assert.deepEqual(await cb2.next((f) => f.type === 'pong'), { type: 'pong', id: 'p1' });
    cb2.send({ type: 'ping' });
    assert.deepEqual(await cb2.next((f) => f.type === 'pong'), { type: 'pong' });
    ca.close();
    cb2.close();
  }));

test('a resend of a stored message (its sent answer lost) is answered with the stored copy and stored once (issue 17)', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    const to = { username: b.username, deviceId: 1 };
    const ca = await Client.connect(h.wsUrl, a);
    const first = (await sendMessage(ca, to, 'hello', 'c1')) as SentFrame;
    assert.equal(first.type, 'sent');
    // The connection drops before the client saw the answer: it resends the same frame on the next one.
    ca.close();
    await ca.closed;
    const ca2 = await Client.connect(h.wsUrl, a);
    const again = (await sendMessage(ca2, to, 'hello', 'c1')) as SentFrame;
    assert.deepEqual(again, { type: 'sent', id: 'c1', serverId: first.serverId, timestamp: first.timestamp });
    // Recognised by content, whatever the correlation id; a different message with a reused id is a new message.
    const renamed = (await sendMessage(ca2, to, 'hello', 'c9')) as SentFrame;
    assert.equal(renamed.serverId, first.serverId);
    const other = (await sendMessage(ca2, to, 'other', 'c1')) as SentFrame;
    assert.equal(other.type, 'sent');
    assert.notEqual(other.serverId, first.serverId);
    // The recipient's queue holds each message once.
    const cb = await Client.connect(h.wsUrl, b);
    await cb.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cb.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope)), ['hello', 'other']);
    ca2.close();
    cb.close();
  }));

test('prekey type travels; a client cannot forge the source', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    const ca = await Client.connect(h.wsUrl, a);
    const cb = await Client.connect(h.wsUrl, b);
    // An extra `source` field is an invalid frame, not a spoof.
    ca.send({ type: 'send', id: 'x', to: { username: b.username, deviceId: 1 }, message: { type: 'prekey', body: b64(randomBytes(8)) }, source: { username: 'mallory', deviceId: 1 } });
    const closed = await ca.closed;
    assert.equal(closed.code, ERRORS.INVALID_REQUEST.close);
    const ca2 = await Client.connect(h.wsUrl, a);
    ca2.send({ type: 'send', id: 'y', to: { username: b.username, deviceId: 1 }, message: { type: 'prekey', body: b64(randomBytes(8)) } });
    const m = await cb.next<MessageFrame>(isMsg);
    assert.equal(m.envelope.type, 'prekey');
    assert.deepEqual(m.envelope.source, { username: a.username, deviceId: 1 });
    ca2.close();
    cb.close();
  }));

test('offline queue: delivered in order on connect, then queue-empty; unacked messages are redelivered', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    const ca = await Client.connect(h.wsUrl, a);
    const N = 40;
    for (let i = 0; i < N; i++) ca.send({ type: 'send', id: `s${i}`, to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body: b64(Buffer.from(`msg ${i}`)) } });
    for (let i = 0; i < N; i++) assert.equal((await ca.next((f) => f.type === 'sent' && f.id === `s${i}`)).type, 'sent');
    const cb = await Client.connect(h.wsUrl, b);
    await cb.next((f) => f.type === 'queue-empty');
    const got = cb.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope));
    assert.deepEqual(got, Array.from({ length: N }, (_, i) => `msg ${i}`));
    // queue-empty came after all of them
    assert.equal(cb.frames.findIndex((f) => f.type === 'queue-empty'), N + 1);
    // ack only the first half, reconnect: the rest comes again, in order
    for (const f of cb.frames.filter(isMsg).slice(0, N / 2)) cb.send({ type: 'ack', id: (f as MessageFrame).envelope.id });
    cb.send({ type: 'ping', id: 'barrier' });
    await cb.next((f) => f.type === 'pong');
    cb.close();
    await cb.closed;
    const cb2 = await Client.connect(h.wsUrl, b);
    await cb2.next((f) => f.type === 'queue-empty');
    assert.deepEqual(
      cb2.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope)),
      Array.from({ length: N / 2 }, (_, i) => `msg ${i + N / 2}`),
    );
    ca.close();
    cb2.close();
  }));

test('auth by ticket; a used, wrong or expired ticket is refused with UNAUTHORIZED', async () => {
  let now = Date.now();
  const h = await start({ now: () => now });
  try {
    const a = await register(h);
    const t = await ticket(h, a);
    const c = await Client.open(`${h.wsUrl}?ticket=${t}`);
    const ready = await c.next((f) => f.type === 'ready');
    assert.deepEqual(ready, { type: 'ready', username: a.username, deviceId: 1 });
    c.close();
    for (const bad of [t, 'A'.repeat(43), '', 'x'.repeat(500)]) {
      const r = await Client.open(`${h.wsUrl}?ticket=${bad}`);
      const e = await r.next<ErrorFrame>((f) => f.type === 'error');
      assert.equal(e.code, 'UNAUTHORIZED');
      assert.equal((await r.closed).code, ERRORS.UNAUTHORIZED.close);
      assert.equal(r.frames.some((f) => f.type === 'ready'), false);
    }
    const t2 = await ticket(h, a);
    now += h.server.limits.ticketTtlMs + 1;
    const late = await Client.open(`${h.wsUrl}?ticket=${t2}`);
    assert.equal((await late.closed).code, ERRORS.UNAUTHORIZED.close);
  } finally {
    await h.close();
  }
});

test('auth failures: wrong secret, other device, frames before auth, unknown path', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    for (const frame of [
      { type: 'auth', username: a.username, deviceId: 1, secret: b.secret },
      { type: 'auth', username: a.username, deviceId: 2, secret: a.secret },
      { type: 'auth', username: 'ghost', deviceId: 1, secret: a.secret },
    ]) {
      const c = await Client.open(h.wsUrl);
      c.send(frame);
      const e = await c.next<ErrorFrame>((f) => f.type === 'error');
      assert.equal(e.code, 'UNAUTHORIZED');
      assert.equal((await c.closed).code, 4401);
    }
    const early = await Client.open(h.wsUrl);
    early.send({ type: 'send', id: 'x', to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
    assert.equal((await early.closed).code, ERRORS.UNAUTHORIZED.close);
    // Nothing was queued for b by the unauthenticated frame.
    const cb = await Client.connect(h.wsUrl, b);
    await cb.next((f) => f.type === 'queue-empty');
    assert.equal(cb.frames.filter(isMsg).length, 0);
    cb.close();
    // Upgrade on another path is refused.
    const other = new WebSocket(`ws://127.0.0.1:${h.port}/v1/other`);
    const err = await new Promise<Error>((resolve) => other.on('error', resolve));
    assert.match(err.message, /404/);
  }));

test('auth timeout closes with AUTH_TIMEOUT', () =>
  withServer(
    async (h) => {
      const c = await Client.open(h.wsUrl);
      const closed = await c.closed;
      assert.equal(closed.code, ERRORS.AUTH_TIMEOUT.close);
      assert.equal(closed.reason, 'AUTH_TIMEOUT');
    },
    { limits: { authTimeoutMs: 200 } },
  ));

test('a second connection for a device replaces the first (REPLACED); messages go to the new one', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    const old = await Client.connect(h.wsUrl, b);
    const fresh = await Client.connect(h.wsUrl, b);
    const closed = await old.closed;
    assert.equal(closed.code, ERRORS.REPLACED.close);
    assert.equal(closed.reason, 'REPLACED');
    const ca = await Client.connect(h.wsUrl, a);
    await sendMessage(ca, { username: b.username, deviceId: 1 }, 'to the new one');
    const m = await fresh.next<MessageFrame>(isMsg);
    assert.equal(bodyText(m.envelope), 'to the new one');
    assert.equal(h.server.relay.stats.devices, 2);
    ca.close();
    fresh.close();
  }));

test('isolation: a device only receives its own queue; acks cannot delete another device\'s messages', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    const c = await register(h);
    const ca = await Client.connect(h.wsUrl, a);
    const sent = (await sendMessage(ca, { username: b.username, deviceId: 1 }, 'for b only')) as SentFrame;
    const cc = await Client.connect(h.wsUrl, c);
    await cc.next((f) => f.type === 'queue-empty');
    cc.send({ type: 'ack', id: sent.serverId });
    cc.send({ type: 'ping', id: 'barrier' });
    await cc.next((f) => f.type === 'pong');
    assert.equal(cc.frames.filter(isMsg).length, 0);
    const cb = await Client.connect(h.wsUrl, b);
    const m = await cb.next<MessageFrame>(isMsg);
    assert.equal(m.envelope.id, sent.serverId);
    ca.close();
    cb.close();
    cc.close();
  }));

test('send errors that keep the socket: unknown recipient, too large, rate limited, mailbox full', () =>
  withServer(
    async (h) => {
      const a = await register(h);
      const b = await register(h);
      const ca = await Client.connect(h.wsUrl, a);
      const unknown = (await sendMessage(ca, { username: 'nobody', deviceId: 1 }, 'x')) as ErrorFrame;
      assert.equal(unknown.code, 'NOT_FOUND');
      const noDevice = (await sendMessage(ca, { username: b.username, deviceId: 5 }, 'x')) as ErrorFrame;
      assert.equal(noDevice.code, 'NOT_FOUND');
      const big = (await sendMessage(ca, { username: b.username, deviceId: 1 }, randomBytes(MAX_MESSAGE_BYTES + 1))) as ErrorFrame;
      assert.equal(big.code, 'MESSAGE_TOO_LARGE');
      const max = await sendMessage(ca, { username: b.username, deviceId: 1 }, randomBytes(MAX_MESSAGE_BYTES));
      assert.equal(max.type, 'sent');
      const second = await sendMessage(ca, { username: b.username, deviceId: 1 }, 'two');
      assert.equal(second.type, 'sent');
      // maxQueuePerDevice = 2 → the third is refused
      const full = (await sendMessage(ca, { username: b.username, deviceId: 1 }, 'three')) as ErrorFrame;
      assert.equal(full.code, 'MAILBOX_FULL');
      // sendBurst = 8 (the 3 NOT_FOUND/MAILBOX_FULL sends above took tokens too; the oversized one did not)
      const results: string[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await sendMessage(ca, { username: 'nobody', deviceId: 1 }, 'x');
        results.push(r.type === 'error' ? (r as ErrorFrame).code : r.type);
      }
      assert.ok(results.includes('RATE_LIMITED'), results.join());
      assert.equal(ca.isClosed, false);
      ca.send({ type: 'ping', id: 'alive' });
      assert.equal((await ca.next((f) => f.type === 'pong')).type, 'pong');
      ca.close();
    },
    { limits: { maxQueuePerDevice: 2, sendBurst: 8, sendRatePerSecond: 0.001 } },
  ));

test('send with a registration id: matching is stored, stale is refused (STALE_DEVICE) and not queued, omitted is unchecked', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    const reg = b.device.keys.registrationId;
    const other = reg === 1 ? 2 : reg - 1;
    const ca = await Client.connect(h.wsUrl, a);
    const to = (registrationId?: number) => (registrationId === undefined ? { username: b.username, deviceId: 1 } : { username: b.username, deviceId: 1, registrationId });
    assert.equal((await sendMessage(ca, to(reg), 'matching')).type, 'sent');
    const stale = (await sendMessage(ca, to(other), 'stale')) as ErrorFrame;
    assert.equal(stale.type, 'error');
    assert.equal(stale.code, 'STALE_DEVICE');
    assert.equal(ca.isClosed, false);
    assert.equal((await sendMessage(ca, to(), 'omitted')).type, 'sent');
    // An unknown device stays NOT_FOUND, with or without a registration id.
    assert.equal(((await sendMessage(ca, { username: b.username, deviceId: 5, registrationId: reg } as { username: string; deviceId: number }, 'x')) as ErrorFrame).code, 'NOT_FOUND');
    const cb = await Client.connect(h.wsUrl, b);
    await cb.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cb.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope)), ['matching', 'omitted']);
    // A registration id out of range is a malformed frame.
    ca.send({ type: 'send', id: 'bad', to: { username: b.username, deviceId: 1, registrationId: 0 }, message: { type: 'whisper', body: b64(randomBytes(4)) } });
    assert.equal((await ca.closed).code, ERRORS.INVALID_REQUEST.close);
    cb.close();
  }));

test('unacknowledged deliveries are capped per connection; acks release more', () =>
  withServer(
    async (h) => {
      const a = await register(h);
      const b = await register(h);
      const cb = await Client.connect(h.wsUrl, b);
      await cb.next((f) => f.type === 'queue-empty');
      const ca = await Client.connect(h.wsUrl, a);
      for (let i = 0; i < 5; i++) await sendMessage(ca, { username: b.username, deviceId: 1 }, `m${i}`);
      cb.send({ type: 'ping', id: 'barrier' });
      await cb.next((f) => f.type === 'pong');
      const first = cb.frames.filter(isMsg) as MessageFrame[];
      assert.deepEqual(first.map((f) => bodyText(f.envelope)), ['m0', 'm1', 'm2']);
      cb.send({ type: 'ack', id: first[0]!.envelope.id });
      const next = await cb.next<MessageFrame>((f) => isMsg(f) && bodyText((f as MessageFrame).envelope) === 'm3');
      assert.ok(next);
      for (const f of [first[1]!, first[2]!, next]) cb.send({ type: 'ack', id: f.envelope.id });
      await cb.next<MessageFrame>((f) => isMsg(f) && bodyText((f as MessageFrame).envelope) === 'm4');
      ca.close();
      cb.close();
    },
    { limits: { maxUnackedPerConnection: 3 } },
  ));

/** A plain object forwarding every Store method to `inner`, for overriding one of them. */
function delegate(inner: Store): Store {
  const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(inner)).filter((k) => k !== 'constructor');
  const out: Record<string, unknown> = {};
  for (const k of methods) out[k] = ((inner as unknown as Record<string, (...x: unknown[]) => unknown>)[k]!).bind(inner);
  return out as unknown as Store;
}

/** A store whose batch writes wait until released: makes "sends in flight" deterministic. */
function gatedStore(inner: Store): { store: Store; release: () => void } {
  let open: () => void = () => undefined;
  let gate = new Promise<void>((r) => (open = r));
  const store = delegate(inner);
  store.writeBatch = async (m, a, q) => {
    await gate;
    return inner.writeBatch(m, a, q);
  };
  return {
    store,
    release: () => {
      open();
      gate = Promise.resolve();
    },
  };
}

test('sends awaiting "sent" are capped per connection (TOO_MANY_IN_FLIGHT)', async () => {
  const { store, release } = gatedStore(new SqliteStore({ path: ':memory:' }));
  const h = await start({ store, limits: { maxPendingSendsPerConnection: 3 } });
  try {
    const a = await register(h);
    const b = await register(h);
    const ca = await Client.connect(h.wsUrl, a);
    for (let i = 0; i < 5; i++) ca.send({ type: 'send', id: `s${i}`, to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
    const e1 = await ca.next<ErrorFrame>((f) => f.type === 'error' && f.id === 's3');
    const e2 = await ca.next<ErrorFrame>((f) => f.type === 'error' && f.id === 's4');
    assert.equal(e1.code, 'TOO_MANY_IN_FLIGHT');
    assert.equal(e2.code, 'TOO_MANY_IN_FLIGHT');
    release();
    for (const id of ['s0', 's1', 's2']) assert.equal((await ca.next((f) => f.type === 'sent' && f.id === id)).type, 'sent');
    ca.close();
  } finally {
    release();
    await h.close();
  }
});

test('connections per account are capped (TOO_MANY_CONNECTIONS)', () =>
  withServer(
    async (h) => {
      const a = await register(h, { name: 'multi' });
      const d2 = (await import('./helpers.js')).makeDevice({ identity: a.device.identity });
      const add = await h.server.app.inject({ method: 'POST', url: '/v1/devices', headers: auth(a), payload: { ...d2.keys, secret: d2.secret } });
      assert.equal(add.statusCode, 201);
      const c1 = await Client.connect(h.wsUrl, a);
      const c2 = await Client.open(h.wsUrl);
      c2.send({ type: 'auth', username: a.username, deviceId: 2, secret: d2.secret });
      const closed = await c2.closed;
      assert.equal(closed.code, ERRORS.TOO_MANY_CONNECTIONS.close);
      // Replacing the same device is not a new connection.
      const c1b = await Client.connect(h.wsUrl, a);
      assert.equal((await c1.closed).code, ERRORS.REPLACED.close);
      c1b.close();
    },
    { limits: { maxConnectionsPerAccount: 1 } },
  ));

test('expiry: undelivered messages past their lifetime are not delivered and are deleted', async () => {
  let now = 1_700_000_000_000;
  const h = await start({ now: () => now, limits: { messageTtlMs: 60_000 } });
  try {
    const a = await register(h);
    const b = await register(h);
    const ca = await Client.connect(h.wsUrl, a);
    await sendMessage(ca, { username: b.username, deviceId: 1 }, 'old');
    now += 60_001;
    await sendMessage(ca, { username: b.username, deviceId: 1 }, 'new');
    const cb = await Client.connect(h.wsUrl, b);
    await cb.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cb.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope)), ['new']);
    assert.equal(await h.server.store.expire(now), 1);
    ca.close();
    cb.close();
  } finally {
    await h.close();
  }
});

test('device removal closes its socket and drops its queue', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    // An account's last device is never removed (LAST_DEVICE): a second one removes the first.
    const a2 = await addDevice(h, a);
    const ca = await Client.connect(h.wsUrl, a);
    const cb = await Client.connect(h.wsUrl, b);
    await sendMessage(cb, { username: a.username, deviceId: 1 }, 'queued for device 1');
    const del = await h.server.app.inject({ method: 'DELETE', url: '/v1/devices/1', headers: auth(a2) });
    assert.equal(del.statusCode, 204);
    assert.equal((await ca.closed).code, ERRORS.UNAUTHORIZED.close);
    assert.deepEqual(await h.server.store.fetchQueue({ username: a.username, deviceId: 1 }, 0, 10, Date.now()), [], 'its queue is gone');
    cb.close();
  }));

test('heartbeat: a socket that stops answering pings is dropped; one that answers stays', () =>
  withServer(
    async (h) => {
      const a = await register(h);
      const b = await register(h);
      const alive = await Client.connect(h.wsUrl, a);
      const dead = new WebSocket(h.wsUrl, { autoPong: false });
      await once(dead, 'open');
      dead.send(JSON.stringify({ type: 'auth', username: b.username, deviceId: 1, secret: b.secret }));
      const [code] = (await once(dead, 'close')) as [number];
      assert.equal(code, 1006, 'terminated without a closing handshake');
      // The live client saw at least as many pings and is still open.
      let pings = 0;
      await new Promise<void>((resolve) => alive.ws.on('ping', () => ++pings >= 3 && resolve()));
      assert.equal(alive.isClosed, false);
      alive.close();
    },
    { limits: { heartbeatIntervalMs: 100 } },
  ));

test('the hand-written message frame equals JSON.stringify of the frame and validates', async () => {
  const { messageFrameText } = await import('../src/relay.js');
  const { validateServerFrame } = await import('@tacit/api');
  for (const kind of [2, 3] as const) {
    const m = { id: 12345, kind, from: { username: 'a_b-c9', deviceId: 127 }, timestamp: 1_700_000_000_123 };
    const body = b64(randomBytes(100));
    const text = messageFrameText(m, body);
    const expected = JSON.stringify({
      type: 'message',
      envelope: { id: '12345', type: kind === 3 ? 'prekey' : 'whisper', body, source: m.from, timestamp: m.timestamp },
    });
    assert.equal(text, expected);
    assert.ok(validateServerFrame(JSON.parse(text)).ok);
  }
});

test('a store that announces ids before its commit: the online recipient gets the message first, the sender its "sent" only after the commit; a failed commit tells the sender to retry', async () => {
  const inner = new SqliteStore({ path: ':memory:' });
  let commit: (ok: boolean) => void = () => undefined;
  const store = delegate(inner);
  // Announce what the inner store assigns, then hold the "commit" until the test lets it finish.
  store.writeBatch = async (m, a, q, onAssigned) => {
    const results = await inner.writeBatch(m, a, q);
    if (m.length === 0) return results;
    onAssigned?.(results);
    const ok = await new Promise<boolean>((r) => (commit = r));
    if (!ok) throw new Error('commit failed');
    return results;
  };
  const h = await start({ store });
  try {
    const a = await register(h);
    const b = await register(h);
    const cb = await Client.connect(h.wsUrl, b);
    await cb.next((f) => f.type === 'queue-empty');
    const ca = await Client.connect(h.wsUrl, a);
    ca.send({ type: 'send', id: 'early', to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
    const m = await cb.next<MessageFrame>((f) => f.type === 'message');
    assert.equal(ca.frames.filter((f) => f.type === 'sent').length, 0, 'no "sent" before the commit');
    commit(true);
    const sent = await ca.next((f) => f.type === 'sent' && f.id === 'early');
    assert.ok(sent.type === 'sent' && sent.serverId === m.envelope.id);
    // Delivered once: the commit does not deliver it again.
    cb.send({ type: 'ping', id: 'p' });
    await cb.next((f) => f.type === 'pong');
    assert.equal(cb.frames.filter((f) => f.type === 'message').length, 1);

    ca.send({ type: 'send', id: 'doomed', to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body: 'BBBB' } });
    await cb.next<MessageFrame>((f) => f.type === 'message' && f.envelope.body === 'BBBB');
    commit(false);
    const e = await ca.next<ErrorFrame>((f) => f.type === 'error' && f.id === 'doomed');
    assert.equal(e.code, 'INTERNAL');
    ca.close();
    cb.close();
  } finally {
    commit(true);
    await h.close();
  }
});

test('acks: the plain form and any other valid JSON spelling both delete; a 16-digit id is ignored, a malformed ack closes', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    const ca = await Client.connect(h.wsUrl, a);
    const cb = await Client.connect(h.wsUrl, b);
    await cb.next((f) => f.type === 'queue-empty');
    for (const t of ['one', 'two', 'three']) await sendMessage(ca, { username: b.username, deviceId: 1 }, t);
    const ms: MessageFrame[] = [];
    for (let i = 0; i < 3; i++) ms.push(await cb.next<MessageFrame>((f) => isMsg(f) && !ms.includes(f as MessageFrame)));
    cb.send(`{"type":"ack","id":"${ms[0]!.envelope.id}"}`);
    cb.send(`{ "id" : "${ms[1]!.envelope.id}", "type" : "ack" }`);
    cb.send(`{"type":"ack","id":"1234567890123456"}`);
    cb.send({ type: 'ping', id: 'barrier' });
    await cb.next((f) => f.type === 'pong');
    cb.close();
    await cb.closed;
    const cb2 = await Client.connect(h.wsUrl, b);
    await cb2.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cb2.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope)), ['three']);
    cb2.send(`{"type":"ack","id":5}`);
    const closed = await cb2.closed;
    assert.equal(closed.code, 4400);
    ca.close();
  }));

/** Opens and authenticates saying `batched`: this socket gets `sent-batch` instead of `sent`. */
async function connectBatched(url: string, a: { username: string; deviceId: number; secret: string }): Promise<Client> {
  const c = await Client.open(url);
  c.send({ type: 'auth', username: a.username, deviceId: a.deviceId, secret: a.secret, batched: true });
  await c.next((f) => f.type === 'ready');
  return c;
}

test('batched: the sends of one commit are answered by one sent-batch; acks by ids delete only what this socket was given', async () => {
  const inner = new SqliteStore({ path: ':memory:' });
  let hold = true;
  let release: (() => void) | undefined;
  const store = delegate(inner);
  // The first batch with sends waits until the test lets it go, so the next sends form one batch.
  store.writeBatch = async (m, a, q, onAssigned) => {
    if (hold && m.length > 0) await new Promise<void>((r) => (release = r));
    return inner.writeBatch(m, a, q, onAssigned);
  };
  const h = await start({ store });
  try {
    const a = await register(h);
    const b = await register(h);
    const c = await register(h);
    const cb = await connectBatched(h.wsUrl, b);
    await cb.next((f) => f.type === 'queue-empty');
    const ca = await connectBatched(h.wsUrl, a);
    const to = { username: b.username, deviceId: 1 };
    ca.send({ type: 'send', id: 'first', to, message: { type: 'whisper', body: b64(Buffer.from('m0')) } });
    for (let i = 0; i < 100 && release === undefined; i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(release, 'the first batch reached the store');
    const ids = Array.from({ length: 10 }, (_, i) => `s${i + 1}`);
    ids.forEach((id, i) => ca.send({ type: 'send', id, to, message: { type: 'whisper', body: b64(Buffer.from(`m${i + 1}`)) } }));
    ca.send({ type: 'ping', id: 'barrier' });
    await ca.next((f) => f.type === 'pong');
    hold = false;
    release!();
    const first = await ca.next<SentBatchFrame>((f) => f.type === 'sent-batch');
    assert.deepEqual(first.sent.map((s) => s.id), ['first']);
    const rest = await ca.next<SentBatchFrame>((f) => f.type === 'sent-batch');
    assert.deepEqual(rest.sent.map((s) => s.id), ids, 'one frame for the ten sends of the second commit, in order');
    assert.equal(ca.frames.filter((f) => f.type === 'sent').length, 0, 'no single "sent" on a batched socket');
    for (const f of [first, rest]) assert.ok(validateServerFrame(f).ok, 'the hand-written sent-batch validates');
    const ms: MessageFrame[] = [];
    for (let i = 0; i < 11; i++) ms.push(await cb.next<MessageFrame>((f) => isMsg(f) && !ms.includes(f as MessageFrame)));
    assert.deepEqual(ms.map((m) => m.envelope.id), [...first.sent, ...rest.sent].map((s) => s.serverId));

    // c's queue holds one message; b naming its id in a batch must not delete it.
    const cc = await Client.connect(h.wsUrl, c);
    await cc.next((f) => f.type === 'queue-empty');
    cc.close();
    await cc.closed;
    const forC = (await sendMessage(await Client.connect(h.wsUrl, a), { username: c.username, deviceId: 1 }, 'for c')) as SentFrame;
    // b acknowledges all but the last, with ids that are not its own or not ours mixed in.
    cb.send({ type: 'ack', ids: [...ms.slice(0, 10).map((m) => m.envelope.id), forC.serverId, '999999999', 'x-1'] });
    cb.send({ type: 'ping', id: 'b' });
    await cb.next((f) => f.type === 'pong');
    cb.close();
    await cb.closed;
    const cb2 = await Client.connect(h.wsUrl, b);
    await cb2.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cb2.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope)), ['m10']);
    const cc2 = await Client.connect(h.wsUrl, c);
    await cc2.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cc2.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope)), ['for c']);
    // The single form still works beside the batched one, on the same server.
    cb2.send({ type: 'ack', id: (cb2.frames.find(isMsg) as MessageFrame).envelope.id });
    cb2.send({ type: 'ping', id: 'c' });
    await cb2.next((f) => f.type === 'pong');
    cb2.close();
    await cb2.closed;
    const cb3 = await Client.connect(h.wsUrl, b);
    await cb3.next((f) => f.type === 'queue-empty');
    assert.equal(cb3.frames.filter(isMsg).length, 0);
    for (const x of [ca, cb3, cc2]) x.close();
  } finally {
    hold = false;
    release?.();
    await h.close();
  }
});

test('batched acks release the in-flight window at once', () =>
  withServer(
    async (h) => {
      const a = await register(h);
      const b = await register(h);
      const ca = await Client.connect(h.wsUrl, a);
      for (let i = 0; i < 7; i++) await sendMessage(ca, { username: b.username, deviceId: 1 }, `w${i}`);
      const cb = await connectBatched(h.wsUrl, b);
      const first: MessageFrame[] = [];
      for (let i = 0; i < 3; i++) first.push(await cb.next<MessageFrame>((f) => isMsg(f) && !first.includes(f as MessageFrame)));
      cb.send({ type: 'ping', id: 'p' });
      await cb.next((f) => f.type === 'pong');
      assert.equal(cb.frames.filter(isMsg).length, 3, 'the window (3) is full');
      cb.send({ type: 'ack', ids: first.map((m) => m.envelope.id) });
      const next: MessageFrame[] = [];
      for (let i = 0; i < 3; i++) next.push(await cb.next<MessageFrame>((f) => isMsg(f) && !next.includes(f as MessageFrame)));
      assert.deepEqual(next.map((m) => bodyText(m.envelope)), ['w3', 'w4', 'w5']);
      ca.close();
      cb.close();
    },
    { limits: { maxUnackedPerConnection: 3 } },
  ));

test('a batched ack frees only the ids it names exactly: aliases of in-flight ids ("0x…", "…e0") free no room and lose no later ack', () =>
  withServer(
    async (h) => {
      const a = await register(h);
      const b = await register(h);
      const ca = await Client.connect(h.wsUrl, a);
      for (let i = 0; i < 6; i++) await sendMessage(ca, { username: b.username, deviceId: 1 }, `w${i}`);
      const cb = await connectBatched(h.wsUrl, b);
      const got: MessageFrame[] = [];
      const take = async () => got.push(await cb.next<MessageFrame>((f) => isMsg(f) && !got.includes(f as MessageFrame)));
      for (let i = 0; i < 3; i++) await take();
      const [m0, m1, m2] = got.map((m) => m.envelope.id);
      // w0 acknowledged; w1 and w2 named by strings a careless Number() reads as their ids.
      cb.send({ type: 'ack', ids: [m0!, `0x${Number(m1).toString(16)}`, `${m2}e0`] });
      await take();
      cb.send({ type: 'ping', id: 'p1' });
      await cb.next((f) => f.type === 'pong');
      assert.deepEqual(cb.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope)), ['w0', 'w1', 'w2', 'w3'], 'only the acknowledged message made room');
      // The real acks of w1..w3 count, then w4 and w5 come and are acknowledged too.
      cb.send({ type: 'ack', ids: got.slice(1).map((m) => m.envelope.id) });
      await take();
      await take();
      cb.send({ type: 'ack', ids: got.slice(4).map((m) => m.envelope.id) });
      cb.send({ type: 'ping', id: 'p2' });
      await cb.next((f) => f.type === 'pong');
      cb.close();
      await cb.closed;
      // Everything was acknowledged: nothing comes again.
      const cb2 = await Client.connect(h.wsUrl, b);
      await cb2.next((f) => f.type === 'queue-empty');
      assert.deepEqual(cb2.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope)), []);
      ca.close();
      cb2.close();
    },
    { limits: { maxUnackedPerConnection: 3 } },
  ));

test('batched forms refused when malformed: the socket closes with INVALID_REQUEST', () =>
  withServer(async (h) => {
    const b = await register(h);
    const id = (n: number) => String(n + 1);
    const acks: [string, unknown][] = [
      ['empty ids', { type: 'ack', ids: [] }],
      ['over MAX_ACK_IDS', { type: 'ack', ids: Array.from({ length: MAX_ACK_IDS + 1 }, (_, i) => id(i)) }],
      ['an id twice', { type: 'ack', ids: ['1', '2', '1'] }],
      ['id and ids', { type: 'ack', id: '1', ids: ['2'] }],
      ['numbers', { type: 'ack', ids: [1, 2] }],
      ['not an array', { type: 'ack', ids: '1,2' }],
      ['an id with a bad character', { type: 'ack', ids: ['1', '2 3'] }],
      ['an over-long id', { type: 'ack', ids: ['9'.repeat(65)] }],
      ['a client sending a server frame', { type: 'sent-batch', sent: [{ id: 'a', serverId: '1', timestamp: 1 }] }],
    ];
    for (const [name, frame] of acks) {
      const c = await connectBatched(h.wsUrl, b);
      await c.next((f) => f.type === 'queue-empty');
      c.send(frame as never);
      assert.equal((await c.closed).code, ERRORS.INVALID_REQUEST.close, name);
    }
    for (const batched of [false, 1, 'true', null]) {
      const c = await Client.open(h.wsUrl);
      c.send({ type: 'auth', username: b.username, deviceId: 1, secret: b.secret, batched } as never);
      assert.equal((await c.closed).code, ERRORS.INVALID_REQUEST.close, `batched: ${JSON.stringify(batched)}`);
    }
    // MAX_ACK_IDS ids is fine (none of them in flight: all ignored).
    const c = await connectBatched(h.wsUrl, b);
    await c.next((f) => f.type === 'queue-empty');
    c.send({ type: 'ack', ids: Array.from({ length: MAX_ACK_IDS }, (_, i) => id(i)) });
    c.send({ type: 'ping', id: 'still' });
    await c.next((f) => f.type === 'pong');
    c.close();
  }));

test('expiry: a send may shorten its own stay (ttlMs, a disappearing message), never extend it', async () => {
  let now = 1_700_000_000_000;
  const h = await start({ now: () => now, limits: { messageTtlMs: 60_000 } });
  try {
    const a = await register(h);
    const b = await register(h);
    const ca = await Client.connect(h.wsUrl, a);
    const to = { username: b.username, deviceId: 1 };
    const body = (s: string) => Buffer.from(s).toString('base64');
    for (const [id, ttlMs] of [['short', 5_000], ['long', MESSAGE_TTL_MS]] as const) {
      ca.send({ type: 'send', id, to, message: { type: 'whisper', body: body(id) }, ttlMs });
      assert.equal((await ca.next((f) => (f.type === 'sent' || f.type === 'error') && 'id' in f && f.id === id)).type, 'sent');
    }
    await sendMessage(ca, to, 'plain');
    now += 5_001;
    const cb = await Client.connect(h.wsUrl, b);
    await cb.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cb.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope)), ['long', 'plain']);
    cb.close();
    // `long` asked for more than the server keeps: the server's own lifetime still applies.
    await sendMessage(ca, to, 'later');
    ca.send({ type: 'send', id: 'capped', to, message: { type: 'whisper', body: body('capped') }, ttlMs: MESSAGE_TTL_MS });
    await ca.next((f) => f.type === 'sent' && 'id' in f && f.id === 'capped');
    now += 60_001;
    const cb2 = await Client.connect(h.wsUrl, b);
    await cb2.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cb2.frames.filter(isMsg).map((f) => bodyText((f as MessageFrame).envelope)), []);
    cb2.close();
    ca.close();
    // Out of bounds is refused by the contract, for send and send-multi alike.
    const m = { type: 'whisper', body: body('x') };
    assert.equal(validateClientFrame({ type: 'send', id: 'x', to, message: m, ttlMs: MIN_MESSAGE_TTL_MS - 1 }).ok, false);
    assert.equal(validateClientFrame({ type: 'send', id: 'x', to, message: m, ttlMs: MESSAGE_TTL_MS + 1 }).ok, false);
    assert.equal(validateClientFrame({ type: 'send', id: 'x', to, message: m, ttlMs: 1.5 }).ok, false);
    assert.equal(validateClientFrame({ type: 'send-multi', id: 'x', to: [[b.username, [1], [1]]], message: m, ttlMs: 3_000 }).ok, true);
    assert.equal(validateClientFrame({ type: 'send-multi', id: 'x', to: [[b.username, [1], [1]]], message: m, ttlMs: 0 }).ok, false);
  } finally {
    await h.close();
  }
});
