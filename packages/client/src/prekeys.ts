/**
 * Keeping the server stocked with this device's pre-keys (DESIGN §4): one-time EC and Kyber keys
 * refilled when the server's count runs low, the signed pre-key and the Kyber last-resort key
 * rotated on a schedule. Replaced private keys are kept for a grace period, because a bundle
 * handed out just before the replacement may still start a session days later.
 *
 * Records: one per key (`pk/`, `spk/`, `kpk/` + id), holding the protocol's serialized record
 * once, plus `keys/state` (next ids, current ids) and `keys/upload` (an upload planned but not
 * yet accepted by the server).
 */
import {
  generateKyberPreKey,
  generatePreKey,
  generateSignedPreKey,
  isProtocolError,
  KyberPreKeyRecord,
  PreKeyRecord,
  SignedPreKeyRecord,
  type CryptoBackend,
  type IdentityKeyPair,
} from '@tacit/protocol';
import { MAX_KEYS_PER_LIST, toBase64, type KyberPreKey, type PreKey, type SignedPreKey, type UploadKeysRequest } from '@tacit/api';
import { idKey, PREFIX } from './keys.js';
import { blobCodec, corrupt, isInt, isObj, jsonCodec, optional, type RecordCodec, type WithBlob } from './record-codec.js';
import { ClientError } from './errors.js';
import type { Txn } from './txn.js';

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
/** Retired keys kept at most, per kind, whatever their age: bounds the store. */
export const MAX_RETIRED_ONE_TIME_KEYS = 2 * ONE_TIME_KEY_BATCH;
/** Retired signed / last-resort keys kept at most. */
export const MAX_RETIRED_SIGNED_KEYS = 8;
/** Key ids are 24-bit in Signal's apps; we wrap below this. */
export const MAX_GENERATED_KEY_ID = 0xffffff;

export interface KeyMeta {
  createdAt: number;
  /** Set when the key was replaced on the server; the private key is kept for a grace period. */
  retiredAt?: number;
  /** Kyber keys only: the last-resort key (never deleted on use). */
  lastResort?: boolean;
}

/** Pre-key bookkeeping. */
export interface KeyState {
  nextPreKeyId: number;
  currentSignedPreKeyId: number;
  nextSignedPreKeyId: number;
  currentLastResortKyberId: number;
  nextKyberPreKeyId: number;
}

const keyMetaCodec = (kind: string): RecordCodec<WithBlob<KeyMeta>> =>
  blobCodec<KeyMeta>(kind, (v) => {
    if (!isObj(v) || !isInt(v['createdAt']) || !optional(v['retiredAt'], isInt) || !optional(v['lastResort'], (x): x is boolean => typeof x === 'boolean')) return undefined;
    const m: KeyMeta = { createdAt: v['createdAt'] };
    if (v['retiredAt'] !== undefined) m.retiredAt = v['retiredAt'] as number;
    if (v['lastResort'] !== undefined) m.lastResort = v['lastResort'] as boolean;
    return m;
  });

export const preKeyCodec = keyMetaCodec('one-time pre-key');
export const signedPreKeyCodec = keyMetaCodec('signed pre-key');
export const kyberPreKeyCodec = keyMetaCodec('Kyber pre-key');

export const keyStateCodec = jsonCodec<KeyState>('pre-key bookkeeping', (v) => {
  if (!isObj(v)) return undefined;
  const { nextPreKeyId, currentSignedPreKeyId, nextSignedPreKeyId, currentLastResortKyberId, nextKyberPreKeyId } = v;
  if (!isInt(nextPreKeyId) || !isInt(currentSignedPreKeyId) || !isInt(nextSignedPreKeyId) || !isInt(currentLastResortKyberId) || !isInt(nextKyberPreKeyId)) return undefined;
  return { nextPreKeyId, currentSignedPreKeyId, nextSignedPreKeyId, currentLastResortKyberId, nextKyberPreKeyId };
});

/** A planned upload is our own output; its lists are checked by the server again. */
export const uploadCodec = jsonCodec<UploadKeysRequest>('pre-key bookkeeping', (v) => (isObj(v) ? (v as UploadKeysRequest) : undefined));

export const KEY_STATE_KEY = `${PREFIX.keys}state`;
export const UPLOAD_KEY = `${PREFIX.keys}upload`;
export const preKeyKey = (id: number): string => PREFIX.preKey + idKey(id);
export const signedPreKeyKey = (id: number): string => PREFIX.signedPreKey + idKey(id);
export const kyberPreKeyKey = (id: number): string => PREFIX.kyberPreKey + idKey(id);

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

/** Fresh key state for a new device. */
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

/**
 * Makes a new device's initial keys somewhere else than the caller's thread (the web client runs
 * `generateInitialKeys` in a Web Worker: 200 key pairs and 101 signatures are a long task of
 * several hundred milliseconds on a page's main thread). Gets the identity key pair, private key
 * included, because it signs the signed and Kyber pre-keys.
 */
export type InitialKeyGenerator = (identity: IdentityKeyPair, now: number) => Promise<InitialKeys>;

/** Initial keys as bytes (each record's own serialization), for crossing to and from a worker. */
export interface SerializedInitialKeys {
  signedPreKey: Uint8Array;
  lastResort: Uint8Array;
  preKeys: Uint8Array[];
  kyberPreKeys: Uint8Array[];
}

export function serializeInitialKeys(k: InitialKeys): SerializedInitialKeys {
  return {
    signedPreKey: k.signedPreKey.serialize(),
    lastResort: k.lastResort.serialize(),
    preKeys: k.preKeys.map((r) => r.serialize()),
    kyberPreKeys: k.kyberPreKeys.map((r) => r.serialize()),
  };
}

/**
 * The inverse of `serializeInitialKeys`, checked as input from elsewhere: the shape, every record
 * through its validating decoder, the ids `generateInitialKeys` gives (signed and last-resort 1,
 * one-time EC 1..N, one-time Kyber 2..N+1, N = ONE_TIME_KEY_BATCH); anything else is
 * INVALID_ARGUMENT. The signatures are not checked here (that is 101 verifications on the thread
 * the generator was meant to spare): the server verifies every one at registration and refuses
 * the account otherwise, before anything is usable.
 */
export function deserializeInitialKeys(v: unknown): InitialKeys {
  const bad = (why: string): never => {
    throw new ClientError('INVALID_ARGUMENT', `generated keys refused: ${why}`);
  };
  const isBytes = (x: unknown): x is Uint8Array => x instanceof Uint8Array;
  const list = (x: unknown, what: string): Uint8Array[] => {
    if (!Array.isArray(x) || x.length !== ONE_TIME_KEY_BATCH || !x.every(isBytes)) return bad(`${what}: expected ${ONE_TIME_KEY_BATCH} records`);
    return x;
  };
  if (typeof v !== 'object' || v === null) return bad('not an object');
  const o = v as Record<string, unknown>;
  if (!isBytes(o['signedPreKey']) || !isBytes(o['lastResort'])) return bad('signed or last-resort key missing');
  const decode = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (isProtocolError(e)) return bad(`${what}: ${e.code}`);
      throw e;
    }
  };
  const spkBytes = o['signedPreKey'];
  const lrBytes = o['lastResort'];
  const signedPreKey = decode('signed pre-key', () => SignedPreKeyRecord.deserialize(spkBytes));
  const lastResort = decode('last-resort key', () => KyberPreKeyRecord.deserialize(lrBytes));
  const preKeys = list(o['preKeys'], 'one-time pre-keys').map((b) => decode('one-time pre-key', () => PreKeyRecord.deserialize(b)));
  const kyberPreKeys = list(o['kyberPreKeys'], 'Kyber pre-keys').map((b) => decode('Kyber pre-key', () => KyberPreKeyRecord.deserialize(b)));
  if (signedPreKey.id !== 1 || lastResort.id !== 1) bad('unexpected key id');
  preKeys.forEach((k, i) => k.id !== i + 1 && bad('unexpected key id'));
  kyberPreKeys.forEach((k, i) => k.id !== i + 2 && bad('unexpected key id'));
  return { signedPreKey, lastResort, preKeys, kyberPreKeys };
}

/** Writes freshly generated initial keys into an empty store. */
export function storeInitialKeys(t: Txn, keys: InitialKeys, now: number): void {
  t.write(signedPreKeyCodec, signedPreKeyKey(keys.signedPreKey.id), { meta: { createdAt: now }, blob: keys.signedPreKey.serialize() });
  t.write(kyberPreKeyCodec, kyberPreKeyKey(keys.lastResort.id), { meta: { createdAt: now, lastResort: true }, blob: keys.lastResort.serialize() });
  for (const k of keys.preKeys) t.write(preKeyCodec, preKeyKey(k.id), { meta: { createdAt: now }, blob: k.serialize() });
  for (const k of keys.kyberPreKeys) t.write(kyberPreKeyCodec, kyberPreKeyKey(k.id), { meta: { createdAt: now, lastResort: false }, blob: k.serialize() });
  t.write(keyStateCodec, KEY_STATE_KEY, {
    nextPreKeyId: nextId(keys.preKeys.length),
    currentSignedPreKeyId: keys.signedPreKey.id,
    nextSignedPreKeyId: nextId(keys.signedPreKey.id),
    currentLastResortKyberId: keys.lastResort.id,
    nextKyberPreKeyId: nextId(keys.kyberPreKeys.length + 1),
  });
}

interface KeyEntry {
  key: string;
  id: number;
  meta: KeyMeta;
  blob: Uint8Array;
}

async function all(t: Txn, prefix: string, codec: RecordCodec<WithBlob<KeyMeta>>): Promise<KeyEntry[]> {
  return (await t.list(prefix)).map((r) => {
    const { meta, blob } = codec.decode(r.value);
    return { key: r.key, id: Number(r.key.slice(prefix.length)), meta, blob };
  });
}

/**
 * Plans the upload that brings the server back to a full stock and up to date keys, writing the
 * new private keys (and retiring the replaced ones) into `t`. Returns undefined when nothing is
 * due. The caller commits `t` BEFORE uploading, so a crash never leaves the server with public
 * keys whose private halves we lost.
 */
export async function planKeyMaintenance(
  backend: CryptoBackend,
  identity: IdentityKeyPair,
  t: Txn,
  counts: { preKeys: number; kyberPreKeys: number },
  now: number,
): Promise<UploadKeysRequest | undefined> {
  const state = await t.read(keyStateCodec, KEY_STATE_KEY);
  if (state === undefined) return undefined;
  const upload: UploadKeysRequest = {};
  const kyber = await all(t, PREFIX.kyberPreKey, kyberPreKeyCodec);
  const held = new Set(kyber.map((k) => k.id));
  const allocKyberId = (): number => {
    let id = state.nextKyberPreKeyId;
    // Never reuse an id still held locally (a wrapped counter could meet a kept last-resort key).
    for (let guard = 0; guard < 1_000 && held.has(id); guard++) id = nextId(id);
    state.nextKyberPreKeyId = nextId(id);
    held.add(id);
    return id;
  };
  const retire = (codec: RecordCodec<WithBlob<KeyMeta>>, e: KeyEntry): void => {
    e.meta = { ...e.meta, retiredAt: now };
    t.write(codec, e.key, { meta: e.meta, blob: e.blob });
  };
  if (counts.preKeys < REFILL_THRESHOLD) {
    // The upload replaces every one-time key on the server: retire ours, keep them for the grace period.
    for (const e of await all(t, PREFIX.preKey, preKeyCodec)) if (e.meta.retiredAt === undefined) retire(preKeyCodec, e);
    const list: PreKey[] = [];
    for (let i = 0; i < ONE_TIME_KEY_BATCH; i++) {
      const id = state.nextPreKeyId;
      state.nextPreKeyId = nextId(id);
      const r = generatePreKey(backend, id);
      t.write(preKeyCodec, preKeyKey(id), { meta: { createdAt: now }, blob: r.serialize() });
      list.push(preKeyWire(r));
    }
    upload.preKeys = list;
  }
  if (counts.kyberPreKeys < REFILL_THRESHOLD) {
    for (const e of kyber) if (!e.meta.lastResort && e.meta.retiredAt === undefined) retire(kyberPreKeyCodec, e);
    const list: KyberPreKey[] = [];
    for (let i = 0; i < ONE_TIME_KEY_BATCH; i++) {
      const id = allocKyberId();
      const r = generateKyberPreKey(backend, identity, id, now);
      t.write(kyberPreKeyCodec, kyberPreKeyKey(id), { meta: { createdAt: now, lastResort: false }, blob: r.serialize() });
      list.push(kyberPreKeyWire(r));
    }
    upload.kyberPreKeys = list;
  }
  const signed = await all(t, PREFIX.signedPreKey, signedPreKeyCodec);
  const current = signed.find((e) => e.id === state.currentSignedPreKeyId);
  if (current === undefined || now - current.meta.createdAt >= SIGNED_PRE_KEY_ROTATION_MS || now < current.meta.createdAt) {
    if (current) retire(signedPreKeyCodec, current);
    const id = state.nextSignedPreKeyId;
    state.nextSignedPreKeyId = nextId(id);
    const r = generateSignedPreKey(backend, identity, id, now);
    t.write(signedPreKeyCodec, signedPreKeyKey(id), { meta: { createdAt: now }, blob: r.serialize() });
    state.currentSignedPreKeyId = id;
    upload.signedPreKey = signedPreKeyWire(r);

    const oldLr = kyber.find((e) => e.id === state.currentLastResortKyberId);
    if (oldLr) retire(kyberPreKeyCodec, oldLr);
    const lrId = allocKyberId();
    const lr = generateKyberPreKey(backend, identity, lrId, now);
    t.write(kyberPreKeyCodec, kyberPreKeyKey(lrId), { meta: { createdAt: now, lastResort: true }, blob: lr.serialize() });
    state.currentLastResortKyberId = lrId;
    upload.kyberLastResortKey = kyberPreKeyWire(lr);
  }
  t.write(keyStateCodec, KEY_STATE_KEY, state);
  await pruneRetired(t, now);
  return Object.keys(upload).length === 0 ? undefined : upload;
}

/** Drops retired keys past the grace period, and the oldest past the count caps. */
export async function pruneRetired(t: Txn, now: number): Promise<void> {
  prune(t, await all(t, PREFIX.preKey, preKeyCodec), now, MAX_RETIRED_ONE_TIME_KEYS);
  const kyber = await all(t, PREFIX.kyberPreKey, kyberPreKeyCodec);
  prune(t, kyber.filter((k) => !k.meta.lastResort), now, MAX_RETIRED_ONE_TIME_KEYS);
  prune(t, kyber.filter((k) => k.meta.lastResort === true), now, MAX_RETIRED_SIGNED_KEYS);
  prune(t, await all(t, PREFIX.signedPreKey, signedPreKeyCodec), now, MAX_RETIRED_SIGNED_KEYS);
}

function prune(t: Txn, keys: KeyEntry[], now: number, max: number): void {
  const retired = keys.filter((k) => k.meta.retiredAt !== undefined).sort((a, b) => (a.meta.retiredAt ?? 0) - (b.meta.retiredAt ?? 0));
  for (let i = 0; i < retired.length; i++) {
    const k = retired[i]!;
    if (now - (k.meta.retiredAt ?? now) > RETIRED_KEY_GRACE_MS || retired.length - i > max) t.delete(k.key);
  }
}

/** The protocol's complaint about stored bytes is local damage (STATE_CORRUPT naming the record). */
function parseKey<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (isProtocolError(e)) throw corrupt(what, e.code);
    throw e;
  }
}

export async function loadPreKey(t: Txn, id: number): Promise<PreKeyRecord | undefined> {
  const k = await t.read(preKeyCodec, preKeyKey(id));
  return k ? parseKey('one-time pre-key', () => PreKeyRecord.deserialize(k.blob)) : undefined;
}
export async function loadSignedPreKey(t: Txn, id: number): Promise<SignedPreKeyRecord | undefined> {
  const k = await t.read(signedPreKeyCodec, signedPreKeyKey(id));
  return k ? parseKey('signed pre-key', () => SignedPreKeyRecord.deserialize(k.blob)) : undefined;
}
export async function loadKyberPreKey(t: Txn, id: number): Promise<KyberPreKeyRecord | undefined> {
  const k = await t.read(kyberPreKeyCodec, kyberPreKeyKey(id));
  return k ? parseKey('Kyber pre-key', () => KyberPreKeyRecord.deserialize(k.blob)) : undefined;
}
