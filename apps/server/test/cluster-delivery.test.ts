/**
 * Delivery across two nodes (in-process, one PostgreSQL schema, Redis pub/sub): a node never
 * pushes a message past an older one committed by another node whose event has not arrived, never
 * hands a message over twice, and takes a small message from the event without reading the store.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { MessageFrame } from '@tacit/api';
import { RedisCluster, type Cluster, type ClusterHandlers, type Limits, type RemoteEphemeral, type RemoteMessage, type Store } from '../src/index.js';
import { Client, register, sendMessage, start, type Harness } from './helpers.js';
import { testWithServices, dropSchemas, newSchema, openStore, redisUrl } from './postgres-env.js';

const test = await testWithServices('cluster-delivery.test.ts');

const redises: Redis[] = [];
after(async () => {
  for (const r of redises) r.disconnect();
  await dropSchemas();
});

/** A cluster whose deliver events wait until `release()` while `holding`. */
class HeldCluster implements Cluster {
  holding = false;
  readonly #inner: RedisCluster;
  readonly #held: [string[], RemoteMessage[] | undefined][] = [];
  constructor(inner: RedisCluster) {
    this.#inner = inner;
  }
  get nodeId(): string {
    return this.#inner.nodeId;
  }
  start(h: ClusterHandlers): Promise<void> {
    return this.#inner.start(h);
  }
  publishDeliver(keys: string[], messages?: RemoteMessage[]): void {
    if (this.holding) this.#held.push([keys, messages]);
    else this.#inner.publishDeliver(keys, messages);
  }
  publishConnected(key: string): void {
    this.#inner.publishConnected(key);
  }
  publishEphemeral(messages: RemoteEphemeral[]): number {
    return this.#inner.publishEphemeral(messages);
  }
  release(): void {
    this.holding = false;
    for (const [k, m] of this.#held.splice(0)) this.#inner.publishDeliver(k, m);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** The store with a count of queue reads. */
function counting(store: Store): { store: Store; reads: () => number } {
  let reads = 0;
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop === 'fetchQueue') return (...args: Parameters<Store['fetchQueue']>) => (reads++, target.fetchQueue(...args));
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store: wrapped, reads: () => reads };
}

async function node(schema: string, wrap?: (c: RedisCluster) => Cluster, limits: Partial<Limits> = {}): Promise<{ h: Harness; reads: () => number }> {
  const [pub, sub] = [new Redis(redisUrl), new Redis(redisUrl)];
  redises.push(pub, sub);
  const c = counting(await openStore(schema));
  const cluster = new RedisCluster(pub, sub, `${schema}:`);
  return { h: await start({ store: c.store, cluster: wrap ? wrap(cluster) : cluster, limits }), reads: c.reads };
}

const texts = (c: Client) => c.frames.filter((f): f is MessageFrame => f.type === 'message').map((f) => Buffer.from(f.envelope.body, 'base64').toString());

/**
 * Two nodes; node a's events can be held back. Device r is connected to node b (its queue paged),
 * s1 to node a and s2 to node b, both about to send to r.
 */
async function overtaking(limitsOfB: Partial<Limits> = {}) {
  const schema = newSchema();
  let held!: HeldCluster;
  const a = await node(schema, (c) => (held = new HeldCluster(c)));
  const b = await node(schema, undefined, limitsOfB);
  const r = await register(b.h);
  const s1 = await register(a.h);
  const s2 = await register(b.h);
  const cr = await Client.connect(b.h.wsUrl, r);
  await cr.next((f) => f.type === 'queue-empty');
  const c1 = await Client.connect(a.h.wsUrl, s1);
  const c2 = await Client.connect(b.h.wsUrl, s2);
  return { a, b, held, cr, c1, c2, to: { username: r.username, deviceId: 1 }, clients: [cr, c1, c2] };
}

test('cluster delivery: an older message from another node whose event is late is not skipped (the queue is read), and nothing is handed over twice', async () => {
  const { a, b, held, cr, c1, c2, to, clients } = await overtaking();
  try {

    held.holding = true;
    assert.equal((await sendMessage(c1, to, 'first, on node a')).type, 'sent');
    // Node b stores a newer message for r. Its queue has an older one node b has not been told of.
    assert.equal((await sendMessage(c2, to, 'second, on node b')).type, 'sent');
    await cr.next((f) => f.type === 'message' && Buffer.from(f.envelope.body, 'base64').toString() === 'second, on node b');
    held.release();
    assert.equal((await sendMessage(c1, to, 'third, on node a')).type, 'sent');
    await cr.next((f) => f.type === 'message' && Buffer.from(f.envelope.body, 'base64').toString() === 'third, on node a');
    assert.deepEqual(texts(cr), ['first, on node a', 'second, on node b', 'third, on node a']);
  } finally {
    for (const c of clients) c.close();
    await a.h.close();
    await b.h.close();
  }
});

test('cluster delivery: a small message stored by another node is pushed from its event, without reading the queue', async () => {
  const schema = newSchema();
  const a = await node(schema);
  const b = await node(schema);
  const clients: Client[] = [];
  try {
    const r = await register(b.h);
    const s = await register(a.h);
    const cr = await Client.connect(b.h.wsUrl, r);
    clients.push(cr);
    await cr.next((f) => f.type === 'queue-empty');
    const cs = await Client.connect(a.h.wsUrl, s);
    clients.push(cs);
    const readsBefore = b.reads();
    for (let i = 0; i < 5; i++) {
      assert.equal((await sendMessage(cs, { username: r.username, deviceId: 1 }, `m${i}`)).type, 'sent');
      const m = await cr.next<MessageFrame>((f) => f.type === 'message');
      cr.send({ type: 'ack', id: m.envelope.id });
    }
    assert.deepEqual(texts(cr), ['m0', 'm1', 'm2', 'm3', 'm4']);
    assert.equal(b.reads(), readsBefore, 'node b pushed them from the events');
  } finally {
    for (const c of clients) c.close();
    await a.h.close();
    await b.h.close();
  }
});

test('cluster delivery: a message that overtakes an older one from another node waits for it; both are pushed from events, in order, without reading the queue', async () => {
  // No time limit on the wait here: the queue must not be read however slow the machine.
  const { a, b, held, cr, c1, c2, to, clients } = await overtaking({ outOfOrderWaitMs: 600_000 });
  try {
    const readsBefore = b.reads();

    held.holding = true;
    assert.equal((await sendMessage(c1, to, 'first, on node a')).type, 'sent');
    assert.equal((await sendMessage(c2, to, 'second, on node b')).type, 'sent');
    // Node b holds "second" back; "first" arrives through Redis now.
    held.release();
    await cr.next((f) => f.type === 'message' && Buffer.from(f.envelope.body, 'base64').toString() === 'second, on node b');
    assert.deepEqual(texts(cr), ['first, on node a', 'second, on node b']);
    assert.equal(b.reads(), readsBefore, 'node b did not read the queue');
  } finally {
    for (const c of clients) c.close();
    await a.h.close();
    await b.h.close();
  }
});
