// Test-only: group (sender key) parties, one on tacit's GroupCipher and one on Signal's own
// libsignal-client (0.79.0, or 0.103.0 through the aliased devDependency), exchanging the same
// bytes. Outcomes are reported in tacit's error vocabulary so the two can be compared.
import * as ls079 from '@signalapp/libsignal-client';
import * as ls0103 from 'libsignal-client-0103';
import {
  type CryptoBackend,
  DistributionId,
  GroupCipher,
  InMemorySenderKeyStore,
  isProtocolError,
  ProtocolAddress,
  SenderKeyDistributionMessage,
  toHex,
} from '../../src/index.ts';

/** What happened to one delivery, comparable across implementations. */
export type Outcome = { ok: Uint8Array } | { error: string };

export interface GroupParty {
  readonly label: string;
  /** Our own distribution message for `distributionId` (creating our sender key on first use). */
  createDistribution(name: string, distributionId: string): Promise<Uint8Array>;
  processDistribution(sender: string, message: Uint8Array): Promise<void>;
  encrypt(name: string, distributionId: string, plaintext: Uint8Array): Promise<Uint8Array>;
  decrypt(sender: string, body: Uint8Array): Promise<Outcome>;
  /** The stored record for (sender, distributionId), serialized, or 'none'. */
  snapshot(sender: string, distributionId: string): Promise<string>;
}

export class TacitGroupParty implements GroupParty {
  readonly label: string;
  readonly store = new InMemorySenderKeyStore();
  readonly cipher: GroupCipher;
  constructor(backend: CryptoBackend) {
    this.label = `tacit/${backend.name}`;
    this.cipher = new GroupCipher(backend, this.store);
  }
  async createDistribution(name: string, distributionId: string): Promise<Uint8Array> {
    return (await this.cipher.createSenderKeyDistributionMessage(new ProtocolAddress(name, 1), DistributionId.parse(distributionId))).serialize();
  }
  processDistribution(sender: string, message: Uint8Array): Promise<void> {
    return this.cipher.processSenderKeyDistributionMessage(new ProtocolAddress(sender, 1), SenderKeyDistributionMessage.deserialize(message));
  }
  encrypt(name: string, distributionId: string, plaintext: Uint8Array): Promise<Uint8Array> {
    return this.cipher.groupEncrypt(new ProtocolAddress(name, 1), DistributionId.parse(distributionId), plaintext);
  }
  async decrypt(sender: string, body: Uint8Array): Promise<Outcome> {
    try {
      return { ok: (await this.cipher.groupDecrypt(new ProtocolAddress(sender, 1), body)).plaintext };
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      return { error: e.code };
    }
  }
  async snapshot(sender: string, distributionId: string): Promise<string> {
    const r = await this.store.loadSenderKey(new ProtocolAddress(sender, 1), DistributionId.parse(distributionId));
    return r === null ? 'none' : toHex(r.serialize());
  }
}

/**
 * The calls used here have the same signatures in 0.79 and 0.103, so both are driven through 0.79's
 * types (0.103's own declarations differ only in brand types and `Uint8Array<ArrayBuffer>`).
 */
type Libsignal = typeof ls079;

/** libsignal's error for a group operation, in tacit's vocabulary (test-only mapping by message). */
export function libsignalOutcome(e: unknown): string {
  if (!(e instanceof Error)) throw e;
  const m = e.message;
  if ((e as { code?: number }).code === 1) return 'DUPLICATE';
  if (m.includes('missing sender key state')) return 'NO_SENDER_KEY';
  // 0.79's JS binding cannot stringify a distribution id that is not an RFC 9562 UUID (a flipped
  // version or variant bit), so its store lookup fails; 0.103 and libsignal's Rust core accept any
  // 16 bytes and find no state for it, as tacit does.
  if (m.includes("method call 'getSenderKey'") && m.includes('Stringified UUID is invalid')) return 'NO_SENDER_KEY';
  if (m.includes('invalid signature')) return 'BAD_SIGNATURE';
  if (m.includes('too far into the future')) return 'TOO_FAR_AHEAD';
  if (m.includes('decryption failed')) return 'BAD_MAC';
  if (m.includes('version')) return 'BAD_VERSION';
  if (m.includes('too short') || m.includes('protobuf') || m.includes('invalid') || m.includes('bad key')) return 'DECODE';
  return `libsignal: ${m}`;
}

export class LibsignalGroupParty implements GroupParty {
  readonly label: string;
  readonly #ls: Libsignal;
  readonly records = new Map<string, Uint8Array>();
  readonly store;
  constructor(ls: Libsignal, label: string) {
    this.#ls = ls;
    this.label = label;
    const records = this.records;
    // Each version's store must extend its own SenderKeyStore class.
    this.store = new (class extends ls.SenderKeyStore {
      async saveSenderKey(sender: ls079.ProtocolAddress, distributionId: string, record: ls079.SenderKeyRecord): Promise<void> {
        records.set(`${sender.toString()}/${distributionId}`, record.serialize());
      }
      async getSenderKey(sender: ls079.ProtocolAddress, distributionId: string): Promise<ls079.SenderKeyRecord | null> {
        const r = records.get(`${sender.toString()}/${distributionId}`);
        return r === undefined ? null : ls.SenderKeyRecord.deserialize(r);
      }
    })();
  }
  #address(name: string): ls079.ProtocolAddress {
    return this.#ls.ProtocolAddress.new(name, 1);
  }
  async createDistribution(name: string, distributionId: string): Promise<Uint8Array> {
    return (await this.#ls.SenderKeyDistributionMessage.create(this.#address(name), distributionId, this.store)).serialize();
  }
  processDistribution(sender: string, message: Uint8Array): Promise<void> {
    return this.#ls.processSenderKeyDistributionMessage(this.#address(sender), this.#ls.SenderKeyDistributionMessage.deserialize(message), this.store);
  }
  async encrypt(name: string, distributionId: string, plaintext: Uint8Array): Promise<Uint8Array> {
    return (await this.#ls.groupEncrypt(this.#address(name), distributionId, this.store, plaintext)).serialize();
  }
  async decrypt(sender: string, body: Uint8Array): Promise<Outcome> {
    try {
      return { ok: await this.#ls.groupDecrypt(this.#address(sender), this.store, body) };
    } catch (e) {
      return { error: libsignalOutcome(e) };
    }
  }
  async snapshot(sender: string, distributionId: string): Promise<string> {
    const r = this.records.get(`${this.#address(sender).toString()}/${distributionId}`);
    return r === undefined ? 'none' : toHex(r);
  }
}

/** Both libsignal versions the group tests run against. */
export const LIBSIGNALS: ReadonlyArray<{ version: string; ls: Libsignal }> = [
  { version: '0.79.0', ls: ls079 },
  { version: '0.103.0', ls: ls0103 as unknown as Libsignal },
];

