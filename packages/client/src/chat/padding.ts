/**
 * The plaintext layout every message kind shares (envelope.ts): compact JSON, then Signal's
 * padding (0x80, then zeros up to a multiple of PADDING_BLOCK).
 */
import { utf8Decode, utf8Encode } from '../bytes.js';
import { MAX_ENVELOPE_BYTES, PADDING_BLOCK } from '../envelope.js';
import { isObj, type Obj } from '../record-codec.js';

export function padJson(body: object): Uint8Array {
  const json = utf8Encode(JSON.stringify(body));
  const padded = new Uint8Array((Math.floor(json.length / PADDING_BLOCK) + 1) * PADDING_BLOCK);
  padded.set(json);
  padded[json.length] = 0x80;
  return padded;
}

/** Total: the JSON object inside padded bytes, or undefined. */
export function unpadJson(bytes: Uint8Array, maxBytes = MAX_ENVELOPE_BYTES): Obj | undefined {
  if (bytes.length === 0 || bytes.length > maxBytes) return undefined;
  let end = bytes.length - 1;
  while (end >= 0 && bytes[end] === 0) end--;
  if (end < 0 || bytes[end] !== 0x80) return undefined;
  let o: unknown;
  try {
    o = JSON.parse(utf8Decode(bytes.subarray(0, end)));
  } catch {
    return undefined;
  }
  return isObj(o) ? o : undefined;
}

/** Does the plaintext start with `head` (how its kind's encoder starts every payload)? */
export function startsWith(bytes: Uint8Array, head: string): boolean {
  if (bytes.length < head.length) return false;
  for (let i = 0; i < head.length; i++) if (bytes[i] !== head.charCodeAt(i)) return false;
  return true;
}
