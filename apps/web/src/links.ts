/**
 * Finds web links in message text, for rendering them clickable. Only `http:` and `https:` URLs
 * written out in full become links (never `javascript:`, `data:`, `file:` or anything else, and
 * not bare `example.com`); each is re-parsed by the URL parser, and the page renders it with
 * target=_blank and rel="noopener noreferrer", so the opened site gets neither a handle on this
 * page nor a Referer naming it.
 */

export type TextPart = string | { readonly text: string; readonly href: string };

/** Candidates: a scheme, then anything up to white space or a character URLs do not contain. */
const CANDIDATE = /\bhttps?:\/\/[^\s<>"'`{}|\\^\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]+/gi;
/** Longest link made clickable; longer ones stay text (a link that long is more likely garbage). */
export const MAX_LINK_LENGTH = 2048;

/** Trailing punctuation that usually ends the sentence, not the URL ("see https://x.org/a.") */
function trimTrailing(url: string): string {
  let end = url.length;
  for (;;) {
    const c = url[end - 1];
    if (c === undefined) break;
    if ('.,;:!?*'.includes(c)) {
      end--;
      continue;
    }
    // A closing bracket belongs to the URL only if it opens inside it (Wikipedia-style links).
    const open = c === ')' ? '(' : c === ']' ? '[' : undefined;
    if (open !== undefined) {
      const s = url.slice(0, end);
      if (s.split(open).length - 1 < s.split(c).length - 1) {
        end--;
        continue;
      }
    }
    break;
  }
  return url.slice(0, end);
}

function safeHref(candidate: string): string | undefined {
  if (candidate.length > MAX_LINK_LENGTH) return undefined;
  let u: URL;
  try {
    u = new URL(candidate);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  if (u.hostname === '' || u.username !== '' || u.password !== '') return undefined;
  return u.href;
}

/** The text split into plain strings and links, in order; joining every part's text gives the input back. */
export function linkify(text: string): TextPart[] {
  const parts: TextPart[] = [];
  let last = 0;
  for (const m of text.matchAll(CANDIDATE)) {
    const start = m.index;
    const raw = trimTrailing(m[0]);
    const href = safeHref(raw);
    if (href === undefined) continue;
    if (start > last) parts.push(text.slice(last, start));
    parts.push({ text: raw, href });
    last = start + raw.length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}
