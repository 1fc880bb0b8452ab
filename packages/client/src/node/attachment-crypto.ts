/**
 * The attachment cipher's primitives on node:crypto (OpenSSL's AES-NI GCM and SHA-256), for the
 * CLI and other Node programs. The browser uses `webAttachmentCrypto`.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { AttachmentCrypto } from '../attachment/crypto.js';

const TAG_BYTES = 16;

function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function nodeAttachmentCrypto(): AttachmentCrypto {
  return {
    name: 'node',
    randomBytes: (n) => u8(randomBytes(n)),
    chunkCipher(key) {
      if (key.length !== 32) return Promise.reject(new RangeError('AES-256 needs a 32-byte key'));
      const k = Buffer.from(key);
      return Promise.resolve({
        seal(nonce, plaintext) {
          const c = createCipheriv('aes-256-gcm', k, nonce);
          const out = Buffer.allocUnsafe(plaintext.length + TAG_BYTES);
          let n = c.update(plaintext).copy(out, 0);
          n += c.final().copy(out, n);
          c.getAuthTag().copy(out, n);
          return Promise.resolve(u8(out));
        },
        open(nonce, sealed) {
          if (sealed.length < TAG_BYTES) return Promise.resolve(null);
          try {
            const d = createDecipheriv('aes-256-gcm', k, nonce);
            d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
            const body = d.update(sealed.subarray(0, sealed.length - TAG_BYTES));
            const tail = d.final();
            return Promise.resolve(u8(tail.length === 0 ? body : Buffer.concat([body, tail])));
          } catch {
            return Promise.resolve(null);
          }
        },
      });
    },
    sha256() {
      const h = createHash('sha256');
      return {
        update: (data) => void h.update(data),
        digest: () => u8(h.digest()),
      };
    },
  };
}
