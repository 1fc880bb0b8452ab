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
  IdentityKeyPair,
  isProtocolError,
  KyberPreKeyRecord,
  PreKeyRecord,
  SignedPreKeyRecord,
  type CryptoBackend,
} from '@tacit/protocol';
import {
  MAX_KEYS_PER_LIST,
  toBase64,
  validateKyberPreKey,
  validatePreKey,
  validateSignedPreKey,
  type KyberPreKey,
  type PreKey,
  type SignedPreKey,
  type UploadKeysRequest,
  type AddKeysRequest,
  type Validator,
} from '@tacit/api';
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
/** How many parts of the planned upload (`uploadParts`) the server has accepted. */
export const UPLOAD_PROGRESS_KEY = `${PREFIX.keys}upload-progress`;
export const uploadProgressCodec = jsonCodec<number>('pre-key bookkeeping', (v) => (isInt(v) && v >= 0 ? v : undefined));

/**
 * One-time Kyber pre-keys per upload request. 100 of them are about 220 KB of JSON, and a page's
 * main thread spends its task on the request body in proportion (serializing it and handing it to
 * `fetch`: tens of milliseconds there); 25 (about 57 KB) keep that task short. The EC keys (about
 * 60 bytes each) and the signed keys go with the first part.
 */
export const KYBER_KEYS_PER_REQUEST = 25;

/**
 * A large upload cut into requests: the first replaces (PUT /v1/keys, or registration itself)
 * and carries everything but the Kyber one-time keys past the first KYBER_KEYS_PER_REQUEST; the
 * rest are added (POST /v1/keys/one-time) in parts of KYBER_KEYS_PER_REQUEST.
 */
export function uploadParts<T extends { kyberPreKeys?: KyberPreKey[] }>(req: T): { first: T; rest: AddKeysRequest[] } {
  const kyber = req.kyberPreKeys;
  if (kyber === undefined || kyber.length <= KYBER_KEYS_PER_REQUEST) return { first: req, rest: [] };
  const rest: AddKeysRequest[] = [];
  for (let i = KYBER_KEYS_PER_REQUEST; i < kyber.length; i += KYBER_KEYS_PER_REQUEST) rest.push({ kyberPreKeys: kyber.slice(i, i + KYBER_KEYS_PER_REQUEST) });
  return { first: { ...req, kyberPreKeys: kyber.slice(0, KYBER_KEYS_PER_REQUEST) }, rest };
}
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
 * A new device's initial key as it is stored (the protocol record's own bytes, what the key
 * records hold) and as it is uploaded (its wire form): what the device's thread needs of it,
 * with no protocol parsing or encoding left to do there.
 */
export interface EncodedKey<W> {
  record: Uint8Array;
  wire: W;
}

export interface EncodedInitialKeys {
  signedPreKey: EncodedKey<SignedPreKey>;
  lastResort: EncodedKey<KyberPreKey>;
  preKeys: EncodedKey<PreKey>[];
  kyberPreKeys: EncodedKey<KyberPreKey>[];
}

/**
 * Makes a new device's initial keys, encoded, possibly somewhere else than the caller's thread:
 * the web client runs `encodeInitialKeys(generateInitialKeys(...))` in a Web Worker (200 key
 * pairs and 101 signatures were one task of several hundred milliseconds on a page's main
 * thread, and parsing the records back and encoding them for upload another 100-400 ms). Gets
 * the identity key pair, private key included, because it signs the signed and Kyber pre-keys;
 * without one (a new account) it makes the identity too and returns it: a page's first curve
 * key costs tens of milliseconds (the fixed-base tables are built on first use).
 */
export type InitialKeyGenerator = (identity: IdentityKeyPair | undefined, now: number) => Promise<{ identity: IdentityKeyPair; keys: EncodedInitialKeys }>;

/** The default generator: here, synchronously. */
export function makeInitialKeys(backend: CryptoBackend, identity: IdentityKeyPair | undefined, now: number): { identity: IdentityKeyPair; keys: EncodedInitialKeys } {
  const id = identity ?? IdentityKeyPair.generate(backend);
  return { identity: id, keys: encodeInitialKeys(generateInitialKeys(backend, id, now)) };
}

/**
 * Largest stored record of one initial key accepted from a generator: a Kyber pre-key record
 * (public 1,569 + secret 3,169 bytes + signature, base64 in JSON) is about 6.5 KiB; twice that
 * leaves room for the format to grow without letting a broken generator hand over megabytes.
 */
export const MAX_KEY_RECORD_BYTES = 16 * 1024;

export function encodeInitialKeys(k: InitialKeys): EncodedInitialKeys {
  return {
    signedPreKey: { record: k.signedPreKey.serialize(), wire: signedPreKeyWire(k.signedPreKey) },
    lastResort: { record: k.lastResort.serialize(), wire: kyberPreKeyWire(k.lastResort) },
    preKeys: k.preKeys.map((r) => ({ record: r.serialize(), wire: preKeyWire(r) })),
    kyberPreKeys: k.kyberPreKeys.map((r) => ({ record: r.serialize(), wire: kyberPreKeyWire(r) })),
  };
}

/**
 * The keys a refill or rotation needs made, with the ids `planKeyMaintenance` allocated for them
 * from the bookkeeping (the generator never chooses an id). Each list holds at most
 * ONE_TIME_KEY_BATCH ids.
 */
export interface KeyRequest {
  preKeyIds: number[];
  kyberPreKeyIds: number[];
  signedPreKeyId?: number;
  lastResortId?: number;
}

/** Keys made for a `KeyRequest`, encoded as stored and as uploaded, in the request's order. */
export interface EncodedKeys {
  preKeys: EncodedKey<PreKey>[];
  kyberPreKeys: EncodedKey<KyberPreKey>[];
  signedPreKey?: EncodedKey<SignedPreKey>;
  lastResort?: EncodedKey<KyberPreKey>;
}

/**
 * Makes the keys of a refill or rotation (`ClientOptions.keyGenerator`), possibly somewhere else
 * than the caller's thread: the web client runs `makeKeys` in its key worker, since 100 Kyber
 * key pairs and their signatures are one task of hundreds of milliseconds on a page's main
 * thread. Gets the identity key pair, private key included, to sign the signed and Kyber
 * pre-keys. What it returns is checked (`checkEncodedKeys`) before anything is stored.
 */
export type KeyGenerator = (identity: IdentityKeyPair, request: KeyRequest, now: number) => Promise<EncodedKeys>;

/** The default key generator: here, synchronously. */
export function makeKeys(backend: CryptoBackend, identity: IdentityKeyPair, request: KeyRequest, now: number): EncodedKeys {
  const out: EncodedKeys = {
    preKeys: request.preKeyIds.map((id) => {
      const r = generatePreKey(backend, id);
      return { record: r.serialize(), wire: preKeyWire(r) };
    }),
    kyberPreKeys: request.kyberPreKeyIds.map((id) => {
      const r = generateKyberPreKey(backend, identity, id, now);
      return { record: r.serialize(), wire: kyberPreKeyWire(r) };
    }),
  };
  if (request.signedPreKeyId !== undefined) {
    const r = generateSignedPreKey(backend, identity, request.signedPreKeyId, now);
    out.signedPreKey = { record: r.serialize(), wire: signedPreKeyWire(r) };
  }
  if (request.lastResortId !== undefined) {
    const r = generateKyberPreKey(backend, identity, request.lastResortId, now);
    out.lastResort = { record: r.serialize(), wire: kyberPreKeyWire(r) };
  }
  return out;
}

/** The ids `generateInitialKeys` gives: signed and last-resort 1, one-time EC 1..N, one-time Kyber 2..N+1. */
export function initialKeyRequest(): Required<KeyRequest> {
  const ids = (first: number) => Array.from({ length: ONE_TIME_KEY_BATCH }, (_, i) => first + i);
  return { preKeyIds: ids(1), kyberPreKeyIds: ids(2), signedPreKeyId: 1, lastResortId: 1 };
}

/**
 * Checks keys made elsewhere (a worker's answer) for `request` without parsing the records,
 * which is the work the generator was meant to take off this thread: the shape; each record
 * bytes of 1..MAX_KEY_RECORD_BYTES; each wire form as the server's validators see it; exactly
 * the requested keys with the requested ids, in order (a signed or last-resort key that was not
 * asked for is refused too). Anything else is INVALID_ARGUMENT. Awaits `pause` after every
 * KEYS_PER_STEP keys. What is not checked here: the signatures (the server verifies each against
 * the identity and refuses the upload otherwise) and that a record holds the private half of its
 * wire key (the generator is the client's own code; a record is parsed, and checked, when a
 * session uses it).
 */
export async function checkEncodedKeys(v: unknown, request: KeyRequest, pause: () => Promise<void> = async () => undefined): Promise<EncodedKeys> {
  const bad = (why: string): never => {
    throw new ClientError('INVALID_ARGUMENT', `generated keys refused: ${why}`);
  };
  const key = <W extends { keyId: number }>(x: unknown, wire: Validator<W>, id: number, what: string): EncodedKey<W> => {
    if (!isObj(x)) return bad(`${what}: not an object`);
    const record = x['record'];
    if (!(record instanceof Uint8Array) || record.length === 0 || record.length > MAX_KEY_RECORD_BYTES) return bad(`${what}: bad record`);
    const w = wire(x['wire']);
    if (!w.ok) return bad(`${what}: ${w.path.replace(/^\$/, 'wire')} ${w.reason}`);
    if (w.value.keyId !== id) return bad(`${what}: unexpected key id`);
    return { record, wire: w.value };
  };
  const list = async <W extends { keyId: number }>(x: unknown, wire: Validator<W>, ids: number[], what: string): Promise<EncodedKey<W>[]> => {
    if (!Array.isArray(x) || x.length !== ids.length) return bad(`${what}: expected ${ids.length}`);
    const out: EncodedKey<W>[] = [];
    for (let i = 0; i < x.length; i++) {
      out.push(key(x[i], wire, ids[i]!, what));
      if ((i + 1) % KEYS_PER_STEP === 0) await pause();
    }
    return out;
  };
  const single = <W extends { keyId: number }>(x: unknown, wire: Validator<W>, id: number | undefined, what: string): EncodedKey<W> | undefined => {
    if (id === undefined) return x === undefined ? undefined : bad(`${what}: not asked for`);
    return key(x, wire, id, what);
  };
  if (!isObj(v)) return bad('not an object');
  const out: EncodedKeys = {
    preKeys: await list(v['preKeys'], validatePreKey, request.preKeyIds, 'one-time pre-keys'),
    kyberPreKeys: await list(v['kyberPreKeys'], validateKyberPreKey, request.kyberPreKeyIds, 'Kyber pre-keys'),
  };
  const spk = single(v['signedPreKey'], validateSignedPreKey, request.signedPreKeyId, 'signed pre-key');
  const lr = single(v['lastResort'], validateKyberPreKey, request.lastResortId, 'last-resort key');
  if (spk) out.signedPreKey = spk;
  if (lr) out.lastResort = lr;
  return out;
}

/**
 * Checks encoded initial keys from elsewhere (a worker's answer): `checkEncodedKeys` with the ids
 * `generateInitialKeys` gives (`initialKeyRequest`). The server verifies every signature at
 * registration and refuses the account otherwise.
 */
export async function checkEncodedInitialKeys(v: unknown, pause: () => Promise<void> = async () => undefined): Promise<EncodedInitialKeys> {
  const k = await checkEncodedKeys(v, initialKeyRequest(), pause);
  // Both were asked for, so both are there.
  return { preKeys: k.preKeys, kyberPreKeys: k.kyberPreKeys, signedPreKey: k.signedPreKey!, lastResort: k.lastResort! };
}

/**
 * Keys checked or written between two `pause`s (`checkEncodedInitialKeys`, `storeInitialKeys`):
 * on a page that just loaded (code not yet optimised) 25 Kyber keys take a few milliseconds.
 */
export const KEYS_PER_STEP = 25;

/**
 * Writes freshly generated initial keys (encoded: `encodeInitialKeys`) into an empty store,
 * awaiting `pause` after every KEYS_PER_STEP keys (registration passes a yield to the event loop,
 * so a page's main thread does this in short tasks).
 */
export async function storeInitialKeys(t: Txn, keys: EncodedInitialKeys, now: number, pause: () => Promise<void> = async () => undefined): Promise<void> {
  let n = 0;
  const step = async (): Promise<void> => {
    if (++n % KEYS_PER_STEP === 0) await pause();
  };
  const spkId = keys.signedPreKey.wire.keyId;
  const lrId = keys.lastResort.wire.keyId;
  t.write(signedPreKeyCodec, signedPreKeyKey(spkId), { meta: { createdAt: now }, blob: keys.signedPreKey.record });
  t.write(kyberPreKeyCodec, kyberPreKeyKey(lrId), { meta: { createdAt: now, lastResort: true }, blob: keys.lastResort.record });
  for (const k of keys.preKeys) {
    t.write(preKeyCodec, preKeyKey(k.wire.keyId), { meta: { createdAt: now }, blob: k.record });
    await step();
  }
  for (const k of keys.kyberPreKeys) {
    t.write(kyberPreKeyCodec, kyberPreKeyKey(k.wire.keyId), { meta: { createdAt: now, lastResort: false }, blob: k.record });
    await step();
  }
  t.write(keyStateCodec, KEY_STATE_KEY, {
    nextPreKeyId: nextId(keys.preKeys.length),
    currentSignedPreKeyId: spkId,
    nextSignedPreKeyId: nextId(spkId),
    currentLastResortKyberId: lrId,
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

/** What is due, from the bookkeeping as it is in `t`: the keys to make, and what they replace. */
interface Due {
  request: KeyRequest | undefined;
  /** The bookkeeping once the request's ids are taken. */
  state: KeyState;
  kyber: KeyEntry[];
  currentSigned: KeyEntry | undefined;
}

async function due(t: Txn, counts: { preKeys: number; kyberPreKeys: number }, now: number): Promise<Due | undefined> {
  const stored = await t.read(keyStateCodec, KEY_STATE_KEY);
  if (stored === undefined) return undefined;
  const state = { ...stored };
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
  const request: KeyRequest = { preKeyIds: [], kyberPreKeyIds: [] };
  if (counts.preKeys < REFILL_THRESHOLD) {
    for (let i = 0; i < ONE_TIME_KEY_BATCH; i++) {
      request.preKeyIds.push(state.nextPreKeyId);
      state.nextPreKeyId = nextId(state.nextPreKeyId);
    }
  }
  if (counts.kyberPreKeys < REFILL_THRESHOLD) {
    for (let i = 0; i < ONE_TIME_KEY_BATCH; i++) request.kyberPreKeyIds.push(allocKyberId());
  }
  const signed = await all(t, PREFIX.signedPreKey, signedPreKeyCodec);
  const currentSigned = signed.find((e) => e.id === state.currentSignedPreKeyId);
  if (currentSigned === undefined || now - currentSigned.meta.createdAt >= SIGNED_PRE_KEY_ROTATION_MS || now < currentSigned.meta.createdAt) {
    request.signedPreKeyId = state.nextSignedPreKeyId;
    state.nextSignedPreKeyId = nextId(state.nextSignedPreKeyId);
    request.lastResortId = allocKyberId();
  }
  const none = request.preKeyIds.length === 0 && request.kyberPreKeyIds.length === 0 && request.signedPreKeyId === undefined;
  return { request: none ? undefined : request, state, kyber, currentSigned };
}

const sameRequest = (a: KeyRequest | undefined, b: KeyRequest | undefined): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * The first half of key maintenance: what is due given the server's counts, with the ids to
 * give the new keys (allocated as `applyKeyMaintenance` will take them), or undefined when
 * nothing is. Reads only: run it on a view, make the keys (`KeyGenerator`, maybe in a worker),
 * then apply them in a transaction.
 */
export async function keyMaintenanceRequest(t: Txn, counts: { preKeys: number; kyberPreKeys: number }, now: number): Promise<KeyRequest | undefined> {
  return (await due(t, counts, now))?.request;
}

/**
 * The second half: writes the keys made for `request` (checked: `checkEncodedKeys`) into `t`,
 * retires the ones they replace, advances the bookkeeping, prunes retired keys, and returns the
 * upload that brings the server back to a full stock (undefined when nothing was due). The
 * caller commits `t` BEFORE uploading, so a crash never leaves the server with public keys whose
 * private halves we lost. If the bookkeeping moved since `request` was planned (ids taken
 * meanwhile), nothing is written and the result is INVALID_ARGUMENT: plan again. Awaits `pause`
 * after every KEYS_PER_STEP keys written (a page's main thread: short tasks).
 */
export async function applyKeyMaintenance(
  t: Txn,
  counts: { preKeys: number; kyberPreKeys: number },
  now: number,
  request: KeyRequest | undefined,
  keys: EncodedKeys | undefined,
  pause: () => Promise<void> = async () => undefined,
): Promise<UploadKeysRequest | undefined> {
  const d = await due(t, counts, now);
  let n = 0;
  const step = async (): Promise<void> => {
    if (++n % KEYS_PER_STEP === 0) await pause();
  };
  if (d === undefined) return undefined;
  if (!sameRequest(d.request, request)) throw new ClientError('INVALID_ARGUMENT', 'key bookkeeping changed since the keys were planned');
  if (d.request !== undefined && keys === undefined) throw new ClientError('INVALID_ARGUMENT', 'no keys for the planned maintenance');
  const upload: UploadKeysRequest = {};
  const retire = (codec: RecordCodec<WithBlob<KeyMeta>>, e: KeyEntry): void => {
    t.write(codec, e.key, { meta: { ...e.meta, retiredAt: now }, blob: e.blob });
  };
  if (keys !== undefined && keys.preKeys.length > 0) {
    // The upload replaces every one-time key on the server: retire ours, keep them for the grace period.
    for (const e of await all(t, PREFIX.preKey, preKeyCodec)) {
      if (e.meta.retiredAt === undefined) retire(preKeyCodec, e);
      await step();
    }
    for (const k of keys.preKeys) {
      t.write(preKeyCodec, preKeyKey(k.wire.keyId), { meta: { createdAt: now }, blob: k.record });
      await step();
    }
    upload.preKeys = keys.preKeys.map((k) => k.wire);
  }
  if (keys !== undefined && keys.kyberPreKeys.length > 0) {
    for (const e of d.kyber) {
      if (!e.meta.lastResort && e.meta.retiredAt === undefined) retire(kyberPreKeyCodec, e);
      await step();
    }
    for (const k of keys.kyberPreKeys) {
      t.write(kyberPreKeyCodec, kyberPreKeyKey(k.wire.keyId), { meta: { createdAt: now, lastResort: false }, blob: k.record });
      await step();
    }
    upload.kyberPreKeys = keys.kyberPreKeys.map((k) => k.wire);
  }
  if (keys?.signedPreKey !== undefined && keys.lastResort !== undefined) {
    if (d.currentSigned) retire(signedPreKeyCodec, d.currentSigned);
    t.write(signedPreKeyCodec, signedPreKeyKey(keys.signedPreKey.wire.keyId), { meta: { createdAt: now }, blob: keys.signedPreKey.record });
    d.state.currentSignedPreKeyId = keys.signedPreKey.wire.keyId;
    upload.signedPreKey = keys.signedPreKey.wire;
    const oldLr = d.kyber.find((e) => e.id === d.state.currentLastResortKyberId);
    if (oldLr) retire(kyberPreKeyCodec, oldLr);
    t.write(kyberPreKeyCodec, kyberPreKeyKey(keys.lastResort.wire.keyId), { meta: { createdAt: now, lastResort: true }, blob: keys.lastResort.record });
    d.state.currentLastResortKyberId = keys.lastResort.wire.keyId;
    upload.kyberLastResortKey = keys.lastResort.wire;
  }
  t.write(keyStateCodec, KEY_STATE_KEY, d.state);
  await pruneRetired(t, now);
  return Object.keys(upload).length === 0 ? undefined : upload;
}

/**
 * Both halves in one transaction, the keys made here, synchronously (what a client without a
 * `keyGenerator` does). The caller commits `t` BEFORE uploading.
 */
export async function planKeyMaintenance(
  backend: CryptoBackend,
  identity: IdentityKeyPair,
  t: Txn,
  counts: { preKeys: number; kyberPreKeys: number },
  now: number,
): Promise<UploadKeysRequest | undefined> {
  const request = await keyMaintenanceRequest(t, counts, now);
  return applyKeyMaintenance(t, counts, now, request, request && makeKeys(backend, identity, request, now));
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
