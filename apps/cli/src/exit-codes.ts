/**
 * Exit codes of the `tacit` command. Scripts branch on these; they are documented in
 * docs/CLIENT.md and in `tacit --help`, and never change meaning.
 */
import type { ClientErrorCode } from '@tacit/client';

export const EXIT = {
  OK: 0,
  /** An unexpected failure (a bug); the message says what failed, never with user data. */
  INTERNAL: 1,
  /** Bad command line (unknown command or flag, missing argument, invalid username). */
  USAGE: 2,
  /** No account in this home (run `tacit register`). */
  NOT_REGISTERED: 3,
  /** `register` in a home that already holds an account. */
  ALREADY_REGISTERED: 4,
  /** The passphrase does not open the local state. */
  WRONG_PASSPHRASE: 5,
  /** The local state is damaged, or another tacit process is using this home. */
  STATE: 6,
  /** The server could not be reached or did not answer in time. */
  NETWORK: 7,
  /** The server refused the request or answered something malformed. */
  SERVER: 8,
  /** The contact's identity key changed; compare safety numbers and run `tacit trust <user>`. */
  UNTRUSTED_IDENTITY: 9,
  /** No such user on the server. */
  UNKNOWN_USER: 10,
  /**
   * `send`: the server could not be reached in time; the message is stored and queued, and is
   * sent the next time tacit connects (send, recv or chat). Do not send it again.
   */
  QUEUED: 11,
  /** A received attachment did not check out (tampered, truncated, wrong digest); nothing was saved. */
  ATTACHMENT_CORRUPT: 12,
  /** The contact is blocked; `tacit unblock <user>` before sending to them. */
  BLOCKED: 13,
  /** Interrupted by the user (Ctrl-C) before the operation finished; nothing half-done was kept. */
  CANCELLED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export function exitCodeFor(code: ClientErrorCode): ExitCode {
  switch (code) {
    case 'WRONG_PASSPHRASE':
      return EXIT.WRONG_PASSPHRASE;
    case 'STATE_CORRUPT':
    case 'STATE_LOCKED':
    case 'STORAGE_FULL':
    case 'STORAGE_UNAVAILABLE':
      return EXIT.STATE;
    case 'NOT_REGISTERED':
      return EXIT.NOT_REGISTERED;
    case 'ALREADY_REGISTERED':
      return EXIT.ALREADY_REGISTERED;
    case 'UNTRUSTED_IDENTITY':
      return EXIT.UNTRUSTED_IDENTITY;
    case 'UNKNOWN_USER':
      return EXIT.UNKNOWN_USER;
    case 'SERVER':
    case 'BAD_RESPONSE':
    case 'PROVISIONING_FAILED':
      return EXIT.SERVER;
    case 'NETWORK':
    case 'TIMEOUT':
    case 'CLOSED':
      return EXIT.NETWORK;
    case 'INVALID_ARGUMENT':
      return EXIT.USAGE;
    case 'ATTACHMENT_CORRUPT':
      return EXIT.ATTACHMENT_CORRUPT;
    case 'CANCELLED':
      return EXIT.CANCELLED;
    case 'BLOCKED':
      return EXIT.BLOCKED;
  }
}
