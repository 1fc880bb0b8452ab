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
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { type CryptoBackend, clampPrivateKey } from './backend.ts';

// DER prefixes for raw X25519 keys (RFC 8410). Importing DER for our own private key and JWK for
// peers' public keys avoids the JWK export that DESIGN §2.6 warns about.
const PKCS8_X25519_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
]);

function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function privateKeyObject(priv: Uint8Array): KeyObject {
  const der = Buffer.allocUnsafe(48);
  der.set(PKCS8_X25519_PREFIX, 0);
  der.set(priv, 16);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

function publicKeyObject(pub: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(pub.buffer, pub.byteOffset, pub.byteLength).toString('base64url') },
    format: 'jwk',
  });
}

export function nodeBackend(): CryptoBackend {
  return {
    name: 'node',
    randomBytes: (n) => u8(randomBytes(n)),
    x25519GenerateKeyPair() {
      const { publicKey, privateKey } = generateKeyPairSync('x25519', {
        publicKeyEncoding: { type: 'spki', format: 'der' },
        privateKeyEncoding: { type: 'pkcs8', format: 'der' },
      });
      // Node's generated scalar is already clamped in use; store it clamped so serialized keys
      // match libsignal's (which clamps on construction).
      return { privateKey: clampPrivateKey(u8(privateKey.subarray(16, 48))), publicKey: u8(publicKey.subarray(12, 44)) };
    },
    x25519PublicFromPrivate(priv) {
      const der = createPublicKey(privateKeyObject(priv)).export({ type: 'spki', format: 'der' });
      return u8(der.subarray(12, 44));
    },
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
