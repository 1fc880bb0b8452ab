/**
 * Key generation in a Web Worker (keygen-worker.ts) so the page stays responsive: a new device's
 * initial keys for `TacitClient.register` and `link` (and, for a new account, its identity key
 * pair), and the keys of pre-key refills and signed pre-key rotations (`maintainKeys`). On the
 * page's main thread registration's keys were one task of 345–490 ms here, and a refill of 100 +
 * 100 keys is about as long. Should the worker be unavailable (it cannot start, fails, answers
 * nonsense or not in time) the keys are made on the page as before, and the console says so once
 * per kind of request.
 */
import { checkEncodedInitialKeys, makeInitialKeys, makeKeys, type EncodedInitialKeys, type EncodedKeys, type InitialKeyGenerator, type KeyGenerator } from '@tacit/client';
import { IdentityKeyPair, type CryptoBackend } from '@tacit/protocol';

type Made = { identity: IdentityKeyPair; keys: EncodedInitialKeys };

/**
 * How long the worker may take before the page makes the keys itself. Generous: a slow phone
 * takes a few seconds; a worker that never answers must not hold registration for ever.
 */
export const KEY_WORKER_TIMEOUT_MS = 60_000;

const warned = new Set<string>();
function warnOnce(what: string, e: unknown): void {
  if (warned.has(what)) return;
  warned.add(what);
  console.warn(`tacit: key worker unavailable for ${what} (${e instanceof Error ? e.message : typeof e}); making keys on the page`);
}

/** The generator of initial keys the web client registers and links with. */
export function workerInitialKeys(backend: () => Promise<CryptoBackend>): InitialKeyGenerator {
  return async (identity, now) => {
    try {
      return await initialInWorker(identity, now);
    } catch (e) {
      warnOnce('registration', e);
      return makeInitialKeys(await backend(), identity, now);
    }
  };
}

/**
 * The generator of refills and rotations (`ClientOptions.keyGenerator`). The SDK checks what it
 * returns (`checkEncodedKeys`, in steps of 25 keys, each a task of its own) before storing it.
 */
export function workerKeys(backend: () => Promise<CryptoBackend>): KeyGenerator {
  return async (identity, request, now) => {
    try {
      const d = await inWorker({ identity: identity.serialize(), now, request });
      // Checked by the SDK; only its presence here.
      if (typeof d['keys'] !== 'object' || d['keys'] === null) throw new Error('no keys');
      return d['keys'] as EncodedKeys;
    } catch (e) {
      warnOnce('key refills', e);
      return makeKeys(await backend(), identity, request, now);
    }
  };
}

async function initialInWorker(identity: IdentityKeyPair | undefined, now: number): Promise<Made> {
  const d = await inWorker(identity !== undefined ? { identity: identity.serialize(), now } : { now });
  // Checked in tasks of their own, not in the one that read the answer; registration then goes
  // on in tasks of their own too (TacitClient.register yields between its steps).
  await nextTask();
  const made = d['identity'] instanceof Uint8Array ? IdentityKeyPair.deserialize(d['identity']) : undefined;
  // The pair we sent comes back as it went; a new one is the worker's.
  if (made === undefined || (identity !== undefined && !sameKey(made, identity))) throw new Error('wrong identity');
  return { identity: made, keys: await checkEncodedInitialKeys(d['keys'], nextTask) };
}

/** One request to a fresh worker, ended after it answers: its successful answer's fields. */
function inWorker(request: Record<string, unknown>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    // Vite bundles the worker as its own script from this expression (same origin: CSP 'self').
    const worker = new Worker(new URL('./keygen-worker.ts', import.meta.url), { type: 'module', name: 'tacit-keys' });
    let done = false;
    const finish = (r: Record<string, unknown> | Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      worker.terminate();
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    const timer = setTimeout(() => finish(new Error('no answer in time')), KEY_WORKER_TIMEOUT_MS);
    worker.onmessage = (e: MessageEvent<unknown>) => {
      const d = e.data as Record<string, unknown> | null;
      if (typeof d !== 'object' || d === null || d['ok'] !== true) finish(new Error(typeof d?.['error'] === 'string' ? d['error'].slice(0, 64) : 'failed'));
      else finish(d);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      finish(new Error('worker error'));
    };
    worker.onmessageerror = () => finish(new Error('unreadable answer'));
    worker.postMessage(request);
  });
}

function sameKey(a: IdentityKeyPair, b: IdentityKeyPair): boolean {
  const x = a.publicKey.serialize();
  const y = b.publicKey.serialize();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** A new task: what follows does not lengthen the current one. */
function nextTask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
