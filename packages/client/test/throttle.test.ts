// Issue 13.2, the client's part: a sender whose messages keep failing to decrypt (a forged flood)
// is throttled, so a genuine contact's messages queued behind the flood still arrive at once and
// in order; the flood is worked through in the background, and a genuine message from the
// throttled sender still arrives after it, in order. Work is counted (decryption attempts made for
// the flooding sender when the genuine messages were shown), never timed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { toBase64 } from '@tacit/api';
import { nodeBackend } from '@tacit/protocol/node';
import { FAILURES_BEFORE_THROTTLE, MAX_PARKED, MemoryRecordStore, TacitClient } from '../src/index.ts';
import { MemoryServer } from './support/memory-server.ts';

const backend = nodeBackend();

async function until(cond: () => boolean | Promise<boolean>, what: string, rounds = 6_000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** A forged SignalMessage from `from` (version byte, then bytes that fail the protocol's checks). */
function forge(server: MemoryServer, from: string) {
  return { id: server.newId(), type: 'whisper' as const, body: toBase64(Uint8Array.of(0x44, ...randomBytes(120))), source: { username: from, deviceId: 1 }, timestamp: Date.now() };
}

async function clients(server: MemoryServer, names: string[]): Promise<TacitClient[]> {
  const opts = () => ({ store: new MemoryRecordStore(), backend, connect: server.factory, fetch: server.fetch });
  return Promise.all(names.map((username) => TacitClient.register(opts(), { server: 'http://tacit.test', username })));
}

test('a flood of forged messages does not hold up a genuine contact: throttled after a few failures, the rest tried in the background, order kept', async () => {
  const server = new MemoryServer();
  const [alice, bob, mallory] = await clients(server, ['alice', 'bob', 'mallory']);
  const FLOOD = 20;
  try {
    await Promise.all([bob!.connect(), mallory!.connect()]);
    // While alice is offline: the flood, then bob's messages behind it in her queue.
    for (let i = 0; i < FLOOD; i++) server.inject('alice.1', forge(server, 'mallory'));
    for (const t of ['b1', 'b2', 'b3']) await bob!.send('alice', t);

    let tried = 0;
    let throttledDrops = 0;
    alice!.on('undecryptable', (e) => {
      if (e.from !== 'mallory') return;
      if (e.reason === 'THROTTLED') throttledDrops++;
      else tried++;
    });
    const shown: { from: string; text: string; triedBefore: number }[] = [];
    alice!.watchForDisplay((list) => {
      for (const m of list) shown.push({ from: m.from, text: m.text, triedBefore: tried });
    });
    await alice!.connect();
    await until(() => shown.filter((m) => m.from === 'bob').length === 3, "bob's messages");
    const fromBob = shown.filter((m) => m.from === 'bob');
    assert.deepEqual(fromBob.map((m) => m.text), ['b1', 'b2', 'b3'], 'in order');
    // When bob's messages were shown, at most FAILURES_BEFORE_THROTTLE forged ones had been tried
    // (before the throttle, all FLOOD were tried first).
    assert.ok(fromBob.every((m) => m.triedBefore <= FAILURES_BEFORE_THROTTLE), `tried before bob's messages: ${fromBob.map((m) => m.triedBefore).join(',')}`);

    // mallory's genuine message waits behind her parked flood, which is worked through; it arrives after it.
    await mallory!.send('alice', 'genuine from mallory');
    await until(() => shown.some((m) => m.text === 'genuine from mallory'), "mallory's genuine message", 12_000);
    assert.equal(tried, FLOOD, 'every forged message was tried once and dropped');
    assert.equal(throttledDrops, 0);
    // The throttle is lifted by the success: her next message is not parked behind anything.
    await mallory!.send('alice', 'and another');
    await until(() => shown.some((m) => m.text === 'and another'), "mallory's next message");
    assert.deepEqual(shown.filter((m) => m.from === 'mallory').map((m) => m.text), ['genuine from mallory', 'and another']);
  } finally {
    await Promise.all([alice!.close(), bob!.close(), mallory!.close()]);
  }
});

test('parked envelopes are bounded: past MAX_PARKED the oldest are dropped and said (THROTTLED)', async () => {
  const server = new MemoryServer();
  const store = new MemoryRecordStore();
  const alice = await TacitClient.register({ store, backend, connect: server.factory, fetch: server.fetch }, { server: 'http://tacit.test', username: 'alice' });
  const extra = 7;
  const total = FAILURES_BEFORE_THROTTLE + MAX_PARKED + extra;
  try {
    let tried = 0;
    let throttledDrops = 0;
    alice.on('undecryptable', (e) => {
      if (e.reason === 'THROTTLED') throttledDrops++;
      else tried++;
    });
    await alice.connect();
    // In pieces within the relay's in-flight window (the memory server does not pace its pushes).
    for (let sent = 0; sent < total; ) {
      const n = Math.min(128, total - sent);
      for (let i = 0; i < n; i++) server.inject('alice.1', forge(server, 'mallory'));
      sent += n;
      await until(() => (server.mailboxes.get('alice.1') ?? []).length === 0, 'everything acknowledged');
    }
    // Every envelope is tried, parked or dropped; the parked ones never more than MAX_PARKED.
    const parked = (await store.list('pq/')).length;
    assert.ok(parked <= MAX_PARKED, `${parked} parked`);
    assert.equal(tried + throttledDrops + parked, total);
    assert.ok(throttledDrops <= extra);
  } finally {
    await alice.close();
  }
});
