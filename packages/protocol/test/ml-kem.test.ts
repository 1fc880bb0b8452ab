// The ML-KEM-1024 engines under Kyber's round-3 wrapper: the WebAssembly one (PQClean) gives
// exactly @noble/post-quantum's bytes for the same inputs, refuses the same keys, and Kyber over it
// interoperates with libsignal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { isProtocolError, KyberKeyPair, KyberPublicKey, KyberSecretKey } from '../src/index.ts';
import { nodeBackend } from '../src/node.ts';
import { checkMlKemPublicKey, nobleMlKem1024 } from '../src/ml-kem.ts';
import { instantiateMlKem1024, mlKem1024FromWasm } from '../src/ml-kem-wasm.ts';
import { ls } from './support/libsignal.ts';

const wasmBytes = readFileSync(createRequire(import.meta.url).resolve('pqclean/wasm/gen/pqclean.wasm'));
const wasm = mlKem1024FromWasm(new WebAssembly.Module(wasmBytes));

test('the WebAssembly engine equals noble: keygen, encapsulate, decapsulate (and implicit rejection)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(1567), (seed, m, flip) => {
      const a = wasm.keygen(seed);
      const b = nobleMlKem1024.keygen(seed);
      assert.deepEqual(a.publicKey, b.publicKey);
      assert.deepEqual(a.secretKey, b.secretKey);
      const ea = wasm.encapsulate(a.publicKey, m);
      const eb = nobleMlKem1024.encapsulate(b.publicKey, m);
      assert.deepEqual(ea.cipherText, eb.cipherText);
      assert.deepEqual(ea.sharedSecret, eb.sharedSecret);
      assert.deepEqual(wasm.decapsulate(ea.cipherText, a.secretKey), ea.sharedSecret);
      const bad = ea.cipherText.slice();
      bad[flip] = bad[flip]! ^ 1;
      const ra = wasm.decapsulate(bad, a.secretKey);
      assert.deepEqual(ra, nobleMlKem1024.decapsulate(bad, b.secretKey));
      assert.notDeepEqual(ra, ea.sharedSecret);
    }),
    { numRuns: 20 },
  );
});

test('the asynchronously instantiated engine gives the same bytes', async () => {
  const engine = await instantiateMlKem1024(wasmBytes);
  const seed = randomBytes(64);
  const m = randomBytes(32);
  const k = engine.keygen(seed);
  assert.deepEqual(k, wasm.keygen(seed));
  assert.deepEqual(engine.encapsulate(k.publicKey, m), wasm.encapsulate(k.publicKey, m));
});

test('both engines refuse a public key with a coefficient of q or more, and wrong lengths', () => {
  const { publicKey } = wasm.keygen(randomBytes(64));
  const m = randomBytes(32);
  for (const set of [
    (k: Uint8Array) => ((k[0] = 0xff), (k[1] = (k[1]! & 0xf0) | 0x0f)), // first coefficient 4095
    (k: Uint8Array) => ((k[1534] = 0xff), (k[1535] = 0xff)), // last coefficient 4095
  ]) {
    const bad = publicKey.slice();
    set(bad);
    assert.throws(() => checkMlKemPublicKey(bad), (e) => isProtocolError(e, 'BAD_KEY'));
    assert.throws(() => wasm.encapsulate(bad, m), (e) => isProtocolError(e, 'BAD_KEY'));
    assert.throws(() => nobleMlKem1024.encapsulate(bad, m));
    const kyber = KyberPublicKey.deserialize(Uint8Array.of(0x08, ...bad));
    assert.throws(() => kyber.encapsulate(nodeBackend()), (e) => isProtocolError(e, 'BAD_KEY'));
  }
  checkMlKemPublicKey(publicKey);
  assert.throws(() => wasm.encapsulate(publicKey.subarray(1), m), (e) => isProtocolError(e, 'BAD_KEY'));
  assert.throws(() => wasm.encapsulate(publicKey, m.subarray(1)), (e) => isProtocolError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => wasm.keygen(randomBytes(63)), (e) => isProtocolError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => wasm.decapsulate(randomBytes(1567), wasm.keygen(randomBytes(64)).secretKey), (e) => isProtocolError(e, 'DECODE'));
  // The engine still works after refusals.
  const k = wasm.keygen(randomBytes(64));
  assert.deepEqual(wasm.decapsulate(wasm.encapsulate(k.publicKey, m).cipherText, k.secretKey), wasm.encapsulate(k.publicKey, m).sharedSecret);
});

test('the Node backend carries the WebAssembly engine; over it, libsignal keys work and match noble', () => {
  const b = nodeBackend();
  assert.equal(b.mlKem1024?.name, 'pqclean-wasm');
  assert.equal(nodeBackend({ wasmKem: false }).mlKem1024, undefined);
  // Sessions with libsignal over this engine are covered by interop.test.ts; here, key material.
  for (let i = 0; i < 3; i++) {
    const theirs = ls.KEMKeyPair.generate();
    const pub = KyberPublicKey.deserialize(theirs.getPublicKey().serialize());
    const sec = KyberSecretKey.deserialize(theirs.getSecretKey().serialize());
    const { sharedSecret, ciphertext } = pub.encapsulate(b);
    assert.deepEqual(sec.decapsulate(ciphertext, b), sharedSecret);
    assert.deepEqual(sec.decapsulate(ciphertext), sharedSecret); // noble's engine
    const ours = KyberKeyPair.generate(b);
    assert.deepEqual(ls.KEMPublicKey.deserialize(ours.publicKey.serialize()).serialize(), ours.publicKey.serialize());
    const enc = ours.publicKey.encapsulate(nodeBackend({ wasmKem: false }));
    assert.deepEqual(ours.secretKey.decapsulate(enc.ciphertext, b), enc.sharedSecret);
  }
});
