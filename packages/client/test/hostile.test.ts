// Hostile input from the server side: a fake relay (a real `ws` server on loopback) pushes
// genuine, tampered, truncated, replayed, misattributed and malformed messages to a real client.
// Every bad one is acknowledged and dropped (with an event), nothing crashes, the session keeps
// working, and each genuine message is stored exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toBase64, fromBase64 } from '@tacit/api';
import {
  IdentityKeyPair,
  KyberPublicKey,
  ProtocolAddress,
  PublicKey,
  SessionManager,
  decodePreKeySignalMessage,
  generateRegistrationId,
  inMemoryStores,
} from '@tacit/protocol';
import { nodeBackend } from '@tacit/protocol/node';
import { MemoryRecordStore, TacitClient, encodeEnvelope } from '../src/index.ts';
import { wsSocketFactory } from '../src/node.ts';
import { fakeRelay } from './support/fake-relay.ts';

const backend = nodeBackend();

function b(s: string): Uint8Array {
  const out = fromBase64(s);
  assert.ok(out);
  return out;
}

/** End offset of `needle` inside `hay`. */
function endOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i + needle.length;
  }
  return assert.fail('inner message not found');
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 3_000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('tampered, truncated, replayed and malformed pushes are rejected; the session survives', async () => {
  // ---- fake relay, and bob: a real client whose HTTP calls are answered by it ----
  const relay = await fakeRelay();
  const { acks, port, fetch } = relay;
  const cleanup = () => relay.close();
  let bobClient: TacitClient | undefined;
  try {
    const bob = await TacitClient.register(
      { store: new MemoryRecordStore(), backend, connect: wsSocketFactory, fetch, backoff: { baseMs: 10, maxMs: 50 } },
      { server: `http://127.0.0.1:${port}`, username: 'bob' },
    );
    bobClient = bob;
    assert.ok(relay.registration());
    const undecryptable: string[] = [];
    bob.on('undecryptable', (e) => undecryptable.push(`${e.from}:${e.reason}`));

    // ---- alice: the protocol directly, starting a session from bob's uploaded bundle ----
    const aliceId = IdentityKeyPair.generate(backend);
    const alice = new SessionManager(backend, inMemoryStores(aliceId, generateRegistrationId(backend)), { now: () => Date.now() });
    const bobAddr = new ProtocolAddress('bob', 1);
    const reg = relay.registration()!;
    await alice.processPreKeyBundle(bobAddr, {
      registrationId: reg.registrationId,
      deviceId: 1,
      identityKey: PublicKey.deserialize(b(reg.identityKey)),
      signedPreKeyId: reg.signedPreKey.keyId,
      signedPreKey: PublicKey.deserialize(b(reg.signedPreKey.publicKey)),
      signedPreKeySignature: b(reg.signedPreKey.signature),
      kyberPreKeyId: reg.kyberPreKeys[0]!.keyId,
      kyberPreKey: KyberPublicKey.deserialize(b(reg.kyberPreKeys[0]!.publicKey)),
      kyberPreKeySignature: b(reg.kyberPreKeys[0]!.signature),
      preKeyId: reg.preKeys[0]!.keyId,
      preKey: PublicKey.deserialize(b(reg.preKeys[0]!.publicKey)),
    });
    const msg = async (id: string, text: string) => alice.encrypt(bobAddr, encodeEnvelope({ v: 1, id, text, sentAt: 1_700_000_000_000 }));
    const m1 = await msg('m1', 'first');
    const m2 = await msg('m2', 'second');
    const m3 = await msg('m3', 'third');
    const notEnvelope = await alice.encrypt(bobAddr, new TextEncoder().encode('plain bytes, no envelope'));
    const m4 = await msg('m4', 'fourth');

    await bob.connect(10_000);
    await until(() => relay.socket() !== undefined, 'bob connected');
    let serial = 0;
    const push = (ct: { type: string; body: Uint8Array }, from = 'alice', id = `e${++serial}`): string => {
      relay.socket()!.send(JSON.stringify({ type: 'message', envelope: { id, type: ct.type, body: toBase64(ct.body), source: { username: from, deviceId: 1 }, timestamp: 1 } }));
      return id;
    };
    const flip = (body: Uint8Array, at: number): Uint8Array => {
      const c = body.slice();
      c[at]! ^= 0x10;
      return c;
    };

    const pushed: string[] = [];
    pushed.push(push(m1)); // genuine
    // Tamper inside the authenticated inner SignalMessage: its ciphertext, and its 8-byte MAC.
    const innerEnd = endOf(m2.body, decodePreKeySignalMessage(m2.body).message.serialized);
    pushed.push(push({ type: m2.type, body: flip(m2.body, innerEnd - 12) })); // tampered ciphertext
    pushed.push(push({ type: m2.type, body: flip(m2.body, innerEnd - 1) })); // tampered MAC
    pushed.push(push({ type: m2.type, body: m2.body.subarray(0, m2.body.length - 20) })); // truncated
    pushed.push(push({ type: m2.type, body: m2.body.subarray(0, 3) })); // truncated to almost nothing
    pushed.push(push(m1)); // replay under a new server id: DUPLICATE, dropped silently
    pushed.push(push(m1, 'alice', 'e1')); // redelivery under the same server id
    pushed.push(push({ type: 'whisper', body: m2.body })); // wrong type for the bytes
    pushed.push(push(m3, 'mallory')); // someone else's message attributed to another sender
    pushed.push(push({ type: 'prekey', body: backend.randomBytes(300) })); // garbage
    pushed.push(push(notEnvelope)); // decrypts, but is not an envelope
    pushed.push(push({ type: 'sender-key', body: Uint8Array.of(0x33, ...backend.randomBytes(119)) })); // a group message from no group we know
    relay.socket()!.send('{"type":"message","envelope":{"id":"x"'); // broken JSON
    relay.socket()!.send(JSON.stringify({ type: 'message', envelope: { id: 'bad body', type: 'prekey', body: '***', source: { username: 'alice', deviceId: 1 }, timestamp: 1 } }));
    pushed.push(push(m2)); // genuine: the session is intact
    pushed.push(push(m3));
    relay.socket()!.send(JSON.stringify({ type: 'queue-empty' }));
    await bob.waitDrained(30_000);
    await until(() => acks.length >= new Set(pushed).size, 'acks');
    // After its failures alice is throttled (throttle.ts): her genuine m2 and m3 were parked and
    // are tried in the background; m2 decrypts, which lifts the throttle.
    let shown: string[] = [];
    await until(() => (void bob.unread().then((u) => (shown = u.map((m) => m.text))), shown.length >= 3), 'the parked genuine messages');

    assert.deepEqual(
      (await bob.unread()).map((m) => m.text),
      ['first', 'second', 'third'],
    );
    assert.deepEqual(new Set(acks), new Set(pushed), 'every delivery, good or bad, was acknowledged');
    assert.equal(undecryptable.length, 9, `undecryptable events: ${undecryptable.join(', ')}`);
    assert.ok(undecryptable.some((u) => /^alice:(NO_SENDER_KEY|DECODE)$/.test(u)), `a group message is acknowledged and reported, never left in the queue: ${undecryptable.join(', ')}`);
    assert.equal(undecryptable.filter((u) => u === 'alice:BAD_MAC').length, 2, 'tampering is caught by the MAC');
    assert.ok(undecryptable.includes('alice:BAD_ENVELOPE'));
    assert.ok(undecryptable.every((u) => !u.endsWith(':DUPLICATE')), 'duplicates are dropped silently');

    // A binary frame and an oversized frame make the client drop that connection and reconnect;
    // it comes back and keeps receiving on the same session.
    relay.socket()!.send(new Uint8Array([1, 2, 3]), { binary: true });
    await until(() => relay.connections() === 2, 'reconnect after a binary frame');
    await until(() => relay.socket() !== undefined && relay.socket()!.readyState === 1 && relay.connections() === 2, 'ready again');
    await new Promise((r) => setTimeout(r, 50));
    relay.socket()!.send('x'.repeat(200 * 1024));
    await until(() => relay.connections() === 3, 'reconnect after an oversized frame');
    await new Promise((r) => setTimeout(r, 50));
    push(m4);
    let unread = await bob.unread();
    for (let i = 0; i < 3_000 && unread.length < 4; i++) {
      await new Promise((r) => setTimeout(r, 10));
      unread = await bob.unread();
    }
    assert.equal(unread[3]?.text, 'fourth');

  } finally {
    // Also on failure: an open client would keep the test process alive.
    await bobClient?.close();
    await cleanup();
  }
});
