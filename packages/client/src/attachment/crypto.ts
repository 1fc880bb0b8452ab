/**
 * The primitives the attachment cipher needs, behind a small interface so the same code runs on
 * node:crypto (`nodeAttachmentCrypto` in `@tacit/client/node`) and on WebCrypto in browsers
 * (`webAttachmentCrypto`, here). Both pass the same tests (test/attachment-cipher.test.ts).
 *
 * AES-256-GCM is WebCrypto's own (native, hardware AES in every browser); SHA-256 is incremental
 * here, which WebCrypto's one-shot `digest` is not, so the browser hashes with @noble/hashes.
 */
import { sha256 } from '@noble/hashes/sha2.js';

/** AES-256-GCM under one key, one call per chunk. */
export interface ChunkCipher {
  /** Ciphertext ‖ 16-byte tag of `plaintext` under the 12-byte `nonce`. */
  seal(nonce: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array>;
  /** The plaintext, or null when the tag does not verify. Never throws for bad input. */
  open(nonce: Uint8Array, sealed: Uint8Array): Promise<Uint8Array | null>;
}

/** SHA-256 fed in pieces. */
export interface IncrementalHash {
  update(data: Uint8Array): void;
  /** The 32-byte digest; the hash cannot be used afterwards. */
  digest(): Uint8Array;
}

export interface AttachmentCrypto {
  readonly name: string;
  randomBytes(length: number): Uint8Array;
  /** A chunk cipher for a 32-byte AES-256 key. */
  chunkCipher(key: Uint8Array): Promise<ChunkCipher>;
  sha256(): IncrementalHash;
}

/** Copies into a fresh ArrayBuffer-backed array, the only kind WebCrypto's types accept. */
function own(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer ? (b as Uint8Array<ArrayBuffer>) : new Uint8Array(b);
}

/** WebCrypto (browsers, and Node's global `crypto`) for randomness and AES-GCM; @noble/hashes for SHA-256. */
export function webAttachmentCrypto(subtle: SubtleCrypto = globalThis.crypto.subtle): AttachmentCrypto {
  return {
    name: 'webcrypto',
    randomBytes(length) {
      const out = new Uint8Array(length);
      // getRandomValues fills at most 65,536 bytes per call.
      for (let at = 0; at < length; at += 65_536) globalThis.crypto.getRandomValues(out.subarray(at, Math.min(length, at + 65_536)));
      return out;
    },
    async chunkCipher(key) {
      // Non-extractable: page script can use the key for this attachment, not read it back.
      const k = await subtle.importKey('raw', own(key), { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
      return {
        async seal(nonce, plaintext) {
          return new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv: own(nonce), tagLength: 128 }, k, own(plaintext)));
        },
        async open(nonce, sealed) {
          try {
            return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv: own(nonce), tagLength: 128 }, k, own(sealed)));
          } catch {
            return null;
          }
        },
      };
    },
    sha256() {
      const h = sha256.create();
      return {
        update: (data) => void h.update(data),
        digest: () => h.digest(),
      };
    },
  };
}
