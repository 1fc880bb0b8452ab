/**
 * The protocol's store interfaces over the client's records. Every read and write goes to the
 * transaction of the state change that is running (Core.active()), so a session advance, the
 * used pre-keys and the message it carried are committed together, or not at all.
 *
 * Identities are kept per user, not per device: an account's devices share one identity key.
 */
import {
  isProtocolError,
  KyberPreKeyRecord,
  PreKeyRecord,
  PublicKey,
  SessionRecord,
  SignedPreKeyRecord,
  type Direction,
  type IdentityKeyPair,
  type IdentityKeyStore,
  type KyberPreKeyStore,
  type PreKeyStore,
  type ProtocolAddress,
  type ProtocolStores,
  type SessionStore,
  type SignedPreKeyStore,
} from '@tacit/protocol';
import { bytesEqual, toBase64, unb64 } from './bytes.js';
import { ClientError } from './errors.js';
import type { Core } from './core.js';
import { kyberPreKeyCodec, kyberPreKeyKey, loadKyberPreKey, loadPreKey, loadSignedPreKey, preKeyCodec, preKeyKey, signedPreKeyCodec, signedPreKeyKey } from './prekeys.js';
import { bytesCodec } from './record-codec.js';
import { identityCodec } from './trust.js';

/** Session records in the protocol's own serialization, stored once. */
export const sessionCodec = bytesCodec('session');

/**
 * Parses a stored protocol record. The protocol's own complaint about stored bytes (BAD_STATE,
 * DECODE) means local damage: STATE_CORRUPT naming the record, never an "undecryptable" message.
 */
export function parseStored<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (isProtocolError(e)) throw new ClientError('STATE_CORRUPT', `the local ${what} record is damaged (${e.code})`);
    throw e;
  }
}

export function loadSession(bytes: Uint8Array, contact: string, deviceId: number): SessionRecord {
  return parseStored(`session (${contact}, device ${deviceId})`, () => SessionRecord.deserialize(bytes));
}

class RecordIdentityStore implements IdentityKeyStore {
  readonly #core: Core;
  constructor(core: Core) {
    this.#core = core;
  }
  async getIdentityKeyPair(): Promise<IdentityKeyPair> {
    return this.#core.identity;
  }
  async getLocalRegistrationId(): Promise<number> {
    return this.#core.account.registrationId;
  }
  async saveIdentity(address: ProtocolAddress, key: PublicKey): Promise<boolean> {
    // Our own account's key is pinned (isTrustedIdentity); it is never recorded as a contact's.
    if (address.name === this.#core.account.username) return false;
    const t = this.#core.active();
    const k = this.#core.keys.identity(address.name);
    const old = await t.read(identityCodec, k);
    const next = toBase64(key.serialize());
    t.write(identityCodec, k, { ...old, username: address.name, trusted: next });
    return old?.trusted !== undefined && old.trusted !== next;
  }
  async isTrustedIdentity(address: ProtocolAddress, key: PublicKey, _direction: Direction): Promise<boolean> {
    // Our other devices share our identity key: anything else claiming our name is refused, never trusted on first use.
    if (address.name === this.#core.account.username) return bytesEqual(this.#core.identity.publicKey.serialize(), key.serialize());
    const old = await this.#core.active().read(identityCodec, this.#core.keys.identity(address.name));
    return old?.trusted === undefined || bytesEqual(unb64(old.trusted), key.serialize());
  }
  async getIdentity(address: ProtocolAddress): Promise<PublicKey | null> {
    if (address.name === this.#core.account.username) return this.#core.identity.publicKey;
    const old = await this.#core.active().read(identityCodec, this.#core.keys.identity(address.name));
    return old?.trusted === undefined ? null : PublicKey.deserialize(unb64(old.trusted));
  }
}

class RecordSessionStore implements SessionStore {
  readonly #core: Core;
  constructor(core: Core) {
    this.#core = core;
  }
  async loadSession(address: ProtocolAddress): Promise<SessionRecord | null> {
    const b = await this.#core.active().read(sessionCodec, this.#core.keys.session(address.name, address.deviceId));
    return b === undefined ? null : loadSession(b, address.name, address.deviceId);
  }
  async storeSession(address: ProtocolAddress, record: SessionRecord): Promise<void> {
    this.#core.active().write(sessionCodec, this.#core.keys.session(address.name, address.deviceId), record.serialize());
  }
}

class RecordPreKeyStore implements PreKeyStore {
  readonly #core: Core;
  constructor(core: Core) {
    this.#core = core;
  }
  async loadPreKey(id: number): Promise<PreKeyRecord | null> {
    return (await loadPreKey(this.#core.active(), id)) ?? null;
  }
  async storePreKey(id: number, record: PreKeyRecord): Promise<void> {
    this.#core.active().write(preKeyCodec, preKeyKey(id), { meta: { createdAt: this.#core.now() }, blob: record.serialize() });
  }
  async removePreKey(id: number): Promise<void> {
    this.#core.active().delete(preKeyKey(id));
  }
}

class RecordSignedPreKeyStore implements SignedPreKeyStore {
  readonly #core: Core;
  constructor(core: Core) {
    this.#core = core;
  }
  async loadSignedPreKey(id: number): Promise<SignedPreKeyRecord | null> {
    return (await loadSignedPreKey(this.#core.active(), id)) ?? null;
  }
  async storeSignedPreKey(id: number, record: SignedPreKeyRecord): Promise<void> {
    this.#core.active().write(signedPreKeyCodec, signedPreKeyKey(id), { meta: { createdAt: this.#core.now() }, blob: record.serialize() });
  }
}

class RecordKyberPreKeyStore implements KyberPreKeyStore {
  readonly #core: Core;
  constructor(core: Core) {
    this.#core = core;
  }
  async loadKyberPreKey(id: number): Promise<KyberPreKeyRecord | null> {
    return (await loadKyberPreKey(this.#core.active(), id)) ?? null;
  }
  async storeKyberPreKey(id: number, record: KyberPreKeyRecord, lastResort = false): Promise<void> {
    this.#core.active().write(kyberPreKeyCodec, kyberPreKeyKey(id), { meta: { createdAt: this.#core.now(), lastResort }, blob: record.serialize() });
  }
  async markKyberPreKeyUsed(id: number): Promise<void> {
    const t = this.#core.active();
    const k = await t.read(kyberPreKeyCodec, kyberPreKeyKey(id));
    if (k !== undefined && !k.meta.lastResort) t.delete(kyberPreKeyKey(id));
  }
}

export function recordStores(core: Core): ProtocolStores {
  return {
    identity: new RecordIdentityStore(core),
    session: new RecordSessionStore(core),
    preKey: new RecordPreKeyStore(core),
    signedPreKey: new RecordSignedPreKeyStore(core),
    kyberPreKey: new RecordKyberPreKeyStore(core),
  };
}
