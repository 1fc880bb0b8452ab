// bench:browser's page: the web client's crypto backend (apps/web/src/crypto.ts) running the
// protocol workloads, and a real registration through the client SDK against the server that
// serves this page. Driven by bench/browser.ts through `window.tacitBench`.
import { makeKeys, MemoryRecordStore, TacitClient, type KeyGenerator, type SocketFactory } from '@tacit/client';
import type { CryptoBackend } from '@tacit/protocol';
import { TacitParty } from '../../packages/protocol/test/support/tacit.ts';
import { webBackend } from '../../apps/web/src/crypto.ts';
import { workerInitialKeys, workerKeys } from '../../apps/web/src/keygen.ts';
import { type Workload, WorkloadRunner } from './workloads.ts';

let backend: CryptoBackend;
let runner: WorkloadRunner;
/** The device `register` made, kept for `refill`. */
let registered: TacitClient | undefined;
/** Where `refill` makes its keys: the key worker (as the web client), or this page (as before it). */
let refillOnPage = false;
const inWorker = workerKeys(webBackend);
const keyGenerator: KeyGenerator = (identity, request, now) => (refillOnPage ? Promise.resolve(makeKeys(backend, identity, request, now)) : inWorker(identity, request, now));

/** Registration opens no socket here: the bench measures key generation and the HTTP round trip. */
const noSocket: SocketFactory = () => {
  throw new Error('no relay in the bench');
};

const bench = {
  async init(): Promise<{ kem: string }> {
    backend = await webBackend();
    runner = new WorkloadRunner((name) => new TacitParty(name, backend));
    return { kem: `${backend.mlKem1024?.name ?? 'noble'}, X25519 ${backend.x25519Async ? 'WebCrypto' : 'noble'}, Ed25519 ${backend.ed25519VerifyAsync ? 'WebCrypto' : 'noble'}` };
  },
  prepare: (w: Workload) => runner.prepare(w),
  round: (w: Workload, ms: number) => runner.round(w, ms),
  /** Registers a fresh device; wall time and every main-thread long task seen meanwhile (ms). */
  register: (username: string) =>
    observeLongTasks(async () => {
      // As the web client registers and keeps its keys: in its key worker.
      registered = await TacitClient.register(
        { store: new MemoryRecordStore(), backend, connect: noSocket, initialKeys: workerInitialKeys(webBackend), keyGenerator },
        { server: location.origin, username },
      );
    }),
  /**
   * The registered device's key upkeep after the server's stock was drained (by the bench):
   * a refill of 100 + 100 one-time keys, made in the key worker (or, for comparison, on this
   * page as before the worker did refills), stored, uploaded.
   */
  refill: (onPage: boolean) => {
    refillOnPage = onPage;
    return observeLongTasks(() => registered!.maintainKeys());
  },
  async close(): Promise<void> {
    await registered?.close();
    registered = undefined;
  },
};

/** Runs `fn`; its wall time and every main-thread long task seen meanwhile (ms). */
async function observeLongTasks(fn: () => Promise<void>): Promise<{ ms: number; longTasks: number[] }> {
  const longTasks: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longTasks.push(Math.round(e.duration));
  });
  observer.observe({ type: 'longtask', buffered: false });
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  // Long-task entries are delivered after the task; give the observer a turn.
  await new Promise((r) => setTimeout(r, 100));
  observer.disconnect();
  return { ms, longTasks };
}

(globalThis as { tacitBench?: typeof bench }).tacitBench = bench;
document.getElementById('status')!.textContent = 'ready';
