/**
 * For tests only (not exported from the package index): sends an action without the sender's
 * own checks, as a hostile or buggy client would, so tests can show receivers refuse it.
 */
import type { Action } from './actions.js';

export type UncheckedSend = (conversation: string, act: Action) => Promise<unknown>;

/** Filled by each TacitClient for itself. */
export const uncheckedActionSend = new WeakMap<object, UncheckedSend>();
