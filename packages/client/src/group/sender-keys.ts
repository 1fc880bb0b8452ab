/**
 * The protocol's SenderKeyStore over the client's records (`sk/`), in the transaction of the state
 * change that is running, so a sender key moves with the message it read or wrote, or not at all.
 */
import { SenderKeyRecord, type DistributionId, type ProtocolAddress, type SenderKeyStore } from '@tacit/protocol';
import type { Core } from '../core.js';
import { parseStored } from '../protocol-stores.js';
import { bytesCodec, isObj, isStr, jsonCodec } from '../record-codec.js';
import { isGroupId } from './state.js';

const senderKeyCodec = bytesCodec('sender key');

/** Which group a received sender key was handed over for. */
export const senderKeyGroupCodec = jsonCodec<{ group: string }>('sender key owner', (v) => (isObj(v) && isGroupId(v['group']) ? { group: v['group'] } : undefined));

/**
 * Sender keys kept per (group, member device): its current one and a few before it (a member
 * starts a new one whenever someone is removed, and messages under the last one may still be
 * on their way). Past it the oldest goes: a member handing over key after key cannot make this
 * device keep them all.
 */
export const MAX_SENDER_KEYS_PER_DEVICE = 8;

/** The names (senderKeyName) of the sender keys received from one member device for one group, oldest first. */
export const senderKeyListCodec = jsonCodec<{ names: string[] }>('received sender keys', (v) => {
  const names = isObj(v) ? v['names'] : undefined;
  return Array.isArray(names) && names.length <= MAX_SENDER_KEYS_PER_DEVICE && names.every((n) => isStr(n, 200)) ? { names: names as string[] } : undefined;
});

/** The name libsignal files a sender key under: address and distribution id. */
export function senderKeyName(sender: ProtocolAddress, distributionId: DistributionId): string {
  return `${sender.toString()}/${distributionId.toString()}`;
}

export class RecordSenderKeyStore implements SenderKeyStore {
  readonly #core: Core;
  constructor(core: Core) {
    this.#core = core;
  }
  async loadSenderKey(sender: ProtocolAddress, distributionId: DistributionId): Promise<SenderKeyRecord | null> {
    const b = await this.#core.active().read(senderKeyCodec, this.#core.keys.senderKey(senderKeyName(sender, distributionId)));
    return b === undefined ? null : parseStored('sender key', () => SenderKeyRecord.deserialize(b));
  }
  async storeSenderKey(sender: ProtocolAddress, distributionId: DistributionId, record: SenderKeyRecord): Promise<void> {
    this.#core.active().write(senderKeyCodec, this.#core.keys.senderKey(senderKeyName(sender, distributionId)), record.serialize());
  }
}
