// The Double Ratchet (signal.org/docs/specifications/doubleratchet), as libsignal runs it: a
// receiving chain per remote ratchet key (up to MAX_RECEIVER_CHAINS), skipped keys stored per
// chain, and no use of previous_counter for skipping (old chains stay until evicted).
// These functions mutate the SessionState they are given: callers pass a copy and commit it only
// when the whole operation succeeded.
import { type CryptoBackend } from './backend.ts';
import { KeyPair, type PublicKey } from './curve.ts';
import { fail } from './errors.ts';
import { kdfCkMessageKeys, kdfCkNext, kdfRk, type MessageKeys } from './kdf.ts';
import { type ReceiverChain, type SessionState } from './state.ts';
import {
  encodePreKeySignalMessage,
  encodeSignalMessage,
  MESSAGE_VERSION,
  type SignalMessage,
  verifySignalMessageMac,
} from './wire.ts';

/** libsignal's limit: how far ahead of a chain's position one message may be (DR §3.5 MAX_SKIP). */
export const MAX_FORWARD_JUMPS = 25_000;

export type CiphertextType = 'prekey' | 'whisper';

export interface CiphertextMessage {
  readonly type: CiphertextType;
  readonly body: Uint8Array;
}

/** DR §3.4 RatchetEncrypt. Advances the sending chain of `state`. */
export function ratchetEncrypt(backend: CryptoBackend, state: SessionState, plaintext: Uint8Array): CiphertextMessage {
  const sender = state.sender;
  if (sender === null) return fail('NO_SESSION', 'session has no sending chain');
  const keys = kdfCkMessageKeys(backend, sender.chainKey, sender.index);
  const ciphertext = backend.aes256CbcEncrypt(keys.cipherKey, keys.iv, plaintext);
  const message = encodeSignalMessage(
    backend,
    keys.macKey,
    sender.ratchetKey.publicKey,
    sender.index,
    state.previousCounter,
    ciphertext,
    state.localIdentity,
    state.remoteIdentity,
  );
  state.sender = { ratchetKey: sender.ratchetKey, chainKey: kdfCkNext(backend, sender.chainKey), index: sender.index + 1 };
  const p = state.pending;
  if (p === null) return { type: 'whisper', body: message.serialized };
  const pre = encodePreKeySignalMessage({
    registrationId: state.localRegistrationId,
    preKeyId: p.preKeyId,
    signedPreKeyId: p.signedPreKeyId,
    kyberPreKeyId: p.kyberPreKeyId,
    kyberCiphertext: p.kyberCiphertext,
    baseKey: p.baseKey,
    identityKey: state.localIdentity,
    message,
  });
  return { type: 'prekey', body: pre.serialized };
}

/** DR §3.5: the receiving chain for `theirRatchetKey`, performing a DH ratchet step if it is new. */
function receiverChainFor(backend: CryptoBackend, state: SessionState, theirRatchetKey: PublicKey): ReceiverChain {
  const existing = state.findReceiver(theirRatchetKey);
  if (existing !== undefined) return existing;
  const sender = state.sender;
  if (sender === null) return fail('NO_SESSION', 'session has no sending chain');
  // dhRatchet: receiving chain from our current ratchet key, then a fresh key for sending.
  const recv = kdfRk(backend, state.rootKey, sender.ratchetKey.privateKey.agree(backend, theirRatchetKey));
  const ourNew = KeyPair.generate(backend);
  const send = kdfRk(backend, recv.rootKey, ourNew.privateKey.agree(backend, theirRatchetKey));
  state.rootKey = send.rootKey;
  const chain: ReceiverChain = { ratchetKey: theirRatchetKey, chainKey: recv.chainKey, index: 0, skipped: new Map() };
  state.addReceiver(chain);
  state.previousCounter = Math.max(sender.index - 1, 0);
  state.sender = { ratchetKey: ourNew, chainKey: send.chainKey, index: 0 };
  return chain;
}

/** DR §3.5 trySkippedMessageKeys / skipMessageKeys for one chain. */
function messageKeysFor(backend: CryptoBackend, state: SessionState, chain: ReceiverChain, counter: number): MessageKeys {
  if (chain.index > counter) {
    const keys = chain.skipped.get(counter);
    if (keys === undefined) return fail('DUPLICATE', `counter ${counter} already used (chain at ${chain.index})`);
    chain.skipped.delete(counter);
    return keys;
  }
  const jump = counter - chain.index;
  if (jump > MAX_FORWARD_JUMPS) fail('TOO_FAR_AHEAD', `jump of ${jump} exceeds ${MAX_FORWARD_JUMPS}`);
  let chainKey = chain.chainKey;
  let index = chain.index;
  while (index < counter) {
    state.storeSkipped(chain, kdfCkMessageKeys(backend, chainKey, index));
    chainKey = kdfCkNext(backend, chainKey);
    index++;
  }
  const keys = kdfCkMessageKeys(backend, chainKey, index);
  chain.chainKey = kdfCkNext(backend, chainKey);
  chain.index = index + 1;
  return keys;
}

/** DR §3.5 RatchetDecrypt on a decoded SignalMessage. Mutates `state`; commit only on success. */
export function ratchetDecrypt(backend: CryptoBackend, state: SessionState, message: SignalMessage): Uint8Array {
  if (state.sender === null) fail('NO_SESSION', 'session has no sending chain');
  if (state.version !== MESSAGE_VERSION) fail('BAD_VERSION', `session version ${state.version}`);
  const chain = receiverChainFor(backend, state, message.ratchetKey);
  const keys = messageKeysFor(backend, state, chain, message.counter);
  if (!verifySignalMessageMac(backend, message, keys.macKey, state.remoteIdentity, state.localIdentity)) {
    fail('BAD_MAC', 'message authentication failed');
  }
  const plaintext = backend.aes256CbcDecrypt(keys.cipherKey, keys.iv, message.ciphertext);
  if (plaintext === null) fail('BAD_MAC', 'bad padding');
  state.pending = null;
  return plaintext;
}
