/**
 * The protocol's SenderKeyStore over the client's records (`sk/`), in the transaction of the state
 * change that is running, so a sender key moves with the message it read or wrote, or not at all.
 */
import { SenderKeyRecord, type DistributionId, type ProtocolAddress, type SenderKeyStore } from '@tacit/protocol';
import type { Core } from '../core.js';
import { parseStored } from '../protocol-stores.js';
import { bytesCodec, isObj, jsonCodec } from '../record-codec.js';
import { isGroupId } from './state.js';

const senderKeyCodec = bytesCodec('sender key');

/** Which group a received sender key was handed over for. */
export const senderKeyGroupCodec = jsonCodec<{ group: string }>('sender key owner', (v) => (isObj(v) && isGroupId(v['group']) ? { group: v['group'] } : undefined));

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
