// Multi-recipient ("fan-out") sends, the SDK side: build a `send-multi` frame, send it over a
// socket and read the server's answer. A group message is one shared ciphertext for every device;
// a pairwise message to every device of some accounts carries one ciphertext per device.
//
// The Relay resends a `send-multi` that had no answer when its connection ended; the server
// recognises the identical frame and answers it without storing it again (docs/API.md). The frame
// names its recipients in the compact `to` list. On a refusal nothing was stored;
// `accounts` says per account which devices are missing, extra or stale: archive the sessions of
// extra and stale devices, fetch bundles for missing and stale ones, encrypt for those, and send
// the whole frame again (the other devices' ciphertexts were never delivered and stay valid).
import {
  type Address,
  type CiphertextType,
  type DeviceMismatch,
  type ErrorCode,
  MAX_FANOUT_BYTES,
  MAX_FANOUT_DEVICES,
  MAX_FRAME_BYTES,
  parseJson,
  type CompactRecipient,
  type CompactSendMultiFrame,
  type SendMultiWireFrame,
  toBase64,
  validateClientFrame,
  validateServerFrame,
} from '@tacit/api';
import { ClientError } from './errors.js';

export interface FanoutCiphertext {
  type: CiphertextType;
  body: Uint8Array;
}

export interface FanoutTarget {
  username: string;
  /** Every device of the account to reach (of your own account: every device but this one). */
  devices: { deviceId: number; registrationId: number; message?: FanoutCiphertext }[];
}

export type SendMultiAnswer =
  | { ok: true; timestamp: number; stored: number; mailboxFull: Address[] }
  /** Refused, nothing stored. `accounts` is present for NOT_FOUND, STALE_DEVICE and MISMATCHED_DEVICES. */
  | { ok: false; code: ErrorCode | string; message: string; accounts: DeviceMismatch[] };

/**
 * A valid `send-multi` frame, with the compact recipient list (`to`: one [username, deviceIds,
 * registrationIds(, messages)] entry per account): with `shared`, one ciphertext for every device
 * (then no device may carry its own); without it, every device carries its own. Throws
 * INVALID_ARGUMENT when the frame would break the contract (names, ids, limits:
 * MAX_FANOUT_DEVICES, MAX_FANOUT_BYTES, MAX_FRAME_BYTES), so nothing the server would refuse by
 * closing the socket is ever sent.
 */
export function buildSendMulti(id: string, recipients: FanoutTarget[], shared?: FanoutCiphertext, ttlMs?: number): CompactSendMultiFrame {
  let devices = 0;
  let bytes = 0;
  for (const r of recipients) {
    for (const d of r.devices) {
      devices++;
      bytes += (shared ?? d.message)?.body.length ?? 0;
    }
  }
  if (devices > MAX_FANOUT_DEVICES) throw new ClientError('INVALID_ARGUMENT', `at most ${MAX_FANOUT_DEVICES} devices per send, got ${devices}`);
  if (bytes > MAX_FANOUT_BYTES) throw new ClientError('INVALID_ARGUMENT', `at most ${MAX_FANOUT_BYTES} ciphertext bytes per send, got ${bytes}`);
  // Plain loops: this runs once per group message over every member device.
  const to: CompactRecipient[] = [];
  for (const r of recipients) {
    const ids: number[] = [];
    const regs: number[] = [];
    let own = 0;
    for (const d of r.devices) {
      ids.push(d.deviceId);
      regs.push(d.registrationId);
      if (d.message !== undefined) own++;
    }
    if (own === 0) {
      to.push([r.username, ids, regs]);
      continue;
    }
    if (own !== r.devices.length) throw new ClientError('INVALID_ARGUMENT', `every device of ${r.username} needs its message, or none`);
    const messages: { type: CiphertextType; body: string }[] = [];
    for (const d of r.devices) messages.push(wire(d.message!));
    to.push([r.username, ids, regs, messages]);
  }
  const frame: CompactSendMultiFrame = { type: 'send-multi', id, to, ...(shared !== undefined ? { message: wire(shared) } : {}), ...(ttlMs !== undefined ? { ttlMs } : {}) };
  const checked = validateClientFrame(frame);
  if (!checked.ok) throw new ClientError('INVALID_ARGUMENT', `invalid send-multi at ${checked.path}: ${checked.reason}`);
  if (frameLengthBound(frame) > MAX_FRAME_BYTES && JSON.stringify(frame).length > MAX_FRAME_BYTES) throw new ClientError('INVALID_ARGUMENT', `the frame is over ${MAX_FRAME_BYTES} bytes; send fewer devices at once`);
  return frame;
}

function wire(c: FanoutCiphertext): { type: CiphertextType; body: string } {
  return { type: c.type, body: toBase64(c.body) };
}

/**
 * An upper bound on the length of JSON.stringify(frame), without writing it out (the frame is
 * written once, when it is sent): a string counts 6 per character (the longest escape) plus its
 * quotes, a base64 body its own length (nothing in it is escaped), an id at most 16 characters.
 */
function frameLengthBound(frame: CompactSendMultiFrame): number {
  const MESSAGE_OVERHEAD = 40; // {"type":"sender-key","body":""} and a comma
  let n = 64 + 6 * frame.id.length + (frame.message !== undefined ? frame.message.body.length + MESSAGE_OVERHEAD : 0);
  for (const [name, ids, regs, messages] of frame.to) {
    n += 16 + 6 * name.length + 17 * (ids.length + regs.length);
    if (messages !== undefined) for (const m of messages) n += m.body.length + MESSAGE_OVERHEAD;
  }
  return n;
}

/** The answer to the `send-multi` with this id, if `text` is one (a `sent-multi` or an `error`). */
export function parseSendMultiAnswer(text: string, id: string): SendMultiAnswer | undefined {
  const parsed = parseJson(text);
  if (!parsed.ok) return undefined;
  const checked = validateServerFrame(parsed.value);
  if (!checked.ok) return undefined;
  const f = checked.value;
  if (f.type === 'sent-multi' && f.id === id) return { ok: true, timestamp: f.timestamp, stored: f.stored, mailboxFull: f.mailboxFull ?? [] };
  if (f.type === 'error' && f.id === id) return { ok: false, code: f.code, message: f.message, accounts: f.accounts ?? [] };
  return undefined;
}

/** The least a socket must offer: write text, and subscribe to incoming text (returns unsubscribe). */
export interface FrameSocket {
  send(text: string): void;
  onText(listener: (text: string) => void): () => void;
}

/** Sends `frame` on an authenticated socket and resolves with its answer (TIMEOUT after `timeoutMs`). */
export function sendMulti(socket: FrameSocket, frame: SendMultiWireFrame, timeoutMs: number): Promise<SendMultiAnswer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new ClientError('TIMEOUT', 'no answer to the multi-recipient send'));
    }, timeoutMs);
    const stop = socket.onText((text) => {
      const answer = parseSendMultiAnswer(text, frame.id);
      if (answer === undefined) return;
      clearTimeout(timer);
      stop();
      resolve(answer);
    });
    socket.send(JSON.stringify(frame));
  });
}
