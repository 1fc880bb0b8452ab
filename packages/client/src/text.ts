/**
 * What a message's text may be, checked the same way by the SDK's send, the CLI (before it sends
 * anything) and the web composer (as the user types or pastes):
 *
 * - not empty and not only white space;
 * - at most MAX_TEXT_LENGTH characters as a person counts them: grapheme clusters
 *   (Intl.Segmenter), so an emoji, a flag or a letter with accents is one character, not two to
 *   eleven UTF-16 code units;
 * - small enough that its envelope fits MAX_ENVELOPE_BYTES. Ordinary text of MAX_TEXT_LENGTH
 *   characters always does (even all four-byte emoji); only text made of very long clusters
 *   (family emoji, stacked combining marks) or many escaped control characters can be too large
 *   before it is too long, and is then refused as such.
 */
import { ENVELOPE_VERSION, MAX_ENVELOPE_BYTES, encodeEnvelope } from './envelope.js';

/**
 * Longest message, in user-perceived characters. 16 Ki is far more than a chat message needs
 * (Telegram allows 4,096) and, at up to four bytes per ordinary character, stays within the
 * envelope (and so the server's 96 KiB ciphertext cap).
 */
export const MAX_TEXT_LENGTH = 16 * 1024;

export type TextProblem =
  | { readonly code: 'EMPTY' }
  | { readonly code: 'TOO_LONG'; readonly characters: number; readonly max: number }
  | { readonly code: 'TOO_LARGE'; readonly bytes: number; readonly max: number };

const segmenter = typeof Intl !== 'undefined' && 'Segmenter' in Intl ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : undefined;

/** Characters as a person counts them (grapheme clusters); code points where Intl.Segmenter is missing. */
export function countCharacters(text: string): number {
  if (segmenter === undefined) return [...text].length;
  let n = 0;
  for (const _ of segmenter.segment(text)) n++;
  return n;
}

/** The problem with sending `text`, or undefined when it can be sent as it is. */
export function checkText(text: string): TextProblem | undefined {
  if (text.trim() === '') return { code: 'EMPTY' };
  // Cheap first: no text has more characters than UTF-16 code units.
  if (text.length > MAX_TEXT_LENGTH) {
    const characters = countCharacters(text);
    if (characters > MAX_TEXT_LENGTH) return { code: 'TOO_LONG', characters, max: MAX_TEXT_LENGTH };
  }
  // Every code unit takes at least one byte in the envelope's JSON.
  const bytes = text.length > MAX_ENVELOPE_BYTES ? text.length : encodeEnvelope({ v: ENVELOPE_VERSION, id: 'f'.repeat(32), text, sentAt: Number.MAX_SAFE_INTEGER }).length;
  if (bytes > MAX_ENVELOPE_BYTES) return { code: 'TOO_LARGE', bytes, max: MAX_ENVELOPE_BYTES };
  return undefined;
}

const thousands = (n: number): string => n.toLocaleString('en-US');

/** The problem as a clause (lower-case, no final period), as the CLI prints and the web shows. */
export function describeTextProblem(p: TextProblem): string {
  switch (p.code) {
    case 'EMPTY':
      return 'the message is empty (only white space)';
    case 'TOO_LONG':
      return `the message is ${thousands(p.characters)} characters long; at most ${thousands(p.max)} fit in one message`;
    case 'TOO_LARGE':
      return `the message is too large to send (${thousands(Math.ceil(p.bytes / 1024))} KiB encoded; at most ${thousands(p.max / 1024)} KiB), though not too long: it is made of unusually long characters`;
  }
}

/**
 * C0 controls except newline, DEL, C1 controls, bidirectional embeddings, overrides and isolates
 * (U+202A–U+202E, U+2066–U+2069), and the line and paragraph separators. In someone else's text
 * they can rewrite a terminal (escape sequences) or show characters in an order other than the
 * one they were sent in ("evil\u202egnp.exe" displays as "evilexe.png"), disguising a link, a
 * file name or who said what.
 */
const UNSAFE_FOR_DISPLAY = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

/**
 * Someone else's text made safe to show, by the CLI and the web client alike: every character
 * above becomes U+FFFD (visible, so the reader sees that something was there). Newlines stay.
 */
export function neutralizeControls(text: string): string {
  return text.replace(UNSAFE_FOR_DISPLAY, '\ufffd');
}
