// XEdDSA (signal.org/docs/specifications/xeddsa), libsignal's variant: the signer does not force
// the Edwards sign bit to zero; instead it carries that bit in the top bit of signature byte 63,
// and the verifier rejects an `s` with any of its top three bits set. We are slightly stricter
// than libsignal: an `s` ≥ L (a malleated copy of a valid signature) is refused, as RFC 8032 does,
// so each signature has exactly one encoding. Honest signers never produce one.
import { ed25519 } from '@noble/curves/ed25519.js';
import { invert } from '@noble/curves/abstract/modular.js';
import { sha512 as nobleSha512 } from '@noble/hashes/sha2.js';
import { type CryptoBackend } from './backend.ts';
import { bytesEqual, concatBytes } from './bytes.ts';
import { type PrivateKey, PublicKey } from './curve.ts';

export const SIGNATURE_LENGTH = 64;

const Point = ed25519.Point;
const P = 2n ** 255n - 19n;
const L = Point.Fn.ORDER;
// Without a backend, verification needs only SHA-512: noble's keeps the function isomorphic.
const portableSha512: Pick<CryptoBackend, 'sha512'> = { sha512: (...parts) => nobleSha512(concatBytes(...parts)) };
const HASH_PREFIX = new Uint8Array(32).fill(0xff);

function bytesToNumberLE(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i] as number);
  return n;
}

function numberToBytesLE(n: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function modP(a: bigint): bigint {
  const r = a % P;
  return r >= 0n ? r : r + P;
}

/**
 * The encoding of the Edwards point birationally equivalent to Montgomery u (y = (u-1)/(u+1)),
 * with the given sign bit; null when u = -1 has no equivalent.
 */
// The Edwards y for a Montgomery key costs a field inversion; a bundle's two signatures (and every
// upload a server checks) share one identity key, so remember y per key (keyed on the key's own
// byte array, which lives exactly as long as the PublicKey).
const edwardsY = new WeakMap<Uint8Array, Uint8Array | null>();

function montgomeryToEdwardsBytes(u: Uint8Array, sign: number): Uint8Array | null {
  let y = edwardsY.get(u);
  if (y === undefined) {
    const uu = bytesToNumberLE(u) & ((1n << 255n) - 1n);
    const denom = modP(uu + 1n);
    y = denom === 0n ? null : numberToBytesLE(modP((uu - 1n) * invert(denom, P)), 32);
    edwardsY.set(u, y);
  }
  if (y === null) return null;
  const enc = y.slice();
  enc[31] = (enc[31] as number) | (sign << 7);
  return enc;
}

function montgomeryToEdwards(u: Uint8Array, sign: number): InstanceType<typeof Point> | null {
  const enc = montgomeryToEdwardsBytes(u, sign);
  if (enc === null) return null;
  try {
    return Point.fromBytes(enc);
  } catch {
    return null;
  }
}

/** XEdDSA sign with libsignal's encoding. `random` must be 64 fresh random bytes. */
export function xeddsaSign(backend: CryptoBackend, privateKey: PrivateKey, message: Uint8Array, random?: Uint8Array): Uint8Array {
  const z = random ?? backend.randomBytes(64);
  const keyBytes = privateKey.rawUnsafe;
  const a = bytesToNumberLE(keyBytes) % L;
  const r = bytesToNumberLE(backend.sha512(HASH_PREFIX, keyBytes, message, z)) % L;
  const capR = Point.BASE.multiply(r === 0n ? L : r).toBytes();
  const capA = Point.BASE.multiply(a === 0n ? L : a).toBytes();
  const signBit = (capA[31] as number) & 0x80;
  const h = bytesToNumberLE(backend.sha512(capR, capA, message)) % L;
  const s = (h * a + r) % L;
  const sig = concatBytes(capR, numberToBytesLE(s, 32));
  sig[63] = ((sig[63] as number) & 0x7f) | signBit;
  return sig;
}

/** The sign bit and `s` (sign bit cleared) of a well-formed signature; null for a malformed one. */
function splitSignature(message: Uint8Array, signature: Uint8Array): { sign: number; sBytes: Uint8Array } | null {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) return null;
  if (!(message instanceof Uint8Array)) return null;
  const sign = ((signature[63] as number) & 0x80) >> 7;
  const sBytes = signature.slice(32, 64);
  sBytes[31] = (sBytes[31] as number) & 0x7f;
  if (((sBytes[31] as number) & 0xe0) !== 0) return null;
  return { sign, sBytes };
}

/**
 * The Ed25519 public key and signature that an XEdDSA signature is checked as (same equation,
 * sB = R + hA over the encoded A). RFC 8032 also requires s < L, which libsignal does not; honest
 * signers always produce s < L. Null when the key has no Edwards form.
 */
function asEd25519(publicKey: PublicKey, signature: Uint8Array, sign: number, sBytes: Uint8Array): { capA: Uint8Array; sig: Uint8Array } | null {
  const capA = montgomeryToEdwardsBytes(publicKey.rawUnsafe, sign);
  return capA === null ? null : { capA, sig: concatBytes(signature.subarray(0, 32), sBytes) };
}

/**
 * XEdDSA verify through the backend's asynchronous Ed25519 (WebCrypto) where it has one, else as
 * `xeddsaVerifyKey`. Never rejects: any malformed input is simply `false`.
 */
export async function xeddsaVerifyKeyAsync(
  backend: Pick<CryptoBackend, 'sha512' | 'ed25519Verify' | 'ed25519VerifyAsync'>,
  publicKey: PublicKey,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (backend.ed25519VerifyAsync === undefined) return xeddsaVerifyKey(backend, publicKey, message, signature);
  const split = splitSignature(message, signature);
  if (split === null) return false;
  const ed = asEd25519(publicKey, signature, split.sign, split.sBytes);
  return ed !== null && backend.ed25519VerifyAsync(ed.capA, message, ed.sig);
}

/** XEdDSA verify. Never throws: any malformed input is simply `false`. */
export function xeddsaVerifyKey(
  backend: Pick<CryptoBackend, 'sha512' | 'ed25519Verify'>,
  publicKey: PublicKey,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  const split = splitSignature(message, signature);
  if (split === null) return false;
  const { sign, sBytes } = split;
  if (backend.ed25519Verify !== undefined) {
    const ed = asEd25519(publicKey, signature, sign, sBytes);
    return ed !== null && backend.ed25519Verify(ed.capA, message, ed.sig);
  }
  const A = montgomeryToEdwards(publicKey.rawUnsafe, sign);
  if (A === null) return false;
  const capR = signature.subarray(0, 32);
  const s = bytesToNumberLE(sBytes);
  if (s >= L) return false; // as RFC 8032 and the native path: one encoding per signature
  const capA = A.toBytes();
  const h = bytesToNumberLE(backend.sha512(capR, capA, message)) % L;
  // R' = sB - hA; compare encodings (libsignal compares compressed points byte for byte).
  const check = Point.BASE.multiplyUnsafe(s).subtract(A.multiplyUnsafe(h));
  return bytesEqual(check.toBytes(), capR);
}

/**
 * Verify an XEdDSA signature by a serialized (33-byte, 0x05-prefixed) public key, as the server
 * does at key upload. Never throws.
 */
export function xeddsaVerify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  backend: Pick<CryptoBackend, 'sha512' | 'ed25519Verify'> = portableSha512,
): boolean {
  let key: PublicKey;
  try {
    key = PublicKey.deserialize(publicKey);
  } catch {
    return false;
  }
  return xeddsaVerifyKey(backend, key, message, signature);
}

