// Curve25519 keys as Signal encodes them (DESIGN §2.1): a public key on the wire is 33 bytes,
// type byte 0x05 then the 32-byte Montgomery u; a private key is a 32-byte clamped scalar.
import { type CryptoBackend, clampPrivateKey } from './backend.ts';
import { bytesEqual, concatBytes, isAllZero, toHex } from './bytes.ts';
import { fail } from './errors.ts';

export const DJB_TYPE = 0x05;
export const CURVE_PUBLIC_KEY_LENGTH = 33;
export const CURVE_PRIVATE_KEY_LENGTH = 32;

// p = 2^255 - 19, little-endian bytes, for the canonical-encoding check.
const P_LE = Uint8Array.from([
  0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
]);

/** True when the 32 little-endian bytes encode an integer < p (top bit clear). */
function isCanonicalU(u: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const a = u[i] as number;
    const b = P_LE[i] as number;
    if (a < b) return true;
    if (a > b) return false;
  }
  return false; // equal to p
}

const inspect = Symbol.for('nodejs.util.inspect.custom');

export class PublicKey {
  readonly #u: Uint8Array;
  /** 0x05 || u, computed once: every message's MAC covers two serialized identity keys. */
  readonly #serialized: Uint8Array;
  private constructor(u: Uint8Array) {
    this.#u = u;
    this.#serialized = concatBytes(Uint8Array.of(DJB_TYPE), u);
  }

  /** Parse a 33-byte serialized key (0x05 || u). */
  static deserialize(bytes: Uint8Array): PublicKey {
    if (!(bytes instanceof Uint8Array) || bytes.length !== CURVE_PUBLIC_KEY_LENGTH) {
      fail('BAD_KEY', `curve public key must be ${CURVE_PUBLIC_KEY_LENGTH} bytes, got ${bytes?.length}`);
    }
    if (bytes[0] !== DJB_TYPE) fail('BAD_KEY', `unknown curve key type ${bytes[0]}`);
    return PublicKey.fromRaw(bytes.subarray(1));
  }

  /** Wrap a raw 32-byte u-coordinate. */
  static fromRaw(u: Uint8Array): PublicKey {
    if (u.length !== 32) fail('BAD_KEY', `raw curve public key must be 32 bytes, got ${u.length}`);
    if (!isCanonicalU(u)) fail('BAD_KEY', 'non-canonical curve public key');
    return new PublicKey(u.slice());
  }

  serialize(): Uint8Array {
    return this.#serialized.slice();
  }

  /** Internal: the serialized form without a copy (never mutate). */
  get serializedUnsafe(): Uint8Array {
    return this.#serialized;
  }

  /** The raw 32-byte u-coordinate. */
  get raw(): Uint8Array {
    return this.#u.slice();
  }

  /** Internal: the raw bytes without a copy (never mutate). */
  get rawUnsafe(): Uint8Array {
    return this.#u;
  }

  equals(other: PublicKey): boolean {
    return bytesEqual(this.#u, other.#u);
  }

  toString(): string {
    return `PublicKey(${toHex(this.#u)})`;
  }

  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'PublicKey is not JSON-serializable; use serialize()');
  }

  [inspect](): string {
    return this.toString();
  }
}

export class PrivateKey {
  readonly #k: Uint8Array;
  private constructor(k: Uint8Array) {
    this.#k = k;
  }

  static deserialize(bytes: Uint8Array): PrivateKey {
    if (!(bytes instanceof Uint8Array) || bytes.length !== CURVE_PRIVATE_KEY_LENGTH) {
      fail('BAD_KEY', `curve private key must be ${CURVE_PRIVATE_KEY_LENGTH} bytes`);
    }
    return new PrivateKey(clampPrivateKey(bytes));
  }

  static generate(backend: CryptoBackend): PrivateKey {
    return PrivateKey.adoptGenerated(backend.x25519GenerateKeyPair().privateKey);
  }

  /**
   * Internal: take ownership of a backend-generated (already clamped) scalar without copying, so
   * a backend may cache per-key objects keyed on this very array.
   */
  static adoptGenerated(clamped: Uint8Array): PrivateKey {
    if (clamped.length !== CURVE_PRIVATE_KEY_LENGTH) fail('BAD_KEY', 'curve private key must be 32 bytes');
    return new PrivateKey(clamped);
  }

  serialize(): Uint8Array {
    return this.#k.slice();
  }

  /** Internal: the clamped scalar bytes without a copy (never mutate, never log). */
  get rawUnsafe(): Uint8Array {
    return this.#k;
  }

  publicKey(backend: CryptoBackend): PublicKey {
    return PublicKey.fromRaw(backend.x25519PublicFromPrivate(this.#k));
  }

  /** X25519 agreement; a non-contributory (all-zero) result is an error. */
  agree(backend: CryptoBackend, their: PublicKey): Uint8Array {
    const shared = backend.x25519(this.#k, their.rawUnsafe);
    if (isAllZero(shared)) fail('NON_CONTRIBUTORY', 'X25519 result is all zeros');
    return shared;
  }

  /** `agree` through the backend's asynchronous X25519 where it has one (WebCrypto). */
  async agreeAsync(backend: CryptoBackend, their: PublicKey): Promise<Uint8Array> {
    if (backend.x25519Async === undefined) return this.agree(backend, their);
    const shared = await backend.x25519Async(this.#k, their.rawUnsafe);
    if (isAllZero(shared)) fail('NON_CONTRIBUTORY', 'X25519 result is all zeros');
    return shared;
  }

  toString(): string {
    return 'PrivateKey(<redacted>)';
  }

  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'PrivateKey is not JSON-serializable');
  }

  [inspect](): string {
    return this.toString();
  }
}

export class KeyPair {
  readonly publicKey: PublicKey;
  readonly privateKey: PrivateKey;
  constructor(publicKey: PublicKey, privateKey: PrivateKey) {
    this.publicKey = publicKey;
    this.privateKey = privateKey;
  }

  static generate(backend: CryptoBackend): KeyPair {
    const kp = backend.x25519GenerateKeyPair();
    return new KeyPair(PublicKey.fromRaw(kp.publicKey), PrivateKey.adoptGenerated(kp.privateKey));
  }

  static fromPrivate(backend: CryptoBackend, privateKey: PrivateKey): KeyPair {
    return new KeyPair(privateKey.publicKey(backend), privateKey);
  }

  toString(): string {
    return `KeyPair(${this.publicKey.toString()})`;
  }

  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'KeyPair is not JSON-serializable');
  }

  [inspect](): string {
    return this.toString();
  }
}
