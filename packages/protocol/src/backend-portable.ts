// The portable backend: pure TypeScript from @noble/*, for browsers and anywhere node:crypto is
// absent. Slower than node:crypto but identical in output. An ML-KEM engine may be passed in
// (the WebAssembly one, instantiated by the caller: ml-kem-wasm.ts); @noble/post-quantum's otherwise.
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { cbc } from '@noble/ciphers/aes.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { type CryptoBackend, clampPrivateKey } from './backend.ts';
import { concatBytes } from './bytes.ts';
import type { MlKem1024 } from './ml-kem.ts';
import type { WebCryptoCurves } from './webcrypto.ts';

const ORDER = ed25519.Point.Fn.ORDER;

/**
 * X25519 public key = the Montgomery u of [k]B. The Edwards base point has noble's precomputed
 * tables, so [k]B there and its birational map to u (RFC 7748 §4.1, noble's `toMontgomery`) cost
 * about half of a Montgomery ladder from u = 9, for the same bytes (tested against the ladder and
 * node:crypto). k is clamped, so [k]B = [k mod L]B.
 */
function publicFromPrivate(privateKey: Uint8Array): Uint8Array {
  let k = 0n;
  for (let i = 31; i >= 0; i--) k = (k << 8n) | BigInt(clampByte(privateKey, i));
  return ed25519.utils.toMontgomery(ed25519.Point.BASE.multiply(k % ORDER).toBytes());
}

function clampByte(k: Uint8Array, i: number): number {
  const b = k[i] as number;
  return i === 0 ? b & 248 : i === 31 ? (b & 127) | 64 : b;
}

export interface PortableBackendOptions {
  /** Kyber's ML-KEM-1024 engine (e.g. from `instantiateMlKem1024`); @noble/post-quantum's when absent. */
  mlKem1024?: MlKem1024;
  /** The browser's curves, from `webCryptoCurves(crypto.subtle)`; @noble's for what is absent. */
  webCrypto?: WebCryptoCurves;
}

export function portableBackend(options: PortableBackendOptions = {}): CryptoBackend {
  return {
    name: 'portable',
    ...(options.mlKem1024 !== undefined ? { mlKem1024: options.mlKem1024 } : {}),
    ...(options.webCrypto?.x25519Async !== undefined ? { x25519Async: options.webCrypto.x25519Async } : {}),
    ...(options.webCrypto?.ed25519VerifyAsync !== undefined ? { ed25519VerifyAsync: options.webCrypto.ed25519VerifyAsync } : {}),
    randomBytes: (n) => randomBytes(n),
    x25519GenerateKeyPair() {
      const privateKey = clampPrivateKey(randomBytes(32));
      return { privateKey, publicKey: publicFromPrivate(privateKey) };
    },
    x25519PublicFromPrivate: publicFromPrivate,
    x25519(priv, pub) {
      // noble throws on an all-zero result; the caller maps zero to NON_CONTRIBUTORY, so return it.
      try {
        return x25519.getSharedSecret(priv, pub);
      } catch {
        return new Uint8Array(32);
      }
    },
    sha256: (d) => sha256(d),
    sha512: (...parts) => (parts.length === 1 ? sha512(parts[0] as Uint8Array) : sha512(concatBytes(...parts))),
    hmacSha256: (key, ...parts) => hmac(sha256, key, parts.length === 1 ? (parts[0] as Uint8Array) : concatBytes(...parts)),
    hkdfSha256: (ikm, salt, info, length) => hkdf(sha256, ikm, salt.length === 0 ? undefined : salt, info, length),
    aes256CbcEncrypt: (key, iv, pt) => cbc(key, iv).encrypt(pt),
    aes256CbcDecrypt(key, iv, ct) {
      if (ct.length === 0 || ct.length % 16 !== 0) return null;
      try {
        return cbc(key, iv).decrypt(ct);
      } catch {
        return null;
      }
    },
  };
}
