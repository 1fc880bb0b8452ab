// Session state (one Double Ratchet) and the session record (current state plus archived ones).
// SessionState is internal and mutable; callers copy it with clone() and commit on success, so
// decryption is all-or-nothing (DESIGN §2.3). SessionRecord is the opaque, persistable object.
import { fromBase64, toBase64, utf8Decode, utf8Encode } from './bytes.ts';
import { KeyPair, PrivateKey, PublicKey } from './curve.ts';
import { fail, ProtocolError } from './errors.ts';
import { type MessageKeys } from './kdf.ts';

const inspect = Symbol.for('nodejs.util.inspect.custom');

/** libsignal's limit: archived previous sessions kept per address (late messages still decrypt). */
export const MAX_ARCHIVED_STATES = 40;
/** libsignal's limit: receiving chains kept per session; older chains are dropped first. */
export const MAX_RECEIVER_CHAINS = 5;
/** libsignal's limit: skipped message keys stored per receiving chain; oldest evicted first. */
export const MAX_MESSAGE_KEYS = 2000;
/**
 * libsignal's limit (MAX_UNACKNOWLEDGED_SESSION_AGE): a session we started but never heard back
 * on stops being used for sending after this long, so a fresh bundle is fetched (the peer may have
 * lost its pre-keys). Longer keeps a one-sided conversation on one session; shorter refetches
 * bundles (and spends one-time keys) more often.
 */
export const MAX_UNACKNOWLEDGED_SESSION_AGE_MS = 30 * 24 * 60 * 60 * 1000;
const MS_PER_SECOND = 1000;
/** Bound on a serialized record we will parse (40 archived states × 5 chains × 2,000 keys fits). */
export const MAX_SERIALIZED_RECORD_BYTES = 64 * 1024 * 1024;

export interface SenderChain {
  ratchetKey: KeyPair;
  chainKey: Uint8Array;
  index: number;
}

export interface ReceiverChain {
  ratchetKey: PublicKey;
  chainKey: Uint8Array;
  index: number;
  /** Skipped message keys by counter, in insertion order (oldest first). */
  skipped: Map<number, MessageKeys>;
}

export interface PendingPreKey {
  preKeyId: number | undefined;
  signedPreKeyId: number;
  kyberPreKeyId: number;
  kyberCiphertext: Uint8Array;
  baseKey: PublicKey;
  /** Milliseconds since the epoch when the session was started. */
  timestamp: number;
}

export class SessionState {
  version = 4;
  localIdentity: PublicKey;
  remoteIdentity: PublicKey;
  rootKey: Uint8Array;
  previousCounter = 0;
  sender: SenderChain | null = null;
  receivers: ReceiverChain[] = [];
  pending: PendingPreKey | null = null;
  localRegistrationId = 0;
  remoteRegistrationId = 0;
  /** Serialized base key of the session's initiator; identifies the session for PreKey messages. */
  aliceBaseKey: Uint8Array;

  constructor(localIdentity: PublicKey, remoteIdentity: PublicKey, rootKey: Uint8Array, aliceBaseKey: Uint8Array) {
    this.localIdentity = localIdentity;
    this.remoteIdentity = remoteIdentity;
    this.rootKey = rootKey;
    this.aliceBaseKey = aliceBaseKey;
  }

  clone(): SessionState {
    const s = new SessionState(this.localIdentity, this.remoteIdentity, this.rootKey, this.aliceBaseKey);
    s.version = this.version;
    s.previousCounter = this.previousCounter;
    s.sender = this.sender === null ? null : { ...this.sender };
    s.receivers = this.receivers.map((c) => ({ ...c, skipped: new Map(c.skipped) }));
    s.pending = this.pending === null ? null : { ...this.pending };
    s.localRegistrationId = this.localRegistrationId;
    s.remoteRegistrationId = this.remoteRegistrationId;
    return s;
  }

  /**
   * True when this state can send at `now` (milliseconds since the epoch): it has a sending chain,
   * and if we started it and never heard back, it is not older than MAX_UNACKNOWLEDGED_SESSION_AGE_MS.
   * libsignal keeps the start time in whole seconds, so the start is rounded down to the second
   * here too, and the edge falls on the same millisecond as libsignal's.
   */
  canSend(now: number): boolean {
    if (this.sender === null) return false;
    if (this.pending === null) return true;
    const started = Math.floor(this.pending.timestamp / MS_PER_SECOND) * MS_PER_SECOND;
    return !(started + MAX_UNACKNOWLEDGED_SESSION_AGE_MS < now);
  }

  findReceiver(ratchetKey: PublicKey): ReceiverChain | undefined {
    for (const c of this.receivers) if (c.ratchetKey.equals(ratchetKey)) return c;
    return undefined;
  }

  addReceiver(chain: ReceiverChain): void {
    this.receivers.push(chain);
    while (this.receivers.length > MAX_RECEIVER_CHAINS) this.receivers.shift();
  }

  storeSkipped(chain: ReceiverChain, keys: MessageKeys): void {
    chain.skipped.set(keys.counter, keys);
    while (chain.skipped.size > MAX_MESSAGE_KEYS) {
      const oldest = chain.skipped.keys().next();
      if (oldest.done === true) break;
      chain.skipped.delete(oldest.value);
    }
  }

  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'SessionState is not JSON-serializable');
  }

  [inspect](): string {
    return `SessionState(v${this.version}, remote ${this.remoteIdentity.toString()}, send #${this.sender?.index ?? '-'}, ${this.receivers.length} receiving chains)`;
  }
}

// ---- persistence ----

const RECORD_FORMAT = 1;

type Json = Record<string, unknown>;

function b64(b: Uint8Array): string {
  return toBase64(b);
}

function stateToJson(s: SessionState): Json {
  return {
    version: s.version,
    localIdentity: b64(s.localIdentity.serialize()),
    remoteIdentity: b64(s.remoteIdentity.serialize()),
    rootKey: b64(s.rootKey),
    previousCounter: s.previousCounter,
    sender:
      s.sender === null
        ? null
        : {
            pub: b64(s.sender.ratchetKey.publicKey.serialize()),
            priv: b64(s.sender.ratchetKey.privateKey.serialize()),
            chainKey: b64(s.sender.chainKey),
            index: s.sender.index,
          },
    receivers: s.receivers.map((c) => ({
      pub: b64(c.ratchetKey.serialize()),
      chainKey: b64(c.chainKey),
      index: c.index,
      skipped: [...c.skipped.values()].map((k) => [k.counter, b64(k.cipherKey), b64(k.macKey), b64(k.iv)]),
    })),
    pending:
      s.pending === null
        ? null
        : {
            preKeyId: s.pending.preKeyId ?? null,
            signedPreKeyId: s.pending.signedPreKeyId,
            kyberPreKeyId: s.pending.kyberPreKeyId,
            kyberCiphertext: b64(s.pending.kyberCiphertext),
            baseKey: b64(s.pending.baseKey.serialize()),
            timestamp: s.pending.timestamp,
          },
    localRegistrationId: s.localRegistrationId,
    remoteRegistrationId: s.remoteRegistrationId,
    aliceBaseKey: b64(s.aliceBaseKey),
  };
}

function obj(v: unknown, what: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('BAD_STATE', `${what} is not an object`);
  return v as Json;
}
function int(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail('BAD_STATE', `${what} is not a non-negative integer`);
  return v;
}
function bytes(v: unknown, what: string, len?: number): Uint8Array {
  if (typeof v !== 'string') fail('BAD_STATE', `${what} is not a string`);
  const b = fromBase64(v);
  if (len !== undefined && b.length !== len) fail('BAD_STATE', `${what} has length ${b.length}`);
  return b;
}
function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) fail('BAD_STATE', `${what} is not an array`);
  return v;
}

function stateFromJson(v: unknown): SessionState {
  const o = obj(v, 'state');
  const s = new SessionState(
    PublicKey.deserialize(bytes(o.localIdentity, 'localIdentity')),
    PublicKey.deserialize(bytes(o.remoteIdentity, 'remoteIdentity')),
    bytes(o.rootKey, 'rootKey', 32),
    bytes(o.aliceBaseKey, 'aliceBaseKey'),
  );
  s.version = int(o.version, 'version');
  s.previousCounter = int(o.previousCounter, 'previousCounter');
  if (o.sender !== null) {
    const sc = obj(o.sender, 'sender');
    s.sender = {
      ratchetKey: new KeyPair(PublicKey.deserialize(bytes(sc.pub, 'sender.pub')), PrivateKey.deserialize(bytes(sc.priv, 'sender.priv', 32))),
      chainKey: bytes(sc.chainKey, 'sender.chainKey', 32),
      index: int(sc.index, 'sender.index'),
    };
  }
  const receivers = arr(o.receivers, 'receivers');
  if (receivers.length > MAX_RECEIVER_CHAINS) fail('BAD_STATE', 'too many receiving chains');
  for (const r of receivers) {
    const rc = obj(r, 'receiver');
    const skippedRaw = arr(rc.skipped, 'skipped');
    if (skippedRaw.length > MAX_MESSAGE_KEYS) fail('BAD_STATE', 'too many skipped keys');
    const skipped = new Map<number, MessageKeys>();
    for (const k of skippedRaw) {
      const t = arr(k, 'skipped key');
      const counter = int(t[0], 'skipped.counter');
      skipped.set(counter, { counter, cipherKey: bytes(t[1], 'cipherKey', 32), macKey: bytes(t[2], 'macKey', 32), iv: bytes(t[3], 'iv', 16) });
    }
    s.receivers.push({
      ratchetKey: PublicKey.deserialize(bytes(rc.pub, 'receiver.pub')),
      chainKey: bytes(rc.chainKey, 'receiver.chainKey', 32),
      index: int(rc.index, 'receiver.index'),
      skipped,
    });
  }
  if (o.pending !== null) {
    const p = obj(o.pending, 'pending');
    s.pending = {
      preKeyId: p.preKeyId === null ? undefined : int(p.preKeyId, 'pending.preKeyId'),
      signedPreKeyId: int(p.signedPreKeyId, 'pending.signedPreKeyId'),
      kyberPreKeyId: int(p.kyberPreKeyId, 'pending.kyberPreKeyId'),
      kyberCiphertext: bytes(p.kyberCiphertext, 'pending.kyberCiphertext'),
      baseKey: PublicKey.deserialize(bytes(p.baseKey, 'pending.baseKey')),
      timestamp: int(p.timestamp, 'pending.timestamp'),
    };
  }
  s.localRegistrationId = int(o.localRegistrationId, 'localRegistrationId');
  s.remoteRegistrationId = int(o.remoteRegistrationId, 'remoteRegistrationId');
  return s;
}

/**
 * All sessions with one address: the current one and up to MAX_ARCHIVED_STATES previous ones,
 * newest first. Opaque: persist it only through serialize()/deserialize().
 */
export class SessionRecord {
  #current: SessionState | null;
  #previous: SessionState[];

  constructor(current: SessionState | null = null, previous: SessionState[] = []) {
    this.#current = current;
    this.#previous = previous;
  }

  /** Internal: the current state (not a copy). */
  get current(): SessionState | null {
    return this.#current;
  }

  /** Internal: archived states, newest first (not copies). */
  get previous(): readonly SessionState[] {
    return this.#previous;
  }

  /**
   * True when the current session can be used to send at `now` (milliseconds since the epoch), as
   * libsignal's SessionRecord.hasCurrentState(now): false with no current session, and false for
   * one we started that was never answered within MAX_UNACKNOWLEDGED_SESSION_AGE_MS (then a fresh
   * bundle is needed; encrypt refuses it with NO_SESSION).
   */
  hasCurrentSession(now: number): boolean {
    return this.#current !== null && this.#current.canSend(now);
  }

  /** The remote identity key of the current session, if any. */
  remoteIdentityKey(): PublicKey | null {
    return this.#current?.remoteIdentity ?? null;
  }

  remoteRegistrationId(): number | null {
    return this.#current?.remoteRegistrationId ?? null;
  }

  /** Make `state` current, archiving the old current state. */
  promoteState(state: SessionState): void {
    if (this.#current !== null) this.#previous.unshift(this.#current);
    this.#current = state;
    if (this.#previous.length > MAX_ARCHIVED_STATES) this.#previous.length = MAX_ARCHIVED_STATES;
  }

  /** Replace the current state in place (commit after a successful decrypt). */
  setCurrent(state: SessionState): void {
    this.#current = state;
  }

  /** Replace archived state i with `state` and make it current (a late message revived it). */
  promotePrevious(index: number, state: SessionState): void {
    this.#previous.splice(index, 1);
    this.promoteState(state);
  }

  /** Archive the current session so the next send starts a new one (e.g. after an identity change). */
  archiveCurrentState(): void {
    if (this.#current === null) return;
    this.#previous.unshift(this.#current);
    this.#current = null;
    if (this.#previous.length > MAX_ARCHIVED_STATES) this.#previous.length = MAX_ARCHIVED_STATES;
  }

  clone(): SessionRecord {
    return new SessionRecord(this.#current?.clone() ?? null, this.#previous.map((s) => s.clone()));
  }

  serialize(): Uint8Array {
    return utf8Encode(
      JSON.stringify({
        format: RECORD_FORMAT,
        current: this.#current === null ? null : stateToJson(this.#current),
        previous: this.#previous.map(stateToJson),
      }),
    );
  }

  static deserialize(data: Uint8Array): SessionRecord {
    if (!(data instanceof Uint8Array) || data.length > MAX_SERIALIZED_RECORD_BYTES) fail('BAD_STATE', 'session record too large');
    try {
      const o = obj(JSON.parse(utf8Decode(data)), 'record');
      if (o.format !== RECORD_FORMAT) fail('BAD_STATE', `unknown session record format ${String(o.format)}`);
      const previous = arr(o.previous, 'previous');
      if (previous.length > MAX_ARCHIVED_STATES) fail('BAD_STATE', 'too many archived states');
      return new SessionRecord(o.current === null ? null : stateFromJson(o.current), previous.map(stateFromJson));
    } catch (e) {
      if (e instanceof ProtocolError && e.code === 'BAD_STATE') throw e;
      throw new ProtocolError('BAD_STATE', 'malformed session record');
    }
  }

  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'SessionRecord is not JSON-serializable; use serialize()');
  }

  [inspect](): string {
    const c = this.#current;
    const cur =
      c === null
        ? 'none'
        : `remote ${c.remoteIdentity.toString()}, sending #${c.sender?.index ?? '-'}, receiving chains ${c.receivers.map((r) => `#${r.index}`).join(',') || '-'}, pending ${c.pending !== null}`;
    return `SessionRecord(current: ${cur}; archived: ${this.#previous.length})`;
  }
}
