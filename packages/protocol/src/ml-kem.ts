// ML-KEM-1024 (FIPS 203) engines under Kyber's round-3 wrapper (kyber.ts, DESIGN §2.1). The
// wrapper needs only the three deterministic operations below: every random input is passed in,
// so any correct engine gives the same bytes for the same inputs, and tests can compare engines.
// @noble/post-quantum is the default; a backend may carry a faster one (ml-kem-wasm.ts).
import { type KEMPrepared, ml_kem1024 } from '@noble/post-quantum/ml-kem.js';
import { fail } from './errors.ts';

export const ML_KEM_1024_PUBLIC_KEY_LENGTH = 1568;
export const ML_KEM_1024_SECRET_KEY_LENGTH = 3168;
export const ML_KEM_1024_CIPHERTEXT_LENGTH = 1568;
/** Bytes of randomness for a key pair (d ‖ z, FIPS 203 Algorithm 19). */
export const ML_KEM_KEYGEN_SEED_LENGTH = 64;
/** Bytes of the message m an encapsulation hides (FIPS 203 Algorithm 20). */
export const ML_KEM_MESSAGE_LENGTH = 32;
/** Offset of the embedded public key inside a secret key: dk_pke (1536) ‖ ek ‖ H(ek) ‖ z. */
export const EK_OFFSET_IN_SECRET = 1536;

export interface MlKem1024 {
  readonly name: string;
  /** Deterministic key generation from d ‖ z. */
  keygen(seed: Uint8Array): { publicKey: Uint8Array; secretKey: Uint8Array };
  /** Encapsulates message `m` (32 bytes). Throws on a public key that fails FIPS 203's check. */
  encapsulate(publicKey: Uint8Array, m: Uint8Array): { cipherText: Uint8Array; sharedSecret: Uint8Array };
  /** Decapsulates (implicit rejection on a bad ciphertext). */
  decapsulate(cipherText: Uint8Array, secretKey: Uint8Array): Uint8Array;
}

const Q = 3329;

/**
 * FIPS 203 §7.2 encapsulation key check: every 12-bit coefficient of t̂ is below q (the key is its
 * own canonical encoding). Engines that skip the check (PQClean's) get it here, so every engine
 * refuses the same keys.
 */
export function checkMlKemPublicKey(publicKey: Uint8Array): void {
  if (publicKey.length !== ML_KEM_1024_PUBLIC_KEY_LENGTH) fail('BAD_KEY', `ML-KEM-1024 public key must be ${ML_KEM_1024_PUBLIC_KEY_LENGTH} bytes`);
  // t̂ is the first 1536 bytes: pairs of 12-bit coefficients in 3 bytes, little-endian.
  for (let i = 0; i < EK_OFFSET_IN_SECRET; i += 3) {
    const b0 = publicKey[i]!;
    const b1 = publicKey[i + 1]!;
    const b2 = publicKey[i + 2]!;
    if ((b0 | ((b1 & 0x0f) << 8)) >= Q || ((b1 >> 4) | (b2 << 4)) >= Q) fail('BAD_KEY', 'ML-KEM-1024 public key is not canonical');
  }
}

// Noble's prepared keys (the expanded matrix Â) cached per key byte array: our key classes hand the
// engine the same Uint8Array for the life of a key, so a last-resort key expands Â once. A secret
// key is prepared through the public key embedded in it.
const prepared = new WeakMap<Uint8Array, KEMPrepared>();

function prepare(key: Uint8Array, publicKey: Uint8Array): KEMPrepared {
  let p = prepared.get(key);
  if (p === undefined) {
    p = ml_kem1024.prepare(publicKey);
    prepared.set(key, p);
  }
  return p;
}

/** @noble/post-quantum's ML-KEM-1024 (pure TypeScript). */
export const nobleMlKem1024: MlKem1024 = {
  name: 'noble',
  keygen: (seed) => ml_kem1024.keygen(seed),
  encapsulate: (publicKey, m) => prepare(publicKey, publicKey).encapsulate(m),
  decapsulate: (cipherText, secretKey) =>
    prepare(secretKey, secretKey.subarray(EK_OFFSET_IN_SECRET, EK_OFFSET_IN_SECRET + ML_KEM_1024_PUBLIC_KEY_LENGTH)).decapsulate(cipherText, secretKey),
};
