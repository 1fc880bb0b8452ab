/**
 * Multi-recipient sends (`send-multi`) through a real server, real sockets and a real store. Each
 * store's test file runs `fanoutSuite` with its store factory (fanout.test.ts: SQLite;
 * postgres.test.ts: PostgreSQL + Redis).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ErrorFrame, MessageFrame, SentMultiFrame, ServerFrame } from '@tacit/api';
import { buildSendMulti, type FrameSocket, Relay, type SocketFactory, sendMulti } from '@tacit/client';
import { wsSocketFactory } from '@tacit/client/node';
import type { Limits, Store } from '../src/index.js';
import { type Account, addDevice, auth, b64, Client, type Harness, register, sendMessage, start } from './helpers.js';

interface Device {
  username: string;
  deviceId: number;
  secret: string;
  registrationId: number;
}

const first = (a: Account): Device => ({ username: a.username, deviceId: 1, secret: a.secret, registrationId: a.device.keys.registrationId });
const named = (...ds: Device[]) => ds.map((d) => ({ deviceId: d.deviceId, registrationId: d.registrationId }));
const body = (text: string) => b64(new TextEncoder().encode(text));
const text = (f: MessageFrame) => Buffer.from(f.envelope.body, 'base64').toString();
let ids = 0;

/** Sends a frame (its id filled in) and returns its answer. */
async function multi(c: Client, frame: Record<string, unknown>): Promise<SentMultiFrame | ErrorFrame> {
  const id = `f${++ids}`;
  c.send({ type: 'send-multi', id, ...frame });
  return c.next<SentMultiFrame | ErrorFrame>((f) => (f.type === 'sent-multi' || f.type === 'error') && f.id === id);
}

const isMessage = (f: ServerFrame): f is MessageFrame => f.type === 'message';

export function fanoutSuite(name: string, makeStore: () => Promise<Store>): void {
  const run = (title: string, fn: (h: Harness, connect: (d: Device) => Promise<Client>) => Promise<void>, limits: Partial<Limits> = {}) =>
    test(`${name}: send-multi: ${title}`, async () => {
      const h = await start({ store: await makeStore(), limits });
      const open: Client[] = [];
      try {
        await fn(h, async (d) => {
          const c = await Client.connect(h.wsUrl, d);
          open.push(c);
          return c;
        });
      } finally {
        for (const c of open) c.close();
        await h.close();
      }
    });

  run('one group message reaches every device, live and queued, as a sender-key envelope', async (h, connect) => {
    const alice = await register(h);
    const bob = await register(h);
    const carol = await register(h);
    const bob2 = await addDevice(h, bob);
    const ca = await connect(first(alice));
    const cb = await connect(first(bob));
    const cc = await connect(first(carol));
    const answer = await multi(ca, {
      recipients: [
        { username: bob.username, devices: named(first(bob), bob2) },
        { username: carol.username, devices: named(first(carol)) },
      ],
      message: { type: 'sender-key', body: body('to the group') },
    });
    assert.equal(answer.type, 'sent-multi', JSON.stringify(answer));
    assert.equal((answer as SentMultiFrame).stored, 3);
    assert.equal((answer as SentMultiFrame).mailboxFull, undefined);
    for (const c of [cb, cc]) {
      const m = await c.next(isMessage);
      assert.equal(m.type, 'message');
      const e = (m as MessageFrame).envelope;
      assert.deepEqual([e.type, e.source, text(m as MessageFrame), e.timestamp], ['sender-key', { username: alice.username, deviceId: 1 }, 'to the group', (answer as SentMultiFrame).timestamp]);
    }
    // bob's second device was offline: it finds the message queued.
    const cb2 = await connect(bob2);
    const queued = await cb2.next(isMessage);
    assert.equal(text(queued as MessageFrame), 'to the group');
    await cb2.next((f) => f.type === 'queue-empty');
    assert.equal(cb2.frames.filter(isMessage).length, 1);
  });

  run('a pairwise message per device, to another account and to your own other devices', async (h, connect) => {
    const alice = await register(h);
    const alice2 = await addDevice(h, alice);
    const alice3 = await addDevice(h, alice);
    const bob = await register(h);
    const bob2 = await addDevice(h, bob);
    const ca2 = await connect(alice2);
    const answer = await multi(ca2, {
      recipients: [
        { username: bob.username, devices: [...named(bob2), ...named(first(bob))].map((d) => ({ ...d, message: { type: d.deviceId === 1 ? 'prekey' : 'whisper', body: body(`for bob ${d.deviceId}`) } })) },
        { username: alice.username, devices: named(first(alice), alice3).map((d) => ({ ...d, message: { type: 'whisper', body: body(`sync ${d.deviceId}`) } })) },
      ],
    });
    assert.equal(answer.type, 'sent-multi', JSON.stringify(answer));
    assert.equal((answer as SentMultiFrame).stored, 4);
    for (const [d, want, type] of [
      [first(bob), 'for bob 1', 'prekey'],
      [bob2, 'for bob 2', 'whisper'],
      [first(alice), 'sync 1', 'whisper'],
      [alice3, `sync ${alice3.deviceId}`, 'whisper'],
    ] as const) {
      const c = await connect(d);
      const m = (await c.next(isMessage)) as MessageFrame;
      assert.deepEqual([text(m), m.envelope.type, m.envelope.source], [want, type, { username: alice.username, deviceId: alice2.deviceId }]);
      await c.next((f) => f.type === 'queue-empty');
      assert.equal(c.frames.filter(isMessage).length, 1);
    }
    await ca2.next((f) => f.type === 'queue-empty');
    assert.equal(ca2.frames.filter(isMessage).length, 0, 'the sending device gets no copy');
  });

  run('device-list repair: missing and extra devices, then stale ones, are answered per account; nothing is stored until it is right', async (h, connect) => {
    const alice = await register(h);
    const bob = await register(h);
    const bob2 = await addDevice(h, bob);
    const carol = await register(h);
    const ca = await connect(first(alice));
    const shared = { type: 'sender-key', body: body('hello group') };
    // bob's second device is missing; carol's device 5 does not exist.
    const mismatch = await multi(ca, {
      recipients: [
        { username: bob.username, devices: named(first(bob)) },
        { username: carol.username, devices: [...named(first(carol)), { deviceId: 5, registrationId: 9 }] },
      ],
      message: shared,
    });
    assert.equal(mismatch.type, 'error');
    assert.deepEqual(mismatch, {
      type: 'error',
      code: 'MISMATCHED_DEVICES',
      message: (mismatch as ErrorFrame).message,
      id: mismatch.id,
      accounts: [
        { username: bob.username, missing: [bob2.deviceId], extra: [], stale: [] },
        { username: carol.username, missing: [], extra: [5], stale: [] },
      ],
    });
    // bob's second device re-registers (removed, linked again under the same id): its old
    // registration id is stale, and stale devices are answered before missing ones.
    const del = await h.server.app.inject({ method: 'DELETE', url: `/v1/devices/${bob2.deviceId}`, headers: auth(bob) });
    assert.equal(del.statusCode, 204);
    const bob2b = await addDevice(h, bob);
    assert.equal(bob2b.deviceId, bob2.deviceId);
    const bob3 = await addDevice(h, bob);
    const stale = await multi(ca, { recipients: [{ username: bob.username, devices: named(first(bob), bob2) }, { username: carol.username, devices: named(first(carol)) }], message: shared });
    assert.equal(stale.type, 'error');
    assert.equal((stale as ErrorFrame).code, 'STALE_DEVICE');
    assert.deepEqual((stale as ErrorFrame).accounts, [{ username: bob.username, missing: [], extra: [], stale: [bob2.deviceId] }]);
    // Unknown accounts come before everything.
    const unknown = await multi(ca, { recipients: [{ username: 'nobody_here', devices: [{ deviceId: 1, registrationId: 1 }] }, { username: bob.username, devices: named(first(bob)) }], message: shared });
    assert.deepEqual([(unknown as ErrorFrame).code, (unknown as ErrorFrame).accounts], ['NOT_FOUND', [{ username: 'nobody_here', missing: [], extra: [1], stale: [] }]]);
    // Nothing of the refused sends was stored: a single message sent now is the first bob sees.
    assert.equal((await sendMessage(ca, { username: bob.username, deviceId: 1 }, 'marker')).type, 'sent');
    const cb = await connect(first(bob));
    assert.equal(text((await cb.next(isMessage)) as MessageFrame), 'marker');
    // The repaired send goes through, to every current device.
    const ok = await multi(ca, { recipients: [{ username: bob.username, devices: named(first(bob), bob2b, bob3) }, { username: carol.username, devices: named(first(carol)) }], message: shared });
    assert.equal(ok.type, 'sent-multi', JSON.stringify(ok));
    assert.equal((ok as SentMultiFrame).stored, 4);
    assert.equal(text((await cb.next(isMessage)) as MessageFrame), 'hello group');
    await cb.next((f) => f.type === 'queue-empty');
    assert.equal(cb.frames.filter(isMessage).length, 2);
  });

  run('your own sending device named in your own account is extra', async (h, connect) => {
    const alice = await register(h);
    const alice2 = await addDevice(h, alice);
    const ca = await connect(first(alice));
    const r = await multi(ca, { recipients: [{ username: alice.username, devices: named(first(alice), alice2) }], message: { type: 'sender-key', body: body('x') } });
    assert.deepEqual((r as ErrorFrame).accounts, [{ username: alice.username, missing: [], extra: [1], stale: [] }]);
  });

  run('group messages and single sends keep their order per device', async (h, connect) => {
    const alice = await register(h);
    const bob = await register(h);
    const ca = await connect(first(alice));
    const to = { username: bob.username, deviceId: 1 };
    const sequence: string[] = [];
    for (let i = 0; i < 6; i++) {
      if (i % 2 === 0) {
        ca.send({ type: 'send', id: `s${i}`, to, message: { type: 'whisper', body: body(`m${i}`) } });
      } else {
        ca.send({ type: 'send-multi', id: `s${i}`, recipients: [{ username: bob.username, devices: named(first(bob)) }], message: { type: 'sender-key', body: body(`m${i}`) } });
      }
      sequence.push(`m${i}`);
    }
    for (let i = 0; i < 6; i++) await ca.next((f) => (f.type === 'sent' || f.type === 'sent-multi') && f.id === `s${i}`);
    const cb = await connect(first(bob));
    await cb.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cb.frames.filter(isMessage).map((m) => text(m)), sequence);
    const envelopeIds = cb.frames.filter(isMessage).map((m) => Number(m.envelope.id));
    assert.deepEqual(envelopeIds, [...envelopeIds].sort((x, y) => x - y));
  });

  run('limits answer the frame and keep the socket: devices, body size, total bytes, rate', async (h, connect) => {
    const alice = await register(h);
    const bob = await register(h);
    const bob2 = await addDevice(h, bob);
    const bob3 = await addDevice(h, bob);
    const carol = await register(h);
    const ca = await connect(first(alice));
    const four = [{ username: bob.username, devices: named(first(bob), bob2, bob3) }, { username: carol.username, devices: named(first(carol)) }];
    const tooMany = await multi(ca, { recipients: four, message: { type: 'sender-key', body: body('x') } });
    assert.equal((tooMany as ErrorFrame).code, 'TOO_MANY_RECIPIENTS');
    const big = await multi(ca, { recipients: [{ username: carol.username, devices: named(first(carol)) }], message: { type: 'sender-key', body: b64(new Uint8Array(2049)) } });
    assert.equal((big as ErrorFrame).code, 'MESSAGE_TOO_LARGE');
    const bigOwn = await multi(ca, { recipients: [{ username: carol.username, devices: named(first(carol)).map((d) => ({ ...d, message: { type: 'whisper', body: b64(new Uint8Array(2049)) } })) }] });
    assert.equal((bigOwn as ErrorFrame).code, 'MESSAGE_TOO_LARGE');
    // 3 devices × 1,500 bytes > 4,000 bytes in all.
    const total = await multi(ca, { recipients: [four[0]!], message: { type: 'sender-key', body: b64(new Uint8Array(1500)) } });
    assert.equal((total as ErrorFrame).code, 'MESSAGE_TOO_LARGE');
    // The send bucket holds 5: a 3-device fan-out takes 3, so the next one is refused whole.
    assert.equal((await multi(ca, { recipients: [four[0]!], message: { type: 'sender-key', body: body('1') } })).type, 'sent-multi');
    assert.equal(((await multi(ca, { recipients: [four[0]!], message: { type: 'sender-key', body: body('2') } })) as ErrorFrame).code, 'RATE_LIMITED');
    assert.equal(ca.isClosed, false);
    const cb = await connect(first(bob));
    await cb.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cb.frames.filter(isMessage).map((m) => text(m)), ['1']);
  }, { maxFanoutDevices: 3, maxMessageBytes: 2048, maxFanoutBytes: 4000, sendBurst: 5, sendRatePerSecond: 0.001 });

  run('a full mailbox skips that device only and says so', async (h, connect) => {
    const alice = await register(h);
    const bob = await register(h);
    const bob2 = await addDevice(h, bob);
    const ca = await connect(first(alice));
    for (let i = 0; i < 2; i++) assert.equal((await sendMessage(ca, { username: bob.username, deviceId: bob2.deviceId }, `fill ${i}`)).type, 'sent');
    const r = await multi(ca, { recipients: [{ username: bob.username, devices: named(first(bob), bob2) }], message: { type: 'sender-key', body: body('group') } });
    assert.deepEqual([r.type, (r as SentMultiFrame).stored, (r as SentMultiFrame).mailboxFull], ['sent-multi', 1, [{ username: bob.username, deviceId: bob2.deviceId }]]);
    const cb = await connect(first(bob));
    assert.equal(text((await cb.next(isMessage)) as MessageFrame), 'group');
  }, { maxQueuePerDevice: 2 });

  run('the SDK builds the frame, sends it, and reads both kinds of answer', async (h, connect) => {
    const alice = await register(h);
    const bob = await register(h);
    const bob2 = await addDevice(h, bob);
    const ca = await connect(first(alice));
    const socket: FrameSocket = {
      send: (t) => ca.ws.send(t),
      onText(listener) {
        const l = (data: Buffer) => listener(data.toString());
        ca.ws.on('message', l);
        return () => ca.ws.off('message', l);
      },
    };
    const shared = { type: 'sender-key' as const, body: new TextEncoder().encode('via the SDK') };
    const short = buildSendMulti('sdk-1', [{ username: bob.username, devices: named(first(bob)) }], shared);
    assert.deepEqual(await sendMulti(socket, short, 20_000), {
      ok: false,
      code: 'MISMATCHED_DEVICES',
      message: 'the device lists do not match the accounts',
      accounts: [{ username: bob.username, missing: [bob2.deviceId], extra: [], stale: [] }],
    });
    const full = buildSendMulti('sdk-2', [{ username: bob.username, devices: named(first(bob), bob2) }], shared);
    const ok = await sendMulti(socket, full, 20_000);
    assert.ok(ok.ok);
    assert.equal(ok.stored, 2);
    assert.deepEqual(ok.mailboxFull, []);
    const cb = await connect(bob2);
    assert.equal(text((await cb.next(isMessage)) as MessageFrame), 'via the SDK');
  });

  run('the compact recipient list (to): the same rules and answers as recipients', async (h, connect) => {
    const alice = await register(h);
    const bob = await register(h);
    const carol = await register(h);
    const bob2 = await addDevice(h, bob);
    const ca = await connect(first(alice));
    const entry = (...ds: Device[]) => [ds[0]!.username, ds.map((d) => d.deviceId), ds.map((d) => d.registrationId)];
    // A group message to every device.
    const group = await multi(ca, { to: [entry(first(bob), bob2), entry(first(carol))], message: { type: 'sender-key', body: body('compact group') } });
    assert.deepEqual([group.type, (group as SentMultiFrame).stored], ['sent-multi', 3]);
    // Per-device messages.
    const own = await multi(ca, { to: [[...entry(first(bob), bob2), [{ type: 'whisper', body: body('to bob.1') }, { type: 'prekey', body: body('to bob.2') }]]] });
    assert.deepEqual([own.type, (own as SentMultiFrame).stored], ['sent-multi', 2]);
    // Device-list answers: a device missing, a stale registration id, an unknown account.
    const missing = (await multi(ca, { to: [entry(first(bob))], message: { type: 'sender-key', body: body('x') } })) as ErrorFrame;
    assert.deepEqual([missing.code, missing.accounts], ['MISMATCHED_DEVICES', [{ username: bob.username, missing: [bob2.deviceId], extra: [], stale: [] }]]);
    const stale = (await multi(ca, { to: [[bob.username, [1, bob2.deviceId], [first(bob).registrationId, bob2.registrationId === 1 ? 2 : 1]]], message: { type: 'sender-key', body: body('x') } })) as ErrorFrame;
    assert.deepEqual([stale.code, stale.accounts], ['STALE_DEVICE', [{ username: bob.username, missing: [], extra: [], stale: [bob2.deviceId] }]]);
    const unknown = (await multi(ca, { to: [['nobody_here', [1], [1]]], message: { type: 'sender-key', body: body('x') } })) as ErrorFrame;
    assert.equal(unknown.code, 'NOT_FOUND');
    const cb = await connect(first(bob));
    await cb.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cb.frames.filter(isMessage).map((m) => [m.envelope.type, text(m)]), [['sender-key', 'compact group'], ['whisper', 'to bob.1']]);
    const cb2 = await connect(bob2);
    await cb2.next((f) => f.type === 'queue-empty');
    assert.deepEqual(cb2.frames.filter(isMessage).map((m) => [m.envelope.type, text(m)]), [['sender-key', 'compact group'], ['prekey', 'to bob.2']]);
  });

  run('compact frames over a limit are answered and keep the socket', async (h, connect) => {
    const alice = await register(h);
    const bob = await register(h);
    const bob2 = await addDevice(h, bob);
    const ca = await connect(first(alice));
    const regs = [first(bob).registrationId, bob2.registrationId];
    const tooMany = (await multi(ca, { to: [[bob.username, [1, bob2.deviceId], regs]], message: { type: 'sender-key', body: body('x') } })) as ErrorFrame;
    assert.equal(tooMany.code, 'TOO_MANY_RECIPIENTS');
    const bigOwn = (await multi(ca, { to: [[bob.username, [1], [regs[0]!], [{ type: 'whisper', body: b64(new Uint8Array(2049)) }]]] })) as ErrorFrame;
    assert.equal(bigOwn.code, 'MESSAGE_TOO_LARGE');
    assert.equal(ca.isClosed, false);
  }, { maxFanoutDevices: 1, maxMessageBytes: 2048 });

  run('a resent send-multi (its answer lost) is answered as stored and not stored again', async (h, connect) => {
    const alice = await register(h);
    const bob = await register(h);
    const bob2 = await addDevice(h, bob);
    const carol = await register(h);
    const ca = await connect(first(alice));
    const frame = { to: [[bob.username, [1, bob2.deviceId], [first(bob).registrationId, bob2.registrationId]], [carol.username, [1], [first(carol).registrationId]]], message: { type: 'sender-key', body: body('once') } };
    const a = (await multi(ca, frame)) as SentMultiFrame;
    assert.deepEqual([a.type, a.stored], ['sent-multi', 3]);
    // The same frame on a new connection (as the SDK resends what had no answer), under a new id.
    ca.close();
    const again = await connect(first(alice));
    const b = (await multi(again, frame)) as SentMultiFrame;
    assert.deepEqual([b.type, b.stored, b.timestamp], ['sent-multi', 3, a.timestamp]);
    // Per-device messages too, in the original spelling.
    const own = { recipients: [{ username: carol.username, devices: [{ ...named(first(carol))[0]!, message: { type: 'whisper', body: body('own once') } }] }] };
    const c = (await multi(again, own)) as SentMultiFrame;
    const d = (await multi(again, own)) as SentMultiFrame;
    assert.deepEqual([c.stored, d.stored, d.timestamp], [1, 1, c.timestamp]);
    // A new message to the same devices is stored.
    assert.equal(((await multi(again, { ...frame, message: { type: 'sender-key', body: body('twice') } })) as SentMultiFrame).stored, 3);
    for (const [d2, want] of [[first(bob), ['once', 'twice']], [bob2, ['once', 'twice']], [first(carol), ['once', 'own once', 'twice']]] as const) {
      const c2 = await connect(d2);
      await c2.next((f) => f.type === 'queue-empty');
      assert.deepEqual(c2.frames.filter(isMessage).map((m) => text(m)), want, `${d2.username}.${d2.deviceId}`);
    }
  });

  run('the SDK relay resends a send-multi whose answer was lost; the server recognises it, bob gets one copy', async (h, connect) => {
    const alice = await register(h);
    const bob = await register(h);
    const bob2 = await addDevice(h, bob);
    // Alice's transport loses the first sent-multi answer with its connection (as when the
    // connection dies just after the server's commit); the relay reconnects and resends.
    let lost = 0;
    const connections: number[] = [];
    const lossy: SocketFactory = (url, handlers) => {
      connections.push(1);
      let socket: ReturnType<SocketFactory> | undefined;
      let cut = false;
      socket = wsSocketFactory(url, {
        ...handlers,
        message(text) {
          if (cut) return;
          if (lost === 0 && text.startsWith('{"type":"sent-multi"')) {
            lost++;
            cut = true;
            socket?.close(4000, 'test: answer lost');
            handlers.close(1006, '');
            return;
          }
          handlers.message(text);
        },
        close(code, reason) {
          if (!cut) handlers.close(code, reason);
        },
      });
      return socket;
    };
    const relay = new Relay({
      url: h.wsUrl,
      credentials: { username: alice.username, deviceId: 1, secret: alice.secret },
      connect: lossy,
      onEnvelopes: async (envs) => envs.map(() => 'ack' as const),
      backoff: { baseMs: 10, maxMs: 50 },
    });
    try {
      relay.start();
      const frame = buildSendMulti('sdk-resend', [{ username: bob.username, devices: named(first(bob), bob2) }], { type: 'sender-key', body: new TextEncoder().encode('exactly once') });
      const answer = await relay.sendMulti(frame);
      assert.ok(answer.ok);
      assert.equal(answer.stored, 2);
      assert.equal(lost, 1, 'the first answer was lost');
      assert.ok(connections.length >= 2, 'the relay reconnected and sent the frame again');
    } finally {
      relay.close();
    }
    for (const d of [first(bob), bob2]) {
      const c = await connect(d);
      await c.next((f) => f.type === 'queue-empty');
      assert.deepEqual(c.frames.filter(isMessage).map((m) => text(m)), ['exactly once'], `${d.username}.${d.deviceId}`);
    }
  });

  run('malformed frames close the socket (INVALID_REQUEST)', async (h) => {
    const alice = await register(h);
    const bob = await register(h);
    const frames = [
      // Both a shared message and a device's own.
      { recipients: [{ username: bob.username, devices: [{ deviceId: 1, registrationId: 1, message: { type: 'whisper', body: body('x') } }] }], message: { type: 'sender-key', body: body('x') } },
      // Neither.
      { recipients: [{ username: bob.username, devices: [{ deviceId: 1, registrationId: 1 }] }] },
      // An account twice (case-folded), a device twice.
      { recipients: [{ username: bob.username, devices: named(first(bob)) }, { username: bob.username.toUpperCase(), devices: named(first(bob)) }], message: { type: 'sender-key', body: body('x') } },
      { recipients: [{ username: bob.username, devices: [...named(first(bob)), ...named(first(bob))] }], message: { type: 'sender-key', body: body('x') } },
      // No registration id, no devices, no recipients.
      { recipients: [{ username: bob.username, devices: [{ deviceId: 1 }] }], message: { type: 'sender-key', body: body('x') } },
      { recipients: [{ username: bob.username, devices: [] }], message: { type: 'sender-key', body: body('x') } },
      { recipients: [], message: { type: 'sender-key', body: body('x') } },
      // Compact: both spellings, fewer registration ids than devices, an entry as an object, a
      // device twice, an account twice.
      { to: [[bob.username, [1], [1]]], recipients: [{ username: bob.username, devices: [{ deviceId: 1, registrationId: 1 }] }], message: { type: 'sender-key', body: body('x') } },
      { to: [[bob.username, [1, 2], [1]]], message: { type: 'sender-key', body: body('x') } },
      { to: [{ username: bob.username, devices: [1] }], message: { type: 'sender-key', body: body('x') } },
      { to: [[bob.username, [1, 1], [1, 1]]], message: { type: 'sender-key', body: body('x') } },
      { to: [[bob.username, [1], [1]], [bob.username.toUpperCase(), [2], [1]]], message: { type: 'sender-key', body: body('x') } },
      { to: [[bob.username, [1], [1], [{ type: 'whisper', body: body('x') }]]], message: { type: 'sender-key', body: body('x') } },
    ];
    for (const f of frames) {
      const c = await Client.connect(h.wsUrl, first(alice));
      c.send({ type: 'send-multi', id: 'bad', ...f });
      const closed = await c.closed;
      assert.deepEqual([closed.code, closed.reason], [4400, 'INVALID_REQUEST'], JSON.stringify(f));
    }
  });
}
