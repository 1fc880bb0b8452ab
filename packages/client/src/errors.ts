/**
 * The one error class of the client SDK. Callers branch on `code`, never on `message`.
 * Messages may name a contact or a count; they never carry key bytes, secrets or plaintext.
 */
export const CLIENT_ERROR_CODES = [
  /** The passphrase does not open the local state. */
  'WRONG_PASSPHRASE',
  /** The local state file is damaged or was modified (authentication failed under the right key). */
  'STATE_CORRUPT',
  /** Another process holds the local state. */
  'STATE_LOCKED',
  /** The local storage medium is out of space (disk or browser quota); nothing was changed. */
  'STORAGE_FULL',
  /** The local storage cannot be used at all (no IndexedDB, blocked by another tab, no WebCrypto). */
  'STORAGE_UNAVAILABLE',
  /** There is no account in this home yet. */
  'NOT_REGISTERED',
  /** This home already holds an account. */
  'ALREADY_REGISTERED',
  /** The contact's identity key changed; nothing is sent to them until the user trusts the new key. */
  'UNTRUSTED_IDENTITY',
  /** The server does not know this user (or they have no devices). */
  'UNKNOWN_USER',
  /** The server refused the request; `serverCode` holds its error code. */
  'SERVER',
  /** The server could not be reached or the connection dropped. */
  'NETWORK',
  /** An operation did not finish within its deadline. */
  'TIMEOUT',
  /** A caller passed an invalid argument (bad username, text too long, ...). */
  'INVALID_ARGUMENT',
  /** The server sent something that does not follow the wire contract. */
  'BAD_RESPONSE',
  /** The client was closed. */
  'CLOSED',
  /**
   * A downloaded attachment does not match its pointer: a chunk does not authenticate, the blob is
   * truncated or too long, or the digest differs. Nothing of it is kept.
   */
  'ATTACHMENT_CORRUPT',
  /** The caller cancelled the operation (an upload or download); nothing half-done is kept. */
  'CANCELLED',
  /** Linking a device failed: the link message did not decrypt (wrong code, tampered), or the channel closed. Nothing was registered. */
  'PROVISIONING_FAILED',
  /** The contact is blocked (chat/block.ts): nothing is sent to them until `unblock`. */
  'BLOCKED',
] as const;

export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];

export interface ClientErrorDetails {
  /** The contact the error is about, if any (a username, never key material). */
  readonly contact?: string;
  /** The server's error code when `code` is `SERVER`. */
  readonly serverCode?: string;
  /** HTTP status when the error came from an HTTP response. */
  readonly status?: number;
}

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  readonly contact: string | undefined;
  readonly serverCode: string | undefined;
  readonly status: number | undefined;

  constructor(code: ClientErrorCode, message: string, details: ClientErrorDetails = {}) {
    super(message);
    this.name = 'ClientError';
    this.code = code;
    this.contact = details.contact;
    this.serverCode = details.serverCode;
    this.status = details.status;
  }
}

export function isClientError(e: unknown): e is ClientError {
  return e instanceof ClientError;
}

/** A message safe to print for any thrown value: never the default stringification of unknown objects. */
export function describeError(e: unknown): string {
  if (e instanceof ClientError) return e.message;
  if (e instanceof Error) return `${e.name}${'code' in e && typeof e.code === 'string' ? ` ${e.code}` : ''}`;
  return 'unknown error';
}
