// Key derivation for PQXDH and the Double Ratchet (DESIGN §2.2–2.3), with the info strings that
// libsignal uses.
import { type CryptoBackend } from './backend.ts';
import { utf8Encode } from './bytes.ts';

const INFO_PQXDH = utf8Encode('WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024');
const INFO_RATCHET = utf8Encode('WhisperRatchet');
const INFO_MESSAGE_KEYS = utf8Encode('WhisperMessageKeys');
const EMPTY = new Uint8Array(0);
const MESSAGE_KEY_SEED = Uint8Array.of(0x01);
const CHAIN_KEY_SEED = Uint8Array.of(0x02);

export interface MessageKeys {
  readonly cipherKey: Uint8Array;
  readonly macKey: Uint8Array;
  readonly iv: Uint8Array;
  readonly counter: number;
}

/** PQXDH: HKDF over the concatenated secrets → root key, first chain key (and 32 bytes for SPQR, unused). */
export function derivePqxdhKeys(backend: CryptoBackend, secrets: Uint8Array): { rootKey: Uint8Array; chainKey: Uint8Array } {
  const out = backend.hkdfSha256(secrets, EMPTY, INFO_PQXDH, 96);
  return { rootKey: out.slice(0, 32), chainKey: out.slice(32, 64) };
}

/** DR §3.3 KDF_RK: new root key and chain key from the old root key and a DH output. */
export function kdfRk(backend: CryptoBackend, rootKey: Uint8Array, dhOut: Uint8Array): { rootKey: Uint8Array; chainKey: Uint8Array } {
  const out = backend.hkdfSha256(dhOut, rootKey, INFO_RATCHET, 64);
  return { rootKey: out.slice(0, 32), chainKey: out.slice(32, 64) };
}

/** DR §3.3 KDF_CK: the next chain key. */
export function kdfCkNext(backend: CryptoBackend, chainKey: Uint8Array): Uint8Array {
  return backend.hmacSha256(chainKey, CHAIN_KEY_SEED);
}

/** DR §3.3 KDF_CK: the message keys for the chain key's current index. */
export function kdfCkMessageKeys(backend: CryptoBackend, chainKey: Uint8Array, counter: number): MessageKeys {
  const seed = backend.hmacSha256(chainKey, MESSAGE_KEY_SEED);
  const out = backend.hkdfSha256(seed, EMPTY, INFO_MESSAGE_KEYS, 80);
  return { cipherKey: out.subarray(0, 32), macKey: out.subarray(32, 64), iv: out.subarray(64, 80), counter };
}
