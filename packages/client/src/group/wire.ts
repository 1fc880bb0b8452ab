/**
 * What group messages carry inside their encryption (docs/PROTOCOL.md, "Groups"). Each is a small
 * padded JSON object like the text envelope (envelope.ts: Signal's 0x80-then-zeros padding to a
 * multiple of PADDING_BLOCK), told apart by its `grp` field, which a text envelope never has.
 *
 * Over a pairwise session:
 * - `{v: 1, grp: "state", state}`: the sender's whole group state (state.ts), after a change.
 * - `{v: 1, grp: "key", group, skdm}`: the sender's SenderKeyDistributionMessage for the group
 *   (base64), handed to a member device that lacks the sender's current key.
 * As the one shared SenderKeyMessage:
 * - `{v: 1, grp: "text", group, id, text, sentAt}`: a message to the group.
 *
 * Decoders are total: anything else gives undefined.
 */
import { fromBase64, toBase64 } from '@tacit/api';
import { ENVELOPE_VERSION, MAX_MESSAGE_ID_LENGTH, MAX_SENT_AT } from '../envelope.js';
import { isInt, isStr } from '../record-codec.js';
import { isGroupId, parseGroupState, type GroupState } from './state.js';
import { padJson, unpadJson } from '../chat/padding.js';
import { decodeAttachmentPointer, encodeAttachmentPointer, type AttachmentPointer } from '../attachment/pointer.js';
import { decodeAction, isExpiry, type Action } from '../chat/actions.js';

/** Longest serialized distribution message accepted (libsignal's is 1 + 89 bytes and a little). */
export const MAX_SKDM_BYTES = 256;

export type GroupPayload =
  | { grp: 'state'; state: GroupState }
  | { grp: 'key'; group: string; skdm: Uint8Array }
  | { grp: 'text'; group: string; id: string; text: string; sentAt: number; file?: AttachmentPointer; act?: Action; exp?: number };

export function encodeGroupPayload(p: GroupPayload): Uint8Array {
  const body =
    p.grp === 'key'
      ? { v: ENVELOPE_VERSION, grp: p.grp, group: p.group, skdm: toBase64(p.skdm) }
      : p.grp === 'text' && p.file !== undefined
        ? { v: ENVELOPE_VERSION, ...p, file: encodeAttachmentPointer(p.file) }
        : { v: ENVELOPE_VERSION, ...p };
  return padJson(body);
}

/** Total: the group payload in `bytes`, or undefined (not one, or malformed). */
export function decodeGroupPayload(bytes: Uint8Array): GroupPayload | undefined {
  const o = unpadJson(bytes);
  if (o === undefined || o['v'] !== ENVELOPE_VERSION) return undefined;
  switch (o['grp']) {
    case 'state': {
      const state = parseGroupState(o['state']);
      return state === undefined ? undefined : { grp: 'state', state };
    }
    case 'key': {
      const skdm = isStr(o['skdm'], MAX_SKDM_BYTES * 2) ? fromBase64(o['skdm']) : undefined;
      if (!isGroupId(o['group']) || skdm === undefined || skdm.length > MAX_SKDM_BYTES) return undefined;
      return { grp: 'key', group: o['group'], skdm };
    }
    case 'text': {
      const { group, id, text, sentAt } = o;
      if (!isGroupId(group) || !isStr(id, MAX_MESSAGE_ID_LENGTH) || id.length === 0 || typeof text !== 'string' || !isInt(sentAt) || sentAt > MAX_SENT_AT) return undefined;
      // Edits, deletions, reactions, timers and a message's own timer (chat/actions.ts), as strictly as pairwise.
      const act = o['act'] === undefined ? undefined : decodeAction(o['act']);
      if (o['act'] !== undefined && (act === undefined || text !== '' || o['file'] !== undefined)) return undefined;
      if (o['exp'] !== undefined && !isExpiry(o['exp'])) return undefined;
      const extra = { ...(act !== undefined ? { act } : {}), ...(o['exp'] !== undefined ? { exp: o['exp'] as number } : {}) };
      // A file (attachment/pointer.ts), decoded as strictly as in a pairwise message.
      if (o['file'] === undefined) return { grp: 'text', group, id, text, sentAt, ...extra };
      const f = decodeAttachmentPointer(o['file']);
      return f.ok ? { grp: 'text', group, id, text, sentAt, file: f.pointer, ...extra } : undefined;
    }
    default:
      return undefined;
  }
}

/** Does this plaintext claim to be a group payload (so the text-envelope decoder should not see it)? */
export function looksLikeGroupPayload(bytes: Uint8Array): boolean {
  // `{"v":1,"grp":` is how encodeGroupPayload starts every payload.
  const head = '{"v":1,"grp":';
  if (bytes.length < head.length) return false;
  for (let i = 0; i < head.length; i++) if (bytes[i] !== head.charCodeAt(i)) return false;
  return true;
}
