/**
 * The PostgreSQL write path without a lock shared by every send: a reader paging a queue never
 * skips a message that commits late, and batches to different recipients do not wait for each
 * other. Two stores (two pools, as two nodes) share one schema; a trigger installed by the test
 * holds chosen inserts inside their transaction until the test lets them go.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import type { NewMessage, PostgresStore, StoredMessage } from '../src/index.js';
import { testWithServices, dropSchemas, newSchema, openStore, placeholderDevice, withClient } from './postgres-env.js';

const test = await testWithServices('postgres-order.test.ts');

after(dropSchemas);

const msg = (to: string, from: string, text: string): NewMessage => ({
  to: { username: to, deviceId: 1 },
  from: { username: from, deviceId: 1 },
  kind: 2,
  body: Buffer.from(text),
  timestamp: 1,
  expiresAt: 1e15,
});
const texts = (ms: StoredMessage[]) => ms.map((m) => Buffer.from(m.body).toString());

/** Until `done()` or `waiting()` (bounded: 400 polls, ~20 s). */
async function until(done: () => boolean, waiting: () => Promise<boolean>): Promise<'done' | 'waiting'> {
  for (let i = 0; i < 400; i++) {
    if (done()) return 'done';
    if (await waiting()) return 'waiting';
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('neither finished nor waiting on a lock');
}

/** Whether a backend of the store named `app` waits on a heavyweight lock (row or advisory). */
const waitsOnLock = (app: string) => () =>
  withClient(async (c) => (await c.query("SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [app])).rowCount! > 0);

async function settled<T>(p: Promise<T>): Promise<{ p: Promise<T>; done: () => boolean }> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  return { p, done: () => done };
}

test('postgres order: a pager never skips a message that commits late; other recipients are not held up', async () => {
  const schema = newSchema();
  const stores: PostgresStore[] = [];
  const node = async (name: string) => {
    const s = await openStore(schema, { application_name: `${schema}_${name}`, max: 2 });
    stores.push(s);
    return s;
  };
  const [a, b, reader] = [await node('a'), await node('b'), await node('reader')];
  // The gate: inserts from sender "slow" wait (inside their transaction, after taking their id)
  // for an advisory lock that the test holds.
  const gate = await withClient(async (c) => Number(((await c.query('SELECT hashtext($1) AS k', [schema])).rows[0] as { k: number }).k));
  await withClient((c) =>
    c.query(`
      CREATE FUNCTION ${schema}.hold_slow() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.sender = 'slow' THEN PERFORM pg_advisory_xact_lock_shared(${gate}); END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER hold_slow BEFORE INSERT ON ${schema}.messages FOR EACH ROW EXECUTE FUNCTION ${schema}.hold_slow();`),
  );
  try {
    for (const u of ['rita', 'otto']) assert.equal(await a.createAccount({ username: u, identityKey: new Uint8Array(33), createdAt: 1 }, placeholderDevice(), null), 'ok');
    const rita = { username: 'rita', deviceId: 1 };

    await withClient(async (holder) => {
      await holder.query('SELECT pg_advisory_lock($1)', [gate]);
      // Node a: a message to rita takes its id, then stalls before commit.
      const slow = await settled(a.writeBatch([msg('rita', 'slow', 'slow')], [], 100));
      assert.equal(await until(slow.done, waitsOnLock(`${schema}_a`)), 'waiting', 'the slow batch is held at the gate');

      // Node b: a message to another recipient goes through at once (no lock shared by all sends).
      const other = await settled(b.writeBatch([msg('otto', 'fast', 'to otto')], [], 100));
      assert.equal(await until(other.done, waitsOnLock(`${schema}_b`)), 'done', 'a send to another recipient is not held up');
      assert.ok((await other.p)[0]?.ok);

      // Node b: a message to rita. If it could commit now with a larger id, a pager would see it,
      // move its cursor past the slow message's id and never see the slow one.
      const fast = await settled(b.writeBatch([msg('rita', 'fast', 'fast')], [], 100));
      await until(fast.done, waitsOnLock(`${schema}_b`));
      const page1 = await reader.fetchQueue(rita, 0, 10, 0);
      const cursor = page1.at(-1)?.id ?? 0;

      await holder.query('SELECT pg_advisory_unlock($1)', [gate]);
      const [[rs], [rf]] = [await slow.p, await fast.p];
      assert.ok(rs?.ok && rf?.ok);
      assert.ok(rf.id > rs.id, 'ids increase in commit order per recipient');
      const page2 = await reader.fetchQueue(rita, cursor, 10, 0);
      assert.deepEqual(texts([...page1, ...page2]), ['slow', 'fast'], 'the pager saw every message, in commit order');
    });
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
});

test('postgres order: concurrent writers on two nodes and a pager that acks as it goes: nothing skipped, per-sender order kept', async () => {
  const schema = newSchema();
  const [a, b] = [await openStore(schema, { max: 4 }), await openStore(schema, { max: 4 })];
  try {
    for (const u of ['pia', 'quin']) await a.createAccount({ username: u, identityKey: new Uint8Array(33), createdAt: 1 }, placeholderDevice(), null);
    const pia = { username: 'pia', deviceId: 1 };
    const N = 60;
    // Six writers (three per node), each its own sender, each sending N messages to pia (and a few
    // to quin) in batches of one to three.
    const writers = Array.from({ length: 6 }, async (_, w) => {
      const s = w % 2 === 0 ? a : b;
      for (let i = 0; i < N; ) {
        const batch: NewMessage[] = [];
        for (let k = 0; k < 1 + ((w + i) % 3) && i < N; k++, i++) batch.push(msg('pia', `w${w}`, `${w}:${i}`));
        if (i % 7 === 0) batch.push(msg('quin', `w${w}`, 'x'));
        const r = await s.writeBatch(batch, [], 10_000);
        assert.ok(r.every((x) => x.ok));
      }
    });
    const seen: string[] = [];
    let cursor = 0;
    let writing = true;
    const all = Promise.all(writers).finally(() => (writing = false));
    // Page and ack (delete) as a connected device would, until the writers are done and the
    // queue is empty.
    for (let rounds = 0; rounds < 100_000; rounds++) {
      const wasWriting = writing;
      const page = await b.fetchQueue(pia, cursor, 16, 0);
      for (const m of page) seen.push(Buffer.from(m.body).toString());
      if (page.length > 0) {
        cursor = page.at(-1)!.id;
        await a.writeBatch([], page.map((m) => ({ to: pia, id: m.id })), 10_000);
      } else if (!wasWriting) break;
    }
    await all;
    assert.equal(seen.length, 6 * N, 'every message paged exactly once');
    for (let w = 0; w < 6; w++) {
      const mine = seen.filter((t) => t.startsWith(`${w}:`)).map((t) => Number(t.split(':')[1]));
      assert.deepEqual(mine, Array.from({ length: N }, (_, i) => i), `sender ${w} in order`);
    }
    assert.deepEqual(await a.fetchQueue(pia, 0, 10, 0), []);
  } finally {
    await a.close();
    await b.close();
  }
});
