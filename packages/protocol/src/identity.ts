// Identity keys, registration ids and pre-key records (DESIGN §2.1–2.2). Pre-key signatures are
// XEdDSA over the full serialized public key, type byte included.
import { type CryptoBackend } from './backend.ts';
import { concatBytes, fromBase64, toBase64, utf8Decode, utf8Encode } from './bytes.ts';
import { KeyPair, PrivateKey, PublicKey } from './curve.ts';
import { fail, ProtocolError } from './errors.ts';
import { KyberKeyPair, KyberPublicKey, KyberSecretKey } from './kyber.ts';
import { xeddsaSign, xeddsaVerifyKey, xeddsaVerifyKeyAsync } from './xeddsa.ts';

const inspect = Symbol.for('nodejs.util.inspect.custom');

/** Largest registration id libsignal generates (14 bits, 1..16380). */
export const MAX_REGISTRATION_ID = 16380;
/** Pre-key ids are 24-bit on the wire in Signal's apps; we accept any uint32 but generate below this. */
export const MAX_PRE_KEY_ID = 0xffffff;

export function generateRegistrationId(backend: CryptoBackend): number {
  const b = backend.randomBytes(2);
  return ((((b[0] as number) << 8) | (b[1] as number)) % MAX_REGISTRATION_ID) + 1;
}

export class IdentityKeyPair {
  readonly publicKey: PublicKey;
  readonly privateKey: PrivateKey;
  constructor(publicKey: PublicKey, privateKey: PrivateKey) {
    this.publicKey = publicKey;
    this.privateKey = privateKey;
  }
  static generate(backend: CryptoBackend): IdentityKeyPair {
    const kp = KeyPair.generate(backend);
    return new IdentityKeyPair(kp.publicKey, kp.privateKey);
  }
  sign(backend: CryptoBackend, message: Uint8Array): Uint8Array {
    return xeddsaSign(backend, this.privateKey, message);
  }
  /** 33-byte public key followed by the 32-byte private key. */
  serialize(): Uint8Array {
    return concatBytes(this.publicKey.serialize(), this.privateKey.serialize());
  }
  static deserialize(bytes: Uint8Array): IdentityKeyPair {
    if (!(bytes instanceof Uint8Array) || bytes.length !== 65) fail('BAD_STATE', 'identity key pair must be 65 bytes');
    return new IdentityKeyPair(PublicKey.deserialize(bytes.subarray(0, 33)), PrivateKey.deserialize(bytes.subarray(33)));
  }
  toString(): string {
    return `IdentityKeyPair(${this.publicKey.toString()})`;
  }
  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'IdentityKeyPair is not JSON-serializable; use serialize()');
  }
  [inspect](): string {
    return this.toString();
  }
}

// Records persist as versioned JSON with base64 fields: readable, stable, and easy to migrate.
const RECORD_VERSION = 1;

function encodeRecord(kind: string, fields: Record<string, string | number>): Uint8Array {
  return utf8Encode(JSON.stringify({ v: RECORD_VERSION, kind, ...fields }));
}

function decodeRecord(bytes: Uint8Array, kind: string): Record<string, unknown> {
  let obj: unknown;
  try {
    obj = JSON.parse(utf8Decode(bytes));
  } catch {
    return fail('BAD_STATE', `${kind} record is not valid JSON`);
  }
  if (typeof obj !== 'object' || obj === null) return fail('BAD_STATE', `${kind} record is not an object`);
  const o = obj as Record<string, unknown>;
  if (o.v !== RECORD_VERSION || o.kind !== kind) fail('BAD_STATE', `${kind} record has an unknown version or kind`);
  return o;
}

function field(o: Record<string, unknown>, name: string): Uint8Array {
  const v = o[name];
  if (typeof v !== 'string') return fail('BAD_STATE', `record field ${name} missing`);
  try {
    return fromBase64(v);
  } catch {
    return fail('BAD_STATE', `record field ${name} is not base64`);
  }
}

function intField(o: Record<string, unknown>, name: string): number {
  const v = o[name];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return fail('BAD_STATE', `record field ${name} invalid`);
  return v;
}

function wrapState<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ProtocolError) throw e.code === 'BAD_STATE' ? e : new ProtocolError('BAD_STATE', e.message);
    throw new ProtocolError('BAD_STATE', 'malformed record');
  }
}

function checkId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) fail('INVALID_ARGUMENT', 'key id must be a uint32');
}

/** A one-time EC pre-key. */
export class PreKeyRecord {
  readonly id: number;
  readonly keyPair: KeyPair;
  constructor(id: number, keyPair: KeyPair) {
    checkId(id);
    this.id = id;
    this.keyPair = keyPair;
  }
  get publicKey(): PublicKey {
    return this.keyPair.publicKey;
  }
  serialize(): Uint8Array {
    return encodeRecord('prekey', {
      id: this.id,
      pub: toBase64(this.keyPair.publicKey.serialize()),
      priv: toBase64(this.keyPair.privateKey.serialize()),
    });
  }
  static deserialize(bytes: Uint8Array): PreKeyRecord {
    return wrapState(() => {
      const o = decodeRecord(bytes, 'prekey');
      return new PreKeyRecord(intField(o, 'id'), new KeyPair(PublicKey.deserialize(field(o, 'pub')), PrivateKey.deserialize(field(o, 'priv'))));
    });
  }
  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'PreKeyRecord is not JSON-serializable; use serialize()');
  }
  [inspect](): string {
    return `PreKeyRecord(${this.id}, ${this.publicKey.toString()})`;
  }
}

/** A signed pre-key: the medium-term key a session starts on. */
export class SignedPreKeyRecord {
  readonly id: number;
  readonly timestamp: number;
  readonly keyPair: KeyPair;
  readonly signature: Uint8Array;
  constructor(id: number, timestamp: number, keyPair: KeyPair, signature: Uint8Array) {
    checkId(id);
    this.id = id;
    this.timestamp = timestamp;
    this.keyPair = keyPair;
    this.signature = signature;
  }
  get publicKey(): PublicKey {
    return this.keyPair.publicKey;
  }
  serialize(): Uint8Array {
    return encodeRecord('signedprekey', {
      id: this.id,
      ts: this.timestamp,
      pub: toBase64(this.keyPair.publicKey.serialize()),
      priv: toBase64(this.keyPair.privateKey.serialize()),
      sig: toBase64(this.signature),
    });
  }
  static deserialize(bytes: Uint8Array): SignedPreKeyRecord {
    return wrapState(() => {
      const o = decodeRecord(bytes, 'signedprekey');
      return new SignedPreKeyRecord(
        intField(o, 'id'),
        intField(o, 'ts'),
        new KeyPair(PublicKey.deserialize(field(o, 'pub')), PrivateKey.deserialize(field(o, 'priv'))),
        field(o, 'sig'),
      );
    });
  }
  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'SignedPreKeyRecord is not JSON-serializable; use serialize()');
  }
  [inspect](): string {
    return `SignedPreKeyRecord(${this.id}, ${this.publicKey.toString()})`;
  }
}

/** A Kyber pre-key: one-time, or the last-resort key that stays after use. */
export class KyberPreKeyRecord {
  readonly id: number;
  readonly timestamp: number;
  readonly keyPair: KyberKeyPair;
  readonly signature: Uint8Array;
  constructor(id: number, timestamp: number, keyPair: KyberKeyPair, signature: Uint8Array) {
    checkId(id);
    this.id = id;
    this.timestamp = timestamp;
    this.keyPair = keyPair;
    this.signature = signature;
  }
  get publicKey(): KyberPublicKey {
    return this.keyPair.publicKey;
  }
  serialize(): Uint8Array {
    return encodeRecord('kyberprekey', {
      id: this.id,
      ts: this.timestamp,
      pub: toBase64(this.keyPair.publicKey.serialize()),
      sec: toBase64(this.keyPair.secretKey.serialize()),
      sig: toBase64(this.signature),
    });
  }
  static deserialize(bytes: Uint8Array): KyberPreKeyRecord {
    return wrapState(() => {
      const o = decodeRecord(bytes, 'kyberprekey');
      return new KyberPreKeyRecord(
        intField(o, 'id'),
        intField(o, 'ts'),
        new KyberKeyPair(KyberPublicKey.deserialize(field(o, 'pub')), KyberSecretKey.deserialize(field(o, 'sec'))),
        field(o, 'sig'),
      );
    });
  }
  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'KyberPreKeyRecord is not JSON-serializable; use serialize()');
  }
  [inspect](): string {
    return `KyberPreKeyRecord(${this.id}, ${this.publicKey.toString()})`;
  }
}

export function generatePreKey(backend: CryptoBackend, id: number): PreKeyRecord {
  return new PreKeyRecord(id, KeyPair.generate(backend));
}

export function generateSignedPreKey(backend: CryptoBackend, identity: IdentityKeyPair, id: number, timestamp: number): SignedPreKeyRecord {
  const kp = KeyPair.generate(backend);
  return new SignedPreKeyRecord(id, timestamp, kp, identity.sign(backend, kp.publicKey.serialize()));
}

export function generateKyberPreKey(backend: CryptoBackend, identity: IdentityKeyPair, id: number, timestamp: number): KyberPreKeyRecord {
  const kp = KyberKeyPair.generate(backend);
  return new KyberPreKeyRecord(id, timestamp, kp, identity.sign(backend, kp.publicKey.serialize()));
}

/** Verify a pre-key signature by an identity key (serialized public key as the message). */
export function verifyPreKeySignature(
  backend: Pick<CryptoBackend, 'sha512' | 'ed25519Verify'>,
  identityKey: PublicKey,
  serializedPublicKey: Uint8Array,
  signature: Uint8Array,
): boolean {
  return xeddsaVerifyKey(backend, identityKey, serializedPublicKey, signature);
}

/** `verifyPreKeySignature` through the backend's asynchronous Ed25519 where it has one. */
export function verifyPreKeySignatureAsync(
  backend: Pick<CryptoBackend, 'sha512' | 'ed25519Verify' | 'ed25519VerifyAsync'>,
  identityKey: PublicKey,
  serializedPublicKey: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  return xeddsaVerifyKeyAsync(backend, identityKey, serializedPublicKey, signature);
}
