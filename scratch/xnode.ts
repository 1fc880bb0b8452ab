// Scratch: CPU per message of local vs cross-node delivery, two nodes in one process.
import { Redis } from 'ioredis';
import { RedisCluster, RedisLimiters } from '../apps/server/src/index.js';
import { Client, register, start } from '../apps/server/test/helpers.js';
import { dropSchemas, newSchema, openStore, redisUrl } from '../apps/server/test/postgres-env.js';

const schema = newSchema();
const HIGH = 1e9;
const limits = { sendRatePerSecond: HIGH, sendBurst: HIGH, frameRatePerSecond: HIGH, frameBurst: HIGH, registrationBurst: HIGH, registrationPerHour: HIGH };
const redises: Redis[] = [];
async function node() {
  const [pub, sub, lim] = [new Redis(redisUrl), new Redis(redisUrl), new Redis(redisUrl)];
  redises.push(pub, sub, lim);
  return start({ store: await openStore(schema), cluster: new RedisCluster(pub, sub, `${schema}:`), limiters: new RedisLimiters(lim, { prefix: `${schema}:`, connectionLeaseMs: 90000 }), limits });
}
const a = await node();
const b = await node();
const P = 50;
const body = Buffer.alloc(1024, 7).toString('base64');
async function run(remote: boolean, M: number): Promise<number> {
  const senders = [], recips = [];
  for (let i = 0; i < P; i++) {
    const s = await register(a); const r = await register(a);
    senders.push(await Client.connect(a.wsUrl, s));
    const rc = await Client.connect((remote ? b : a).wsUrl, r);
    recips.push({ c: rc, name: r.username });
  }
  let got = 0;
  for (const { c } of recips) c.ws.on('message', (d) => { const f = JSON.parse(d.toString()); if (f.type === 'message') { got++; c.ws.send(`{"type":"ack","id":"${f.envelope.id}"}`); } });
  await new Promise((r) => setTimeout(r, 500));
  const cpu0 = process.cpuUsage();
  const per = M / P;
  let id = 0;
  await Promise.all(senders.map(async (s, i) => {
    let inflight = 0, sent = 0;
    await new Promise<void>((resolve) => {
      s.ws.on('message', (d) => { const f = JSON.parse(d.toString()); if (f.type === 'sent') { inflight--; pump(); } });
      const pump = () => { while (inflight < 10 && sent < per) { inflight++; sent++; s.ws.send(`{"type":"send","id":"x${id++}","to":{"username":"${recips[i]!.name}","deviceId":1},"message":{"type":"whisper","body":"${body}"}}`); } if (sent >= per && inflight === 0) resolve(); };
      pump();
    });
  }));
  while (got < M) await new Promise((r) => setTimeout(r, 20));
  const u = process.cpuUsage(cpu0);
  for (const s of senders) s.close();
  for (const { c } of recips) c.close();
  return (u.user + u.system) / M;
}
for (let round = 0; round < 2; round++) {
  console.log(`local  ${(await run(false, 10000)).toFixed(0)} µs/msg (both servers and the clients in this process)`);
  console.log(`remote ${(await run(true, 10000)).toFixed(0)} µs/msg`);
}
await a.close(); await b.close();
for (const r of redises) r.disconnect();
await dropSchemas();
