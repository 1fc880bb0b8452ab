// DESIGN §2.6: the protocol takes its primitives from a small backend interface, so the same code
// runs on node:crypto (fast) and on @noble/* (portable, browsers). XEdDSA is built on @noble in
// both; Kyber's ML-KEM core is @noble's unless the backend carries a faster engine.
import type { MlKem1024 } from './ml-kem.ts';

export interface X25519KeyPairBytes {
  /** 32-byte private scalar, clamped. */
  readonly privateKey: Uint8Array;
  /** 32-byte Montgomery u-coordinate. */
  readonly publicKey: Uint8Array;
}

export interface CryptoBackend {
  readonly name: string;
  randomBytes(length: number): Uint8Array;
  /** Fresh X25519 key pair with a clamped private key. */
  x25519GenerateKeyPair(): X25519KeyPairBytes;
  x25519PublicFromPrivate(privateKey: Uint8Array): Uint8Array;
  /** Raw X25519; the caller rejects an all-zero result. */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  sha256(data: Uint8Array): Uint8Array;
  sha512(...parts: Uint8Array[]): Uint8Array;
  hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
  /** HKDF-SHA256 (RFC 5869); an empty salt means HashLen zero bytes. */
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  aes256CbcEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** Returns null when the padding is invalid. */
  aes256CbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array | null;
  /**
   * Optional native Ed25519 verification (RFC 8032) of a 32-byte encoded point. XEdDSA verification
   * reduces to it once the Montgomery key is mapped to Edwards form; without it, the generic
   * (pure TypeScript) path is used. Never throws.
   */
  ed25519Verify?(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  /**
   * Optional native Ed25519 key generation (RFC 8032): a random 32-byte seed and its encoded
   * public point. Sender-key signing keys are made from one (seeded-signing-key.ts); @noble's
   * point multiplication otherwise.
   */
  ed25519GenerateKeyPair?(): { seed: Uint8Array; publicKey: Uint8Array };
  /**
   * Optional native Ed25519 signing (RFC 8032, deterministic nonce) with a 32-byte seed. A sender
   * key made from a seed signs through it (an XEdDSA-valid signature, see seeded-signing-key.ts);
   * without it, XEdDSA on @noble signs.
   */
  ed25519Sign?(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** Optional native SHA3-256 for Kyber's round-3 wrapper; @noble/hashes otherwise. */
  sha3_256?(data: Uint8Array): Uint8Array;
  /** Optional native SHAKE256 for Kyber's round-3 wrapper; @noble/hashes otherwise. */
  shake256?(data: Uint8Array, length: number): Uint8Array;
  /**
   * Optional asynchronous X25519 (a browser's WebCrypto), used for every agreement where present;
   * same contract as `x25519` (an all-zero result for the caller to reject).
   */
  x25519Async?(privateKey: Uint8Array, publicKey: Uint8Array): Promise<Uint8Array>;
  /** Optional asynchronous Ed25519 verification (a browser's WebCrypto); preferred where present. Never rejects. */
  ed25519VerifyAsync?(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
  /** Optional ML-KEM-1024 engine under Kyber's round-3 wrapper; @noble/post-quantum's otherwise. */
  readonly mlKem1024?: MlKem1024;
}

/** Clamp an X25519 scalar (RFC 7748 §5), returning a copy. */
export function clampPrivateKey(key: Uint8Array): Uint8Array {
  const k = key.slice();
  k[0] = (k[0] as number) & 248;
  k[31] = ((k[31] as number) & 127) | 64;
  return k;
}
