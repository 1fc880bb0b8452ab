// The Node backend: node:crypto for X25519, hashes, HMAC, HKDF and AES (DESIGN §2.6: X25519 about
// 30x and HMAC about 2.5x faster than pure JS here). Imported only through `@tacit/protocol/node`.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  randomBytes,
  randomFillSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type CryptoBackend, clampPrivateKey } from './backend.ts';
import type { MlKem1024 } from './ml-kem.ts';
import { mlKem1024FromWasm } from './ml-kem-wasm.ts';

// Key objects are the expensive part of node:crypto X25519 (a PKCS#8 DER import costs more than
// the agreement itself). Private keys are imported as JWK, which OpenSSL derives from `d` alone
// (the required `x` member is not used for a private import; we pass the base point), and both
// private and public key objects are cached per byte array: our key classes hand the backend the
// same Uint8Array for the life of a key, so a WeakMap keyed on it never outlives the key.
const BASE_POINT_B64 = Buffer.from([9, ...new Array<number>(31).fill(0)]).toString('base64url');
const privateObjects = new WeakMap<Uint8Array, KeyObject>();
const publicObjects = new WeakMap<Uint8Array, KeyObject>();

/**
 * Ed25519 signing keys kept imported (the sender keys of the groups one sends to most recently;
 * the oldest is dropped). An import costs about as much as a signature; each entry holds one
 * private key in memory, as the sender-key records themselves do while in use.
 */
export const MAX_CACHED_SIGNING_KEYS = 32;
// Ed25519 signing keys, likewise imported as JWK from the seed (`x` unused, as for X25519; a DER
// import costs about ten times more). A sender key's record is read afresh for every group
// message, so its seed is a new array each time: these are cached by the seed's value instead.
const signingObjects = new Map<string, KeyObject>();
/** PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410): the import used if a JWK one is refused. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

function privateKeyObject(priv: Uint8Array): KeyObject {
  let k = privateObjects.get(priv);
  if (k === undefined) {
    k = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(priv), x: BASE_POINT_B64 }, format: 'jwk' });
    privateObjects.set(priv, k);
  }
  return k;
}

function publicKeyObject(pub: Uint8Array): KeyObject {
  let k = publicObjects.get(pub);
  if (k === undefined) {
    k = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(pub) }, format: 'jwk' });
    publicObjects.set(pub, k);
  }
  return k;
}

/**
 * Small random requests (keys, seeds, nonces) are served from a pool filled from the OS this many
 * bytes at a time: a `randomBytes` call costs 2–10 µs here whatever its size. Served bytes are
 * copied out and wiped from the pool at once, so no byte is handed out twice or kept.
 */
export const RANDOM_POOL_BYTES = 4096;
/** Requests longer than this go to `randomBytes` directly. */
const RANDOM_POOL_MAX_REQUEST = 64;
const randomPool = Buffer.alloc(RANDOM_POOL_BYTES);
let randomPoolUsed = RANDOM_POOL_BYTES;

function random(n: number): Uint8Array {
  if (n > RANDOM_POOL_MAX_REQUEST) return u8(randomBytes(n));
  if (randomPoolUsed + n > RANDOM_POOL_BYTES) {
    randomFillSync(randomPool);
    randomPoolUsed = 0;
  }
  const out = new Uint8Array(n);
  out.set(randomPool.subarray(randomPoolUsed, randomPoolUsed + n));
  randomPool.fill(0, randomPoolUsed, randomPoolUsed + n);
  randomPoolUsed += n;
  return out;
}

/** SubjectPublicKeyInfo (RFC 8410) of an X25519 or Ed25519 key: this header, then the 32 raw bytes. */
const SPKI_HEADER_BYTES = 12;

/**
 * The raw public key of a key object, read from its DER export (used for the rare Ed25519 key
 * generation; see `publicFromPrivate` for when a JWK export is safe). On Node 20 a JWK export of
 * a key made by `generateKeyPairSync` could deadlock the process: a garbage collection inside the
 * export destroyed the finished key-generation job, whose config then waited for the mutex of the
 * same key, which the export held (main thread parked for good; seen in CI, DESIGN §2.6).
 */
function rawPublic(k: KeyObject): Uint8Array {
  const der = k.export({ format: 'der', type: 'spki' });
  if (der.length !== SPKI_HEADER_BYTES + 32) throw new Error('unexpected public key encoding');
  return u8(der).subarray(SPKI_HEADER_BYTES);
}

/** The X25519 base point u = 9, as a key object: an agreement with it is the public key. */
let basePoint: KeyObject | undefined;

/** X25519(k, 9) (RFC 7748 §6.1): the public key by an agreement, 45 µs here. */
function publicByAgreement(priv: Uint8Array): Uint8Array {
  basePoint ??= createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: BASE_POINT_B64 }, format: 'jwk' });
  return u8(diffieHellman({ privateKey: privateKeyObject(priv), publicKey: basePoint }));
}

/**
 * The public half that OpenSSL computed when it imported the private key (its fixed-base
 * multiplication runs at import), copied out of the key object by a JWK export: about 6 µs.
 *
 * Safe from the deadlock described at `rawPublic`, which needs a key that a key-generation job
 * also holds: the job's config locks that key's own mutex when it is destroyed
 * (`~KeyPairGenConfig`, Node's src/crypto/crypto_keygen.h), while the export holds the same
 * mutex. Every key exported here was made by `createPrivateKey` in this file (a key object with a
 * mutex of its own) and never reaches a key-generation job: this file runs none, and the backend
 * takes bytes, never key objects. test/keygen-deadlock.test.ts checks the source for key
 * generation and makes 40,000 keys in a small heap, alone and while unrelated generated keys
 * are being collected.
 */
function publicFromImport(priv: Uint8Array): Uint8Array | undefined {
  const { x } = createPublicKey(privateKeyObject(priv)).export({ format: 'jwk' });
  const pub = typeof x === 'string' ? Buffer.from(x, 'base64url') : undefined;
  return pub !== undefined && pub.length === 32 ? u8(pub) : undefined;
}

/**
 * Whether `publicFromImport` gives X25519(k, 9): checked once per process on a fixed scalar, so
 * a Node or OpenSSL that took the public half from the JWK's placeholder `x` instead of deriving
 * it from `d` falls back to the agreement instead of handing out wrong keys.
 */
let importGivesPublic: boolean | undefined;

function publicFromPrivate(priv: Uint8Array): Uint8Array {
  if (importGivesPublic === undefined) {
    const probe = clampPrivateKey(new Uint8Array(32).fill(0x5a));
    const fast = publicFromImport(probe);
    importGivesPublic = fast !== undefined && Buffer.from(fast).equals(publicByAgreement(probe));
  }
  return (importGivesPublic ? publicFromImport(priv) : undefined) ?? publicByAgreement(priv);
}

function signingKeyObject(seed: Uint8Array): KeyObject {
  const d = b64url(seed);
  let k = signingObjects.get(d);
  if (k === undefined) {
    try {
      k = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d, x: BASE_POINT_B64 }, format: 'jwk' });
    } catch {
      // An OpenSSL that checks `x` against `d`: the slower import that needs no public key.
      k = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    }
    if (signingObjects.size >= MAX_CACHED_SIGNING_KEYS) signingObjects.delete(signingObjects.keys().next().value as string);
    signingObjects.set(d, k);
  }
  return k;
}

/**
 * Ed25519 public keys kept imported for verification (the oldest is dropped). A bundle's two
 * pre-key signatures are checked against the same identity key, and a server checks every upload
 * of an account against it; an import costs 10–15 % of a verification.
 */
export const MAX_CACHED_VERIFYING_KEYS = 64;
const verifyingObjects = new Map<string, KeyObject>();

function verifyingKeyObject(publicKey: Uint8Array): KeyObject {
  const x = b64url(publicKey);
  let k = verifyingObjects.get(x);
  if (k === undefined) {
    k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    if (verifyingObjects.size >= MAX_CACHED_VERIFYING_KEYS) verifyingObjects.delete(verifyingObjects.keys().next().value as string);
    verifyingObjects.set(x, k);
  }
  return k;
}

/** A random seed and the public point OpenSSL derives from it (RFC 8032 §5.1.5). */
function generateEd25519(): { seed: Uint8Array; publicKey: Uint8Array } {
  const seed = random(32);
  return { seed, publicKey: rawPublic(createPublicKey(signingKeyObject(seed))) };
}

/**
 * A fresh key pair: 32 random bytes, clamped (RFC 7748), and their public key, with the private
 * key object cached: its later agreements then skip the import. Not `generateKeyPairSync`: the
 * key-generation jobs it leaves to the garbage collector took part in the Node 20 deadlock
 * described at `rawPublic`.
 */
function generateKeyPair(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const privateKey = clampPrivateKey(random(32));
  return { privateKey, publicKey: publicFromPrivate(privateKey) };
}

/** Where the `pqclean` package keeps its WebAssembly build of PQClean (ML-KEM-1024 among others). */
const PQCLEAN_WASM = 'pqclean/wasm/gen/pqclean.wasm';

let mlKem: MlKem1024 | null | undefined;

/**
 * The WebAssembly ML-KEM-1024 engine, compiled once per process. Where it cannot load (the file is
 * missing, WebAssembly is disabled), Kyber falls back to @noble/post-quantum's engine, and the
 * process is told so once, as a warning.
 */
function loadMlKem(): MlKem1024 | undefined {
  if (mlKem !== undefined) return mlKem ?? undefined;
  try {
    const path = createRequire(import.meta.url).resolve(PQCLEAN_WASM);
    mlKem = mlKem1024FromWasm(new WebAssembly.Module(readFileSync(path)));
  } catch (e) {
    mlKem = null;
    const why = e instanceof Error ? e.name : typeof e;
    process.emitWarning(`ML-KEM WebAssembly engine unavailable (${why}); Kyber uses @noble/post-quantum (slower session setup)`, { code: 'TACIT_MLKEM_FALLBACK' });
  }
  return mlKem ?? undefined;
}

export interface NodeBackendOptions {
  /** Use the WebAssembly ML-KEM engine when it loads (default true); false forces @noble's. */
  wasmKem?: boolean;
}

export function nodeBackend(options: NodeBackendOptions = {}): CryptoBackend {
  const kem = options.wasmKem === false ? undefined : loadMlKem();
  return {
    name: 'node',
    ...(kem !== undefined ? { mlKem1024: kem } : {}),
    randomBytes: random,
    x25519GenerateKeyPair: generateKeyPair,
    x25519PublicFromPrivate: publicFromPrivate,
    x25519(priv, pub) {
      try {
        return u8(diffieHellman({ privateKey: privateKeyObject(priv), publicKey: publicKeyObject(pub) }));
      } catch {
        // OpenSSL refuses an all-zero shared secret; report it as zero for the caller to reject.
        return new Uint8Array(32);
      }
    },
    sha256: (d) => u8(createHash('sha256').update(d).digest()),
    sha512(...parts) {
      const h = createHash('sha512');
      for (const p of parts) h.update(p);
      return u8(h.digest());
    },
    hmacSha256(key, ...parts) {
      const h = createHmac('sha256', key);
      for (const p of parts) h.update(p);
      return u8(h.digest());
    },
    hkdfSha256: (ikm, salt, info, length) => new Uint8Array(hkdfSync('sha256', ikm, salt, info, length)),
    sha3_256: (d) => u8(createHash('sha3-256').update(d).digest()),
    shake256: (d, length) => u8(createHash('shake256', { outputLength: length }).update(d).digest()),
    ed25519GenerateKeyPair: generateEd25519,
    ed25519Sign: (seed, message) => u8(sign(null, message, signingKeyObject(seed))),
    ed25519Verify(publicKey, message, signature) {
      try {
        return verify(null, message, verifyingKeyObject(publicKey), signature);
      } catch {
        return false;
      }
    },
    aes256CbcEncrypt(key, iv, pt) {
      const c = createCipheriv('aes-256-cbc', key, iv);
      return u8(Buffer.concat([c.update(pt), c.final()]));
    },
    aes256CbcDecrypt(key, iv, ct) {
      if (ct.length === 0 || ct.length % 16 !== 0) return null;
      try {
        const d = createDecipheriv('aes-256-cbc', key, iv);
        return u8(Buffer.concat([d.update(ct), d.final()]));
      } catch {
        return null;
      }
    },
  };
}
