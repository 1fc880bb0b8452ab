/**
 * Multi-recipient sends on the socket (`send-multi`, see fanout.ts for the device-list rules):
 * limits, turning a validated frame into one store write, and its answer.
 *
 * Limits are answered on the frame, never by closing the socket: TOO_MANY_RECIPIENTS past
 * `maxFanoutDevices`, MESSAGE_TOO_LARGE for a body past `maxMessageBytes` or a total past
 * `maxFanoutBytes`, and (checked by the writer, with the sends of the same turn) RATE_LIMITED when
 * the sender's send bucket, shared with single sends, has fewer tokens than the frame has devices:
 * a fan-out to N devices stores N messages and costs N.
 */
import { base64DecodedLength, CIPHERTEXT_TYPES, isPlainObject, type ErrorCode, type SendMultiFrame } from '@tacit/api';
import type { Context } from '../context.js';
import type { FanoutDevice, FanoutResult, NewFanout } from '../fanout.js';
import { fanoutDigest } from '../resend.js';
import type { Connection } from './connection.js';
import type { BatchWriter } from './writer.js';

/** A refusal of one frame: answered with its id, the socket stays open. */
export interface Refusal {
  code: ErrorCode;
  message: string;
}

export interface PendingFanout {
  conn: Connection;
  clientId: string;
  fanout: NewFanout;
  /** Each device's body as the client sent it (canonical base64), reused in the `message` frames. */
  bodiesB64: string[][];
}

/** Past the size the validator accepts, a body is only measured here (so the answer can be given). */
function oversizeBody(body: unknown, maxBytes: number): boolean {
  if (typeof body !== 'string' || body.length <= Math.floor(maxBytes / 3) * 4) return false;
  const n = base64DecodedLength(body);
  return n > maxBytes || n < 0;
}

/**
 * Before validation: a frame over a limit gets its answer instead of an invalid-frame close.
 * Only counts and lengths are looked at; the frame's size (MAX_FRAME_BYTES) bounds the walk.
 */
export function precheckSendMulti(parsed: Record<string, unknown>, maxDevices: number, maxMessageBytes: number): Refusal | undefined {
  let devices = 0;
  const bodies: unknown[] = [isPlainObject(parsed['message']) ? parsed['message']['body'] : undefined];
  const recipients = parsed['recipients'];
  const to = parsed['to'];
  if (Array.isArray(recipients)) {
    for (const r of recipients) {
      if (!isPlainObject(r) || !Array.isArray(r['devices'])) continue;
      devices += r['devices'].length;
      for (const d of r['devices']) if (isPlainObject(d) && isPlainObject(d['message'])) bodies.push(d['message']['body']);
    }
  } else if (Array.isArray(to)) {
    // Compact entries: [username, deviceIds, registrationIds(, messages)].
    for (const r of to) {
      if (!Array.isArray(r) || !Array.isArray(r[1])) continue;
      devices += r[1].length;
      if (Array.isArray(r[3])) for (const m of r[3]) if (isPlainObject(m)) bodies.push(m['body']);
    }
  } else return undefined;
  if (devices > maxDevices) return { code: 'TOO_MANY_RECIPIENTS', message: `at most ${maxDevices} devices per send` };
  if (bodies.some((b) => oversizeBody(b, maxMessageBytes))) return { code: 'MESSAGE_TOO_LARGE', message: `body over ${maxMessageBytes} bytes` };
  return undefined;
}

export class FanoutSends {
  readonly #ctx: Context;
  readonly #writer: BatchWriter;

  constructor(ctx: Context, writer: BatchWriter) {
    this.#ctx = ctx;
    this.#writer = writer;
  }

  /** Runs on the parsed frame before validation (see precheckSendMulti). */
  precheck(parsed: Record<string, unknown>): Refusal | undefined {
    return precheckSendMulti(parsed, this.#ctx.limits.maxFanoutDevices, this.#ctx.limits.maxMessageBytes);
  }

  /** A `send-multi` that passed `precheck` and validation: refuse it on the frame, or queue its write. */
  accept(conn: Connection, frame: SendMultiFrame): void {
    const l = this.#ctx.limits;
    const refuse = (r: Refusal) => conn.reply({ type: 'error', code: r.code, message: r.message, id: frame.id });
    const now = this.#ctx.now();
    const shared = frame.message === undefined ? undefined : { kind: CIPHERTEXT_TYPES[frame.message.type], body: decode(frame.message.body), b64: frame.message.body };
    let total = 0;
    const bodiesB64: string[][] = [];
    const recipients = frame.recipients.map((r) => {
      const b64s: string[] = [];
      bodiesB64.push(b64s);
      return {
        username: r.username,
        devices: r.devices.map((d): FanoutDevice => {
          // The validator guarantees a message on every device exactly when there is no shared one.
          const own = shared ?? { kind: CIPHERTEXT_TYPES[d.message!.type], body: decode(d.message!.body), b64: d.message!.body };
          total += own.body.length;
          b64s.push(own.b64);
          return { deviceId: d.deviceId, registrationId: d.registrationId, kind: own.kind, body: own.body };
        }),
      };
    });
    if (total > l.maxFanoutBytes) return refuse({ code: 'MESSAGE_TOO_LARGE', message: `at most ${l.maxFanoutBytes} bytes stored per send` });
    if (conn.pendingSends >= l.maxPendingSendsPerConnection) {
      return refuse({ code: 'TOO_MANY_IN_FLIGHT', message: `at most ${l.maxPendingSendsPerConnection} sends awaiting an answer` });
    }
    conn.pendingSends++;
    this.#writer.fanout({
      conn,
      clientId: frame.id,
      // The digest lets a resent frame (its `sent-multi` was lost) be answered, not stored again.
      fanout: { from: conn.device!, recipients, timestamp: now, expiresAt: now + Math.min(l.messageTtlMs, frame.ttlMs ?? l.messageTtlMs), digest: fanoutDigest({ recipients }) },
      bodiesB64,
    });
  }
}

function decode(b64: string): Uint8Array {
  const b = Buffer.from(b64, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** The answer to a written fan-out: `sent-multi`, or the store's refusal with what to fix. */
export function fanoutAnswer(p: PendingFanout, r: FanoutResult): string {
  if (!r.ok) {
    const message =
      r.code === 'NOT_FOUND' ? 'no such account' : r.code === 'STALE_DEVICE' ? 'devices re-registered; refresh their keys' : 'the device lists do not match the accounts';
    return JSON.stringify({ type: 'error', code: r.code, message, id: p.clientId, accounts: r.accounts });
  }
  const stored = r.resent?.stored ?? r.stored.reduce((n, copies) => n + copies.filter((c) => c !== null).length, 0);
  return JSON.stringify({
    type: 'sent-multi',
    id: p.clientId,
    timestamp: r.resent?.timestamp ?? p.fanout.timestamp,
    stored,
    ...(r.mailboxFull.length > 0 ? { mailboxFull: r.mailboxFull } : {}),
  });
}
