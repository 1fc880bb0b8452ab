/** The files blob store (the default) through the conformance suite, and what only it does. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../src/attachments/fs-blob-store.js';
import { blobStoreConformance } from './blob-store-conformance.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tacit-blobs-'));
  dirs.push(d);
  return join(d, 'attachments');
}

blobStoreConformance('files', async () => {
  const dir = await freshDir();
  const store = await FsBlobStore.open(dir);
  return {
    store,
    async reopen() {
      await store.close();
      return FsBlobStore.open(dir);
    },
  };
});

test('files: directories are 0700 and files 0600', async () => {
  const dir = await freshDir();
  const s = await FsBlobStore.open(dir);
  const id = randomBytes(24).toString('hex');
  await s.create({ id, owner: 'ann', length: 3, createdAt: 1, expiresAt: 10 }, 100, 1);
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  const shard = join(dir, id.slice(0, 2));
  assert.equal((await stat(shard)).mode & 0o777, 0o700);
  for (const name of await readdir(shard)) assert.equal((await stat(join(shard, name))).mode & 0o777, 0o600, name);
  await s.close();
});

test('files: leftovers of a crash are removed at open, good blobs kept', async () => {
  const dir = await freshDir();
  const s = await FsBlobStore.open(dir);
  const good = randomBytes(24).toString('hex');
  await s.create({ id: good, owner: 'ann', length: 3, createdAt: 1, expiresAt: 10 }, 100, 1);
  await s.close();
  const orphan = randomBytes(24).toString('hex');
  const damaged = randomBytes(24).toString('hex');
  const tooLong = randomBytes(24).toString('hex');
  for (const id of [orphan, damaged, tooLong]) await mkdir(join(dir, id.slice(0, 2)), { recursive: true });
  await writeFile(join(dir, orphan.slice(0, 2), `${orphan}.blob`), 'x');
  await writeFile(join(dir, good.slice(0, 2), `${good}.meta.tmp`), '{');
  await writeFile(join(dir, damaged.slice(0, 2), `${damaged}.meta`), '{"v":1,');
  await writeFile(join(dir, damaged.slice(0, 2), `${damaged}.blob`), '');
  await writeFile(join(dir, tooLong.slice(0, 2), `${tooLong}.meta`), JSON.stringify({ v: 1, owner: 'ann', length: 1, createdAt: 1, expiresAt: 10 }));
  await writeFile(join(dir, tooLong.slice(0, 2), `${tooLong}.blob`), 'xy');
  await writeFile(join(dir, good.slice(0, 2), 'stray-file'), 'x');
  const s2 = await FsBlobStore.open(dir);
  assert.equal((await s2.get(good, 1))?.length, 3);
  for (const id of [orphan, damaged, tooLong]) assert.equal(await s2.get(id, 1), undefined);
  const left = (await Promise.all((await readdir(dir)).map(async (sh) => (await readdir(join(dir, sh))).map((n) => n)))).flat().sort();
  assert.deepEqual(left, [`${good}.blob`, `${good}.meta`].sort());
  await s2.close();
});
