/**
 * What a message record keeps of edits and reactions (history.ts `MessageMeta`), with the
 * validators its codec uses. Bounds are named here; chat/edits.ts keeps within them.
 */
import { USERNAME_MAX_LENGTH, USERNAME_PATTERN } from '@tacit/api';
import { isReactionEmoji } from './actions.js';

/**
 * Earlier texts kept per edited message (Signal keeps the edit history too). Past it the oldest
 * go: a member editing one message over and over cannot make every device keep unbounded text.
 */
export const MAX_EDIT_VERSIONS = 20;
/**
 * Reactions kept per message: one per person, so a group's member bound (MAX_GROUP_MEMBERS,
 * 1,000) and this agree; past it a new reactor's reaction is not kept.
 */
export const MAX_REACTIONS_PER_MESSAGE = 1_000;

/** An earlier text of an edited message and when it was written (the author's clock, ms). */
export interface TextVersion {
  text: string;
  at: number;
}

/** A reaction as apps see it. */
export interface Reaction {
  from: string;
  emoji: string;
  /** The reactor's clock, ms. */
  at: number;
}

/** username → [emoji, the reactor's clock]; emoji "" records a removal (so an older reaction arriving late stays removed). */
export type ReactionMap = Record<string, [string, number]>;

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function isOldVersions(v: unknown): v is TextVersion[] {
  return Array.isArray(v) && v.length <= MAX_EDIT_VERSIONS && v.every((x: unknown) => typeof x === 'object' && x !== null && typeof (x as TextVersion).text === 'string' && isInt((x as TextVersion).at));
}

export function isReactionMap(v: unknown): v is ReactionMap {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const entries = Object.entries(v);
  return (
    entries.length <= MAX_REACTIONS_PER_MESSAGE &&
    entries.every(([u, r]) => u.length <= USERNAME_MAX_LENGTH && USERNAME_PATTERN.test(u) && Array.isArray(r) && r.length === 2 && typeof r[0] === 'string' && (r[0] === '' || isReactionEmoji(r[0])) && isInt(r[1]))
  );
}
