/**
 * The one error table: every error code the server returns, its HTTP status and the WebSocket
 * close code used when the error ends a connection. Callers branch on `code`, never on `message`.
 *
 * Close codes: 4000 + HTTP status where that is unambiguous; neighbouring 44xx values where two
 * codes share a status and a client must tell them apart (REPLACED must not trigger a reconnect
 * loop); standard codes 1009 (too big), 1011 (internal), 1012 (restart) where they fit.
 * The close reason is always the error code string.
 */
export const ERRORS = {
  /** Malformed JSON, a field of the wrong type or out of range, an unknown frame kind. */
  INVALID_REQUEST: { status: 400, close: 4400 },
  /** Missing or wrong credentials, or a wrong, expired or replayed ticket. */
  UNAUTHORIZED: { status: 401, close: 4401 },
  /** Authenticated, but not allowed (e.g. registration is closed). */
  FORBIDDEN: { status: 403, close: 4403 },
  /** Registration needs a valid, unused invite code. */
  INVITE_INVALID: { status: 403, close: 4405 },
  /**
   * Unknown route, user or device. In a WebSocket `error` reply to a send it does not close; for a
   * `send-multi` the error's `accounts` lists the unknown accounts (every named device `extra`).
   */
  NOT_FOUND: { status: 404, close: 4404 },
  /** The socket did not authenticate within AUTH_TIMEOUT_MS. */
  AUTH_TIMEOUT: { status: 408, close: 4408 },
  /** The username is taken (case-insensitively). */
  USERNAME_TAKEN: { status: 409, close: 4409 },
  /** Another connection for the same device authenticated; this one is closed. Do not reconnect automatically. */
  REPLACED: { status: 409, close: 4410 },
  /** The account already has MAX_DEVICES_PER_ACCOUNT devices. */
  TOO_MANY_DEVICES: { status: 409, close: 4411 },
  /**
   * A send named a `registrationId` that is no longer the target device's (the device
   * re-registered since the sender's session was made). Nothing was stored. Reply to that send;
   * the socket stays open. The client should re-fetch the device list (re-checking the identity
   * key) and encrypt again. For a `send-multi` the error's `accounts` lists the `stale` device
   * ids per account.
   */
  STALE_DEVICE: { status: 410, close: 4412 },
  /**
   * A `send-multi` named a device list that does not match a recipient account's devices: some
   * are missing (the account has them, the send does not name them) or extra (named, but not the
   * account's, or the sending device itself). Nothing was stored; the error's `accounts` lists
   * each account's `missing` and `extra` device ids. Reply to that send; the socket stays open.
   */
  MISMATCHED_DEVICES: { status: 409, close: 4415 },
  /** Request body or WebSocket frame over its size limit. */
  PAYLOAD_TOO_LARGE: { status: 413, close: 1009 },
  /** A message body over MAX_MESSAGE_BYTES (reply to that send; the socket stays open). */
  MESSAGE_TOO_LARGE: { status: 413, close: 4413 },
  /** A `send-multi` names more devices than MAX_FANOUT_DEVICES (reply to that send; the socket stays open). */
  TOO_MANY_RECIPIENTS: { status: 413, close: 4414 },
  /**
   * POST /v1/keys/one-time would leave the device holding more than MAX_ONE_TIME_KEYS_HELD
   * one-time keys of a kind; nothing was added. Replace them instead (PUT /v1/keys).
   */
  TOO_MANY_KEYS: { status: 409, close: 4421 },
  /** A signed pre-key or Kyber pre-key signature does not verify against the identity key. */
  BAD_SIGNATURE: { status: 422, close: 4422 },
  /** Rate limit exceeded. For a send: that send is refused. For a frame flood: the socket closes. */
  RATE_LIMITED: { status: 429, close: 4429 },
  /** The account already has MAX_CONNECTIONS_PER_ACCOUNT open connections. */
  TOO_MANY_CONNECTIONS: { status: 429, close: 4430 },
  /** More than MAX_PENDING_SENDS_PER_CONNECTION sends awaiting `sent`; that send is refused. */
  TOO_MANY_IN_FLIGHT: { status: 429, close: 4431 },
  /** The recipient device has MAX_QUEUE_PER_DEVICE messages waiting; that send is refused. */
  MAILBOX_FULL: { status: 429, close: 4432 },
  /**
   * The sending account has used one of its daily quotas: messages to this recipient device,
   * messages in all, or bytes in all (the server's configuration). Nothing was stored; reply to that
   * send, the socket stays open. Not worth retrying soon: the quota refills over a day.
   */
  SEND_QUOTA_EXCEEDED: { status: 429, close: 4433 },
  /** A Range header that asks for bytes outside the blob (HTTP only). */
  RANGE_NOT_SATISFIABLE: { status: 416, close: 4416 },
  /** An attachment's declared length is over the server's cap; nothing was stored (HTTP only). */
  ATTACHMENT_TOO_LARGE: { status: 413, close: 4417 },
  /** The account's attachments would exceed its storage quota; nothing was stored (HTTP only). */
  QUOTA_EXCEEDED: { status: 403, close: 4418 },
  /**
   * An upload piece's `Upload-Offset` is not where the blob stands (another request wrote first,
   * or the client lost track); nothing of it was stored. Ask for the upload status and continue
   * from its `received` (HTTP only).
   */
  OFFSET_MISMATCH: { status: 409, close: 4419 },
  /**
   * A link token (POST /v1/devices/link) that is unknown, expired or already used, or whose
   * device has since been removed. Nothing was registered; get a new token.
   */
  LINK_TOKEN_INVALID: { status: 403, close: 4420 },
  /**
   * DELETE /v1/devices/:deviceId named the account's last device; nothing was removed. An account
   * without devices could never be opened again and its username would stay taken.
   */
  LAST_DEVICE: { status: 409, close: 4423 },
  /** A server fault. The message never carries details. */
  INTERNAL: { status: 500, close: 1011 },
  /** The server is shutting down or restarting; reconnect with backoff. */
  UNAVAILABLE: { status: 503, close: 1012 },
  /**
   * This node is draining (a graceful shutdown, behind a load balancer): everything received was
   * stored and answered; reconnect at once (with a little jitter), and the balancer sends the
   * socket to another node.
   */
  RECONNECT_ELSEWHERE: { status: 503, close: 4503 },
} as const satisfies Record<string, { status: number; close: number }>;

export type ErrorCode = keyof typeof ERRORS;

export const ERROR_CODES = Object.keys(ERRORS) as readonly ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, value);
}

/** HTTP error response body (every non-2xx response has this shape). */
export interface ErrorBody {
  error: {
    code: ErrorCode;
    /** Human-readable; never contains keys, secrets or message bodies. Do not parse it. */
    message: string;
  };
}

/** The package's error class, e.g. thrown by a client when the server returns an ErrorBody. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string = code) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
  get closeCode(): number {
    return ERRORS[this.code].close;
  }
}

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}

/** Maps a WebSocket close code back to the error code, if it is one of ours (first match). */
export function errorCodeForClose(close: number): ErrorCode | undefined {
  for (const code of ERROR_CODES) if (ERRORS[code].close === close) return code;
  return undefined;
}
