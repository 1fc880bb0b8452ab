// The Node backend: node:crypto for X25519, hashes, HMAC, HKDF and AES (DESIGN §2.6: X25519 about
// 30x and HMAC about 2.5x faster than pure JS here). Imported only through `@tacit/protocol/node`.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  randomBytes,
  verify,
  type KeyObject,
} from 'node:crypto';
import { type CryptoBackend, clampPrivateKey } from './backend.ts';

// Key objects are the expensive part of node:crypto X25519 (a PKCS#8 DER import costs more than
// the agreement itself). Private keys are imported as JWK, which OpenSSL derives from `d` alone
// (the required `x` member is not used for a private import; we pass the base point), and both
// private and public key objects are cached per byte array: our key classes hand the backend the
// same Uint8Array for the life of a key, so a WeakMap keyed on it never outlives the key.
const BASE_POINT_B64 = Buffer.from([9, ...new Array<number>(31).fill(0)]).toString('base64url');
const privateObjects = new WeakMap<Uint8Array, KeyObject>();
const publicObjects = new WeakMap<Uint8Array, KeyObject>();

function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

function privateKeyObject(priv: Uint8Array): KeyObject {
  let k = privateObjects.get(priv);
  if (k === undefined) {
    k = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(priv), x: BASE_POINT_B64 }, format: 'jwk' });
    privateObjects.set(priv, k);
  }
  return k;
}

function publicKeyObject(pub: Uint8Array): KeyObject {
  let k = publicObjects.get(pub);
  if (k === undefined) {
    k = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(pub) }, format: 'jwk' });
    publicObjects.set(pub, k);
  }
  return k;
}

let basePoint: KeyObject | undefined;

function publicFromPrivate(priv: Uint8Array): Uint8Array {
  // X25519(priv, 9) is the public key; one agreement is cheaper than exporting a derived key.
  basePoint ??= createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: BASE_POINT_B64 }, format: 'jwk' });
  return u8(diffieHellman({ privateKey: privateKeyObject(priv), publicKey: basePoint }));
}

export function nodeBackend(): CryptoBackend {
  return {
    name: 'node',
    randomBytes: (n) => u8(randomBytes(n)),
    x25519GenerateKeyPair() {
      const privateKey = clampPrivateKey(u8(randomBytes(32)));
      return { privateKey, publicKey: publicFromPrivate(privateKey) };
    },
    x25519PublicFromPrivate: publicFromPrivate,
    x25519(priv, pub) {
      try {
        return u8(diffieHellman({ privateKey: privateKeyObject(priv), publicKey: publicKeyObject(pub) }));
      } catch {
        // OpenSSL refuses an all-zero shared secret; report it as zero for the caller to reject.
        return new Uint8Array(32);
      }
    },
    sha256: (d) => u8(createHash('sha256').update(d).digest()),
    sha512(...parts) {
      const h = createHash('sha512');
      for (const p of parts) h.update(p);
      return u8(h.digest());
    },
    hmacSha256(key, ...parts) {
      const h = createHmac('sha256', key);
      for (const p of parts) h.update(p);
      return u8(h.digest());
    },
    hkdfSha256: (ikm, salt, info, length) => new Uint8Array(hkdfSync('sha256', ikm, salt, info, length)),
    sha3_256: (d) => u8(createHash('sha3-256').update(d).digest()),
    shake256: (d, length) => u8(createHash('shake256', { outputLength: length }).update(d).digest()),
    ed25519Verify(publicKey, message, signature) {
      try {
        const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(publicKey) }, format: 'jwk' });
        return verify(null, message, key, signature);
      } catch {
        return false;
      }
    },
    aes256CbcEncrypt(key, iv, pt) {
      const c = createCipheriv('aes-256-cbc', key, iv);
      return u8(Buffer.concat([c.update(pt), c.final()]));
    },
    aes256CbcDecrypt(key, iv, ct) {
      if (ct.length === 0 || ct.length % 16 !== 0) return null;
      try {
        const d = createDecipheriv('aes-256-cbc', key, iv);
        return u8(Buffer.concat([d.update(ct), d.final()]));
      } catch {
        return null;
      }
    },
  };
}
