/**
 * What the web client remembers beyond the SDK's state: the conversations the user started and
 * the messages this browser sent (the SDK keeps received messages only), each with its delivery
 * state. One versioned JSON document, sealed in IndexedDB next to the SDK's state.
 */
import { USERNAME_MAX_LENGTH, USERNAME_PATTERN } from '@tacit/api';
import type { StateVault } from '@tacit/client';

export const JOURNAL_VERSION = 1;
/** Sent messages kept per contact; the oldest go first (the SDK keeps 5,000 received in all). */
export const MAX_OUTGOING_PER_CONTACT = 2_000;
/** Conversations remembered. A small team never gets near this; it bounds a hostile or buggy loop. */
export const MAX_CONVERSATIONS = 1_000;
/** Longest error text kept with a failed message. */
const MAX_ERROR_LENGTH = 300;

/**
 * `sending`: queued or on its way; `sent`: the server stored it for every device of the contact;
 * `failed`: refused or not encrypted, retry offered; `unconfirmed`: the page closed while it was
 * sending, so this browser cannot tell whether the server got it (the SDK resends what it had
 * encrypted; a retry may show it twice).
 */
export type OutgoingState = 'sending' | 'sent' | 'failed' | 'unconfirmed';

export interface OutgoingMessage {
  /** Local id (random hex); the SDK's message id differs per attempt. */
  localId: string;
  text: string;
  /** Local clock when the user pressed send, ms. */
  at: number;
  state: OutgoingState;
  error?: string;
}

export interface ConversationRecord {
  startedAt: number;
}

export interface JournalData {
  v: typeof JOURNAL_VERSION;
  conversations: Record<string, ConversationRecord>;
  outgoing: Record<string, OutgoingMessage[]>;
}

export function emptyJournal(): JournalData {
  return { v: JOURNAL_VERSION, conversations: {}, outgoing: {} };
}

const STATES: ReadonlySet<string> = new Set<OutgoingState>(['sending', 'sent', 'failed', 'unconfirmed']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Keys are folded usernames; anything else (including `__proto__`) is dropped. */
function isName(s: string): boolean {
  return s.length <= USERNAME_MAX_LENGTH && USERNAME_PATTERN.test(s);
}

function parseOutgoing(v: unknown): OutgoingMessage | undefined {
  if (!isRecord(v)) return undefined;
  const { localId, text, at, state, error } = v;
  if (typeof localId !== 'string' || localId.length === 0 || localId.length > 64) return undefined;
  if (typeof text !== 'string' || typeof at !== 'number' || !Number.isFinite(at)) return undefined;
  if (typeof state !== 'string' || !STATES.has(state)) return undefined;
  const m: OutgoingMessage = { localId, text, at, state: state as OutgoingState };
  if (typeof error === 'string') m.error = error.slice(0, MAX_ERROR_LENGTH);
  return m;
}

/** Total: bad input yields an empty or partial journal, never an exception. */
export function decodeJournal(bytes: Uint8Array | undefined): JournalData {
  const j = emptyJournal();
  if (bytes === undefined) return j;
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return j;
  }
  if (!isRecord(v) || v['v'] !== JOURNAL_VERSION) return j;
  const conv = v['conversations'];
  if (isRecord(conv)) {
    for (const [name, c] of Object.entries(conv).slice(0, MAX_CONVERSATIONS)) {
      if (isName(name) && isRecord(c) && typeof c['startedAt'] === 'number') j.conversations[name] = { startedAt: c['startedAt'] };
    }
  }
  const out = v['outgoing'];
  if (isRecord(out)) {
    for (const [name, list] of Object.entries(out).slice(0, MAX_CONVERSATIONS)) {
      if (!isName(name) || !Array.isArray(list)) continue;
      const msgs = list.slice(-MAX_OUTGOING_PER_CONTACT).map(parseOutgoing).filter((m): m is OutgoingMessage => m !== undefined);
      if (msgs.length > 0) j.outgoing[name] = msgs;
    }
  }
  return j;
}

export function encodeJournal(j: JournalData): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(j));
}

export function clipError(message: string): string {
  return message.slice(0, MAX_ERROR_LENGTH);
}

/**
 * The journal in memory plus its sealed copy. Writes are serialized and coalesced: each `save`
 * resolves once a snapshot at least as new as the call is stored.
 */
export class Journal {
  readonly data: JournalData;
  readonly #vault: StateVault;
  #tail: Promise<void> = Promise.resolve();
  #dirty = false;

  private constructor(vault: StateVault, data: JournalData) {
    this.#vault = vault;
    this.data = data;
  }

  static async load(vault: StateVault): Promise<Journal> {
    return new Journal(vault, decodeJournal(await vault.read()));
  }

  save(): Promise<void> {
    this.#dirty = true;
    const next = this.#tail.then(async () => {
      if (!this.#dirty) return;
      this.#dirty = false;
      await this.#vault.write(encodeJournal(this.data));
    });
    this.#tail = next.catch(() => undefined);
    return next;
  }

  conversation(name: string, now: number): ConversationRecord {
    let c = this.data.conversations[name];
    if (c === undefined) {
      if (Object.keys(this.data.conversations).length >= MAX_CONVERSATIONS) {
        // Forget the oldest-started conversation record (its messages stay).
        const oldest = Object.entries(this.data.conversations).sort((a, b) => a[1].startedAt - b[1].startedAt)[0];
        if (oldest) delete this.data.conversations[oldest[0]];
      }
      c = this.data.conversations[name] = { startedAt: now };
    }
    return c;
  }

  outgoing(name: string): OutgoingMessage[] {
    return this.data.outgoing[name] ?? [];
  }

  addOutgoing(name: string, m: OutgoingMessage): void {
    const list = (this.data.outgoing[name] ??= []);
    list.push(m);
    if (list.length > MAX_OUTGOING_PER_CONTACT) list.splice(0, list.length - MAX_OUTGOING_PER_CONTACT);
  }

  find(name: string, localId: string): OutgoingMessage | undefined {
    return this.data.outgoing[name]?.find((m) => m.localId === localId);
  }
}
