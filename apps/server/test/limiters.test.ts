/**
 * The limiter abstraction (rate.ts): one suite for the local and the Redis implementation, then
 * what only the shared one does: limits held across nodes, connection leases of a dead node
 * lapsing, and falling back to per-node limits while Redis is unreachable.
 */
import { after, test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { ERRORS } from '@tacit/api';
import { LocalLimiters, RedisCluster, RedisLimiters, type Limiters } from '../src/index.js';
import { Client, addDevice, auth, makeDevice, register, registration, sendMessage, start, type Account, type Harness } from './helpers.js';
import { testWithServices, dropSchemas, newSchema, openStore, redisUrl } from './postgres-env.js';

const test = await testWithServices('limiters.test.ts');
import { closedPort } from './processes.js';

const redises: Redis[] = [];
const prefixes: string[] = [];
after(async () => {
  await dropSchemas();
  if (prefixes.length === 0) return;
  const r = new Redis(redisUrl);
  for (const p of prefixes) {
    const keys = await r.keys(`${p}*`);
    if (keys.length > 0) await r.del(...keys);
  }
  r.disconnect();
  for (const x of redises) x.disconnect();
});

const LEASE = 90_000;

/** Two RedisLimiters (two nodes) on one prefix. */
function redisPair(): [RedisLimiters, RedisLimiters] {
  const prefix = `tacit_test_${randomBytes(6).toString('hex')}:`;
  prefixes.push(prefix);
  const make = () => {
    const r = new Redis(redisUrl);
    redises.push(r);
    return new RedisLimiters(r, { prefix, connectionLeaseMs: LEASE });
  };
  return [make(), make()];
}

function limitersConformance(test: typeof nodeTest, name: string, make: () => Limiters): void {
  test(`${name}: a bucket gives its burst, then refills at its rate; keys and limits are independent`, async () => {
    const l = make();
    const b = l.bucket('t1', { burst: 3, perSecond: 2 });
    const t = 1_000_000;
    assert.deepEqual(await Promise.all([1, 2, 3, 4].map(() => b.take('k', t))), [true, true, true, false]);
    assert.equal(await b.take('other', t), true);
    assert.equal(await l.bucket('t2', { burst: 1, perSecond: 1 }).take('k', t), true, 'another limit, same key');
    assert.equal(await b.take('k', t + 499), false);
    assert.equal(await b.take('k', t + 500), true, 'one token per 500 ms');
    assert.equal(await b.take('k', t + 500), false);
    // A clock that goes backwards refills nothing.
    assert.equal(await b.take('k', t), false);
    // Never more than the burst, however long it rested.
    assert.deepEqual(await b.takeMany([{ key: 'k', n: 5 }], t + 3_600_000), [3]);
  });

  test(`${name}: takeMany grants a prefix of each key's requests, keys may repeat`, async () => {
    const b = make().bucket('many', { burst: 4, perSecond: 0.001 });
    assert.deepEqual(
      await b.takeMany(
        [
          { key: 'a', n: 3 },
          { key: 'b', n: 6 },
          { key: 'a', n: 3 },
          { key: 'c', n: 0 },
        ],
        5,
      ),
      [3, 4, 1, 0],
    );
    assert.deepEqual(await b.takeMany([], 5), []);
  });

  test(`${name}: connections: a device holds one, a newer hold replaces it, max per account, release by owner only`, async () => {
    const c = make().connections;
    const now = 1000;
    assert.equal(await c.acquire('ann', 1, 'n1:1', 2, now), true);
    assert.equal(await c.acquire('ann', 2, 'n1:2', 2, now), true);
    assert.equal(await c.acquire('ann', 3, 'n1:3', 2, now), false, 'a third device');
    assert.equal(await c.acquire('bob', 1, 'n1:4', 2, now), true, 'another account');
    assert.equal(await c.acquire('ann', 1, 'n2:1', 2, now), true, 'the same device again (reconnected) replaces its hold');
    await c.release('ann', 1, 'n1:1');
    assert.equal(await c.acquire('ann', 3, 'n1:5', 2, now), false, 'releasing a replaced hold frees nothing');
    await c.release('ann', 1, 'n2:1');
    assert.equal(await c.acquire('ann', 3, 'n1:5', 2, now), true);
  });
}

limitersConformance(nodeTest, 'local limiters', () => new LocalLimiters());
limitersConformance(test, 'redis limiters', () => redisPair()[0]);

test('redis limiters: two nodes share one budget: a bucket and the connection count hold across them', async () => {
  const [n1, n2] = redisPair();
  const spec = { burst: 5, perSecond: 0.001 };
  const [b1, b2] = [n1.bucket('send', spec), n2.bucket('send', spec)];
  const got: boolean[] = [];
  for (let i = 0; i < 8; i++) got.push(await (i % 2 === 0 ? b1 : b2).take('ann.1', 10));
  assert.deepEqual(got, [true, true, true, true, true, false, false, false]);
  assert.equal(await n1.connections.acquire('cy', 1, 'a:1', 2, 10), true);
  assert.equal(await n2.connections.acquire('cy', 2, 'b:1', 2, 10), true);
  assert.equal(await n1.connections.acquire('cy', 3, 'a:2', 2, 10), false);
  assert.equal(await n2.connections.acquire('cy', 3, 'b:2', 2, 10), false);
  await n1.connections.release('cy', 1, 'a:1');
  assert.equal(await n2.connections.acquire('cy', 3, 'b:2', 2, 10), true);
});

test('redis limiters: the holds of a node that stopped refreshing (killed) lapse after the lease; refreshed ones stay', async () => {
  const [dead, alive] = redisPair();
  assert.equal(await dead.connections.acquire('dee', 1, 'dead:1', 2, 0), true);
  assert.equal(await alive.connections.acquire('dee', 2, 'alive:1', 2, 0), true);
  assert.equal(await alive.connections.acquire('dee', 3, 'alive:2', 2, LEASE / 2), false);
  await alive.connections.refresh([{ account: 'dee', deviceId: 2, owner: 'alive:1' }], LEASE / 2);
  // Past the dead node's lease: its hold is gone, the refreshed one is not.
  assert.equal(await alive.connections.acquire('dee', 3, 'alive:2', 2, LEASE + 1), true);
  assert.equal(await alive.connections.acquire('dee', 4, 'alive:3', 2, LEASE + 1), false);
  // A refresh never brings back a replaced hold.
  assert.equal(await alive.connections.acquire('dee', 2, 'alive:9', 2, LEASE + 1), true);
  await dead.connections.refresh([{ account: 'dee', deviceId: 2, owner: 'alive:1' }], LEASE + 2);
  await alive.connections.release('dee', 3, 'alive:2');
  assert.equal(await alive.connections.acquire('dee', 5, 'alive:4', 2, LEASE + 2), true, 'only the current holds count');
});

test('redis limiters: with Redis unreachable, limits fall back to this node, and say so once', async () => {
  const r = new Redis(`redis://127.0.0.1:${await closedPort()}`, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true, retryStrategy: () => null });
  r.on('error', () => undefined);
  const lines: string[] = [];
  const l = new RedisLimiters(r, { connectionLeaseMs: LEASE, log: (s) => lines.push(s) });
  const b = l.bucket('send', { burst: 2, perSecond: 0.001 });
  assert.deepEqual([await b.take('k', 1), await b.take('k', 1), await b.take('k', 1)], [true, true, false]);
  assert.equal(await l.connections.acquire('eve', 1, 'x:1', 1, 1), true);
  assert.equal(await l.connections.acquire('eve', 2, 'x:2', 1, 1), false);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^redis unavailable .*limits hold per node/);
  r.disconnect();
});

test('two server nodes with shared limits: registrations, sends and connections per account are counted once for both', async () => {
  const schema = newSchema();
  const prefix = `${schema}:`;
  const node = async () => {
    const [pub, sub, lim] = [new Redis(redisUrl), new Redis(redisUrl), new Redis(redisUrl)];
    redises.push(pub, sub, lim);
    return start({
      store: await openStore(schema),
      cluster: new RedisCluster(pub, sub, prefix),
      limiters: new RedisLimiters(lim, { prefix, connectionLeaseMs: LEASE }),
      // A clock that stands still: no bucket refills during the test, however slow the machine.
      now: () => 1_000_000,
      limits: { registrationBurst: 4, sendBurst: 5, maxConnectionsPerAccount: 2 },
    });
  };
  const [n1, n2] = [await node(), await node()];
  const clients: Client[] = [];
  try {
    // Registrations (accounts and devices) from one address, alternating nodes: four in all, not
    // four per node.
    const ann = await register(n1);
    const bob = await register(n2);
    const dev2 = await addDevice(n1, ann);
    const dev3 = await addDevice(n2, ann);
    for (const n of [n1, n2]) {
      const refused = await n.server.app.inject({ method: 'POST', url: '/v1/accounts', payload: registration(`late${process.pid}`, makeDevice()) });
      assert.equal(refused.statusCode, 429);
    }

    // Sends: a burst of 5 for ann's device, spent on both nodes.
    const to = { username: bob.username, deviceId: 1 };
    const on1 = await Client.connect(n1.wsUrl, ann);
    clients.push(on1);
    const first = [];
    for (let i = 0; i < 3; i++) first.push((await sendMessage(on1, to, `a${i}`)).type);
    on1.close();
    await on1.closed;
    const on2 = await Client.connect(n2.wsUrl, ann);
    clients.push(on2);
    const second = [];
    for (let i = 0; i < 3; i++) {
      const r = await sendMessage(on2, to, `b${i}`);
      second.push(r.type === 'error' ? (r as { code: string }).code : r.type);
    }
    assert.deepEqual([...first, ...second], ['sent', 'sent', 'sent', 'sent', 'sent', 'RATE_LIMITED']);

    // Connections: at most 2 per account across both nodes.
    const c2 = await Client.connect(n1.wsUrl, dev2);
    clients.push(c2);
    const c3 = await Client.open(n2.wsUrl);
    clients.push(c3);
    c3.send({ type: 'auth', username: dev3.username, deviceId: dev3.deviceId, secret: dev3.secret });
    assert.equal((await c3.closed).code, ERRORS.TOO_MANY_CONNECTIONS.close, 'a third device, on the other node, is refused');
    // One leaves (on node 2): the third device may connect on node 1.
    on2.close();
    await on2.closed;
    let c3again: Client | undefined;
    for (let i = 0; i < 100 && c3again === undefined; i++) {
      // The release reaches Redis right after the close; retry until it has (bounded).
      const c = await Client.open(n1.wsUrl);
      clients.push(c);
      c.send({ type: 'auth', username: dev3.username, deviceId: dev3.deviceId, secret: dev3.secret });
      const f = await c.next((x) => x.type === 'ready' || x.type === 'error');
      if (f.type === 'ready') c3again = c;
      else await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(c3again, 'the third device connects once a place is free');
  } finally {
    for (const c of clients) c.close();
    await n1.close();
    await n2.close();
  }
});

