// Sender-key signing keys made from an Ed25519 seed (seeded-signing-key.ts): the key relations the
// construction rests on, native signatures that every XEdDSA verifier path accepts, records with
// and without the seed, and damaged records. (libsignal verifying them: group-interop.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import {
  type CryptoBackend,
  DistributionId,
  decodeSenderKeyMessage,
  GroupCipher,
  generateSeededSigningKey,
  InMemorySenderKeyStore,
  isProtocolError,
  MAX_SIGNING_SEED_ATTEMPTS,
  ProtocolAddress,
  portableBackend,
  SenderKeyDistributionMessage,
  SenderKeyRecord,
  SIGNING_SEED_FIELD,
  signWithSenderKey,
  toHex,
  xeddsaVerify,
  xeddsaVerifyKey,
} from '../src/index.ts';
import { nodeBackend } from '../src/node.ts';
import { SenderKeyState } from '../src/sender-key.ts';
import { readFields, Writer } from '../src/protobuf.ts';

const node = nodeBackend();
const portable = portableBackend();
const BACKENDS: CryptoBackend[] = [node, portable];
const ALICE = new ProtocolAddress('alice', 1);

function clamp(k: Uint8Array): Uint8Array {
  const c = k.slice(0, 32);
  c[0] = (c[0] as number) & 248;
  c[31] = ((c[31] as number) & 127) | 64;
  return c;
}

for (const b of BACKENDS) {
  test(`${b.name}: a seeded key is an X25519 key pair whose Edwards point (sign bit 0) is the seed's Ed25519 key`, () => {
    for (let i = 0; i < 20; i++) {
      const { keyPair, seed } = generateSeededSigningKey(b);
      assert.equal(seed.length, 32);
      // The private key is the seed's clamped scalar, a valid X25519 private key ...
      assert.equal(toHex(keyPair.privateKey.rawUnsafe), toHex(clamp(sha512(seed))));
      // ... its X25519 public key is the Montgomery form of the seed's Ed25519 public point ...
      const edPublic = ed25519.getPublicKey(seed);
      assert.equal(toHex(keyPair.publicKey.rawUnsafe), toHex(ed25519.utils.toMontgomery(edPublic)));
      assert.equal(toHex(keyPair.publicKey.rawUnsafe), toHex(b.x25519PublicFromPrivate(keyPair.privateKey.rawUnsafe)));
      // ... and that point has sign bit 0, the one XEdDSA verification picks for an Ed25519 signature.
      assert.equal((edPublic[31] as number) & 0x80, 0);
    }
  });

  test(`${b.name}: a sender-key signature by a seeded key verifies as XEdDSA; any flipped bit is refused`, () => {
    const { keyPair, seed } = generateSeededSigningKey(b);
    const message = new Uint8Array(200).map((_, i) => i);
    const sig = signWithSenderKey(b, { privateKey: keyPair.privateKey, seed }, message);
    if (b.ed25519Sign !== undefined) {
      // Natively signed: exactly RFC 8032's (deterministic) signature by the seed.
      assert.equal(toHex(sig), toHex(ed25519.sign(message, seed)));
    }
    const key = keyPair.publicKey.serialize();
    // Every verifier path: node's native Ed25519, the pure one, and the WebCrypto-shaped async one.
    for (const v of BACKENDS) assert.ok(xeddsaVerifyKey(v, keyPair.publicKey, message, sig), `verified on ${v.name}`);
    assert.ok(xeddsaVerify(key, message, sig));
    for (let bit = 0; bit < 64 * 8; bit++) {
      const bad = sig.slice();
      bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
      assert.equal(xeddsaVerifyKey(node, keyPair.publicKey, message, bad), false, `bit ${bit}`);
    }
    assert.equal(xeddsaVerify(key, Uint8Array.of(...message.subarray(1)), sig), false);
    assert.equal(xeddsaVerify(generateSeededSigningKey(b).keyPair.publicKey.serialize(), message, sig), false);
  });

  test(`${b.name}: group messages from a seeded sender key read on both backends, and the record keeps the seed`, async () => {
    const store = new InMemorySenderKeyStore();
    const alice = new GroupCipher(b, store);
    const dist = DistributionId.random(b);
    const skdm = await alice.createSenderKeyDistributionMessage(ALICE, dist);
    const record = (await store.loadSenderKey(ALICE, dist)) as SenderKeyRecord;
    const state = record.current as SenderKeyState;
    assert.ok(state.signingSeed !== null && state.signingPrivateKey !== null);
    assert.equal(toHex(state.signingPrivateKey.rawUnsafe), toHex(clamp(sha512(state.signingSeed))));
    // The seed travels in its own field of the signing-key message, beside libsignal's two.
    const signingKeyFields = readFields(readFields(readFields(record.serialize())[0]!.value as Uint8Array).find((f) => f.tag === 3)!.value as Uint8Array);
    assert.deepEqual(signingKeyFields.map((f) => f.tag), [1, 2, SIGNING_SEED_FIELD]);
    assert.ok(!inspect(record).includes(toHex(state.signingSeed).slice(0, 12)));
    assert.ok(!inspect(state).includes(toHex(state.signingSeed).slice(0, 12)));
    for (const rb of BACKENDS) {
      const bob = new GroupCipher(rb, new InMemorySenderKeyStore());
      await bob.processSenderKeyDistributionMessage(ALICE, SenderKeyDistributionMessage.deserialize(skdm.serialize()));
      for (let i = 0; i < 3; i++) {
        const m = await alice.groupEncrypt(ALICE, dist, Uint8Array.of(i, rb.name.length));
        assert.deepEqual((await bob.groupDecrypt(ALICE, m)).plaintext, Uint8Array.of(i, rb.name.length));
      }
      // A receiving state never keeps a seed.
      assert.equal((await bob.store.loadSenderKey(ALICE, dist))?.current?.signingSeed, null);
    }
  });
}

test('a record without the seed (older, or libsignal’s) still signs, through XEdDSA on @noble; with it, natively', async () => {
  const store = new InMemorySenderKeyStore();
  const alice = new GroupCipher(node, store);
  const dist = DistributionId.random(node);
  const skdm = await alice.createSenderKeyDistributionMessage(ALICE, dist);
  const seeded = (await store.loadSenderKey(ALICE, dist)) as SenderKeyRecord;
  const s = seeded.current as SenderKeyState;
  // The same state written without field SIGNING_SEED_FIELD, as a record from before this change.
  const bare = new SenderKeyRecord([new SenderKeyState({ chainId: s.chainId, iteration: s.iteration, chainKey: s.chainKey, signingKey: s.signingKey, signingPrivateKey: s.signingPrivateKey })]);
  assert.ok(bare.serialize().length < seeded.serialize().length);
  await store.storeSenderKey(ALICE, dist, SenderKeyRecord.deserialize(bare.serialize()));
  const bob = new GroupCipher(node, new InMemorySenderKeyStore());
  await bob.processSenderKeyDistributionMessage(ALICE, skdm);
  const first = await alice.groupEncrypt(ALICE, dist, Uint8Array.of(1));
  const second = await alice.groupEncrypt(ALICE, dist, Uint8Array.of(2));
  assert.deepEqual((await bob.groupDecrypt(ALICE, first)).plaintext, Uint8Array.of(1));
  assert.deepEqual((await bob.groupDecrypt(ALICE, second)).plaintext, Uint8Array.of(2));
  // Without the seed the signature is XEdDSA's randomized one, not the seed's Ed25519 signature.
  const body = first.subarray(0, first.length - 64);
  assert.notEqual(toHex(first.subarray(first.length - 64)), toHex(ed25519.sign(body, s.signingSeed as Uint8Array)));
  // With the seed back on the state where the chain now stands, it signs natively again
  // (deterministic: exactly the seed's Ed25519 signature).
  const now = ((await store.loadSenderKey(ALICE, dist)) as SenderKeyRecord).current as SenderKeyState;
  assert.equal(now.signingSeed, null);
  const reseeded = new SenderKeyState({ chainId: now.chainId, iteration: now.iteration, chainKey: now.chainKey, signingKey: now.signingKey, signingPrivateKey: now.signingPrivateKey, signingSeed: s.signingSeed });
  await store.storeSenderKey(ALICE, dist, new SenderKeyRecord([reseeded]));
  const third = await alice.groupEncrypt(ALICE, dist, Uint8Array.of(3));
  const thirdBody = third.subarray(0, third.length - 64);
  assert.equal(toHex(third.subarray(third.length - 64)), toHex(ed25519.sign(thirdBody, s.signingSeed as Uint8Array)));
  assert.equal(decodeSenderKeyMessage(third).iteration, 2);
  assert.deepEqual((await bob.groupDecrypt(ALICE, third)).plaintext, Uint8Array.of(3));
});

test('damaged records: a seed that is not the key’s, a seed of the wrong length, a seed without a private key', async () => {
  const store = new InMemorySenderKeyStore();
  const alice = new GroupCipher(node, store);
  const dist = DistributionId.random(node);
  await alice.createSenderKeyDistributionMessage(ALICE, dist);
  const s = ((await store.loadSenderKey(ALICE, dist)) as SenderKeyRecord).current as SenderKeyState;
  const other = generateSeededSigningKey(node).seed;
  const withSeed = (seed: Uint8Array, priv = true): Uint8Array => {
    const sk = new Writer();
    sk.bytes(1, s.signingKey.serialize());
    if (priv) sk.bytes(2, (s.signingPrivateKey as NonNullable<typeof s.signingPrivateKey>).serialize());
    sk.bytes(SIGNING_SEED_FIELD, seed);
    const chain = new Writer();
    chain.bytes(2, s.chainKey);
    const st = new Writer();
    st.uint32(1, s.chainId);
    st.bytes(2, chain.finish());
    st.bytes(3, sk.finish());
    st.uint32(5, 3);
    const r = new Writer();
    r.bytes(1, st.finish());
    return r.finish();
  };
  // Another key's seed: refused at signing (BAD_STATE), nothing is sent, the chain does not move.
  await store.storeSenderKey(ALICE, dist, SenderKeyRecord.deserialize(withSeed(other)));
  await assert.rejects(alice.groupEncrypt(ALICE, dist, Uint8Array.of(1)), (e) => isProtocolError(e) && e.code === 'BAD_STATE');
  assert.equal((await store.loadSenderKey(ALICE, dist))?.current?.iteration, 0);
  // A backend without native signing ignores the seed and signs from the private key.
  const portableAlice = new GroupCipher(portable, store);
  assert.ok((await portableAlice.groupEncrypt(ALICE, dist, Uint8Array.of(1))).length > 64);
  for (const bad of [withSeed(other.subarray(0, 31)), withSeed(new Uint8Array(33)), withSeed(other, false)]) {
    assert.throws(() => SenderKeyRecord.deserialize(bad), (e) => isProtocolError(e) && e.code === 'BAD_STATE');
  }
});

test(`generation gives up after ${MAX_SIGNING_SEED_ATTEMPTS} draws of an odd point (a broken backend), with a typed error`, () => {
  let draws = 0;
  const broken: CryptoBackend = {
    ...node,
    ed25519GenerateKeyPair: () => {
      draws++;
      const publicKey = new Uint8Array(32);
      publicKey[31] = 0x80;
      return { seed: new Uint8Array(32), publicKey };
    },
  };
  assert.throws(() => generateSeededSigningKey(broken), (e) => isProtocolError(e) && e.code === 'INVALID_ARGUMENT');
  assert.equal(draws, MAX_SIGNING_SEED_ATTEMPTS);
});
