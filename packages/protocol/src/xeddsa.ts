// XEdDSA (signal.org/docs/specifications/xeddsa), libsignal's variant: the signer does not force
// the Edwards sign bit to zero; instead it carries that bit in the top bit of signature byte 63,
// and the verifier rejects an `s` with any of its top three bits set.
import { ed25519 } from '@noble/curves/ed25519.js';
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

function invertP(a: bigint): bigint {
  // Fermat: a^(p-2) mod p.
  let result = 1n;
  let base = modP(a);
  let e = P - 2n;
  while (e > 0n) {
    if (e & 1n) result = (result * base) % P;
    base = (base * base) % P;
    e >>= 1n;
  }
  return result;
}

/** The Edwards point birationally equivalent to Montgomery u, with the given sign; null if none. */
function montgomeryToEdwards(u: Uint8Array, sign: number): InstanceType<typeof Point> | null {
  const uu = bytesToNumberLE(u) & ((1n << 255n) - 1n);
  const denom = modP(uu + 1n);
  if (denom === 0n) return null;
  const y = modP((uu - 1n) * invertP(denom));
  const enc = numberToBytesLE(y, 32);
  enc[31] = (enc[31] as number) | (sign << 7);
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

/** XEdDSA verify. Never throws: any malformed input is simply `false`. */
export function xeddsaVerifyKey(backend: Pick<CryptoBackend, 'sha512'>, publicKey: PublicKey, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) return false;
  if (!(message instanceof Uint8Array)) return false;
  const A = montgomeryToEdwards(publicKey.rawUnsafe, ((signature[63] as number) & 0x80) >> 7);
  if (A === null) return false;
  const capR = signature.subarray(0, 32);
  const sBytes = signature.slice(32, 64);
  sBytes[31] = (sBytes[31] as number) & 0x7f;
  if (((sBytes[31] as number) & 0xe0) !== 0) return false;
  const s = bytesToNumberLE(sBytes) % L;
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
  backend: Pick<CryptoBackend, 'sha512'> = portableSha512,
): boolean {
  let key: PublicKey;
  try {
    key = PublicKey.deserialize(publicKey);
  } catch {
    return false;
  }
  return xeddsaVerifyKey(backend, key, message, signature);
}

