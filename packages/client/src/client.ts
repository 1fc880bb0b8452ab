/**
 * The tacit client: one device of one account. Owns registration, pre-key upkeep, sessions,
 * sending, receiving, identity-change handling and the relay connection. Storage (StateVault),
 * crypto (CryptoBackend) and the socket (SocketFactory) are passed in, so the same class runs in
 * Node and in a browser.
 */
import {
  MAX_MESSAGE_BYTES,
  fromBase64,
  toBase64,
  username as usernameValidator,
  type DeviceBundle,
  type DeviceCredentials,
  type DeviceListResponse,
  type Envelope as WireEnvelope,
} from '@tacit/api';
import {
  IdentityKeyPair,
  KyberPublicKey,
  ProtocolAddress,
  PublicKey,
  SessionManager,
  SessionRecord,
  UntrustedIdentityError,
  generateRegistrationId,
  isProtocolError,
  safetyNumber,
  type CryptoBackend,
  type PreKeyBundle,
} from '@tacit/protocol';
import { toHex, utf8Encode } from './bytes.js';
import { Emitter } from './emitter.js';
import { decodeEnvelope, encodeEnvelope, ENVELOPE_VERSION, MAX_TEXT_LENGTH, type Envelope } from './envelope.js';
import { ClientError } from './errors.js';
import { HttpApi, relayUrl, type FetchLike } from './http.js';
import { KeyedLock } from './lock.js';
import { generateInitialKeys, planKeyMaintenance, preKeyWire, kyberPreKeyWire, signedPreKeyWire, storeInitialKeys } from './prekeys.js';
import { Relay, type EnvelopeOutcome, type SocketFactory } from './relay.js';
import {
  MAX_OUTBOX,
  MAX_QUARANTINED,
  MAX_SEEN_MESSAGE_IDS,
  MAX_SEEN_SERVER_IDS,
  MAX_STORED_MESSAGES,
  STATE_VERSION,
  b64,
  decodeState,
  encodeState,
  trimFront,
  unb64,
  type OutboxEntry,
  type StateData,
  type StoredMessage,
} from './state.js';
import { sessionKey, stateStores } from './stores.js';
import type { StateVault } from './vault.js';
import { SnapshotWriter } from './writer.js';
import type { BackoffPolicy } from './backoff.js';

/** Device list answers are reused this long by a running client before asking the server again, ms. */
export const DEVICE_LIST_TTL_MS = 60_000;
/** Check the server's pre-key stock after this many sessions were started with us. */
export const KEY_CHECK_AFTER_NEW_SESSIONS = 10;
/** A long-running client re-checks its pre-keys (refill, rotation) this often, ms. */
export const KEY_CHECK_INTERVAL_MS = 60 * 60 * 1000;
/** Device secret length: 32 random bytes. */
export const DEVICE_SECRET_BYTES = 32;
/** Message ids: 16 random bytes in hex. */
export const MESSAGE_ID_BYTES = 16;

export interface ClientOptions {
  vault: StateVault;
  backend: CryptoBackend;
  connect: SocketFactory;
  now?: () => number;
  fetch?: FetchLike;
  backoff?: BackoffPolicy;
}

export interface RegisterOptions {
  server: string;
  username: string;
  inviteCode?: string;
}

export interface SendResult {
  /** Sender-chosen message id. */
  id: string;
  to: string;
  sentAt: number;
  /** One server id per recipient device. */
  serverIds: string[];
}

export interface ContactInfo {
  username: string;
  devices: number;
  /** An identity key is trusted for this contact. */
  known: boolean;
  /** The contact's identity key changed and awaits `trust`. */
  identityChanged: boolean;
  unread: number;
  lastMessageAt: number | undefined;
}

export interface SafetyNumberInfo {
  contact: string;
  /** 60 digits, in 12 groups of 5 when shown. */
  displayable: string;
  /** Which key the number is for: the trusted one, a changed one awaiting trust, or one just fetched. */
  keyState: 'trusted' | 'changed' | 'unverified';
}

export interface ClientEvents {
  message: StoredMessage;
  'identity-changed': { contact: string };
  undecryptable: { from: string; fromDevice: number; reason: string };
  connection: { state: 'ready' | 'drained' | 'disconnected'; retryInMs?: number };
  fatal: ClientError;
}

function emptyState(account: StateData['account']): StateData {
  return {
    v: STATE_VERSION,
    account,
    preKeys: {},
    nextPreKeyId: 1,
    signedPreKeys: {},
    currentSignedPreKeyId: 0,
    nextSignedPreKeyId: 1,
    kyberPreKeys: {},
    currentLastResortKyberId: 0,
    nextKyberPreKeyId: 1,
    sessions: {},
    identities: {},
    pendingIdentities: {},
    contacts: {},
    messages: [],
    outbox: [],
    seenServerIds: [],
    seenMessageIds: [],
    quarantine: [],
    pendingUpload: null,
  };
}

/** Validates and case-folds a username given by the user. */
export function parseUsername(name: string): string {
  const r = usernameValidator(name);
  if (!r.ok) throw new ClientError('INVALID_ARGUMENT', `"${name.slice(0, 40)}" is not a valid username: ${r.reason}`);
  return r.value;
}

export class TacitClient {
  readonly #opts: ClientOptions;
  readonly #backend: CryptoBackend;
  readonly #now: () => number;
  #state: StateData;
  /** The last snapshot handed to the writer: what a failed change rolls back to. */
  #lastCommitted: Uint8Array;
  readonly #writer: SnapshotWriter;
  readonly #http: HttpApi;
  readonly #sessions: SessionManager;
  /** Per-contact serialization of whole operations (device check, bundle fetch, encrypt/decrypt). */
  readonly #peerLock = new KeyedLock();
  /** Every mutation of #state and the snapshot after it happen under this lock (key ''). */
  readonly #stateLock = new KeyedLock();
  readonly #events = new Emitter<ClientEvents>();
  #relay: Relay | undefined;
  #deviceListCache = new Map<string, { at: number; list: DeviceListResponse }>();
  #newSessionsSinceCheck = 0;
  #maintenance: Promise<void> | undefined;
  #keyTimer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  private constructor(opts: ClientOptions, state: StateData) {
    this.#opts = opts;
    this.#backend = opts.backend;
    this.#now = opts.now ?? Date.now;
    this.#state = state;
    this.#lastCommitted = encodeState(state);
    this.#writer = new SnapshotWriter(opts.vault);
    const a = state.account;
    this.#http = new HttpApi(a.server, {
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      credentials: { username: a.username, deviceId: a.deviceId, secret: a.secret },
    });
    this.#sessions = new SessionManager(this.#backend, stateStores(() => this.#state, this.#now), { now: this.#now });
  }

  // ---- lifecycle ----

  /** Creates a new account with its first device and stores it in the vault. */
  static async register(opts: ClientOptions, reg: RegisterOptions): Promise<TacitClient> {
    const username = parseUsername(reg.username);
    const existing = await opts.vault.read();
    if (existing !== undefined) {
      const old = decodeState(existing);
      if (old.account.registered) throw new ClientError('ALREADY_REGISTERED', `this home already holds the account ${old.account.username}`);
    }
    const now = (opts.now ?? Date.now)();
    const backend = opts.backend;
    const identity = IdentityKeyPair.generate(backend);
    const registrationId = generateRegistrationId(backend);
    const secret = toBase64(backend.randomBytes(DEVICE_SECRET_BYTES));
    const http = new HttpApi(reg.server, opts.fetch ? { fetch: opts.fetch } : {});
    const state = emptyState({
      server: http.baseUrl,
      username,
      deviceId: 1,
      registrationId,
      secret,
      identityKeyPair: b64(identity.serialize()),
      createdAt: now,
      registered: false,
    });
    const keys = generateInitialKeys(backend, identity, now);
    storeInitialKeys(state, keys, now);
    // Keys first, then the server: a crash in between loses nothing that the server holds.
    await opts.vault.write(encodeState(state));
    await http.register({
      username,
      deviceId: 1,
      registrationId,
      identityKey: toBase64(identity.publicKey.serialize()),
      signedPreKey: signedPreKeyWire(keys.signedPreKey),
      kyberLastResortKey: kyberPreKeyWire(keys.lastResort),
      preKeys: keys.preKeys.map(preKeyWire),
      kyberPreKeys: keys.kyberPreKeys.map(kyberPreKeyWire),
      secret,
      ...(reg.inviteCode !== undefined ? { inviteCode: reg.inviteCode } : {}),
    });
    state.account.registered = true;
    await opts.vault.write(encodeState(state));
    return new TacitClient(opts, state);
  }

  /** Opens the account stored in the vault. */
  static async open(opts: ClientOptions): Promise<TacitClient> {
    const bytes = await opts.vault.read();
    if (bytes === undefined) throw new ClientError('NOT_REGISTERED', 'no account here yet; run register first');
    const state = decodeState(bytes);
    if (!state.account.registered) throw new ClientError('NOT_REGISTERED', 'registration did not complete; run register again');
    return new TacitClient(opts, state);
  }

  get username(): string {
    return this.#state.account.username;
  }
  get deviceId(): number {
    return this.#state.account.deviceId;
  }
  get server(): string {
    return this.#state.account.server;
  }
  get identityKey(): Uint8Array {
    return IdentityKeyPair.deserialize(unb64(this.#state.account.identityKeyPair)).publicKey.serialize();
  }
  get credentials(): DeviceCredentials {
    const a = this.#state.account;
    return { username: a.username, deviceId: a.deviceId, secret: a.secret };
  }

  /** The client holds private keys: it is never serialized. */
  toJSON(): never {
    throw new ClientError('INVALID_ARGUMENT', 'TacitClient is not serializable');
  }

  /** Public facts only: who, where, how many sessions and messages. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const s = this.#state;
    return `TacitClient { username: ${JSON.stringify(s.account.username)}, deviceId: ${s.account.deviceId}, server: ${JSON.stringify(s.account.server)}, sessions: ${Object.keys(s.sessions).length}, messages: ${s.messages.length}, outbox: ${s.outbox.length} }`;
  }

  on<K extends keyof ClientEvents>(event: K, listener: (payload: ClientEvents[K]) => void): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * Connects to the relay (reconnecting on its own from then on), resends the outbox and starts
   * pre-key upkeep. Resolves once the server accepted the connection.
   */
  async connect(timeoutMs = 30_000): Promise<void> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    if (!this.#relay) {
      const relay = new Relay({
        url: relayUrl(this.server),
        credentials: this.credentials,
        connect: this.#opts.connect,
        onEnvelope: (env) => this.#onEnvelope(env),
        ...(this.#opts.backoff ? { backoff: this.#opts.backoff } : {}),
      });
      this.#relay = relay;
      relay.on('ready', () => this.#events.emit('connection', { state: 'ready' }));
      relay.on('drained', () => this.#events.emit('connection', { state: 'drained' }));
      relay.on('disconnected', (d) => this.#events.emit('connection', { state: 'disconnected', retryInMs: d.retryInMs }));
      relay.on('fatal', (e) => this.#events.emit('fatal', e));
      // Left over from an earlier run: resent unchanged (the recipient drops duplicates).
      for (const entry of this.#state.outbox) void this.#transmit(entry).catch(() => undefined);
      relay.start();
      this.#keyTimer = setInterval(() => void this.maintainKeys().catch(() => undefined), KEY_CHECK_INTERVAL_MS);
      (this.#keyTimer as { unref?: () => void }).unref?.();
      void this.maintainKeys().catch(() => undefined);
    }
    await this.#relay.waitReady(timeoutMs);
  }

  /** Resolves once everything the server held for us at connect time has been stored. */
  async waitDrained(timeoutMs = 60_000): Promise<void> {
    if (!this.#relay) throw new ClientError('CLOSED', 'not connected');
    await this.#relay.waitDrained(timeoutMs);
  }

  /** Outgoing messages not yet confirmed stored by the server. */
  get outboxSize(): number {
    return this.#state.outbox.length;
  }

  /** Stops the connection and waits for state writes and key upkeep to finish. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keyTimer);
    this.#relay?.close();
    await this.#maintenance?.catch(() => undefined);
    await this.#stateLock.run('', async () => undefined);
    await this.#writer.idle();
  }

  // ---- state ----

  /** Runs a mutation under the state lock and durably commits the snapshot taken right after it. */
  async #mutate<T>(fn: (s: StateData) => T | Promise<T>): Promise<T> {
    let commit: Promise<void> = Promise.resolve();
    const result = await this.#stateLock.run('', async () => {
      let r: T;
      try {
        r = await fn(this.#state);
      } catch (e) {
        // All or nothing: a failed change leaves the state as last committed.
        this.#state = decodeState(this.#lastCommitted);
        throw e;
      }
      commit = this.#commitSnapshot();
      return r;
    });
    await commit;
    return result;
  }

  /** Under the state lock: snapshot the state and hand it to the writer. */
  #commitSnapshot(): Promise<void> {
    const snapshot = encodeState(this.#state);
    this.#lastCommitted = snapshot;
    return this.#writer.commit(snapshot);
  }

  // ---- pre-keys ----

  /** Refills one-time keys and rotates the signed pre-key when due. Safe to call at any time. */
  maintainKeys(): Promise<void> {
    if (this.#maintenance) return this.#maintenance;
    const run = (async () => {
      try {
        const pending = this.#state.pendingUpload;
        if (pending) {
          await this.#http.uploadKeys(pending);
          await this.#mutate((s) => {
            if (s.pendingUpload === pending) s.pendingUpload = null;
          });
        }
        const counts = await this.#http.keyCount();
        const identity = IdentityKeyPair.deserialize(unb64(this.#state.account.identityKeyPair));
        const upload = await this.#mutate((s) => {
          const u = planKeyMaintenance(this.#backend, identity, s, counts, this.#now());
          if (u) s.pendingUpload = u;
          return u;
        });
        if (upload) {
          await this.#http.uploadKeys(upload);
          await this.#mutate((s) => {
            if (s.pendingUpload === upload) s.pendingUpload = null;
          });
        }
      } finally {
        this.#maintenance = undefined;
      }
    })();
    this.#maintenance = run;
    return run;
  }

  // ---- sending ----

  /**
   * Encrypts `text` for every device of `to` and hands it to the server. Resolves once the
   * server stored it for every device. Throws UNTRUSTED_IDENTITY if the contact's identity key
   * changed (nothing is sent until `trust`).
   */
  async send(to: string, text: string): Promise<SendResult> {
    if (this.#closed) throw new ClientError('CLOSED', 'the client is closed');
    const contact = parseUsername(to);
    if (contact === this.username) throw new ClientError('INVALID_ARGUMENT', 'cannot send a message to yourself');
    if (text.length > MAX_TEXT_LENGTH) throw new ClientError('INVALID_ARGUMENT', `message longer than ${MAX_TEXT_LENGTH} characters`);
    if (!this.#relay) await this.connect();
    const envelope: Envelope = { v: ENVELOPE_VERSION, id: toHex(this.#backend.randomBytes(MESSAGE_ID_BYTES)), text, sentAt: this.#now() };
    const plaintext = encodeEnvelope(envelope);
    // Devices that stored this message, and their server ids: a retry sends only to the others.
    const stored = new Map<number, string>();
    for (let attempt = 0; ; attempt++) {
      const entries = await this.#peerLock.run(contact, async () => {
        const devices = (await this.#prepareSessions(contact)).filter((d) => !stored.has(d));
        return this.#mutate(async (s) => {
          if (s.outbox.length + devices.length > MAX_OUTBOX) throw new ClientError('TIMEOUT', 'too many messages are waiting for the server');
          const out: OutboxEntry[] = [];
          for (const d of devices) {
            const ct = await this.#sessions.encrypt(new ProtocolAddress(contact, d), plaintext);
            if (ct.body.length > MAX_MESSAGE_BYTES) throw new ClientError('INVALID_ARGUMENT', 'message too large');
            // The install this ciphertext is for: the server refuses it (STALE_DEVICE) if the
            // device re-registered since, instead of storing mail it cannot decrypt.
            const raw = s.sessions[sessionKey(contact, d)];
            const registrationId = raw === undefined ? null : SessionRecord.deserialize(unb64(raw)).remoteRegistrationId();
            out.push({
              clientId: toHex(this.#backend.randomBytes(12)),
              messageId: envelope.id,
              to: contact,
              deviceId: d,
              ...(registrationId !== null && registrationId > 0 ? { registrationId } : {}),
              type: ct.type,
              body: toBase64(ct.body),
              createdAt: this.#now(),
            });
          }
          s.outbox.push(...out);
          touchContact(s, contact, this.#now());
          return out;
        }).then((out) => {
          // Still under the peer lock: frames enter the relay queue in encryption order.
          return out.map((e) => ({ entry: e, done: this.#transmit(e) }));
        });
      });
      const results = await Promise.allSettled(entries.map((e) => e.done));
      const failures: unknown[] = [];
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') stored.set(entries[i]!.entry.deviceId, r.value.serverId);
        else failures.push(r.reason);
      });
      // A device re-registered since our device list was fetched: refresh the list (which
      // re-checks the identity key, so a new key becomes UNTRUSTED_IDENTITY) and send once more
      // to the devices that did not store it. Once per message, so a server that keeps
      // answering STALE_DEVICE cannot make us loop.
      const stale = failures.length > 0 && failures.every((e) => e instanceof ClientError && e.serverCode === 'STALE_DEVICE');
      if (stale && attempt === 0) continue;
      if (failures.length > 0) throw failures[0];
      return { id: envelope.id, to: contact, sentAt: envelope.sentAt, serverIds: [...stored.values()] };
    }
  }

  /** Queues one outbox entry on the relay; removes it from the outbox once the server stored it. */
  #transmit(entry: OutboxEntry): Promise<{ serverId: string }> {
    const relay = this.#relay;
    if (!relay) return Promise.reject(new ClientError('CLOSED', 'not connected'));
    return relay
      .send({
        type: 'send',
        id: entry.clientId,
        to: { username: entry.to, deviceId: entry.deviceId, ...(entry.registrationId !== undefined ? { registrationId: entry.registrationId } : {}) },
        message: { type: entry.type, body: entry.body },
      })
      .then(async (r) => {
        await this.#mutate((s) => {
          const i = s.outbox.findIndex((e) => e.clientId === entry.clientId);
          if (i >= 0) s.outbox.splice(i, 1);
        });
        return r;
      }, async (e: unknown) => {
        // A definite refusal (not a disconnect): drop it from the outbox so it is not retried for ever.
        if (e instanceof ClientError && e.code === 'SERVER') {
          await this.#mutate((s) => {
            const i = s.outbox.findIndex((x) => x.clientId === entry.clientId);
            if (i >= 0) s.outbox.splice(i, 1);
          });
          // The device re-registered: the cached device list is out of date. The ciphertext was
          // for the old install and cannot be re-encrypted here; `send` retries from the plaintext.
          if (e.serverCode === 'STALE_DEVICE') this.#deviceListCache.delete(entry.to);
          if (e.serverCode === 'NOT_FOUND') {
            throw new ClientError('UNKNOWN_USER', `${entry.to} (device ${entry.deviceId}) no longer exists on the server`, { contact: entry.to, serverCode: 'NOT_FOUND' });
          }
        }
        throw e;
      });
  }

  async #deviceList(contact: string, fresh: boolean): Promise<DeviceListResponse> {
    const cached = this.#deviceListCache.get(contact);
    if (!fresh && cached && this.#now() - cached.at < DEVICE_LIST_TTL_MS && this.#now() >= cached.at) return cached.list;
    let list: DeviceListResponse;
    try {
      list = await this.#http.deviceList(contact);
    } catch (e) {
      if (e instanceof ClientError && e.code === 'SERVER' && e.serverCode === 'NOT_FOUND') {
        throw new ClientError('UNKNOWN_USER', `no user named ${contact} on the server`, { contact });
      }
      throw e;
    }
    if (list.username !== contact) throw new ClientError('BAD_RESPONSE', 'the server answered for a different user');
    this.#deviceListCache.set(contact, { at: this.#now(), list });
    return list;
  }

  /**
   * Makes sure there is a usable session with every current device of `contact` and that the
   * contact's identity key is the trusted one. Returns the device ids to encrypt for.
   * Runs under the contact's peer lock; network calls happen outside the state lock.
   */
  async #prepareSessions(contact: string): Promise<number[]> {
    let list: DeviceListResponse;
    try {
      list = await this.#deviceList(contact, false);
    } catch (e) {
      // Offline: keep writing to the devices we already have sessions with (and a trusted key
      // for); the relay queues the messages until the server is back. Nothing new is trusted.
      const known = e instanceof ClientError && (e.code === 'NETWORK' || e.code === 'TIMEOUT') ? this.#knownDevices(contact) : undefined;
      if (known === undefined) throw e;
      return known;
    }
    if (list.devices.length === 0) throw new ClientError('UNKNOWN_USER', `${contact} has no devices`, { contact });
    const need = await this.#mutate((s) => {
      this.#checkIdentity(s, contact, list.identityKey);
      const current = new Set(list.devices.map((d) => d.deviceId));
      // Sessions with devices that are gone are closed.
      for (const key of Object.keys(s.sessions)) {
        const [name, dev] = splitSessionKey(key);
        if (name === contact && !current.has(dev)) delete s.sessions[key];
      }
      touchContact(s, contact, this.#now()).devices = list.devices.map((d) => ({ ...d }));
      const missing: number[] = [];
      for (const d of list.devices) {
        const raw = s.sessions[sessionKey(contact, d.deviceId)];
        const record = raw === undefined ? null : SessionRecord.deserialize(unb64(raw));
        const usable = record !== null && record.hasCurrentSession();
        // A different registration id means the device was reinstalled: its old session is dead.
        const sameInstall = usable && (record.remoteRegistrationId() === null || record.remoteRegistrationId() === d.registrationId);
        if (!usable || !sameInstall) missing.push(d.deviceId);
      }
      return missing;
    });
    for (const deviceId of need) {
      const bundle = await this.#fetchBundle(contact, deviceId);
      await this.#mutate(async (s) => {
        this.#checkIdentity(s, contact, bundle.identityKey);
        try {
          await this.#sessions.processPreKeyBundle(new ProtocolAddress(contact, deviceId), toPreKeyBundle(bundle.identityKey, bundle.device));
        } catch (e) {
          if (e instanceof UntrustedIdentityError) throw this.#identityChanged(s, contact, b64(e.identityKey.serialize()));
          if (isProtocolError(e)) throw new ClientError('BAD_RESPONSE', `the key bundle of ${contact} is invalid (${e.code})`, { contact });
          throw e;
        }
      });
    }
    return list.devices.map((d) => d.deviceId);
  }

  /** Devices of `contact` with a usable session under the trusted identity, or undefined if none. */
  #knownDevices(contact: string): number[] | undefined {
    const s = this.#state;
    if (s.identities[contact] === undefined || s.pendingIdentities[contact] !== undefined) return undefined;
    const devices = (s.contacts[contact]?.devices ?? []).map((d) => d.deviceId).filter((d) => {
      const raw = s.sessions[sessionKey(contact, d)];
      return raw !== undefined && SessionRecord.deserialize(unb64(raw)).hasCurrentSession();
    });
    return devices.length > 0 ? devices : undefined;
  }

  async #fetchBundle(contact: string, deviceId: number): Promise<{ identityKey: string; device: DeviceBundle }> {
    const b = await this.#http.bundle(contact, deviceId);
    const device = b.devices.find((d) => d.deviceId === deviceId);
    if (b.username !== contact || device === undefined) throw new ClientError('BAD_RESPONSE', `the server sent no key bundle for ${contact}`, { contact });
    return { identityKey: b.identityKey, device };
  }

  /** TOFU: the first key seen is trusted; a different one later is refused loudly. Under the state lock. */
  #checkIdentity(s: StateData, contact: string, keyB64: string): void {
    const trusted = s.identities[contact];
    if (trusted === undefined) {
      s.identities[contact] = keyB64;
      return;
    }
    if (trusted !== keyB64) throw this.#identityChanged(s, contact, keyB64);
  }

  #identityChanged(s: StateData, contact: string, keyB64: string): ClientError {
    const known = s.pendingIdentities[contact];
    if (known?.key !== keyB64) {
      s.pendingIdentities[contact] = { key: keyB64, seenAt: this.#now() };
      this.#events.emit('identity-changed', { contact });
    }
    // Commit the pending key even though the operation fails (this runs under the state lock).
    void this.#commitSnapshot().catch(() => undefined);
    return new ClientError(
      'UNTRUSTED_IDENTITY',
      `the safety number with ${contact} has changed; compare it (tacit safety-number ${contact}) and run tacit trust ${contact} to continue`,
      { contact },
    );
  }

  // ---- receiving ----

  async #onEnvelope(env: WireEnvelope): Promise<EnvelopeOutcome> {
    if (this.#state.seenServerIds.includes(env.id)) return 'ack';
    const from = env.source.username;
    const fromDevice = env.source.deviceId;
    if (from === this.username && fromDevice === this.deviceId) {
      await this.#mutate((s) => remember(s.seenServerIds, env.id, MAX_SEEN_SERVER_IDS));
      return 'ack';
    }
    const body = fromBase64(env.body);
    if (body === undefined) return 'ack'; // validated upstream; unreachable in practice
    return this.#peerLock.run(from, async () => {
      const stored = await this.#mutate(async (s) => {
        remember(s.seenServerIds, env.id, MAX_SEEN_SERVER_IDS);
        if (s.pendingIdentities[from] !== undefined) {
          // Everything from a contact whose key changed waits for `trust`.
          quarantine(s, env, this.#now());
          return undefined;
        }
        return this.#decryptAndStore(s, { serverId: env.id, from, fromDevice, type: env.type, body, serverTimestamp: env.timestamp });
      });
      // Shown only once it is durable, so a crash re-delivers rather than shows twice.
      if (stored) this.#events.emit('message', { ...stored });
      return 'ack' as const;
    }).catch(() => 'retry-later' as const);
  }

  /** Under the state lock. Protocol failures drop the message (and say so); other errors propagate. */
  async #decryptAndStore(
    s: StateData,
    m: { serverId: string; from: string; fromDevice: number; type: 'prekey' | 'whisper'; body: Uint8Array; serverTimestamp: number },
  ): Promise<StoredMessage | undefined> {
    let plaintext: Uint8Array;
    let newSession = false;
    try {
      const r = await this.#sessions.decrypt(new ProtocolAddress(m.from, m.fromDevice), { type: m.type, body: m.body });
      plaintext = r.plaintext;
      newSession = r.newSession;
    } catch (e) {
      if (e instanceof UntrustedIdentityError) {
        quarantine(s, { id: m.serverId, type: m.type, body: toBase64(m.body), source: { username: m.from, deviceId: m.fromDevice }, timestamp: m.serverTimestamp }, this.#now());
        void this.#identityChanged(s, m.from, b64(e.identityKey.serialize()));
        return undefined;
      }
      if (isProtocolError(e)) {
        // DUPLICATE: a redelivery of something already shown; anything else: tampered, truncated,
        // replayed or for a lost session. Either way the session is untouched (decryption is
        // transactional) and retrying cannot help.
        if (e.code !== 'DUPLICATE') this.#events.emit('undecryptable', { from: m.from, fromDevice: m.fromDevice, reason: e.code });
        return undefined;
      }
      throw e;
    }
    if (newSession && ++this.#newSessionsSinceCheck >= KEY_CHECK_AFTER_NEW_SESSIONS) {
      this.#newSessionsSinceCheck = 0;
      setTimeout(() => void this.maintainKeys().catch(() => undefined), 0);
    }
    const envelope = decodeEnvelope(plaintext);
    if (envelope === undefined) {
      this.#events.emit('undecryptable', { from: m.from, fromDevice: m.fromDevice, reason: 'BAD_ENVELOPE' });
      return undefined;
    }
    const contact = touchContact(s, m.from, this.#now());
    if (!contact.devices.some((d) => d.deviceId === m.fromDevice)) contact.devices.push({ deviceId: m.fromDevice, registrationId: 0 });
    const dedupKey = `${m.from}:${envelope.id}`;
    if (s.seenMessageIds.includes(dedupKey)) return undefined;
    remember(s.seenMessageIds, dedupKey, MAX_SEEN_MESSAGE_IDS);
    const stored: StoredMessage = {
      serverId: m.serverId,
      from: m.from,
      fromDevice: m.fromDevice,
      id: envelope.id,
      text: envelope.text,
      sentAt: envelope.sentAt,
      serverTimestamp: m.serverTimestamp,
      receivedAt: this.#now(),
      read: false,
    };
    s.messages.push(stored);
    trimMessages(s.messages);
    return stored;
  }

  // ---- messages ----

  /** Messages not yet marked read, oldest first. */
  unread(): StoredMessage[] {
    return this.#state.messages.filter((m) => !m.read).map((m) => ({ ...m }));
  }

  /** All stored messages (optionally of one contact), oldest first. */
  history(contact?: string): StoredMessage[] {
    return this.#state.messages.filter((m) => contact === undefined || m.from === contact).map((m) => ({ ...m }));
  }

  async markRead(serverIds: readonly string[]): Promise<void> {
    const set = new Set(serverIds);
    await this.#mutate((s) => {
      for (const m of s.messages) if (set.has(m.serverId)) m.read = true;
    });
  }

  // ---- contacts and identities ----

  contacts(): ContactInfo[] {
    const s = this.#state;
    return Object.entries(s.contacts)
      .map(([username, c]) => {
        const msgs = s.messages.filter((m) => m.from === username);
        return {
          username,
          devices: c.devices.length,
          known: s.identities[username] !== undefined,
          identityChanged: s.pendingIdentities[username] !== undefined,
          unread: msgs.filter((m) => !m.read).length,
          lastMessageAt: msgs.length > 0 ? msgs[msgs.length - 1]!.receivedAt : undefined,
        };
      })
      .sort((a, b) => a.username.localeCompare(b.username));
  }

  /** Contacts whose identity changed and who wait for `trust`. */
  changedIdentities(): string[] {
    return Object.keys(this.#state.pendingIdentities).sort();
  }

  async safetyNumber(to: string): Promise<SafetyNumberInfo> {
    const contact = parseUsername(to);
    if (contact === this.username) throw new ClientError('INVALID_ARGUMENT', 'a safety number is between you and someone else');
    const s = this.#state;
    let keyB64: string;
    let keyState: SafetyNumberInfo['keyState'];
    if (s.pendingIdentities[contact]) {
      keyB64 = s.pendingIdentities[contact].key;
      keyState = 'changed';
    } else if (s.identities[contact]) {
      keyB64 = s.identities[contact];
      keyState = 'trusted';
    } else {
      keyB64 = (await this.#deviceList(contact, true)).identityKey;
      keyState = 'unverified';
    }
    const ours = IdentityKeyPair.deserialize(unb64(s.account.identityKeyPair)).publicKey;
    const fp = safetyNumber(this.#backend, utf8Encode(this.username), ours, utf8Encode(contact), PublicKey.deserialize(unb64(keyB64)));
    return { contact, displayable: fp.displayable, keyState };
  }

  /**
   * Accepts the contact's current identity key (after the user compared safety numbers): future
   * sends use new sessions, and messages held since the change are decrypted now.
   * Returns whether a changed key was accepted.
   */
  async trust(to: string): Promise<{ changed: boolean; released: number }> {
    const contact = parseUsername(to);
    if (contact === this.username) throw new ClientError('INVALID_ARGUMENT', 'you cannot trust yourself');
    return this.#peerLock.run(contact, async () => {
      const pending = this.#state.pendingIdentities[contact];
      let keyB64: string;
      if (pending) {
        keyB64 = pending.key;
        // If the server now shows yet another key, the user compared the wrong number.
        const list = await this.#deviceList(contact, true).catch(() => undefined);
        if (list && list.identityKey !== keyB64) {
          await this.#mutate((s) => void this.#identityChanged(s, contact, list.identityKey));
          throw new ClientError('UNTRUSTED_IDENTITY', `the identity key of ${contact} changed again; compare the safety number again before trusting`, { contact });
        }
      } else {
        keyB64 = (await this.#deviceList(contact, true)).identityKey;
      }
      const released = await this.#mutate(async (s) => {
        const changed = s.identities[contact] !== undefined && s.identities[contact] !== keyB64;
        s.identities[contact] = keyB64;
        delete s.pendingIdentities[contact];
        touchContact(s, contact, this.#now());
        if (changed) {
          // Old sessions belong to the old identity.
          for (const key of Object.keys(s.sessions)) if (splitSessionKey(key)[0] === contact) delete s.sessions[key];
        }
        const held = s.quarantine.filter((q) => q.from === contact);
        s.quarantine = s.quarantine.filter((q) => q.from !== contact);
        const out: StoredMessage[] = [];
        for (const q of held) {
          const body = fromBase64(q.body);
          if (body === undefined) continue;
          const m = await this.#decryptAndStore(s, { serverId: q.serverId, from: q.from, fromDevice: q.fromDevice, type: q.type, body, serverTimestamp: q.serverTimestamp });
          if (m) out.push(m);
        }
        return out;
      });
      this.#deviceListCache.delete(contact);
      for (const m of released) this.#events.emit('message', { ...m });
      return { changed: pending !== undefined, released: released.length };
    });
  }
}

function splitSessionKey(key: string): [string, number] {
  const i = key.lastIndexOf('.');
  return [key.slice(0, i), Number(key.slice(i + 1))];
}

function touchContact(s: StateData, contact: string, now: number): StateData['contacts'][string] {
  let c = s.contacts[contact];
  if (!c) s.contacts[contact] = c = { devices: [], addedAt: now };
  return c;
}

function remember(list: string[], value: string, max: number): void {
  list.push(value);
  trimFront(list, max);
}

function quarantine(s: StateData, env: WireEnvelope, now: number): void {
  s.quarantine.push({
    serverId: env.id,
    from: env.source.username,
    fromDevice: env.source.deviceId,
    type: env.type,
    body: env.body,
    serverTimestamp: env.timestamp,
    receivedAt: now,
  });
  trimFront(s.quarantine, MAX_QUARANTINED);
}

/** Drops the oldest read messages first, then the oldest unread, down to the cap. */
function trimMessages(messages: StoredMessage[]): void {
  if (messages.length <= MAX_STORED_MESSAGES) return;
  let excess = messages.length - MAX_STORED_MESSAGES;
  for (let i = 0; i < messages.length && excess > 0; ) {
    if (messages[i]!.read) {
      messages.splice(i, 1);
      excess--;
    } else i++;
  }
  if (excess > 0) messages.splice(0, excess);
}

function toPreKeyBundle(identityKeyB64: string, d: DeviceBundle): PreKeyBundle {
  const k = (s: string): Uint8Array => {
    const out = fromBase64(s);
    if (out === undefined) throw new ClientError('BAD_RESPONSE', 'malformed key in bundle');
    return out;
  };
  try {
    return {
      registrationId: d.registrationId,
      deviceId: d.deviceId,
      identityKey: PublicKey.deserialize(k(identityKeyB64)),
      signedPreKeyId: d.signedPreKey.keyId,
      signedPreKey: PublicKey.deserialize(k(d.signedPreKey.publicKey)),
      signedPreKeySignature: k(d.signedPreKey.signature),
      kyberPreKeyId: d.kyberPreKey.keyId,
      kyberPreKey: KyberPublicKey.deserialize(k(d.kyberPreKey.publicKey)),
      kyberPreKeySignature: k(d.kyberPreKey.signature),
      ...(d.preKey ? { preKeyId: d.preKey.keyId, preKey: PublicKey.deserialize(k(d.preKey.publicKey)) } : {}),
    };
  } catch (e) {
    if (e instanceof ClientError) throw e;
    throw new ClientError('BAD_RESPONSE', 'the key bundle holds an invalid key');
  }
}

