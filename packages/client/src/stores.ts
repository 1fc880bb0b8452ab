/**
 * The protocol's store interfaces over the client's in-memory state document. Stores only mutate
 * memory; the client takes a snapshot at each commit point and the vault writes it atomically, so
 * a session advance, the used pre-keys and the message it carried reach the disk together.
 *
 * Identities are kept per user, not per device: an account's devices share one identity key.
 */
import {
  IdentityKeyPair,
  KyberPreKeyRecord,
  PreKeyRecord,
  PublicKey,
  SessionRecord,
  SignedPreKeyRecord,
  type Direction,
  type IdentityKeyStore,
  type KyberPreKeyStore,
  type PreKeyStore,
  type ProtocolAddress,
  type ProtocolStores,
  type SessionStore,
  type SignedPreKeyStore,
} from '@tacit/protocol';
import { bytesEqual } from './bytes.js';
import { b64, unb64, type StateData } from './state.js';

export function sessionKey(name: string, deviceId: number): string {
  return `${name}.${deviceId}`;
}

class StateIdentityStore implements IdentityKeyStore {
  readonly #state: () => StateData;
  #identity: IdentityKeyPair | undefined;
  constructor(state: () => StateData) {
    this.#state = state;
  }
  async getIdentityKeyPair(): Promise<IdentityKeyPair> {
    this.#identity ??= IdentityKeyPair.deserialize(unb64(this.#state().account.identityKeyPair));
    return this.#identity;
  }
  async getLocalRegistrationId(): Promise<number> {
    return this.#state().account.registrationId;
  }
  async saveIdentity(address: ProtocolAddress, key: PublicKey): Promise<boolean> {
    const s = this.#state();
    const old = s.identities[address.name];
    const next = b64(key.serialize());
    s.identities[address.name] = next;
    return old !== undefined && old !== next;
  }
  async isTrustedIdentity(address: ProtocolAddress, key: PublicKey, _direction: Direction): Promise<boolean> {
    const old = this.#state().identities[address.name];
    return old === undefined || bytesEqual(unb64(old), key.serialize());
  }
  async getIdentity(address: ProtocolAddress): Promise<PublicKey | null> {
    const k = this.#state().identities[address.name];
    return k === undefined ? null : PublicKey.deserialize(unb64(k));
  }
}

class StateSessionStore implements SessionStore {
  readonly #state: () => StateData;
  constructor(state: () => StateData) {
    this.#state = state;
  }
  async loadSession(address: ProtocolAddress): Promise<SessionRecord | null> {
    const s = this.#state().sessions[sessionKey(address.name, address.deviceId)];
    return s === undefined ? null : SessionRecord.deserialize(unb64(s));
  }
  async storeSession(address: ProtocolAddress, record: SessionRecord): Promise<void> {
    this.#state().sessions[sessionKey(address.name, address.deviceId)] = b64(record.serialize());
  }
}

class StatePreKeyStore implements PreKeyStore {
  readonly #state: () => StateData;
  readonly #now: () => number;
  constructor(state: () => StateData, now: () => number) {
    this.#state = state;
    this.#now = now;
  }
  async loadPreKey(id: number): Promise<PreKeyRecord | null> {
    const k = this.#state().preKeys[String(id)];
    return k === undefined ? null : PreKeyRecord.deserialize(unb64(k.record));
  }
  async storePreKey(id: number, record: PreKeyRecord): Promise<void> {
    this.#state().preKeys[String(id)] = { record: b64(record.serialize()), createdAt: this.#now() };
  }
  async removePreKey(id: number): Promise<void> {
    delete this.#state().preKeys[String(id)];
  }
}

class StateSignedPreKeyStore implements SignedPreKeyStore {
  readonly #state: () => StateData;
  readonly #now: () => number;
  constructor(state: () => StateData, now: () => number) {
    this.#state = state;
    this.#now = now;
  }
  async loadSignedPreKey(id: number): Promise<SignedPreKeyRecord | null> {
    const k = this.#state().signedPreKeys[String(id)];
    return k === undefined ? null : SignedPreKeyRecord.deserialize(unb64(k.record));
  }
  async storeSignedPreKey(id: number, record: SignedPreKeyRecord): Promise<void> {
    this.#state().signedPreKeys[String(id)] = { record: b64(record.serialize()), createdAt: this.#now() };
  }
}

class StateKyberPreKeyStore implements KyberPreKeyStore {
  readonly #state: () => StateData;
  readonly #now: () => number;
  constructor(state: () => StateData, now: () => number) {
    this.#state = state;
    this.#now = now;
  }
  async loadKyberPreKey(id: number): Promise<KyberPreKeyRecord | null> {
    const k = this.#state().kyberPreKeys[String(id)];
    return k === undefined ? null : KyberPreKeyRecord.deserialize(unb64(k.record));
  }
  async storeKyberPreKey(id: number, record: KyberPreKeyRecord, lastResort = false): Promise<void> {
    this.#state().kyberPreKeys[String(id)] = { record: b64(record.serialize()), createdAt: this.#now(), lastResort };
  }
  async markKyberPreKeyUsed(id: number): Promise<void> {
    const s = this.#state();
    const k = s.kyberPreKeys[String(id)];
    if (k !== undefined && !k.lastResort) delete s.kyberPreKeys[String(id)];
  }
}

export function stateStores(state: () => StateData, now: () => number): ProtocolStores {
  return {
    identity: new StateIdentityStore(state),
    session: new StateSessionStore(state),
    preKey: new StatePreKeyStore(state, now),
    signedPreKey: new StateSignedPreKeyStore(state, now),
    kyberPreKey: new StateKyberPreKeyStore(state, now),
  };
}
