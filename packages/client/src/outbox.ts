/**
 * Sending. `send` first stores the message in the conversation's history as `queued`, together
 * with a job in the contact's queue (`ox/<user>/<seq>`), in one commit: from then on the message
 * survives a crash and an outage. A worker per contact (under the contact's peer lock) takes the
 * jobs in order, makes sure there are sessions (fetching bundles for a new contact, which needs
 * the server), encrypts for every device and stores the ciphertexts (`oc/<seq>`) in the same
 * commit as the session step; the relay sends them in that order and resends them, unchanged,
 * after every reconnect until the server answers `sent`.
 *
 * A message is `sent` once every device stored it, `failed` on a definite refusal (unknown user,
 * changed identity, refused by the server), and stays `queued` while the server cannot be
 * reached: the worker tries again when the connection is back, and with backoff meanwhile.
 * A device that re-registered (STALE_DEVICE) gets the message once more, encrypted anew for the
 * devices that did not store it, once per message.
 *
 * Nothing goes to a blocked contact (chat/block.ts), as in Signal: a message queued before the
 * block (its job, or its ciphertexts not yet written to the server: stored, or waiting in the
 * relay while offline) is taken back and marked `failed` with BLOCKED, kept in history, and
 * `retry` sends it after `unblock`. The check runs when a block is made here or arrives from our
 * other devices (`refuseBlocked`), when the queue is worked on (the same commit as the
 * encryption), and before stored ciphertexts are resent after connecting. A ciphertext already
 * written to the server on the current connection cannot be taken back; it completes as sent.
 */
import { MAX_MESSAGE_BYTES, toBase64 } from '@tacit/api';
import { isProtocolError, ProtocolAddress, type SessionManager } from '@tacit/protocol';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.js';
import { toHex } from './bytes.js';
import type { Core, StateTxn } from './core.js';
import type { Directory } from './directory.js';
import { encodeEnvelope, ENVELOPE_VERSION } from './envelope.js';
import { checkText, describeTextProblem } from './text.js';
import { pointerOf } from './attachment/pointer.js';
import { CLIENT_ERROR_CODES, ClientError, type ClientErrorCode } from './errors.js';
import { contactOf, directConversation, messageError, type ConversationId, type History, type HistoryMessage, type MessageMeta } from './history.js';
import { PREFIX, seqKey } from './keys.js';
import { blobCodec, isInt, isObj, isStr, jsonCodec, optional } from './record-codec.js';
import type { Relay } from './relay.js';
import type { Action } from './chat/actions.js';
import { blockedUsers, isBlocked } from './chat/block.js';

/** Outgoing messages waiting to be encrypted plus ciphertexts waiting for `sent`. Bounds a client offline for long. */
export const MAX_OUTBOX = 2_000;
/** Message ids: 16 random bytes in hex. */
export const MESSAGE_ID_BYTES = 16;
/**
 * Times a message is encrypted again after the server refused its device list (Signal's 409/410:
 * a device re-registered, was added or removed; STALE_DEVICE, MISMATCHED_DEVICES). One repair
 * fixes the list; the second covers a change on both accounts (the contact's and our own).
 */
export const MAX_STALE_RESENDS = 2;
/** Server refusals that a fresh device list repairs. */
const REPAIRABLE: ReadonlySet<string> = new Set(['STALE_DEVICE', 'MISMATCHED_DEVICES']);

/** Refusals that go away by waiting: the message stays queued. */
const TRANSIENT_CODES: ReadonlySet<string> = new Set(['NETWORK', 'TIMEOUT', 'CLOSED']);
const TRANSIENT_SERVER_CODES: ReadonlySet<string> = new Set(['RATE_LIMITED', 'UNAVAILABLE', 'INTERNAL', 'TOO_MANY_IN_FLIGHT']);

export interface SendResult {
  /** Sender-chosen message id. */
  id: string;
  to: string;
  conversation: ConversationId;
  /** The message's position in the conversation's history. */
  seq: number;
  sentAt: number;
  /** One server id per recipient device. */
  serverIds: string[];
}

/** What `send` may carry besides text (chat/edits.ts). */
export interface SendOptions {
  /** An edit, deletion, reaction or timer: the record only carries it, and `text` is empty. */
  act?: Action;
  /** Runs in the commit that queues the message (the action applied on this device), with its time. */
  before?: (t: StateTxn, sentAt: number) => Promise<void>;
}

interface Job {
  conversation: ConversationId;
  /** The message's seq in the conversation. */
  msg: number;
  to: string;
}

const jobCodec = jsonCodec<Job>('queued outgoing message', (v) =>
  isObj(v) && isStr(v['conversation'], 200) && isInt(v['msg'], 1) && isStr(v['to'], 64) ? { conversation: v['conversation'], msg: v['msg'], to: v['to'] } : undefined,
);

export interface CiphertextEntry {
  /** Client correlation id of the `send` frame (unique per entry; resent unchanged). */
  clientId: string;
  conversation: ConversationId;
  msg: number;
  messageId: string;
  to: string;
  deviceId: number;
  /** The registration id of the session's remote install, so the server can refuse a stale device. */
  registrationId?: number;
  /** Every device of `to`'s account this message goes to, for the server's device-list check (SendFrame.devices). */
  devices?: number[];
  /** A "sent" transcript for another device of our own account (its plaintext names the contact). */
  sync?: 1;
  type: 'prekey' | 'whisper';
  createdAt: number;
  /** A disappearing message's timer (ms): the server keeps it queued no longer (`ttlMs`). */
  ttl?: number;
}

export const ciphertextCodec = blobCodec<CiphertextEntry>('outgoing ciphertext', (v) => {
  if (!isObj(v)) return undefined;
  const { clientId, conversation, msg, messageId, to, deviceId, registrationId, type, createdAt } = v;
  if (!isStr(clientId, 64) || !isStr(conversation, 200) || !isInt(msg) || !isStr(messageId, 64) || !isStr(to, 64) || !isInt(deviceId, 1)) return undefined;
  if (!optional(registrationId, isInt) || (type !== 'prekey' && type !== 'whisper') || !isInt(createdAt) || !optional(v['ttl'], isInt)) return undefined;
  const devices = v['devices'];
  if (devices !== undefined && !(Array.isArray(devices) && devices.length >= 1 && devices.length <= 128 && devices.every((d) => isInt(d, 1)))) return undefined;
  if (v['sync'] !== undefined && v['sync'] !== 1) return undefined;
  return v as unknown as CiphertextEntry;
});

interface Waiter {
  resolve: (r: SendResult) => void;
  reject: (e: ClientError) => void;
}

function isTransient(e: unknown): boolean {
  if (!(e instanceof ClientError)) return false;
  return TRANSIENT_CODES.has(e.code) || (e.code === 'SERVER' && e.serverCode !== undefined && TRANSIENT_SERVER_CODES.has(e.serverCode));
}

/** Why a message to a blocked contact was not sent (kept on the message; `retry` after `unblock`). */
function blockedError(contact: string): ClientError {
  return new ClientError('BLOCKED', `${contact} was blocked before it went out; unblock them to send it`, { contact });
}

/** The error a failed message's `send` rejects with, rebuilt from what its record keeps. */
function failure(m: HistoryMessage, contact: string): ClientError {
  const err = m.error;
  const code = err !== undefined && (CLIENT_ERROR_CODES as readonly string[]).includes(err.code) ? (err.code as ClientErrorCode) : 'SERVER';
  return new ClientError(code, err?.message ?? 'the message was not sent', { contact, ...(err?.serverCode !== undefined ? { serverCode: err.serverCode } : {}) });
}

export interface OutboxOptions {
  core: Core;
  history: History;
  directory: Directory;
  sessions: SessionManager;
  relay: () => Relay | undefined;
  /** Starts the connection if it is not running (never waits for it). */
  startRelay: () => void;
  backoff?: BackoffPolicy;
}

export class Outbox {
  readonly #o: OutboxOptions;
  readonly #core: Core;
  readonly #waiters = new Map<string, Waiter[]>();
  readonly #retryTimers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #attempts = new Map<string, number>();
  /** Stored ciphertexts go to the relay before anything newly encrypted. */
  #resumed: Promise<void> = Promise.resolve();
  #closed = false;
  /** Ciphertext outcomes waiting to be recorded together (see `#done`). */
  #outcomes: { key: string; entry: CiphertextEntry; outcome: { serverId: string } | { refused: ClientError } }[] = [];
  #outcomesFlushed: Promise<void> = Promise.resolve();

  constructor(o: OutboxOptions) {
    this.#o = o;
    this.#core = o.core;
  }

  /** Messages waiting to be encrypted plus ciphertexts waiting for the server. */
  get size(): number {
    return this.#core.counters.queued + this.#core.counters.ciphertexts;
  }

  /**
   * Stores `text` as a queued message to `contact` and sends it. Resolves once the server stored
   * it for every device of `contact`; rejects on a definite failure (the message is then `failed`
   * in history, and can be retried). While the server cannot be reached it stays queued and the
   * promise waits.
   */
  async send(contact: string, text: string, options: SendOptions = {}): Promise<SendResult> {
    this.#checkOpen();
    const a = this.#core.account;
    if (contact === a.username) throw new ClientError('INVALID_ARGUMENT', 'cannot send a message to yourself');
    const problem = options.act !== undefined ? undefined : checkText(text);
    if (problem !== undefined) throw new ClientError('INVALID_ARGUMENT', describeTextProblem(problem));
    const conversation = directConversation(contact);
    const queued = await this.#core.mutate(async (t) => {
      if (this.size >= MAX_OUTBOX) throw new ClientError('TIMEOUT', 'too many messages are waiting for the server');
      await this.#o.directory.touch(t, contact);
      const meta: MessageMeta = { d: 'out', id: toHex(this.#core.backend.randomBytes(MESSAGE_ID_BYTES)), from: a.username, dev: a.deviceId, sentAt: this.#core.now(), st: 'queued', to: {}, pend: 0, att: 0, job: 1, ...(options.act !== undefined ? { act: options.act } : {}) };
      // An edit, deletion, reaction or timer applies here in the commit that queues it.
      await options.before?.(t, meta.sentAt);
      const m = await this.#o.history.append(t, conversation, meta, text);
      this.#queue(t, m.conversation, m.seq, contact);
      t.afterCommit(() => this.#core.events.emit('outgoing', { ...m }));
      return m;
    });
    const done = this.#wait(queued);
    this.#o.startRelay();
    void this.kick(contact);
    return done;
  }

  /**
   * Sends a message that is already in history but was never queued (a file whose upload just
   * finished): `change` completes its record, then it is queued like `send` does. Resolves and
   * rejects as `send`.
   */
  async sendStored(conversation: ConversationId, seq: number, contact: string, change: (m: MessageMeta) => MessageMeta): Promise<SendResult> {
    this.#checkOpen();
    const m = await this.#core.mutate(async (t) => {
      if (this.size >= MAX_OUTBOX) throw new ClientError('TIMEOUT', 'too many messages are waiting for the server');
      await this.#o.directory.touch(t, contact);
      const updated = await this.#o.history.update(t, conversation, seq, (x) => {
        const next: MessageMeta = { ...change(x), st: 'queued', att: 0, job: 1 };
        delete next.err;
        return next;
      });
      if (updated === undefined) throw new ClientError('INVALID_ARGUMENT', 'the message is no longer in history');
      this.#queue(t, conversation, seq, contact);
      t.afterCommit(() => this.#core.events.emit('outgoing', { ...updated }));
      return updated;
    });
    const done = this.#wait(m);
    this.#o.startRelay();
    void this.kick(contact);
    return done;
  }

  /** Sends a failed message again (same message id, so devices that got it drop the copy). */
  async retry(conversation: ConversationId, seq: number): Promise<SendResult> {
    this.#checkOpen();
    const contact = contactOf(conversation);
    if (contact === undefined) throw new ClientError('INVALID_ARGUMENT', 'not a conversation with a contact');
    const m = await this.#core.mutate(async (t) => {
      const cur = await this.#o.history.message(t, conversation, seq);
      if (cur === undefined || cur.meta.d !== 'out') throw new ClientError('INVALID_ARGUMENT', 'no such outgoing message');
      if (cur.meta.st !== 'failed') return undefined;
      if (this.size >= MAX_OUTBOX) throw new ClientError('TIMEOUT', 'too many messages are waiting for the server');
      this.#queue(t, conversation, seq, contact);
      const updated = await this.#o.history.update(t, conversation, seq, (x) => {
        const next: MessageMeta = { ...x, st: 'queued', att: 0, job: 1 };
        delete next.err;
        return next;
      });
      t.afterCommit(() => updated && this.#core.events.emit('outgoing', { ...updated }));
      return updated;
    });
    if (m === undefined) throw new ClientError('INVALID_ARGUMENT', 'only a failed message can be retried');
    const done = this.#wait(m);
    this.#o.startRelay();
    void this.kick(contact);
    return done;
  }

  /** After connecting: resend stored ciphertexts in order, and work on every contact's queue. */
  resume(): Promise<void> {
    this.#resumed = (async () => {
      const view = this.#core.view();
      const blocked = await blockedUsers(view);
      const refused = new Set<string>();
      for (const r of await view.list(PREFIX.outboxCiphertext)) {
        const { meta, blob } = ciphertextCodec.decode(r.value);
        // Blocked since it was encrypted: taken back instead (below).
        const contact = contactOf(meta.conversation);
        if (contact !== undefined && blocked.has(contact)) refused.add(contact);
        else this.#transmit(r.key, meta, blob);
      }
      for (const c of refused) void this.refuseBlocked(c).catch(() => undefined);
    })();
    return this.#resumed.then(async () => this.kickAll(await this.#queuedContacts()));
  }

  /** The connection is (back) up: contacts whose queue waited for the server are worked on now. */
  async onReady(): Promise<void> {
    this.kickAll(await this.#queuedContacts());
  }

  kickAll(contacts: Iterable<string>): void {
    for (const c of contacts) void this.kick(c);
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#retryTimers.values()) clearTimeout(t);
    this.#retryTimers.clear();
    const err = new ClientError('CLOSED', 'the client closed before the server confirmed the message; it is sent the next time the client connects');
    for (const list of this.#waiters.values()) for (const w of list) w.reject(err);
    this.#waiters.clear();
  }

  async #queuedContacts(): Promise<Set<string>> {
    const contacts = new Set<string>();
    for (const r of await this.#core.view().list(PREFIX.outboxQueue)) contacts.add(jobCodec.decode(r.value).to);
    return contacts;
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
  }

  #queue(t: StateTxn, conversation: ConversationId, msg: number, to: string): void {
    t.write(jobCodec, this.#core.keys.queued(to, t.nextSeq()), { conversation, msg, to });
    t.counters.queued++;
  }

  #wait(m: HistoryMessage): Promise<SendResult> {
    const key = `${m.conversation}#${m.seq}`;
    return new Promise((resolve, reject) => {
      const list = this.#waiters.get(key) ?? [];
      list.push({ resolve, reject });
      this.#waiters.set(key, list);
    });
  }

  /** Settles the waiters of a message that reached `sent` or `failed`, and tells the app. */
  #settled(m: HistoryMessage): void {
    this.#core.events.emit('outgoing', { ...m });
    if (m.state === 'queued') return;
    const key = `${m.conversation}#${m.seq}`;
    const list = this.#waiters.get(key);
    if (list === undefined) return;
    this.#waiters.delete(key);
    const contact = contactOf(m.conversation) ?? '';
    for (const w of list) {
      if (m.state === 'sent') w.resolve({ id: m.id, to: contact, conversation: m.conversation, seq: m.seq, sentAt: m.sentAt, serverIds: m.serverIds ?? [] });
      else w.reject(failure(m, contact));
    }
  }

  /** Works through `contact`'s queue, one job at a time, under the contact's peer lock. */
  kick(contact: string): Promise<void> {
    return this.#core.peerLock.run(contact, () => this.#pump(contact)).catch(() => this.#retryLater(contact));
  }

  #retryLater(contact: string): void {
    if (this.#closed || this.#retryTimers.has(contact)) return;
    const attempt = this.#attempts.get(contact) ?? 0;
    this.#attempts.set(contact, attempt + 1);
    const timer = setTimeout(() => {
      this.#retryTimers.delete(contact);
      void this.kick(contact);
    }, backoffDelay(attempt, this.#o.backoff ?? DEFAULT_BACKOFF));
    (timer as { unref?: () => void }).unref?.();
    this.#retryTimers.set(contact, timer);
  }

  async #pump(contact: string): Promise<void> {
    await this.#resumed.catch(() => undefined);
    for (let guard = 0; guard < MAX_OUTBOX + 1 && !this.#closed; guard++) {
      const next = (await this.#core.view().list(this.#core.keys.queuedFor(contact), { limit: 1 }))[0];
      if (next === undefined) return;
      const job = jobCodec.decode(next.value);
      if (await isBlocked(this.#core.view(), contact)) {
        await this.#fail(next.key, job, blockedError(contact));
        continue;
      }
      let devices: number[];
      try {
        devices = await this.#o.directory.prepareSessions(contact);
      } catch (e) {
        if (isTransient(e)) return this.#retryLater(contact);
        await this.#fail(next.key, job, e);
        continue;
      }
      this.#attempts.delete(contact);
      // Our other devices get a "sent" transcript. Trouble reaching them (offline, a key that is not
      // ours) never holds up the message to the contact.
      const own = await this.#o.directory.prepareSessions(this.#core.account.username, this.#core.account.deviceId).catch(() => [] as number[]);
      let entries: { key: string; entry: CiphertextEntry; body: Uint8Array }[];
      try {
        entries = await this.#core.mutate((t) => this.#encrypt(t, next.key, job, devices, own));
      } catch (e) {
        if (!isProtocolError(e) && !(e instanceof ClientError && e.code === 'INVALID_ARGUMENT')) throw e;
        // The session could not encrypt (expired, unusable) or the result is too large: a
        // definite failure of this message, not of the queue.
        await this.#fail(next.key, job, e instanceof ClientError ? e : new ClientError('BAD_RESPONSE', `could not encrypt for ${contact} (${e.code})`, { contact }));
        continue;
      }
      // Still under the peer lock: frames enter the relay's queue in encryption order.
      for (const e of entries) this.#transmit(e.key, e.entry, e.body);
    }
  }

  /**
   * Inside a state change: consumes the job and stores one ciphertext per device that still needs
   * the message: the contact's `devices`, and our `own` other devices (a "sent" transcript).
   */
  async #encrypt(t: StateTxn, jobKey: string, job: Job, devices: number[], own: number[]): Promise<{ key: string; entry: CiphertextEntry; body: Uint8Array }[]> {
    if ((await t.getBytes(jobKey)) === undefined) return [];
    // Blocked while its sessions were prepared: checked in the commit that would encrypt it.
    if (await isBlocked(t, job.to)) {
      await this.#failIn(t, jobKey, job, blockedError(job.to));
      return [];
    }
    t.delete(jobKey);
    t.counters.queued--;
    const msg = await this.#o.history.message(t, job.conversation, job.msg);
    if (msg === undefined) return [];
    const delivered = msg.meta.to ?? {};
    const ownDelivered = msg.meta.own ?? {};
    const self = this.#core.account.username;
    // A file goes out only with its complete pointer (its upload finished).
    const file = msg.meta.file === undefined ? undefined : pointerOf(msg.meta.file);
    if (msg.meta.file !== undefined && file === undefined) throw new ClientError('INVALID_ARGUMENT', 'the file is not uploaded yet');
    const base = { v: ENVELOPE_VERSION, id: msg.meta.id, text: msg.text, sentAt: msg.meta.sentAt, ...(file !== undefined ? { file } : {}), ...(msg.meta.act !== undefined ? { act: msg.meta.act } : {}), ...(msg.meta.exp !== undefined ? { exp: msg.meta.exp } : {}) } as const;
    const plaintext = encodeEnvelope(base);
    const transcript = encodeEnvelope({ ...base, sentTo: job.to });
    const out: { key: string; entry: CiphertextEntry; body: Uint8Array }[] = [];
    const targets = [
      ...devices.filter((d) => delivered[String(d)] === undefined).map((d) => ({ user: job.to, d, all: devices, sync: false })),
      ...own.filter((d) => ownDelivered[String(d)] === undefined).map((d) => ({ user: self, d, all: own, sync: true })),
    ];
    for (const { user, d, all, sync } of targets) {
      const ct = await this.#o.sessions.encrypt(new ProtocolAddress(user, d), sync ? transcript : plaintext);
      if (ct.body.length > MAX_MESSAGE_BYTES) throw new ClientError('INVALID_ARGUMENT', 'message too large');
      // The install this ciphertext is for: the server refuses it (STALE_DEVICE) if the device
      // re-registered since, instead of storing mail it cannot decrypt.
      const registrationId = await this.#o.directory.sessionRegistrationId(t, user, d);
      const entry: CiphertextEntry = {
        clientId: toHex(this.#core.backend.randomBytes(12)),
        conversation: job.conversation,
        msg: job.msg,
        messageId: msg.meta.id,
        to: user,
        deviceId: d,
        ...(registrationId !== undefined ? { registrationId } : {}),
        devices: [...all],
        ...(sync ? { sync: 1 as const } : {}),
        type: ct.type,
        createdAt: this.#core.now(),
        ...(msg.meta.exp !== undefined ? { ttl: msg.meta.exp } : {}),
      };
      const key = PREFIX.outboxCiphertext + seqKey(t.nextSeq());
      t.write(ciphertextCodec, key, { meta: entry, blob: ct.body });
      t.counters.ciphertexts++;
      out.push({ key, entry, body: ct.body });
    }
    const updated = await this.#o.history.update(t, job.conversation, job.msg, (m) => {
      const next: MessageMeta = { ...m, pend: (m.pend ?? 0) + out.length };
      delete next.job;
      if (next.st === 'queued' && next.pend === 0) next.st = 'sent';
      return next;
    });
    if (updated && updated.state !== 'queued') t.afterCommit(() => this.#settled(updated));
    return out;
  }

  /** Marks the job's message failed with `error` (and drops the job). */
  async #fail(jobKey: string, job: Job, error: unknown): Promise<void> {
    const e = error instanceof ClientError ? error : new ClientError('BAD_RESPONSE', 'the message could not be sent');
    await this.#core.mutate((t) => this.#failIn(t, jobKey, job, e));
  }

  /** Inside a state change: drops the job (if still there) and marks its message failed with `e`. */
  async #failIn(t: StateTxn, jobKey: string, job: Job, e: ClientError): Promise<void> {
    if ((await t.getBytes(jobKey)) !== undefined) {
      t.delete(jobKey);
      t.counters.queued--;
    }
    const updated = await this.#o.history.update(t, job.conversation, job.msg, (m) => {
      const next: MessageMeta = { ...m, st: 'failed', err: messageError(e.code, e.message, e.serverCode) };
      delete next.job;
      return next;
    });
    if (updated) t.afterCommit(() => this.#settled(updated));
  }

  /**
   * `contact` is blocked (here, or on another device of ours): what is queued for them and not yet
   * written to the server is taken back — jobs, and stored ciphertexts (with the "sent"
   * transcripts of the same messages, so our other devices do not show them as sent) — and their
   * messages are marked failed with BLOCKED. Does nothing if they are not blocked (any more).
   * Runs under the contact's peer lock, so it never splits the queue's encryption from its
   * hand-over to the relay.
   */
  refuseBlocked(contact: string): Promise<void> {
    return this.#core.peerLock.run(contact, () =>
      this.#core.mutate(async (t) => {
        if (!(await isBlocked(t, contact))) return;
        const e = blockedError(contact);
        for (const r of await t.list(this.#core.keys.queuedFor(contact))) await this.#failIn(t, r.key, jobCodec.decode(r.value), e);
        const conversation = directConversation(contact);
        const relay = this.#o.relay();
        const byMessage = new Map<number, { key: string; entry: CiphertextEntry }[]>();
        for (const r of await t.list(PREFIX.outboxCiphertext)) {
          const { meta } = ciphertextCodec.decode(r.value);
          if (meta.conversation === conversation) byMessage.set(meta.msg, [...(byMessage.get(meta.msg) ?? []), { key: r.key, entry: meta }]);
        }
        const taken = new Map<number, number>();
        for (const [msg, list] of byMessage) {
          // Its transcripts go only if something to the contact was taken back: a message the
          // contact already has stays sent (only its transcripts were left).
          for (const sync of [false, true]) {
            if (sync && !taken.has(msg)) break;
            for (const { key, entry } of list) {
              if ((entry.sync === 1) !== sync) continue;
              // Written to the server on this connection: it may be stored there already; its answer settles it.
              if (relay?.withdraw(entry.clientId) === 'on-wire') continue;
              t.delete(key);
              t.counters.ciphertexts--;
              taken.set(msg, (taken.get(msg) ?? 0) + 1);
            }
          }
        }
        for (const [msg, n] of taken) {
          const updated = await this.#o.history.update(t, conversation, msg, (m) => {
            const next: MessageMeta = { ...m, pend: Math.max(0, (m.pend ?? n) - n), st: 'failed', err: messageError(e.code, e.message) };
            delete next.job;
            return next;
          });
          if (updated) t.afterCommit(() => this.#settled(updated));
        }
      }),
    );
  }

  /** Queues one ciphertext on the relay and records the outcome. */
  #transmit(key: string, entry: CiphertextEntry, body: Uint8Array): void {
    const relay = this.#o.relay();
    if (!relay) return; // sent by `resume` when the client connects
    relay
      .send({
        type: 'send',
        id: entry.clientId,
        to: { username: entry.to, deviceId: entry.deviceId, ...(entry.registrationId !== undefined ? { registrationId: entry.registrationId } : {}) },
        message: { type: entry.type, body: toBase64(body) },
        ...(entry.ttl !== undefined ? { ttlMs: entry.ttl } : {}),
        ...(entry.devices !== undefined ? { devices: entry.devices } : {}),
      })
      .then(
        (r) => this.#done(key, entry, { serverId: r.serverId }),
        (e: unknown) => {
          // A definite refusal (not a disconnect or a close): the entry goes, the message is
          // re-encrypted (stale device) or failed.
          if (e instanceof ClientError && e.code === 'SERVER' && !isTransient(e)) return this.#done(key, entry, { refused: e });
          return undefined;
        },
      )
      .catch(() => undefined);
  }

  /**
   * Records a ciphertext's outcome. Outcomes that arrive together (a `sent-batch` answers every
   * send of one server commit, and settles their promises in one go) are recorded in one state
   * change, so one commit of ours per frame rather than one per ciphertext.
   */
  #done(key: string, entry: CiphertextEntry, outcome: { serverId: string } | { refused: ClientError }): Promise<void> {
    this.#outcomes.push({ key, entry, outcome });
    if (this.#outcomes.length === 1) {
      // After every settlement already queued in this microtask checkpoint.
      this.#outcomesFlushed = new Promise<void>((resolve) => queueMicrotask(() => resolve(this.#recordOutcomes())));
    }
    return this.#outcomesFlushed;
  }

  async #recordOutcomes(): Promise<void> {
    const batch = this.#outcomes;
    this.#outcomes = [];
    const requeued = new Set<string>();
    await this.#core.mutate(async (t) => {
      for (const { key, entry, outcome } of batch) {
        if (!(await this.#record(t, key, entry, outcome))) continue;
        requeued.add(contactOf(entry.conversation) ?? entry.to);
        // The account whose list was out of date (the contact's, or ours for a transcript).
        this.#o.directory.forget(entry.to);
      }
    });
    for (const to of requeued) {
      this.#o.directory.forget(to);
      void this.kick(to);
    }
  }

  /** One outcome, inside a state change; true when the message goes back to be encrypted again. */
  async #record(t: StateTxn, key: string, entry: CiphertextEntry, outcome: { serverId: string } | { refused: ClientError }): Promise<boolean> {
    let requeued = false;
    if ((await t.getBytes(key)) === undefined) return false;
    t.delete(key);
    t.counters.ciphertexts--;
    const contact = contactOf(entry.conversation) ?? entry.to;
    const updated = await this.#o.history.update(t, entry.conversation, entry.msg, (m) => {
      const next: MessageMeta = { ...m, pend: Math.max(0, (m.pend ?? 1) - 1) };
      const code = 'refused' in outcome ? outcome.refused.serverCode : undefined;
      if ('serverId' in outcome) {
        if (entry.sync === 1) next.own = { ...next.own, [String(entry.deviceId)]: outcome.serverId };
        else next.to = { ...next.to, [String(entry.deviceId)]: outcome.serverId };
      } else if (code !== undefined && REPAIRABLE.has(code) && next.job === 1) {
        // Another ciphertext of this message was refused already and it is queued again: that
        // repair covers this device too.
        requeued = true;
      } else if (code !== undefined && REPAIRABLE.has(code) && (next.att ?? 0) < MAX_STALE_RESENDS && next.st !== 'failed') {
        // The device list was out of date (a device re-registered, was added or removed): encrypt
        // again, from a fresh device list, for the devices that did not store the message.
        next.att = (next.att ?? 0) + 1;
        next.job = 1;
        this.#queue(t, entry.conversation, entry.msg, contact);
        requeued = true;
      } else if (entry.sync === 1) {
        // A transcript our other device could not take does not fail the message.
      } else {
        const e = outcome.refused.serverCode === 'NOT_FOUND'
          ? new ClientError('UNKNOWN_USER', `${entry.to} (device ${entry.deviceId}) no longer exists on the server`, { contact: entry.to, serverCode: 'NOT_FOUND' })
          : outcome.refused;
        next.st = 'failed';
        next.err = messageError(e.code, e.message, e.serverCode);
      }
      if (next.st === 'queued' && next.pend === 0 && next.job === undefined) next.st = 'sent';
      return next;
    });
    if (updated && updated.state !== 'queued') t.afterCommit(() => this.#settled(updated));
    return requeued;
  }
}
