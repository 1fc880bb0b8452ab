// A device's own identity is pinned to its account's key (issue 10): a message that claims to come
// from another device of our own account, under an identity key that is not ours, is refused with
// FOREIGN_IDENTITY — never trusted on first use, never held for a safety-number decision — and
// nothing is stored. Only a hostile server can attribute a message to our own username, so the
// relay here is a fake one (a real `ws` server on loopback) in front of a real client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBase64, toBase64 } from '@tacit/api';
import { IdentityKeyPair, KyberPublicKey, ProtocolAddress, PublicKey, SessionManager, generateRegistrationId, inMemoryStores } from '@tacit/protocol';
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

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 3_000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('a message from our own username under a foreign identity key is refused (FOREIGN_IDENTITY), not trusted, nothing stored', async () => {
  const relay = await fakeRelay();
  const { acks, port, fetch } = relay;
  const socket = relay.socket;
  let bob: TacitClient | undefined;
  try {
    bob = await TacitClient.register(
      { store: new MemoryRecordStore(), backend, connect: wsSocketFactory, fetch, backoff: { baseMs: 10, maxMs: 50 } },
      { server: `http://127.0.0.1:${port}`, username: 'bob' },
    );
    const reg = relay.registration();
    assert.ok(reg);
    const events: string[] = [];
    bob.on('undecryptable', (e) => events.push(`${e.from}/${e.fromDevice}:${e.reason}`));
    const changes: string[] = [];
    bob.on('identity-changed', (e) => changes.push(e.contact));

    // Two senders start sessions from bob's uploaded keys: an impostor of bob's own account (a
    // fresh identity key) and alice, an ordinary contact (the control: the same path stores hers).
    const session = async (preKeyIndex: number) => {
      const s = new SessionManager(backend, inMemoryStores(IdentityKeyPair.generate(backend), generateRegistrationId(backend)), { now: () => Date.now() });
      await s.processPreKeyBundle(new ProtocolAddress('bob', 1), {
        registrationId: reg.registrationId,
        deviceId: 1,
        identityKey: PublicKey.deserialize(b(reg.identityKey)),
        signedPreKeyId: reg.signedPreKey.keyId,
        signedPreKey: PublicKey.deserialize(b(reg.signedPreKey.publicKey)),
        signedPreKeySignature: b(reg.signedPreKey.signature),
        kyberPreKeyId: reg.kyberPreKeys[preKeyIndex]!.keyId,
        kyberPreKey: KyberPublicKey.deserialize(b(reg.kyberPreKeys[preKeyIndex]!.publicKey)),
        kyberPreKeySignature: b(reg.kyberPreKeys[preKeyIndex]!.signature),
        preKeyId: reg.preKeys[preKeyIndex]!.keyId,
        preKey: PublicKey.deserialize(b(reg.preKeys[preKeyIndex]!.publicKey)),
      });
      return s;
    };
    const impostor = await session(0);
    const alice = await session(1);
    const bobAddr = new ProtocolAddress('bob', 1);
    const plain = await impostor.encrypt(bobAddr, encodeEnvelope({ v: 1, id: 'i1', text: 'from your other device, trust me', sentAt: 1 }));
    // Shaped as our own "sent to alice" transcript, which only our own devices may send.
    const transcript = await impostor.encrypt(bobAddr, encodeEnvelope({ v: 1, id: 'i2', text: 'I said this, not bob', sentAt: 2, sentTo: 'alice' }));
    const genuine = await alice.encrypt(bobAddr, encodeEnvelope({ v: 1, id: 'a1', text: 'hello from alice', sentAt: 3 }));

    await bob.connect(10_000);
    await until(() => socket() !== undefined, 'bob connected');
    const push = (ct: { type: string; body: Uint8Array }, id: string, from: string, deviceId: number): void => {
      socket()!.send(JSON.stringify({ type: 'message', envelope: { id, type: ct.type, body: toBase64(ct.body), source: { username: from, deviceId }, timestamp: 1 } }));
    };
    push(plain, 'e1', 'bob', 2);
    push(transcript, 'e2', 'bob', 3);
    push(genuine, 'e3', 'alice', 1);
    socket()!.send(JSON.stringify({ type: 'queue-empty' }));
    await bob.waitDrained(30_000);
    await until(() => ['e1', 'e2', 'e3'].every((id) => acks.includes(id)), 'every delivery acknowledged');
    let unread: string[] = [];
    await until(() => (void bob!.unread().then((u) => (unread = u.map((m) => `${m.from}: ${m.text}`))), unread.length >= 1), "alice's message");

    assert.deepEqual(events, ['bob/2:FOREIGN_IDENTITY', 'bob/3:FOREIGN_IDENTITY']);
    assert.deepEqual(unread, ['alice: hello from alice'], 'only the genuine contact is stored');
    assert.deepEqual(await bob.history('bob').catch(() => []), [], 'no conversation with ourselves');
    assert.deepEqual(await bob.history('alice').then((h) => h.map((m) => `${m.direction} ${m.text}`)), ['in hello from alice'], 'no forged transcript in alice\'s conversation');
    assert.deepEqual(changes, [], 'no identity-change decision is offered for our own account');
  } finally {
    await bob?.close();
    await relay.close();
  }
});
