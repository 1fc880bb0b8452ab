// Interop with Signal's own libsignal-client 0.79.0 (UsePQRatchet.No), in both directions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodePreKeySignalMessage, decodeSignalMessage, portableBackend, PublicKey, utf8Encode, webCryptoCurves } from '../src/index.ts';
import { nodeBackend } from '../src/node.ts';
import { encodePreKeySignalMessage, encodeSignalMessage } from '../src/wire.ts';
import { LibsignalParty, ls } from './support/libsignal.ts';
import { testSeed } from './support/random.ts';
import { simulate } from './support/simulate.ts';
import { TacitParty } from './support/tacit.ts';

const MESSAGES = 1200;

for (const withOneTime of [true, false]) {
  const otk = withOneTime ? 'with' : 'without';
  test(`tacit starts, libsignal answers (${otk} one-time pre-key): ${MESSAGES} messages`, async () => {
    const seed = testSeed();
    const stats = await simulate(new TacitParty('alice', nodeBackend()), new LibsignalParty('bob'), { seed, messages: MESSAGES, withOneTime });
    assert.equal(stats.delivered, MESSAGES);
    assert.ok(stats.outOfOrder > 0 && stats.held > 0 && stats.chainsSeen > 20, `seed=${seed}: simulation exercised reordering and ratchets`);
  });

  test(`libsignal starts, tacit answers (${otk} one-time pre-key): ${MESSAGES} messages`, async () => {
    const seed = testSeed();
    const stats = await simulate(new LibsignalParty('alice'), new TacitParty('bob', nodeBackend()), { seed, messages: MESSAGES, withOneTime });
    assert.equal(stats.delivered, MESSAGES);
    assert.ok(stats.outOfOrder > 0 && stats.held > 0 && stats.chainsSeen > 20, `seed=${seed}: simulation exercised reordering and ratchets`);
  });
}

test('portable backend interoperates with libsignal both ways', async () => {
  const seed = testSeed();
  await simulate(new TacitParty('alice', portableBackend()), new LibsignalParty('bob'), { seed, messages: 150, withOneTime: true });
  await simulate(new LibsignalParty('alice'), new TacitParty('bob', portableBackend()), { seed: seed + 1, messages: 150, withOneTime: false });
});

test('portable backend with WebCrypto curves and the WebAssembly ML-KEM (what the web client runs) interoperates with libsignal both ways', async () => {
  const webCrypto = await webCryptoCurves(globalThis.crypto.subtle);
  assert.ok(webCrypto.x25519Async !== undefined && webCrypto.ed25519VerifyAsync !== undefined, 'Node 20 WebCrypto has X25519 and Ed25519');
  const web = () => portableBackend({ webCrypto, mlKem1024: nodeBackend().mlKem1024! });
  const seed = testSeed();
  await simulate(new TacitParty('alice', web()), new LibsignalParty('bob'), { seed, messages: 150, withOneTime: true });
  await simulate(new LibsignalParty('alice'), new TacitParty('bob', web()), { seed: seed + 1, messages: 150, withOneTime: false });
  await simulate(new TacitParty('alice', web()), new TacitParty('bob', nodeBackend()), { seed: seed + 2, messages: 150, withOneTime: true });
});

test('tacit ↔ tacit across backends', async () => {
  const seed = testSeed();
  await simulate(new TacitParty('alice', nodeBackend()), new TacitParty('bob', portableBackend()), { seed, messages: 200, withOneTime: true });
});

test('SignalMessage bytes equal libsignal’s for the same fields (known answer)', () => {
  const b = nodeBackend();
  for (let i = 0; i < 20; i++) {
    const macKey = b.randomBytes(32);
    const ratchet = ls.PrivateKey.generate().getPublicKey();
    const sender = ls.PrivateKey.generate().getPublicKey();
    const receiver = ls.PrivateKey.generate().getPublicKey();
    const ciphertext = b.randomBytes(16 * (1 + i));
    const counter = i * 977;
    const prev = i * 13;
    const theirs = ls.SignalMessage._new(4, macKey, ratchet, counter, prev, ciphertext, sender, receiver, new Uint8Array(0));
    const ours = encodeSignalMessage(b, macKey, PublicKey.deserialize(ratchet.serialize()), counter, prev, ciphertext, PublicKey.deserialize(sender.serialize()), PublicKey.deserialize(receiver.serialize()));
    assert.deepEqual(ours.serialized, theirs.serialize());
    const decoded = decodeSignalMessage(theirs.serialize());
    assert.equal(decoded.counter, counter);
    assert.equal(decoded.previousCounter, prev);
    assert.deepEqual(decoded.ciphertext, ciphertext);
  }
});

test('PreKeySignalMessage from libsignal re-encodes to the same bytes', async () => {
  const alice = new LibsignalParty('alice');
  const bob = new TacitParty('bob', nodeBackend());
  for (const withOneTime of [true, false]) {
    await alice.processBundle('bob', await bob.bundle(withOneTime));
    const m = await alice.encrypt('bob', utf8Encode('hi'));
    assert.equal(m.type, 'prekey');
    const decoded = decodePreKeySignalMessage(m.body);
    assert.equal(decoded.preKeyId !== undefined, withOneTime);
    const { serialized: _s, ...fields } = decoded;
    assert.deepEqual(encodePreKeySignalMessage(fields).serialized, m.body);
  }
});
