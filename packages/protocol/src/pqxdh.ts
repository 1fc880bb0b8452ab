// PQXDH session start (signal.org/docs/specifications/pqxdh), both roles, producing the first
// Double Ratchet state as libsignal does: Bob's signed pre-key is his first ratchet key; Alice
// starts a receiving chain on it and at once ratchets to a sending chain with a fresh key.
import { type CryptoBackend } from './backend.ts';
import { concatBytes } from './bytes.ts';
import { KeyPair, type PublicKey } from './curve.ts';
import { fail } from './errors.ts';
import { type IdentityKeyPair, verifyPreKeySignature } from './identity.ts';
import { derivePqxdhKeys, kdfRk } from './kdf.ts';
import { type KyberKeyPair, type KyberPublicKey } from './kyber.ts';
import { SessionState } from './state.ts';

/** PQXDH §2.2: 32 bytes of 0xFF before the DH outputs (domain separation from XEdDSA). */
const DISCONTINUITY = new Uint8Array(32).fill(0xff);

/** A pre-key bundle as the server hands it out (DESIGN §2.2). */
export interface PreKeyBundle {
  readonly registrationId: number;
  readonly deviceId: number;
  readonly identityKey: PublicKey;
  readonly signedPreKeyId: number;
  readonly signedPreKey: PublicKey;
  readonly signedPreKeySignature: Uint8Array;
  readonly kyberPreKeyId: number;
  readonly kyberPreKey: KyberPublicKey;
  readonly kyberPreKeySignature: Uint8Array;
  readonly preKeyId?: number | undefined;
  readonly preKey?: PublicKey | undefined;
}

export interface AliceResult {
  readonly state: SessionState;
  readonly baseKey: PublicKey;
  readonly kyberCiphertext: Uint8Array;
}

/** Verify both bundle signatures; abort on failure (PQXDH §3.3). */
export function verifyBundle(backend: CryptoBackend, bundle: PreKeyBundle): void {
  if (!verifyPreKeySignature(backend, bundle.identityKey, bundle.signedPreKey.serialize(), bundle.signedPreKeySignature)) {
    fail('BAD_SIGNATURE', 'signed pre-key signature does not verify');
  }
  if (!verifyPreKeySignature(backend, bundle.identityKey, bundle.kyberPreKey.serialize(), bundle.kyberPreKeySignature)) {
    fail('BAD_SIGNATURE', 'Kyber pre-key signature does not verify');
  }
}

/** Alice's side: the bundle must already be verified. */
export function initializeAliceSession(backend: CryptoBackend, ourIdentity: IdentityKeyPair, bundle: PreKeyBundle): AliceResult {
  const base = KeyPair.generate(backend);
  const parts = [
    DISCONTINUITY,
    ourIdentity.privateKey.agree(backend, bundle.signedPreKey),
    base.privateKey.agree(backend, bundle.identityKey),
    base.privateKey.agree(backend, bundle.signedPreKey),
  ];
  if (bundle.preKey !== undefined) parts.push(base.privateKey.agree(backend, bundle.preKey));
  const kem = bundle.kyberPreKey.encapsulate(backend);
  parts.push(kem.sharedSecret);
  const { rootKey, chainKey } = derivePqxdhKeys(backend, concatBytes(...parts));

  const sending = KeyPair.generate(backend);
  const send = kdfRk(backend, rootKey, sending.privateKey.agree(backend, bundle.signedPreKey));
  const state = new SessionState(ourIdentity.publicKey, bundle.identityKey, send.rootKey, base.publicKey.serialize());
  state.receivers.push({ ratchetKey: bundle.signedPreKey, chainKey, index: 0, skipped: new Map() });
  state.sender = { ratchetKey: sending, chainKey: send.chainKey, index: 0 };
  return { state, baseKey: base.publicKey, kyberCiphertext: kem.ciphertext };
}

export interface BobParameters {
  readonly ourIdentity: IdentityKeyPair;
  readonly ourSignedPreKey: KeyPair;
  readonly ourOneTimePreKey: KeyPair | undefined;
  readonly ourKyberPreKey: KyberKeyPair;
  readonly theirIdentity: PublicKey;
  readonly theirBaseKey: PublicKey;
  readonly kyberCiphertext: Uint8Array;
}

/** Bob's side, on receiving Alice's first (PreKey) message. */
export function initializeBobSession(backend: CryptoBackend, p: BobParameters): SessionState {
  const parts = [
    DISCONTINUITY,
    p.ourSignedPreKey.privateKey.agree(backend, p.theirIdentity),
    p.ourIdentity.privateKey.agree(backend, p.theirBaseKey),
    p.ourSignedPreKey.privateKey.agree(backend, p.theirBaseKey),
  ];
  if (p.ourOneTimePreKey !== undefined) parts.push(p.ourOneTimePreKey.privateKey.agree(backend, p.theirBaseKey));
  parts.push(p.ourKyberPreKey.secretKey.decapsulate(p.kyberCiphertext, backend));
  const { rootKey, chainKey } = derivePqxdhKeys(backend, concatBytes(...parts));
  const state = new SessionState(p.ourIdentity.publicKey, p.theirIdentity, rootKey, p.theirBaseKey.serialize());
  state.sender = { ratchetKey: p.ourSignedPreKey, chainKey, index: 0 };
  return state;
}
