/**
 * Receiving: the envelopes that arrived together are decrypted in one state change and committed
 * once; the relay acknowledges each of them only after that commit (DESIGN §4). A crash before
 * the commit re-delivers everything, and nothing was shown.
 *
 * Duplicates are dropped three ways: by server envelope id (the last MAX_SEEN_SERVER_IDS), by
 * decryption (a DUPLICATE protocol error) and by the sender's message id (the last
 * MAX_SEEN_MESSAGE_IDS), which also catches a message the sender encrypted again after a crash.
 * Each memory is a pair of record kinds (`ss/<id>` to look up, `ssq/<seq>` for age), so a
 * lookup costs one read and the oldest are evicted first.
 *
 * One envelope whose processing fails for a reason other than its content (a damaged record,
 * storage trouble) is rolled back alone and left unacknowledged; the others go through.
 *
 * A sender whose envelopes keep failing to decrypt is throttled (throttle.ts): its envelopes are
 * parked and tried in the background, so other contacts' messages are not held up behind them.
 */
import { fromBase64, type Envelope as WireEnvelope } from '@tacit/api';
import { isProtocolError, ProtocolAddress, UntrustedIdentityError, type SessionManager } from '@tacit/protocol';
import { toBase64 } from './bytes.js';
import { isClientError } from './errors.js';
import type { Core, StateTxn } from './core.js';
import type { Directory } from './directory.js';
import { readEnvelope, type Envelope } from './envelope.js';
import { looksLikeGroupPayload } from './group/wire.js';
import { storedFromPointer, type AttachmentPointer } from './attachment/pointer.js';
import { directConversation, type History, type HistoryMessage } from './history.js';
import { PREFIX, seqKey } from './keys.js';
import { bytesCodec } from './record-codec.js';
import { MAX_RECEIVE_BATCH, type EnvelopeOutcome } from './relay.js';
import { heldCodec, type Trust } from './trust.js';
import type { MessageActions } from './chat/edits.js';
import type { Action } from './chat/actions.js';
import { isBlocked } from './chat/block.js';
import { MAX_PARKED, SenderThrottle, THROTTLED, THROTTLED_ATTEMPTS_PER_SECOND } from './throttle.js';

/** Server envelope ids remembered to drop redeliveries; far above the server's in-flight window. */
export const MAX_SEEN_SERVER_IDS = 4_096;
/** (sender, message id) pairs remembered to drop re-encrypted resends of one message. */
export const MAX_SEEN_MESSAGE_IDS = 8_192;
/** Parked envelopes one batch can add at most (the relay's batch size), for reading them back in one list. */
const MAX_RECEIVE_WINDOW = MAX_RECEIVE_BATCH;

const seenCodec = bytesCodec('duplicate-suppression');
const ORDER_PREFIX = { server: PREFIX.seenServerOrder, message: PREFIX.seenMessageOrder } as const;

export interface Ciphertext {
  serverId: string;
  from: string;
  fromDevice: number;
  type: 'prekey' | 'whisper';
  body: Uint8Array;
  serverTimestamp: number;
}

/** Where receipts and typing indicators go (chat/); set by the client. */
export interface ChatReceiver {
  /** Claims a plaintext that is one of its kinds (receipt, typing) and handles it; false: not one. */
  receiveChat(t: StateTxn, from: string, fromDevice: number, plaintext: Uint8Array): Promise<boolean>;
}

/** Where group traffic goes (group/groups.ts); set by the client. */
export interface GroupReceiver {
  receiveGroupMessage(t: StateTxn, env: WireEnvelope): Promise<{ conversation: string; id: string; text: string; sentAt: number; file?: AttachmentPointer; act?: Action; exp?: number } | undefined>;
  receivePairwise(t: StateTxn, from: string, fromDevice: number, plaintext: Uint8Array): Promise<void>;
}

export class Inbox {
  groups: GroupReceiver | undefined;
  chat: ChatReceiver | undefined;
  /** Edits, deletions, reactions and timers (chat/edits.ts); set by the client. */
  actions: MessageActions | undefined;
  readonly #core: Core;
  readonly #history: History;
  readonly #trust: Trust;
  readonly #directory: Directory;
  readonly #sessions: SessionManager;
  readonly #onNewSession: () => void;
  readonly #throttle = new SenderThrottle();
  /** Sender devices with parked envelopes (their next envelopes park behind them), or undefined before the store was read. */
  #parkedSenders: Set<string> | undefined;
  #drainTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(core: Core, history: History, trust: Trust, directory: Directory, sessions: SessionManager, onNewSession: () => void) {
    this.#core = core;
    this.#history = history;
    this.#trust = trust;
    this.#directory = directory;
    this.#sessions = sessions;
    this.#onNewSession = onNewSession;
  }

  /** Stops trying parked envelopes (the client is closing). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#drainTimer);
    this.#drainTimer = undefined;
  }

  /** Handles envelopes delivered together: one commit, then one outcome per envelope. */
  async receive(envelopes: readonly WireEnvelope[]): Promise<EnvelopeOutcome[]> {
    if (this.#parkedSenders === undefined) await this.#loadParked();
    try {
      return await this.#core.mutate(async (t) => {
        const outcomes: EnvelopeOutcome[] = [];
        for (const env of envelopes) {
          const mark = t.mark();
          try {
            await this.#one(t, env);
            outcomes.push('ack');
          } catch (e) {
            t.rollback(mark);
            outcomes.push('retry-later');
            if (isClientError(e) && e.code === 'STATE_CORRUPT') {
              t.afterCommit(() => this.#core.events.emit('state-corrupt', { from: env.source.username, message: e.message }));
            }
          }
        }
        await this.#bound(t, 'server');
        await this.#bound(t, 'message');
        await this.#trust.bound(t);
        await this.#boundParked(t);
        return outcomes;
      });
    } catch {
      // Nothing was committed: every envelope is delivered again.
      return envelopes.map(() => 'retry-later');
    }
  }

  async #one(t: StateTxn, env: WireEnvelope): Promise<void> {
    const seenKey = PREFIX.seenServerId + env.id;
    if ((await t.getBytes(seenKey)) !== undefined) return;
    this.#remember(t, 'server', seenKey);
    const from = env.source.username;
    const fromDevice = env.source.deviceId;
    const a = this.#core.account;
    if (from === a.username && fromDevice === a.deviceId) return;
    if (env.type === 'sender-key') {
      // A group message: decrypted and checked by the groups (anything wrong is dropped and said).
      const g = this.groups === undefined ? undefined : await this.groups.receiveGroupMessage(t, env);
      if (g === undefined) {
        if (this.groups === undefined) t.afterCommit(() => this.#core.events.emit('undecryptable', { from, fromDevice, reason: 'NO_SENDER_KEY' }));
        return;
      }
      // A blocked member's text or action: acknowledged (by returning) and dropped (chat/block.ts).
      if (from !== a.username && (await isBlocked(t, from))) return;
      const dedupKey = this.#core.keys.seenMessage(from, g.id);
      if ((await t.getBytes(dedupKey)) !== undefined) return;
      this.#remember(t, 'message', dedupKey);
      // An edit, deletion, reaction or timer of a member (membership was checked with the key).
      if (g.act !== undefined) return void (await this.actions?.receive(t, g.conversation, from, g.act, g.sentAt));
      // Sent by another device of ours: our own message, shown as such.
      const mine = from === a.username;
      const extra = { ...(g.file !== undefined ? { file: storedFromPointer(g.file) } : {}), ...(g.exp !== undefined ? { exp: g.exp } : {}) };
      const stored = mine
        ? await this.#history.append(t, g.conversation, { d: 'out', id: g.id, from, dev: fromDevice, sentAt: g.sentAt, st: 'sent', to: {}, ...extra }, g.text)
        : await this.#history.append(t, g.conversation, { d: 'in', id: g.id, from, dev: fromDevice, sentAt: g.sentAt, srv: env.id, ts: env.timestamp, rcv: this.#core.now(), ...extra }, g.text);
      t.afterCommit(() => this.#core.events.emit(mine ? 'outgoing' : 'message', { ...stored }));
      return;
    }
    const body = fromBase64(env.body);
    if (body === undefined) return; // validated upstream; unreachable in practice
    const m: Ciphertext = { serverId: env.id, from, fromDevice, type: env.type, body, serverTimestamp: env.timestamp };
    if (await this.#trust.isPending(t, from)) {
      // Everything from a contact whose key changed waits for `trust`.
      this.#hold(t, m);
      return;
    }
    const sender = SenderThrottle.key(from, fromDevice);
    if (this.#throttle.throttled(sender) || this.#parkedSenders?.has(sender) === true) {
      this.#park(t, m, sender);
      return;
    }
    await this.decryptAndStore(t, m);
  }

  async #loadParked(): Promise<void> {
    const senders = new Set<string>();
    for (const r of await this.#core.view().list(PREFIX.parked)) {
      const { meta } = heldCodec.decode(r.value);
      senders.add(SenderThrottle.key(meta.from, meta.fromDevice));
    }
    this.#parkedSenders ??= senders;
    if (senders.size > 0) this.#scheduleDrain();
  }

  /** Parks an envelope of a throttled sender (acknowledged with the batch, tried later in order). */
  #park(t: StateTxn, m: Ciphertext, sender: string): void {
    t.write(heldCodec, PREFIX.parked + seqKey(t.nextSeq()), {
      meta: { serverId: m.serverId, from: m.from, fromDevice: m.fromDevice, type: m.type, serverTimestamp: m.serverTimestamp, receivedAt: this.#core.now() },
      blob: m.body,
    });
    t.afterCommit(() => {
      this.#parkedSenders?.add(sender);
      this.#scheduleDrain();
    });
  }

  /** Drops the oldest parked envelopes past MAX_PARKED (saying so). */
  async #boundParked(t: StateTxn): Promise<void> {
    const all = await t.list(PREFIX.parked, { limit: MAX_PARKED + MAX_RECEIVE_WINDOW });
    for (const r of all.slice(0, Math.max(0, all.length - MAX_PARKED))) {
      const { meta } = heldCodec.decode(r.value);
      t.delete(r.key);
      t.afterCommit(() => this.#core.events.emit('undecryptable', { from: meta.from, fromDevice: meta.fromDevice, reason: THROTTLED }));
    }
  }

  #scheduleDrain(): void {
    if (this.#closed || this.#drainTimer !== undefined) return;
    this.#drainTimer = setTimeout(() => {
      this.#drainTimer = undefined;
      void this.#drain().catch(() => this.#scheduleDrain());
    }, 1000 / THROTTLED_ATTEMPTS_PER_SECOND);
    (this.#drainTimer as { unref?: () => void }).unref?.();
  }

  /**
   * Tries the oldest parked envelope of each sender that has some. One that decrypts lifts its
   * sender's throttle, and that sender's other parked envelopes are handled now, in order.
   */
  async #drain(): Promise<void> {
    if (this.#closed) return;
    await this.#core.mutate(async (t) => {
      const tried = new Set<string>();
      const lifted = new Set<string>();
      const left = new Set<string>();
      for (const r of await t.list(PREFIX.parked, { limit: MAX_PARKED + MAX_RECEIVE_WINDOW })) {
        const { meta, blob } = heldCodec.decode(r.value);
        const sender = SenderThrottle.key(meta.from, meta.fromDevice);
        if (tried.has(sender) && !lifted.has(sender)) {
          left.add(sender);
          continue;
        }
        tried.add(sender);
        t.delete(r.key);
        if (await this.#trust.isPending(t, meta.from)) {
          this.#hold(t, { serverId: meta.serverId, from: meta.from, fromDevice: meta.fromDevice, type: meta.type, body: blob, serverTimestamp: meta.serverTimestamp });
          continue;
        }
        await this.decryptAndStore(t, { serverId: meta.serverId, from: meta.from, fromDevice: meta.fromDevice, type: meta.type, body: blob, serverTimestamp: meta.serverTimestamp });
        if (!this.#throttle.throttled(sender)) lifted.add(sender);
        else if (lifted.has(sender)) {
          // Failing again after the lift: the rest waits for the next round.
          lifted.delete(sender);
        }
      }
      await this.#trust.bound(t);
      t.afterCommit(() => {
        this.#parkedSenders = left;
        if (left.size > 0) this.#scheduleDrain();
      });
    });
  }

  #hold(t: StateTxn, m: Ciphertext): void {
    this.#trust.hold(t, { serverId: m.serverId, from: m.from, fromDevice: m.fromDevice, type: m.type, serverTimestamp: m.serverTimestamp, receivedAt: this.#core.now() }, m.body);
  }

  /** Inside a state change. Protocol failures drop the message (and say so); other errors propagate. */
  async decryptAndStore(t: StateTxn, m: Ciphertext): Promise<HistoryMessage | undefined> {
    let plaintext: Uint8Array;
    try {
      const r = await this.#sessions.decrypt(new ProtocolAddress(m.from, m.fromDevice), { type: m.type, body: m.body });
      plaintext = r.plaintext;
      this.#throttle.succeeded(SenderThrottle.key(m.from, m.fromDevice));
      if (r.newSession) t.afterCommit(this.#onNewSession);
    } catch (e) {
      if (isProtocolError(e) && e.code !== 'DUPLICATE' && !(e instanceof UntrustedIdentityError)) this.#throttle.failed(SenderThrottle.key(m.from, m.fromDevice));
      if (e instanceof UntrustedIdentityError && m.from === this.#core.account.username) {
        // Our own account under another identity key: not one of our devices. Refused, never trusted.
        t.afterCommit(() => this.#core.events.emit('undecryptable', { from: m.from, fromDevice: m.fromDevice, reason: 'FOREIGN_IDENTITY' }));
        return undefined;
      }
      if (e instanceof UntrustedIdentityError) {
        this.#hold(t, m);
        await this.#trust.changed(t, m.from, toBase64(e.identityKey.serialize()));
        return undefined;
      }
      if (isProtocolError(e)) {
        // DUPLICATE: a redelivery of something already shown; anything else: tampered, truncated,
        // replayed or for a lost session. Either way the session is untouched (decryption is
        // transactional) and retrying cannot help.
        if (e.code !== 'DUPLICATE') t.afterCommit(() => this.#core.events.emit('undecryptable', { from: m.from, fromDevice: m.fromDevice, reason: e.code }));
        return undefined;
      }
      throw e;
    }
    if (this.groups !== undefined && looksLikeGroupPayload(plaintext)) {
      // A group change or a member's sender key, over the pairwise session.
      await this.#directory.noteDevice(t, m.from, m.fromDevice);
      await this.groups.receivePairwise(t, m.from, m.fromDevice, plaintext);
      return undefined;
    }
    if (m.from !== this.#core.account.username && (await isBlocked(t, m.from))) {
      // Blocked (chat/block.ts): decrypted so the session stays in step, then dropped unseen;
      // nothing is stored, so no receipt goes back. Group changes and sender keys went above.
      return undefined;
    }
    if (this.chat !== undefined && (await this.chat.receiveChat(t, m.from, m.fromDevice, plaintext))) {
      // A receipt or typing indicator: never stored in history, never answered with a receipt.
      await this.#directory.noteDevice(t, m.from, m.fromDevice);
      return undefined;
    }
    const read = readEnvelope(plaintext);
    if (!read.ok) {
      // BAD_ATTACHMENT: a file pointer that does not check out; the problem (never its bytes) is said.
      const detail = read.reason === 'BAD_ATTACHMENT' ? { detail: `the file in it is refused: ${read.problem}` } : {};
      t.afterCommit(() => this.#core.events.emit('undecryptable', { from: m.from, fromDevice: m.fromDevice, reason: read.reason, ...detail }));
      return undefined;
    }
    const envelope = read.envelope;
    const self = this.#core.account.username;
    if (envelope.sentTo !== undefined || m.from === self) {
      // A "sent" transcript: only from our own devices (the session proved our identity key), and
      // only a transcript comes from them. Anything else claiming to be one is refused.
      if (m.from !== self || envelope.sentTo === undefined || envelope.sentTo === self) {
        t.afterCommit(() => this.#core.events.emit('undecryptable', { from: m.from, fromDevice: m.fromDevice, reason: 'FORGED_TRANSCRIPT' }));
        return undefined;
      }
      return this.#storeTranscript(t, m, envelope.sentTo, envelope);
    }
    await this.#directory.noteDevice(t, m.from, m.fromDevice);
    const dedupKey = this.#core.keys.seenMessage(m.from, envelope.id);
    if ((await t.getBytes(dedupKey)) !== undefined) return undefined;
    this.#remember(t, 'message', dedupKey);
    if (envelope.act !== undefined) {
      await this.actions?.receive(t, directConversation(m.from), m.from, envelope.act, envelope.sentAt);
      return undefined;
    }
    const stored = await this.#history.append(t, directConversation(m.from), {
      d: 'in',
      id: envelope.id,
      from: m.from,
      dev: m.fromDevice,
      sentAt: envelope.sentAt,
      srv: m.serverId,
      ts: m.serverTimestamp,
      rcv: this.#core.now(),
      ...(envelope.file !== undefined ? { file: storedFromPointer(envelope.file) } : {}),
      ...(envelope.exp !== undefined ? { exp: envelope.exp } : {}),
    }, envelope.text);
    // Shown only once it is durable, so a crash re-delivers rather than shows twice.
    t.afterCommit(() => this.#core.events.emit('message', { ...stored }));
    return stored;
  }

  /** Our own message, sent from another of our devices to `contact`: shown in that conversation as ours. */
  async #storeTranscript(t: StateTxn, m: Ciphertext, contact: string, envelope: Envelope): Promise<HistoryMessage | undefined> {
    const self = this.#core.account.username;
    const dedupKey = this.#core.keys.seenMessage(self, envelope.id);
    if ((await t.getBytes(dedupKey)) !== undefined) return undefined;
    this.#remember(t, 'message', dedupKey);
    await this.#directory.touch(t, contact);
    // Our own edit, deletion, reaction or timer, made on another of our devices (chat/edits.ts): applied as ours.
    if (envelope.act !== undefined) {
      await this.actions?.receive(t, directConversation(contact), self, envelope.act, envelope.sentAt);
      return undefined;
    }
    const stored = await this.#history.append(t, directConversation(contact), {
      d: 'out',
      id: envelope.id,
      from: self,
      dev: m.fromDevice,
      sentAt: envelope.sentAt,
      st: 'sent',
      to: {},
      ...(envelope.file !== undefined ? { file: storedFromPointer(envelope.file) } : {}),
      ...(envelope.exp !== undefined ? { exp: envelope.exp } : {}),
    }, envelope.text);
    t.afterCommit(() => this.#core.events.emit('outgoing', { ...stored }));
    return stored;
  }

  #remember(t: StateTxn, kind: 'server' | 'message', key: string): void {
    const seq = t.nextSeq();
    t.write(seenCodec, key, new Uint8Array(0));
    t.write(seenCodec, ORDER_PREFIX[kind] + seqKey(seq), new TextEncoder().encode(key));
    if (kind === 'server') t.counters.seenServerIds++;
    else t.counters.seenMessageIds++;
  }

  /** Forgets the oldest remembered ids past the bound. */
  async #bound(t: StateTxn, kind: 'server' | 'message'): Promise<void> {
    const count = kind === 'server' ? t.counters.seenServerIds : t.counters.seenMessageIds;
    const excess = count - (kind === 'server' ? MAX_SEEN_SERVER_IDS : MAX_SEEN_MESSAGE_IDS);
    if (excess <= 0) return;
    for (const r of await t.list(ORDER_PREFIX[kind], { limit: excess })) {
      t.delete(r.key);
      t.delete(new TextDecoder().decode(r.value));
      if (kind === 'server') t.counters.seenServerIds--;
      else t.counters.seenMessageIds--;
    }
  }
}
