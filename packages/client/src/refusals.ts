/**
 * What each server refusal means to a person. Every error code of the wire contract has a clause
 * here (the Record type makes a new code without one a compile error), written for someone who
 * has never read the API: what happened, and what to do about it where there is something to do.
 * Clauses start lower-case and have no final period: the CLI prints them after "tacit: ", the web
 * client makes sentences of them. Callers keep the code itself (ClientError.serverCode) for
 * scripts and logs.
 */
import { isErrorCode, type ErrorCode } from '@tacit/api';

export const REFUSALS: Readonly<Record<ErrorCode, string>> = {
  INVALID_REQUEST: 'the server did not accept the request as sent (is this tacit older or newer than the server?)',
  UNAUTHORIZED: 'the server no longer accepts this device: it was removed from its account on another device, or the account was reset (ask an admin for a new invite)',
  FORBIDDEN: 'the server does not allow this account to do that',
  INVITE_INVALID: 'the invite code is missing, wrong, already used or expired; ask an admin for a new one',
  NOT_FOUND: 'the server has no such user or device',
  AUTH_TIMEOUT: 'signing in to the server took too long; tacit tries again',
  USERNAME_TAKEN: 'that username is taken; choose another',
  REPLACED: 'another connection for this device took over (is tacit running elsewhere with this account?)',
  TOO_MANY_DEVICES: 'this account already has as many devices as the server allows; remove one first',
  LAST_DEVICE: "this is the account's only device, so it stays (without a device the account could never be opened again); link another device first",
  LINK_TOKEN_INVALID: 'the link expired or was already used; show a new link code on the new device',
  STALE_DEVICE: "the contact's device changed since the message was encrypted; send it again",
  MISMATCHED_DEVICES: "a recipient's devices changed since the message was encrypted; send it again",
  TOO_MANY_RECIPIENTS: 'the message is addressed to more devices than the server accepts in one send',
  PAYLOAD_TOO_LARGE: 'the request is larger than the server accepts',
  MESSAGE_TOO_LARGE: 'the message is larger than the server accepts',
  BAD_SIGNATURE: "the server rejected this device's keys (their signatures do not verify)",
  TOO_MANY_KEYS: "the server holds as many of this device's one-time keys as it allows",
  RATE_LIMITED: 'too many attempts in a short time; wait a minute and try again',
  TOO_MANY_CONNECTIONS: 'this account has as many open connections as the server allows; close tacit elsewhere',
  TOO_MANY_IN_FLIGHT: 'too many messages are waiting for the server; try again in a moment',
  MAILBOX_FULL: "the recipient's mailbox on the server is full (they have not been online for a long time)",
  SEND_QUOTA_EXCEEDED: 'you have sent more messages today than the server allows (to this person, or in all); the message was not sent; try again later or ask an admin',
  INTERNAL: 'the server had an internal error; try again later',
  UNAVAILABLE: 'the server is restarting or overloaded; try again shortly',
  RECONNECT_ELSEWHERE: 'this server node is shutting down; tacit reconnects to another one at once',
  RANGE_NOT_SATISFIABLE: 'the server has fewer bytes of that file than were asked for',
  ATTACHMENT_TOO_LARGE: 'the file is larger than this server accepts',
  QUOTA_EXCEEDED: "your account has used all its file storage on the server; wait for older files to expire (or ask an admin to raise the quota)",
  OFFSET_MISMATCH: 'the upload and the server disagree on how much was sent; tacit continues from where the server stands',
};

/** The clause for a refusal code; a code this client does not know is named as is. */
export function refusalText(code: string | undefined): string {
  if (isErrorCode(code)) return REFUSALS[code];
  return `the server refused the request (${code === undefined ? 'no reason given' : code.slice(0, 64)})`;
}
