/**
 * WebSocket frames on `/v1/ws`. Every frame is one JSON text message with a `type`. Binary
 * messages are refused (INVALID_REQUEST).
 *
 * Authentication: connect to `/v1/ws?ticket=<ticket>` (ticket from POST /v1/ws-ticket), or
 * connect to `/v1/ws` and send an `auth` frame first, within AUTH_TIMEOUT_MS. Either way the
 * server answers `ready`, then delivers the device's queue (oldest first), then `queue-empty`,
 * then pushes new messages as they arrive. A second connection for the same device closes the
 * first with REPLACED (4410).
 *
 * Delivery is at least once: the server deletes a message only after the recipient's `ack`, and
 * redelivers unacknowledged messages on the next connection. Clients drop duplicates by
 * `envelope.id`. At most MAX_UNACKED_PER_CONNECTION messages are in flight to one connection.
 *
 * Errors: an `error` frame with an `id` answers that client frame and leaves the socket open;
 * one without an `id` is followed by a close whose code is ERRORS[code].close and whose reason
 * is the code.
 */
import { MAX_CLIENT_ID_LENGTH, MAX_MESSAGE_BYTES } from './limits.js';
import { deviceId, registrationId } from './keys.js';
import { deviceSecret, username } from './accounts.js';
import { base64Bytes, invalid, isPlainObject, literal, object, string, type Checked, type Validator } from './validate.js';
import type { ErrorCode } from './errors.js';

/** Signal ciphertext kinds: 'prekey' = PreKeySignalMessage (libsignal type 3), 'whisper' = SignalMessage (type 2). */
export type CiphertextType = 'prekey' | 'whisper';
export const CIPHERTEXT_TYPES = { prekey: 3, whisper: 2 } as const satisfies Record<CiphertextType, number>;

export interface Address {
  username: string;
  deviceId: number;
}

/** A message as delivered to a device. `source` is set by the server from the sender's authenticated socket. */
export interface Envelope {
  /** Server-assigned id, unique per server; the value to `ack`. Opaque; compare as a string. */
  id: string;
  type: CiphertextType;
  /** Base64 ciphertext, at most MAX_MESSAGE_BYTES decoded. */
  body: string;
  source: Address;
  /** When the server stored the message, milliseconds since the Unix epoch. */
  timestamp: number;
}

// ---- client → server ----

/** First frame when not using a ticket. */
export interface AuthFrame {
  type: 'auth';
  username: string;
  deviceId: number;
  /** Base64 device secret. */
  secret: string;
}

/** Send one message to one device. Answered by `sent` (stored durably) or `error` with the same id. */
export interface SendFrame {
  type: 'send';
  /** Client-chosen correlation id, 1..MAX_CLIENT_ID_LENGTH chars; echoed in `sent`/`error`. */
  id: string;
  /**
   * The recipient device. `registrationId`, when given, is the registration id the sender's
   * session was built against: if the device now has a different one (it re-registered), the
   * send is refused with STALE_DEVICE and nothing is stored. Optional, so older clients still
   * work (without the check).
   */
  to: SendAddress;
  message: { type: CiphertextType; body: string };
}

/** A `send` target: a device address plus, optionally, the registration id the sender expects. */
export interface SendAddress extends Address {
  registrationId?: number;
}

/** Acknowledge a delivered envelope (after the client has stored it): the server deletes it. Idempotent; no reply. */
export interface AckFrame {
  type: 'ack';
  /** `envelope.id` */
  id: string;
}

/** Keep-alive; answered by `pong` with the same id. */
export interface PingFrame {
  type: 'ping';
  id?: string;
}

export type ClientFrame = AuthFrame | SendFrame | AckFrame | PingFrame;

// ---- server → client ----

/** Authentication succeeded; the queue follows. */
export interface ReadyFrame {
  type: 'ready';
  username: string;
  deviceId: number;
}

export interface MessageFrame {
  type: 'message';
  envelope: Envelope;
}

/** The send with this client id is stored durably and will be delivered. */
export interface SentFrame {
  type: 'sent';
  /** The client's `send.id`. */
  id: string;
  /** The envelope id the recipient will see. */
  serverId: string;
  timestamp: number;
}

/** Everything queued at connect time has been pushed (later messages keep coming). Sent once per connection. */
export interface QueueEmptyFrame {
  type: 'queue-empty';
}

export interface PongFrame {
  type: 'pong';
  id?: string;
}

export interface ErrorFrame {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** The client frame id this answers; absent when the error closes the connection. */
  id?: string;
}

export type ServerFrame = ReadyFrame | MessageFrame | SentFrame | QueueEmptyFrame | PongFrame | ErrorFrame;

// ---- validators ----

export const clientId = string({ min: 1, max: MAX_CLIENT_ID_LENGTH });
export const address: Validator<Address> = object({ username, deviceId });
export const ciphertextType = literal('prekey', 'whisper');
export const messageBody = base64Bytes({ min: 1, max: MAX_MESSAGE_BYTES });
export const serverId = string({ min: 1, max: MAX_CLIENT_ID_LENGTH, pattern: /^[0-9A-Za-z_-]+$/ });

const authFrame: Validator<AuthFrame> = object({ type: literal('auth'), username, deviceId, secret: deviceSecret });
const sendFrame: Validator<SendFrame> = object({
  type: literal('send'),
  id: clientId,
  to: object({ username, deviceId, registrationId }, ['registrationId']),
  message: object({ type: ciphertextType, body: messageBody }),
});
const ackFrame: Validator<AckFrame> = object({ type: literal('ack'), id: serverId });
const pingFrame: Validator<PingFrame> = object({ type: literal('ping'), id: clientId }, ['id']);

const CLIENT_FRAMES: Record<ClientFrame['type'], Validator<ClientFrame>> = {
  auth: authFrame,
  send: sendFrame,
  ack: ackFrame,
  ping: pingFrame,
};

/**
 * Validates a parsed client frame. An invalid `send` keeps its `id` (when the id itself is valid)
 * in `sendId`, so the server can answer that send without closing the socket — but the server
 * closes on anything else invalid.
 */
export function validateClientFrame(v: unknown): Checked<ClientFrame> {
  if (!isPlainObject(v)) return invalid('$', 'expected an object');
  const t = v['type'];
  if (typeof t !== 'string' || !Object.prototype.hasOwnProperty.call(CLIENT_FRAMES, t)) return invalid('$.type', 'unknown frame type');
  return CLIENT_FRAMES[t as ClientFrame['type']](v, '$');
}

const envelope: Validator<Envelope> = object({
  id: serverId,
  type: ciphertextType,
  body: messageBody,
  source: address,
  timestamp: (v, p = '$') => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? { ok: true, value: v } : invalid(p, 'expected a timestamp')),
});

/** For clients: validates a parsed server frame (total; unknown types are Invalid so newer servers can be tolerated by ignoring them). */
export function validateServerFrame(v: unknown): Checked<ServerFrame> {
  if (!isPlainObject(v)) return invalid('$', 'expected an object');
  switch (v['type']) {
    case 'ready':
      return object({ type: literal('ready'), username, deviceId })(v);
    case 'message':
      return object({ type: literal('message'), envelope })(v);
    case 'sent':
      return object({ type: literal('sent'), id: clientId, serverId, timestamp: envelopeTimestamp })(v);
    case 'queue-empty':
      return object({ type: literal('queue-empty') })(v);
    case 'pong':
      return object({ type: literal('pong'), id: clientId }, ['id'])(v);
    case 'error': {
      const r = object({ type: literal('error'), code: string({ min: 1, max: 64 }), message: string({ max: 1024 }), id: clientId }, ['id'])(v);
      return r as Checked<ServerFrame>;
    }
    default:
      return invalid('$.type', 'unknown frame type');
  }
}

function envelopeTimestamp(v: unknown, p = '$'): Checked<number> {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? { ok: true, value: v } : invalid(p, 'expected a timestamp');
}
