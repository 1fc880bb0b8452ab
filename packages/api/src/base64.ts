/**
 * Standard base64 (RFC 4648 §4, with padding), the encoding of every byte field in JSON.
 * Isomorphic: no Buffer, no atob. Decoding is strict and canonical: one string per byte string
 * (no whitespace, no missing padding, zero trailing bits), so equal bytes compare as equal text.
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

export function toBase64(bytes: Uint8Array): string {
  let out = '';
  const n = bytes.length;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[v >> 18]! + ALPHABET[(v >> 12) & 63]! + ALPHABET[(v >> 6) & 63]! + ALPHABET[v & 63]!;
  }
  if (i < n) {
    const v = (bytes[i]! << 16) | ((i + 1 < n ? bytes[i + 1]! : 0) << 8);
    out += ALPHABET[v >> 18]! + ALPHABET[(v >> 12) & 63]!;
    out += i + 1 < n ? ALPHABET[(v >> 6) & 63]! + '=' : '==';
  }
  return out;
}

/**
 * Decoded length of a canonical base64 string, or -1 if `s` is not canonical base64.
 * Runs before any allocation, so a length limit can be checked first.
 */
export function base64DecodedLength(s: string): number {
  const len = s.length;
  if (len % 4 !== 0) return -1;
  if (len === 0) return 0;
  let pad = 0;
  if (s.charCodeAt(len - 1) === 61 /* = */) pad = s.charCodeAt(len - 2) === 61 ? 2 : 1;
  for (let i = 0; i < len - pad; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || DECODE[c]! < 0) return -1;
  }
  // Canonical form: the bits below the last encoded byte are zero.
  const last = DECODE[s.charCodeAt(len - 1 - pad)]!;
  if (pad === 1 && (last & 0b11) !== 0) return -1;
  if (pad === 2 && (last & 0b1111) !== 0) return -1;
  return (len / 4) * 3 - pad;
}

/** Decodes canonical base64; returns undefined for anything else (never throws). */
export function fromBase64(s: string): Uint8Array | undefined {
  const n = base64DecodedLength(s);
  if (n < 0) return undefined;
  const out = new Uint8Array(n);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const a = DECODE[s.charCodeAt(i)]!;
    const b = DECODE[s.charCodeAt(i + 1)]!;
    const c = s.charCodeAt(i + 2) === 61 ? 0 : DECODE[s.charCodeAt(i + 2)]!;
    const d = s.charCodeAt(i + 3) === 61 ? 0 : DECODE[s.charCodeAt(i + 3)]!;
    const v = (a << 18) | (b << 12) | (c << 6) | d;
    if (o < n) out[o++] = v >> 16;
    if (o < n) out[o++] = (v >> 8) & 255;
    if (o < n) out[o++] = v & 255;
  }
  return out;
}
