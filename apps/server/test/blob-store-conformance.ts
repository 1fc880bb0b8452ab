/**
 * One conformance suite for every attachment BlobStore (files, PostgreSQL). Each adapter's test
 * file calls `blobStoreConformance` with a factory giving a fresh, empty store and a way to open
 * it again (a restart).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { BlobOverflowError, type BlobStore } from '../src/attachments/blob-store.js';

export interface BlobStoreFixture {
  store: BlobStore;
  /** Closes the store and opens the same storage again. */
  reopen(): Promise<BlobStore>;
}

const T0 = 1_000_000;
const DAY = 86_400_000;
const newId = () => randomBytes(24).toString('hex');
const opts = (now = T0) => ({ completedExpiresAt: now + 30 * DAY, now });

async function* pieces(bytes: Uint8Array, cuts: number[] = []): AsyncGenerator<Uint8Array> {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    if (p > prev) yield bytes.subarray(prev, p);
    prev = p;
  }
}

async function* failingAfter(bytes: Uint8Array, n: number): AsyncGenerator<Uint8Array> {
  yield bytes.subarray(0, n);
  throw new Error('client went away');
}

async function readAll(s: BlobStore, id: string, start: number, end: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of s.read(id, start, end)) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
}

export function blobStoreConformance(name: string, make: () => Promise<BlobStoreFixture>): void {
  const run = (title: string, fn: (f: BlobStoreFixture) => Promise<BlobStore | void>) =>
    test(`${name}: ${title}`, async () => {
      const f = await make();
      let last: BlobStore = f.store;
      try {
        last = (await fn({ store: f.store, reopen: async () => (last = await f.reopen()) })) ?? last;
      } finally {
        await last.close();
      }
    });

  run('create, read back, and usage by owner', async ({ store: s }) => {
    const id = newId();
    assert.equal(await s.create({ id, owner: 'ann', length: 1000, createdAt: T0, expiresAt: T0 + DAY }, 10_000, T0), 'ok');
    assert.deepEqual(await s.get(id, T0), { id, owner: 'ann', length: 1000, received: 0, createdAt: T0, expiresAt: T0 + DAY });
    assert.equal(await s.get(newId(), T0), undefined);
    assert.equal(await s.usage('ann', T0), 1000);
    assert.equal(await s.usage('bob', T0), 0);
  });

  run('the quota counts unexpired blobs, finished or not, and holds under concurrent creates', async ({ store: s }) => {
    assert.equal(await s.create({ id: newId(), owner: 'ann', length: 600, createdAt: T0, expiresAt: T0 + 10 }, 1000, T0), 'ok');
    assert.equal(await s.create({ id: newId(), owner: 'ann', length: 401, createdAt: T0, expiresAt: T0 + DAY }, 1000, T0), 'QUOTA_EXCEEDED');
    assert.equal(await s.create({ id: newId(), owner: 'bob', length: 1000, createdAt: T0, expiresAt: T0 + DAY }, 1000, T0), 'ok');
    // Once the first blob expired it no longer counts, swept or not.
    assert.equal(await s.create({ id: newId(), owner: 'ann', length: 1000, createdAt: T0, expiresAt: T0 + DAY }, 1000, T0 + 10), 'ok');
    const results = await Promise.all(
      Array.from({ length: 10 }, () => s.create({ id: newId(), owner: 'cat', length: 300, createdAt: T0, expiresAt: T0 + DAY }, 1000, T0)),
    );
    assert.equal(results.filter((r) => r === 'ok').length, 3);
    assert.equal(await s.usage('cat', T0), 900);
  });

  run('appends in any pieces make the blob; ranges read back exactly', async ({ store: s }) => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1_300_000 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 4 }),
        async (length, splits, cuts, ranges) => {
          const id = newId();
          const bytes = new Uint8Array(randomBytes(length));
          assert.equal(await s.create({ id, owner: 'ann', length, createdAt: T0, expiresAt: T0 + DAY }, 2 ** 40, T0), 'ok');
          // Several appends (requests), each of several pieces (network reads).
          const bounds = [...new Set(splits.map((x) => x % length))].sort((a, b) => a - b).filter((x) => x > 0);
          let at = 0;
          for (const end of [...bounds, length]) {
            const r = await s.append(id, at, pieces(bytes.subarray(at, end), cuts), opts());
            assert.deepEqual(r, { ok: true, received: end });
            at = end;
          }
          const b = await s.get(id, T0);
          assert.equal(b?.received, length);
          assert.equal(b?.expiresAt, T0 + 30 * DAY, 'completion moves the expiry');
          assert.ok((await readAll(s, id, 0, length)).equals(bytes));
          for (const [x, y] of ranges) {
            const start = x % length;
            const end = start + (y % (length - start + 1));
            assert.ok((await readAll(s, id, start, end)).equals(bytes.subarray(start, end)), `range ${start}-${end}`);
          }
          await s.delete(id);
        },
      ),
      { numRuns: 12 },
    );
  });

  run('an append at the wrong offset writes nothing', async ({ store: s }) => {
    const id = newId();
    const bytes = new Uint8Array(randomBytes(5000));
    await s.create({ id, owner: 'ann', length: 5000, createdAt: T0, expiresAt: T0 + DAY }, 2 ** 40, T0);
    assert.deepEqual(await s.append(id, 0, pieces(bytes.subarray(0, 1000)), opts()), { ok: true, received: 1000 });
    for (const wrong of [0, 999, 1001, 4999]) {
      assert.deepEqual(await s.append(id, wrong, pieces(bytes.subarray(wrong, wrong + 1)), opts()), { ok: false, code: 'OFFSET_MISMATCH', received: 1000 });
    }
    assert.equal((await s.get(id, T0))?.received, 1000);
    assert.deepEqual(await s.append(newId(), 0, pieces(bytes), opts()), { ok: false, code: 'NOT_FOUND' });
  });

  run('a source that fails midway keeps what arrived; the upload resumes from there', async ({ store: s }) => {
    const id = newId();
    const length = 700_000;
    const bytes = new Uint8Array(randomBytes(length));
    await s.create({ id, owner: 'ann', length, createdAt: T0, expiresAt: T0 + DAY }, 2 ** 40, T0);
    await assert.rejects(s.append(id, 0, failingAfter(bytes, 123_457), opts()), /client went away/);
    assert.equal((await s.get(id, T0))?.received, 123_457);
    assert.deepEqual(await s.append(id, 123_457, pieces(bytes.subarray(123_457), [1, 99_999]), opts()), { ok: true, received: length });
    assert.ok((await readAll(s, id, 0, length)).equals(bytes));
  });

  run('never more than the declared length', async ({ store: s }) => {
    const id = newId();
    const bytes = new Uint8Array(randomBytes(3000));
    await s.create({ id, owner: 'ann', length: 2000, createdAt: T0, expiresAt: T0 + DAY }, 2 ** 40, T0);
    await assert.rejects(s.append(id, 0, pieces(bytes, [1500]), opts()), BlobOverflowError);
    const b = await s.get(id, T0);
    assert.equal(b?.received, 2000);
    assert.ok((await readAll(s, id, 0, 2000)).equals(bytes.subarray(0, 2000)));
  });

  run('expiry: unfinished uploads at their upload deadline, finished blobs at theirs', async ({ store: s }) => {
    const unfinished = newId();
    const finished = newId();
    await s.create({ id: unfinished, owner: 'ann', length: 10, createdAt: T0, expiresAt: T0 + DAY }, 2 ** 40, T0);
    await s.create({ id: finished, owner: 'ann', length: 10, createdAt: T0, expiresAt: T0 + DAY }, 2 ** 40, T0);
    await s.append(unfinished, 0, pieces(new Uint8Array(5)), opts());
    await s.append(finished, 0, pieces(new Uint8Array(10)), { completedExpiresAt: T0 + 30 * DAY, now: T0 });
    assert.deepEqual(await s.append(unfinished, 5, pieces(new Uint8Array(5)), opts(T0 + DAY)), { ok: false, code: 'NOT_FOUND' }, 'expired, not yet swept');
    assert.equal(await s.get(unfinished, T0 + DAY), undefined);
    assert.equal(await s.expire(T0 + DAY), 1);
    assert.equal(await s.get(unfinished, T0), undefined, 'swept for good');
    assert.equal((await s.get(finished, T0 + DAY))?.received, 10);
    assert.equal(await s.usage('ann', T0 + DAY), 10);
    assert.equal(await s.expire(T0 + 30 * DAY), 1);
    assert.equal(await s.get(finished, T0), undefined);
    assert.equal(await s.usage('ann', T0), 0);
    assert.equal(await s.expire(T0 + 60 * DAY), 0);
  });

  run('delete removes a blob and its bytes', async ({ store: s }) => {
    const id = newId();
    await s.create({ id, owner: 'ann', length: 10, createdAt: T0, expiresAt: T0 + DAY }, 2 ** 40, T0);
    await s.append(id, 0, pieces(new Uint8Array(4)), opts());
    assert.equal(await s.delete(id), true);
    assert.equal(await s.delete(id), false);
    assert.equal(await s.get(id, T0), undefined);
    assert.equal(await s.usage('ann', T0), 0);
    assert.deepEqual(await s.append(id, 4, pieces(new Uint8Array(6)), opts()), { ok: false, code: 'NOT_FOUND' });
  });

  run('blobs, finished and not, survive a restart', async ({ store: s, reopen }) => {
    const a = newId();
    const b = newId();
    const bytes = new Uint8Array(randomBytes(600_000));
    await s.create({ id: a, owner: 'ann', length: bytes.length, createdAt: T0, expiresAt: T0 + DAY }, 2 ** 40, T0);
    await s.create({ id: b, owner: 'ann', length: 100, createdAt: T0, expiresAt: T0 + DAY }, 2 ** 40, T0);
    await s.append(a, 0, pieces(bytes, [70_000]), opts());
    await s.append(b, 0, pieces(new Uint8Array(40)), opts());
    const s2 = await reopen();
    assert.equal((await s2.get(a, T0))?.received, bytes.length);
    assert.equal((await s2.get(a, T0))?.expiresAt, T0 + 30 * DAY);
    assert.ok((await readAll(s2, a, 0, bytes.length)).equals(bytes));
    assert.deepEqual(await s2.get(b, T0), { id: b, owner: 'ann', length: 100, received: 40, createdAt: T0, expiresAt: T0 + DAY });
    assert.deepEqual(await s2.append(b, 40, pieces(new Uint8Array(60)), opts()), { ok: true, received: 100 });
    assert.equal(await s2.usage('ann', T0), bytes.length + 100);
    return s2;
  });
}
