/**
 * The PostgreSQL blob store through the conformance suite, and two nodes appending to one blob
 * at once. Needs PostgreSQL (see postgres-env.ts); without it the suite is one skipped line.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PostgresBlobStore } from '../src/attachments/postgres-blob-store.js';
import { blobStoreConformance } from './blob-store-conformance.js';
import { dropSchemas, newSchema, pgConfig, withClient } from './postgres-env.js';
import { externalServices, skipSuite } from './services.js';

const services = await externalServices();
if (services.skip) skipSuite('blob-store-postgres.test.ts', services.reason);
else {
  after(dropSchemas);

  const open = (schema: string) => PostgresBlobStore.open({ pg: pgConfig, schema });

  blobStoreConformance('postgres', async () => {
    const schema = newSchema();
    const store = await open(schema);
    return {
      store,
      async reopen() {
        await store.close();
        return open(schema);
      },
    };
  });

  test('postgres: two nodes appending at the same offset never interleave; the loser is told where the blob stands', async () => {
    const schema = newSchema();
    const [a, b] = [await open(schema), await open(schema)];
    try {
      const id = randomBytes(24).toString('hex');
      const length = 3 * 512 * 1024;
      const x = new Uint8Array(randomBytes(length));
      const y = new Uint8Array(randomBytes(length));
      await a.create({ id, owner: 'ann', length, createdAt: 1, expiresAt: 1e12 }, 2 ** 40, 1);
      async function* src(bytes: Uint8Array) {
        for (let i = 0; i < bytes.length; i += 100_000) yield bytes.subarray(i, i + 100_000);
      }
      const opts = { completedExpiresAt: 2e12, now: 1 };
      const [ra, rb] = await Promise.all([a.append(id, 0, src(x), opts), b.append(id, 0, src(y), opts)]);
      const winners = [ra, rb].filter((r) => r.ok);
      assert.ok(winners.length >= 1, 'someone wrote');
      for (const r of [ra, rb]) if (!r.ok) assert.equal(r.code, 'OFFSET_MISMATCH');
      // Whatever was stored is one writer's bytes, chunk by chunk, in order.
      const blob = await a.get(id, 1);
      const parts: Buffer[] = [];
      for await (const p of a.read(id, 0, blob!.received)) parts.push(Buffer.from(p));
      const got = Buffer.concat(parts);
      for (let i = 0; i < got.length; i += 512 * 1024) {
        const piece = got.subarray(i, i + 512 * 1024);
        assert.ok(piece.equals(Buffer.from(x.subarray(i, i + piece.length))) || piece.equals(Buffer.from(y.subarray(i, i + piece.length))), `chunk at ${i}`);
      }
      const rows = await withClient(async (c) => (await c.query(`SELECT count(*) AS n FROM ${schema}.attachment_chunks WHERE id = $1`, [id])).rows[0].n);
      assert.equal(Number(rows), Math.ceil(blob!.received / (512 * 1024)));
    } finally {
      await a.close();
      await b.close();
    }
  });
}
