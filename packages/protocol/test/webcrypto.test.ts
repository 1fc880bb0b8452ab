// The WebCrypto curves (X25519 agreement, Ed25519 verification behind XEdDSA) agree with the
// synchronous backends on every input, including the refusals. Node 20's WebCrypto has both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { IdentityKeyPair, isProtocolError, KeyPair, portableBackend, PublicKey, webCryptoCurves, xeddsaVerifyKey, xeddsaVerifyKeyAsync } from '../src/index.ts';
import { nodeBackend } from '../src/node.ts';

const curves = await webCryptoCurves(globalThis.crypto.subtle);
const web = portableBackend({ webCrypto: curves });
const node = nodeBackend();

test('feature detection: both curves found in Node; none without a WebCrypto', async () => {
  assert.equal(typeof curves.x25519Async, 'function');
  assert.equal(typeof curves.ed25519VerifyAsync, 'function');
  assert.deepEqual(await webCryptoCurves(undefined), {});
});

test('X25519 through WebCrypto equals node:crypto; an all-zero result is NON_CONTRIBUTORY', async () => {
  for (let i = 0; i < 20; i++) {
    const a = KeyPair.generate(node);
    const b = KeyPair.generate(web);
    assert.deepEqual(await a.privateKey.agreeAsync(web, b.publicKey), b.privateKey.agree(node, a.publicKey));
    assert.deepEqual(await b.privateKey.agreeAsync(web, a.publicKey), a.privateKey.agree(node, b.publicKey));
  }
  const a = KeyPair.generate(web);
  // u = 0 and u = 1 are small-order points: every agreement with them is zero.
  for (const u of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]) {
    await assert.rejects(a.privateKey.agreeAsync(web, PublicKey.fromRaw(u)), (e) => isProtocolError(e, 'NON_CONTRIBUTORY'));
  }
  // Still works after a refusal.
  const b = KeyPair.generate(node);
  assert.deepEqual(await a.privateKey.agreeAsync(web, b.publicKey), b.privateKey.agree(node, a.publicKey));
});

test('XEdDSA through WebCrypto Ed25519 agrees with the synchronous verifiers on valid, tampered and malformed signatures', async () => {
  const id = IdentityKeyPair.generate(node);
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 64 }), fc.nat(63), fc.nat(7), async (msg, at, bit) => {
      const sig = id.sign(node, msg);
      assert.equal(await xeddsaVerifyKeyAsync(web, id.publicKey, msg, sig), true);
      const bad = sig.slice();
      bad[at] = bad[at]! ^ (1 << bit);
      const want = xeddsaVerifyKey(node, id.publicKey, msg, bad);
      assert.equal(want, xeddsaVerifyKey(portableBackend(), id.publicKey, msg, bad));
      assert.equal(await xeddsaVerifyKeyAsync(web, id.publicKey, msg, bad), want);
    }),
    { numRuns: 40 },
  );
  const msg = randomBytes(10);
  assert.equal(await xeddsaVerifyKeyAsync(web, id.publicKey, msg, new Uint8Array(63)), false);
  assert.equal(await xeddsaVerifyKeyAsync(web, IdentityKeyPair.generate(node).publicKey, msg, id.sign(node, msg)), false);
});
