// Ephemeral sends (`ephemeral: true` on send and send-multi; relay/ephemeral.ts): pushed to live
// connections only, never stored, never queued, never redelivered; answered as such; validated;
// rate limited per connection (EPHEMERAL_SENDS_PER_SECOND, EPHEMERAL_BURST) without closing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EPHEMERAL_BURST, type ErrorFrame, type MessageFrame, type SentFrame, type SentMultiFrame } from '@tacit/api';
import { SqliteStore } from '../src/index.js';
import { Client, register, withServer } from './helpers.js';

const body = Buffer.from('typing').toString('base64');

test('to a live device: pushed with ephemeral: true and an id that is no stored message; nothing stored', async () => {
  const store = new SqliteStore({ path: ':memory:' });
  await withServer(
    async (h) => {
      const a = await register(h);
      const b = await register(h);
      const ca = await Client.connect(h.wsUrl, a);
      const cb = await Client.connect(h.wsUrl, b);
      await cb.next((f) => f.type === 'queue-empty');
      ca.send({ type: 'send', id: 't1', to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body }, ephemeral: true });
      const sent = await ca.next<SentFrame>((f) => f.type === 'sent');
      assert.equal(sent.ephemeral, true);
      // The answer does not say the device was connected (compare the offline test below).
      assert.deepEqual(Object.keys(sent).sort(), ['ephemeral', 'id', 'serverId', 'timestamp', 'type']);
      const m = await cb.next<MessageFrame>((f) => f.type === 'message');
      assert.equal(m.envelope.ephemeral, true);
      assert.match(m.envelope.id, /^e/);
      assert.deepEqual(m.envelope.source, { username: a.username, deviceId: 1 });
      assert.equal(m.envelope.body, body);
      cb.send({ type: 'ack', id: m.envelope.id }); // harmless
      assert.equal(await store.countQueued(), 0);
      // The same through send-multi.
      ca.send({ type: 'send-multi', id: 't2', recipients: [{ username: b.username, devices: [{ deviceId: 1, registrationId: 1 }] }], message: { type: 'whisper', body }, ephemeral: true });
      const multi = await ca.next<SentMultiFrame>((f) => f.type === 'sent-multi');
      assert.deepEqual([multi.ephemeral, multi.stored], [true, 0]);
      assert.deepEqual(Object.keys(multi).sort(), ['ephemeral', 'id', 'stored', 'timestamp', 'type']);
      await cb.next<MessageFrame>((f) => f.type === 'message');
      assert.equal(await store.countQueued(), 0);
      // A reconnect brings nothing back.
      cb.close();
      await cb.closed;
      const cb2 = await Client.connect(h.wsUrl, b);
      await cb2.next((f) => f.type === 'queue-empty');
      assert.equal(cb2.frames.filter((f) => f.type === 'message').length, 0);
      ca.close();
      cb2.close();
    },
    { store },
  );
});

test('to an offline device: dropped, answered exactly as to a live one (no presence leak), not stored, not delivered when it connects', async () => {
  const store = new SqliteStore({ path: ':memory:' });
  await withServer(
    async (h) => {
      const a = await register(h);
      const b = await register(h);
      const ca = await Client.connect(h.wsUrl, a);
      ca.send({ type: 'send', id: 't1', to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body }, ephemeral: true });
      const sent = await ca.next<SentFrame>((f) => f.type === 'sent');
      // The same keys as the live device's answer above: whether bob is online is not told.
      assert.deepEqual(Object.keys(sent).sort(), ['ephemeral', 'id', 'serverId', 'timestamp', 'type']);
      assert.equal(sent.ephemeral, true);
      ca.send({ type: 'send-multi', id: 't2', recipients: [{ username: b.username, devices: [{ deviceId: 1, registrationId: 1 }] }], message: { type: 'whisper', body }, ephemeral: true });
      const multi = await ca.next<SentMultiFrame>((f) => f.type === 'sent-multi');
      assert.deepEqual(Object.keys(multi).sort(), ['ephemeral', 'id', 'stored', 'timestamp', 'type']);
      assert.equal(await store.countQueued(), 0);
      const cb = await Client.connect(h.wsUrl, b);
      await cb.next((f) => f.type === 'queue-empty');
      assert.equal(cb.frames.filter((f) => f.type === 'message').length, 0);
      ca.close();
      cb.close();
    },
    { store },
  );
});

test('rate limited per connection without closing it; a bad flag closes like any invalid frame', () =>
  withServer(async (h) => {
    const a = await register(h);
    const b = await register(h);
    const ca = await Client.connect(h.wsUrl, a);
    const n = EPHEMERAL_BURST + 10;
    for (let i = 0; i < n; i++) ca.send({ type: 'send', id: `r${i}`, to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body }, ephemeral: true });
    const answers = [];
    for (let i = 0; i < n; i++) answers.push(await ca.next((f) => (f.type === 'sent' || f.type === 'error') && 'id' in f && f.id === `r${i}`));
    const limited = answers.filter((f) => f.type === 'error') as ErrorFrame[];
    assert.ok(limited.length >= 1, 'some were refused');
    assert.ok(limited.every((f) => f.code === 'RATE_LIMITED'));
    assert.ok(answers.filter((f) => f.type === 'sent').length >= EPHEMERAL_BURST - 1);
    ca.send({ type: 'ping', id: 'still-open' });
    await ca.next((f) => f.type === 'pong');
    ca.send({ type: 'send', id: 'bad', to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body }, ephemeral: 'yes' });
    const closed = await ca.closed;
    assert.equal(closed.reason, 'INVALID_REQUEST');
  }));
