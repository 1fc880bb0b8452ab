/**
 * Edits, deletions for everyone, reactions and disappearing messages, on this device's history
 * (issue 14; the wire form is chat/actions.ts).
 *
 * Applying an action, whether our own (at once, in the commit that queues it) or a contact's:
 * - an edit or a deletion names one of the actor's own messages (the target is looked up by
 *   conversation, author = actor and id, so nobody can edit someone else's message), counts only
 *   within EDIT_WINDOW_MS of that message (both times are the author's clock), and is ignored on
 *   a deleted message or a system line. Edits may arrive in any order: the newest text is shown,
 *   the others are kept as earlier versions (at most MAX_EDIT_VERSIONS). A deletion empties the
 *   text, its versions, reactions and file pointer: only "deleted" is left.
 * - a reaction replaces the actor's earlier one on that message if it is newer (a removal is kept
 *   as an empty reaction, so an older one arriving late does not come back).
 * - a timer change sets the conversation's timer and adds a system line.
 * An action whose message is not here (yet) is held, at most MAX_HELD_ACTIONS (and
 * MAX_HELD_ACTIONS_PER_SENDER from one sender) for at most HELD_ACTION_TTL_MS, and applied when
 * the message arrives; otherwise it is dropped.
 *
 * Disappearing: a message carries its conversation's timer (`exp`); its clock starts when it is
 * read (history.ts `#startTimers`), or when it is sent for our own. The sweep removes messages
 * whose time ran out from the store altogether (records `xp/<time>/<seq>` keep the order).
 */
import type { Core, StateTxn } from '../core.js';
import { ClientError } from '../errors.js';
import { utf8Decode } from '../bytes.js';
import { keyNumber, PREFIX, seqKey } from '../keys.js';
import { HeldShelf } from './held.js';
import { blobCodec, isInt, isObj, isStr, ownValue } from '../record-codec.js';
import { messageCodec, seqCodec, toHistory, type ConversationId, type History, type HistoryMessage, type MessageMeta } from '../history.js';
import { decodeAction, describeDuration, EDIT_WINDOW_MS, type Action } from './actions.js';
import { MAX_EDIT_VERSIONS, MAX_REACTIONS_PER_MESSAGE, type TextVersion } from './meta.js';
import { MESSAGE_ID_BYTES } from '../outbox.js';
import { toHex } from '../bytes.js';

/** Actions held for a message not here yet. Bounds what a contact can make a device keep. */
export const MAX_HELD_ACTIONS = 256;
/**
 * Held actions from one sender at most: a flood from one contact evicts only its own oldest, not
 * the others' (at a quarter of MAX_HELD_ACTIONS, four senders must flood to crowd out a fifth).
 */
export const MAX_HELD_ACTIONS_PER_SENDER = 64;
/** How long a held action waits for its message (a message delayed longer is rare; an edit to it is then lost). */
export const HELD_ACTION_TTL_MS = 24 * 60 * 60 * 1000;
/** Messages one sweep removes at most; the next sweep follows at once. */
export const MAX_SWEEP_BATCH = 500;
/** The sweep looks at least this often even with nothing due (a clock that jumped). */
export const MAX_SWEEP_DELAY_MS = 60_000;
/** Shortest id prefix that names a message on the command line (6 hex digits: 16.7 million). */
export const MIN_MESSAGE_PREFIX = 6;

interface HeldMeta {
  conversation: ConversationId;
  actor: string;
  at: number;
  heldAt: number;
  act: Action;
}
export const heldActionCodec = blobCodec<HeldMeta>('held edit or reaction', (v) => {
  if (!isObj(v) || !isStr(v['conversation'], 200) || !isStr(v['actor'], 64) || !isInt(v['at']) || !isInt(v['heldAt'])) return undefined;
  const act = decodeAction(v['act']);
  return act === undefined ? undefined : { conversation: v['conversation'], actor: v['actor'], at: v['at'], heldAt: v['heldAt'], act };
});

/** Why an action was not applied (the `action-ignored` event). */
export type IgnoredReason = 'NOT_AUTHOR' | 'TOO_LATE' | 'DELETED' | 'NOT_FOUND' | 'NOT_EDITABLE';

export interface AppliedAction {
  conversation: ConversationId;
  actor: string;
  action: Action;
  /** The message it changed (absent for a timer change). */
  message?: HistoryMessage;
}

export class MessageActions {
  readonly #core: Core;
  readonly #history: History;
  readonly #held: HeldShelf<HeldMeta>;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #sweeping: Promise<void> | undefined;
  #again = false;

  constructor(core: Core, history: History) {
    this.#core = core;
    this.#history = history;
    this.#held = new HeldShelf<HeldMeta>(core, { prefix: PREFIX.heldAction, codec: heldActionCodec, group: (h) => h.actor, perGroup: MAX_HELD_ACTIONS_PER_SENDER, all: MAX_HELD_ACTIONS, ttlMs: HELD_ACTION_TTL_MS });
    this.#held.releaseOn(history, (t, conversation, _seq, _meta, held) => this.#released(t, conversation, held));
    core.events.on('history', () => this.#schedule());
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  // ---- applying ----

  /**
   * Inside a state change: applies `action` by `actor` (its clock `at`) in `conversation`. The
   * caller has checked that the actor may speak in the conversation (a member, or the contact).
   * Returns what changed, or why not.
   */
  async apply(t: StateTxn, conversation: ConversationId, actor: string, action: Action, at: number, hold = true): Promise<AppliedAction | { ignored: IgnoredReason }> {
    if (action.k === 'timer') {
      await this.#history.setTimer(t, conversation, action.ms);
      await this.#systemLine(t, conversation, actor, action.ms === 0 ? `${actor} turned off disappearing messages` : `${actor} set disappearing messages to ${describeDuration(action.ms)}`);
      return { conversation, actor, action };
    }
    const author = action.k === 'react' ? action.author : actor;
    const seq = await this.#history.seqOf(t, conversation, author, action.target);
    if (seq === undefined) {
      if (hold) await this.#hold(t, conversation, actor, action, at);
      return { ignored: 'NOT_FOUND' };
    }
    const cur = await this.#history.message(t, conversation, seq);
    if (cur === undefined) return { ignored: 'NOT_FOUND' };
    const meta = cur.meta;
    if (meta.from !== author) return { ignored: 'NOT_AUTHOR' };
    if (meta.del === 1) return { ignored: 'DELETED' };
    if (meta.sys === 1 || meta.act !== undefined) return { ignored: 'NOT_EDITABLE' };
    let updated: HistoryMessage | undefined;
    if (action.k === 'edit' || action.k === 'delete') {
      if (at < meta.sentAt || at - meta.sentAt > EDIT_WINDOW_MS) return { ignored: 'TOO_LATE' };
      if (action.k === 'delete') {
        updated = await this.#history.update(
          t,
          conversation,
          seq,
          (m) => {
            const next: MessageMeta = { ...m, del: 1 };
            delete next.old;
            delete next.ed;
            delete next.rx;
            delete next.file;
            return next;
          },
          () => '',
        );
        await this.#dropHeld(t, conversation, author, action.target);
      } else {
        const shownAt = meta.ed ?? meta.sentAt;
        // The first edit may share the original's millisecond; later ones must be newer than the shown one.
        const newer = meta.ed === undefined ? at >= shownAt : at > shownAt;
        let text = cur.text;
        const versions: TextVersion[] = [...(meta.old ?? [])];
        if (newer) {
          versions.push({ text: cur.text, at: shownAt });
          text = action.text;
        } else if (at !== shownAt && !versions.some((v) => v.at === at)) {
          versions.push({ text: action.text, at });
        }
        versions.sort((a, b) => a.at - b.at);
        const kept = versions.slice(-MAX_EDIT_VERSIONS);
        updated = await this.#history.update(t, conversation, seq, (m) => ({ ...m, old: kept, ...(newer ? { ed: at } : {}) }), () => text);
      }
    } else {
      const rx = { ...(meta.rx ?? {}) };
      const prev = ownValue(rx, actor);
      if (prev !== undefined && prev[1] >= at) return { conversation, actor, action, message: toHistory(conversation, seq, meta, cur.text, 0) };
      if (prev === undefined && Object.keys(rx).length >= MAX_REACTIONS_PER_MESSAGE) return { ignored: 'NOT_EDITABLE' };
      rx[actor] = [action.emoji, at];
      updated = await this.#history.update(t, conversation, seq, (m) => ({ ...m, rx }));
    }
    return { conversation, actor, action, ...(updated !== undefined ? { message: updated } : {}) };
  }

  /** Inside a state change: a contact's action arrived (held if its message is not here yet); tells the app. */
  async receive(t: StateTxn, conversation: ConversationId, from: string, action: Action, at: number): Promise<void> {
    const res = await this.apply(t, conversation, from, action, at);
    if (!('ignored' in res)) t.afterCommit(() => this.#core.events.emit('action', res));
    else if (res.ignored !== 'NOT_FOUND') t.afterCommit(() => this.#core.events.emit('action-ignored', { conversation, from, kind: action.k, reason: res.ignored }));
  }

  /** A system line (a timer change): ours is outgoing and read, a contact's is incoming. */
  async #systemLine(t: StateTxn, conversation: ConversationId, actor: string, text: string): Promise<void> {
    const a = this.#core.account;
    const now = this.#core.now();
    const mine = actor === a.username;
    const id = toHex(this.#core.backend.randomBytes(MESSAGE_ID_BYTES));
    const meta: MessageMeta = mine ? { d: 'out', id, from: actor, dev: a.deviceId, sentAt: now, st: 'sent', sys: 1 } : { d: 'in', id, from: actor, dev: 0, sentAt: now, rcv: now, sys: 1 };
    const m = await this.#history.append(t, conversation, meta, text);
    t.afterCommit(() => this.#core.events.emit(mine ? 'outgoing' : 'message', { ...m }));
  }

  // ---- held actions ----

  async #hold(t: StateTxn, conversation: ConversationId, actor: string, act: Action, at: number): Promise<void> {
    if (act.k === 'timer') return;
    const author = act.k === 'react' ? act.author : actor;
    await this.#held.hold(t, [{ conversation, author, messageId: act.target, meta: { conversation, actor, at, heldAt: this.#core.now(), act } }]);
  }

  async #dropHeld(t: StateTxn, conversation: ConversationId, author: string, target: string): Promise<void> {
    await this.#held.take(t, conversation, author, target);
  }

  /** A message was stored: actions that waited for it apply now, in the order they came. */
  async #released(t: StateTxn, conversation: ConversationId, held: readonly HeldMeta[]): Promise<void> {
    for (const h of held) {
      const res = await this.apply(t, conversation, h.actor, h.act, h.at, false);
      if ('ignored' in res) t.afterCommit(() => this.#core.events.emit('action-ignored', { conversation, from: h.actor, kind: h.act.k, reason: res.ignored }));
      else t.afterCommit(() => this.#core.events.emit('action', res));
    }
  }

  // ---- disappearing ----

  /**
   * Removes every message whose time ran out; returns how many. Then arms itself for the next one
   * due, so a client that keeps running (`tacit chat`, the web page) deletes on time, not only
   * when it is next opened.
   */
  sweep(): Promise<number> {
    return this.#core.mutate(async (t) => {
      const now = this.#core.now();
      let n = 0;
      const gone = new Map<ConversationId, string[]>();
      const due = await t.list(PREFIX.expiry, { before: PREFIX.expiry + seqKey(now + 1), limit: MAX_SWEEP_BATCH });
      for (const r of due) {
        const x = seqCodec.decode(r.value);
        t.delete(r.key);
        const m = await this.#history.message(t, x.c, x.s);
        if (!(await this.#history.remove(t, x.c, x.s))) continue;
        n++;
        // Records that only carried an edit or reaction are not messages anyone saw.
        if (m !== undefined && m.meta.act === undefined) gone.set(x.c, [...(gone.get(x.c) ?? []), m.meta.id]);
      }
      t.afterCommit(() => {
        for (const [conversation, ids] of gone) this.#core.events.emit('expired', { conversation, ids });
        this.#schedule(due.length === MAX_SWEEP_BATCH ? 0 : undefined);
      });
      return n;
    });
  }

  /** Arms the sweep for the next message due (or MAX_SWEEP_DELAY_MS, whichever is sooner). */
  #schedule(delay?: number): void {
    if (this.#closed) return;
    if (this.#sweeping !== undefined) {
      // A change while the next one due is being read: read again afterwards (it may be sooner).
      this.#again = true;
      return;
    }
    const arm = async (): Promise<void> => {
      const first = (await this.#core.view().list(PREFIX.expiry, { limit: 1 }))[0];
      if (first === undefined || this.#closed) return;
      const at = Number(first.key.slice(PREFIX.expiry.length, PREFIX.expiry.length + 16));
      const wait = delay ?? Math.max(0, Math.min(MAX_SWEEP_DELAY_MS, at - this.#core.now()));
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.sweep().catch(() => undefined);
      }, wait);
      (this.#timer as { unref?: () => void }).unref?.();
    };
    this.#sweeping = arm()
      .catch(() => undefined)
      .finally(() => {
        this.#sweeping = undefined;
        if (this.#again) {
          this.#again = false;
          this.#schedule();
        }
      });
  }

  // ---- finding ----

  /**
   * A message of a conversation named by its id or a prefix of it (at least MIN_MESSAGE_PREFIX
   * characters). INVALID_ARGUMENT when none or several match.
   */
  async find(conversation: ConversationId, ref: string): Promise<HistoryMessage> {
    const r = ref.trim().toLowerCase();
    if (!/^[0-9a-f]+$/.test(r) || r.length < MIN_MESSAGE_PREFIX || r.length > 64) {
      throw new ClientError('INVALID_ARGUMENT', `a message is named by its id or the first ${MIN_MESSAGE_PREFIX} or more characters of it (as history shows it)`);
    }
    const t = this.#core.view();
    const prefix = this.#core.keys.messagesOf(conversation);
    const found: HistoryMessage[] = [];
    let after: string | undefined;
    for (let round = 0; round < 1_000; round++) {
      const recs = await t.list(prefix, { limit: 500, ...(after !== undefined ? { after } : {}) });
      for (const rec of recs) {
        const { meta, blob } = messageCodec.decode(rec.value);
        if (meta.act === undefined && meta.id.startsWith(r)) found.push(toHistory(conversation, keyNumber(rec.key), meta, utf8Decode(blob), 0));
      }
      if (recs.length < 500) break;
      after = recs[recs.length - 1]!.key;
    }
    if (found.length === 0) throw new ClientError('INVALID_ARGUMENT', `no message ${r} in this conversation`);
    if (found.length > 1) throw new ClientError('INVALID_ARGUMENT', `${found.length} messages start with ${r}; give more of the id`);
    return found[0]!;
  }
}
