/**
 * Keeping the server stocked with this device's pre-keys (DESIGN §4): one-time EC and Kyber keys
 * refilled when the server's count runs low, the signed pre-key and the Kyber last-resort key
 * rotated on a schedule. Replaced private keys are kept for a grace period, because a bundle
 * handed out just before the replacement may still start a session days later.
 */
import {
  generateKyberPreKey,
  generatePreKey,
  generateSignedPreKey,
  KyberPreKeyRecord,
  PreKeyRecord,
  SignedPreKeyRecord,
  type CryptoBackend,
  type IdentityKeyPair,
} from '@tacit/protocol';
import { MAX_KEYS_PER_LIST, toBase64, type KyberPreKey, type PreKey, type SignedPreKey, type UploadKeysRequest } from '@tacit/api';
import { b64, unb64, type StateData, type StoredKey } from './state.js';

/** One-time keys of each kind uploaded per batch (the server's per-list maximum). */
export const ONE_TIME_KEY_BATCH = Math.min(100, MAX_KEYS_PER_LIST);
/** Refill when the server holds fewer one-time keys of a kind than this. */
export const REFILL_THRESHOLD = 20;
/** Signed pre-key and last-resort Kyber key lifetime before rotation: 7 days. */
export const SIGNED_PRE_KEY_ROTATION_MS = 7 * 24 * 60 * 60 * 1000;
/**
 * Replaced keys keep their private half this long: 30 days, the server's message lifetime, so a
 * session start delayed in a mailbox can still be decrypted.
 */
export const RETIRED_KEY_GRACE_MS = 30 * 24 * 60 * 60 * 1000;
/** Retired keys kept at most, per kind, whatever their age: bounds the state file. */
export const MAX_RETIRED_ONE_TIME_KEYS = 2 * ONE_TIME_KEY_BATCH;
/** Retired signed / last-resort keys kept at most. */
export const MAX_RETIRED_SIGNED_KEYS = 8;
/** Key ids are 24-bit in Signal's apps; we wrap below this. */
export const MAX_GENERATED_KEY_ID = 0xffffff;

function nextId(id: number): number {
  return id >= MAX_GENERATED_KEY_ID ? 1 : id + 1;
}

export function preKeyWire(r: PreKeyRecord): PreKey {
  return { keyId: r.id, publicKey: toBase64(r.publicKey.serialize()) };
}
export function signedPreKeyWire(r: SignedPreKeyRecord): SignedPreKey {
  return { keyId: r.id, publicKey: toBase64(r.publicKey.serialize()), signature: toBase64(r.signature) };
}
export function kyberPreKeyWire(r: KyberPreKeyRecord): KyberPreKey {
  return { keyId: r.id, publicKey: toBase64(r.publicKey.serialize()), signature: toBase64(r.signature) };
}

/** Fresh key state for a new device; the caller fills in account fields. */
export interface InitialKeys {
  signedPreKey: SignedPreKeyRecord;
  lastResort: KyberPreKeyRecord;
  preKeys: PreKeyRecord[];
  kyberPreKeys: KyberPreKeyRecord[];
}

export function generateInitialKeys(backend: CryptoBackend, identity: IdentityKeyPair, now: number): InitialKeys {
  const signedPreKey = generateSignedPreKey(backend, identity, 1, now);
  const lastResort = generateKyberPreKey(backend, identity, 1, now);
  const preKeys: PreKeyRecord[] = [];
  const kyberPreKeys: KyberPreKeyRecord[] = [];
  for (let i = 0; i < ONE_TIME_KEY_BATCH; i++) {
    preKeys.push(generatePreKey(backend, i + 1));
    kyberPreKeys.push(generateKyberPreKey(backend, identity, i + 2, now));
  }
  return { signedPreKey, lastResort, preKeys, kyberPreKeys };
}

/** Writes freshly generated initial keys into an empty state. */
export function storeInitialKeys(state: StateData, keys: InitialKeys, now: number): void {
  state.signedPreKeys[String(keys.signedPreKey.id)] = { record: b64(keys.signedPreKey.serialize()), createdAt: now };
  state.currentSignedPreKeyId = keys.signedPreKey.id;
  state.nextSignedPreKeyId = nextId(keys.signedPreKey.id);
  state.kyberPreKeys[String(keys.lastResort.id)] = { record: b64(keys.lastResort.serialize()), createdAt: now, lastResort: true };
  state.currentLastResortKyberId = keys.lastResort.id;
  for (const k of keys.preKeys) state.preKeys[String(k.id)] = { record: b64(k.serialize()), createdAt: now };
  for (const k of keys.kyberPreKeys) state.kyberPreKeys[String(k.id)] = { record: b64(k.serialize()), createdAt: now, lastResort: false };
  state.nextPreKeyId = nextId(keys.preKeys.length);
  state.nextKyberPreKeyId = nextId(keys.kyberPreKeys.length + 1);
}

/**
 * Plans the upload that brings the server back to a full stock and up to date keys, mutating the
 * local state to hold the new private keys (and retire the replaced ones). Returns undefined when
 * nothing is due. The caller persists the state BEFORE uploading, so a crash never leaves the
 * server with public keys whose private halves we lost.
 */
export function planKeyMaintenance(
  backend: CryptoBackend,
  identity: IdentityKeyPair,
  state: StateData,
  counts: { preKeys: number; kyberPreKeys: number },
  now: number,
): UploadKeysRequest | undefined {
  const upload: UploadKeysRequest = {};
  if (counts.preKeys < REFILL_THRESHOLD) {
    // The upload replaces every one-time key on the server: retire ours, keep them for the grace period.
    retireAll(state.preKeys, now);
    const list: PreKey[] = [];
    for (let i = 0; i < ONE_TIME_KEY_BATCH; i++) {
      const id = state.nextPreKeyId;
      state.nextPreKeyId = nextId(id);
      const r = generatePreKey(backend, id);
      state.preKeys[String(id)] = { record: b64(r.serialize()), createdAt: now };
      list.push(preKeyWire(r));
    }
    upload.preKeys = list;
  }
  if (counts.kyberPreKeys < REFILL_THRESHOLD) {
    for (const [id, k] of Object.entries(state.kyberPreKeys)) if (!k.lastResort && k.retiredAt === undefined) state.kyberPreKeys[id] = { ...k, retiredAt: now };
    const list: KyberPreKey[] = [];
    for (let i = 0; i < ONE_TIME_KEY_BATCH; i++) {
      const id = allocKyberId(state);
      const r = generateKyberPreKey(backend, identity, id, now);
      state.kyberPreKeys[String(id)] = { record: b64(r.serialize()), createdAt: now, lastResort: false };
      list.push(kyberPreKeyWire(r));
    }
    upload.kyberPreKeys = list;
  }
  const current = state.signedPreKeys[String(state.currentSignedPreKeyId)];
  if (current === undefined || now - current.createdAt >= SIGNED_PRE_KEY_ROTATION_MS || now < current.createdAt) {
    if (current) state.signedPreKeys[String(state.currentSignedPreKeyId)] = { ...current, retiredAt: now };
    const id = state.nextSignedPreKeyId;
    state.nextSignedPreKeyId = nextId(id);
    const r = generateSignedPreKey(backend, identity, id, now);
    state.signedPreKeys[String(id)] = { record: b64(r.serialize()), createdAt: now };
    state.currentSignedPreKeyId = id;
    upload.signedPreKey = signedPreKeyWire(r);

    const oldLr = state.kyberPreKeys[String(state.currentLastResortKyberId)];
    if (oldLr) state.kyberPreKeys[String(state.currentLastResortKyberId)] = { ...oldLr, retiredAt: now };
    const lrId = allocKyberId(state);
    const lr = generateKyberPreKey(backend, identity, lrId, now);
    state.kyberPreKeys[String(lrId)] = { record: b64(lr.serialize()), createdAt: now, lastResort: true };
    state.currentLastResortKyberId = lrId;
    upload.kyberLastResortKey = kyberPreKeyWire(lr);
  }
  pruneRetired(state, now);
  return Object.keys(upload).length === 0 ? undefined : upload;
}

function allocKyberId(state: StateData): number {
  let id = state.nextKyberPreKeyId;
  // Never reuse an id still held locally (a wrapped counter could meet a kept last-resort key).
  for (let guard = 0; guard < 1_000 && state.kyberPreKeys[String(id)] !== undefined; guard++) id = nextId(id);
  state.nextKyberPreKeyId = nextId(id);
  return id;
}

function retireAll(keys: Record<string, StoredKey>, now: number): void {
  for (const [id, k] of Object.entries(keys)) if (k.retiredAt === undefined) keys[id] = { ...k, retiredAt: now };
}

/** Drops retired keys past the grace period, and the oldest past the count caps. */
export function pruneRetired(state: StateData, now: number): void {
  prune(state.preKeys, now, MAX_RETIRED_ONE_TIME_KEYS, () => true);
  prune(state.kyberPreKeys, now, MAX_RETIRED_ONE_TIME_KEYS, (k) => !(k as { lastResort?: boolean }).lastResort);
  prune(state.kyberPreKeys, now, MAX_RETIRED_SIGNED_KEYS, (k) => (k as { lastResort?: boolean }).lastResort === true);
  prune(state.signedPreKeys, now, MAX_RETIRED_SIGNED_KEYS, () => true);
}

function prune(keys: Record<string, StoredKey>, now: number, max: number, select: (k: StoredKey) => boolean): void {
  const retired = Object.entries(keys)
    .filter(([, k]) => k.retiredAt !== undefined && select(k))
    .sort((a, b) => (a[1].retiredAt ?? 0) - (b[1].retiredAt ?? 0));
  for (let i = 0; i < retired.length; i++) {
    const [id, k] = retired[i]!;
    if (now - (k.retiredAt ?? now) > RETIRED_KEY_GRACE_MS || retired.length - i > max) delete keys[id];
  }
}

export function loadPreKey(state: StateData, id: number): PreKeyRecord | undefined {
  const k = state.preKeys[String(id)];
  return k ? PreKeyRecord.deserialize(unb64(k.record)) : undefined;
}
export function loadSignedPreKey(state: StateData, id: number): SignedPreKeyRecord | undefined {
  const k = state.signedPreKeys[String(id)];
  return k ? SignedPreKeyRecord.deserialize(unb64(k.record)) : undefined;
}
export function loadKyberPreKey(state: StateData, id: number): KyberPreKeyRecord | undefined {
  const k = state.kyberPreKeys[String(id)];
  return k ? KyberPreKeyRecord.deserialize(unb64(k.record)) : undefined;
}
