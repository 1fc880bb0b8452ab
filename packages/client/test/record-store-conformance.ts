/**
 * One conformance suite for every RecordStore: in memory and SQLite (test/record-store.test.ts,
 * under node:test) and IndexedDB (apps/web/test/record-store.browser.ts, bundled into a page in
 * Chromium). It imports nothing Node-only and brings its own assertions, so it runs in a browser.
 */
import { MAX_RECORD_BYTES, MAX_RECORD_KEY_LENGTH, type RecordStore, type StoredRecord } from '../src/record-store.ts';
import { isClientError } from '../src/errors.ts';

export interface StoreUnderTest {
  store: RecordStore;
  /** Closes the store and opens the same records again (a process restart). */
  reopen?: () => Promise<RecordStore>;
  /** Flips one bit of the value stored under `key`, as someone with the files could. */
  corrupt?: (key: string) => Promise<void>;
  /** Copies the stored (sealed) value of `from` over the one of `to`. */
  transplant?: (from: string, to: string) => Promise<void>;
  /** Removes whatever the test left behind. */
  dispose?: () => Promise<void>;
}

export type Define = (title: string, fn: () => Promise<void>) => void;

class Failure extends Error {}

function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Failure(message);
}

function same(a: Uint8Array | undefined, b: Uint8Array | undefined, message: string): void {
  check(a !== undefined && b !== undefined, `${message}: missing value`);
  check(a.length === b.length, `${message}: length ${a.length} != ${b.length}`);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) throw new Failure(`${message}: differs at byte ${i}`);
}

async function rejects(p: Promise<unknown>, code: string, message: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    check(isClientError(e) && e.code === code, `${message}: expected ${code}, got ${isClientError(e) ? e.code : String(e)}`);
    return;
  }
  throw new Failure(`${message}: expected ${code}, it succeeded`);
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const keysOf = (rs: StoredRecord[]): string[] => rs.map((r) => r.key);

function eqList(actual: string[], expected: string[], message: string): void {
  check(JSON.stringify(actual) === JSON.stringify(expected), `${message}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}

/** A small deterministic PRNG (mulberry32), so the model test replays the same way everywhere. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function recordStoreConformance(name: string, define: Define, make: () => Promise<StoreUnderTest>): void {
  const run = (title: string, fn: (t: StoreUnderTest) => Promise<void>): void =>
    define(`${name}: ${title}`, async () => {
      const t = await make();
      try {
        await fn(t);
      } finally {
        await t.store.close().catch(() => undefined);
        await t.dispose?.();
      }
    });

  run('an empty store has nothing', async ({ store }) => {
    check((await store.get('a')) === undefined, 'get of a missing key');
    eqList(keysOf(await store.list('')), [], 'list of an empty store');
  });

  run('put, get, overwrite and delete', async ({ store }) => {
    await store.commit([{ key: 'k/1', value: enc('one') }, { key: 'k/2', value: new Uint8Array(0) }], []);
    check(dec((await store.get('k/1'))!) === 'one', 'read back');
    same(await store.get('k/2'), new Uint8Array(0), 'empty value');
    await store.commit([{ key: 'k/1', value: enc('uno') }], ['k/2']);
    check(dec((await store.get('k/1'))!) === 'uno', 'overwritten');
    check((await store.get('k/2')) === undefined, 'deleted');
    // Deleting what is not there is not an error.
    await store.commit([], ['k/404']);
    const all = new Uint8Array(256).map((_, i) => i);
    await store.commit([{ key: 'bin', value: all }], []);
    same(await store.get('bin'), all, 'every byte value');
    // What get returns is a copy.
    const v = (await store.get('bin'))!;
    v[0] = 99;
    same(await store.get('bin'), all, 'a returned value is not the stored one');
  });

  run('list: prefix, key order, bounds, limit and reverse', async ({ store }) => {
    const keys = ['m/b/0002', 'm/a/0003', 'm/a/0001', 'm/a/0002', 'm/a~', 'm/a', 'm/a0', 'n', 'm/', 'l', 'm/a/0010', 'm/a/!'];
    const r = prng(7);
    const shuffled = [...keys].sort(() => r() - 0.5);
    for (const k of shuffled) await store.commit([{ key: k, value: enc(k) }], []);
    eqList(keysOf(await store.list('m/a/')), ['m/a/!', 'm/a/0001', 'm/a/0002', 'm/a/0003', 'm/a/0010'], 'prefix in byte order');
    for (const rec of await store.list('m/a/')) check(dec(rec.value) === rec.key, 'values travel with their keys');
    eqList(keysOf(await store.list('m/a')), ['m/a', 'm/a/!', 'm/a/0001', 'm/a/0002', 'm/a/0003', 'm/a/0010', 'm/a0', 'm/a~'], 'a prefix includes the key equal to it');
    eqList(keysOf(await store.list('m/a/', { after: 'm/a/0001' })), ['m/a/0002', 'm/a/0003', 'm/a/0010'], 'after is exclusive');
    eqList(keysOf(await store.list('m/a/', { before: 'm/a/0003' })), ['m/a/!', 'm/a/0001', 'm/a/0002'], 'before is exclusive');
    eqList(keysOf(await store.list('m/a/', { after: 'm/a/0001', before: 'm/a/0010' })), ['m/a/0002', 'm/a/0003'], 'both bounds');
    eqList(keysOf(await store.list('m/a/', { limit: 2 })), ['m/a/!', 'm/a/0001'], 'limit');
    eqList(keysOf(await store.list('m/a/', { limit: 0 })), [], 'limit 0');
    eqList(keysOf(await store.list('m/a/', { reverse: true, limit: 2 })), ['m/a/0010', 'm/a/0003'], 'reverse with limit');
    eqList(keysOf(await store.list('m/a/', { reverse: true, before: 'm/a/0003', limit: 2 })), ['m/a/0002', 'm/a/0001'], 'reverse page before a key');
    eqList(keysOf(await store.list('m/a/', { reverse: true, after: 'm/a/0002' })), ['m/a/0010', 'm/a/0003'], 'reverse after');
    eqList(keysOf(await store.list('m/a/', { after: 'z' })), [], 'after beyond the prefix');
    eqList(keysOf(await store.list('m/a/', { before: 'a' })), [], 'before below the prefix');
    eqList(keysOf(await store.list('m/a/', { after: 'a' })), keysOf(await store.list('m/a/')), 'after below the prefix is no bound');
    eqList(keysOf(await store.list('')), [...keys].sort(), 'the empty prefix lists everything');
    eqList(keysOf(await store.list('m/c/')), [], 'nothing under an unused prefix');
  });

  run('a commit is all or nothing', async ({ store }) => {
    await store.commit([{ key: 'a', value: enc('1') }], []);
    const bad: Array<[string, Promise<unknown>]> = [
      ['an oversized value', store.commit([{ key: 'b', value: enc('2') }, { key: 'c', value: new Uint8Array(MAX_RECORD_BYTES + 1) }], ['a'])],
      ['a key with a space', store.commit([{ key: 'b', value: enc('2') }, { key: 'c d', value: enc('3') }], ['a'])],
      ['a non-ASCII key', store.commit([{ key: 'b', value: enc('2') }, { key: 'cé', value: enc('3') }], ['a'])],
      ['an empty key', store.commit([{ key: 'b', value: enc('2') }, { key: '', value: enc('3') }], ['a'])],
      ['an overlong key', store.commit([{ key: 'b', value: enc('2') }, { key: 'x'.repeat(MAX_RECORD_KEY_LENGTH + 1), value: enc('3') }], ['a'])],
      ['a key put twice', store.commit([{ key: 'b', value: enc('2') }, { key: 'b', value: enc('3') }], ['a'])],
      ['a key put and deleted', store.commit([{ key: 'b', value: enc('2') }], ['b', 'a'])],
    ];
    for (const [what, p] of bad) await rejects(p, 'INVALID_ARGUMENT', what);
    check(dec((await store.get('a'))!) === '1', 'nothing was deleted');
    check((await store.get('b')) === undefined, 'nothing was written');
    await rejects(store.get('bad key'), 'INVALID_ARGUMENT', 'get of an invalid key');
    await rejects(store.list('bad prefix'), 'INVALID_ARGUMENT', 'list of an invalid prefix');
  });

  run('the largest value allowed is written and read back', async ({ store }) => {
    const big = new Uint8Array(MAX_RECORD_BYTES);
    for (let i = 0; i < big.length; i += 4093) big[i] = i & 0xff;
    big[big.length - 1] = 0xab;
    await store.commit([{ key: 'big', value: big }, { key: 'k'.repeat(MAX_RECORD_KEY_LENGTH), value: enc('long key') }], []);
    same(await store.get('big'), big, 'a maximal value');
    check(dec((await store.get('k'.repeat(MAX_RECORD_KEY_LENGTH)))!) === 'long key', 'a maximal key');
    await store.commit([], ['big']);
  });

  run('commits issued together apply in call order', async ({ store }) => {
    const ps: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) ps.push(store.commit([{ key: 'counter', value: enc(String(i)) }, { key: `log/${String(i).padStart(3, '0')}`, value: enc('x') }], []));
    await Promise.all(ps);
    check(dec((await store.get('counter'))!) === '49', 'the last commit wins');
    check((await store.list('log/')).length === 50, 'every commit applied');
  });

  run('random operations agree with a model', async ({ store }) => {
    const r = prng(20_250_601);
    const model = new Map<string, string>();
    const alphabet = ['a', 'b', '/', '0', '9', '~', '!'];
    const randomKey = (): string => Array.from({ length: 1 + Math.floor(r() * 4) }, () => alphabet[Math.floor(r() * alphabet.length)]!).join('');
    for (let step = 0; step < 200; step++) {
      const puts = new Map<string, string>();
      const deletes = new Set<string>();
      for (let i = Math.floor(r() * 5); i > 0; i--) {
        const k = randomKey();
        if (deletes.has(k)) continue;
        if (r() < 0.3) {
          puts.delete(k);
          deletes.add(k);
        } else puts.set(k, `${step}.${i}`);
      }
      await store.commit([...puts].map(([key, v]) => ({ key, value: enc(v) })), [...deletes]);
      for (const k of deletes) model.delete(k);
      for (const [k, v] of puts) model.set(k, v);
      if (step % 20 === 19) {
        const prefix = randomKey().slice(0, 1 + Math.floor(r() * 2));
        const expected = [...model.keys()].filter((k) => k.startsWith(prefix)).sort();
        const got = await store.list(prefix);
        eqList(keysOf(got), expected, `list(${prefix}) after step ${step}`);
        for (const rec of got) check(dec(rec.value) === model.get(rec.key), `value of ${rec.key}`);
        eqList(keysOf(await store.list(prefix, { reverse: true, limit: 3 })), [...expected].reverse().slice(0, 3), 'reverse page');
      }
    }
  });

  run('a closed store refuses work', async ({ store }) => {
    await store.close();
    await rejects(store.get('a'), 'CLOSED', 'get after close');
    await rejects(store.commit([{ key: 'a', value: enc('1') }], []), 'CLOSED', 'commit after close');
  });

  run('records survive a reopen', async (t) => {
    if (!t.reopen) return;
    await t.store.commit([{ key: 'x/1', value: enc('one') }, { key: 'x/2', value: enc('two') }], []);
    await t.store.commit([], ['x/1']);
    t.store = await t.reopen();
    eqList(keysOf(await t.store.list('x/')), ['x/2'], 'after reopen');
    check(dec((await t.store.get('x/2'))!) === 'two', 'value after reopen');
  });

  run('a damaged record is STATE_CORRUPT; the others still read', async (t) => {
    if (!t.corrupt) return;
    await t.store.commit([{ key: 'ok', value: enc('fine') }, { key: 'bad', value: enc('soon damaged') }], []);
    await t.corrupt('bad');
    await rejects(t.store.get('bad'), 'STATE_CORRUPT', 'get of a damaged record');
    await rejects(t.store.list('ba'), 'STATE_CORRUPT', 'list over a damaged record');
    check(dec((await t.store.get('ok'))!) === 'fine', 'an intact record still reads');
  });

  run('a sealed value moved to another key does not open', async (t) => {
    if (!t.transplant) return;
    await t.store.commit([{ key: 'a', value: enc('for a') }, { key: 'b', value: enc('for b') }], []);
    await t.transplant('a', 'b');
    await rejects(t.store.get('b'), 'STATE_CORRUPT', 'a moved value');
    check(dec((await t.store.get('a'))!) === 'for a', 'the original still reads');
  });
}
