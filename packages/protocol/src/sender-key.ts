// Sender keys (DESIGN §2.7, libsignal's sender_keys.rs): the state one sender's group messages are
// read with, the record holding up to MAX_SENDER_KEY_STATES of them per (sender, distribution id),
// and the store interface with an in-memory implementation.
//
// A sender chain steps like a Double Ratchet chain (seed = HMAC(ck, 0x01), next = HMAC(ck, 0x02));
// a message key is HKDF-SHA256(salt none, ikm = seed, info "WhisperGroup", 48) → IV 16 | AES key 32.
// Skipped message keys are kept as their seeds (as libsignal keeps them) and expanded on use.
//
// A record serializes to libsignal's own storage layout (SenderKeyRecordStructure in storage.proto),
// so a record written here reads in libsignal and back; each state carries its message version (3),
// which is what versions the format. Decoding is bounded and total (BAD_STATE on anything wrong).
// One addition: our own signing key may carry its Ed25519 seed (seeded-signing-key.ts) in field
// SIGNING_SEED_FIELD of the signing-key message, a number far from libsignal's. libsignal skips
// an unknown field (prost does), and a record without it (older, or written by libsignal) signs
// with XEdDSA from the private key as before.
import { type CryptoBackend } from './backend.ts';
import { utf8Encode } from './bytes.ts';
import { PrivateKey, PublicKey } from './curve.ts';
import { SIGNING_SEED_LENGTH } from './seeded-signing-key.ts';
import { type DistributionId } from './distribution-id.ts';
import { fail, ProtocolError } from './errors.ts';
import { kdfCkNext } from './kdf.ts';
import { type Field, readFields, Writer } from './protobuf.ts';
import { SENDER_CHAIN_KEY_LENGTH, SENDER_KEY_MESSAGE_VERSION } from './sender-key-message.ts';
import { MAX_MESSAGE_KEYS } from './state.ts';
import { type ProtocolAddress } from './store.ts';

/**
 * libsignal's limit: sender key states kept per (sender, distribution id), newest first; adding a
 * sixth drops the oldest. More lets late messages of older chains (a sender that re-created its key)
 * still decrypt; fewer bounds the record. Each state also keeps up to MAX_MESSAGE_KEYS skipped keys
 * (the Double Ratchet's limit, as in libsignal) and accepts jumps up to MAX_FORWARD_JUMPS.
 */
export const MAX_SENDER_KEY_STATES = 5;
/** Bound on a serialized record we will parse: 5 states × 2,000 keys × ~40 bytes is about 400 KB. */
export const MAX_SERIALIZED_SENDER_KEY_RECORD_BYTES = 1024 * 1024;
/** Iterations are protobuf uint32: a chain cannot step past this one (libsignal refuses too). */
export const MAX_SENDER_KEY_ITERATION = 0xffffffff;

/**
 * Field of SenderSigningKey (storage.proto: public = 1, private = 2) holding our Ed25519 signing
 * seed. Far above libsignal's numbers, so a field it adds later cannot collide.
 */
export const SIGNING_SEED_FIELD = 1001;

const INFO_GROUP = utf8Encode('WhisperGroup');
const EMPTY = new Uint8Array(0);
const MESSAGE_KEY_SEED = Uint8Array.of(0x01);
const inspect = Symbol.for('nodejs.util.inspect.custom');

export interface SenderMessageKey {
  readonly iteration: number;
  readonly iv: Uint8Array;
  readonly cipherKey: Uint8Array;
}

/** The message-key seed for the chain key's current iteration. */
export function senderMessageSeed(backend: CryptoBackend, chainKey: Uint8Array): Uint8Array {
  return backend.hmacSha256(chainKey, MESSAGE_KEY_SEED);
}

/** Expand a seed into the IV and AES key ("WhisperGroup": IV first, then the key). */
export function senderMessageKey(backend: CryptoBackend, iteration: number, seed: Uint8Array): SenderMessageKey {
  const out = backend.hkdfSha256(seed, EMPTY, INFO_GROUP, 48);
  return { iteration, iv: out.subarray(0, 16), cipherKey: out.subarray(16, 48) };
}

/** The next sender chain key (the same HMAC step as a Double Ratchet chain). */
export function senderChainKeyNext(backend: CryptoBackend, chainKey: Uint8Array): Uint8Array {
  return kdfCkNext(backend, chainKey);
}

/**
 * One sender chain: its id, where it stands, its public signing key (and the private one when it is
 * ours), and skipped message-key seeds by iteration, oldest first. Internal and mutable; the group
 * cipher computes every change first and applies it only after the message decrypted.
 */
export class SenderKeyState {
  readonly messageVersion = SENDER_KEY_MESSAGE_VERSION;
  readonly chainId: number;
  chainKey: Uint8Array;
  iteration: number;
  readonly signingKey: PublicKey;
  readonly signingPrivateKey: PrivateKey | null;
  /** The Ed25519 seed of `signingPrivateKey` when it was made from one (ours only; never logged). */
  readonly signingSeed: Uint8Array | null;
  readonly messageKeys: Map<number, Uint8Array>;

  constructor(f: {
    chainId: number;
    iteration: number;
    chainKey: Uint8Array;
    signingKey: PublicKey;
    signingPrivateKey: PrivateKey | null;
    signingSeed?: Uint8Array | null;
    messageKeys?: Map<number, Uint8Array>;
  }) {
    this.chainId = f.chainId;
    this.iteration = f.iteration;
    this.chainKey = f.chainKey;
    this.signingKey = f.signingKey;
    this.signingPrivateKey = f.signingPrivateKey;
    this.signingSeed = f.signingPrivateKey === null ? null : (f.signingSeed ?? null);
    this.messageKeys = f.messageKeys ?? new Map();
  }

  /** Keep a skipped key's seed, evicting the oldest past MAX_MESSAGE_KEYS. */
  addMessageKey(iteration: number, seed: Uint8Array): void {
    this.messageKeys.set(iteration, seed);
    while (this.messageKeys.size > MAX_MESSAGE_KEYS) {
      const oldest = this.messageKeys.keys().next();
      if (oldest.done === true) break;
      this.messageKeys.delete(oldest.value);
    }
  }

  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'SenderKeyState is not JSON-serializable');
  }

  [inspect](): string {
    return `SenderKeyState(chain ${this.chainId}, iteration ${this.iteration}, ${this.messageKeys.size} stored keys${this.signingPrivateKey !== null ? ', ours' : ''})`;
  }
}

/**
 * All sender key states of one sender under one distribution id, newest first. Opaque: persist it
 * only through serialize()/deserialize().
 */
export class SenderKeyRecord {
  readonly #states: SenderKeyState[];

  constructor(states: SenderKeyState[] = []) {
    this.#states = states;
  }

  /** Internal: the newest state (the one a sender encrypts with), or null when empty. */
  get current(): SenderKeyState | null {
    return this.#states[0] ?? null;
  }

  /** Internal: the states, newest first (not copies). */
  get states(): readonly SenderKeyState[] {
    return this.#states;
  }

  stateForChainId(chainId: number): SenderKeyState | null {
    return this.#states.find((s) => s.chainId === chainId) ?? null;
  }

  /**
   * libsignal's add_sender_key_state: a state with the same chain id and signing key is kept as it
   * is (a repeated distribution message does not rewind the chain) and moves to the front; one with
   * the same chain id but another signing key is replaced; past MAX_SENDER_KEY_STATES the oldest goes.
   */
  addState(f: {
    chainId: number;
    iteration: number;
    chainKey: Uint8Array;
    signingKey: PublicKey;
    signingPrivateKey: PrivateKey | null;
    signingSeed?: Uint8Array | null;
  }): void {
    const same = this.#states.findIndex((s) => s.chainId === f.chainId && s.signingKey.equals(f.signingKey));
    const existing = same >= 0 ? this.#states.splice(same, 1)[0] : undefined;
    for (let i = this.#states.length - 1; i >= 0; i--) if (this.#states[i]?.chainId === f.chainId) this.#states.splice(i, 1);
    const state = existing ?? new SenderKeyState({ ...f, chainKey: f.chainKey.slice(), signingSeed: f.signingSeed?.slice() ?? null });
    while (this.#states.length >= MAX_SENDER_KEY_STATES) this.#states.pop();
    this.#states.unshift(state);
  }

  /** libsignal's storage layout; proto3, so zero and empty fields are left out, as prost does. */
  serialize(): Uint8Array {
    const record = new Writer();
    for (const s of this.#states) {
      const w = new Writer();
      if (s.chainId !== 0) w.uint32(1, s.chainId);
      w.bytes(2, pair(s.iteration, s.chainKey));
      const sk = new Writer();
      sk.bytes(1, s.signingKey.serializedUnsafe);
      if (s.signingPrivateKey !== null) sk.bytes(2, s.signingPrivateKey.rawUnsafe);
      if (s.signingSeed !== null) sk.bytes(SIGNING_SEED_FIELD, s.signingSeed);
      w.bytes(3, sk.finish());
      for (const [iteration, seed] of s.messageKeys) w.bytes(4, pair(iteration, seed));
      w.uint32(5, s.messageVersion);
      record.bytes(1, w.finish());
    }
    return record.finish();
  }

  static deserialize(data: Uint8Array): SenderKeyRecord {
    if (!(data instanceof Uint8Array) || data.length > MAX_SERIALIZED_SENDER_KEY_RECORD_BYTES) fail('BAD_STATE', 'sender key record too large');
    try {
      const states: SenderKeyState[] = [];
      for (const f of readFields(data)) {
        if (f.tag !== 1) continue;
        if (states.length === MAX_SENDER_KEY_STATES) fail('BAD_STATE', 'too many sender key states');
        states.push(stateFromFields(readFields(bytesOf(f))));
      }
      return new SenderKeyRecord(states);
    } catch (e) {
      if (e instanceof ProtocolError && e.code === 'BAD_STATE') throw e;
      throw new ProtocolError('BAD_STATE', 'malformed sender key record');
    }
  }

  toJSON(): never {
    return fail('INVALID_ARGUMENT', 'SenderKeyRecord is not JSON-serializable; use serialize()');
  }

  [inspect](): string {
    return `SenderKeyRecord(${this.#states.map((s) => `chain ${s.chainId} at ${s.iteration}${s.signingPrivateKey !== null ? ' (ours)' : ''}`).join(', ') || 'empty'})`;
  }
}

function pair(iteration: number, seed: Uint8Array): Uint8Array {
  const w = new Writer();
  if (iteration !== 0) w.uint32(1, iteration);
  w.bytes(2, seed);
  return w.finish();
}

function bytesOf(f: Field): Uint8Array {
  if (f.wire !== 2) fail('BAD_STATE', `field ${f.tag} has the wrong wire type`);
  return f.value;
}

function uintOf(f: Field): number {
  if (f.wire !== 0) fail('BAD_STATE', `field ${f.tag} has the wrong wire type`);
  return f.value;
}

/** {iteration = 1, seed = 2} with a 32-byte seed (SenderChainKey and SenderMessageKey alike). */
function pairFromFields(fields: Field[], what: string): { iteration: number; seed: Uint8Array } {
  let iteration = 0;
  let seed: Uint8Array | undefined;
  for (const f of fields) {
    if (f.tag === 1) iteration = uintOf(f);
    else if (f.tag === 2) seed = bytesOf(f);
  }
  if (seed === undefined || seed.length !== SENDER_CHAIN_KEY_LENGTH) fail('BAD_STATE', `${what} seed is not ${SENDER_CHAIN_KEY_LENGTH} bytes`);
  return { iteration, seed: seed.slice() };
}

function stateFromFields(fields: Field[]): SenderKeyState {
  let chainId = 0;
  let version = 0;
  let chain: { iteration: number; seed: Uint8Array } | undefined;
  let signingKey: PublicKey | undefined;
  let signingPrivateKey: PrivateKey | null = null;
  let signingSeed: Uint8Array | null = null;
  const messageKeys = new Map<number, Uint8Array>();
  for (const f of fields) {
    switch (f.tag) {
      case 1:
        chainId = uintOf(f);
        break;
      case 2:
        chain = pairFromFields(readFields(bytesOf(f)), 'chain key');
        break;
      case 3: {
        let pub: Uint8Array | undefined;
        let priv: Uint8Array = new Uint8Array(0);
        let seed: Uint8Array | undefined;
        for (const g of readFields(bytesOf(f))) {
          if (g.tag === 1) pub = bytesOf(g);
          else if (g.tag === 2) priv = bytesOf(g);
          else if (g.tag === SIGNING_SEED_FIELD) seed = bytesOf(g);
        }
        if (pub === undefined) fail('BAD_STATE', 'missing signing key');
        signingKey = PublicKey.deserialize(pub);
        signingPrivateKey = priv.length === 0 ? null : PrivateKey.deserialize(priv);
        if (seed !== undefined) {
          if (signingPrivateKey === null) fail('BAD_STATE', 'signing seed without a private key');
          if (seed.length !== SIGNING_SEED_LENGTH) fail('BAD_STATE', `signing seed is not ${SIGNING_SEED_LENGTH} bytes`);
          signingSeed = seed.slice();
        }
        break;
      }
      case 4: {
        if (messageKeys.size === MAX_MESSAGE_KEYS) fail('BAD_STATE', 'too many stored message keys');
        const k = pairFromFields(readFields(bytesOf(f)), 'message key');
        messageKeys.set(k.iteration, k.seed);
        break;
      }
      case 5:
        version = uintOf(f);
        break;
      default:
        break;
    }
  }
  // libsignal reads a missing version (0) as 3, the first sender-key version.
  if (version !== 0 && version !== SENDER_KEY_MESSAGE_VERSION) fail('BAD_STATE', `sender key state version ${version}`);
  if (chain === undefined) fail('BAD_STATE', 'missing sender chain key');
  if (signingKey === undefined) fail('BAD_STATE', 'missing signing key');
  return new SenderKeyState({ chainId, iteration: chain.iteration, chainKey: chain.seed, signingKey, signingPrivateKey, signingSeed, messageKeys });
}

// ---- store ----

/**
 * Sender key records by (sender address, distribution id), as libsignal's SenderKeyStore. Our own
 * sending key is stored under our own address. Every method is async so stores may do I/O.
 */
export interface SenderKeyStore {
  loadSenderKey(sender: ProtocolAddress, distributionId: DistributionId): Promise<SenderKeyRecord | null>;
  storeSenderKey(sender: ProtocolAddress, distributionId: DistributionId, record: SenderKeyRecord): Promise<void>;
}

/** The key a store files a record under: address and distribution id, unambiguous. */
export function senderKeyName(sender: ProtocolAddress, distributionId: DistributionId): string {
  return `${sender.toString()}/${distributionId.toString()}`;
}

/** Keeps serialized records, so a loaded record is a fresh object as with a persistent store. */
export class InMemorySenderKeyStore implements SenderKeyStore {
  readonly #records = new Map<string, Uint8Array>();
  async loadSenderKey(sender: ProtocolAddress, distributionId: DistributionId): Promise<SenderKeyRecord | null> {
    const r = this.#records.get(senderKeyName(sender, distributionId));
    return r === undefined ? null : SenderKeyRecord.deserialize(r);
  }
  async storeSenderKey(sender: ProtocolAddress, distributionId: DistributionId, record: SenderKeyRecord): Promise<void> {
    this.#records.set(senderKeyName(sender, distributionId), record.serialize());
  }
  get size(): number {
    return this.#records.size;
  }
}
