// Store interfaces in the spirit of libsignal's, and in-memory implementations (tests, benches,
// and as the reference for persistent ones). Every method is async so stores may do I/O.
import { type PublicKey } from './curve.ts';
import { fail } from './errors.ts';
import { type IdentityKeyPair, type KyberPreKeyRecord, type PreKeyRecord, type SignedPreKeyRecord } from './identity.ts';
import { type SessionRecord } from './state.ts';

/** Largest device id we accept (libsignal's DeviceId is 1..=127; servers may allow more). */
export const MAX_DEVICE_ID = 0x7fffffff;

/** A (name, device) pair: the unit a session belongs to. */
export class ProtocolAddress {
  readonly name: string;
  readonly deviceId: number;
  constructor(name: string, deviceId: number) {
    if (typeof name !== 'string' || name.length === 0) fail('INVALID_ARGUMENT', 'address name must be a non-empty string');
    if (!Number.isInteger(deviceId) || deviceId < 1 || deviceId > MAX_DEVICE_ID) fail('INVALID_ARGUMENT', 'device id out of range');
    this.name = name;
    this.deviceId = deviceId;
  }
  toString(): string {
    return `${this.name}.${this.deviceId}`;
  }
}

export type Direction = 'sending' | 'receiving';

export interface IdentityKeyStore {
  getIdentityKeyPair(): Promise<IdentityKeyPair>;
  getLocalRegistrationId(): Promise<number>;
  /** Record `key` as the identity of `address`; returns true if it replaced a different key. */
  saveIdentity(address: ProtocolAddress, key: PublicKey): Promise<boolean>;
  /** Trust on first use: an unknown address is trusted; a known one only with the same key. */
  isTrustedIdentity(address: ProtocolAddress, key: PublicKey, direction: Direction): Promise<boolean>;
  getIdentity(address: ProtocolAddress): Promise<PublicKey | null>;
}

export interface SessionStore {
  loadSession(address: ProtocolAddress): Promise<SessionRecord | null>;
  storeSession(address: ProtocolAddress, record: SessionRecord): Promise<void>;
}

export interface PreKeyStore {
  loadPreKey(id: number): Promise<PreKeyRecord | null>;
  storePreKey(id: number, record: PreKeyRecord): Promise<void>;
  removePreKey(id: number): Promise<void>;
}

export interface SignedPreKeyStore {
  loadSignedPreKey(id: number): Promise<SignedPreKeyRecord | null>;
  storeSignedPreKey(id: number, record: SignedPreKeyRecord): Promise<void>;
}

export interface KyberPreKeyStore {
  loadKyberPreKey(id: number): Promise<KyberPreKeyRecord | null>;
  storeKyberPreKey(id: number, record: KyberPreKeyRecord, lastResort?: boolean): Promise<void>;
  /** A one-time Kyber key is deleted after use; a last-resort key stays. */
  markKyberPreKeyUsed(id: number): Promise<void>;
}

export interface ProtocolStores {
  readonly identity: IdentityKeyStore;
  readonly session: SessionStore;
  readonly preKey: PreKeyStore;
  readonly signedPreKey: SignedPreKeyStore;
  readonly kyberPreKey: KyberPreKeyStore;
}

export class InMemoryIdentityKeyStore implements IdentityKeyStore {
  readonly #identity: IdentityKeyPair;
  readonly #registrationId: number;
  readonly #known = new Map<string, PublicKey>();
  constructor(identity: IdentityKeyPair, registrationId: number) {
    this.#identity = identity;
    this.#registrationId = registrationId;
  }
  async getIdentityKeyPair(): Promise<IdentityKeyPair> {
    return this.#identity;
  }
  async getLocalRegistrationId(): Promise<number> {
    return this.#registrationId;
  }
  async saveIdentity(address: ProtocolAddress, key: PublicKey): Promise<boolean> {
    const k = address.toString();
    const old = this.#known.get(k);
    this.#known.set(k, key);
    return old !== undefined && !old.equals(key);
  }
  async isTrustedIdentity(address: ProtocolAddress, key: PublicKey, _direction: Direction): Promise<boolean> {
    const old = this.#known.get(address.toString());
    return old === undefined || old.equals(key);
  }
  async getIdentity(address: ProtocolAddress): Promise<PublicKey | null> {
    return this.#known.get(address.toString()) ?? null;
  }
}

export class InMemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, SessionRecord>();
  async loadSession(address: ProtocolAddress): Promise<SessionRecord | null> {
    return this.#sessions.get(address.toString()) ?? null;
  }
  async storeSession(address: ProtocolAddress, record: SessionRecord): Promise<void> {
    this.#sessions.set(address.toString(), record);
  }
}

export class InMemoryPreKeyStore implements PreKeyStore {
  readonly #keys = new Map<number, PreKeyRecord>();
  async loadPreKey(id: number): Promise<PreKeyRecord | null> {
    return this.#keys.get(id) ?? null;
  }
  async storePreKey(id: number, record: PreKeyRecord): Promise<void> {
    this.#keys.set(id, record);
  }
  async removePreKey(id: number): Promise<void> {
    this.#keys.delete(id);
  }
  get size(): number {
    return this.#keys.size;
  }
}

export class InMemorySignedPreKeyStore implements SignedPreKeyStore {
  readonly #keys = new Map<number, SignedPreKeyRecord>();
  async loadSignedPreKey(id: number): Promise<SignedPreKeyRecord | null> {
    return this.#keys.get(id) ?? null;
  }
  async storeSignedPreKey(id: number, record: SignedPreKeyRecord): Promise<void> {
    this.#keys.set(id, record);
  }
}

export class InMemoryKyberPreKeyStore implements KyberPreKeyStore {
  readonly #keys = new Map<number, { record: KyberPreKeyRecord; lastResort: boolean }>();
  async loadKyberPreKey(id: number): Promise<KyberPreKeyRecord | null> {
    return this.#keys.get(id)?.record ?? null;
  }
  async storeKyberPreKey(id: number, record: KyberPreKeyRecord, lastResort = false): Promise<void> {
    this.#keys.set(id, { record, lastResort });
  }
  async markKyberPreKeyUsed(id: number): Promise<void> {
    const e = this.#keys.get(id);
    if (e !== undefined && !e.lastResort) this.#keys.delete(id);
  }
  get size(): number {
    return this.#keys.size;
  }
}

/** Fresh in-memory stores for one identity. */
export function inMemoryStores(identity: IdentityKeyPair, registrationId: number): ProtocolStores & {
  preKey: InMemoryPreKeyStore;
  kyberPreKey: InMemoryKyberPreKeyStore;
} {
  return {
    identity: new InMemoryIdentityKeyStore(identity, registrationId),
    session: new InMemorySessionStore(),
    preKey: new InMemoryPreKeyStore(),
    signedPreKey: new InMemorySignedPreKeyStore(),
    kyberPreKey: new InMemoryKyberPreKeyStore(),
  };
}
