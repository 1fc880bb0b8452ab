// Test helper: a tacit party with in-memory stores on a chosen backend.
import {
  type CiphertextMessage,
  type CryptoBackend,
  generateKyberPreKey,
  generatePreKey,
  generateRegistrationId,
  generateSignedPreKey,
  IdentityKeyPair,
  inMemoryStores,
  InMemorySignedPreKeyStore,
  type PreKeyBundle,
  type PublicKey,
  ProtocolAddress,
  SessionManager,
  type SignedPreKeyRecord,
} from '../../src/index.ts';

/** Signed pre-keys that a test can delete (a rotated key's grace period is over). */
class ForgetfulSignedPreKeyStore extends InMemorySignedPreKeyStore {
  readonly forgotten = new Set<number>();
  override async loadSignedPreKey(id: number): Promise<SignedPreKeyRecord | null> {
    return this.forgotten.has(id) ? null : super.loadSignedPreKey(id);
  }
}

/** Ids of the last-resort signed pre-key and Kyber key, kept apart from the per-bundle ids. */
export const LAST_RESORT_ID = 100_000;

export class TacitParty {
  readonly name: string;
  readonly deviceId = 1;
  readonly backend: CryptoBackend;
  readonly identity: IdentityKeyPair;
  readonly registrationId: number;
  readonly stores: ReturnType<typeof inMemoryStores> & { signedPreKey: ForgetfulSignedPreKeyStore };
  readonly manager: SessionManager;
  now = 1_700_000_000_000;
  #nextId = 1;
  #lastResort: PreKeyBundle | undefined;

  /** `identity`: another party's key pair, for a party that is another device of the same account. */
  constructor(name: string, backend: CryptoBackend, identity?: IdentityKeyPair) {
    this.name = name;
    this.backend = backend;
    this.identity = identity ?? IdentityKeyPair.generate(backend);
    this.registrationId = generateRegistrationId(backend);
    this.stores = { ...inMemoryStores(this.identity, this.registrationId), signedPreKey: new ForgetfulSignedPreKeyStore() };
    this.manager = new SessionManager(backend, this.stores, { now: () => this.now });
  }

  get identityKey() {
    return this.identity.publicKey;
  }

  async bundle(withOneTime: boolean): Promise<PreKeyBundle> {
    const id = this.#nextId++;
    const base = await this.#signedKeys(id, false);
    const pk = withOneTime ? generatePreKey(this.backend, id) : undefined;
    if (pk !== undefined) await this.stores.preKey.storePreKey(id, pk);
    return { ...base, preKeyId: pk?.id, preKey: pk?.publicKey };
  }

  /** A signed pre-key and a Kyber pre-key under `id`, stored, as a bundle without a one-time key. */
  async #signedKeys(id: number, lastResort: boolean): Promise<PreKeyBundle> {
    const spk = generateSignedPreKey(this.backend, this.identity, id, this.now);
    await this.stores.signedPreKey.storeSignedPreKey(id, spk);
    const kpk = generateKyberPreKey(this.backend, this.identity, id, this.now);
    await this.stores.kyberPreKey.storeKyberPreKey(id, kpk, lastResort);
    return {
      registrationId: this.registrationId,
      deviceId: this.deviceId,
      identityKey: this.identity.publicKey,
      signedPreKeyId: id,
      signedPreKey: spk.publicKey,
      signedPreKeySignature: spk.signature,
      kyberPreKeyId: id,
      kyberPreKey: kpk.publicKey,
      kyberPreKeySignature: kpk.signature,
    };
  }

  /** The bundle a server hands out once the one-time keys ran out: the same last-resort keys every time. */
  async lastResortBundle(): Promise<PreKeyBundle> {
    this.#lastResort ??= await this.#signedKeys(LAST_RESORT_ID, true);
    return this.#lastResort;
  }

  /** Delete a signed pre-key (rotated out and past its grace period). */
  async forgetSignedPreKey(id: number): Promise<void> {
    this.stores.signedPreKey.forgotten.add(id);
  }

  /** The user accepted `key` as `peer`'s identity (after comparing safety numbers). */
  async trust(peer: string, key: PublicKey): Promise<void> {
    await this.stores.identity.saveIdentity(this.address(peer), key);
  }

  /** Archive the current session with `peer`, so the next send needs a new bundle. */
  archive(peer: string): Promise<void> {
    return this.manager.archiveCurrentSession(this.address(peer));
  }

  /** Move this party's clock forward. */
  advance(ms: number): void {
    this.now += ms;
  }

  hasSession(peer: string): Promise<boolean> {
    return this.manager.hasSession(this.address(peer));
  }

  address(peer: string): ProtocolAddress {
    return new ProtocolAddress(peer, 1);
  }

  processBundle(peer: string, b: PreKeyBundle): Promise<void> {
    return this.manager.processPreKeyBundle(this.address(peer), b);
  }

  encrypt(peer: string, plaintext: Uint8Array): Promise<CiphertextMessage> {
    return this.manager.encrypt(this.address(peer), plaintext);
  }

  async decrypt(peer: string, m: CiphertextMessage): Promise<Uint8Array> {
    return (await this.manager.decrypt(this.address(peer), m)).plaintext;
  }
}

/** Either kind of party, as the interop tests drive them. */
export interface Party {
  readonly name: string;
  readonly identityKey: PublicKey;
  bundle(withOneTime: boolean): Promise<PreKeyBundle>;
  lastResortBundle(): Promise<PreKeyBundle>;
  forgetSignedPreKey(id: number): Promise<void>;
  trust(peer: string, key: PublicKey): Promise<void>;
  archive(peer: string): Promise<void>;
  hasSession(peer: string): Promise<boolean>;
  advance(ms: number): void;
  processBundle(peer: string, b: PreKeyBundle): Promise<void>;
  encrypt(peer: string, plaintext: Uint8Array): Promise<CiphertextMessage>;
  decrypt(peer: string, m: CiphertextMessage): Promise<Uint8Array>;
}
