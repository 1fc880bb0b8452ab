// bench:browser's page: the web client's crypto backend (apps/web/src/crypto.ts) running the
// protocol workloads, and a real registration through the client SDK against the server that
// serves this page. Driven by bench/browser.ts through `window.tacitBench`.
import { MemoryRecordStore, TacitClient, type SocketFactory } from '@tacit/client';
import type { CryptoBackend } from '@tacit/protocol';
import { TacitParty } from '../../packages/protocol/test/support/tacit.ts';
import { webBackend } from '../../apps/web/src/crypto.ts';
import { workerInitialKeys } from '../../apps/web/src/keygen.ts';
import { type Workload, WorkloadRunner } from './workloads.ts';

let backend: CryptoBackend;
let runner: WorkloadRunner;

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
  async register(username: string): Promise<{ ms: number; longTasks: number[] }> {
    const longTasks: number[] = [];
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) longTasks.push(Math.round(e.duration));
    });
    observer.observe({ type: 'longtask', buffered: false });
    const t0 = performance.now();
    // As the web client registers: initial keys made in its key worker.
    const client = await TacitClient.register({ store: new MemoryRecordStore(), backend, connect: noSocket, initialKeys: workerInitialKeys(webBackend) }, { server: location.origin, username });
    const ms = performance.now() - t0;
    // Long-task entries are delivered after the task; give the observer a turn.
    await new Promise((r) => setTimeout(r, 100));
    observer.disconnect();
    await client.close();
    return { ms, longTasks };
  },
};

(globalThis as { tacitBench?: typeof bench }).tacitBench = bench;
document.getElementById('status')!.textContent = 'ready';
