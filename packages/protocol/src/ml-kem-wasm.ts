// ML-KEM-1024 from PQClean's reference C compiled to WebAssembly: the module that the `pqclean`
// npm package ships (`pqclean/wasm/gen/pqclean.wasm`), driven directly rather than through that
// package's JavaScript (which needs node:fs and worker threads). About 6x faster than
// @noble/post-quantum here, in Node and in browsers alike.
//
// The module asks its host for randomness through one import, `env.PQCLEAN_randombytes`; we answer
// it from bytes the caller passes in (the key-generation seed, the encapsulated message), so the
// engine is deterministic like every other MlKem1024 and gives exactly noble's bytes.
import { fail } from './errors.ts';
import {
  checkMlKemPublicKey,
  ML_KEM_1024_CIPHERTEXT_LENGTH,
  ML_KEM_1024_PUBLIC_KEY_LENGTH,
  ML_KEM_1024_SECRET_KEY_LENGTH,
  ML_KEM_KEYGEN_SEED_LENGTH,
  ML_KEM_MESSAGE_LENGTH,
  type MlKem1024,
} from './ml-kem.ts';

const SHARED_SECRET_LENGTH = 32;

interface PqcleanExports {
  memory: WebAssembly.Memory;
  malloc(size: number): number;
  PQCLEAN_MLKEM1024_CLEAN_crypto_kem_keypair(pk: number, sk: number): number;
  PQCLEAN_MLKEM1024_CLEAN_crypto_kem_enc(ct: number, ss: number, pk: number): number;
  PQCLEAN_MLKEM1024_CLEAN_crypto_kem_dec(ss: number, ct: number, sk: number): number;
}

/** Randomness for the next call; the import must consume exactly all of it. */
interface Entropy {
  bytes: Uint8Array;
  used: number;
  /** Set when the module asked for more than was given (the call's output is then discarded). */
  short: boolean;
}

function imports(entropy: Entropy, memory: () => WebAssembly.Memory): WebAssembly.Imports {
  return {
    env: {
      // Never throws: an exception unwinding through the module would leave its stack pointer
      // behind. A short supply is flagged and the call's result refused.
      PQCLEAN_randombytes(ptr: number, n: number): void {
        const out = new Uint8Array(memory().buffer, ptr, n);
        if (entropy.used + n > entropy.bytes.length) {
          entropy.short = true;
          out.fill(0);
          return;
        }
        out.set(entropy.bytes.subarray(entropy.used, entropy.used + n));
        entropy.used += n;
      },
    },
    wasi_snapshot_preview1: {
      proc_exit(): void {
        entropy.short = true;
      },
    },
  };
}

function engine(exports: PqcleanExports, entropy: Entropy): MlKem1024 {
  const e = exports;
  for (const f of ['malloc', 'PQCLEAN_MLKEM1024_CLEAN_crypto_kem_keypair', 'PQCLEAN_MLKEM1024_CLEAN_crypto_kem_enc', 'PQCLEAN_MLKEM1024_CLEAN_crypto_kem_dec'] as const) {
    if (typeof e[f] !== 'function') fail('INVALID_ARGUMENT', `the WebAssembly module has no ${f}`);
  }
  // One fixed scratch area for the module's arguments, allocated once.
  const pk = e.malloc(ML_KEM_1024_PUBLIC_KEY_LENGTH);
  const sk = e.malloc(ML_KEM_1024_SECRET_KEY_LENGTH);
  const ct = e.malloc(ML_KEM_1024_CIPHERTEXT_LENGTH);
  const ss = e.malloc(SHARED_SECRET_LENGTH);
  if (pk === 0 || sk === 0 || ct === 0 || ss === 0) fail('INVALID_ARGUMENT', 'WebAssembly allocation failed');
  // The memory may grow (and its buffer be replaced) inside a call, so views are made afresh.
  const mem = () => new Uint8Array(e.memory.buffer);
  const take = (ptr: number, n: number) => mem().slice(ptr, ptr + n);
  const wipe = (ptr: number, n: number) => mem().fill(0, ptr, ptr + n);
  const run = (random: Uint8Array, call: () => number): void => {
    entropy.bytes = random;
    entropy.used = 0;
    entropy.short = false;
    const r = call();
    const ok = r === 0 && !entropy.short && entropy.used === random.length;
    entropy.bytes = new Uint8Array(0);
    if (!ok) fail('INVALID_ARGUMENT', 'ML-KEM WebAssembly call failed');
  };
  const none = new Uint8Array(0);
  return {
    name: 'pqclean-wasm',
    keygen(seed) {
      if (seed.length !== ML_KEM_KEYGEN_SEED_LENGTH) fail('INVALID_ARGUMENT', `ML-KEM key generation needs ${ML_KEM_KEYGEN_SEED_LENGTH} bytes of seed`);
      try {
        run(seed, () => e.PQCLEAN_MLKEM1024_CLEAN_crypto_kem_keypair(pk, sk));
        return { publicKey: take(pk, ML_KEM_1024_PUBLIC_KEY_LENGTH), secretKey: take(sk, ML_KEM_1024_SECRET_KEY_LENGTH) };
      } finally {
        wipe(sk, ML_KEM_1024_SECRET_KEY_LENGTH);
      }
    },
    encapsulate(publicKey, m) {
      checkMlKemPublicKey(publicKey);
      if (m.length !== ML_KEM_MESSAGE_LENGTH) fail('INVALID_ARGUMENT', `ML-KEM encapsulation needs a ${ML_KEM_MESSAGE_LENGTH}-byte message`);
      mem().set(publicKey, pk);
      try {
        run(m, () => e.PQCLEAN_MLKEM1024_CLEAN_crypto_kem_enc(ct, ss, pk));
        return { cipherText: take(ct, ML_KEM_1024_CIPHERTEXT_LENGTH), sharedSecret: take(ss, SHARED_SECRET_LENGTH) };
      } finally {
        wipe(ss, SHARED_SECRET_LENGTH);
      }
    },
    decapsulate(cipherText, secretKey) {
      if (cipherText.length !== ML_KEM_1024_CIPHERTEXT_LENGTH) fail('DECODE', `ML-KEM-1024 ciphertext must be ${ML_KEM_1024_CIPHERTEXT_LENGTH} bytes`);
      if (secretKey.length !== ML_KEM_1024_SECRET_KEY_LENGTH) fail('BAD_KEY', `ML-KEM-1024 secret key must be ${ML_KEM_1024_SECRET_KEY_LENGTH} bytes`);
      mem().set(cipherText, ct);
      mem().set(secretKey, sk);
      try {
        run(none, () => e.PQCLEAN_MLKEM1024_CLEAN_crypto_kem_dec(ss, ct, sk));
        return take(ss, SHARED_SECRET_LENGTH);
      } finally {
        wipe(sk, ML_KEM_1024_SECRET_KEY_LENGTH);
        wipe(ss, SHARED_SECRET_LENGTH);
      }
    },
  };
}

function newEntropy(): Entropy {
  return { bytes: new Uint8Array(0), used: 0, short: false };
}

/**
 * The engine from a compiled module, instantiated synchronously (Node, Web Workers; browsers
 * refuse synchronous instantiation of large modules on a page's main thread: use
 * `instantiateMlKem1024` there).
 */
export function mlKem1024FromWasm(module: WebAssembly.Module): MlKem1024 {
  const entropy = newEntropy();
  let instance: WebAssembly.Instance | undefined;
  instance = new WebAssembly.Instance(module, imports(entropy, () => (instance!.exports as unknown as PqcleanExports).memory));
  return engine(instance.exports as unknown as PqcleanExports, entropy);
}

/** The engine from the module's bytes or a compiled module, instantiated asynchronously. */
export async function instantiateMlKem1024(source: WebAssembly.Module | BufferSource): Promise<MlKem1024> {
  const entropy = newEntropy();
  let exports: PqcleanExports | undefined;
  const imp = imports(entropy, () => exports!.memory);
  const instance = source instanceof WebAssembly.Module ? await WebAssembly.instantiate(source, imp) : (await WebAssembly.instantiate(source, imp)).instance;
  exports = instance.exports as unknown as PqcleanExports;
  return engine(exports, entropy);
}
