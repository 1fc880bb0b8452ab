// XEdDSA, Kyber, safety numbers and both crypto backends, checked against libsignal and RFC vectors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type CryptoBackend,
  fromHex,
  IdentityKeyPair,
  KyberKeyPair,
  KyberPublicKey,
  KyberSecretKey,
  portableBackend,
  PrivateKey,
  PublicKey,
  safetyNumber,
  toHex,
  utf8Encode,
  xeddsaSign,
  xeddsaVerify,
  isProtocolError,
  compareScannable,
} from '../src/index.ts';
import { MAX_CACHED_VERIFYING_KEYS, nodeBackend, RANDOM_POOL_BYTES } from '../src/node.ts';
import fc from 'fast-check';
import { sha3_256, shake256 } from '@noble/hashes/sha3.js';
import { ls } from './support/libsignal.ts';

const backends: Array<[string, CryptoBackend]> = [
  ['node', nodeBackend()],
  ['portable', portableBackend()],
];

for (const [name, b] of backends) {
  test(`${name} backend: RFC 7748 X25519 and RFC 5869 HKDF vectors`, () => {
    // RFC 7748 §6.1
    const alicePriv = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bobPub = fromHex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    assert.equal(toHex(b.x25519(alicePriv, bobPub)), '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
    assert.equal(toHex(b.x25519PublicFromPrivate(alicePriv)), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    // RFC 5869 A.1
    const okm = b.hkdfSha256(fromHex('0b'.repeat(22)), fromHex('000102030405060708090a0b0c'), fromHex('f0f1f2f3f4f5f6f7f8f9'), 42);
    assert.equal(toHex(okm), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
    // HKDF with an empty salt equals HashLen zero bytes of salt (RFC 5869 §2.2).
    assert.deepEqual(b.hkdfSha256(utf8Encode('ikm'), new Uint8Array(0), utf8Encode('i'), 64), b.hkdfSha256(utf8Encode('ikm'), new Uint8Array(32), utf8Encode('i'), 64));
  });

  test(`${name} backend: AES-CBC round trip and padding rejection`, () => {
    const key = b.randomBytes(32);
    const iv = b.randomBytes(16);
    for (const len of [0, 1, 15, 16, 17, 100]) {
      const pt = b.randomBytes(len);
      const ct = b.aes256CbcEncrypt(key, iv, pt);
      assert.equal(ct.length, (Math.floor(len / 16) + 1) * 16);
      assert.deepEqual(b.aes256CbcDecrypt(key, iv, ct), pt);
    }
    assert.equal(b.aes256CbcDecrypt(key, iv, new Uint8Array(15)), null);
    assert.equal(b.aes256CbcDecrypt(key, iv, new Uint8Array(0)), null);
    const wrong = b.aes256CbcEncrypt(b.randomBytes(32), iv, utf8Encode('x'));
    // A wrong key almost always yields bad padding; when it does not, the plaintext differs.
    const out = b.aes256CbcDecrypt(key, iv, wrong);
    assert.ok(out === null || toHex(out) !== toHex(utf8Encode('x')));
  });

  test(`${name} backend: XEdDSA interop with libsignal both ways, tampering fails`, () => {
    for (let i = 0; i < 20; i++) {
      const theirs = ls.PrivateKey.generate();
      const msg = b.randomBytes(i * 11);
      const sig = theirs.sign(msg);
      assert.ok(xeddsaVerify(theirs.getPublicKey().serialize(), msg, sig, b));
      const ours = PrivateKey.deserialize(theirs.serialize());
      assert.deepEqual(ours.publicKey(b).serialize(), theirs.getPublicKey().serialize());
      const mine = xeddsaSign(b, ours, msg);
      assert.ok(theirs.getPublicKey().verify(msg, mine));
      for (const pos of [0, 31, 32, 62, 63]) {
        const bad = mine.slice();
        bad[pos] = (bad[pos] as number) ^ 0x01;
        assert.equal(xeddsaVerify(ours.publicKey(b).serialize(), msg, bad, b), false);
        assert.equal(theirs.getPublicKey().verify(msg, bad), false);
      }
      if (msg.length > 0) {
        const m2 = msg.slice();
        m2[0] = (m2[0] as number) ^ 1;
        assert.equal(xeddsaVerify(ours.publicKey(b).serialize(), m2, mine, b), false);
      }
    }
  });

  test(`${name} backend: X25519 agreement equals libsignal's`, () => {
    const x = ls.PrivateKey.generate();
    const y = ls.PrivateKey.generate();
    const ours = PrivateKey.deserialize(x.serialize());
    assert.deepEqual(ours.agree(b, PublicKey.deserialize(y.getPublicKey().serialize())), x.agree(y.getPublicKey()));
  });
}

test('XEdDSA: a malleated s + L is refused by both backends (stricter than libsignal)', () => {
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  for (const [, b] of backends) {
    const id = IdentityKeyPair.generate(b);
    const msg = utf8Encode('malleate me');
    const sig = id.sign(b, msg);
    const signBit = sig[63]! & 0x80;
    const sBytes = sig.slice(32);
    sBytes[31] = sBytes[31]! & 0x7f;
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sBytes[i]!);
    s += L;
    const mal = sig.slice();
    for (let i = 0; i < 32; i++) {
      mal[32 + i] = Number(s & 0xffn);
      s >>= 8n;
    }
    mal[63] = mal[63]! | signBit;
    assert.ok(xeddsaVerify(id.publicKey.serialize(), msg, sig, b));
    assert.equal(xeddsaVerify(id.publicKey.serialize(), msg, mal, b), false);
  }
});

test('XEdDSA verification rejects malformed input without throwing', () => {
  const b = nodeBackend();
  const id = IdentityKeyPair.generate(b);
  const msg = utf8Encode('m');
  const sig = id.sign(b, msg);
  const pub = id.publicKey.serialize();
  assert.ok(xeddsaVerify(pub, msg, sig));
  assert.equal(xeddsaVerify(pub, msg, sig.subarray(0, 63)), false);
  assert.equal(xeddsaVerify(pub.subarray(1), msg, sig), false);
  assert.equal(xeddsaVerify(new Uint8Array(33), msg, sig), false);
  const high = sig.slice();
  high[63] = (high[63] as number) | 0x60; // s with its top bits set is refused
  assert.equal(xeddsaVerify(pub, msg, high), false);
  // A public key of u = p - 1 ("-1") has no Edwards equivalent: false, not a throw.
  const minusOne = fromHex('05ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');
  assert.equal(xeddsaVerify(minusOne, msg, sig), false);
});

test('curve keys: non-canonical encodings and wrong type bytes are refused', () => {
  const p = fromHex('05edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');
  assert.throws(() => PublicKey.deserialize(p), (e) => isProtocolError(e, 'BAD_KEY'));
  const top = fromHex('05' + '00'.repeat(31) + '80');
  assert.throws(() => PublicKey.deserialize(top), (e) => isProtocolError(e, 'BAD_KEY'));
  assert.throws(() => PublicKey.deserialize(fromHex('06' + '09'.repeat(32))), (e) => isProtocolError(e, 'BAD_KEY'));
  assert.throws(() => PublicKey.deserialize(new Uint8Array(32)), (e) => isProtocolError(e, 'BAD_KEY'));
});

test('X25519 with a small-order point is refused as non-contributory', () => {
  for (const [, b] of backends) {
    const k = PrivateKey.generate(b);
    assert.throws(() => k.agree(b, PublicKey.fromRaw(new Uint8Array(32))), (e) => isProtocolError(e, 'NON_CONTRIBUTORY'));
    const one = new Uint8Array(32);
    one[0] = 1;
    assert.throws(() => k.agree(b, PublicKey.fromRaw(one)), (e) => isProtocolError(e, 'NON_CONTRIBUTORY'));
  }
});

test('Kyber1024: libsignal key pairs work in ours; round trip; wrong sizes refused', () => {
  const b = nodeBackend();
  const theirs = ls.KEMKeyPair.generate();
  const pub = KyberPublicKey.deserialize(theirs.getPublicKey().serialize());
  const sec = KyberSecretKey.deserialize(theirs.getSecretKey().serialize());
  const { sharedSecret, ciphertext } = pub.encapsulate(b);
  assert.equal(ciphertext.length, 1569);
  assert.equal(ciphertext[0], 0x08);
  assert.deepEqual(sec.decapsulate(ciphertext), sharedSecret);
  const ours = KyberKeyPair.generate(b);
  assert.deepEqual(ls.KEMPublicKey.deserialize(ours.publicKey.serialize()).serialize(), ours.publicKey.serialize());
  assert.deepEqual(ls.KEMSecretKey.deserialize(ours.secretKey.serialize()).serialize(), ours.secretKey.serialize());
  // A tampered ciphertext gives a different (implicitly rejected) secret, never the real one.
  const bad = ciphertext.slice();
  bad[100] = (bad[100] as number) ^ 1;
  assert.notDeepEqual(sec.decapsulate(bad), sharedSecret);
  assert.throws(() => sec.decapsulate(ciphertext.subarray(1)), (e) => isProtocolError(e, 'DECODE'));
  assert.throws(() => KyberPublicKey.deserialize(theirs.getPublicKey().serialize().subarray(1)), (e) => isProtocolError(e, 'BAD_KEY'));
});

test('safety numbers equal libsignal’s Fingerprint digit for digit, and the scannable form too', () => {
  for (const [, b] of backends) {
    for (let i = 0; i < 3; i++) {
      const x = ls.IdentityKeyPair.generate();
      const y = ls.IdentityKeyPair.generate();
      const xid = utf8Encode(`alice${i}`);
      const yid = utf8Encode(`bob-the-builder-${i}`);
      const theirs = ls.Fingerprint.new(5200, 2, xid, x.publicKey, yid, y.publicKey);
      const ours = safetyNumber(b, xid, PublicKey.deserialize(x.publicKey.serialize()), yid, PublicKey.deserialize(y.publicKey.serialize()));
      assert.equal(ours.displayable, theirs.displayableFingerprint().toString());
      assert.equal(ours.displayable.length, 60);
      assert.deepEqual(ours.scannable, theirs.scannableFingerprint().toBuffer());
      const reverse = safetyNumber(b, yid, PublicKey.deserialize(y.publicKey.serialize()), xid, PublicKey.deserialize(x.publicKey.serialize()));
      assert.equal(reverse.displayable, ours.displayable);
      assert.ok(compareScannable(ours.scannable, reverse.scannable));
      const other = safetyNumber(b, yid, PublicKey.deserialize(ls.IdentityKeyPair.generate().publicKey.serialize()), xid, PublicKey.deserialize(x.publicKey.serialize()));
      assert.equal(compareScannable(ours.scannable, other.scannable), false);
      assert.notEqual(other.displayable, ours.displayable);
    }
  }
});

test('both backends agree on HKDF, HMAC, SHA and AES-CBC for random inputs', () => {
  const n = nodeBackend();
  const p = portableBackend();
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 100 }),
      fc.uint8Array({ maxLength: 64 }),
      fc.uint8Array({ maxLength: 64 }),
      fc.integer({ min: 0, max: 200 }),
      (ikm, salt, info, length) => {
        assert.deepEqual(n.hkdfSha256(ikm, salt, info, length), p.hkdfSha256(ikm, salt, info, length));
        assert.deepEqual(n.hmacSha256(salt, ikm, info), p.hmacSha256(salt, ikm, info));
        assert.deepEqual(n.sha512(ikm, info), p.sha512(ikm, info));
        assert.deepEqual(n.sha256(ikm), p.sha256(ikm));
        assert.deepEqual(n.sha3_256?.(ikm), sha3_256(ikm));
        assert.deepEqual(n.shake256?.(ikm, 32), shake256(ikm, { dkLen: 32 }));
        const key = n.sha256(salt);
        const iv = n.sha256(info).subarray(0, 16);
        const ct = n.aes256CbcEncrypt(key, iv, ikm);
        assert.deepEqual(p.aes256CbcEncrypt(key, iv, ikm), ct);
        assert.deepEqual(p.aes256CbcDecrypt(key, iv, ct), ikm);
      },
    ),
    { numRuns: 300 },
  );
});

test('node backend randomness: every length works, and small requests (served from a pool) never repeat', () => {
  const b = nodeBackend();
  for (const n of [0, 1, 31, 32, 64, 65, 1000, RANDOM_POOL_BYTES + 1]) assert.equal(b.randomBytes(n).length, n);
  const seen = new Set<string>();
  // Three pools' worth of keys and seeds, so the pool is refilled several times and requests
  // straddle its end.
  for (let used = 0; used < 3 * RANDOM_POOL_BYTES; ) {
    for (const n of [32, 64, 16]) {
      const r = toHex(b.randomBytes(n));
      assert.ok(!seen.has(r), 'a random request repeated');
      seen.add(r);
      used += n;
    }
  }
  const keys = new Set(Array.from({ length: 300 }, () => toHex(b.x25519GenerateKeyPair().privateKey)));
  assert.equal(keys.size, 300);
});

test(`node backend XEdDSA verification: more identity keys than the ${MAX_CACHED_VERIFYING_KEYS} kept imported, each accepts only its own signatures`, () => {
  const b = nodeBackend();
  const ids = Array.from({ length: MAX_CACHED_VERIFYING_KEYS + 20 }, () => IdentityKeyPair.generate(b));
  const msg = utf8Encode('signed pre-key');
  for (let round = 0; round < 2; round++) {
    ids.forEach((id, i) => {
      const sig = id.sign(b, msg);
      const other = ids[(i + 1) % ids.length]!;
      assert.ok(xeddsaVerify(id.publicKey.serialize(), msg, sig, b));
      assert.ok(!xeddsaVerify(other.publicKey.serialize(), msg, sig, b));
      assert.ok(!xeddsaVerify(id.publicKey.serialize(), utf8Encode('other message'), sig, b));
    });
  }
});

test('fresh X25519 key pairs (both backends): clamped, public half matches the other backend, agreements match', () => {
  const n = nodeBackend();
  const p = portableBackend();
  for (let i = 0; i < 50; i++) {
    for (const [mine, other] of [
      [n, p],
      [p, n],
    ] as const) {
      const k = mine.x25519GenerateKeyPair();
      assert.equal(k.privateKey[0]! & 7, 0);
      assert.equal(k.privateKey[31]! & 0xc0, 0x40);
      assert.deepEqual(other.x25519PublicFromPrivate(k.privateKey), k.publicKey);
      assert.deepEqual(mine.x25519PublicFromPrivate(k.privateKey), k.publicKey);
      const peer = other.x25519GenerateKeyPair();
      assert.deepEqual(mine.x25519(k.privateKey, peer.publicKey), other.x25519(peer.privateKey, k.publicKey));
    }
  }
});
