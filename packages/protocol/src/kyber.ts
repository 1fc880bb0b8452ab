// Kyber1024, round 3, as libsignal serializes it (DESIGN §2.1): type byte 0x08 before public keys
// (1 + 1568), secret keys (1 + 3168) and ciphertexts (1 + 1568). ML-KEM-1024 shares the key
// format; round 3 differs only in two hashes around it, applied here over whichever ML-KEM engine
// the backend carries (ml-kem.ts; @noble/post-quantum's when it carries none).
import { sha3_256, shake256 } from '@noble/hashes/sha3.js';
import { type CryptoBackend } from './backend.ts';
import { bytesEqual, concatBytes, toHex } from './bytes.ts';
import { fail, isProtocolError } from './errors.ts';
import { ML_KEM_KEYGEN_SEED_LENGTH, type MlKem1024, nobleMlKem1024 } from './ml-kem.ts';

export const KYBER_TYPE = 0x08;
export const KYBER1024_PUBLIC_KEY_LENGTH = 1568;
export const KYBER1024_SECRET_KEY_LENGTH = 3168;
export const KYBER1024_CIPHERTEXT_LENGTH = 1568;
export const KYBER_SHARED_SECRET_LENGTH = 32;

const inspect = Symbol.for('nodejs.util.inspect.custom');

type KemBackend = Pick<CryptoBackend, 'sha3_256' | 'shake256' | 'mlKem1024'>;

function engine(backend: KemBackend | undefined): MlKem1024 {
  return backend?.mlKem1024 ?? nobleMlKem1024;
}

function h(backend: KemBackend | undefined, data: Uint8Array): Uint8Array {
  return backend?.sha3_256 !== undefined ? backend.sha3_256(data) : sha3_256(data);
}

function kdf(backend: KemBackend | undefined, data: Uint8Array): Uint8Array {
  return backend?.shake256 !== undefined ? backend.shake256(data, KYBER_SHARED_SECRET_LENGTH) : shake256(data, { dkLen: KYBER_SHARED_SECRET_LENGTH });
}

function stripType(bytes: Uint8Array, bodyLength: number, what: string): Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.length !== bodyLength + 1) {
    fail('BAD_KEY', `${what} must be ${bodyLength + 1} bytes, got ${bytes?.length}`);
  }
  if (bytes[0] !== KYBER_TYPE) fail('BAD_KEY', `unknown KEM key type ${bytes[0]}`);
  return bytes.slice(1);
}

export class KyberPublicKey {
  readonly #k: Uint8Array;
  private constructor(k: Uint8Array) {
    this.#k = k;
  }
  static deserialize(bytes: Uint8Array): KyberPublicKey {
    return new KyberPublicKey(stripType(bytes, KYBER1024_PUBLIC_KEY_LENGTH, 'Kyber public key'));
  }
  serialize(): Uint8Array {
    return concatBytes(Uint8Array.of(KYBER_TYPE), this.#k);
  }
  equals(other: KyberPublicKey): boolean {
    return bytesEqual(this.#k, other.#k);
  }
  /** Encapsulate (round 3): returns the shared secret and the serialized ciphertext (1 + 1568). */
  encapsulate(backend: CryptoBackend): { sharedSecret: Uint8Array; ciphertext: Uint8Array } {
    const m = h(backend, backend.randomBytes(32));
    let res: { cipherText: Uint8Array; sharedSecret: Uint8Array };
    try {
      res = engine(backend).encapsulate(this.#k, m);
    } catch (e) {
      if (isProtocolError(e) && e.code !== 'BAD_KEY') throw e;
      return fail('BAD_KEY', 'invalid Kyber public key');
    }
    const sharedSecret = kdf(backend, concatBytes(res.sharedSecret, h(backend, res.cipherText)));
    return { sharedSecret, ciphertext: concatBytes(Uint8Array.of(KYBER_TYPE), res.cipherText) };
  }
  toString(): string {
    return `KyberPublicKey(${toHex(this.#k.subarray(0, 8))}…)`;
  }
  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'KyberPublicKey is not JSON-serializable; use serialize()');
  }
  [inspect](): string {
    return this.toString();
  }
}

export class KyberSecretKey {
  readonly #k: Uint8Array;
  private constructor(k: Uint8Array) {
    this.#k = k;
  }
  static deserialize(bytes: Uint8Array): KyberSecretKey {
    return new KyberSecretKey(stripType(bytes, KYBER1024_SECRET_KEY_LENGTH, 'Kyber secret key'));
  }
  serialize(): Uint8Array {
    return concatBytes(Uint8Array.of(KYBER_TYPE), this.#k);
  }
  /** Decapsulate (round 3) a serialized ciphertext (1 + 1568 bytes). */
  decapsulate(ciphertext: Uint8Array, backend?: KemBackend): Uint8Array {
    if (ciphertext.length !== KYBER1024_CIPHERTEXT_LENGTH + 1 || ciphertext[0] !== KYBER_TYPE) {
      fail('DECODE', `Kyber ciphertext must be ${KYBER1024_CIPHERTEXT_LENGTH + 1} bytes with type ${KYBER_TYPE}`);
    }
    const ct = ciphertext.subarray(1);
    let k: Uint8Array;
    try {
      k = engine(backend).decapsulate(ct, this.#k);
    } catch {
      return fail('BAD_KEY', 'invalid Kyber secret key');
    }
    return kdf(backend, concatBytes(k, h(backend, ct)));
  }
  toString(): string {
    return 'KyberSecretKey(<redacted>)';
  }
  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'KyberSecretKey is not JSON-serializable');
  }
  [inspect](): string {
    return this.toString();
  }
}

export class KyberKeyPair {
  readonly publicKey: KyberPublicKey;
  readonly secretKey: KyberSecretKey;
  constructor(publicKey: KyberPublicKey, secretKey: KyberSecretKey) {
    this.publicKey = publicKey;
    this.secretKey = secretKey;
  }
  static generate(backend: CryptoBackend): KyberKeyPair {
    const { publicKey, secretKey } = engine(backend).keygen(backend.randomBytes(ML_KEM_KEYGEN_SEED_LENGTH));
    return new KyberKeyPair(
      KyberPublicKey.deserialize(concatBytes(Uint8Array.of(KYBER_TYPE), publicKey)),
      KyberSecretKey.deserialize(concatBytes(Uint8Array.of(KYBER_TYPE), secretKey)),
    );
  }
  toString(): string {
    return `KyberKeyPair(${this.publicKey.toString()})`;
  }
  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'KyberKeyPair is not JSON-serializable');
  }
  [inspect](): string {
    return this.toString();
  }
}
