/**
 * Records held for a message that is not here yet, and handed back when it arrives: edits,
 * deletions and reactions (chat/edits.ts) and read syncs (chat/read-sync.ts) can overtake their
 * message (another route, a retried send, a quarantined or parked sender).
 *
 * One shelf per kind, each under its own key prefix: `<prefix><target pseudonym>/<seq>`, the
 * target being (conversation, author, message id), hashed as every sender-chosen id is. Held
 * records are ordinary store records, so they survive a restart. Every shelf is bounded: records
 * older than `ttlMs` are dropped, at most `perGroup` per group (the sender for actions, the
 * conversation for read syncs: a flood evicts only its own group's oldest) and `all` in all, the
 * oldest going first.
 */
import type { Core, StateTxn } from '../core.js';
import type { ConversationId, History, MessageMeta } from '../history.js';
import { keyNumber, seqKey } from '../keys.js';
import type { RecordCodec, WithBlob } from '../record-codec.js';

/** What every held record carries besides its own fields. */
export interface HeldBase {
  /** The conversation of the message (checked again on release: the target key is a pseudonym). */
  conversation: ConversationId;
  /** When it was held (this device's clock, ms). */
  heldAt: number;
}

/** One record to hold, for the message (conversation, author, id). */
export interface HeldItem<M extends HeldBase> {
  conversation: string;
  author: string;
  messageId: string;
  meta: M;
}

export interface HeldShelfSpec<M extends HeldBase> {
  /** The key prefix of the records (keys.ts PREFIX). */
  prefix: string;
  codec: RecordCodec<WithBlob<M>>;
  /** Which group a record counts against for `perGroup`. */
  group: (meta: M) => string;
  perGroup: number;
  all: number;
  ttlMs: number;
}

export class HeldShelf<M extends HeldBase> {
  readonly #spec: HeldShelfSpec<M>;
  readonly #core: Core;

  constructor(core: Core, spec: HeldShelfSpec<M>) {
    this.#core = core;
    this.#spec = spec;
  }

  #target(conversation: string, author: string, messageId: string): string {
    return this.#core.keys.heldFor(this.#spec.prefix, conversation, author, messageId);
  }

  /**
   * When a message is stored (History.onAppend, in its change), `apply` gets what was held for
   * it, oldest first (taken off the shelf; nothing held: not called).
   */
  releaseOn(history: History, apply: (t: StateTxn, conversation: ConversationId, seq: number, meta: MessageMeta, held: M[]) => Promise<void>): void {
    history.onAppend.push(async (t, conversation, seq, meta) => {
      const held = (await this.take(t, conversation, meta.from, meta.id)).filter((h) => h.conversation === conversation);
      if (held.length > 0) await apply(t, conversation, seq, meta, held);
    });
  }

  /**
   * Inside a state change: holds each record for its message (conversation, author, id), then
   * trims the shelf to its bounds once (a read sync holds up to a batch at a time).
   */
  async hold(t: StateTxn, items: readonly HeldItem<M>[]): Promise<void> {
    if (items.length === 0) return;
    const s = this.#spec;
    for (const x of items) t.write(s.codec, this.#target(x.conversation, x.author, x.messageId) + seqKey(t.nextSeq()), { meta: x.meta, blob: new Uint8Array(0) });
    // Keys sort by target, so age is read from the records. Expired ones go first, then each
    // group's own oldest past its share (only the groups just added to), then the oldest of all.
    const records = await t.list(s.prefix, { limit: s.all * 2 + items.length });
    const now = this.#core.now();
    let live: { key: string; heldAt: number; group: string }[] = [];
    for (const r of records) {
      const h = s.codec.decode(r.value).meta;
      if (now - h.heldAt > s.ttlMs) t.delete(r.key);
      else live.push({ key: r.key, heldAt: h.heldAt, group: s.group(h) });
    }
    live.sort((a, b) => a.heldAt - b.heldAt || keyNumber(a.key) - keyNumber(b.key));
    for (const group of new Set(items.map((x) => s.group(x.meta)))) {
      const own = live.filter((x) => x.group === group);
      if (own.length <= s.perGroup) continue;
      const evicted = new Set(own.slice(0, own.length - s.perGroup).map((x) => x.key));
      for (const k of evicted) t.delete(k);
      live = live.filter((x) => !evicted.has(x.key));
    }
    if (live.length > s.all) {
      for (const x of live.slice(0, live.length - s.all)) t.delete(x.key);
    }
  }

  /** Inside a state change: takes (deletes) what was held for the message, oldest first; expired ones are dropped. */
  async take(t: StateTxn, conversation: string, author: string, messageId: string): Promise<M[]> {
    const s = this.#spec;
    const now = this.#core.now();
    const out: M[] = [];
    for (const r of await t.list(this.#target(conversation, author, messageId), { limit: s.all })) {
      t.delete(r.key);
      const h = s.codec.decode(r.value).meta;
      if (now - h.heldAt <= s.ttlMs) out.push(h);
    }
    return out;
  }
}
