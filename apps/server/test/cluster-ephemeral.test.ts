/**
 * Ephemeral sends (typing indicators) across two server processes on one PostgreSQL + Redis: a
 * send on one node reaches a device connected to the other through the cluster channel, is
 * never stored in PostgreSQL, stays rate limited, and is answered without saying which devices were
 * connected. Malformed events on the cluster channel are dropped: the node
 * neither crashes nor writes them to a socket, and a well-formed event after them still arrives.
 */
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { EPHEMERAL_BURST, type MessageFrame, type SentFrame, type SentMultiFrame } from '@tacit/api';
import { Client, makeDevice, registration, sendMessage, type Account } from './helpers.js';
import { testWithServices, databaseUrl, dropSchemas, newSchema, redisUrl, withClient } from './postgres-env.js';
import { closedPort, startServer, stopServer, type ServerProcess } from './processes.js';

const test = await testWithServices('cluster-ephemeral.test.ts');

const schema = newSchema();
const nodes: ServerProcess[] = [];
const clients: Client[] = [];
const redis = new Redis(redisUrl);
const tag = randomBytes(3).toString('hex');
const typing = Buffer.from('typing').toString('base64');

before(async () => {
  const env = async () => ({ PORT: String(await closedPort()), TACIT_DATABASE_URL: databaseUrl, TACIT_REDIS_URL: redisUrl, TACIT_DATABASE_SCHEMA: schema });
  // One after the other: the first applies the schema (concurrent starts are startup.test.ts's).
  nodes.push(await startServer(await env()));
  nodes.push(await startServer(await env()));
});

after(async () => {
  for (const c of clients) c.close();
  for (const n of nodes) await stopServer(n);
  redis.disconnect();
  await dropSchemas();
});

const wsUrl = (n: ServerProcess) => `ws://127.0.0.1:${n.port}/v1/ws`;

async function registerOn(n: ServerProcess, name: string): Promise<Account> {
  const username = `${name}_${tag}`;
  const device = makeDevice();
  const res = await fetch(`http://127.0.0.1:${n.port}/v1/accounts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(registration(username, device)) });
  assert.equal(res.status, 201, await res.text());
  return { username, deviceId: 1, secret: device.secret, device };
}

async function connect(n: ServerProcess, a: Account): Promise<Client> {
  const c = await Client.connect(wsUrl(n), a);
  clients.push(c);
  await c.next((f) => f.type === 'queue-empty');
  return c;
}

const count = async (table: string): Promise<number> =>
  withClient(async (c) => Number(((await c.query(`SELECT count(*) AS n FROM ${schema}.${table}`)).rows[0] as { n: string }).n));

const messages = (c: Client) => c.frames.filter((f): f is MessageFrame => f.type === 'message');
const alive = () => nodes.every((n) => n.proc.exitCode === null && n.proc.signalCode === null);

let alice: Account, bob: Account, carol: Account, dave: Account;
let ca: Client, cb: Client, cd: Client;

test('cluster ephemeral: a typing send on node 1 reaches a device on node 2 through Redis; nothing stored in PostgreSQL; offline devices get nothing later', async () => {
  const [n1, n2] = [nodes[0]!, nodes[1]!];
  alice = await registerOn(n1, 'alice');
  bob = await registerOn(n2, 'bob');
  carol = await registerOn(n2, 'carol');
  dave = await registerOn(n1, 'dave');
  ca = await connect(n1, alice);
  cb = await connect(n2, bob);
  cd = await connect(n1, dave);

  ca.send({ type: 'send', id: 't1', to: { username: bob.username, deviceId: 1 }, message: { type: 'whisper', body: typing }, ephemeral: true });
  const sent = await ca.next<SentFrame>((f) => f.type === 'sent' && f.id === 't1');
  assert.deepEqual([sent.ephemeral, 'delivered' in sent], [true, false]);
  const m = await cb.next<MessageFrame>((f) => f.type === 'message');
  assert.equal(m.envelope.ephemeral, true);
  assert.match(m.envelope.id, /^e/);
  assert.deepEqual(m.envelope.source, { username: alice.username, deviceId: 1 });
  assert.equal(m.envelope.body, typing);
  cb.send({ type: 'ack', id: m.envelope.id }); // harmless

  // send-multi: dave on this node, bob on the other, carol offline; the answer names none of them.
  ca.send({
    type: 'send-multi',
    id: 't2',
    recipients: [
      { username: bob.username, devices: [{ deviceId: 1, registrationId: 1 }] },
      { username: carol.username, devices: [{ deviceId: 1, registrationId: 1 }] },
      { username: dave.username, devices: [{ deviceId: 1, registrationId: 1 }] },
    ],
    message: { type: 'sender-key', body: typing },
    ephemeral: true,
  });
  const multi = await ca.next<SentMultiFrame>((f) => f.type === 'sent-multi' && f.id === 't2');
  assert.deepEqual([multi.ephemeral, multi.stored, 'delivered' in multi], [true, 0, false]);
  const second = await cb.next<MessageFrame>((f) => f.type === 'message' && f.envelope.type === 'sender-key');
  assert.equal(second.envelope.ephemeral, true);
  const local = await cd.next<MessageFrame>((f) => f.type === 'message');
  assert.equal(local.envelope.ephemeral, true);

  assert.equal(await count('messages'), 0, 'no ephemeral message is stored');
  assert.equal(await count('sent_memory'), 0, 'nor remembered for resends');
  // The counts above can fail: an ordinary send to carol (offline) is one stored row.
  assert.equal((await sendMessage(ca, { username: carol.username, deviceId: 1 }, 'stored')).type, 'sent');
  assert.equal(await count('messages'), 1);

  // Carol connects on node 2: the stored message only; the typing indicator was not kept anywhere.
  const cc = await connect(n2, carol);
  assert.deepEqual(
    messages(cc).map((f) => [Buffer.from(f.envelope.body, 'base64').toString(), f.envelope.ephemeral ?? false]),
    [['stored', false]],
  );
  assert.ok(alive());
});

test('cluster ephemeral: still rate limited per connection; only the accepted sends cross', async () => {
  const before = messages(cb).length;
  const n = EPHEMERAL_BURST + 10;
  for (let i = 0; i < n; i++) ca.send({ type: 'send', id: `r${i}`, to: { username: bob.username, deviceId: 1 }, message: { type: 'whisper', body: typing }, ephemeral: true });
  let accepted = 0;
  let limited = 0;
  for (let i = 0; i < n; i++) {
    const f = await ca.next((x) => (x.type === 'sent' || x.type === 'error') && 'id' in x && x.id === `r${i}`);
    if (f.type === 'sent') accepted++;
    else if (f.type === 'error' && f.code === 'RATE_LIMITED') limited++;
  }
  assert.ok(limited >= 1, 'some were refused');
  assert.equal(accepted + limited, n);
  // A stored message from the same node follows every accepted ephemeral one on the channel.
  assert.equal((await sendMessage(ca, { username: bob.username, deviceId: 1 }, 'marker')).type, 'sent');
  await cb.next((f) => f.type === 'message' && Buffer.from(f.envelope.body, 'base64').toString() === 'marker');
  const got = messages(cb).slice(before).filter((f) => f.envelope.ephemeral === true);
  assert.equal(got.length, accepted);
});

test('cluster ephemeral: malformed events on the cluster channel are dropped; the nodes stay up and a well-formed event still arrives', async () => {
  const channel = `${schema}:events`;
  const key = `${bob.username}.1`;
  const okEntry = (over: Partial<Record<0 | 1 | 2 | 3 | 4 | 5, unknown>>) => {
    const e: unknown[] = [key, 'whisper', 'mallory', 1, 1, typing];
    for (const [i, v] of Object.entries(over)) e[Number(i)] = v;
    return e;
  };
  const ev = (m: unknown) => JSON.stringify({ t: 'e', n: 'hostile', m });
  const hostile: string[] = [
    '',
    'null',
    '1',
    '"text"',
    '[]',
    '{',
    '{"t":"e"}',
    '{"t":"e","n":"hostile","m":null}',
    '{"t":"e","n":"hostile","m":{"0":1}}',
    ev([null, 1, 'a', [], {}]),
    ev([okEntry({ 2: 'mallory","deviceId":9},"x":{"a":"' })]),
    ev([okEntry({ 2: 'Mallory' })]),
    ev([okEntry({ 2: 'm'.repeat(100) })]),
    ev([okEntry({ 3: 0 }), okEntry({ 3: 1e20 }), okEntry({ 3: -1 }), okEntry({ 3: '1' }), okEntry({ 3: 1.5 })]),
    ev([okEntry({ 1: '__proto__' }), okEntry({ 1: 'toString' }), okEntry({ 1: 'plaintext' }), okEntry({ 1: 2 })]),
    ev([okEntry({ 5: 'a"b' }), okEntry({ 5: '' }), okEntry({ 5: 'A'.repeat(200_000) }), okEntry({ 5: 7 }), okEntry({ 5: 'ab\\u0000' })]),
    ev([okEntry({ 4: -5 }), okEntry({ 4: 'now' }), okEntry({ 4: null })]),
    ev([okEntry({ 0: { toString: 1 } }), okEntry({ 0: 'x'.repeat(10_000) })]),
    ev(okEntry({})),
    ev(Array.from({ length: 1001 }, () => okEntry({}))),
    ev([okEntry({})]) + ' '.repeat(2_000_000),
    `{"__proto__":${ev([okEntry({})])},"n":"hostile"}`,
    '{"t":"d","n":"hostile","k":null}',
    '{"t":"d","n":"hostile","k":"x"}',
    '{"t":"d","n":"hostile","k":[1,{},null],"m":[[1,2,3]]}',
    JSON.stringify({ t: 'd', n: 'hostile', k: [], m: [[key, 1, 0, 2, 'mallory"', 1, 1, typing], [key, 1, 0, 99, 'mallory', 1, 1, typing], [key, 1, 0, 2, 'mallory', 1, 1, '"']] }),
    '{"t":"c","n":"hostile","k":null}',
    '{"t":"c","n":"hostile","k":["' + key + '"]}',
    '{"t":"x","n":"hostile"}',
  ];
  const before = messages(cb).length;
  for (const text of hostile) await redis.publish(channel, text);
  // A well-formed event, published after all of them on the same connection (Redis keeps the order).
  await redis.publish(channel, ev([okEntry({ 2: 'wellformed', 5: Buffer.from('last').toString('base64') })]));
  const last = await cb.next<MessageFrame>((f) => f.type === 'message' && f.envelope.source.username === 'wellformed');
  assert.equal(last.envelope.ephemeral, true);
  assert.equal(Buffer.from(last.envelope.body, 'base64').toString(), 'last');
  assert.deepEqual(messages(cb).slice(before).map((f) => f.envelope.source.username), ['wellformed'], 'nothing malformed was written to the socket');
  assert.equal(cb.isClosed, false);
  assert.ok(alive(), 'both nodes are up');
  assert.doesNotMatch(nodes.map((n) => n.err()).join(''), /TypeError|uncaught/i);
  // And still serve: an ordinary cross-node send, and a typing send.
  assert.equal((await sendMessage(ca, { username: bob.username, deviceId: 1 }, 'after')).type, 'sent');
  await cb.next((f) => f.type === 'message' && Buffer.from(f.envelope.body, 'base64').toString() === 'after');
});
