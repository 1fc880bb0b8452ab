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
  type PreKeyBundle,
  ProtocolAddress,
  SessionManager,
} from '../../src/index.ts';

export class TacitParty {
  readonly name: string;
  readonly deviceId = 1;
  readonly backend: CryptoBackend;
  readonly identity: IdentityKeyPair;
  readonly registrationId: number;
  readonly stores: ReturnType<typeof inMemoryStores>;
  readonly manager: SessionManager;
  now = 1_700_000_000_000;
  #nextId = 1;

  constructor(name: string, backend: CryptoBackend) {
    this.name = name;
    this.backend = backend;
    this.identity = IdentityKeyPair.generate(backend);
    this.registrationId = generateRegistrationId(backend);
    this.stores = inMemoryStores(this.identity, this.registrationId);
    this.manager = new SessionManager(backend, this.stores, { now: () => this.now });
  }

  get identityKey() {
    return this.identity.publicKey;
  }

  async bundle(withOneTime: boolean): Promise<PreKeyBundle> {
    const id = this.#nextId++;
    const spk = generateSignedPreKey(this.backend, this.identity, id, this.now);
    await this.stores.signedPreKey.storeSignedPreKey(id, spk);
    const kpk = generateKyberPreKey(this.backend, this.identity, id, this.now);
    await this.stores.kyberPreKey.storeKyberPreKey(id, kpk);
    const pk = withOneTime ? generatePreKey(this.backend, id) : undefined;
    if (pk !== undefined) await this.stores.preKey.storePreKey(id, pk);
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
      preKeyId: pk?.id,
      preKey: pk?.publicKey,
    };
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
  bundle(withOneTime: boolean): Promise<PreKeyBundle>;
  processBundle(peer: string, b: PreKeyBundle): Promise<void>;
  encrypt(peer: string, plaintext: Uint8Array): Promise<CiphertextMessage>;
  decrypt(peer: string, m: CiphertextMessage): Promise<Uint8Array>;
}
