/**
 * A sender chooses an attachment's file name; a receiver must never let it choose where the file
 * lands or how it looks. `safeFileName` turns any string into one plain file name: no path
 * separators or traversal, no control or bidirectional-override characters (which can make
 * `exe.txt` display as `txt.exe`), no leading dots (hidden files), nothing Windows refuses, and
 * a bounded length that keeps the extension.
 */

/** Longest safe name, in UTF-8 bytes (file systems allow 255; room for a " (12)" suffix). */
export const MAX_FILE_NAME_BYTES = 200;

/** The name used when nothing usable is left. */
export const FALLBACK_FILE_NAME = 'attachment';

/** Names Windows reserves for devices, with any extension. */
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;

/**
 * C0 and C1 controls, DEL, bidirectional embeddings/overrides/isolates, the line and paragraph
 * separators, zero-width characters and the byte-order mark.
 */
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/gu;

/** Characters that separate paths or that Windows refuses in names. */
const RESERVED = /[/\\:*?"<>|]/g;

const utf8Length = (s: string): number => new TextEncoder().encode(s).length;

/** Cuts `s` to at most `max` UTF-8 bytes without splitting a character. */
function truncateUtf8(s: string, max: number): string {
  let out = '';
  let n = 0;
  for (const ch of s) {
    const len = utf8Length(ch);
    if (n + len > max) break;
    out += ch;
    n += len;
  }
  return out;
}

export function safeFileName(name: string): string {
  let s = name.normalize('NFC').replace(INVISIBLE, '').replace(RESERVED, '_');
  // No leading dots or spaces (hidden files, `..`); no trailing dots or spaces (Windows drops them).
  s = s.replace(/^[.\s]+/u, '').replace(/[.\s]+$/u, '');
  if (WINDOWS_DEVICE.test(s)) s = `_${s}`;
  if (utf8Length(s) > MAX_FILE_NAME_BYTES) {
    const dot = s.lastIndexOf('.');
    const ext = dot > 0 && s.length - dot <= 16 ? s.slice(dot) : '';
    s = truncateUtf8(s.slice(0, s.length - ext.length), MAX_FILE_NAME_BYTES - utf8Length(ext)).replace(/[.\s]+$/u, '') + ext;
  }
  return s === '' ? FALLBACK_FILE_NAME : s;
}

/** The n-th alternative for a name already taken: `report.pdf` → `report (1).pdf`. */
export function numberedFileName(name: string, n: number): string {
  if (n === 0) return name;
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)} (${n})${name.slice(dot)}` : `${name} (${n})`;
}
