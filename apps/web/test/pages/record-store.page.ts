// Runs the record store conformance suite (packages/client/test/record-store-conformance.ts) on
// the IndexedDB store, in the page; record-store.browser.ts reads the results.
import { IndexedDbRecordStore, openTacitDatabase, deleteTacitDatabase, RECORD_STORE } from '@tacit/client/browser';
import { recordStoreConformance, type StoreUnderTest } from '../../../../packages/client/test/record-store-conformance.ts';

interface Result {
  title: string;
  ok: boolean;
  error?: string;
}

const tests: { title: string; fn: () => Promise<void> }[] = [];
let n = 0;

async function rawUpdate(db: IDBDatabase, key: string, change: (v: { iv: Uint8Array; ct: ArrayBuffer }) => unknown, from = key): Promise<void> {
  const tx = db.transaction(RECORD_STORE, 'readwrite');
  const store = tx.objectStore(RECORD_STORE);
  await new Promise<void>((resolve, reject) => {
    const g = store.get(from);
    g.onsuccess = () => {
      store.put(change(g.result as { iv: Uint8Array; ct: ArrayBuffer }), key);
    };
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(new Error('raw update failed'));
  });
}

recordStoreConformance('indexeddb', (title, fn) => tests.push({ title, fn }), async () => {
  const name = `conformance-${Date.now()}-${n++}`;
  const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  let db = await openTacitDatabase(name);
  const t: StoreUnderTest = {
    store: new IndexedDbRecordStore(db, key),
    reopen: async () => {
      await t.store.close();
      db = await openTacitDatabase(name);
      return new IndexedDbRecordStore(db, key);
    },
    corrupt: (k) =>
      rawUpdate(db, k, (v) => {
        const ct = new Uint8Array(v.ct.slice(0));
        ct[0] = ct[0]! ^ 1;
        return { iv: v.iv, ct: ct.buffer };
      }),
    transplant: (from, to) => rawUpdate(db, to, (v) => v, from),
    dispose: async () => {
      db.close();
      await deleteTacitDatabase(name);
    },
  };
  return t;
});

async function runAll(): Promise<Result[]> {
  const results: Result[] = [];
  for (const t of tests) {
    try {
      await t.fn();
      results.push({ title: t.title, ok: true });
    } catch (e) {
      results.push({ title: t.title, ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : 'failed' });
    }
  }
  return results;
}

(window as unknown as { conformance: Promise<Result[]> }).conformance = runAll();
