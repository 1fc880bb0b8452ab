// The two sender-key messages (DESIGN §2.7, libsignal's protocol.rs), version byte 0x33:
//   SenderKeyMessage             = 0x33 || protobuf {distribution_uuid = 1, chain_id = 2,
//                                  iteration = 3, ciphertext = 4} || 64-byte XEdDSA signature by
//                                  the chain's signing key over everything before it
//   SenderKeyDistributionMessage = 0x33 || protobuf {distribution_uuid = 1, chain_id = 2,
//                                  iteration = 3, chain_key = 4, signing_key = 5}   (unsigned; it
//                                  travels inside a pairwise session message)
// libsignal writes every field, in field-number order, even when it is zero; so do we, and our
// bytes equal its bytes. Decoders are total: any input gives a message or a ProtocolError (DECODE,
// or BAD_VERSION when the high nibble of the version byte is not 3; the low nibble is ignored).
import { type CryptoBackend } from './backend.ts';
import { concatBytes } from './bytes.ts';
import { PrivateKey, type PublicKey, CURVE_PUBLIC_KEY_LENGTH } from './curve.ts';
import { DISTRIBUTION_ID_LENGTH, DistributionId } from './distribution-id.ts';
import { fail } from './errors.ts';
import { parseFields, reqBytes, reqUint, Writer } from './protobuf.ts';
import { checkVersion, decodeKey, guard } from './wire.ts';
import { type SenderSigningKey, signWithSenderKey } from './seeded-signing-key.ts';
import { SIGNATURE_LENGTH, xeddsaVerifyKey } from './xeddsa.ts';

/** Sender-key messages stay at version 3 even inside version-4 sessions (libsignal's constant). */
export const SENDER_KEY_MESSAGE_VERSION = 3;
export const SENDER_KEY_VERSION_BYTE = (SENDER_KEY_MESSAGE_VERSION << 4) | SENDER_KEY_MESSAGE_VERSION; // 0x33
export const SENDER_CHAIN_KEY_LENGTH = 32;
/** libsignal refuses a distribution message shorter than a version byte, a key and a chain key. */
const MIN_DISTRIBUTION_MESSAGE_BYTES = 1 + 32 + 32;

const inspect = Symbol.for('nodejs.util.inspect.custom');

function decodeDistributionId(fields: ReturnType<typeof parseFields>): DistributionId {
  const b = reqBytes(fields, 1, 'distribution id');
  if (b.length !== DISTRIBUTION_ID_LENGTH) fail('DECODE', `distribution id of ${b.length} bytes`);
  return DistributionId.fromBytes(b);
}

// ---- SenderKeyMessage ----

export interface SenderKeyMessage {
  readonly distributionId: DistributionId;
  readonly chainId: number;
  readonly iteration: number;
  readonly ciphertext: Uint8Array;
  /** Version byte + protobuf + signature, exactly as received or sent. */
  readonly serialized: Uint8Array;
}

export function encodeSenderKeyMessage(
  backend: CryptoBackend,
  signingKey: PrivateKey | SenderSigningKey,
  m: { distributionId: DistributionId; chainId: number; iteration: number; ciphertext: Uint8Array },
): SenderKeyMessage {
  const w = new Writer();
  w.bytes(1, m.distributionId.bytesUnsafe);
  w.uint32(2, m.chainId);
  w.uint32(3, m.iteration);
  w.bytes(4, m.ciphertext);
  const body = concatBytes(Uint8Array.of(SENDER_KEY_VERSION_BYTE), w.finish());
  const key = signingKey instanceof PrivateKey ? { privateKey: signingKey, seed: null } : signingKey;
  const serialized = concatBytes(body, signWithSenderKey(backend, key, body));
  return { ...m, serialized };
}

export function decodeSenderKeyMessage(bytes: Uint8Array): SenderKeyMessage {
  return guard(() => {
    checkVersion(bytes, SENDER_KEY_MESSAGE_VERSION);
    if (bytes.length < 1 + SIGNATURE_LENGTH) fail('DECODE', `sender key message of ${bytes.length} bytes`);
    const fields = parseFields(bytes.subarray(1, bytes.length - SIGNATURE_LENGTH));
    return {
      distributionId: decodeDistributionId(fields),
      chainId: reqUint(fields, 2, 'chain id'),
      iteration: reqUint(fields, 3, 'iteration'),
      ciphertext: reqBytes(fields, 4, 'ciphertext').slice(),
      serialized: bytes.slice(),
    };
  });
}

/** The sender's signature over everything before it. Never throws. */
export function verifySenderKeyMessage(backend: CryptoBackend, message: SenderKeyMessage, signingKey: PublicKey): boolean {
  const s = message.serialized;
  return xeddsaVerifyKey(backend, signingKey, s.subarray(0, s.length - SIGNATURE_LENGTH), s.subarray(s.length - SIGNATURE_LENGTH));
}

// ---- SenderKeyDistributionMessage ----

/**
 * A sender's current chain key and public signing key for one distribution id: whoever holds it
 * can read the sender's group messages from `iteration` on. It holds a secret, so it is opaque:
 * send it only inside a pairwise session message, persist it never.
 */
export class SenderKeyDistributionMessage {
  readonly distributionId: DistributionId;
  readonly chainId: number;
  readonly iteration: number;
  readonly signingKey: PublicKey;
  readonly #chainKey: Uint8Array;
  readonly #serialized: Uint8Array;

  private constructor(
    f: { distributionId: DistributionId; chainId: number; iteration: number; chainKey: Uint8Array; signingKey: PublicKey },
    serialized: Uint8Array,
  ) {
    this.distributionId = f.distributionId;
    this.chainId = f.chainId;
    this.iteration = f.iteration;
    this.signingKey = f.signingKey;
    this.#chainKey = f.chainKey;
    this.#serialized = serialized;
  }

  /** Internal: build one from a sender's state (see GroupCipher.createSenderKeyDistributionMessage). */
  static create(f: { distributionId: DistributionId; chainId: number; iteration: number; chainKey: Uint8Array; signingKey: PublicKey }): SenderKeyDistributionMessage {
    if (f.chainKey.length !== SENDER_CHAIN_KEY_LENGTH) fail('INVALID_ARGUMENT', 'chain key must be 32 bytes');
    const w = new Writer();
    w.bytes(1, f.distributionId.bytesUnsafe);
    w.uint32(2, f.chainId);
    w.uint32(3, f.iteration);
    w.bytes(4, f.chainKey);
    w.bytes(5, f.signingKey.serializedUnsafe);
    return new SenderKeyDistributionMessage({ ...f, chainKey: f.chainKey.slice() }, concatBytes(Uint8Array.of(SENDER_KEY_VERSION_BYTE), w.finish()));
  }

  /** Total decoder: a message, or a ProtocolError (DECODE / BAD_VERSION). */
  static deserialize(bytes: Uint8Array): SenderKeyDistributionMessage {
    return guard(() => {
      checkVersion(bytes, SENDER_KEY_MESSAGE_VERSION);
      if (bytes.length < MIN_DISTRIBUTION_MESSAGE_BYTES) fail('DECODE', `distribution message of ${bytes.length} bytes`);
      const fields = parseFields(bytes.subarray(1));
      const distributionId = decodeDistributionId(fields);
      const chainId = reqUint(fields, 2, 'chain id');
      const iteration = reqUint(fields, 3, 'iteration');
      const chainKey = reqBytes(fields, 4, 'chain key');
      const signingKey = reqBytes(fields, 5, 'signing key');
      if (chainKey.length !== SENDER_CHAIN_KEY_LENGTH) fail('DECODE', `chain key of ${chainKey.length} bytes`);
      if (signingKey.length !== CURVE_PUBLIC_KEY_LENGTH) fail('DECODE', `signing key of ${signingKey.length} bytes`);
      return new SenderKeyDistributionMessage(
        { distributionId, chainId, iteration, chainKey: chainKey.slice(), signingKey: decodeKey(signingKey, 'signing key') },
        bytes.slice(),
      );
    });
  }

  serialize(): Uint8Array {
    return this.#serialized.slice();
  }

  /** Internal: the chain key without a copy (never mutate, never log). */
  get chainKeyUnsafe(): Uint8Array {
    return this.#chainKey;
  }

  toString(): string {
    return `SenderKeyDistributionMessage(${this.distributionId.toString()}, chain ${this.chainId}, iteration ${this.iteration})`;
  }

  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'SenderKeyDistributionMessage is not JSON-serializable; use serialize()');
  }

  [inspect](): string {
    return this.toString();
  }
}
