/**
 * The PostgreSQL + Redis adapter through the store conformance suite, and the whole server on it.
 * Needs PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`, or TACIT_TEST_PG_*) and Redis
 * at 127.0.0.1:6379 (or TACIT_TEST_REDIS_URL). Each store gets its own schema, dropped at the end.
 * Without them the suite is skipped with one line (a failure under TACIT_REQUIRE_SERVICES=1).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { ERRORS, type MessageFrame } from '@tacit/api';
import { PostgresStore, RedisCluster } from '../src/index.js';
import { storeConformance } from './store-conformance.js';
import { fanoutSuite } from './fanout-suite.js';
import { Client, register, sendMessage, start } from './helpers.js';
import { externalServices, PG_HOST, PG_PORT, REDIS_URL, skipSuite } from './services.js';

const pgConfig: pg.PoolConfig = {
  host: PG_HOST,
  port: PG_PORT,
  database: process.env['TACIT_TEST_PG_DATABASE'] ?? 'test',
  user: process.env['TACIT_TEST_PG_USER'] ?? 'postgres',
  max: 8,
};
const redisUrl = REDIS_URL;

const services = await externalServices();
if (services.skip) skipSuite('postgres.test.ts', services.reason);
else {
  const schemas: string[] = [];

  async function fresh(): Promise<PostgresStore> {
    const schema = `tacit_test_${randomBytes(6).toString('hex')}`;
    schemas.push(schema);
    return PostgresStore.open({ pg: pgConfig, redis: new Redis(redisUrl), ownsRedis: true, schema, redisPrefix: `${schema}:` });
  }

  after(async () => {
    const c = new pg.Client(pgConfig);
    await c.connect();
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
    await c.end();
  });

  storeConformance('postgres+redis', fresh);
  fanoutSuite('postgres+redis', fresh);

  test('postgres+redis: the server relays, queues and hands out keys on it', async () => {
    const h = await start({ store: await fresh() });
    try {
      const a = await register(h, { preKeys: 3 });
      const b = await register(h);
      const ca = await Client.connect(h.wsUrl, a);
      for (let i = 0; i < 5; i++) assert.equal((await sendMessage(ca, { username: b.username, deviceId: 1 }, `pg ${i}`)).type, 'sent');
      const t = (await h.server.app.inject({ method: 'POST', url: '/v1/ws-ticket', headers: { authorization: (await import('@tacit/api')).authorizationHeader(b) } })).json() as { ticket: string };
      const cb = await Client.open(`${h.wsUrl}?ticket=${t.ticket}`);
      await cb.next((f) => f.type === 'queue-empty');
      const got = cb.frames.filter((f) => f.type === 'message').map((f) => Buffer.from((f as MessageFrame).envelope.body, 'base64').toString());
      assert.deepEqual(got, ['pg 0', 'pg 1', 'pg 2', 'pg 3', 'pg 4']);
      ca.close();
      cb.close();
    } finally {
      await h.close();
    }
  });

  test('two nodes on one database: live delivery across nodes, and a newer socket on another node replaces the old one', async () => {
    const schema = `tacit_test_${randomBytes(6).toString('hex')}`;
    schemas.push(schema);
    const prefix = `${schema}:`;
    const redises: Redis[] = [];
    const node = async () => {
      const [pub, sub] = [new Redis(redisUrl), new Redis(redisUrl)];
      redises.push(pub, sub);
      return start({
        store: await PostgresStore.open({ pg: pgConfig, redis: new Redis(redisUrl), ownsRedis: true, schema, redisPrefix: prefix }),
        cluster: new RedisCluster(pub, sub, prefix),
      });
    };
    const n1 = await node();
    const n2 = await node();
    try {
      const a = await register(n1);
      const b = await register(n1);
      const cb = await Client.connect(n2.wsUrl, b);
      await cb.next((f) => f.type === 'queue-empty');
      const ca = await Client.connect(n1.wsUrl, a);
      assert.equal((await sendMessage(ca, { username: b.username, deviceId: 1 }, 'across')).type, 'sent');
      const m = await cb.next<MessageFrame>((f) => f.type === 'message');
      assert.equal(Buffer.from(m.envelope.body, 'base64').toString(), 'across');
      cb.send({ type: 'ack', id: m.envelope.id });
      // A group message (send-multi, type sender-key) stored by node 1 reaches b on node 2 live.
      ca.send({ type: 'send-multi', id: 'g1', recipients: [{ username: b.username, devices: [{ deviceId: 1, registrationId: b.device.keys.registrationId }] }], message: { type: 'sender-key', body: Buffer.from('group across').toString('base64') } });
      assert.equal((await ca.next((f) => f.type === 'sent-multi' || f.type === 'error')).type, 'sent-multi');
      const g = await cb.next<MessageFrame>((f) => f.type === 'message');
      assert.deepEqual([g.envelope.type, Buffer.from(g.envelope.body, 'base64').toString()], ['sender-key', 'group across']);
      cb.send({ type: 'ack', id: g.envelope.id });
      // b connects again, on node 1: node 2 closes its socket with REPLACED.
      const cb1 = await Client.connect(n1.wsUrl, b);
      assert.equal((await cb.closed).code, ERRORS.REPLACED.close);
      ca.close();
      cb1.close();
    } finally {
      await n1.close();
      await n2.close();
      for (const r of redises) r.disconnect();
    }
  });
}
