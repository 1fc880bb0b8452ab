// Test-only: a party running Signal's own libsignal-client 0.79.0 (the interop oracle), with
// in-memory stores, exchanging the same bytes as a tacit party. AGPL; never a runtime dependency.
import * as ls from '@signalapp/libsignal-client';
import {
  KyberPublicKey,
  type PreKeyBundle,
  PublicKey,
  type CiphertextMessage,
} from '../../src/index.ts';
import { LAST_RESORT_ID } from './tacit.ts';

const CIPHERTEXT_WHISPER = 2;
const CIPHERTEXT_PREKEY = 3;

class SessionStore extends ls.SessionStore {
  readonly map = new Map<string, Uint8Array>();
  async saveSession(name: ls.ProtocolAddress, record: ls.SessionRecord): Promise<void> {
    this.map.set(name.toString(), record.serialize());
  }
  async getSession(name: ls.ProtocolAddress): Promise<ls.SessionRecord | null> {
    const r = this.map.get(name.toString());
    return r === undefined ? null : ls.SessionRecord.deserialize(r);
  }
  async getExistingSessions(addresses: ls.ProtocolAddress[]): Promise<ls.SessionRecord[]> {
    return addresses.map((a) => {
      const r = this.map.get(a.toString());
      if (r === undefined) throw new Error('no session');
      return ls.SessionRecord.deserialize(r);
    });
  }
}

function same(a: ls.PublicKey, b: ls.PublicKey): boolean {
  return Buffer.from(a.serialize()).equals(b.serialize());
}

class IdentityStore extends ls.IdentityKeyStore {
  readonly known = new Map<string, ls.PublicKey>();
  constructor(
    readonly key: ls.PrivateKey,
    readonly regId: number,
  ) {
    super();
  }
  async getIdentityKey(): Promise<ls.PrivateKey> {
    return this.key;
  }
  async getLocalRegistrationId(): Promise<number> {
    return this.regId;
  }
  async saveIdentity(name: ls.ProtocolAddress, key: ls.PublicKey): Promise<ls.IdentityChange> {
    const old = this.known.get(name.toString());
    this.known.set(name.toString(), key);
    return old !== undefined && !same(old, key) ? ls.IdentityChange.ReplacedExisting : ls.IdentityChange.NewOrUnchanged;
  }
  async isTrustedIdentity(name: ls.ProtocolAddress, key: ls.PublicKey): Promise<boolean> {
    const old = this.known.get(name.toString());
    return old === undefined || same(old, key);
  }
  async getIdentity(name: ls.ProtocolAddress): Promise<ls.PublicKey | null> {
    return this.known.get(name.toString()) ?? null;
  }
}

class PreKeyStore extends ls.PreKeyStore {
  readonly map = new Map<number, Uint8Array>();
  async savePreKey(id: number, record: ls.PreKeyRecord): Promise<void> {
    this.map.set(id, record.serialize());
  }
  async getPreKey(id: number): Promise<ls.PreKeyRecord> {
    const r = this.map.get(id);
    if (r === undefined) throw new Error('no prekey');
    return ls.PreKeyRecord.deserialize(r);
  }
  async removePreKey(id: number): Promise<void> {
    this.map.delete(id);
  }
}

class SignedPreKeyStore extends ls.SignedPreKeyStore {
  readonly map = new Map<number, Uint8Array>();
  removeSignedPreKey(id: number): void {
    this.map.delete(id);
  }
  async saveSignedPreKey(id: number, record: ls.SignedPreKeyRecord): Promise<void> {
    this.map.set(id, record.serialize());
  }
  async getSignedPreKey(id: number): Promise<ls.SignedPreKeyRecord> {
    const r = this.map.get(id);
    if (r === undefined) throw new Error('no signed prekey');
    return ls.SignedPreKeyRecord.deserialize(r);
  }
}

class KyberPreKeyStore extends ls.KyberPreKeyStore {
  readonly map = new Map<number, Uint8Array>();
  readonly used = new Set<number>();
  /** Ids of last-resort keys: kept after use, where a one-time Kyber key is deleted (as Signal's apps do). */
  readonly lastResort = new Set<number>();
  async saveKyberPreKey(id: number, record: ls.KyberPreKeyRecord): Promise<void> {
    this.map.set(id, record.serialize());
  }
  async getKyberPreKey(id: number): Promise<ls.KyberPreKeyRecord> {
    const r = this.map.get(id);
    if (r === undefined) throw new Error('no kyber prekey');
    return ls.KyberPreKeyRecord.deserialize(r);
  }
  async markKyberPreKeyUsed(id: number): Promise<void> {
    this.used.add(id);
    if (!this.lastResort.has(id)) this.map.delete(id);
  }
}

export class LibsignalParty {
  readonly name: string;
  readonly deviceId = 1;
  readonly identity: ls.IdentityKeyPair;
  readonly registrationId: number;
  readonly sessions = new SessionStore();
  readonly identities: IdentityStore;
  readonly preKeys = new PreKeyStore();
  readonly signedPreKeys = new SignedPreKeyStore();
  readonly kyberPreKeys = new KyberPreKeyStore();
  /** This party's clock: whole seconds, as libsignal stores a session's start time. */
  now = new Date(1_700_000_000_000);
  #nextId = 1;
  #lastResort: PreKeyBundle | undefined;

  /** `identity`: another party's key pair, for a party that is another device of the same account. */
  constructor(name: string, identity?: ls.IdentityKeyPair) {
    this.name = name;
    this.identity = identity ?? ls.IdentityKeyPair.generate();
    this.registrationId = 1 + Math.floor(Math.random() * 16000);
    this.identities = new IdentityStore(this.identity.privateKey, this.registrationId);
  }

  get identityKey(): PublicKey {
    return PublicKey.deserialize(this.identity.publicKey.serialize());
  }

  address(name: string, deviceId = 1): ls.ProtocolAddress {
    return ls.ProtocolAddress.new(name, deviceId);
  }

  /** Generate keys and return a bundle in tacit's types (what a server would hand out). */
  async bundle(withOneTime: boolean): Promise<PreKeyBundle> {
    const id = this.#nextId++;
    const base = await this.#signedKeys(id);
    if (!withOneTime) return base;
    const pk = ls.PrivateKey.generate();
    await this.preKeys.savePreKey(id, ls.PreKeyRecord.new(id, pk.getPublicKey(), pk));
    return { ...base, preKeyId: id, preKey: PublicKey.deserialize(pk.getPublicKey().serialize()) };
  }

  /** A signed pre-key and a Kyber pre-key under `id`, stored, as a bundle without a one-time key. */
  async #signedKeys(id: number): Promise<PreKeyBundle> {
    const spk = ls.PrivateKey.generate();
    const spkSig = this.identity.privateKey.sign(spk.getPublicKey().serialize());
    await this.signedPreKeys.saveSignedPreKey(id, ls.SignedPreKeyRecord.new(id, Date.now(), spk.getPublicKey(), spk, spkSig));
    const kyber = ls.KEMKeyPair.generate();
    const kyberSig = this.identity.privateKey.sign(kyber.getPublicKey().serialize());
    await this.kyberPreKeys.saveKyberPreKey(id, ls.KyberPreKeyRecord.new(id, Date.now(), kyber, kyberSig));
    return {
      registrationId: this.registrationId,
      deviceId: this.deviceId,
      identityKey: this.identityKey,
      signedPreKeyId: id,
      signedPreKey: PublicKey.deserialize(spk.getPublicKey().serialize()),
      signedPreKeySignature: spkSig,
      kyberPreKeyId: id,
      kyberPreKey: KyberPublicKey.deserialize(kyber.getPublicKey().serialize()),
      kyberPreKeySignature: kyberSig,
    };
  }

  /** The bundle a server hands out once the one-time keys ran out: the same last-resort keys every time. */
  async lastResortBundle(): Promise<PreKeyBundle> {
    if (this.#lastResort === undefined) {
      this.#lastResort = await this.#signedKeys(LAST_RESORT_ID);
      this.kyberPreKeys.lastResort.add(LAST_RESORT_ID);
    }
    return this.#lastResort;
  }

  /** Delete a signed pre-key (rotated out and past its grace period). */
  async forgetSignedPreKey(id: number): Promise<void> {
    this.signedPreKeys.removeSignedPreKey(id);
  }

  /** The user accepted `key` as `peer`'s identity (after comparing safety numbers). */
  async trust(peer: string, key: PublicKey): Promise<void> {
    await this.identities.saveIdentity(this.address(peer), ls.PublicKey.deserialize(key.serialize()));
  }

  /** Archive the current session with `peer`, so the next send needs a new bundle. */
  async archive(peer: string): Promise<void> {
    const record = await this.sessions.getSession(this.address(peer));
    if (record === null) return;
    record.archiveCurrentState();
    await this.sessions.saveSession(this.address(peer), record);
  }

  async hasSession(peer: string): Promise<boolean> {
    const record = await this.sessions.getSession(this.address(peer));
    return record !== null && record.hasCurrentState(this.now);
  }

  /** Move this party's clock forward. */
  advance(ms: number): void {
    this.now = new Date(this.now.getTime() + ms);
  }

  async processBundle(peer: string, b: PreKeyBundle): Promise<void> {
    const bundle = ls.PreKeyBundle.new(
      b.registrationId,
      b.deviceId,
      b.preKeyId ?? null,
      b.preKey !== undefined ? ls.PublicKey.deserialize(b.preKey.serialize()) : null,
      b.signedPreKeyId,
      ls.PublicKey.deserialize(b.signedPreKey.serialize()),
      b.signedPreKeySignature,
      ls.PublicKey.deserialize(b.identityKey.serialize()),
      b.kyberPreKeyId,
      ls.KEMPublicKey.deserialize(b.kyberPreKey.serialize()),
      b.kyberPreKeySignature,
    );
    await ls.processPreKeyBundle(bundle, this.address(peer, b.deviceId), this.sessions, this.identities, ls.UsePQRatchet.No, this.now);
  }

  async encrypt(peer: string, plaintext: Uint8Array): Promise<CiphertextMessage> {
    const m = await ls.signalEncrypt(plaintext, this.address(peer), this.sessions, this.identities, this.now);
    const t = m.type();
    if (t !== CIPHERTEXT_WHISPER && t !== CIPHERTEXT_PREKEY) throw new Error(`unexpected type ${t}`);
    return { type: t === CIPHERTEXT_PREKEY ? 'prekey' : 'whisper', body: m.serialize() };
  }

  async decrypt(peer: string, m: CiphertextMessage): Promise<Uint8Array> {
    const addr = this.address(peer);
    if (m.type === 'prekey') {
      return ls.signalDecryptPreKey(
        ls.PreKeySignalMessage.deserialize(m.body),
        addr,
        this.sessions,
        this.identities,
        this.preKeys,
        this.signedPreKeys,
        this.kyberPreKeys,
        ls.UsePQRatchet.No,
      );
    }
    return ls.signalDecrypt(ls.SignalMessage.deserialize(m.body), addr, this.sessions, this.identities);
  }
}

export { ls };
