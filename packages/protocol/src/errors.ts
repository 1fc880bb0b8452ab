// One error class for the protocol package, with a closed union of codes. Callers branch on
// `code`, never on the message. Messages may carry lengths and counters, never key bytes or text.

export const ProtocolErrorCode = {
  /** Bytes could not be decoded as the expected structure. */
  DECODE: 'DECODE',
  /** A key had the wrong length, type byte, or a non-canonical encoding. */
  BAD_KEY: 'BAD_KEY',
  /** A signature did not verify (over a pre-key, or a group message by its sender key). */
  BAD_SIGNATURE: 'BAD_SIGNATURE',
  /** The message authentication code did not verify, or the body did not decrypt. */
  BAD_MAC: 'BAD_MAC',
  /** The message's counter was already used and no stored key remains for it. */
  DUPLICATE: 'DUPLICATE',
  /** The message jumps further ahead in one chain than MAX_FORWARD_JUMPS. */
  TOO_FAR_AHEAD: 'TOO_FAR_AHEAD',
  /** The peer's identity key differs from the trusted one. */
  UNTRUSTED_IDENTITY: 'UNTRUSTED_IDENTITY',
  /** No session exists (or it is unusable) for this address. */
  NO_SESSION: 'NO_SESSION',
  /** No sender key (group) state for this sender, distribution id and chain id. */
  NO_SENDER_KEY: 'NO_SENDER_KEY',
  /** A pre-key referenced by a message is not in the local store. */
  MISSING_PRE_KEY: 'MISSING_PRE_KEY',
  /** The message has a protocol version we do not speak. */
  BAD_VERSION: 'BAD_VERSION',
  /** A DH output was all zeros (non-contributory public key). */
  NON_CONTRIBUTORY: 'NON_CONTRIBUTORY',
  /** A caller passed an argument outside its documented range. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** Serialized state was malformed or of an unknown version. */
  BAD_STATE: 'BAD_STATE',
} as const;

export type ProtocolErrorCode = (typeof ProtocolErrorCode)[keyof typeof ProtocolErrorCode];

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

export function isProtocolError(e: unknown, code?: ProtocolErrorCode): e is ProtocolError {
  return e instanceof ProtocolError && (code === undefined || e.code === code);
}

export function fail(code: ProtocolErrorCode, message: string): never {
  throw new ProtocolError(code, message);
}
