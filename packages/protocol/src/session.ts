// The session API (libsignal's SessionBuilder/SessionCipher in one object): process a bundle,
// encrypt to an address, decrypt a PreKeySignalMessage or a SignalMessage. Work for one address
// runs one job at a time behind a lock this manager owns; decryption commits state only when the
// MAC, the padding and the identity check all pass.
import { type CryptoBackend } from './backend.ts';
import { bytesEqual } from './bytes.ts';
import { type PublicKey } from './curve.ts';
import { fail, isProtocolError, ProtocolError } from './errors.ts';
import { initializeAliceSession, initializeBobSession, type PreKeyBundle, verifyBundle } from './pqxdh.ts';
import {
  type CiphertextMessage,
  decryptCost,
  MAX_CHAIN_STEPS_PER_MESSAGE,
  planDecrypt,
  ratchetDecrypt,
  ratchetEncrypt,
} from './ratchet.ts';
import { SessionRecord, type SessionState } from './state.ts';
import { type ProtocolAddress, type ProtocolStores } from './store.ts';
import { decodePreKeySignalMessage, decodeSignalMessage, type SignalMessage } from './wire.ts';

export { MAX_UNACKNOWLEDGED_SESSION_AGE_MS } from './state.ts';

/** Raised when a peer's identity key differs from the trusted one; carries the new public key. */
export class UntrustedIdentityError extends ProtocolError {
  readonly address: string;
  readonly identityKey: PublicKey;
  constructor(address: ProtocolAddress, identityKey: PublicKey) {
    super('UNTRUSTED_IDENTITY', `identity key of ${address.toString()} changed`);
    this.address = address.toString();
    this.identityKey = identityKey;
  }
}

export interface SessionManagerOptions {
  /** Milliseconds since the epoch; passed in so the core stays pure and tests deterministic. */
  readonly now: () => number;
}

export interface DecryptResult {
  readonly plaintext: Uint8Array;
  /** True when this message started a new session (a PreKey message that created state). */
  readonly newSession: boolean;
}

export class SessionManager {
  readonly #backend: CryptoBackend;
  readonly #stores: ProtocolStores;
  readonly #now: () => number;
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(backend: CryptoBackend, stores: ProtocolStores, options: SessionManagerOptions) {
    this.#backend = backend;
    this.#stores = stores;
    this.#now = options.now;
  }

  get stores(): ProtocolStores {
    return this.#stores;
  }

  /** Run `job` with the lock for `address` held: one job per address at a time, in call order. */
  runExclusive<T>(address: ProtocolAddress, job: () => Promise<T>): Promise<T> {
    const key = address.toString();
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

  /** True when encrypt to `address` would use an existing session (libsignal's hasCurrentState). */
  async hasSession(address: ProtocolAddress): Promise<boolean> {
    const r = await this.#stores.session.loadSession(address);
    return r !== null && r.hasCurrentSession(this.#now());
  }

  /**
   * Archive the current session with `address`, so the next send needs a fresh bundle (for
   * example after the user accepted a changed identity key). Late messages of the archived
   * session still decrypt.
   */
  archiveCurrentSession(address: ProtocolAddress): Promise<void> {
    return this.runExclusive(address, async () => {
      const record = await this.#stores.session.loadSession(address);
      if (record === null || record.current === null) return;
      record.archiveCurrentState();
      await this.#stores.session.storeSession(address, record);
    });
  }

  /** PQXDH as the initiator: verify the bundle and make a new current session for `address`. */
  processPreKeyBundle(address: ProtocolAddress, bundle: PreKeyBundle): Promise<void> {
    return this.runExclusive(address, async () => {
      const b = this.#backend;
      const { identity, session } = this.#stores;
      if (!(await identity.isTrustedIdentity(address, bundle.identityKey, 'sending'))) {
        throw new UntrustedIdentityError(address, bundle.identityKey);
      }
      if ((bundle.preKey === undefined) !== (bundle.preKeyId === undefined)) {
        fail('INVALID_ARGUMENT', 'a bundle carries a one-time pre-key and its id together or neither');
      }
      await verifyBundle(b, bundle);
      const ours = await identity.getIdentityKeyPair();
      const { state, baseKey, kyberCiphertext } = await initializeAliceSession(b, ours, bundle);
      state.pending = {
        preKeyId: bundle.preKeyId,
        signedPreKeyId: bundle.signedPreKeyId,
        kyberPreKeyId: bundle.kyberPreKeyId,
        kyberCiphertext,
        baseKey,
        timestamp: this.#now(),
      };
      state.localRegistrationId = await identity.getLocalRegistrationId();
      state.remoteRegistrationId = bundle.registrationId;
      const record = (await session.loadSession(address)) ?? new SessionRecord();
      record.promoteState(state);
      await identity.saveIdentity(address, bundle.identityKey);
      await session.storeSession(address, record);
    });
  }

  encrypt(address: ProtocolAddress, plaintext: Uint8Array): Promise<CiphertextMessage> {
    return this.runExclusive(address, async () => {
      const { identity, session } = this.#stores;
      const record = await session.loadSession(address);
      const state = record?.current;
      if (record == null || state == null || state.sender === null) return fail('NO_SESSION', `no session with ${address.toString()}`);
      if (!state.canSend(this.#now())) {
        fail('NO_SESSION', `session with ${address.toString()} was never acknowledged and has expired`);
      }
      if (!(await identity.isTrustedIdentity(address, state.remoteIdentity, 'sending'))) {
        throw new UntrustedIdentityError(address, state.remoteIdentity);
      }
      // ratchetEncrypt computes everything before it advances the chain, so it cannot leave
      // `state` half-updated; no copy is needed.
      const out = ratchetEncrypt(this.#backend, state, plaintext);
      await session.storeSession(address, record);
      return out;
    });
  }

  /** Decrypt either kind of message; `type` says which. */
  decrypt(address: ProtocolAddress, message: CiphertextMessage): Promise<DecryptResult> {
    if (message.type === 'prekey') return this.decryptPreKey(address, message.body);
    if (message.type === 'whisper') return this.decryptSignal(address, message.body).then((plaintext) => ({ plaintext, newSession: false }));
    return Promise.reject(new ProtocolError('DECODE', 'unknown ciphertext type'));
  }

  decryptSignal(address: ProtocolAddress, body: Uint8Array): Promise<Uint8Array> {
    return this.runExclusive(address, async () => {
      const message = decodeSignalMessage(body);
      const record = await this.#stores.session.loadSession(address);
      // Archived states count: a late message of an archived session still decrypts.
      if (record === null || (record.current === null && record.previous.length === 0)) {
        return fail('NO_SESSION', `no session with ${address.toString()}`);
      }
      const { plaintext, commit } = await this.#decryptWithRecord(record, message);
      await this.#commit(address, record, commit);
      return plaintext;
    });
  }

  decryptPreKey(address: ProtocolAddress, body: Uint8Array): Promise<DecryptResult> {
    return this.runExclusive(address, async () => {
      const b = this.#backend;
      const { identity, session, preKey, signedPreKey, kyberPreKey } = this.#stores;
      const message = decodePreKeySignalMessage(body);
      if (!(await identity.isTrustedIdentity(address, message.identityKey, 'receiving'))) {
        throw new UntrustedIdentityError(address, message.identityKey);
      }
      const record = (await session.loadSession(address)) ?? new SessionRecord();
      const baseKey = message.baseKey.serialize();
      const existing = findByBaseKey(record, baseKey);
      if (existing !== null) {
        // A repeat of the initiator's PreKey messages: the session already exists.
        const { plaintext, commit } = await this.#decryptWithRecord(record, message.message, existing);
        await this.#commit(address, record, commit);
        return { plaintext, newSession: false };
      }
      const spk = await signedPreKey.loadSignedPreKey(message.signedPreKeyId);
      if (spk === null) return fail('MISSING_PRE_KEY', `signed pre-key ${message.signedPreKeyId} not found`);
      const kpk = await kyberPreKey.loadKyberPreKey(message.kyberPreKeyId);
      if (kpk === null) return fail('MISSING_PRE_KEY', `Kyber pre-key ${message.kyberPreKeyId} not found`);
      let otpk = undefined;
      if (message.preKeyId !== undefined) {
        const r = await preKey.loadPreKey(message.preKeyId);
        if (r === null) return fail('MISSING_PRE_KEY', `pre-key ${message.preKeyId} not found`);
        otpk = r.keyPair;
      }
      const state = await initializeBobSession(b, {
        ourIdentity: await identity.getIdentityKeyPair(),
        ourSignedPreKey: spk.keyPair,
        ourOneTimePreKey: otpk,
        ourKyberPreKey: kpk.keyPair,
        theirIdentity: message.identityKey,
        theirBaseKey: message.baseKey,
        kyberCiphertext: message.kyberCiphertext,
      });
      state.localRegistrationId = await identity.getLocalRegistrationId();
      state.remoteRegistrationId = message.registrationId;
      const plaintext = await ratchetDecrypt(b, state, message.message);
      record.promoteState(state);
      await identity.saveIdentity(address, message.identityKey);
      await session.storeSession(address, record);
      await kyberPreKey.markKyberPreKeyUsed(message.kyberPreKeyId);
      if (message.preKeyId !== undefined) await preKey.removePreKey(message.preKeyId);
      return { plaintext, newSession: true };
    });
  }

  /**
   * Try the current state, then archived ones, cheapest first, without touching them; the one
   * that decrypts is applied to a copy. Returns the plaintext and how to commit; the record itself
   * is untouched until #commit. The chain steps spent on all candidates together stay within
   * MAX_CHAIN_STEPS_PER_MESSAGE (the cheapest candidate is always tried).
   */
  async #decryptWithRecord(
    record: SessionRecord,
    message: SignalMessage,
    only?: { index: number },
  ): Promise<{ plaintext: Uint8Array; commit: { index: number; state: SessionState } }> {
    const candidates: Array<{ index: number; state: SessionState; cost: number }> = [];
    const add = (index: number, state: SessionState): void => {
      candidates.push({ index, state, cost: decryptCost(state, message) });
    };
    if (only !== undefined) {
      const s = only.index < 0 ? record.current : record.previous[only.index];
      if (s != null) add(only.index, s);
    } else {
      if (record.current !== null) add(-1, record.current);
      record.previous.forEach((state, index) => add(index, state));
    }
    // Stable: equal costs keep the current-then-newest-archived order.
    candidates.sort((a, b) => a.cost - b.cost);
    let spent = 0;
    let firstError: { index: number; error: ProtocolError } | null = null;
    for (const c of candidates) {
      if (spent > 0 && spent + c.cost > MAX_CHAIN_STEPS_PER_MESSAGE) break;
      spent += c.cost;
      try {
        const plan = await planDecrypt(this.#backend, c.state, message);
        const work = c.state.clone();
        plan.apply(work);
        return { plaintext: plan.plaintext, commit: { index: c.index, state: work } };
      } catch (e) {
        if (!isProtocolError(e)) throw e;
        if (e.code === 'DUPLICATE') throw e;
        // Report what the newest state said, as before candidates were ordered by cost.
        if (firstError === null || c.index < firstError.index) firstError = { index: c.index, error: e };
      }
    }
    if (firstError !== null && firstError.error.code !== 'NO_SESSION') throw firstError.error;
    return fail('BAD_MAC', 'no session state could decrypt the message');
  }

  async #commit(address: ProtocolAddress, record: SessionRecord, commit: { index: number; state: SessionState }): Promise<void> {
    const { identity, session } = this.#stores;
    const remote = commit.state.remoteIdentity;
    if (!(await identity.isTrustedIdentity(address, remote, 'receiving'))) throw new UntrustedIdentityError(address, remote);
    if (commit.index < 0) record.setCurrent(commit.state);
    else record.promotePrevious(commit.index, commit.state);
    await identity.saveIdentity(address, remote);
    await session.storeSession(address, record);
  }
}

function findByBaseKey(record: SessionRecord, baseKey: Uint8Array): { index: number } | null {
  const eq = (s: SessionState): boolean => bytesEqual(s.aliceBaseKey, baseKey);
  if (record.current !== null && eq(record.current)) return { index: -1 };
  const i = record.previous.findIndex(eq);
  return i >= 0 ? { index: i } : null;
}
