// PQXDH session start (signal.org/docs/specifications/pqxdh), both roles, producing the first
// Double Ratchet state as libsignal does: Bob's signed pre-key is his first ratchet key; Alice
// starts a receiving chain on it and at once ratchets to a sending chain with a fresh key.
import { type CryptoBackend } from './backend.ts';
import { concatBytes } from './bytes.ts';
import { KeyPair, type PublicKey } from './curve.ts';
import { fail } from './errors.ts';
import { type IdentityKeyPair, verifyPreKeySignatureAsync } from './identity.ts';
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
export async function verifyBundle(backend: CryptoBackend, bundle: PreKeyBundle): Promise<void> {
  const [signed, kyber] = await Promise.all([
    verifyPreKeySignatureAsync(backend, bundle.identityKey, bundle.signedPreKey.serialize(), bundle.signedPreKeySignature),
    verifyPreKeySignatureAsync(backend, bundle.identityKey, bundle.kyberPreKey.serialize(), bundle.kyberPreKeySignature),
  ]);
  if (!signed) fail('BAD_SIGNATURE', 'signed pre-key signature does not verify');
  if (!kyber) fail('BAD_SIGNATURE', 'Kyber pre-key signature does not verify');
}

/** Alice's side: the bundle must already be verified. */
export async function initializeAliceSession(backend: CryptoBackend, ourIdentity: IdentityKeyPair, bundle: PreKeyBundle): Promise<AliceResult> {
  const base = KeyPair.generate(backend);
  const sending = KeyPair.generate(backend);
  // The agreements are independent: with an asynchronous backend they run concurrently.
  const dh = await Promise.all([
    ourIdentity.privateKey.agreeAsync(backend, bundle.signedPreKey),
    base.privateKey.agreeAsync(backend, bundle.identityKey),
    base.privateKey.agreeAsync(backend, bundle.signedPreKey),
    sending.privateKey.agreeAsync(backend, bundle.signedPreKey),
    ...(bundle.preKey !== undefined ? [base.privateKey.agreeAsync(backend, bundle.preKey)] : []),
  ]);
  const parts = [DISCONTINUITY, dh[0]!, dh[1]!, dh[2]!];
  if (bundle.preKey !== undefined) parts.push(dh[4]!);
  const kem = bundle.kyberPreKey.encapsulate(backend);
  parts.push(kem.sharedSecret);
  const { rootKey, chainKey } = derivePqxdhKeys(backend, concatBytes(...parts));

  const send = kdfRk(backend, rootKey, dh[3]!);
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
export async function initializeBobSession(backend: CryptoBackend, p: BobParameters): Promise<SessionState> {
  const dh = await Promise.all([
    p.ourSignedPreKey.privateKey.agreeAsync(backend, p.theirIdentity),
    p.ourIdentity.privateKey.agreeAsync(backend, p.theirBaseKey),
    p.ourSignedPreKey.privateKey.agreeAsync(backend, p.theirBaseKey),
    ...(p.ourOneTimePreKey !== undefined ? [p.ourOneTimePreKey.privateKey.agreeAsync(backend, p.theirBaseKey)] : []),
  ]);
  const parts = [DISCONTINUITY, ...dh];
  parts.push(p.ourKyberPreKey.secretKey.decapsulate(p.kyberCiphertext, backend));
  const { rootKey, chainKey } = derivePqxdhKeys(backend, concatBytes(...parts));
  const state = new SessionState(p.ourIdentity.publicKey, p.theirIdentity, rootKey, p.theirBaseKey.serialize());
  state.sender = { ratchetKey: p.ourSignedPreKey, chainKey, index: 0 };
  return state;
}
