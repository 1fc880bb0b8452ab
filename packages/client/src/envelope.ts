/**
 * The plaintext inside every encrypted message: a small versioned JSON object, so messages carry
 * an id (for duplicate suppression across re-encryptions) and the sender's timestamp. It is padded
 * before encryption (Signal's scheme: 0x80 then zeros up to a multiple of PADDING_BLOCK) so the
 * ciphertext length reveals only a coarse size class.
 */
import { USERNAME_MAX_LENGTH, USERNAME_PATTERN } from '@tacit/api';
import { utf8Decode, utf8Encode } from './bytes.js';
import { decodeAttachmentPointer, encodeAttachmentPointer, type AttachmentPointer } from './attachment/pointer.js';
import { decodeAction, encodeAction, isExpiry, type Action } from './chat/actions.js';

export const ENVELOPE_VERSION = 1;
/** Longest message id. Ids are 128-bit random values in hex (32 characters). */
export const MAX_MESSAGE_ID_LENGTH = 64;
/** Padding block of the plaintext (the size Signal's apps use). */
export const PADDING_BLOCK = 160;
/**
 * Largest padded plaintext: senders keep within it (text.ts checkText), receivers decode nothing
 * larger. 80 KiB of envelope stays under the server's 96 KiB ciphertext cap after the protocol's
 * own overhead (PreKeySignalMessage with its Kyber ciphertext, AES padding, MAC).
 */
export const MAX_ENVELOPE_BYTES = 80 * 1024;
/**
 * Latest sending time a message may claim, ms since the epoch: the last a JavaScript Date holds
 * (ECMAScript's time range, 8.64e15). A later one is an Invalid Date to every app that shows it
 * (its toISOString throws), and a disappearing timer counted from it leaves the safe integers.
 */
export const MAX_SENT_AT = 8_640_000_000_000_000;

export interface Envelope {
  readonly v: typeof ENVELOPE_VERSION;
  /** Random id chosen by the sender; equal ids are the same message. */
  readonly id: string;
  /** The message's text; with a `file`, its caption (possibly empty). */
  readonly text: string;
  /** A file (attachment/pointer.ts): absent for a text message. */
  readonly file?: AttachmentPointer;
  /** Sender's clock, ms since the epoch. Informational only: order comes from the server queue. */
  readonly sentAt: number;
  /**
   * A sync transcript ("sent to X"): this account's own message to `sentTo`, copied to its other
   * devices so they show it in the conversation with X. Accepted only from the account's own
   * devices under its own identity key (inbox.ts); from anyone else the message is refused.
   */
  readonly sentTo?: string;
  /** An edit, deletion, reaction or timer change (chat/actions.ts); `text` is then empty. */
  readonly act?: Action;
  /** The conversation's disappearing timer when it was sent, ms (chat/actions.ts). */
  readonly exp?: number;
}

export function encodeEnvelope(env: Envelope): Uint8Array {
  const json = utf8Encode(
    JSON.stringify({
      v: env.v,
      id: env.id,
      text: env.text,
      sentAt: env.sentAt,
      ...(env.file !== undefined ? { file: encodeAttachmentPointer(env.file) } : {}),
      ...(env.sentTo !== undefined ? { sentTo: env.sentTo } : {}),
      ...(env.act !== undefined ? { act: encodeAction(env.act) } : {}),
      ...(env.exp !== undefined ? { exp: env.exp } : {}),
    }),
  );
  const padded = new Uint8Array((Math.floor(json.length / PADDING_BLOCK) + 1) * PADDING_BLOCK);
  padded.set(json);
  padded[json.length] = 0x80;
  return padded;
}

/** Total: returns undefined for anything that is not a well-formed envelope. */
export function decodeEnvelope(bytes: Uint8Array): Envelope | undefined {
  const r = readEnvelope(bytes);
  return r.ok ? r.envelope : undefined;
}

/**
 * Total, with the reason: BAD_ENVELOPE for anything that is not an envelope, BAD_ATTACHMENT (and
 * the problem in words) for an envelope whose file pointer does not check out.
 */
export function readEnvelope(bytes: Uint8Array): { ok: true; envelope: Envelope } | { ok: false; reason: 'BAD_ENVELOPE' } | { ok: false; reason: 'BAD_ATTACHMENT'; problem: string } {
  const env = decodePlain(bytes);
  if (env === undefined) return { ok: false, reason: 'BAD_ENVELOPE' };
  if (env.file === undefined) return { ok: true, envelope: env.envelope };
  const p = decodeAttachmentPointer(env.file);
  if (!p.ok) return { ok: false, reason: 'BAD_ATTACHMENT', problem: p.problem };
  return { ok: true, envelope: { ...env.envelope, file: p.pointer } };
}

function decodePlain(bytes: Uint8Array): { envelope: Envelope; file: unknown } | undefined {
  if (bytes.length === 0 || bytes.length > MAX_ENVELOPE_BYTES) return undefined;
  let end = bytes.length - 1;
  while (end >= 0 && bytes[end] === 0) end--;
  if (end < 0 || bytes[end] !== 0x80) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(utf8Decode(bytes.subarray(0, end)));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  const { v, id, text, sentAt, file, sentTo } = o;
  if (v !== ENVELOPE_VERSION) return undefined;
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_MESSAGE_ID_LENGTH) return undefined;
  // The sender bounds characters (text.ts); here the envelope's size already bounds the text.
  if (typeof text !== 'string') return undefined;
  if (typeof sentAt !== 'number' || !Number.isSafeInteger(sentAt) || sentAt < 0 || sentAt > MAX_SENT_AT) return undefined;
  // A username as the server has them: a longer name would make a conversation record no decoder accepts.
  if (sentTo !== undefined && (typeof sentTo !== 'string' || sentTo.length > USERNAME_MAX_LENGTH || !USERNAME_PATTERN.test(sentTo))) return undefined;
  // Edits, deletions, reactions and timers (chat/actions.ts): a malformed one drops the message.
  const act = o['act'] === undefined ? undefined : decodeAction(o['act']);
  if (o['act'] !== undefined && (act === undefined || text !== '' || file !== undefined)) return undefined;
  if (o['exp'] !== undefined && !isExpiry(o['exp'])) return undefined;
  const exp = o['exp'] as number | undefined;
  return { envelope: { v, id, text, sentAt, ...(sentTo !== undefined ? { sentTo } : {}), ...(act !== undefined ? { act } : {}), ...(exp !== undefined ? { exp } : {}) }, file };
}
