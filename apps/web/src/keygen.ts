/**
 * Initial keys for `TacitClient.register` and `link` (and, for a new account, its identity key
 * pair), made in a Web Worker (keygen-worker.ts) so the page stays responsive: on the page's main
 * thread they were one task of 345–490 ms here. Should the
 * worker be unavailable (it cannot start, fails, answers nonsense or not in time) the keys are made
 * on the page as before, and the console says so once.
 */
import { checkEncodedInitialKeys, makeInitialKeys, type EncodedInitialKeys, type InitialKeyGenerator } from '@tacit/client';
import { IdentityKeyPair, type CryptoBackend } from '@tacit/protocol';

type Made = { identity: IdentityKeyPair; keys: EncodedInitialKeys };

/**
 * How long the worker may take before the page makes the keys itself. Generous: a slow phone
 * takes a few seconds; a worker that never answers must not hold registration for ever.
 */
export const KEY_WORKER_TIMEOUT_MS = 60_000;

/** The generator the web client registers with. */
export function workerInitialKeys(backend: () => Promise<CryptoBackend>): InitialKeyGenerator {
  return async (identity, now) => {
    try {
      return await inWorker(identity, now);
    } catch (e) {
      console.warn(`tacit: key worker unavailable (${e instanceof Error ? e.message : typeof e}); making keys on the page`);
      return makeInitialKeys(await backend(), identity, now);
    }
  };
}

function inWorker(identity: IdentityKeyPair | undefined, now: number): Promise<Made> {
  return new Promise((resolve, reject) => {
    // Vite bundles the worker as its own script from this expression (same origin: CSP 'self').
    const worker = new Worker(new URL('./keygen-worker.ts', import.meta.url), { type: 'module', name: 'tacit-keys' });
    let done = false;
    const finish = (r: Made | Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      worker.terminate();
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    const timer = setTimeout(() => finish(new Error('no answer in time')), KEY_WORKER_TIMEOUT_MS);
    worker.onmessage = (e: MessageEvent<unknown>) => {
      const d = e.data as { ok?: unknown; identity?: unknown; keys?: unknown; error?: unknown } | null;
      if (typeof d !== 'object' || d === null || d.ok !== true) {
        finish(new Error(typeof d?.error === 'string' ? d.error.slice(0, 64) : 'failed'));
        return;
      }
      // Checked in tasks of their own, not in this one (which read the answer); registration then
      // goes on in tasks of their own too (TacitClient.register yields between its steps).
      const check = async (): Promise<Made> => {
        await nextTask();
        const made = d.identity instanceof Uint8Array ? IdentityKeyPair.deserialize(d.identity) : undefined;
        // The pair we sent comes back as it went; a new one is the worker's.
        if (made === undefined || (identity !== undefined && !sameKey(made, identity))) throw new Error('wrong identity');
        return { identity: made, keys: await checkEncodedInitialKeys(d.keys, nextTask) };
      };
      check().then(finish, (err: unknown) => finish(err instanceof Error ? err : new Error('bad keys')));
    };
    worker.onerror = (e) => {
      e.preventDefault();
      finish(new Error('worker error'));
    };
    worker.onmessageerror = () => finish(new Error('unreadable answer'));
    worker.postMessage(identity !== undefined ? { identity: identity.serialize(), now } : { now });
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
