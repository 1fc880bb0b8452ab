/**
 * The key worker: makes keys off the page's main thread, where they were one task of several
 * hundred milliseconds (docs/PERFORMANCE.md, Browser), and encodes them as they are stored and
 * uploaded, so the page parses and encodes nothing. Two kinds of request:
 *
 * - a new device's initial keys (a signed pre-key, a last-resort Kyber key, 100 one-time EC and
 *   100 one-time Kyber pre-keys, 101 signatures): the SDK's own `generateInitialKeys`;
 * - the keys of a pre-key refill or a signed pre-key rotation, with the ids the SDK allocated:
 *   the SDK's own `makeKeys`.
 *
 * Both run on the same crypto backend as the page (crypto.ts: WebCrypto curves, the WebAssembly
 * ML-KEM). One request per worker (keygen.ts starts it and ends it):
 *   in:  { identity?: Uint8Array (IdentityKeyPair.serialize()), now: number }
 *   out: { ok: true, identity: Uint8Array, keys: EncodedInitialKeys }
 *   in:  { identity: Uint8Array, now: number, request: KeyRequest }
 *   out: { ok: true, keys: EncodedKeys }
 *   or   { ok: false, error: <error name> }
 * Without an identity (a new account) the worker makes it too: the first curve key of a page
 * builds noble's fixed-base tables, tens of milliseconds, which then happen here. The records'
 * buffers are transferred, not copied. The identity's private key signs the pre-keys; the worker
 * stores nothing and hands the pair only to the page that asked.
 */
import { encodeInitialKeys, generateInitialKeys, makeKeys, MAX_GENERATED_KEY_ID, ONE_TIME_KEY_BATCH, type EncodedKey, type EncodedKeys, type KeyRequest } from '@tacit/client';
import { IdentityKeyPair } from '@tacit/protocol';
import { webBackend } from './crypto.js';

/** What this file needs of a dedicated worker's global scope (the project's DOM typings describe a page). */
interface WorkerScope {
  onmessage: ((e: MessageEvent<unknown>) => void) | null;
  postMessage(message: unknown, transfer: Transferable[]): void;
}
const scope = globalThis as unknown as WorkerScope;

scope.onmessage = (e) => {
  void answer(e.data).then((reply) => scope.postMessage(reply, reply.ok ? transferables(reply.keys) : []));
};

/** Every record's buffer once (a buffer listed twice would make postMessage throw). */
function transferables(k: EncodedKeys): Transferable[] {
  const buffers = new Set<ArrayBuffer>();
  const all: (EncodedKey<unknown> | undefined)[] = [k.signedPreKey, k.lastResort, ...k.preKeys, ...k.kyberPreKeys];
  for (const key of all) {
    if (key?.record.buffer instanceof ArrayBuffer) buffers.add(key.record.buffer);
  }
  return [...buffers];
}

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 && v <= MAX_GENERATED_KEY_ID;
const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length <= ONE_TIME_KEY_BATCH && v.every(isId);

/** A refill's request as the SDK makes it; anything else is refused. */
function keyRequest(v: unknown): KeyRequest | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  const { preKeyIds, kyberPreKeyIds, signedPreKeyId, lastResortId } = r;
  if (!isIds(preKeyIds) || !isIds(kyberPreKeyIds) || !(signedPreKeyId === undefined || isId(signedPreKeyId)) || !(lastResortId === undefined || isId(lastResortId))) return undefined;
  return { preKeyIds, kyberPreKeyIds, ...(signedPreKeyId !== undefined ? { signedPreKeyId } : {}), ...(lastResortId !== undefined ? { lastResortId } : {}) };
}

type Reply = { ok: true; identity?: Uint8Array; keys: EncodedKeys } | { ok: false; error: string };

async function answer(data: unknown): Promise<Reply> {
  try {
    const req = data as { identity?: unknown; now?: unknown; request?: unknown } | null;
    if (typeof req !== 'object' || req === null || !(req.identity === undefined || req.identity instanceof Uint8Array) || typeof req.now !== 'number' || !Number.isSafeInteger(req.now) || req.now < 0) {
      return { ok: false, error: 'BadRequest' };
    }
    const backend = await webBackend();
    if (req.request !== undefined) {
      const request = keyRequest(req.request);
      if (request === undefined || !(req.identity instanceof Uint8Array)) return { ok: false, error: 'BadRequest' };
      return { ok: true, keys: makeKeys(backend, IdentityKeyPair.deserialize(req.identity), request, req.now) };
    }
    const identity = req.identity instanceof Uint8Array ? IdentityKeyPair.deserialize(req.identity) : IdentityKeyPair.generate(backend);
    return { ok: true, identity: identity.serialize(), keys: encodeInitialKeys(generateInitialKeys(backend, identity, req.now)) };
  } catch (e) {
    // The name only: a message could quote input, and none of it belongs in a log.
    return { ok: false, error: e instanceof Error ? e.name : 'Error' };
  }
}
