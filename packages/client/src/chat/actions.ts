/**
 * Message kinds that change other messages or the conversation (issue 14): an edit, a deletion
 * for everyone, a reaction, and the disappearing-message timer. Each travels as an ordinary
 * encrypted message (the pairwise envelope, envelope.ts, or the group text payload,
 * group/wire.ts) whose `act` field holds one of these; its `text` is empty. Every message may
 * also carry `exp`, the conversation's disappearing timer when it was sent, so every device
 * deletes it by the same rule.
 *
 * On the wire (docs/PROTOCOL.md, "Edits, deletions, reactions, timers"):
 * - `{k: "edit", target, text}`: the sender's message `target` now reads `text`;
 * - `{k: "delete", target}`: the sender's message `target` is deleted for everyone;
 * - `{k: "react", author, target, emoji}`: the sender's reaction to `author`'s message `target`
 *   (`emoji` "" removes it);
 * - `{k: "timer", ms}`: the conversation's disappearing timer (0: off).
 *
 * Decoders are total: anything malformed gives undefined, and the message carrying it is dropped.
 */
import { USERNAME_MAX_LENGTH, USERNAME_PATTERN } from '@tacit/api';
import { MAX_MESSAGE_ID_LENGTH } from '../envelope.js';
import { checkText, describeTextProblem } from '../text.js';

/** How long after sending a message its author may edit or delete it for everyone (Signal's 24 hours). */
export const EDIT_WINDOW_MS = 24 * 60 * 60 * 1000;
/**
 * Shortest disappearing timer. One second is what Signal's custom timer allows; it also lets the
 * end-to-end tests wait a few seconds, not minutes, without a test-only switch.
 */
export const MIN_DISAPPEARING_MS = 1_000;
/** Longest disappearing timer: four weeks (Signal's longest preset). */
export const MAX_DISAPPEARING_MS = 28 * 24 * 60 * 60 * 1000;
/**
 * Longest reaction, in UTF-16 code units. The longest emoji sequences in Unicode 15 (family and
 * couple ZWJ sequences with skin tones) take 35 units; 64 leaves room and bounds what a member
 * can make every device keep per message.
 */
export const MAX_REACTION_LENGTH = 64;

export type Action =
  | { readonly k: 'edit'; readonly target: string; readonly text: string }
  | { readonly k: 'delete'; readonly target: string }
  | { readonly k: 'react'; readonly author: string; readonly target: string; readonly emoji: string }
  | { readonly k: 'timer'; readonly ms: number };

const segmenter = typeof Intl !== 'undefined' && 'Segmenter' in Intl ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : undefined;

/** `\p{Extended_Pictographic}`, a regional indicator (flags) or a keycap must be in a reaction. */
const PICTOGRAPHIC = /[\p{Extended_Pictographic}\u{1F1E6}-\u{1F1FF}\u20e3]/u;
/** What an emoji sequence is made of: pictographs, modifiers, ZWJ, variation selectors, keycaps, tags. */
const EMOJI_PARTS = /^[\p{Extended_Pictographic}\p{Emoji_Modifier}\p{Emoji_Component}\u200d\ufe0e\ufe0f\u20e3\u{E0020}-\u{E007F}]+$/u;

/**
 * Is `s` one emoji: a single grapheme cluster, made only of emoji code points, with a pictograph
 * (or flag) in it, at most MAX_REACTION_LENGTH units? Plain digits and `#` (which Unicode counts
 * as emoji components) alone are refused.
 */
export function isReactionEmoji(s: string): boolean {
  if (s.length === 0 || s.length > MAX_REACTION_LENGTH) return false;
  if (!EMOJI_PARTS.test(s) || !PICTOGRAPHIC.test(s)) return false;
  if (segmenter !== undefined) {
    let n = 0;
    for (const _ of segmenter.segment(s)) if (++n > 1) return false;
  }
  return true;
}

/** A disappearing timer a member may set: 0 (off) or within the bounds, whole milliseconds. */
export function isTimerMs(ms: unknown): ms is number {
  return typeof ms === 'number' && Number.isSafeInteger(ms) && (ms === 0 || (ms >= MIN_DISAPPEARING_MS && ms <= MAX_DISAPPEARING_MS));
}

/** A message's own timer (`exp`): positive and within the bounds. */
export function isExpiry(ms: unknown): ms is number {
  return isTimerMs(ms) && ms > 0;
}

function isMessageId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_MESSAGE_ID_LENGTH;
}

function isUsername(v: unknown): v is string {
  return typeof v === 'string' && v.length <= USERNAME_MAX_LENGTH && USERNAME_PATTERN.test(v);
}

/** The JSON form of an action (what `act` holds). */
export function encodeAction(a: Action): Record<string, unknown> {
  return { ...a };
}

/** Total: the action in `v` (the `act` field of a decoded message), or undefined. */
export function decodeAction(v: unknown): Action | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  switch (o['k']) {
    case 'edit': {
      const { target, text } = o;
      if (!isMessageId(target) || typeof text !== 'string' || checkText(text) !== undefined) return undefined;
      return { k: 'edit', target, text };
    }
    case 'delete':
      return isMessageId(o['target']) ? { k: 'delete', target: o['target'] } : undefined;
    case 'react': {
      const { author, target, emoji } = o;
      if (!isUsername(author) || !isMessageId(target) || typeof emoji !== 'string' || (emoji !== '' && !isReactionEmoji(emoji))) return undefined;
      return { k: 'react', author, target, emoji };
    }
    case 'timer':
      return isTimerMs(o['ms']) ? { k: 'timer', ms: o['ms'] } : undefined;
    default:
      return undefined;
  }
}

/** Checks an edit's new text as a message's (the same rules as send); throws a readable reason. */
export function editTextProblem(text: string): string | undefined {
  const p = checkText(text);
  return p === undefined ? undefined : describeTextProblem(p);
}

/** A duration for people: "30 seconds", "1 hour", "2 days 3 hours". */
export function describeDuration(ms: number): string {
  if (ms === 0) return 'off';
  const units: [number, string][] = [
    [7 * 24 * 3600_000, 'week'],
    [24 * 3600_000, 'day'],
    [3600_000, 'hour'],
    [60_000, 'minute'],
    [1_000, 'second'],
  ];
  const parts: string[] = [];
  let rest = ms;
  for (const [size, name] of units) {
    const n = Math.floor(rest / size);
    if (n > 0 && parts.length < 2) {
      parts.push(`${n} ${name}${n === 1 ? '' : 's'}`);
      rest -= n * size;
    }
  }
  return parts.length > 0 ? parts.join(' ') : `${ms} ms`;
}

/**
 * Parses a timer as people type it: `off`, or a number with a unit (`30s`, `5m`, `1h`, `1d`,
 * `1w`; a bare number is seconds). Undefined for anything else or out of bounds.
 */
export function parseDuration(s: string): number | undefined {
  const t = s.trim().toLowerCase();
  if (t === 'off' || t === '0') return 0;
  const m = /^(\d{1,7})\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)?$/.exec(t);
  if (m === null) return undefined;
  const n = Number(m[1]);
  const u = (m[2] ?? 's')[0]!;
  const size = u === 's' ? 1_000 : u === 'm' ? 60_000 : u === 'h' ? 3600_000 : u === 'd' ? 24 * 3600_000 : 7 * 24 * 3600_000;
  const ms = n * size;
  return isTimerMs(ms) ? ms : undefined;
}
