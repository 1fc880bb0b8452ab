/**
 * The tacit client: one device of one account, as a thin facade over its parts, one concept per
 * file: account (account.ts), pre-key upkeep (prekeys.ts), the device directory (directory.ts),
 * trust on first use (trust.ts), sending (outbox.ts), receiving (inbox.ts) and the conversation
 * history (history.ts), all on one record store (core.ts). Storage (RecordStore), crypto
 * (CryptoBackend) and the socket (SocketFactory) are passed in, so the same class runs in Node and
 * in a browser.
 */
import { deviceName as deviceNameValidator, fromBase64, MAX_DEVICE_ID, MAX_PROVISIONING_MESSAGE_BYTES, toBase64, username as usernameValidator, type AddKeysRequest, type DeviceCredentials, type DeviceInfo, type UploadKeysRequest } from '@tacit/api';
import { awaitProvisioning, encodeProvisioningMessage, MAX_SYNCED_CONTACTS, MAX_SYNCED_GROUPS, PROVISIONING_MESSAGE_VERSION, type ProvisioningMessage } from './link.js';
import { encryptProvisioning, parseLinkCode } from './provisioning.js';
import { generateRegistrationId, IdentityKeyPair, SessionManager, type CryptoBackend } from '@tacit/protocol';
import { accountCodec, type Account } from './account.js';
import type { BackoffPolicy } from './backoff.js';
import { Core, countersCodec, emptyCounters, type StateTxn } from './core.js';
import { Directory } from './directory.js';
import { Emitter } from './emitter.js';
import type { ClientEvents } from './events.js';
import { ClientError, isClientError } from './errors.js';
import { contactOf, directConversation, groupIdOf, History, type ConversationId, type ConversationSummary, type HistoryMessage } from './history.js';
import { HttpApi, provisioningUrl, relayUrl, type FetchLike } from './http.js';
import { Inbox } from './inbox.js';
import { GROUP_CLOSE_GRACE_MS, Groups, type GroupInfo, type GroupSendResult } from './group/groups.js';
import { groupConversation } from './group/state.js';
import { PREFIX } from './keys.js';
import { Outbox, type SendResult } from './outbox.js';
import { applyKeyMaintenance, checkEncodedKeys, keyMaintenanceRequest, makeInitialKeys, makeKeys, type InitialKeyGenerator, type KeyGenerator, kyberPreKeyWire, preKeyWire, signedPreKeyWire, storeInitialKeys, UPLOAD_KEY, UPLOAD_PROGRESS_KEY, uploadCodec, uploadParts, uploadProgressCodec } from './prekeys.js';
import { recordStores } from './protocol-stores.js';
import type { RecordStore } from './record-store.js';
import { nextTurn, Relay, type SocketFactory } from './relay.js';
import { Trust, type SafetyNumberInfo } from './trust.js';
import { Txn } from './txn.js';
import { AttachmentApi, type BlobFetch } from './attachment/blob-api.js';
import { webAttachmentCrypto, type AttachmentCrypto } from './attachment/crypto.js';
import type { DownloadOptions } from './attachment/download.js';
import { AttachmentMessages, type SendFileOptions, type TransferOptions } from './attachment/messages.js';
import type { AttachmentInfo } from './attachment/pointer.js';
import type { PlaintextSource } from './attachment/upload.js';
import { looksLikeReceipt, RECEIPT_CLOSE_GRACE_MS, Receipts } from './chat/receipts.js';
import { readSettings, settingsCodec, type ChatSettings } from './chat/settings.js';
import { EDIT_WINDOW_MS, editTextProblem, isReactionEmoji, isTimerMs, type Action } from './chat/actions.js';
import { MessageActions } from './chat/edits.js';
import { SearchIndex } from './chat/search-index.js';
import { uncheckedActionSend } from './chat/testing.js';
import { looksLikeTyping, Typing } from './chat/typing.js';
import { looksLikeReadSync, ReadSyncs } from './chat/read-sync.js';
import { changeBlockList, isBlocked, looksLikeBlockSync, readBlockList, receiveBlockSync } from './chat/block.js';
import { activeMutes, changeMutes, looksLikeMuteSync, muteEnd, receiveMuteSync } from './chat/mute.js';

/** Check the server's pre-key stock after this many sessions were started with us. */
export const KEY_CHECK_AFTER_NEW_SESSIONS = 10;
/** A long-running client re-checks its pre-keys (refill, rotation) this often, ms. */
export const KEY_CHECK_INTERVAL_MS = 60 * 60 * 1000;
/** How often `flush` looks at the outbox, ms. */
export const FLUSH_POLL_MS = 25;
/** Device secret length: 32 random bytes. */
export const DEVICE_SECRET_BYTES = 32;

export interface ClientOptions {
  /** Where the client keeps its state; the client owns it from now on and closes it in `close()`. */
  store: RecordStore;
  backend: CryptoBackend;
  connect: SocketFactory;
  now?: () => number;
  fetch?: FetchLike;
  backoff?: BackoffPolicy;
  /** Attachment encryption (default WebCrypto; Node: nodeAttachmentCrypto). */
  attachmentCrypto?: AttachmentCrypto;
  /** HTTP for attachment blobs (default the global fetch; Node: nodeBlobFetch). */
  blobFetch?: BlobFetch;
  /**
   * Makes a new device's initial pre-keys off this thread (the web client: a Web Worker), for
   * `register` and `link`. Default: `encodeInitialKeys(generateInitialKeys(...))` here, synchronously.
   */
  initialKeys?: InitialKeyGenerator;
  /**
   * Makes the keys of pre-key refills and signed pre-key rotations (`maintainKeys`) off this
   * thread (the web client: its key worker), with the ids the client allocated; what it returns is
   * checked before anything is stored. Default: `makeKeys` here, synchronously.
   */
  keyGenerator?: KeyGenerator;
}

export interface RegisterOptions {
  server: string;
  username: string;
  inviteCode?: string;
}

export interface LinkOptions {
  server: string;
  /** Shown in the account's device list (e.g. "laptop browser"); at most MAX_DEVICE_NAME_LENGTH characters. */
  name?: string;
  /** Receives the link code to show, and when the channel closes (ms since the epoch). */
  onCode: (code: string, expiresAt: number) => void;
  timeoutMs?: number;
}

/** One device of this account. */
export interface LinkedDevice extends DeviceInfo {
  /** This is the device the client runs on. */
  current: boolean;
}

/** What `unlinkThisDevice` did. */
export type UnlinkResult =
  /** This device was removed from the account; `otherDevices` remain. */
  | { kind: 'unlinked'; otherDevices: number }
  /** The account's only device: kept on the server (the account stays, its username taken). */
  | { kind: 'only-device' }
  /** The server already refused this device's credentials (removed elsewhere, or the account reset). */
  | { kind: 'already-removed' };

/** After sending a link message, how long `linkDevice` waits for the new device to register, ms. */
export const LINK_REGISTER_WAIT_MS = 30_000;
/** How often `linkDevice` looks at the device list meanwhile, ms. */
export const LINK_POLL_MS = 250;
/** Bytes the provisioning cipher adds (ephemeral key, version, IV, padding block, MAC). */
const LINK_ENVELOPE_OVERHEAD = 33 + 1 + 16 + 16 + 32;

export interface ContactInfo {
  username: string;
  devices: number;
  /** An identity key is trusted for this contact. */
  known: boolean;
  /** The contact's identity key changed and awaits `trust`. */
  identityChanged: boolean;
  /** Blocked (`block`): nothing from them is shown, nothing goes to them. */
  blocked: boolean;
  /** The conversation with them is muted (`mute`) until then (ms; MUTED_FOREVER: until unmuted). */
  mutedUntil?: number;
  unread: number;
  lastMessageAt: number | undefined;
}

/** An edit, deletion, reaction or timer change that the server stored for every device. */
export interface ActionResult {
  conversation: ConversationId;
  kind: Action['k'];
  /** The id of the message that carried it, and the message it changed. */
  id: string;
  target?: string;
  sentAt: number;
  /** Devices the server stored it for. */
  devices: number;
}

export interface ConversationInfo extends ConversationSummary {
  /** The contact's identity key changed: nothing is sent or shown until `trust`. */
  identityChanged: boolean;
  /** The contact is blocked (`block`): nothing from them is shown, nothing goes to them. */
  blocked: boolean;
  /**
   * Muted (`mute`) until then (ms; MUTED_FOREVER: until unmuted); absent: not muted. Everything
   * is still received, stored and counted unread; apps do not alert for it.
   */
  mutedUntil?: number;
}

/** Validates and case-folds a username given by the user. */
export function parseUsername(name: string): string {
  const r = usernameValidator(name);
  if (!r.ok) throw new ClientError('INVALID_ARGUMENT', `"${name.slice(0, 40)}" is not a valid username: ${r.reason}`);
  return r.value;
}

/** Does `ref` name a group (`#title`, `g:<id or prefix>`) rather than a user? */
export function isGroupRef(ref: string): boolean {
  return ref.startsWith('#') || ref.startsWith('g:');
}

/** A conversation id from an id (`u:bob`, `g:<32 hex>`) or a username (`bob`). */
export function parseConversation(idOrUsername: string): ConversationId {
  if (idOrUsername.includes(':')) {
    if (contactOf(idOrUsername) === undefined && groupIdOf(idOrUsername) === undefined) throw new ClientError('INVALID_ARGUMENT', 'not a conversation id');
    return idOrUsername;
  }
  return directConversation(parseUsername(idOrUsername));
}

/** With read receipts off, others' read receipts are not shown (Signal's rule): read counts as delivered. */
function hideReadReceipts(m: HistoryMessage, hide: boolean): HistoryMessage {
  if (!hide || m.receipts === undefined) return m;
  const receipts: NonNullable<HistoryMessage['receipts']> = {};
  for (const [u, r] of Object.entries(m.receipts)) receipts[u] = r.delivered !== undefined ? { delivered: r.delivered } : {};
  return { ...m, receipts, ...(m.delivery === 'read' ? { delivery: 'delivered' as const } : {}) };
}

export class TacitClient {
  readonly #opts: ClientOptions;
  readonly #core: Core;
  readonly #http: HttpApi;
  readonly #history: History;
  readonly #trust: Trust;
  readonly #directory: Directory;
  readonly #inbox: Inbox;
  readonly #outbox: Outbox;
  readonly #groups: Groups;
  readonly #attachments: AttachmentMessages;
  readonly #receipts: Receipts;
  readonly #actions: MessageActions;
  readonly #readSyncs: ReadSyncs;
  readonly #search: SearchIndex;
  readonly #typing: Typing;
  readonly #events: Emitter<ClientEvents>;
  #relay: Relay | undefined;
  #resumed: Promise<void> = Promise.resolve();
  #newSessionsSinceCheck = 0;
  #maintenance: Promise<void> | undefined;
  #keyTimer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  private constructor(opts: ClientOptions, core: Core, events: Emitter<ClientEvents>) {
    this.#opts = opts;
    this.#core = core;
    this.#events = events;
    const a = core.account;
    this.#http = new HttpApi(a.server, {
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      credentials: { username: a.username, deviceId: a.deviceId, secret: a.secret },
    });
    const sessions = new SessionManager(core.backend, recordStores(core), { now: core.now });
    this.#history = new History(core);
    this.#search = new SearchIndex(core, this.#history);
    this.#trust = new Trust(core);
    this.#directory = new Directory(core, this.#http, sessions, this.#trust);
    this.#inbox = new Inbox(core, this.#history, this.#trust, this.#directory, sessions, () => this.#sessionStarted());
    this.#outbox = new Outbox({
      core,
      history: this.#history,
      directory: this.#directory,
      sessions,
      relay: () => this.#relay,
      startRelay: () => this.#startRelay(),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
    });
    this.#groups = new Groups({
      core,
      history: this.#history,
      directory: this.#directory,
      trust: this.#trust,
      sessions,
      relay: () => this.#relay,
      startRelay: () => this.#startRelay(),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
    });
    this.#inbox.groups = this.#groups;
    this.#receipts = new Receipts({ core, history: this.#history, directory: this.#directory, sessions, relay: () => this.#relay, ...(opts.backoff ? { backoff: opts.backoff } : {}) });
    this.#typing = new Typing({
      core,
      directory: this.#directory,
      sessions,
      relay: () => this.#relay,
      members: async (group) => {
        const g = (await this.#groups.list()).find((x) => x.id === group);
        return g?.member === true ? g.members.filter((u) => u !== core.account.username) : undefined;
      },
    });
    this.#events.on('message', (m) => this.#typing.stopped(m.conversation, m.from));
    // A block synced from our other devices: what is queued for them is taken back, as `block` does here.
    this.#events.on('block', (e) => {
      if (e.fromDevice !== undefined && !this.#closed) void this.#takeBackFor(e.blocked);
    });
    this.#inbox.chat = {
      receiveChat: async (t, from, fromDevice, plaintext) => {
        if (looksLikeTyping(plaintext)) {
          await this.#typing.receive(t, from, plaintext);
          return true;
        }
        if (looksLikeReceipt(plaintext)) {
          await this.#receipts.receive(t, from, fromDevice, plaintext);
          return true;
        }
        if (looksLikeReadSync(plaintext)) {
          await this.#readSyncs.receive(t, from, fromDevice, plaintext);
          return true;
        }
        if (looksLikeBlockSync(plaintext)) {
          await receiveBlockSync(core, t, from, fromDevice, plaintext);
          return true;
        }
        if (looksLikeMuteSync(plaintext)) {
          await receiveMuteSync(core, t, from, fromDevice, plaintext);
          return true;
        }
        return false;
      },
    };
    this.#actions = new MessageActions(core, this.#history);
    this.#readSyncs = new ReadSyncs(core, this.#history);
    uncheckedActionSend.set(this, (c, act) => this.#sendAction(c, act, undefined, false));
    this.#inbox.actions = this.#actions;
    // A record that carried an edit, deletion, reaction or timer goes once the server has it
    // (or refused it): it holds nothing to show, and an edit's text should not outlive a deletion.
    events.on('outgoing', (m) => {
      if (m.carrier === true && m.state !== 'queued' && m.state !== 'uploading' && !this.#closed) {
        void core.mutate((t) => this.#history.remove(t, m.conversation, m.seq)).catch(() => undefined);
      }
    });
    let api: AttachmentApi | undefined;
    this.#attachments = new AttachmentMessages({
      core,
      history: this.#history,
      outbox: this.#outbox,
      api: () => (api ??= new AttachmentApi(a.server, { username: a.username, deviceId: a.deviceId, secret: a.secret }, opts.blobFetch)),
      crypto: opts.attachmentCrypto ?? webAttachmentCrypto(),
      sendToGroup: async (conversation, seq, change) => {
        const r = await this.#groups.sendStored(conversation, seq, change);
        return { id: r.id, to: conversation, conversation: r.conversation, seq: r.seq, sentAt: r.sentAt, serverIds: [] };
      },
    });
  }

  // ---- lifecycle ----

  /** Creates a new account with its first device and stores it. */
  static async register(opts: ClientOptions, reg: RegisterOptions): Promise<TacitClient> {
    const username = parseUsername(reg.username);
    const store = opts.store;
    const existing = await new Txn(store).read(accountCodec, PREFIX.account);
    if (existing?.registered) throw new ClientError('ALREADY_REGISTERED', `this home already holds the account ${existing.username}`);
    const now = (opts.now ?? Date.now)();
    const backend = opts.backend;
    // The identity and the keys signed by it, made together (off this thread when the caller can).
    const { identity, keys } = opts.initialKeys !== undefined ? await opts.initialKeys(undefined, now) : makeInitialKeys(backend, undefined, now);
    const registrationId = generateRegistrationId(backend);
    const secret = toBase64(backend.randomBytes(DEVICE_SECRET_BYTES));
    const http = new HttpApi(reg.server, opts.fetch ? { fetch: opts.fetch } : {});
    const account: Account = { server: http.baseUrl, username, deviceId: 1, registrationId, secret, identityKeyPair: toBase64(identity.serialize()), createdAt: now, registered: false };
    // Storing the keys and the request that uploads them each get a task of their own: on a
    // page's main thread, one task for all of it was long enough to stall the page.
    await nextTurn();
    // Keys first, then the server: a crash in between loses nothing that the server holds.
    const t = new Txn(store);
    // A registration that never completed left records behind: start over.
    for (const r of await store.list('')) t.delete(r.key);
    Core.initialRecords(t, backend);
    t.write(accountCodec, PREFIX.account, account);
    await storeInitialKeys(t, keys, now, nextTurn);
    t.write(countersCodec, PREFIX.counters, emptyCounters());
    await t.commit();
    await nextTurn();
    // The one-time Kyber keys past the first part are added after registering, each part in a
    // request (and a task) of its own: one request with all of them was the page's longest task.
    const { first, rest } = uploadParts({
      username,
      deviceId: 1,
      registrationId,
      identityKey: toBase64(identity.publicKey.serialize()),
      signedPreKey: keys.signedPreKey.wire,
      kyberLastResortKey: keys.lastResort.wire,
      preKeys: keys.preKeys.map((k) => k.wire),
      kyberPreKeys: keys.kyberPreKeys.map((k) => k.wire),
      secret,
      ...(reg.inviteCode !== undefined ? { inviteCode: reg.inviteCode } : {}),
    });
    await http.register(first);
    const done = new Txn(store);
    done.write(accountCodec, PREFIX.account, { ...account, registered: true });
    await done.commit();
    const client = await TacitClient.open(opts);
    await client.#addInitialKeys(rest);
    return client;
  }

  /**
   * The rest of a new device's one-time keys, after registering with the first part. Best effort:
   * the device is registered whatever happens here; should a part fail, the server holds fewer
   * keys (at least the first part's, and the last-resort key) and the usual refill tops them up
   * when they run low.
   */
  async #addInitialKeys(parts: AddKeysRequest[]): Promise<void> {
    for (const part of parts) {
      await nextTurn();
      try {
        await this.#http.addKeys(part);
      } catch {
        return;
      }
    }
  }

  /**
   * Links this (new) device to an existing account (DESIGN §3.1): opens a provisioning channel on
   * `server`, hands the link code to `onCode` (show it, as text or QR code), waits for an existing
   * device of the account to send the link message (`linkDevice` there), then registers this
   * device under the account with its own keys. The contact list and group states come along;
   * message history does not. PROVISIONING_FAILED when the message does not decrypt or the channel
   * closes first, TIMEOUT after `timeoutMs`, SERVER LINK_TOKEN_INVALID / TOO_MANY_DEVICES.
   */
  static async link(opts: ClientOptions, req: LinkOptions): Promise<TacitClient> {
    const store = opts.store;
    const existing = await new Txn(store).read(accountCodec, PREFIX.account);
    if (existing?.registered) throw new ClientError('ALREADY_REGISTERED', `this home already holds the account ${existing.username}`);
    const name = req.name ?? '';
    const checkedName = deviceNameValidator(name);
    if (!checkedName.ok) throw new ClientError('INVALID_ARGUMENT', `device name: ${checkedName.reason}`);
    const backend = opts.backend;
    const http = new HttpApi(req.server, opts.fetch ? { fetch: opts.fetch } : {});
    const msg = await awaitProvisioning({ backend, connect: opts.connect, url: provisioningUrl(http.baseUrl), onCode: req.onCode, ...(req.timeoutMs !== undefined ? { timeoutMs: req.timeoutMs } : {}) });
    const now = (opts.now ?? Date.now)();
    const identity = msg.identity;
    const registrationId = generateRegistrationId(backend);
    const secret = toBase64(backend.randomBytes(DEVICE_SECRET_BYTES));
    const { keys } = opts.initialKeys !== undefined ? await opts.initialKeys(identity, now) : makeInitialKeys(backend, identity, now);
    await nextTurn();
    // Device id 1 until the server says which one this is (the record is not `registered` before).
    const account: Account = { server: http.baseUrl, username: msg.username, deviceId: 1, registrationId, secret, identityKeyPair: toBase64(identity.serialize()), createdAt: now, registered: false };
    const t = new Txn(store);
    for (const r of await store.list('')) t.delete(r.key);
    Core.initialRecords(t, backend);
    t.write(accountCodec, PREFIX.account, account);
    await storeInitialKeys(t, keys, now, nextTurn);
    t.write(countersCodec, PREFIX.counters, emptyCounters());
    await t.commit();
    await nextTurn();
    const { first, rest } = uploadParts({
      token: msg.token,
      identityKey: toBase64(identity.publicKey.serialize()),
      name,
      registrationId,
      signedPreKey: keys.signedPreKey.wire,
      kyberLastResortKey: keys.lastResort.wire,
      preKeys: keys.preKeys.map((k) => k.wire),
      kyberPreKeys: keys.kyberPreKeys.map((k) => k.wire),
      secret,
    });
    const r = await http.link(first);
    if (r.username !== msg.username) throw new ClientError('BAD_RESPONSE', 'the server linked this device to a different account than the link message named');
    const done = new Txn(store);
    done.write(accountCodec, PREFIX.account, { ...account, deviceId: r.deviceId, registered: true });
    await done.commit();
    const client = await TacitClient.open(opts);
    await client.#addInitialKeys(rest);
    await client.#importLinked(msg);
    return client;
  }

  /** Contacts (with their trusted keys) and group states from the device that linked this one. */
  async #importLinked(msg: ProvisioningMessage): Promise<void> {
    await this.#core.mutate(async (t) => {
      for (const c of msg.contacts) {
        if (c.username === this.username) continue;
        await this.#directory.touch(t, c.username);
        if (c.identityKey !== undefined) await this.#trust.accept(t, c.username, c.identityKey);
        await this.#history.ensureConversation(t, directConversation(c.username));
      }
      for (const g of msg.groups) {
        const bytes = fromBase64(g);
        if (bytes !== undefined) await this.#groups.importState(t, bytes);
      }
    });
  }

  /**
   * On an existing device: sends the link message to the new device showing `code` (from
   * `TacitClient.link` there): the identity key pair, the username, a fresh single-use link token,
   * the contacts and group states. Waits (at most `waitMs`) for the new device to register and
   * returns its device id when it did.
   */
  async linkDevice(code: string, waitMs = LINK_REGISTER_WAIT_MS): Promise<{ deviceId: number | undefined }> {
    const { address, publicKey } = parseLinkCode(code);
    const before = new Set((await this.#http.devices()).devices.map((d) => d.deviceId));
    const token = await this.#http.linkToken();
    const t = this.#core.view();
    const contacts: ProvisioningMessage['contacts'] = [];
    for (const c of (await this.#directory.contacts()).slice(0, MAX_SYNCED_CONTACTS)) {
      if (c.username === this.username) continue;
      const id = await this.#trust.identity(t, c.username);
      contacts.push({ username: c.username, ...(id?.trusted !== undefined ? { identityKey: id.trusted } : {}) });
    }
    let groups = (await this.#groups.exportStates()).slice(0, MAX_SYNCED_GROUPS).map((g) => toBase64(g));
    const message = (): ProvisioningMessage => ({ v: PROVISIONING_MESSAGE_VERSION, username: this.username, identityKeyPair: this.#core.account.identityKeyPair, token: token.token, contacts, groups });
    // Group states past the size limit are left out (the new device learns them from the next change).
    let plain = encodeProvisioningMessage(message());
    while (plain.length + LINK_ENVELOPE_OVERHEAD > MAX_PROVISIONING_MESSAGE_BYTES && groups.length > 0) {
      groups = groups.slice(0, -1);
      plain = encodeProvisioningMessage(message());
    }
    const envelope = encryptProvisioning(this.#core.backend, publicKey, plain);
    await this.#http.sendProvisioning(address, toBase64(envelope));
    this.#directory.forget(this.username);
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline && !this.#closed) {
      const added = (await this.#http.devices()).devices.find((d) => !before.has(d.deviceId));
      if (added !== undefined) {
        // The new device learns whom we block and what we muted (chat/own-list.ts); the link message does not carry them.
        this.#directory.forget(this.username);
        const blocked = (await this.blocked()).length > 0;
        const muted = Object.keys(await this.mutes()).length > 0;
        await this.#core.mutate(async (t) => {
          if (blocked) this.#receipts.queueOwnSync(t, 'block');
          if (muted) this.#receipts.queueOwnSync(t, 'mute');
        });
        return { deviceId: added.deviceId };
      }
      await new Promise((r) => setTimeout(r, LINK_POLL_MS));
    }
    return { deviceId: undefined };
  }

  /** This account's devices (id, name, created, last seen), marking this one. */
  async devices(): Promise<LinkedDevice[]> {
    const list = await this.#http.devices();
    return list.devices.map((d) => ({ ...d, current: d.deviceId === this.deviceId }));
  }

  /**
   * Removes another device of this account (any of them, device 1 included: tacit has no primary
   * device): the server closes its connections, deletes its keys and queue, and refuses its
   * credentials from now on. Messages are no longer sent to it. The server never removes an
   * account's last device: should the other devices have left meanwhile, this fails with SERVER
   * LAST_DEVICE (in words: this device stays) and nothing changes.
   */
  async removeDevice(deviceId: number): Promise<void> {
    if (!Number.isInteger(deviceId) || deviceId < 1 || deviceId > MAX_DEVICE_ID) throw new ClientError('INVALID_ARGUMENT', 'not a device id');
    if (deviceId === this.deviceId) throw new ClientError('INVALID_ARGUMENT', 'this is the device you are using; remove it from another device');
    await this.#http.removeDevice(deviceId);
    this.#directory.forget(this.username);
    await this.#core.mutate((t) => t.delete(this.#core.keys.session(this.username, deviceId)));
  }

  /**
   * Signing out of this device, on the server: removes this device from the account (as Signal
   * and WhatsApp unlink a device that logs out), so it no longer counts toward the account's
   * devices and messages to the account are no longer encrypted and queued for it. Only when the
   * account has another device: the account's only device is kept (`only-device`), because an
   * account without devices could never be opened again, and its username stays taken until an
   * admin resets it. Credentials the server already refuses (UNAUTHORIZED: removed from another
   * device, or the account was reset) give `already-removed`. Afterwards the server refuses this
   * device's credentials: close the client and delete its state. Fails as any request does
   * (NETWORK, SERVER, ...) with nothing changed. The server decides the race with another device
   * leaving at the same moment: it never removes the last device (LAST_DEVICE), which gives
   * `only-device` here too.
   */
  async unlinkThisDevice(): Promise<UnlinkResult> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    try {
      const list = (await this.#http.devices()).devices;
      if (!list.some((d) => d.deviceId === this.deviceId)) throw new ClientError('BAD_RESPONSE', 'the device list does not hold this device');
      const otherDevices = list.filter((d) => d.deviceId !== this.deviceId).length;
      if (otherDevices === 0) return { kind: 'only-device' };
      await this.#http.removeDevice(this.deviceId);
      return { kind: 'unlinked', otherDevices };
    } catch (e) {
      if (isClientError(e) && e.code === 'SERVER' && e.serverCode === 'UNAUTHORIZED') return { kind: 'already-removed' };
      if (isClientError(e) && e.code === 'SERVER' && e.serverCode === 'LAST_DEVICE') return { kind: 'only-device' };
      throw e;
    }
  }

  /** Opens the account stored in `opts.store`. */
  static async open(opts: ClientOptions): Promise<TacitClient> {
    const events = new Emitter<ClientEvents>();
    const core = await Core.load({ store: opts.store, backend: opts.backend, now: opts.now ?? Date.now, events });
    if (!core.account.registered) throw new ClientError('NOT_REGISTERED', 'registration did not complete; run register again');
    const client = new TacitClient(opts, core, events);
    // Disappearing messages whose time ran out while no client ran go before anything is read.
    await client.sweepExpired();
    // A store written before the search index (or by an upgrade) gets it built in the background.
    void client.#search.build().catch(() => undefined);
    return client;
  }

  get username(): string {
    return this.#core.account.username;
  }
  get deviceId(): number {
    return this.#core.account.deviceId;
  }
  get server(): string {
    return this.#core.account.server;
  }
  get identityKey(): Uint8Array {
    return this.#core.identity.publicKey.serialize();
  }
  get credentials(): DeviceCredentials {
    const a = this.#core.account;
    return { username: a.username, deviceId: a.deviceId, secret: a.secret };
  }

  /** The client holds private keys: it is never serialized. */
  toJSON(): never {
    throw new ClientError('INVALID_ARGUMENT', 'TacitClient is not serializable');
  }

  /** Public facts only: who, where, how many messages and how much is waiting. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const a = this.#core.account;
    const c = this.#core.counters;
    return `TacitClient { username: ${JSON.stringify(a.username)}, deviceId: ${a.deviceId}, server: ${JSON.stringify(a.server)}, messages: ${c.messages}, outbox: ${this.outboxSize} }`;
  }

  on<K extends keyof ClientEvents>(event: K, listener: (payload: ClientEvents[K]) => void): () => void {
    // Records that only carry an edit or reaction are internal: apps see the `action` instead.
    if (event === 'outgoing' || event === 'message') return this.#events.on(event, (p) => void ((p as HistoryMessage).carrier === true || listener(p)));
    return this.#events.on(event, listener);
  }

  /**
   * Connects to the relay (reconnecting on its own from then on), resends what is waiting and
   * starts pre-key upkeep. Resolves once the server accepted the connection.
   */
  async connect(timeoutMs = 30_000): Promise<void> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    await this.#startRelay().waitReady(timeoutMs);
  }

  #startRelay(): Relay {
    if (this.#relay) return this.#relay;
    const relay = new Relay({
      url: relayUrl(this.server),
      credentials: this.credentials,
      connect: this.#opts.connect,
      onEnvelopes: (envs) => this.#inbox.receive(envs),
      ...(this.#opts.backoff ? { backoff: this.#opts.backoff } : {}),
    });
    this.#relay = relay;
    relay.on('ready', () => {
      this.#events.emit('connection', { state: 'ready' });
      void this.#resumed.then(() => this.#outbox.onReady()).catch(() => undefined);
      void this.#groups.kickAll().catch(() => undefined);
      void this.#receipts.flush();
    });
    relay.on('drained', () => this.#events.emit('connection', { state: 'drained' }));
    relay.on('disconnected', (d) => this.#events.emit('connection', { state: 'disconnected', retryInMs: d.retryInMs }));
    relay.on('fatal', (e) => this.#events.emit('fatal', e));
    // Left over from an earlier run: ciphertexts resent unchanged (the recipient drops
    // duplicates), queued messages encrypted and sent.
    this.#resumed = this.#outbox.resume().catch(() => undefined);
    relay.start();
    this.#keyTimer = setInterval(() => void this.maintainKeys().catch(() => undefined), KEY_CHECK_INTERVAL_MS);
    (this.#keyTimer as { unref?: () => void }).unref?.();
    void this.maintainKeys().catch(() => undefined);
    return relay;
  }

  /** Reconnects at once if waiting to (see Relay.retryNow); for the browser's online and visibility hints. */
  reconnectNow(): void {
    this.#relay?.retryNow();
  }

  /** Resolves once everything the server held for us at connect time has been stored. */
  async waitDrained(timeoutMs = 60_000): Promise<void> {
    if (!this.#relay) throw new ClientError('CLOSED', 'not connected');
    await this.#relay.waitDrained(timeoutMs);
  }

  /** Outgoing messages not yet confirmed stored by the server (queued plus on their way). */
  get outboxSize(): number {
    return this.#outbox.size;
  }

  /** Frames handed to the connection and not yet answered by the server, offline ones too (tests, diagnostics). */
  get pendingSends(): number {
    return this.#relay?.pendingSends ?? 0;
  }

  /**
   * Waits (at most `timeoutMs`) until everything queued, from this run or an earlier one, is
   * stored by the server, or the connection is lost. Resolves with what is still waiting.
   */
  async flush(timeoutMs: number): Promise<number> {
    if (!this.#relay) return this.outboxSize;
    const deadline = Date.now() + timeoutMs;
    while (this.outboxSize > 0 && Date.now() < deadline && !this.#closed && this.#relay.state !== 'closed') {
      await new Promise((r) => setTimeout(r, FLUSH_POLL_MS));
    }
    return this.outboxSize;
  }

  /** Stops the connection, waits for state changes and key upkeep to finish, and closes the store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keyTimer);
    this.#attachments.close();
    this.#actions.close();
    this.#search.close();
    // A group state this device is passing on (concurrent changes) reaches the members first.
    await this.#groups.idle(GROUP_CLOSE_GRACE_MS);
    // Receipts of what this run stored or showed reach their authors now, if the server is there.
    await this.#receipts.idle(RECEIPT_CLOSE_GRACE_MS);
    this.#receipts.close();
    this.#typing.close();
    this.#outbox.close();
    this.#inbox.close();
    this.#groups.close();
    this.#relay?.close();
    await this.#maintenance?.catch(() => undefined);
    await this.#core.stateLock.run('', async () => undefined);
    await this.#core.store.close();
  }

  #sessionStarted(): void {
    if (++this.#newSessionsSinceCheck < KEY_CHECK_AFTER_NEW_SESSIONS) return;
    this.#newSessionsSinceCheck = 0;
    setTimeout(() => void this.maintainKeys().catch(() => undefined), 0);
  }

  // ---- pre-keys ----

  /** Refills one-time keys and rotates the signed pre-key when due. Safe to call at any time. */
  maintainKeys(): Promise<void> {
    if (this.#maintenance) return this.#maintenance;
    const run = (async () => {
      try {
        const pending = await this.#core.view().read(uploadCodec, UPLOAD_KEY);
        if (pending) await this.#sendPlanned(pending);
        const counts = await this.#http.keyCount();
        // What is due and the new keys' ids, then the keys made outside the state lock (a
        // generator in a worker takes a while; messages keep being decrypted meanwhile), then
        // written, with the upload they make, in one transaction committed before uploading.
        const now = this.#core.now();
        const identity = this.#core.identity;
        const request = await keyMaintenanceRequest(this.#core.view(), counts, now);
        const generator = this.#opts.keyGenerator;
        const keys =
          request === undefined ? undefined : generator !== undefined ? await checkEncodedKeys(await generator(identity, request, now), request, nextTurn) : makeKeys(this.#core.backend, identity, request, now);
        const upload = await this.#core.mutate(async (t) => {
          const u = await applyKeyMaintenance(t, counts, now, request, keys, nextTurn);
          if (u) {
            t.write(uploadCodec, UPLOAD_KEY, u);
            t.delete(UPLOAD_PROGRESS_KEY);
          }
          return u;
        });
        if (upload) await this.#sendPlanned(upload);
      } finally {
        this.#maintenance = undefined;
      }
    })();
    this.#maintenance = run;
    return run;
  }

  /**
   * Sends a planned upload (committed with its private keys) in parts (`uploadParts`: a full refill
   * is ~230 KB of JSON), each in a request and a task of its own, and records how many parts the
   * server accepted, so that a retry after a crash or an outage goes on from there rather than
   * replacing the stock again (which would hand out keys already used a second time).
   */
  async #sendPlanned(upload: UploadKeysRequest): Promise<void> {
    const { first, rest } = uploadParts(upload);
    const done = (await this.#core.view().read(uploadProgressCodec, UPLOAD_PROGRESS_KEY)) ?? 0;
    for (let i = done; i <= rest.length; i++) {
      await nextTurn();
      if (i === 0) await this.#http.uploadKeys(first);
      else await this.#http.addKeys(rest[i - 1]!);
      if (i < rest.length) await this.#core.mutate((t) => t.write(uploadProgressCodec, UPLOAD_PROGRESS_KEY, i + 1));
    }
    await this.#core.mutate((t) => {
      t.delete(UPLOAD_KEY);
      t.delete(UPLOAD_PROGRESS_KEY);
    });
  }

  // ---- sending ----

  /**
   * Stores `text` in the conversation with `to` as a queued message and sends it to every device
   * of `to`. Resolves once the server stored it for every device. While the server cannot be
   * reached the message stays queued (and is sent when the connection is back); the promise
   * waits. Rejects on a definite failure, which leaves the message `failed` in history:
   * UNTRUSTED_IDENTITY if the contact's identity key changed (nothing is sent until `trust`),
   * UNKNOWN_USER, or SERVER.
   */
  async send(to: string, text: string): Promise<SendResult & { devices?: number }> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    if (isGroupRef(to)) {
      // A group: `to` is the group's conversation id; `devices` says how many member devices stored it.
      const r = await this.#groups.send(to, text);
      return { id: r.id, to: r.conversation, conversation: r.conversation, seq: r.seq, sentAt: r.sentAt, serverIds: [], devices: r.devices };
    }
    const contact = parseUsername(to);
    await this.#refuseBlocked(directConversation(contact));
    return this.#outbox.send(contact, text);
  }

  // ---- groups (group/groups.ts) ----

  /**
   * Creates a group with this account as its admin and `members`, and tells them over the
   * pairwise sessions. Every member must exist on the server.
   */
  createGroup(title: string, members: string[]): Promise<GroupInfo> {
    return this.#groups.create(title, members.map(parseUsername));
  }
  /** Admins: adds members (they read what is sent from now on). */
  addToGroup(group: string, users: string[]): Promise<GroupInfo> {
    return this.#groups.add(group, users.map(parseUsername));
  }
  /** Admins: removes members; every member starts a new sender key before its next message. */
  removeFromGroup(group: string, users: string[]): Promise<GroupInfo> {
    return this.#groups.remove(group, users.map(parseUsername));
  }
  /** Admins: renames the group. */
  renameGroup(group: string, title: string): Promise<GroupInfo> {
    return this.#groups.rename(group, title);
  }
  /** Admins: makes a member an admin (`admin` true) or takes admin rights away (not from the last admin). */
  setGroupAdmin(group: string, user: string, admin: boolean): Promise<GroupInfo> {
    return this.#groups.setAdmin(group, parseUsername(user), admin);
  }
  /** Leaves the group (the last admin to leave makes another member admin). */
  leaveGroup(group: string): Promise<GroupInfo> {
    return this.#groups.leave(group);
  }
  /** Groups this device is in or was in, by title. */
  groups(): Promise<GroupInfo[]> {
    return this.#groups.list();
  }
  /** One group, named `#title`, `g:<id>` or `g:<id prefix>`. */
  group(ref: string): Promise<GroupInfo> {
    return this.#groups.get(ref);
  }
  /** Sends a text to a group; resolves once the server stored it for every member device. */
  sendToGroup(group: string, text: string): Promise<GroupSendResult> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    return this.#groups.send(group, text);
  }

  /** A conversation id from a username, `u:<user>`, `g:<id>`, or a group named `#title` / `g:<prefix>`. */
  async #conversation(ref: string): Promise<ConversationId> {
    if (isGroupRef(ref) && groupIdOf(ref) === undefined) return groupConversation(await this.#groups.resolve(ref));
    return parseConversation(ref);
  }

  /** Resolves a conversation reference (see `history`) to its id. */
  resolveConversation(ref: string): Promise<ConversationId> {
    return this.#conversation(ref);
  }

  /**
   * Sends a failed message again. For a file whose upload did not finish, the upload continues
   * (from what the server holds); `source` is needed when this process did not send it.
   */
  async retry(conversation: string, seq: number, source?: PlaintextSource, options: TransferOptions = {}): Promise<SendResult> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    const id = await this.#conversation(conversation);
    await this.#refuseBlocked(id);
    const m = (await this.#history.page(id, { before: seq + 1, limit: 1 }))[0];
    if (m !== undefined && m.seq === seq && m.attachment !== undefined && !m.attachment.uploaded) return this.#attachments.retry(id, seq, source, options);
    if (groupIdOf(id) !== undefined) {
      const r = await this.#groups.retry(id, seq);
      return { id: r.id, to: id, conversation: r.conversation, seq: r.seq, sentAt: r.sentAt, serverIds: [] };
    }
    return this.#outbox.retry(id, seq);
  }

  // ---- files ----

  /**
   * Sends a file to `to` (a username or conversation id): stores the message as `uploading`,
   * encrypts and uploads the file, then sends its pointer like a text message. Resolves once the
   * server stored the message for every device. Rejects when the upload fails or is cancelled
   * (the message is then `failed`, and `retry` continues it) or as `send` does.
   */
  async sendFile(to: string, source: PlaintextSource, options: SendFileOptions): Promise<SendResult> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    const id = await this.#conversation(to);
    await this.#refuseBlocked(id);
    return this.#attachments.send(id, source, options);
  }

  /** Cancels the upload of a file message in progress in this process; returns whether there was one. */
  async cancelUpload(conversation: string, seq: number): Promise<boolean> {
    return this.#attachments.cancel(await this.#conversation(conversation), seq);
  }

  /** The file of a message (sent or received) and what a download needs to know about it. */
  async attachment(conversation: string, seq: number): Promise<AttachmentInfo> {
    return (await this.#attachments.reference(await this.#conversation(conversation), seq)).info;
  }

  /**
   * A message's file, downloaded, checked and decrypted as it streams: every chunk is
   * authenticated before its bytes come out, the last bytes only after the whole file's digest
   * matched. Throws ATTACHMENT_CORRUPT (tampered, truncated, wrong digest), SERVER NOT_FOUND
   * (expired or deleted), CANCELLED. Keep what it yields out of sight until it has ended.
   */
  async *downloadAttachment(conversation: string, seq: number, options: DownloadOptions = {}): AsyncGenerator<Uint8Array> {
    yield* this.#attachments.download(await this.#conversation(conversation), seq, options);
  }

  /** A message's file as a Blob of its type, made only once every byte checked out (browsers). */
  async attachmentBlob(conversation: string, seq: number, options: DownloadOptions = {}): Promise<Blob> {
    return this.#attachments.blob(await this.#conversation(conversation), seq, options);
  }

  /** Notes where the file of a message was saved (history shows it). */
  async markAttachmentSaved(conversation: string, seq: number, where: string): Promise<void> {
    return this.#attachments.markSaved(await this.#conversation(conversation), seq, where);
  }

  // ---- history ----

  /** Conversations, most recent first, with unread counts and the last message. */
  async conversations(): Promise<ConversationInfo[]> {
    const changed = new Set(await this.#trust.changedIdentities());
    const blocked = new Set(await this.blocked());
    const muted = await activeMutes(this.#core.view(), this.#core.now());
    const hideRead = !(await this.settings()).readReceipts;
    return (await this.#history.summaries()).map((c) => {
      const mutedUntil = muted.get(c.id);
      return { ...c, last: c.last && hideReadReceipts(this.#attachments.present(c.last), hideRead), identityChanged: changed.has(c.contact), blocked: blocked.has(c.contact), ...(mutedUntil !== undefined ? { mutedUntil } : {}) };
    });
  }

  /** Messages of a conversation (oldest first): the newest `limit`, or the `limit` before `before` (a seq). */
  async history(conversation: string, options: { before?: number; limit?: number } = {}): Promise<HistoryMessage[]> {
    const hideRead = !(await this.settings()).readReceipts;
    return (await this.#history.page(await this.#conversation(conversation), options)).map((m) => hideReadReceipts(this.#attachments.present(m), hideRead));
  }

  // ---- settings (chat/settings.ts) ----

  /** This device's chat settings: read receipts and typing indicators (both on by default). */
  settings(): Promise<ChatSettings> {
    return readSettings(this.#core.view());
  }

  /**
   * Changes chat settings. Read receipts off: none are sent, and others' are not shown (as in
   * Signal). Typing indicators off: none are sent or shown.
   */
  async updateSettings(change: Partial<ChatSettings>): Promise<ChatSettings> {
    for (const [k, v] of Object.entries(change)) {
      if ((k !== 'readReceipts' && k !== 'typingIndicators') || typeof v !== 'boolean') throw new ClientError('INVALID_ARGUMENT', `unknown setting or value: ${k.slice(0, 40)}`);
    }
    return this.#core.mutate(async (t) => {
      const next = { ...(await readSettings(t)), ...change };
      t.write(settingsCodec, PREFIX.settings, next);
      return next;
    });
  }

  // ---- blocking (chat/block.ts) ----

  /** Blocked usernames, sorted. */
  async blocked(): Promise<string[]> {
    return (await readBlockList(this.#core.view())).users;
  }

  /**
   * Blocks `user`: from now on their pairwise messages, edits, reactions, receipts and typing
   * indicators, and their messages and actions in groups, are acknowledged and dropped unseen;
   * nothing is sent to them (BLOCKED) and no receipts or typing indicators go to them. Their
   * session and identity are kept. This account's other devices are told. Returns whether the
   * list changed (false: already blocked). INVALID_ARGUMENT past MAX_BLOCKED_USERS.
   */
  block(user: string): Promise<boolean> {
    return this.#changeBlock(user, true);
  }

  /** Unblocks `user` (their next messages are shown again); our other devices are told. Returns whether the list changed. */
  unblock(user: string): Promise<boolean> {
    return this.#changeBlock(user, false);
  }

  async #changeBlock(user: string, block: boolean): Promise<boolean> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    const contact = parseUsername(user);
    if (contact === this.username) throw new ClientError('INVALID_ARGUMENT', 'you cannot block yourself');
    const next = await this.#core.mutate(async (t) => {
      const list = await changeBlockList(t, contact, block, this.#core.now());
      if (list !== undefined) this.#receipts.queueOwnSync(t, 'block');
      return list;
    });
    if (next === undefined) return false;
    if (block) this.#typing.stopped(directConversation(contact), contact);
    // Before it resolves, so a process that ends right after (the CLI) leaves nothing queued for them.
    if (block) await this.#takeBackFor([contact]);
    this.#events.emit('block', { blocked: next.users });
    return true;
  }

  /**
   * `users` are blocked: what is queued for them and not yet written to the server is taken back
   * (failed with BLOCKED; `retry` after `unblock`), and group messages go on without them.
   */
  async #takeBackFor(users: readonly string[]): Promise<void> {
    await Promise.all([...users.map((u) => this.#outbox.refuseBlocked(u).catch(() => undefined)), this.#groups.refuseBlocked(users).catch(() => undefined)]);
  }

  // ---- muting (chat/mute.ts) ----

  /** Conversations muted now, and until when (ms; MUTED_FOREVER: until unmuted). Expired mutes are left out. */
  async mutes(): Promise<Record<ConversationId, number>> {
    return Object.fromEntries(await activeMutes(this.#core.view(), this.#core.now()));
  }

  /** Until when a conversation (any reference `history` takes) is muted, or undefined when it is not (or no longer). */
  async mutedUntil(conversation: string): Promise<number | undefined> {
    return (await activeMutes(this.#core.view(), this.#core.now())).get(await this.#conversation(conversation));
  }

  /**
   * Mutes a conversation (pairwise or group; any reference `history` takes) for `duration` ms
   * (MIN_MUTE_MS..MAX_MUTE_MS; MUTE_CHOICES lists Signal's) or 'always' (until `unmute`). It still
   * receives, stores and counts unread everything; apps do not alert for it. Muting again replaces
   * the end. This account's other devices are told. Resolves to the end (ms; MUTED_FOREVER).
   * INVALID_ARGUMENT for a bad duration or past MAX_MUTED_CONVERSATIONS.
   */
  async mute(conversation: string, duration: number | 'always'): Promise<number> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    const id = await this.#conversation(conversation);
    const until = muteEnd(duration, this.#core.now());
    await this.#changeMutes(id, until);
    return until;
  }

  /** Unmutes a conversation; our other devices are told. Returns whether it was muted. */
  async unmute(conversation: string): Promise<boolean> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    return this.#changeMutes(await this.#conversation(conversation), undefined);
  }

  async #changeMutes(id: ConversationId, until: number | undefined): Promise<boolean> {
    const now = this.#core.now();
    const next = await this.#core.mutate(async (t) => {
      const list = await changeMutes(t, id, until, now);
      if (list !== undefined) this.#receipts.queueOwnSync(t, 'mute');
      return list;
    });
    if (next === undefined) return false;
    this.#events.emit('mute', { mutes: next.mutes });
    return true;
  }

  /** Sending to a blocked contact is refused until `unblock`. */
  async #refuseBlocked(conversation: ConversationId): Promise<void> {
    const contact = contactOf(conversation);
    if (contact !== undefined && (await isBlocked(this.#core.view(), contact))) throw new ClientError('BLOCKED', `${contact} is blocked; unblock them to send them anything`, { contact });
  }

  // ---- typing indicators (chat/typing.ts) ----

  /**
   * Tells the conversation's other devices (a group: every member's) that we are typing, or
   * stopped. Ephemeral: only devices connected now get it; rate limited (a `started` at most every
   * TYPING_SEND_INTERVAL_MS). Does nothing with typing indicators off. Resolves with how many
   * devices it was sent to (0 when nothing was sent); the server does not say which of them were
   * connected, so that nobody learns from it who is online.
   */
  async setTyping(conversation: string, typing: boolean): Promise<number> {
    if (this.#closed) return 0;
    return this.#typing.set(await this.#conversation(conversation), typing);
  }

  /** Who is typing in a conversation now (empty with typing indicators off). */
  async typingIn(conversation: string): Promise<string[]> {
    return this.#typing.who(await this.#conversation(conversation));
  }

  /** Receipts queued and not yet sent (tests, diagnostics). */
  pendingReceipts(): Promise<number> {
    return this.#receipts.pending();
  }

  /** Incoming messages not yet shown, of one conversation or all, in the order they arrived. */
  async unread(conversation?: string): Promise<HistoryMessage[]> {
    const groups = await this.#history.unread(this.#core.view(), conversation === undefined ? undefined : await this.#conversation(conversation));
    return groups.flatMap((g) => g.messages).sort((a, b) => a.seq - b.seq);
  }

  /** Marks a conversation read, up to `upTo` (a seq) or entirely. Returns how many messages that marked. */
  async markRead(conversation: string, upTo?: number): Promise<number> {
    return this.#history.markRead(await this.#conversation(conversation), upTo);
  }

  /**
   * The atomic "take what is new for display": hands the unread incoming messages (of one
   * conversation or all, oldest first) to `render` and marks them read in the same commit. A
   * display that completed is never handed over again; if the process dies before the commit,
   * the same messages are handed over next time. `render` must be synchronous.
   */
  async takeForDisplay(render: (messages: HistoryMessage[]) => void, options: { conversation?: string; limit?: number } = {}): Promise<number> {
    return this.#history.takeForDisplay(render, {
      ...(options.conversation !== undefined ? { conversation: await this.#conversation(options.conversation) } : {}),
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
    });
  }

  /**
   * Keeps displaying: takes what is new for display now and again whenever messages arrive
   * (one take per burst). Returns a function that stops watching. Errors of a take are reported
   * to `onError` (the messages are then handed over again by the next take).
   */
  watchForDisplay(render: (messages: HistoryMessage[]) => void, options: { conversation?: string; onError?: (e: unknown) => void } = {}): () => void {
    let scheduled = false;
    let stopped = false;
    const take = (): void => {
      if (scheduled || stopped) return;
      scheduled = true;
      // The `message` events of one commit come together: one take for all of them.
      queueMicrotask(() => {
        scheduled = false;
        if (stopped) return;
        this.takeForDisplay(render, options.conversation !== undefined ? { conversation: options.conversation } : {}).catch((e: unknown) => options.onError?.(e));
      });
    };
    const off = this.on('message', take);
    take();
    return () => {
      stopped = true;
      off();
    };
  }

  /** Adds a conversation with `to` (who must exist on the server). Returns its id. */
  async startConversation(to: string): Promise<ConversationId> {
    const contact = parseUsername(to);
    if (contact === this.username) throw new ClientError('INVALID_ARGUMENT', 'a conversation is with someone else');
    await this.#directory.deviceList(contact, true);
    const id = directConversation(contact);
    await this.#core.mutate(async (t) => {
      await this.#directory.touch(t, contact);
      await this.#history.ensureConversation(t, id);
    });
    return id;
  }

  // ---- edits, deletions, reactions, disappearing messages (chat/edits.ts), search (chat/search-index.ts) ----

  /**
   * A message of a conversation by its id or an id prefix (at least MIN_MESSAGE_PREFIX hex
   * digits, as `history` prints it). INVALID_ARGUMENT when none or several match.
   */
  async findMessage(conversation: string, ref: string): Promise<HistoryMessage> {
    return this.#actions.find(await this.#conversation(conversation), ref);
  }

  /** Edits one of our messages (within EDIT_WINDOW_MS of sending it) on every device of the conversation. */
  async editMessage(conversation: string, ref: string, text: string): Promise<ActionResult> {
    const id = await this.#conversation(conversation);
    const target = await this.#ownEditable(id, ref);
    const problem = editTextProblem(text);
    if (problem !== undefined) throw new ClientError('INVALID_ARGUMENT', problem);
    if (text === target.text) throw new ClientError('INVALID_ARGUMENT', 'the new text is the same as the old');
    return this.#sendAction(id, { k: 'edit', target: target.id, text }, target);
  }

  /** Deletes one of our messages for everyone (within EDIT_WINDOW_MS): "This message was deleted" stays. */
  async deleteForEveryone(conversation: string, ref: string): Promise<ActionResult> {
    const id = await this.#conversation(conversation);
    const target = await this.#ownEditable(id, ref);
    return this.#sendAction(id, { k: 'delete', target: target.id }, target);
  }

  /** Reacts to a message with one emoji (replacing our earlier reaction); "" removes ours. */
  async react(conversation: string, ref: string, emoji: string): Promise<ActionResult> {
    const id = await this.#conversation(conversation);
    if (emoji !== '' && !isReactionEmoji(emoji)) throw new ClientError('INVALID_ARGUMENT', 'a reaction is one emoji');
    const target = await this.#actions.find(id, ref);
    if (target.deleted === true || target.system === true) throw new ClientError('INVALID_ARGUMENT', 'this message cannot take a reaction');
    return this.#sendAction(id, { k: 'react', author: target.from, target: target.id, emoji }, target);
  }

  /**
   * Sets the conversation's disappearing timer for everyone in it (0 turns it off): messages
   * sent from then on carry it, and every device deletes each one that long after it was read
   * (our own: after sending).
   */
  async setDisappearingTimer(conversation: string, ms: number): Promise<ActionResult> {
    if (!isTimerMs(ms)) throw new ClientError('INVALID_ARGUMENT', 'not a disappearing timer (off, or 1 second to 4 weeks)');
    return this.#sendAction(await this.#conversation(conversation), { k: 'timer', ms });
  }

  /** The conversation's disappearing timer, ms (0: off). */
  async disappearingTimer(conversation: string): Promise<number> {
    const c = await this.#history.conversation(this.#core.view(), await this.#conversation(conversation));
    return c?.timer ?? 0;
  }

  /** Removes disappearing messages whose time ran out (the client also does this on its own). */
  sweepExpired(): Promise<number> {
    return this.#actions.sweep();
  }

  /** Local full-text search of this device's history (every word, as a word prefix), newest first. */
  async search(query: string, options: { conversation?: string; limit?: number } = {}): Promise<HistoryMessage[]> {
    const conversation = options.conversation !== undefined ? await this.#conversation(options.conversation) : undefined;
    const hits = await this.#search.search(query, { ...(conversation !== undefined ? { conversation } : {}), ...(options.limit !== undefined ? { limit: options.limit } : {}) });
    return hits.map((m) => this.#attachments.present(m));
  }

  async #ownEditable(conversation: ConversationId, ref: string): Promise<HistoryMessage> {
    const target = await this.#actions.find(conversation, ref);
    if (target.direction !== 'out' || target.from !== this.username || target.system === true) throw new ClientError('INVALID_ARGUMENT', 'only your own messages can be edited or deleted');
    if (target.deleted === true) throw new ClientError('INVALID_ARGUMENT', 'this message is deleted');
    if (this.#core.now() - target.sentAt > EDIT_WINDOW_MS) throw new ClientError('INVALID_ARGUMENT', 'a message can be edited or deleted for 24 hours after it was sent');
    return target;
  }

  /** Applies `act` here and sends it to the conversation, in one commit; resolves once the server stored it. */
  async #sendAction(conversation: ConversationId, act: Action, target?: HistoryMessage, checked = true): Promise<ActionResult> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    const before = async (t: StateTxn, at: number): Promise<void> => {
      const r = await this.#actions.apply(t, conversation, this.username, act, at, false);
      if ('ignored' in r && checked) throw new ClientError('INVALID_ARGUMENT', `the message cannot be changed (${r.ignored})`);
    };
    await this.#refuseBlocked(conversation);
    const group = groupIdOf(conversation);
    let r: { id: string; sentAt: number; devices?: number };
    if (group !== undefined) r = await this.#groups.send(conversation, '', { act, before });
    else {
      const contact = contactOf(conversation);
      if (contact === undefined) throw new ClientError('INVALID_ARGUMENT', 'not a conversation');
      const s = await this.#outbox.send(contact, '', { act, before });
      r = { id: s.id, sentAt: s.sentAt, devices: s.serverIds.length };
    }
    return { conversation, kind: act.k, id: r.id, sentAt: r.sentAt, devices: r.devices ?? 0, ...(target !== undefined ? { target: target.id } : {}) };
  }

  // ---- contacts and identities ----

  async contacts(): Promise<ContactInfo[]> {
    const t = this.#core.view();
    const out: ContactInfo[] = [];
    const blocked = new Set(await this.blocked());
    const muted = await activeMutes(t, this.#core.now());
    for (const c of await this.#directory.contacts()) {
      const id = await this.#trust.identity(t, c.username);
      const conv = await this.#history.conversation(t, directConversation(c.username));
      const mutedUntil = muted.get(directConversation(c.username));
      out.push({
        ...(mutedUntil !== undefined ? { mutedUntil } : {}),
        username: c.username,
        devices: c.devices.length,
        known: id?.trusted !== undefined,
        identityChanged: id?.pending !== undefined,
        blocked: blocked.has(c.username),
        unread: conv?.unread ?? 0,
        lastMessageAt: conv !== undefined && conv.count > 0 ? conv.lastAt : undefined,
      });
    }
    return out;
  }

  /** Contacts whose identity changed and who wait for `trust`. */
  changedIdentities(): Promise<string[]> {
    return this.#trust.changedIdentities();
  }

  async safetyNumber(to: string): Promise<SafetyNumberInfo> {
    const contact = parseUsername(to);
    if (contact === this.username) throw new ClientError('INVALID_ARGUMENT', 'a safety number is between you and someone else');
    return this.#trust.safetyNumber(contact, async () => (await this.#directory.deviceList(contact, true)).identityKey);
  }

  /**
   * Accepts the contact's current identity key (after the user compared safety numbers): future
   * sends use new sessions, and messages held since the change are decrypted now.
   * Returns whether a changed key was accepted.
   */
  async trust(to: string): Promise<{ changed: boolean; released: number }> {
    const contact = parseUsername(to);
    if (contact === this.username) throw new ClientError('INVALID_ARGUMENT', 'you cannot trust yourself');
    return this.#core.peerLock.run(contact, async () => {
      const id = await this.#trust.identity(this.#core.view(), contact);
      let keyB64: string;
      if (id?.pending) {
        keyB64 = id.pending.key;
        // If the server now shows yet another key, the user compared the wrong number.
        const list = await this.#directory.deviceList(contact, true).catch(() => undefined);
        if (list && list.identityKey !== keyB64) {
          await this.#core.mutate((t) => this.#trust.changed(t, contact, list.identityKey));
          throw new ClientError('UNTRUSTED_IDENTITY', `the identity key of ${contact} changed again; compare the safety number again before trusting`, { contact });
        }
      } else {
        keyB64 = (await this.#directory.deviceList(contact, true)).identityKey;
      }
      const released = await this.#core.mutate(async (t) => {
        const replaced = await this.#trust.accept(t, contact, keyB64);
        await this.#directory.touch(t, contact);
        // Old sessions belong to the old identity.
        if (replaced) await this.#directory.forgetSessions(t, contact);
        let n = 0;
        for (const h of await this.#trust.release(t, contact)) {
          const m = h.meta;
          if (await this.#inbox.decryptAndStore(t, { serverId: m.serverId, from: m.from, fromDevice: m.fromDevice, type: m.type, body: h.body, serverTimestamp: m.serverTimestamp })) n++;
        }
        return n;
      });
      this.#directory.forget(contact);
      // Group messages held for this contact go now.
      void this.#groups.kickAll().catch(() => undefined);
      return { changed: id?.pending !== undefined, released };
    });
  }
}
