// The group cipher (DESIGN §2.7, libsignal's group_cipher.rs): create and process sender-key
// distribution messages, encrypt a group message once for every member, decrypt one.
//
// Decryption is transactional and checks the signature first: find the state by chain id, verify
// the sender's signature over the message, then work out the message key and what the state would
// become, decrypt, and only then apply the change and store the record. A forged message costs one
// signature check and changes nothing; a failed one consumes no key and moves no chain.
// Work for one (sender, distribution id) runs one job at a time behind a lock this cipher owns.
import { type CryptoBackend } from './backend.ts';
import { generateSeededSigningKey } from './seeded-signing-key.ts';
import { type DistributionId } from './distribution-id.ts';
import { fail } from './errors.ts';
import { MAX_FORWARD_JUMPS } from './ratchet.ts';
import {
  decodeSenderKeyMessage,
  encodeSenderKeyMessage,
  SENDER_CHAIN_KEY_LENGTH,
  SenderKeyDistributionMessage,
  verifySenderKeyMessage,
} from './sender-key-message.ts';
import {
  MAX_SENDER_KEY_ITERATION,
  SenderKeyRecord,
  type SenderKeyState,
  senderChainKeyNext,
  senderKeyName,
  type SenderKeyStore,
  type SenderMessageKey,
  senderMessageKey,
  senderMessageSeed,
} from './sender-key.ts';
import { MAX_MESSAGE_KEYS } from './state.ts';
import { type ProtocolAddress } from './store.ts';

export interface GroupDecryptResult {
  readonly plaintext: Uint8Array;
  readonly distributionId: DistributionId;
}

/** How a state changes when a message decrypts; applied only after the body decrypted. */
type Advance =
  | { kind: 'stored'; iteration: number }
  | { kind: 'forward'; chainKey: Uint8Array; iteration: number; skipped: Array<[number, Uint8Array]> };

export class GroupCipher {
  readonly #backend: CryptoBackend;
  readonly #store: SenderKeyStore;
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(backend: CryptoBackend, store: SenderKeyStore) {
    this.#backend = backend;
    this.#store = store;
  }

  get store(): SenderKeyStore {
    return this.#store;
  }

  /** Run `job` with the lock for (sender, distribution id) held, one at a time in call order. */
  runExclusive<T>(sender: ProtocolAddress, distributionId: DistributionId, job: () => Promise<T>): Promise<T> {
    const key = senderKeyName(sender, distributionId);
    const prev = this.#locks.get(key) ?? Promise.resolve();
    const next = prev.then(job, job);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.#locks.set(key, tail);
    void tail.then(() => {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    });
    return next;
  }

  /**
   * Our distribution message for `distributionId` (`sender` is our own address), creating our sender
   * key on first use: a random 31-bit chain id (as libsignal-java), a random chain key at iteration
   * 0 and a fresh signing key pair. Later calls describe the chain where it stands now, so a member
   * who receives it reads from that point on.
   */
  createSenderKeyDistributionMessage(sender: ProtocolAddress, distributionId: DistributionId): Promise<SenderKeyDistributionMessage> {
    return this.runExclusive(sender, distributionId, async () => {
      const b = this.#backend;
      let record = await this.#store.loadSenderKey(sender, distributionId);
      if (record === null) {
        const r = b.randomBytes(4);
        const chainId = (((r[0] as number) << 24) | ((r[1] as number) << 16) | ((r[2] as number) << 8) | (r[3] as number)) >>> 1;
        // Made from an Ed25519 seed, so a native Ed25519 signs our messages (seeded-signing-key.ts).
        const signing = generateSeededSigningKey(b);
        record = new SenderKeyRecord();
        record.addState({
          chainId,
          iteration: 0,
          chainKey: b.randomBytes(SENDER_CHAIN_KEY_LENGTH),
          signingKey: signing.keyPair.publicKey,
          signingPrivateKey: signing.keyPair.privateKey,
          signingSeed: signing.seed,
        });
        await this.#store.storeSenderKey(sender, distributionId, record);
      }
      const state = record.current;
      if (state === null) return fail('NO_SENDER_KEY', `sender key record for ${distributionId.toString()} is empty`);
      return SenderKeyDistributionMessage.create({
        distributionId,
        chainId: state.chainId,
        iteration: state.iteration,
        chainKey: state.chainKey,
        signingKey: state.signingKey,
      });
    });
  }

  /** Store a member's distribution message (received over a pairwise session from `sender`). */
  processSenderKeyDistributionMessage(sender: ProtocolAddress, message: SenderKeyDistributionMessage): Promise<void> {
    const distributionId = message.distributionId;
    return this.runExclusive(sender, distributionId, async () => {
      const record = (await this.#store.loadSenderKey(sender, distributionId)) ?? new SenderKeyRecord();
      record.addState({
        chainId: message.chainId,
        iteration: message.iteration,
        chainKey: message.chainKeyUnsafe,
        signingKey: message.signingKey,
        signingPrivateKey: null,
      });
      await this.#store.storeSenderKey(sender, distributionId, record);
    });
  }

  /** Encrypt once for the whole group with our newest sender key; returns a SenderKeyMessage. */
  groupEncrypt(sender: ProtocolAddress, distributionId: DistributionId, plaintext: Uint8Array): Promise<Uint8Array> {
    return this.runExclusive(sender, distributionId, async () => {
      const b = this.#backend;
      const record = await this.#store.loadSenderKey(sender, distributionId);
      const state = record?.current ?? null;
      if (record == null || state === null) return fail('NO_SENDER_KEY', `no sender key for ${distributionId.toString()}`);
      if (state.signingPrivateKey === null) return fail('NO_SENDER_KEY', `sender key for ${distributionId.toString()} is not ours`);
      // The chain cannot step past the last uint32 iteration, so that one is never used.
      if (state.iteration >= MAX_SENDER_KEY_ITERATION) return fail('BAD_STATE', 'sender chain is exhausted');
      const keys = senderMessageKey(b, state.iteration, senderMessageSeed(b, state.chainKey));
      const message = encodeSenderKeyMessage(b, { privateKey: state.signingPrivateKey, seed: state.signingSeed }, {
        distributionId,
        chainId: state.chainId,
        iteration: state.iteration,
        ciphertext: b.aes256CbcEncrypt(keys.cipherKey, keys.iv, plaintext),
      });
      state.chainKey = senderChainKeyNext(b, state.chainKey);
      state.iteration += 1;
      await this.#store.storeSenderKey(sender, distributionId, record);
      return message.serialized;
    });
  }

  /**
   * Decrypt a SenderKeyMessage from `sender`. Errors: DECODE / BAD_VERSION (not a sender-key message),
   * NO_SENDER_KEY (no state for its distribution id and chain id), BAD_SIGNATURE, DUPLICATE (an
   * iteration already read, or from before the distribution message we hold), TOO_FAR_AHEAD
   * (beyond MAX_FORWARD_JUMPS), BAD_MAC (the body does not decrypt). Nothing is stored on error.
   */
  groupDecrypt(sender: ProtocolAddress, body: Uint8Array): Promise<GroupDecryptResult> {
    let message: ReturnType<typeof decodeSenderKeyMessage>;
    try {
      message = decodeSenderKeyMessage(body);
    } catch (e) {
      return Promise.reject(e);
    }
    const { distributionId } = message;
    return this.runExclusive(sender, distributionId, async () => {
      const b = this.#backend;
      const record = await this.#store.loadSenderKey(sender, distributionId);
      if (record === null) return fail('NO_SENDER_KEY', `no sender key for ${distributionId.toString()}`);
      const state = record.stateForChainId(message.chainId);
      if (state === null) return fail('NO_SENDER_KEY', `no sender key state for chain ${message.chainId}`);
      if (!verifySenderKeyMessage(b, message, state.signingKey)) fail('BAD_SIGNATURE', 'group message signature did not verify');
      const { keys, advance } = planDecrypt(b, state, message.iteration);
      const plaintext = b.aes256CbcDecrypt(keys.cipherKey, keys.iv, message.ciphertext);
      if (plaintext === null) return fail('BAD_MAC', 'group message did not decrypt');
      applyAdvance(state, advance);
      await this.#store.storeSenderKey(sender, distributionId, record);
      return { plaintext, distributionId };
    });
  }
}

/**
 * libsignal's get_sender_key without side effects: the message key for `iteration`, and how the
 * state must change if the message turns out good.
 */
function planDecrypt(b: CryptoBackend, state: SenderKeyState, iteration: number): { keys: SenderMessageKey; advance: Advance } {
  if (state.iteration > iteration) {
    const seed = state.messageKeys.get(iteration);
    if (seed === undefined) return fail('DUPLICATE', `iteration ${iteration} already used or from before our key (chain at ${state.iteration})`);
    return { keys: senderMessageKey(b, iteration, seed), advance: { kind: 'stored', iteration } };
  }
  const jump = iteration - state.iteration;
  if (jump > MAX_FORWARD_JUMPS) fail('TOO_FAR_AHEAD', `jump of ${jump} exceeds ${MAX_FORWARD_JUMPS}`);
  if (iteration >= MAX_SENDER_KEY_ITERATION) fail('TOO_FAR_AHEAD', 'iteration at the end of the chain');
  // Keys skipped further back than MAX_MESSAGE_KEYS would be evicted at once: step over them
  // without deriving their seeds (the stored set comes out the same).
  const keepFrom = iteration - Math.min(jump, MAX_MESSAGE_KEYS);
  const skipped: Array<[number, Uint8Array]> = [];
  let chainKey = state.chainKey;
  for (let i = state.iteration; i < iteration; i++) {
    if (i >= keepFrom) skipped.push([i, senderMessageSeed(b, chainKey)]);
    chainKey = senderChainKeyNext(b, chainKey);
  }
  const keys = senderMessageKey(b, iteration, senderMessageSeed(b, chainKey));
  return { keys, advance: { kind: 'forward', chainKey: senderChainKeyNext(b, chainKey), iteration: iteration + 1, skipped } };
}

function applyAdvance(state: SenderKeyState, advance: Advance): void {
  if (advance.kind === 'stored') {
    state.messageKeys.delete(advance.iteration);
    return;
  }
  for (const [i, seed] of advance.skipped) state.addMessageKey(i, seed);
  state.chainKey = advance.chainKey;
  state.iteration = advance.iteration;
}
