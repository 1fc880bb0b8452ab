// @tacit/protocol: the Signal protocol (PQXDH + Double Ratchet), byte-compatible with libsignal.
// Isomorphic: nothing here imports node:*; the Node backend lives in `@tacit/protocol/node`.
export { type CryptoBackend, type X25519KeyPairBytes } from './backend.ts';
export { portableBackend, type PortableBackendOptions } from './backend-portable.ts';
export { type MlKem1024, nobleMlKem1024 } from './ml-kem.ts';
export { instantiateMlKem1024, mlKem1024FromWasm } from './ml-kem-wasm.ts';
export { type WebCryptoCurves, webCryptoCurves } from './webcrypto.ts';
export { bytesEqual, concatBytes, fromBase64, fromHex, toBase64, toHex, utf8Decode, utf8Encode } from './bytes.ts';
export { CURVE_PUBLIC_KEY_LENGTH, DJB_TYPE, KeyPair, PrivateKey, PublicKey } from './curve.ts';
export { DISTRIBUTION_ID_LENGTH, DistributionId } from './distribution-id.ts';
export { fail, isProtocolError, ProtocolError, ProtocolErrorCode } from './errors.ts';
export { compareScannable, FINGERPRINT_ITERATIONS, type SafetyNumber, safetyNumber } from './fingerprint.ts';
export {
  generateKyberPreKey,
  generatePreKey,
  generateRegistrationId,
  generateSignedPreKey,
  IdentityKeyPair,
  KyberPreKeyRecord,
  MAX_REGISTRATION_ID,
  PreKeyRecord,
  SignedPreKeyRecord,
  verifyPreKeySignature,
  verifyPreKeySignatureAsync,
} from './identity.ts';
export {
  KYBER_TYPE,
  KYBER1024_CIPHERTEXT_LENGTH,
  KYBER1024_PUBLIC_KEY_LENGTH,
  KYBER1024_SECRET_KEY_LENGTH,
  KyberKeyPair,
  KyberPublicKey,
  KyberSecretKey,
} from './kyber.ts';
export { GroupCipher, type GroupDecryptResult } from './group-cipher.ts';
export { type PreKeyBundle } from './pqxdh.ts';
export { type CiphertextMessage, type CiphertextType, MAX_CHAIN_STEPS_PER_MESSAGE, MAX_FORWARD_JUMPS } from './ratchet.ts';
export {
  type DecryptResult,
  MAX_UNACKNOWLEDGED_SESSION_AGE_MS,
  SessionManager,
  type SessionManagerOptions,
  UntrustedIdentityError,
} from './session.ts';
export {
  InMemorySenderKeyStore,
  MAX_SENDER_KEY_STATES,
  MAX_SERIALIZED_SENDER_KEY_RECORD_BYTES,
  SenderKeyRecord,
  type SenderKeyStore,
  SIGNING_SEED_FIELD,
} from './sender-key.ts';
export {
  decodeSenderKeyMessage,
  SENDER_KEY_MESSAGE_VERSION,
  SENDER_KEY_VERSION_BYTE,
  SenderKeyDistributionMessage,
  type SenderKeyMessage,
} from './sender-key-message.ts';
export { MAX_ARCHIVED_STATES, MAX_MESSAGE_KEYS, MAX_RECEIVER_CHAINS, SessionRecord } from './state.ts';
export {
  type Direction,
  type IdentityKeyStore,
  InMemoryIdentityKeyStore,
  InMemoryKyberPreKeyStore,
  InMemoryPreKeyStore,
  InMemorySessionStore,
  InMemorySignedPreKeyStore,
  inMemoryStores,
  type KyberPreKeyStore,
  MAX_DEVICE_ID,
  ProtocolAddress,
  type PreKeyStore,
  type ProtocolStores,
  type SessionStore,
  type SignedPreKeyStore,
} from './store.ts';
export {
  decodePreKeySignalMessage,
  decodeSignalMessage,
  MAC_LENGTH,
  MAX_MESSAGE_BYTES,
  MESSAGE_VERSION,
  type PreKeySignalMessage,
  type SignalMessage,
  VERSION_BYTE,
} from './wire.ts';
export {
  generateSeededSigningKey,
  MAX_SIGNING_SEED_ATTEMPTS,
  type SeededSigningKey,
  seedMatchesKey,
  type SenderSigningKey,
  SIGNING_SEED_LENGTH,
  signWithSenderKey,
} from './seeded-signing-key.ts';
export { SIGNATURE_LENGTH, xeddsaSign, xeddsaVerify, xeddsaVerifyKey, xeddsaVerifyKeyAsync } from './xeddsa.ts';
