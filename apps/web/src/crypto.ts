/**
 * The web client's crypto backend: the protocol's portable backend with
 * - the browser's own X25519 and Ed25519 (WebCrypto) where it has them, found by a round trip at
 *   start (noble's otherwise), and
 * - Kyber's ML-KEM-1024 on PQClean's WebAssembly build (the module the `pqclean` package ships,
 *   served as a static asset), about 6x faster than @noble/post-quantum.
 * What is missing falls back to @noble, and the console says so once.
 */
import { type CryptoBackend, type MlKem1024, instantiateMlKem1024, portableBackend, webCryptoCurves } from '@tacit/protocol';
import pqcleanWasmUrl from 'pqclean/wasm/gen/pqclean.wasm?url';

let backend: Promise<CryptoBackend> | undefined;

async function loadKem(): Promise<MlKem1024 | undefined> {
  try {
    const res = await fetch(pqcleanWasmUrl);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return await instantiateMlKem1024(await res.arrayBuffer());
  } catch (e) {
    console.warn(`tacit: ML-KEM WebAssembly engine unavailable (${e instanceof Error ? e.name : typeof e}); Kyber uses @noble/post-quantum`);
    return undefined;
  }
}

async function load(): Promise<CryptoBackend> {
  const [mlKem1024, webCrypto] = await Promise.all([loadKem(), webCryptoCurves(globalThis.crypto?.subtle)]);
  const missing = [webCrypto.x25519Async ? '' : 'X25519', webCrypto.ed25519VerifyAsync ? '' : 'Ed25519'].filter((x) => x !== '');
  if (missing.length > 0) console.warn(`tacit: this browser's WebCrypto lacks ${missing.join(' and ')}; using @noble/curves`);
  return portableBackend({ webCrypto, ...(mlKem1024 !== undefined ? { mlKem1024 } : {}) });
}

/** One backend per page, made on first use. */
export function webBackend(): Promise<CryptoBackend> {
  backend ??= load();
  return backend;
}
