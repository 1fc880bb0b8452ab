// Sender-key signing keys that a native Ed25519 (node:crypto) can sign for, with signatures every
// XEdDSA verifier accepts (ours, libsignal's). Only a protocol construction: the primitives are the
// backend's Ed25519 (RFC 8032) or @noble's, and the X25519 base-point multiplication.
//
// Why it holds. An Ed25519 key is a 32-byte seed; its scalar is a = clamp(SHA-512(seed)[0..32])
// and its public point A = [a]B. A clamped scalar is a valid X25519 private key, and its X25519
// public key is the Montgomery u of [a]B = A. XEdDSA verification (libsignal's curve25519.rs
// `verify_signature`, and ours) maps u back to the Edwards point with the sign bit carried in the
// top bit of signature byte 63, then checks R = [s]B − [h]A with h = SHA-512(R ‖ A ‖ M) over the
// encoded A: exactly Ed25519's equation. An Ed25519 signature has s < L < 2^253, so byte 63's top
// bit is 0 and the verifier picks the point with sign bit 0; we therefore keep only seeds whose A
// has sign bit 0 (about half; a fresh seed is drawn otherwise), so the point it picks is A itself.
// Standard XEdDSA verifiers (which always take sign bit 0) accept the signatures too.
//
// The nonce is Ed25519's deterministic one (SHA-512 of the seed's second half and the message)
// rather than XEdDSA's randomized one; RFC 8032 §5.1.6 makes that safe. The record keeps the
// clamped scalar as the signing private key (so libsignal, or a backend without native Ed25519,
// signs with XEdDSA from it as before) and the seed in an extra field (sender-key.ts).
import { ed25519 } from '@noble/curves/ed25519.js';
import { clampPrivateKey, type CryptoBackend } from './backend.ts';
import { bytesEqual } from './bytes.ts';
import { KeyPair, PrivateKey } from './curve.ts';
import { fail } from './errors.ts';
import { xeddsaSign } from './xeddsa.ts';

/** An Ed25519 seed (RFC 8032 §5.1.5: the 32-byte private key). */
export const SIGNING_SEED_LENGTH = 32;

/**
 * Seeds drawn before giving up on a sign-bit-0 point. Each draw succeeds with probability 1/2, so
 * 64 failures in a row (2^-64) mean a broken random source or backend, not bad luck.
 */
export const MAX_SIGNING_SEED_ATTEMPTS = 64;

/** A sender-key signing key pair and the seed it was derived from. */
export interface SeededSigningKey {
  readonly keyPair: KeyPair;
  readonly seed: Uint8Array;
}

/** What a sender-key message is signed with: the private scalar, and the seed when the key has one. */
export interface SenderSigningKey {
  readonly privateKey: PrivateKey;
  readonly seed: Uint8Array | null;
}

/** The X25519 private scalar of an Ed25519 seed: clamp(SHA-512(seed)[0..32]). */
function scalarOfSeed(backend: Pick<CryptoBackend, 'sha512'>, seed: Uint8Array): Uint8Array {
  return clampPrivateKey(backend.sha512(seed).subarray(0, 32));
}

/** A fresh seed and its encoded Edwards point, from the backend's native Ed25519 where it has one. */
function generateEd25519(backend: CryptoBackend): { seed: Uint8Array; publicKey: Uint8Array } {
  if (backend.ed25519GenerateKeyPair !== undefined) return backend.ed25519GenerateKeyPair();
  const seed = backend.randomBytes(SIGNING_SEED_LENGTH);
  return { seed, publicKey: ed25519.getPublicKey(seed) };
}

/** A new sender-key signing key whose Ed25519 point has sign bit 0 (see the top of this file). */
export function generateSeededSigningKey(backend: CryptoBackend): SeededSigningKey {
  for (let attempt = 0; attempt < MAX_SIGNING_SEED_ATTEMPTS; attempt++) {
    const { seed, publicKey } = generateEd25519(backend);
    if (((publicKey[31] as number) & 0x80) !== 0) continue;
    const privateKey = PrivateKey.deserialize(scalarOfSeed(backend, seed));
    return { keyPair: new KeyPair(privateKey.publicKey(backend), privateKey), seed };
  }
  return fail('INVALID_ARGUMENT', `no signing seed with an even point in ${MAX_SIGNING_SEED_ATTEMPTS} draws`);
}

/** Whether `seed` is the seed of `privateKey` (constant time in the key bytes). */
export function seedMatchesKey(backend: Pick<CryptoBackend, 'sha512'>, seed: Uint8Array, privateKey: PrivateKey): boolean {
  return seed.length === SIGNING_SEED_LENGTH && bytesEqual(scalarOfSeed(backend, seed), privateKey.rawUnsafe);
}

/**
 * Sign `message` for a sender key: natively from the seed when there is one and the backend has
 * Ed25519 signing, else XEdDSA from the private scalar (@noble). A seed that is not the private
 * key's (a damaged record) is BAD_STATE rather than a signature no one accepts.
 */
export function signWithSenderKey(backend: CryptoBackend, key: SenderSigningKey, message: Uint8Array): Uint8Array {
  if (key.seed === null || backend.ed25519Sign === undefined) return xeddsaSign(backend, key.privateKey, message);
  if (!seedMatchesKey(backend, key.seed, key.privateKey)) return fail('BAD_STATE', 'sender key signing seed does not match its private key');
  return backend.ed25519Sign(key.seed, message);
}
