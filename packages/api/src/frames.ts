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
import { MAX_ACK_IDS, MAX_CLIENT_ID_LENGTH, MAX_DEVICE_ID, MAX_FANOUT_DEVICES, MAX_MESSAGE_BYTES, MAX_REGISTRATION_ID, MAX_SENT_BATCH, MESSAGE_TTL_MS, MIN_MESSAGE_TTL_MS } from './limits.js';
import { deviceId, registrationId } from './keys.js';
import { deviceSecret, username } from './accounts.js';
import { array, base64Bytes, integer, invalid, isPlainObject, literal, object, ok, string, type Checked, type Validator } from './validate.js';
import type { ErrorCode } from './errors.js';

/**
 * Signal ciphertext kinds: 'prekey' = PreKeySignalMessage (libsignal type 3), 'whisper' =
 * SignalMessage (type 2), 'sender-key' = SenderKeyMessage (type 7, a group message, one
 * ciphertext for every member device).
 */
export type CiphertextType = 'prekey' | 'whisper' | 'sender-key';
export const CIPHERTEXT_TYPES = { prekey: 3, whisper: 2, 'sender-key': 7 } as const satisfies Record<CiphertextType, number>;

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
  /**
   * Sent with `ephemeral: true` (a typing indicator): relayed to this live connection only, never
   * stored. Its `id` is not a stored message's (acking it is harmless and does nothing).
   */
  ephemeral?: true;
}

// ---- client → server ----

/** First frame when not using a ticket. */
export interface AuthFrame {
  type: 'auth';
  username: string;
  deviceId: number;
  /** Base64 device secret. */
  secret: string;
  /**
   * `true`: this client understands `sent-batch` (SentBatchFrame), and the server answers
   * this connection's sends only in that form. Batched acks (AckBatchFrame) are accepted from any
   * client. Servers older than this field refuse it (INVALID_REQUEST, close 4400); a client then
   * reconnects without it and keeps to the single forms.
   */
  batched?: true;
}

/** Send one message to one device. Answered by `sent` (stored durably) or `error` with the same id. */
export interface SendFrame {
  type: 'send';
  /**
   * Optional: keep the message queued at most this long (ms, MIN_MESSAGE_TTL_MS..MESSAGE_TTL_MS)
   * instead of the server's MESSAGE_TTL_MS; a disappearing conversation's messages send their timer.
   */
  ttlMs?: number;
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
  /**
   * Every device of `to.username` the sender is writing this message to (each in its own `send`),
   * when it wants its device list checked with the `send-multi` rules (Signal's 409): devices the
   * account has but the list lacks (`missing`; the sending device is left out of its own account)
   * or names but the account does not have (`extra`) refuse the send with MISMATCHED_DEVICES and
   * the error's `accounts`; nothing is stored. Must contain `to.deviceId`. Absent: no check.
   */
  devices?: number[];
  /**
   * Relay only to the device's live connection and drop it otherwise: never stored, never
   * queued, never redelivered (typing indicators). Answered by `sent` with `ephemeral: true`,
   * the same answer whether or not the device was connected (it does not tell whether anyone is
   * online). Rate limited per connection (EPHEMERAL_SENDS_PER_SECOND).
   */
  ephemeral?: boolean;
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

/**
 * Acknowledge several delivered envelopes at once (what a client stored in one commit): one frame
 * instead of one per message. 1..MAX_ACK_IDS distinct `envelope.id`s; an id the server did not
 * push on this connection (and has not been acknowledged) is ignored. No reply.
 */
export interface AckBatchFrame {
  type: 'ack';
  ids: string[];
}

/** Keep-alive; answered by `pong` with the same id. */
export interface PingFrame {
  type: 'ping';
  id?: string;
}

/**
 * One send to many devices (a "fan-out"): a group message (one shared `message` for every device)
 * or a pairwise message to every device of one or more accounts (a `message` per device). The
 * server checks each named account's device list in the same transaction as the inserts, with
 * Signal's rules, and stores a copy for every device or for none:
 * - an unknown account: NOT_FOUND;
 * - else a named device whose registration id is not its current one: STALE_DEVICE (`stale`);
 * - else devices the account has but the frame does not name (`missing`), or names but the
 *   account does not have (`extra`; the sending device counts as extra in its own account):
 *   MISMATCHED_DEVICES.
 * The `error` reply's `accounts` then says, per account, what to fix. A device whose mailbox is
 * full is the one exception to all-or-nothing: it is skipped (as a single send to it would be
 * refused) and listed in `sent-multi.mailboxFull`, so one device that never connects cannot block
 * a group. At most MAX_FANOUT_DEVICES devices (TOO_MANY_RECIPIENTS) and MAX_FANOUT_BYTES stored
 * bytes (MESSAGE_TOO_LARGE); the frame must fit in MAX_FRAME_BYTES.
 *
 * Two spellings of the recipient list, exactly one per frame: the compact `to` (CompactSendMultiFrame,
 * what the SDK sends) or the original `recipients` (still accepted). Validation turns either
 * into this form, which is what the server works with.
 */
export interface SendMultiFrame {
  type: 'send-multi';
  /** Client-chosen correlation id, echoed in `sent-multi`/`error`. */
  id: string;
  /** Every recipient account once, each with every device the sender means to reach. */
  recipients: FanoutRecipient[];
  /** The shared ciphertext (a group message); absent when each device carries its own. */
  message?: { type: CiphertextType; body: string };
  /** Optional: at most this long queued (ms), as on `send`. */
  ttlMs?: number;
  /**
   * As on `send`: pushed to the named devices that are connected, dropped for the others, never
   * stored; the device lists are not checked. Answered by `sent-multi` with `ephemeral: true` and
   * `stored: 0`, whichever devices were connected.
   */
  ephemeral?: boolean;
}

export interface FanoutRecipient {
  username: string;
  /** Distinct device ids, each with the registration id its ciphertext was made for. */
  devices: FanoutDevice[];
}

export interface FanoutDevice {
  deviceId: number;
  registrationId: number;
  /** This device's own ciphertext; present on every device exactly when the frame has no `message`. */
  message?: { type: CiphertextType; body: string };
}

/**
 * One account of a compact `send-multi`: its username, its device ids, the registration id of each
 * (parallel arrays, same length, 1..MAX_DEVICE_ID devices), and, when the frame has no shared
 * `message`, each device's own ciphertext in a fourth parallel array. About 20 bytes per account
 * of one device against about 70 in `recipients` (issue 9's byte target for group sends).
 */
export type CompactRecipient =
  | [username: string, deviceIds: number[], registrationIds: number[]]
  | [username: string, deviceIds: number[], registrationIds: number[], messages: { type: CiphertextType; body: string }[]];

/** `send-multi` with the compact recipient list `to` (same rules and answers as SendMultiFrame). */
export interface CompactSendMultiFrame {
  type: 'send-multi';
  id: string;
  /** Every recipient account once, 1..MAX_FANOUT_DEVICES entries. */
  to: CompactRecipient[];
  message?: { type: CiphertextType; body: string };
  /** Optional: at most this long queued (ms), as on `send`. */
  ttlMs?: number;
  /** As on SendMultiFrame. */
  ephemeral?: boolean;
}

/** A `send-multi` as a client may put it on the wire (either spelling). */
export type SendMultiWireFrame = SendMultiFrame | CompactSendMultiFrame;

export type ClientFrame = AuthFrame | SendFrame | SendMultiFrame | AckFrame | AckBatchFrame | PingFrame;

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
  /** An ephemeral send: not stored, and nothing said of whether a live connection took it. */
  ephemeral?: true;
}

/**
 * Several sends of one connection stored durably in one commit, to a connection that said
 * `batched` in its `auth` (which gets no single `sent`): one frame per commit instead of one per send. 1..MAX_SENT_BATCH
 * entries, in the order the sends arrived. Refusals still come one `error` per send.
 */
export interface SentBatchFrame {
  type: 'sent-batch';
  sent: SentEntry[];
}

/** One send of a `sent-batch`: the fields of a single `sent`. */
export interface SentEntry {
  /** The client's `send.id`. */
  id: string;
  /** The envelope id the recipient will see. */
  serverId: string;
  timestamp: number;
}

/** The `send-multi` with this client id is stored durably for every device it named (but `mailboxFull`). */
export interface SentMultiFrame {
  type: 'sent-multi';
  /** The client's `send-multi.id`. */
  id: string;
  timestamp: number;
  /** How many devices it was stored for. */
  stored: number;
  /** Devices skipped because their mailbox is full (MAX_QUEUE_PER_DEVICE); absent when none. */
  mailboxFull?: Address[];
  /** An ephemeral send: nothing stored, and nothing said of which devices were connected. */
  ephemeral?: true;
}

/** What is wrong with one account's device list in a `send-multi` (device ids, ascending). */
export interface DeviceMismatch {
  username: string;
  missing: number[];
  extra: number[];
  stale: number[];
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
  /** For a `send-multi` refused with NOT_FOUND, STALE_DEVICE or MISMATCHED_DEVICES: what to fix, per account. */
  accounts?: DeviceMismatch[];
}

export type ServerFrame = ReadyFrame | MessageFrame | SentFrame | SentBatchFrame | SentMultiFrame | QueueEmptyFrame | PongFrame | ErrorFrame;

// ---- validators ----

export const clientId = string({ min: 1, max: MAX_CLIENT_ID_LENGTH });
export const address: Validator<Address> = object({ username, deviceId });
export const ciphertextType = literal('prekey', 'whisper', 'sender-key');
export const messageBody = base64Bytes({ min: 1, max: MAX_MESSAGE_BYTES });
export const serverId = string({ min: 1, max: MAX_CLIENT_ID_LENGTH, pattern: /^[0-9A-Za-z_-]+$/ });

const boolean: Validator<boolean> = (v, p = '$') => (typeof v === 'boolean' ? ok(v) : invalid(p, 'expected true or false'));
const authFrame: Validator<AuthFrame> = object({ type: literal('auth'), username, deviceId, secret: deviceSecret, batched: trueValue }, ['batched']);
/** A send's own queue time (ms): MIN_MESSAGE_TTL_MS..MESSAGE_TTL_MS; the server keeps it queued no longer. */
const ttlMs = integer(MIN_MESSAGE_TTL_MS, MESSAGE_TTL_MS);
const sendShape: Validator<SendFrame> = object(
  {
    type: literal('send'),
    id: clientId,
    to: object({ username, deviceId, registrationId }, ['registrationId']),
    message: object({ type: ciphertextType, body: messageBody }),
    devices: array(deviceId, { min: 1, max: MAX_DEVICE_ID }),
    ttlMs,
    ephemeral: boolean,
  },
  ['devices', 'ttlMs', 'ephemeral'],
);
/** The shape, plus: `devices` names each device once and includes the target. */
const sendFrame: Validator<SendFrame> = (v, path = '$') => {
  const r = sendShape(v, path);
  if (!r.ok || r.value.devices === undefined) return r;
  const ids = new Set(r.value.devices);
  if (ids.size !== r.value.devices.length) return invalid(`${path}.devices`, 'device named twice');
  if (!ids.has(r.value.to.deviceId)) return invalid(`${path}.devices`, 'does not name the target device');
  return r;
};
const ciphertext = object({ type: ciphertextType, body: messageBody });
const fanoutDevice: Validator<FanoutDevice> = object({ deviceId, registrationId, message: ciphertext }, ['message']);
const fanoutRecipient: Validator<FanoutRecipient> = object({ username, devices: array(fanoutDevice, { min: 1, max: MAX_DEVICE_ID }) });
const sendMultiShape: Validator<SendMultiFrame> = object(
  { type: literal('send-multi'), id: clientId, recipients: array(fanoutRecipient, { min: 1, max: MAX_FANOUT_DEVICES }), message: ciphertext, ttlMs, ephemeral: boolean },
  ['message', 'ttlMs', 'ephemeral'],
);
const accountMessages = array(ciphertext, { min: 1, max: MAX_DEVICE_ID });

/**
 * 1..MAX_DEVICE_ID integers in lo..hi, in item `item` of compact entry `i` of the list at `list`.
 * Paths are made only for an answer, and no closure per entry: a group send names hundreds of
 * ids, and building paths eagerly was most of the list's validation cost.
 */
function idList(v: unknown, list: string, i: number, item: number, lo: number, hi: number): Checked<number[]> {
  if (!Array.isArray(v)) return invalid(`${list}[${i}][${item}]`, 'expected an array');
  if (v.length < 1) return invalid(`${list}[${i}][${item}]`, 'fewer than 1 items');
  if (v.length > MAX_DEVICE_ID) return invalid(`${list}[${i}][${item}]`, `more than ${MAX_DEVICE_ID} items`);
  for (let k = 0; k < v.length; k++) {
    const n: unknown = v[k];
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) return invalid(`${list}[${i}][${item}][${k}]`, 'expected an integer');
    if (n < lo || n > hi) return invalid(`${list}[${i}][${item}][${k}]`, `out of range ${lo}..${hi}`);
  }
  return ok((v as number[]).slice());
}

/** Compact entry `i` of the list at `list`, [username, deviceIds, registrationIds, messages?], as a FanoutRecipient. */
function compactRecipient(v: unknown, list: string, i: number): Checked<FanoutRecipient> {
  if (!Array.isArray(v)) return invalid(`${list}[${i}]`, 'expected [username, deviceIds, registrationIds(, messages)]');
  if (v.length !== 3 && v.length !== 4) return invalid(`${list}[${i}]`, 'expected 3 or 4 items');
  const name = username(v[0]);
  if (!name.ok) return invalid(`${list}[${i}][0]`, name.reason);
  const ids = idList(v[1], list, i, 1, 1, MAX_DEVICE_ID);
  if (!ids.ok) return ids;
  const regs = idList(v[2], list, i, 2, 1, MAX_REGISTRATION_ID);
  if (!regs.ok) return regs;
  if (regs.value.length !== ids.value.length) return invalid(`${list}[${i}][2]`, 'not one registration id per device');
  let messages: { type: CiphertextType; body: string }[] | undefined;
  if (v.length === 4) {
    const m = accountMessages(v[3], `${list}[${i}][3]`);
    if (!m.ok) return m;
    if (m.value.length !== ids.value.length) return invalid(`${list}[${i}][3]`, 'not one message per device');
    messages = m.value;
  }
  const devices: FanoutDevice[] = [];
  for (let j = 0; j < ids.value.length; j++) {
    const d: FanoutDevice = { deviceId: ids.value[j]!, registrationId: regs.value[j]! };
    if (messages !== undefined) d.message = messages[j]!;
    devices.push(d);
  }
  return ok({ username: name.value, devices });
}

/** The compact list: 1..MAX_FANOUT_DEVICES entries. */
function compactList(v: unknown, path = '$'): Checked<FanoutRecipient[]> {
  if (!Array.isArray(v)) return invalid(path, 'expected an array');
  if (v.length < 1) return invalid(path, 'fewer than 1 items');
  if (v.length > MAX_FANOUT_DEVICES) return invalid(path, `more than ${MAX_FANOUT_DEVICES} items`);
  const out: FanoutRecipient[] = [];
  for (let i = 0; i < v.length; i++) {
    const r = compactRecipient(v[i], path, i);
    if (!r.ok) return r;
    out.push(r.value);
  }
  return ok(out);
}
const compactShape = object({ type: literal('send-multi'), id: clientId, to: compactList, message: ciphertext, ttlMs, ephemeral: boolean }, ['message', 'ttlMs', 'ephemeral']);

/**
 * The shape (either spelling, never both), plus: each account and device named once, and exactly
 * one way of carrying the ciphertext.
 */
const sendMultiFrame: Validator<SendMultiFrame> = (v, path = '$') => {
  let r: Checked<SendMultiFrame>;
  const compact = isPlainObject(v) && Object.prototype.hasOwnProperty.call(v, 'to');
  if (compact) {
    if (Object.prototype.hasOwnProperty.call(v, 'recipients')) return invalid(`${path}.recipients`, 'both to and recipients');
    const c = compactShape(v, path);
    if (!c.ok) return c;
    const { to, ...rest } = c.value;
    r = ok({ ...rest, recipients: to });
  } else r = sendMultiShape(v, path);
  if (!r.ok) return r;
  const f = r.value;
  const names = new Set<string>();
  for (let i = 0; i < f.recipients.length; i++) {
    const rcpt = f.recipients[i]!;
    // Paths are made only for an answer (see idList).
    if (names.has(rcpt.username)) return invalid(compact ? `${path}.to[${i}][0]` : `${path}.recipients[${i}].username`, 'account named twice');
    names.add(rcpt.username);
    const ids = new Set<number>();
    for (let j = 0; j < rcpt.devices.length; j++) {
      const d = rcpt.devices[j]!;
      if (ids.has(d.deviceId)) return invalid(compact ? `${path}.to[${i}][1][${j}]` : `${path}.recipients[${i}].devices[${j}].deviceId`, 'device named twice');
      ids.add(d.deviceId);
      if ((d.message === undefined) !== (f.message !== undefined)) {
        return invalid(
          compact ? `${path}.to[${i}]` : `${path}.recipients[${i}].devices[${j}]`,
          f.message === undefined ? 'each device needs its message when the frame has none' : 'a device message beside the shared one',
        );
      }
    }
  }
  return ok(f);
};

const singleAck: Validator<AckFrame> = object({ type: literal('ack'), id: serverId });
const ackIds = array(serverId, { min: 1, max: MAX_ACK_IDS });
const batchAckShape: Validator<AckBatchFrame> = object({ type: literal('ack'), ids: ackIds });

/** `{type, id}` or `{type, ids}` (never both); the ids of a batch distinct. */
const ackFrame: Validator<AckFrame | AckBatchFrame> = (v, path = '$') => {
  if (!isPlainObject(v) || !Object.prototype.hasOwnProperty.call(v, 'ids')) return singleAck(v, path);
  const r = batchAckShape(v, path);
  if (!r.ok) return r;
  const seen = new Set<string>();
  for (let i = 0; i < r.value.ids.length; i++) {
    const id = r.value.ids[i]!;
    if (seen.has(id)) return invalid(`${path}.ids[${i}]`, 'id named twice');
    seen.add(id);
  }
  return r;
};
const pingFrame: Validator<PingFrame> = object({ type: literal('ping'), id: clientId }, ['id']);

const CLIENT_FRAMES: Record<ClientFrame['type'], Validator<ClientFrame>> = {
  auth: authFrame,
  send: sendFrame,
  'send-multi': sendMultiFrame,
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
  ephemeral: trueValue,
}, ['ephemeral']);

/** For clients: validates a parsed server frame (total; unknown types are Invalid so newer servers can be tolerated by ignoring them). */
export function validateServerFrame(v: unknown): Checked<ServerFrame> {
  if (!isPlainObject(v)) return invalid('$', 'expected an object');
  switch (v['type']) {
    case 'ready':
      return object({ type: literal('ready'), username, deviceId })(v);
    case 'message':
      return object({ type: literal('message'), envelope })(v);
    // `delivered` on an ephemeral answer: sent by servers before 2026-12-03, still accepted, unused.
    case 'sent':
      return object({ type: literal('sent'), id: clientId, serverId, timestamp: envelopeTimestamp, ephemeral: trueValue, delivered: integer(0, 1) }, ['ephemeral', 'delivered'])(v);
    case 'sent-batch':
      return sentBatch(v);
    case 'sent-multi':
      return object(
        {
          type: literal('sent-multi'),
          id: clientId,
          timestamp: envelopeTimestamp,
          stored: integer(0, Number.MAX_SAFE_INTEGER),
          mailboxFull: array(address, { max: MAX_FANOUT_DEVICES * MAX_DEVICE_ID }),
          ephemeral: trueValue,
          delivered: integer(0, MAX_FANOUT_DEVICES),
        },
        ['mailboxFull', 'ephemeral', 'delivered'],
      )(v);
    case 'queue-empty':
      return object({ type: literal('queue-empty') })(v);
    case 'pong':
      return object({ type: literal('pong'), id: clientId }, ['id'])(v);
    case 'error': {
      const r = object(
        {
          type: literal('error'),
          code: string({ min: 1, max: 64 }),
          message: string({ max: 1024 }),
          id: clientId,
          accounts: array(deviceMismatch, { max: MAX_FANOUT_DEVICES * MAX_DEVICE_ID }),
        },
        ['id', 'accounts'],
      )(v);
      return r as Checked<ServerFrame>;
    }
    default:
      return invalid('$.type', 'unknown frame type');
  }
}

const sentEntry: Validator<SentEntry> = object({ id: clientId, serverId, timestamp: envelopeTimestamp });
const sentBatch: Validator<SentBatchFrame> = object({ type: literal('sent-batch'), sent: array(sentEntry, { min: 1, max: MAX_SENT_BATCH }) });

function trueValue(v: unknown, p = '$'): Checked<true> {
  return v === true ? ok(true) : invalid(p, 'expected true');
}

const deviceIds = array(deviceId, { max: MAX_DEVICE_ID });
const deviceMismatch: Validator<DeviceMismatch> = object({ username, missing: deviceIds, extra: deviceIds, stale: deviceIds });

function envelopeTimestamp(v: unknown, p = '$'): Checked<number> {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? { ok: true, value: v } : invalid(p, 'expected a timestamp');
}
