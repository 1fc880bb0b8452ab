/**
 * The web client's crypto backend: the protocol's portable backend with Kyber's ML-KEM-1024 on
 * PQClean's WebAssembly build (the module the `pqclean` package ships, served as a static asset),
 * about 6x faster than @noble/post-quantum in the browser too. Where the module cannot be fetched
 * or compiled, noble's engine is used and the console says so once.
 */
import { type CryptoBackend, instantiateMlKem1024, portableBackend } from '@tacit/protocol';
import pqcleanWasmUrl from 'pqclean/wasm/gen/pqclean.wasm?url';

let backend: Promise<CryptoBackend> | undefined;

async function load(): Promise<CryptoBackend> {
  try {
    const res = await fetch(pqcleanWasmUrl);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return portableBackend({ mlKem1024: await instantiateMlKem1024(await res.arrayBuffer()) });
  } catch (e) {
    console.warn(`tacit: ML-KEM WebAssembly engine unavailable (${e instanceof Error ? e.name : typeof e}); Kyber uses @noble/post-quantum`);
    return portableBackend();
  }
}

/** One backend per page, made on first use. */
export function webBackend(): Promise<CryptoBackend> {
  backend ??= load();
  return backend;
}
