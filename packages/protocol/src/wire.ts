// Wire format (DESIGN §2.4): a version byte (0x44), a protobuf body with proto2 field numbers, and
// for SignalMessage an 8-byte truncated MAC. Fields are written in field-number order, as
// libsignal's encoder does, so our bytes equal its bytes. Decoders are total: any input gives a
// message or a ProtocolError with code DECODE (or BAD_VERSION / BAD_KEY).
import { type CryptoBackend } from './backend.ts';
import { bytesEqual, concatBytes } from './bytes.ts';
import { PublicKey } from './curve.ts';
import { fail, ProtocolError } from './errors.ts';
import { KYBER1024_CIPHERTEXT_LENGTH } from './kyber.ts';
import { optUint, parseFields, reqBytes, reqUint, Writer } from './protobuf.ts';

export const MESSAGE_VERSION = 4;
export const VERSION_BYTE = (MESSAGE_VERSION << 4) | MESSAGE_VERSION; // 0x44
export const MAC_LENGTH = 8;
/**
 * Upper bound on any message we decode. Generous enough for a 96 KiB body plus framing and a
 * Kyber ciphertext, small enough that a hostile peer cannot make us parse megabytes.
 */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/** A serialized curve key inside a message; a bad one is a DECODE error like any other bad field. */
export function decodeKey(bytes: Uint8Array, name: string): PublicKey {
  try {
    return PublicKey.deserialize(bytes);
  } catch {
    return fail('DECODE', `invalid ${name}`);
  }
}

/**
 * Bytes within MAX_MESSAGE_BYTES whose version byte has `version` in its high nibble (the low
 * nibble is ignored, as libsignal does).
 */
export function checkVersion(bytes: Uint8Array, version: number = MESSAGE_VERSION): void {
  if (!(bytes instanceof Uint8Array)) fail('DECODE', 'message is not bytes');
  if (bytes.length > MAX_MESSAGE_BYTES) fail('DECODE', `message of ${bytes.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  if (bytes.length < 1) fail('DECODE', 'empty message');
  const got = (bytes[0] as number) >> 4;
  if (got !== version) fail('BAD_VERSION', `message version ${got}`);
}

/** Run a decoder so that anything it throws other than a ProtocolError becomes DECODE. */
export function guard<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('DECODE', 'malformed message');
  }
}

// ---- SignalMessage ----

export interface SignalMessage {
  readonly ratchetKey: PublicKey;
  readonly counter: number;
  readonly previousCounter: number;
  readonly ciphertext: Uint8Array;
  /** Version byte + protobuf + MAC, exactly as received or sent. */
  readonly serialized: Uint8Array;
}

function signalMac(
  backend: CryptoBackend,
  macKey: Uint8Array,
  senderIdentity: PublicKey,
  receiverIdentity: PublicKey,
  versionAndBody: Uint8Array,
): Uint8Array {
  return backend.hmacSha256(macKey, senderIdentity.serializedUnsafe, receiverIdentity.serializedUnsafe, versionAndBody).subarray(0, MAC_LENGTH);
}

export function encodeSignalMessage(
  backend: CryptoBackend,
  macKey: Uint8Array,
  ratchetKey: PublicKey,
  counter: number,
  previousCounter: number,
  ciphertext: Uint8Array,
  senderIdentity: PublicKey,
  receiverIdentity: PublicKey,
): SignalMessage {
  const w = new Writer();
  w.bytes(1, ratchetKey.serializedUnsafe);
  w.uint32(2, counter);
  w.uint32(3, previousCounter);
  w.bytes(4, ciphertext);
  const body = concatBytes(Uint8Array.of(VERSION_BYTE), w.finish());
  const serialized = concatBytes(body, signalMac(backend, macKey, senderIdentity, receiverIdentity, body));
  return { ratchetKey, counter, previousCounter, ciphertext, serialized };
}

export function decodeSignalMessage(bytes: Uint8Array): SignalMessage {
  return guard(() => {
    checkVersion(bytes);
    if (bytes.length < MAC_LENGTH + 1) fail('DECODE', 'message too short');
    const fields = parseFields(bytes.subarray(1, bytes.length - MAC_LENGTH));
    const ratchetKey = decodeKey(reqBytes(fields, 1, 'ratchet key'), 'ratchet key');
    const counter = reqUint(fields, 2, 'counter');
    const previousCounter = optUint(fields, 3) ?? 0;
    const ciphertext = reqBytes(fields, 4, 'ciphertext');
    return { ratchetKey, counter, previousCounter, ciphertext: ciphertext.slice(), serialized: bytes.slice() };
  });
}

export function verifySignalMessageMac(
  backend: CryptoBackend,
  message: SignalMessage,
  macKey: Uint8Array,
  senderIdentity: PublicKey,
  receiverIdentity: PublicKey,
): boolean {
  const s = message.serialized;
  const expected = signalMac(backend, macKey, senderIdentity, receiverIdentity, s.subarray(0, s.length - MAC_LENGTH));
  return bytesEqual(expected, s.subarray(s.length - MAC_LENGTH));
}

// ---- PreKeySignalMessage ----

export interface PreKeySignalMessage {
  readonly registrationId: number;
  readonly preKeyId: number | undefined;
  readonly signedPreKeyId: number;
  readonly kyberPreKeyId: number;
  readonly kyberCiphertext: Uint8Array;
  readonly baseKey: PublicKey;
  readonly identityKey: PublicKey;
  readonly message: SignalMessage;
  readonly serialized: Uint8Array;
}

export function encodePreKeySignalMessage(m: Omit<PreKeySignalMessage, 'serialized'>): PreKeySignalMessage {
  const w = new Writer();
  if (m.preKeyId !== undefined) w.uint32(1, m.preKeyId);
  w.bytes(2, m.baseKey.serializedUnsafe);
  w.bytes(3, m.identityKey.serializedUnsafe);
  w.bytes(4, m.message.serialized);
  w.uint32(5, m.registrationId);
  w.uint32(6, m.signedPreKeyId);
  w.uint32(7, m.kyberPreKeyId);
  w.bytes(8, m.kyberCiphertext);
  return { ...m, serialized: concatBytes(Uint8Array.of(VERSION_BYTE), w.finish()) };
}

export function decodePreKeySignalMessage(bytes: Uint8Array): PreKeySignalMessage {
  return guard(() => {
    checkVersion(bytes);
    const fields = parseFields(bytes.subarray(1));
    const kyberCiphertext = reqBytes(fields, 8, 'Kyber ciphertext');
    if (kyberCiphertext.length !== KYBER1024_CIPHERTEXT_LENGTH + 1) fail('DECODE', `Kyber ciphertext of ${kyberCiphertext.length} bytes`);
    return {
      registrationId: optUint(fields, 5) ?? 0,
      preKeyId: optUint(fields, 1),
      signedPreKeyId: reqUint(fields, 6, 'signed pre-key id'),
      kyberPreKeyId: reqUint(fields, 7, 'Kyber pre-key id'),
      kyberCiphertext: kyberCiphertext.slice(),
      baseKey: decodeKey(reqBytes(fields, 2, 'base key'), 'base key'),
      identityKey: decodeKey(reqBytes(fields, 3, 'identity key'), 'identity key'),
      message: decodeSignalMessage(reqBytes(fields, 4, 'message')),
      serialized: bytes.slice(),
    };
  });
}
