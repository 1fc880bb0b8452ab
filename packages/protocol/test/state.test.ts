// Session records: persistence, archived sessions, limits, and that secrets never print.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import {
  type CiphertextMessage,
  generateKyberPreKey,
  generatePreKey,
  generateSignedPreKey,
  IdentityKeyPair,
  isProtocolError,
  KyberPreKeyRecord,
  MAX_ARCHIVED_STATES,
  MAX_RECEIVER_CHAINS,
  PreKeyRecord,
  PrivateKey,
  ProtocolAddress,
  SessionRecord,
  SignedPreKeyRecord,
  toHex,
  utf8Decode,
  utf8Encode,
} from '../src/index.ts';
import { nodeBackend } from '../src/node.ts';
import { TacitParty } from './support/tacit.ts';

const b = nodeBackend();
const ADDR = (n: string) => new ProtocolAddress(n, 1);

test('a session record survives serialize/deserialize mid-conversation', async () => {
  const alice = new TacitParty('alice', b);
  const bob = new TacitParty('bob', b);
  await alice.processBundle('bob', await bob.bundle(true));
  await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode('1')));
  const late = await alice.encrypt('bob', utf8Encode('late'));
  await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode('3'))); // skips `late`
  for (const [p, peer] of [
    [alice, 'bob'],
    [bob, 'alice'],
  ] as const) {
    const rec = (await p.stores.session.loadSession(ADDR(peer))) as SessionRecord;
    const copy = SessionRecord.deserialize(rec.serialize());
    assert.deepEqual(copy.serialize(), rec.serialize());
    await p.stores.session.storeSession(ADDR(peer), copy);
  }
  assert.equal(utf8Decode(await bob.decrypt('alice', late)), 'late');
  const r = await bob.encrypt('alice', utf8Encode('reply'));
  assert.equal(utf8Decode(await alice.decrypt('bob', r)), 'reply');
});

test('records and keys refuse JSON and print no secrets', async () => {
  const alice = new TacitParty('alice', b);
  const bob = new TacitParty('bob', b);
  await alice.processBundle('bob', await bob.bundle(true));
  const rec = (await alice.stores.session.loadSession(ADDR('bob'))) as SessionRecord;
  assert.throws(() => JSON.stringify(rec), (e) => isProtocolError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => JSON.stringify({ k: alice.identity }), (e) => isProtocolError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => JSON.stringify(alice.identity.privateKey), (e) => isProtocolError(e, 'INVALID_ARGUMENT'));
  const shown = inspect(rec, { depth: 10 });
  // Pinned shape: public key, counters and flags only.
  assert.match(shown, /^SessionRecord\(current: remote PublicKey\([0-9a-f]{64}\), sending #0, receiving chains #0, pending true; archived: 0\)$/);
  const priv = toHex(alice.identity.privateKey.serialize());
  for (const s of [shown, inspect(alice.identity), String(alice.identity.privateKey), inspect(alice.identity.privateKey)]) {
    assert.ok(!s.includes(priv));
  }
  assert.equal(inspect(alice.identity.privateKey), 'PrivateKey(<redacted>)');
});

test('pre-key records round-trip and reject malformed bytes with BAD_STATE', () => {
  const id = IdentityKeyPair.generate(b);
  const pk = generatePreKey(b, 7);
  const spk = generateSignedPreKey(b, id, 8, 1234);
  const kpk = generateKyberPreKey(b, id, 9, 5678);
  assert.deepEqual(PreKeyRecord.deserialize(pk.serialize()).serialize(), pk.serialize());
  assert.deepEqual(SignedPreKeyRecord.deserialize(spk.serialize()).serialize(), spk.serialize());
  assert.deepEqual(KyberPreKeyRecord.deserialize(kpk.serialize()).serialize(), kpk.serialize());
  assert.deepEqual(IdentityKeyPair.deserialize(id.serialize()).serialize(), id.serialize());
  assert.equal(kpk.timestamp, 5678);
  for (const bad of [new Uint8Array(0), utf8Encode('{}'), utf8Encode('[1]'), utf8Encode('{"v":1,"kind":"prekey","id":-1}')]) {
    assert.throws(() => PreKeyRecord.deserialize(bad), (e) => isProtocolError(e, 'BAD_STATE'));
    assert.throws(() => SessionRecord.deserialize(bad), (e) => isProtocolError(e, 'BAD_STATE'));
  }
  assert.throws(() => IdentityKeyPair.deserialize(new Uint8Array(64)), (e) => isProtocolError(e, 'BAD_STATE'));
  // Private keys are clamped on construction, as libsignal stores them.
  const raw = new Uint8Array(32).fill(0xff);
  const k = PrivateKey.deserialize(raw).serialize();
  assert.equal(k[0]! & 7, 0);
  assert.equal(k[31]! & 0xc0, 0x40);
});

test('late messages of a replaced session still decrypt from the archive', async () => {
  const alice = new TacitParty('alice', b);
  const bob = new TacitParty('bob', b);
  await alice.processBundle('bob', await bob.bundle(true));
  await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode('s1')));
  await alice.decrypt('bob', await bob.encrypt('alice', utf8Encode('ack')));
  const lateOld = await alice.encrypt('bob', utf8Encode('late from session 1'));
  // Alice starts over (e.g. she lost her session): a second session replaces the first on both sides.
  await alice.processBundle('bob', await bob.bundle(false));
  await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode('s2')));
  const rec = (await bob.stores.session.loadSession(ADDR('alice'))) as SessionRecord;
  assert.equal(rec.previous.length, 1);
  assert.equal(utf8Decode(await bob.decrypt('alice', lateOld)), 'late from session 1');
  // Archive is bounded.
  for (let i = 0; i < MAX_ARCHIVED_STATES + 3; i++) {
    await alice.processBundle('bob', await bob.bundle(false));
    await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode(`n${i}`)));
  }
  const rec2 = (await bob.stores.session.loadSession(ADDR('alice'))) as SessionRecord;
  assert.equal(rec2.previous.length, MAX_ARCHIVED_STATES);
});

test('at most MAX_RECEIVER_CHAINS receiving chains are kept', async () => {
  const alice = new TacitParty('alice', b);
  const bob = new TacitParty('bob', b);
  await alice.processBundle('bob', await bob.bundle(true));
  const held: CiphertextMessage[] = [];
  await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode('start')));
  for (let turn = 0; turn < MAX_RECEIVER_CHAINS + 2; turn++) {
    await alice.decrypt('bob', await bob.encrypt('alice', utf8Encode('turn')));
    held.push(await alice.encrypt('bob', utf8Encode(`held ${turn}`)));
    await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode('next')));
  }
  const rec = (await bob.stores.session.loadSession(ADDR('alice'))) as SessionRecord;
  assert.equal(rec.current?.receivers.length, MAX_RECEIVER_CHAINS);
  // The newest held messages are still decryptable; the oldest chain was evicted.
  assert.equal(utf8Decode(await bob.decrypt('alice', held[held.length - 1] as CiphertextMessage)), `held ${held.length - 1}`);
  await assert.rejects(bob.decrypt('alice', held[0] as CiphertextMessage), (e) => isProtocolError(e));
});

test('encrypt and decrypt for one address run one at a time, in call order', async () => {
  const alice = new TacitParty('alice', b);
  const bob = new TacitParty('bob', b);
  await alice.processBundle('bob', await bob.bundle(true));
  // Fire many encryptions at once: each must get a distinct counter, in call order.
  const msgs = await Promise.all(Array.from({ length: 50 }, (_, i) => alice.encrypt('bob', utf8Encode(String(i)))));
  const outs = await Promise.all(msgs.map((m) => bob.decrypt('alice', m)));
  assert.deepEqual(outs.map(utf8Decode), Array.from({ length: 50 }, (_, i) => String(i)));
});

test('an unacknowledged session expires for sending after 30 days', async () => {
  const alice = new TacitParty('alice', b);
  const bob = new TacitParty('bob', b);
  await alice.processBundle('bob', await bob.bundle(true));
  await alice.encrypt('bob', utf8Encode('x'));
  alice.now += 31 * 24 * 3600 * 1000;
  await assert.rejects(alice.encrypt('bob', utf8Encode('y')), (e) => isProtocolError(e, 'NO_SESSION'));
});

test('an archived session still decrypts late messages; sending needs a new bundle', async () => {
  const alice = new TacitParty('alice', b);
  const bob = new TacitParty('bob', b);
  await alice.processBundle('bob', await bob.bundle(true));
  await bob.decrypt('alice', await alice.encrypt('bob', utf8Encode('hi')));
  const late = await alice.encrypt('bob', utf8Encode('late'));
  await bob.manager.archiveCurrentSession(ADDR('alice'));
  assert.equal(await bob.manager.hasSession(ADDR('alice')), false);
  await assert.rejects(bob.encrypt('alice', utf8Encode('x')), (e) => isProtocolError(e, 'NO_SESSION'));
  assert.equal(utf8Decode(await bob.decrypt('alice', late)), 'late');
  // Decrypting revived the archived session: it is current again.
  assert.equal(await bob.manager.hasSession(ADDR('alice')), true);
});

test('a bundle with a one-time key but no id (or the reverse) is refused', async () => {
  const alice = new TacitParty('alice', b);
  const bob = new TacitParty('bob', b);
  const bundle = await bob.bundle(true);
  await assert.rejects(alice.processBundle('bob', { ...bundle, preKeyId: undefined }), (e) => isProtocolError(e, 'INVALID_ARGUMENT'));
  await assert.rejects(alice.processBundle('bob', { ...bundle, preKey: undefined }), (e) => isProtocolError(e, 'INVALID_ARGUMENT'));
});
