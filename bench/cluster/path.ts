// The cost of the cross-node path alone, without the noise of several processes sharing the
// machine: two tacit nodes (PostgreSQL + Redis, shared limits) in this one process, P senders on
// node a, their recipients either on node a (local delivery) or on node b (through a Redis
// event), each sender keeping 10 messages in flight. CPU of this process per delivered message,
// servers and clients together; rounds alternate. Run by bench/cluster.ts; prints one JSON line.
import { Redis } from 'ioredis';
import { RedisCluster, RedisLimiters } from '../../apps/server/src/index.ts';
import { Client, register, start, type Harness } from '../../apps/server/test/helpers.ts';
import { dropSchemas, newSchema, openStore, redisUrl } from '../../apps/server/test/postgres-env.ts';

const ROUNDS = Number(process.env['BENCH_PATH_ROUNDS'] ?? 3);
const M = Number(process.env['BENCH_PATH_MESSAGES'] ?? 10_000);
const P = 50;
const HIGH = 1e9;
const limits = { sendRatePerSecond: HIGH, sendBurst: HIGH, frameRatePerSecond: HIGH, frameBurst: HIGH, registrationBurst: HIGH, registrationPerHour: HIGH };
const schema = newSchema();
const redises: Redis[] = [];

async function node(): Promise<Harness> {
  const [pub, sub, lim] = [new Redis(redisUrl), new Redis(redisUrl), new Redis(redisUrl)];
  redises.push(pub, sub, lim);
  return start({
    store: await openStore(schema),
    cluster: new RedisCluster(pub, sub, `${schema}:`),
    limiters: new RedisLimiters(lim, { prefix: `${schema}:`, connectionLeaseMs: 90_000 }),
    limits,
  });
}

const a = await node();
const b = await node();
const body = Buffer.alloc(1024, 7).toString('base64');

async function run(remote: boolean): Promise<number> {
  const senders: Client[] = [];
  const recipients: { c: Client; name: string }[] = [];
  for (let i = 0; i < P; i++) {
    const s = await register(a);
    const r = await register(a);
    senders.push(await Client.connect(a.wsUrl, s));
    recipients.push({ c: await Client.connect((remote ? b : a).wsUrl, r), name: r.username });
  }
  let got = 0;
  for (const { c } of recipients) {
    c.ws.on('message', (d) => {
      const f = JSON.parse(d.toString()) as { type: string; envelope?: { id: string } };
      if (f.type !== 'message') return;
      got++;
      c.ws.send(`{"type":"ack","id":"${f.envelope!.id}"}`);
    });
  }
  await new Promise((r) => setTimeout(r, 300));
  const cpu0 = process.cpuUsage();
  const per = M / P;
  let id = 0;
  await Promise.all(
    senders.map(
      (s, i) =>
        new Promise<void>((resolve) => {
          let inflight = 0;
          let sent = 0;
          const pump = () => {
            while (inflight < 10 && sent < per) {
              inflight++;
              sent++;
              s.ws.send(`{"type":"send","id":"x${id++}","to":{"username":"${recipients[i]!.name}","deviceId":1},"message":{"type":"whisper","body":"${body}"}}`);
            }
            if (sent >= per && inflight === 0) resolve();
          };
          s.ws.on('message', (d) => {
            if ((JSON.parse(d.toString()) as { type: string }).type === 'sent') inflight--;
            pump();
          });
          pump();
        }),
    ),
  );
  for (let i = 0; got < M && i < 3000; i++) await new Promise((r) => setTimeout(r, 10));
  const u = process.cpuUsage(cpu0);
  for (const s of senders) s.close();
  for (const { c } of recipients) c.close();
  return Math.round((u.user + u.system) / M);
}

const local: number[] = [];
const crossNode: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  local.push(await run(false));
  crossNode.push(await run(true));
}
await a.close();
await b.close();
for (const r of redises) r.disconnect();
await dropSchemas();
process.stdout.write(JSON.stringify({ local, crossNode }) + '\n');
