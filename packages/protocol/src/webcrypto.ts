// X25519 and Ed25519 from a browser's WebCrypto (`crypto.subtle`), for the portable backend: the
// browser's native curves instead of @noble's, where the browser has them. Asynchronous (every
// WebCrypto call returns a promise), so they fill the backend's optional `x25519Async` and
// `ed25519VerifyAsync`. Feature-detected by a real round trip, never by user agent; isomorphic
// (takes a SubtleCrypto, imports nothing).
import type { CryptoBackend } from './backend.ts';

export type WebCryptoCurves = Pick<CryptoBackend, 'x25519Async' | 'ed25519VerifyAsync'>;

/** PKCS#8 for an X25519 private key is this fixed prefix and the 32 key bytes (RFC 8410). */
const X25519_PKCS8_PREFIX = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20);

function pkcs8(privateKey: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(X25519_PKCS8_PREFIX.length + 32);
  out.set(X25519_PKCS8_PREFIX);
  out.set(privateKey, X25519_PKCS8_PREFIX.length);
  return out;
}

function x25519With(subtle: SubtleCrypto): NonNullable<WebCryptoCurves['x25519Async']> {
  // Imported keys cached per byte array: our key classes hand the backend the same Uint8Array
  // for the life of a key (as the Node backend's key objects are cached).
  const privateKeys = new WeakMap<Uint8Array, Promise<CryptoKey>>();
  const publicKeys = new WeakMap<Uint8Array, Promise<CryptoKey>>();
  const algorithm = { name: 'X25519' };
  return async (privateKey, publicKey) => {
    let priv = privateKeys.get(privateKey);
    if (priv === undefined) {
      priv = subtle.importKey('pkcs8', pkcs8(privateKey), algorithm, false, ['deriveBits']);
      privateKeys.set(privateKey, priv);
    }
    let pub = publicKeys.get(publicKey);
    if (pub === undefined) {
      pub = subtle.importKey('raw', publicKey.slice(), algorithm, false, []);
      publicKeys.set(publicKey, pub);
    }
    try {
      return new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: await pub }, await priv, 256));
    } catch {
      // WebCrypto refuses an all-zero result (a small-order public key) and keys it cannot
      // import; report zero, which the caller rejects as NON_CONTRIBUTORY (as the other backends).
      publicKeys.delete(publicKey);
      return new Uint8Array(32);
    }
  };
}

function ed25519With(subtle: SubtleCrypto): NonNullable<WebCryptoCurves['ed25519VerifyAsync']> {
  return async (publicKey, message, signature) => {
    try {
      const key = await subtle.importKey('raw', publicKey.slice(), { name: 'Ed25519' }, false, ['verify']);
      return await subtle.verify({ name: 'Ed25519' }, key, signature.slice(), message.slice());
    } catch {
      return false;
    }
  };
}

/**
 * The curves this WebCrypto has (X25519 agreement, Ed25519 verification), each checked by a
 * round trip; an empty object when it has neither or there is no WebCrypto.
 */
export async function webCryptoCurves(subtle: SubtleCrypto | undefined): Promise<WebCryptoCurves> {
  const out: { -readonly [K in keyof WebCryptoCurves]: WebCryptoCurves[K] } = {};
  if (subtle === undefined) return out;
  try {
    const a = (await subtle.generateKey({ name: 'X25519' }, true, ['deriveBits'])) as CryptoKeyPair;
    const b = (await subtle.generateKey({ name: 'X25519' }, true, ['deriveBits'])) as CryptoKeyPair;
    const ab = new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: b.publicKey }, a.privateKey, 256));
    const f = x25519With(subtle);
    const rawA = new Uint8Array(await subtle.exportKey('pkcs8', a.privateKey)).slice(X25519_PKCS8_PREFIX.length);
    const rawB = new Uint8Array(await subtle.exportKey('raw', b.publicKey));
    const again = await f(rawA, rawB);
    if (ab.length === 32 && again.every((x, i) => x === ab[i])) out.x25519Async = f;
  } catch {
    // No X25519 here.
  }
  try {
    const k = (await subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const msg = Uint8Array.of(1, 2, 3);
    const sig = new Uint8Array(await subtle.sign({ name: 'Ed25519' }, k.privateKey, msg));
    const pub = new Uint8Array(await subtle.exportKey('raw', k.publicKey));
    const f = ed25519With(subtle);
    if ((await f(pub, msg, sig)) && !(await f(pub, Uint8Array.of(1, 2, 4), sig))) out.ed25519VerifyAsync = f;
  } catch {
    // No Ed25519 here.
  }
  return out;
}
