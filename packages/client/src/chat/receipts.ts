/**
 * Delivery and read receipts (docs/PROTOCOL.md, "Receipts"), as Signal has them: an encrypted
 * message kind of its own, sent over the pairwise session to every device of a message's author,
 * never stored in history and never answered with a receipt.
 *
 * Wire (padded JSON, chat/padding.ts): `{v: 1, rcpt: "delivered" | "read", ids: [...], group?}`.
 * `ids` are the author's message ids (at most MAX_RECEIPT_IDS, so one receipt names a batch);
 * `group` is set for messages of a group conversation.
 *
 * Sending: storing an incoming message queues a delivery receipt (`rq/<seq>`) in the same commit;
 * showing it (the read cursor passing it) queues a read receipt, unless read receipts are off,
 * and a read sync for our own other devices (chat/read-sync.ts; sent whatever the setting, as
 * Signal does). The queue is sent in batches RECEIPT_BATCH_DELAY_MS after the change (and after
 * every connect), and a record goes only once the server stored the receipt for every device of
 * the author (a read sync: of our account but this device). A block sync (chat/block.ts) and a
 * mute sync (chat/mute.ts) ride the same queue to our own other devices, each carrying its list
 * as it is when sent (chat/own-list.ts). Nothing is
 * queued for, or sent to, a blocked author.
 *
 * Receiving: a receipt is applied only to our own outgoing message with that id in the
 * conversation it names (the contact's, or the group's), and only if its sender was one of that
 * message's recipients. Anything else (an id we do not have, or no longer have, a non-member, a
 * receipt for a message we have not sent yet) is ignored. While read receipts are off, read
 * receipts count as delivery only.
 */
import { ProtocolAddress, type SessionManager } from '@tacit/protocol';
import { toBase64 } from '@tacit/api';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../backoff.js';
import { toHex } from '../bytes.js';
import type { Core, StateTxn } from '../core.js';
import type { Directory } from '../directory.js';
import { ClientError } from '../errors.js';
import { MAX_MESSAGE_ID_LENGTH } from '../envelope.js';
import { contactOf, directConversation, groupIdOf, type ConversationId, type Delivery, type History, type HistoryMessage } from '../history.js';
import { PREFIX, seqKey } from '../keys.js';
import { isGroupId } from '../group/state.js';
import { isInt, isObj, isStr, jsonCodec, ownValue } from '../record-codec.js';
import type { Relay } from '../relay.js';
import { padJson, startsWith, unpadJson } from './padding.js';
import { encodeReadSync, MAX_READ_SYNC_ENTRIES, type ReadSyncEntry } from './read-sync.js';
import { readSettings } from './settings.js';
import { blockList, readBlockList } from './block.js';
import { muteList } from './mute.js';
import type { OwnList, OwnSyncedList } from './own-list.js';

/** The lists synced whole to our own other devices, by their queue kind. */
const OWN_LISTS: Record<OwnListKind, OwnSyncedList<OwnList>> = { block: blockList, mute: muteList };
export type OwnListKind = 'block' | 'mute';
const isOwnListKind = (k: unknown): k is OwnListKind => k === 'block' || k === 'mute';

/** Message ids one receipt names at most: a batch is one message, and stays one padding block or a few. */
export const MAX_RECEIPT_IDS = 100;
/** Largest receipt plaintext accepted (MAX_RECEIPT_IDS ids of the longest kind, and the JSON around them). */
export const MAX_RECEIPT_BYTES = 16 * 1024;
/** Receipts queued at most; past it the oldest are dropped (a receipt is a courtesy, not a message). */
export const MAX_QUEUED_RECEIPTS = 10_000;
/** A burst of messages shown or stored together is answered by one batch: wait this long, ms. */
export const RECEIPT_BATCH_DELAY_MS = 150;
/** How long `close` waits for queued receipts to reach the server, ms. */
export const RECEIPT_CLOSE_GRACE_MS = 3_000;

export type ReceiptKind = 'delivered' | 'read';

export interface ReceiptPayload {
  kind: ReceiptKind;
  ids: string[];
  /** The group of the messages (absent: the pairwise conversation with the receipt's sender). */
  group?: string;
}

const HEAD = '{"v":1,"rcpt":';

export function encodeReceipt(p: ReceiptPayload): Uint8Array {
  if (p.ids.length === 0 || p.ids.length > MAX_RECEIPT_IDS) throw new ClientError('INVALID_ARGUMENT', `a receipt names 1 to ${MAX_RECEIPT_IDS} messages`);
  return padJson({ v: 1, rcpt: p.kind, ids: p.ids, ...(p.group !== undefined ? { group: p.group } : {}) });
}

/** Does this plaintext claim to be a receipt (so the text decoder should not see it)? */
export function looksLikeReceipt(bytes: Uint8Array): boolean {
  return startsWith(bytes, HEAD);
}

/** Total: the receipt in `bytes`, or undefined (not one, or malformed). */
export function decodeReceipt(bytes: Uint8Array): ReceiptPayload | undefined {
  const o = unpadJson(bytes, MAX_RECEIPT_BYTES);
  if (o === undefined || o['v'] !== 1) return undefined;
  const { rcpt, ids, group } = o;
  if (rcpt !== 'delivered' && rcpt !== 'read') return undefined;
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_RECEIPT_IDS) return undefined;
  if (!ids.every((id): id is string => typeof id === 'string' && id.length > 0 && id.length <= MAX_MESSAGE_ID_LENGTH)) return undefined;
  if (group !== undefined && !isGroupId(group)) return undefined;
  return { kind: rcpt, ids: [...new Set(ids as string[])], ...(group !== undefined ? { group: group as string } : {}) };
}

interface QueuedReceipt {
  /** The author. */
  to: string;
  g?: string;
  /**
   * `sync`: a read sync for our own other devices (chat/read-sync.ts), naming the author's
   * message; `block`, `mute`: send that list to our own other devices (chat/own-list.ts).
   */
  k: ReceiptKind | 'sync' | OwnListKind;
  id: string;
  /** A read sync: when it was read, ms. */
  at?: number;
}

const queuedCodec = jsonCodec<QueuedReceipt>('queued receipt', (v) => {
  if (!isObj(v) || !isStr(v['to'], 64) || (v['k'] !== 'delivered' && v['k'] !== 'read' && v['k'] !== 'sync' && !isOwnListKind(v['k'])) || !isStr(v['id'], MAX_MESSAGE_ID_LENGTH)) return undefined;
  if (v['g'] !== undefined && !isGroupId(v['g'])) return undefined;
  if (v['at'] !== undefined && !isInt(v['at'])) return undefined;
  return { to: v['to'], k: v['k'], id: v['id'], ...(v['g'] !== undefined ? { g: v['g'] as string } : {}), ...(v['at'] !== undefined ? { at: v['at'] as number } : {}) };
});

export interface ReceiptsOptions {
  core: Core;
  history: History;
  directory: Directory;
  sessions: SessionManager;
  relay: () => Relay | undefined;
  backoff?: BackoffPolicy;
}

/** What a `receipt` event says: whose receipt, of which kind, and the messages it moved. */
export interface ReceiptEvent {
  conversation: ConversationId;
  from: string;
  kind: ReceiptKind;
  messages: { id: string; seq: number; delivery?: Delivery }[];
}

export class Receipts {
  readonly #o: ReceiptsOptions;
  readonly #core: Core;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> | undefined;
  #again = false;
  #attempt = 0;
  #closed = false;

  constructor(o: ReceiptsOptions) {
    this.#o = o;
    this.#core = o.core;
    o.history.hooks.incoming = (t, m) => this.#queue(t, [m], 'delivered');
    o.history.hooks.shown = async (t, ms, at) => {
      // The read sync first: batches go in queue order, so once an author has our read receipt,
      // our other devices have their read sync too.
      await this.#queue(t, ms, 'sync', at);
      if ((await readSettings(t)).readReceipts) await this.#queue(t, ms, 'read');
    };
  }

  async #queue(t: StateTxn, messages: readonly HistoryMessage[], kind: QueuedReceipt['k'], at = 0): Promise<void> {
    const self = this.#core.account.username;
    const blocked = kind === 'sync' ? [] : (await readBlockList(t)).users;
    let n = 0;
    for (const m of messages) {
      // Group system lines have no author to tell; our own (linked) devices need no receipt.
      if (m.direction !== 'in' || m.system === true || m.from === self || m.fromDevice === 0 || blocked.includes(m.from)) continue;
      const g = groupIdOf(m.conversation);
      if (g === undefined && contactOf(m.conversation) !== m.from) continue;
      t.write(queuedCodec, PREFIX.receiptQueue + seqKey(t.nextSeq()), { to: m.from, k: kind, id: m.id, ...(g !== undefined ? { g } : {}), ...(kind === 'sync' ? { at } : {}) });
      n++;
    }
    if (n > 0) t.afterCommit(() => this.schedule());
  }

  /** Inside a state change that changed the block list or the mutes: our other devices get it (with the next batch). */
  queueOwnSync(t: StateTxn, kind: OwnListKind): void {
    t.write(queuedCodec, PREFIX.receiptQueue + seqKey(t.nextSeq()), { to: this.#core.account.username, k: kind, id: 'list' });
    t.afterCommit(() => this.schedule());
  }

  /** Sends the queue soon (one batch for a burst). */
  schedule(delay = RECEIPT_BATCH_DELAY_MS): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, delay);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** Sends what is queued (when connected). One run at a time; a call during a run runs once more after it. */
  flush(): Promise<void> {
    if (this.#flushing !== undefined) {
      this.#again = true;
      return this.#flushing;
    }
    const run = (async () => {
      try {
        for (let i = 0; i < 10; i++) {
          this.#again = false;
          await this.#flushOnce();
          if (!this.#again) break;
        }
        this.#attempt = 0;
      } catch {
        if (!this.#closed) this.schedule(backoffDelay(this.#attempt++, this.#o.backoff ?? DEFAULT_BACKOFF));
      } finally {
        this.#flushing = undefined;
      }
    })();
    this.#flushing = run;
    return run;
  }

  /** Queued receipts not yet sent (for tests and `close`). */
  async pending(): Promise<number> {
    return (await this.#core.view().list(PREFIX.receiptQueue, { limit: MAX_QUEUED_RECEIPTS + 1 })).length;
  }

  /** Waits (at most `ms`) for the queue to reach the server, so a short-lived client (`recv`) sends its receipts. */
  async idle(ms: number): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const relay = this.#o.relay();
    if (relay === undefined || relay.state !== 'ready' || (await this.pending()) === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, ms)));
    await Promise.race([this.flush(), late]);
    clearTimeout(timer);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #flushOnce(): Promise<void> {
    const relay = this.#o.relay();
    if (this.#closed || relay === undefined || relay.state !== 'ready') return;
    const recs = await this.#core.view().list(PREFIX.receiptQueue, { limit: MAX_QUEUED_RECEIPTS + MAX_RECEIPT_IDS });
    const drop = recs.slice(0, Math.max(0, recs.length - MAX_QUEUED_RECEIPTS)).map((r) => r.key);
    const batches = new Map<string, { to: string; group?: string; kind: QueuedReceipt['k']; ids: string[]; sync: ReadSyncEntry[]; keys: string[] }>();
    const blockList = await readBlockList(this.#core.view());
    for (const r of recs.slice(drop.length)) {
      const q = queuedCodec.decode(r.value);
      // Receipts queued before their author was blocked go unsent.
      if ((q.k === 'delivered' || q.k === 'read') && blockList.users.includes(q.to)) {
        drop.push(r.key);
        continue;
      }
      // Read syncs of every conversation go together, to our own devices; so do block and mute syncs (one list each).
      const key = q.k === 'sync' || isOwnListKind(q.k) ? `\0${q.k}` : `${q.to}\0${q.g ?? ''}\0${q.k}`;
      let b = batches.get(key);
      if (b === undefined || b.ids.length >= (q.k === 'sync' ? MAX_READ_SYNC_ENTRIES : MAX_RECEIPT_IDS)) {
        // A full batch goes under its own key; the next one starts.
        if (b !== undefined) batches.set(`${key}\0${r.key}`, b);
        b = { to: q.to, kind: q.k, ids: [], sync: [], keys: [], ...(q.g !== undefined ? { group: q.g } : {}) };
        batches.set(key, b);
      }
      if (q.k === 'sync') {
        b.ids.push(q.id);
        b.sync.push({ from: q.to, id: q.id, at: q.at ?? 0, ...(q.g !== undefined ? { group: q.g } : {}) });
      } else if (!b.ids.includes(q.id)) b.ids.push(q.id);
      b.keys.push(r.key);
    }
    if (drop.length > 0) await this.#core.mutate(async (t) => drop.forEach((k) => t.delete(k)));
    let failed: unknown;
    for (const b of batches.values()) {
      try {
        if (b.kind === 'sync') await this.#send(relay, this.#core.account.username, encodeReadSync(b.sync), this.#core.account.deviceId);
        else if (isOwnListKind(b.kind)) {
          const list = OWN_LISTS[b.kind];
          await this.#send(relay, this.#core.account.username, list.encode(await list.read(this.#core.view())), this.#core.account.deviceId);
        }
        else await this.#send(relay, b.to, encodeReceipt({ kind: b.kind, ids: b.ids, ...(b.group !== undefined ? { group: b.group } : {}) }));
      } catch (e) {
        // The author is gone or their identity changed (nothing goes to them until `trust`): the receipt goes.
        const definite = e instanceof ClientError && (e.code === 'UNKNOWN_USER' || e.code === 'UNTRUSTED_IDENTITY' || e.code === 'INVALID_ARGUMENT');
        if (!definite) {
          failed ??= e;
          continue;
        }
      }
      await this.#core.mutate(async (t) => b.keys.forEach((k) => t.delete(k)));
    }
    if (failed !== undefined) throw failed;
  }

  /**
   * Encrypts a receipt for every device of `to` (our own account: but `exclude`, this one) and
   * sends it; resolves once the server stored it for each (or refused a gone device).
   */
  async #send(relay: Relay, to: string, plaintext: Uint8Array, exclude?: number): Promise<void> {
    const sends = await this.#core.peerLock.run(to, async () => {
      const devices = await this.#o.directory.prepareSessions(to, exclude);
      const cts = await this.#core.mutate(async (t) => {
        const out: { deviceId: number; registrationId?: number; type: 'prekey' | 'whisper'; body: Uint8Array }[] = [];
        for (const d of devices) {
          const ct = await this.#o.sessions.encrypt(new ProtocolAddress(to, d), plaintext);
          const registrationId = await this.#o.directory.sessionRegistrationId(t, to, d);
          out.push({ deviceId: d, type: ct.type, body: ct.body, ...(registrationId !== undefined ? { registrationId } : {}) });
        }
        return out;
      });
      // Still under the peer lock: the frames enter the relay's queue in encryption order.
      return cts.map((c) =>
        relay
          .send({
            type: 'send',
            id: toHex(this.#core.backend.randomBytes(12)),
            to: { username: to, deviceId: c.deviceId, ...(c.registrationId !== undefined ? { registrationId: c.registrationId } : {}) },
            message: { type: c.type, body: toBase64(c.body) },
          })
          .then(
            () => undefined,
            (e: unknown) => {
              // A device that is gone or re-registered does not get it; anything else is retried.
              if (e instanceof ClientError && e.code === 'SERVER' && (e.serverCode === 'NOT_FOUND' || e.serverCode === 'STALE_DEVICE')) return undefined;
              throw e;
            },
          ),
      );
    });
    await Promise.all(sends);
  }

  /** Inside the inbox's state change: a receipt that came over the pairwise session from `from`. */
  async receive(t: StateTxn, from: string, fromDevice: number, plaintext: Uint8Array): Promise<void> {
    const p = decodeReceipt(plaintext);
    if (p === undefined) {
      t.afterCommit(() => this.#core.events.emit('undecryptable', { from, fromDevice, reason: 'BAD_RECEIPT' }));
      return;
    }
    const self = this.#core.account.username;
    if (from === self) return;
    const conversation = p.group !== undefined ? `g:${p.group}` : directConversation(from);
    const readToo = p.kind === 'read' && (await readSettings(t)).readReceipts;
    const now = this.#core.now();
    const moved: ReceiptEvent['messages'] = [];
    const updated: HistoryMessage[] = [];
    for (const id of p.ids) {
      const found = await this.#o.history.findById(t, conversation, self, id);
      if (found === undefined || found.meta.d !== 'out' || found.meta.sys === 1) continue;
      const recipients = found.meta.rt ?? (p.group === undefined ? [from] : []);
      if (!recipients.includes(from)) continue;
      if (ownValue(found.meta.dlv, from) !== undefined && (!readToo || ownValue(found.meta.rd, from) !== undefined)) continue;
      const m = await this.#o.history.update(t, conversation, found.seq, (x) => ({
        ...x,
        dlv: { ...x.dlv, [from]: ownValue(x.dlv, from) ?? now },
        ...(readToo ? { rd: { ...x.rd, [from]: ownValue(x.rd, from) ?? now } } : {}),
      }));
      if (m === undefined) continue;
      updated.push(m);
      moved.push({ id, seq: m.seq, ...(m.delivery !== undefined ? { delivery: m.delivery } : {}) });
    }
    if (moved.length === 0) return;
    t.afterCommit(() => {
      this.#core.events.emit('receipt', { conversation, from, kind: readToo ? 'read' : 'delivered', messages: moved });
      for (const m of updated) this.#core.events.emit('outgoing', { ...m });
    });
  }
}
