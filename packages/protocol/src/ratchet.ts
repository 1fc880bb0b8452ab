// The Double Ratchet (signal.org/docs/specifications/doubleratchet), as libsignal runs it: a
// receiving chain per remote ratchet key (up to MAX_RECEIVER_CHAINS), skipped keys stored per
// chain, and no use of previous_counter for skipping (old chains stay until evicted).
// ratchetEncrypt mutates the SessionState it is given; decryption is planned on a state without
// touching it and applied only once the MAC and padding checked out.
import { type CryptoBackend } from './backend.ts';
import { KeyPair, type PublicKey } from './curve.ts';
import { fail } from './errors.ts';
import { kdfCkMessageKeys, kdfCkNext, kdfRk, type MessageKeys } from './kdf.ts';
import { MAX_MESSAGE_KEYS, type SessionState } from './state.ts';
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

/**
 * Bound on the chain steps (one HMAC each) that one incoming message may cost across all the
 * session states it is tried against (the current one and up to MAX_ARCHIVED_STATES archived
 * ones). Trade-off: a forged message names a fresh ratchet key and a counter just under
 * MAX_FORWARD_JUMPS, and each state must walk that far before its MAC check can fail, so without a
 * bound one message cost 41 × 25,000 steps. States are tried cheapest first and the first one is
 * always tried in full, so a genuine message within MAX_FORWARD_JUMPS of its chain always
 * decrypts when it is the cheapest candidate (its own receiving chain, or the only state). A
 * genuine message is refused only when it starts a new chain in an archived state, counter c,
 * behind more than MAX_CHAIN_STEPS_PER_MESSAGE / c cheaper candidates (never for c ≤ 1,219 with
 * 41 states). Twice the jump limit: about 0.1 s of node:crypto, 0.2 s of @noble, per message.
 */
export const MAX_CHAIN_STEPS_PER_MESSAGE = 2 * MAX_FORWARD_JUMPS;

/** How many chain steps decrypting `message` with `state` costs (0 when it fails before any). */
export function decryptCost(state: SessionState, message: SignalMessage): number {
  if (state.sender === null || state.version !== MESSAGE_VERSION) return 0;
  const chain = state.findReceiver(message.ratchetKey);
  const from = chain === undefined ? 0 : chain.index;
  const jump = message.counter - from;
  return jump <= 0 || jump > MAX_FORWARD_JUMPS ? 0 : jump;
}

/** A decryption worked out without touching the state: the plaintext, and how to commit it. */
export interface DecryptPlan {
  readonly plaintext: Uint8Array;
  /** Apply the plan to `state`, a state equal to (or a copy of) the one it was planned on. */
  apply(state: SessionState): void;
}

function verifyAndDecrypt(backend: CryptoBackend, state: SessionState, message: SignalMessage, keys: MessageKeys): Uint8Array {
  if (!verifySignalMessageMac(backend, message, keys.macKey, state.remoteIdentity, state.localIdentity)) {
    fail('BAD_MAC', 'message authentication failed');
  }
  const plaintext = backend.aes256CbcDecrypt(keys.cipherKey, keys.iv, message.ciphertext);
  if (plaintext === null) fail('BAD_MAC', 'bad padding');
  return plaintext;
}

/**
 * DR §3.5 RatchetDecrypt, in two halves: everything up to the MAC and padding check reads
 * `state` only, and the changes (a DH ratchet step, skipped keys, the chain's new position) are
 * made by the plan's apply(). A message that fails costs only the chain walk: one HMAC per step
 * (the next chain key), with message keys derived for the one position the MAC needs. The
 * skipped keys worth storing (the newest MAX_MESSAGE_KEYS, as libsignal keeps) and our next
 * ratchet key pair are derived only once the message proved genuine.
 */
export async function planDecrypt(backend: CryptoBackend, state: SessionState, message: SignalMessage): Promise<DecryptPlan> {
  const sender = state.sender;
  if (sender === null) return fail('NO_SESSION', 'session has no sending chain');
  if (state.version !== MESSAGE_VERSION) fail('BAD_VERSION', `session version ${state.version}`);
  const theirRatchetKey = message.ratchetKey;
  const counter = message.counter;
  const existing = state.findReceiver(theirRatchetKey);

  if (existing !== undefined && existing.index > counter) {
    // DR §3.5 trySkippedMessageKeys.
    const keys = existing.skipped.get(counter);
    if (keys === undefined) return fail('DUPLICATE', `counter ${counter} already used (chain at ${existing.index})`);
    const plaintext = verifyAndDecrypt(backend, state, message, keys);
    return {
      plaintext,
      apply(target) {
        target.findReceiver(theirRatchetKey)?.skipped.delete(counter);
        target.pending = null;
      },
    };
  }

  // The receiving chain: the existing one, or (DR §3.5 DHRatchet) one derived from our current
  // ratchet key and their new one.
  let chainKey: Uint8Array;
  let index: number;
  let ratchetRootKey: Uint8Array | null = null;
  if (existing !== undefined) {
    chainKey = existing.chainKey;
    index = existing.index;
  } else {
    const recv = kdfRk(backend, state.rootKey, await sender.ratchetKey.privateKey.agreeAsync(backend, theirRatchetKey));
    chainKey = recv.chainKey;
    index = 0;
    ratchetRootKey = recv.rootKey;
  }
  const jump = counter - index;
  if (jump > MAX_FORWARD_JUMPS) fail('TOO_FAR_AHEAD', `jump of ${jump} exceeds ${MAX_FORWARD_JUMPS}`);
  // DR §3.5 skipMessageKeys. Only the newest MAX_MESSAGE_KEYS skipped keys would survive
  // eviction, so only their chain keys are remembered.
  const firstKept = counter - Math.min(jump, MAX_MESSAGE_KEYS);
  const kept: Uint8Array[] = [];
  while (index < counter) {
    if (index >= firstKept) kept.push(chainKey);
    chainKey = kdfCkNext(backend, chainKey);
    index++;
  }
  const keys = kdfCkMessageKeys(backend, chainKey, counter);
  const plaintext = verifyAndDecrypt(backend, state, message, keys);
  const nextChainKey = kdfCkNext(backend, chainKey);
  // The rest of the DH ratchet step, now that the message proved genuine: a fresh key pair of
  // ours for sending (awaited here, so apply() stays synchronous).
  let next: { ourNew: KeyPair; send: { rootKey: Uint8Array; chainKey: Uint8Array } } | null = null;
  if (ratchetRootKey !== null) {
    const ourNew = KeyPair.generate(backend);
    next = { ourNew, send: kdfRk(backend, ratchetRootKey, await ourNew.privateKey.agreeAsync(backend, theirRatchetKey)) };
  }

  return {
    plaintext,
    apply(target) {
      let chain = target.findReceiver(theirRatchetKey);
      if (chain === undefined) {
        if (next === null || target.sender === null) return fail('NO_SESSION', 'plan applied to another state');
        const { ourNew, send } = next;
        target.rootKey = send.rootKey;
        chain = { ratchetKey: theirRatchetKey, chainKey: new Uint8Array(32), index: 0, skipped: new Map() };
        target.addReceiver(chain);
        target.previousCounter = Math.max(target.sender.index - 1, 0);
        target.sender = { ratchetKey: ourNew, chainKey: send.chainKey, index: 0 };
      }
      kept.forEach((ck, i) => target.storeSkipped(chain, kdfCkMessageKeys(backend, ck, firstKept + i)));
      chain.chainKey = nextChainKey;
      chain.index = counter + 1;
      target.pending = null;
    },
  };
}

/** DR §3.5 RatchetDecrypt on a decoded SignalMessage. Mutates `state` only on success. */
export async function ratchetDecrypt(backend: CryptoBackend, state: SessionState, message: SignalMessage): Promise<Uint8Array> {
  const plan = await planDecrypt(backend, state, message);
  plan.apply(state);
  return plan.plaintext;
}
