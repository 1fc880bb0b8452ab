/**
 * Failover (issues 16 and 13): two server processes on one PostgreSQL + Redis behind HAProxy,
 * clients of the SDK exchanging messages through the balancer. One node is killed with `kill -9`
 * and started again; then the other is stopped with SIGTERM (a graceful drain). Clients reconnect
 * through the balancer to the node that is up: every message whose send was acknowledged is
 * received, none is shown twice, and each sender's messages arrive in the order sent.
 *
 * Size: TACIT_FAILOVER_CLIENTS (default 6) clients each send TACIT_FAILOVER_MESSAGES (default
 * 40) messages to the next one; `TACIT_FAILOVER_CLIENTS=10 TACIT_FAILOVER_MESSAGES=1000 node
 * scripts/test.mjs failover` is the full 10 x 1,000 run.
 *
 * Needs HAProxy (Debian's `haproxy`): without it the test is skipped with one line, except under
 * TACIT_REQUIRE_SERVICES=1 (.ci/run, which installs it), where its absence fails.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ERRORS } from '@tacit/api';
import { MemoryRecordStore, TacitClient, type HistoryMessage, type SocketFactory } from '@tacit/client';
import { wsSocketFactory } from '@tacit/client/node';
import { nodeBackend } from '@tacit/protocol/node';
import { findHaproxy, startBalancer } from './balancer.js';
import { testWithServices, databaseUrl, dropSchemas, newSchema, redisUrl } from './postgres-env.js';

const test = await testWithServices('failover.test.ts');
import { closedPort, startServer, stopServer, type ServerProcess } from './processes.js';

const haproxy = findHaproxy();
const CLIENTS = Number(process.env['TACIT_FAILOVER_CLIENTS'] ?? 6);
const MESSAGES = Number(process.env['TACIT_FAILOVER_MESSAGES'] ?? 40);
/** A rejected send (e.g. an HTTP request cut by the kill) is tried again this many times, as a user would. */
const SEND_ATTEMPTS = 10;

after(dropSchemas);

if (haproxy === undefined) {
  const reason = 'needs HAProxy (apt-get install haproxy); .ci/run installs it';
  if (process.env['TACIT_REQUIRE_SERVICES'] === '1') test('failover: HAProxy is required here (TACIT_REQUIRE_SERVICES=1)', () => assert.fail(reason));
  else test('failover: two nodes behind HAProxy', { skip: reason }, () => undefined);
} else {
  test('failover: kill -9 one of two nodes behind HAProxy, then drain the other (SIGTERM): nothing acknowledged lost, nothing shown twice, order per sender kept', async () => {
    const schema = newSchema();
    const ports = [await closedPort(), await closedPort()];
    const env = (port: number) => ({
      PORT: String(port),
      TACIT_DATABASE_URL: databaseUrl,
      TACIT_REDIS_URL: redisUrl,
      TACIT_DATABASE_SCHEMA: schema,
      TACIT_REGISTRATION_BURST: '1000',
    });
    const nodes: ServerProcess[] = [await startServer(env(ports[0]!)), await startServer(env(ports[1]!))];
    const lb = await startBalancer(haproxy, ports);
    const clients: TacitClient[] = [];
    try {
      const server = `http://127.0.0.1:${lb.port}`;
      const tag = randomBytes(3).toString('hex');
      const names = Array.from({ length: CLIENTS }, (_, i) => `fo${i}_${tag}`);
      // Every close a client's socket sees, by phase: the close code tells a kill from a drain.
      type Phase = 'before' | 'kill' | 'drain';
      let phase = 'before' as Phase;
      const closes: { phase: Phase; code: number }[] = [];
      const recording: SocketFactory = (url, handlers) =>
        wsSocketFactory(url, { ...handlers, close: (code, reason) => (closes.push({ phase, code }), handlers.close(code, reason)) });
      const options = () => ({ store: new MemoryRecordStore(), backend: nodeBackend(), connect: recording, backoff: { baseMs: 50, maxMs: 1000 } });
      for (const username of names) clients.push(await TacitClient.register(options(), { server, username }));
      const received: HistoryMessage[][] = clients.map(() => []);
      clients.forEach((c, i) => c.on('message', (m) => received[i]!.push(m)));
      await Promise.all(clients.map((c) => c.connect()));

      let acknowledged = 0;
      let rejected = 0;
      const total = CLIENTS * MESSAGES;
      const senders = clients.map(async (c, i) => {
        const to = names[(i + 1) % CLIENTS]!;
        for (let k = 0; k < MESSAGES; k++) {
          for (let attempt = 1; ; attempt++) {
            try {
              await c.send(to, `${i}:${k}`);
              acknowledged++;
              break;
            } catch (e) {
              rejected++;
              if (attempt === SEND_ATTEMPTS) throw e;
              await sleep(100);
            }
          }
        }
      });
      const sending = Promise.all(senders);
      sending.catch(() => undefined);

      // A third of the way: kill -9 the first node, then start it again on its port.
      await until(() => acknowledged >= total / 3, 'a third of the messages acknowledged');
      phase = 'kill';
      assert.equal(await stopServer(nodes[0]!, 'SIGKILL'), null);
      nodes[0] = await startServer(env(ports[0]!));
      // Two thirds: stop the second node gracefully; it drains, clients go to the first.
      await until(() => acknowledged >= (2 * total) / 3, 'two thirds of the messages acknowledged');
      await healthy(ports[0]!);
      await sleep(1000); // the balancer's health check (every 200 ms, 2 to rise) sees it up
      phase = 'drain';
      assert.equal(await stopServer(nodes[1]!, 'SIGTERM'), 0, 'a drained node exits cleanly');
      await sending;
      await until(() => received.every((r) => r.length >= MESSAGES), 'every message received');
      await sleep(500); // a duplicate would arrive now

      // The balancer spread the clients over both nodes; the kill cut those on the first. After it
      // every client was on the second, and its drain closed each with RECONNECT_ELSEWHERE.
      const killed = closes.filter((c) => c.phase === 'kill');
      assert.ok(killed.length >= 1 && killed.every((c) => c.code !== ERRORS.RECONNECT_ELSEWHERE.close), `kill: ${JSON.stringify(killed)}`);
      const drained = closes.filter((c) => c.phase === 'drain');
      assert.deepEqual(
        drained.map((c) => c.code),
        Array.from({ length: CLIENTS }, () => ERRORS.RECONNECT_ELSEWHERE.close),
      );
      for (let i = 0; i < CLIENTS; i++) {
        const from = (i - 1 + CLIENTS) % CLIENTS;
        const got = received[i]!;
        assert.equal(new Set(got.map((m) => m.id)).size, got.length, `client ${i}: nothing shown twice`);
        assert.deepEqual(
          got.map((m) => m.text),
          Array.from({ length: MESSAGES }, (_, k) => `${from}:${k}`),
          `client ${i}: every acknowledged message from client ${from}, in the order sent`,
        );
        assert.ok(got.every((m) => m.from === names[from]));
      }
      console.log(
        `# failover: ${CLIENTS} clients, ${total} messages acknowledged and received once each, in order; ` +
          `${killed.length} sockets cut by kill -9, ${drained.length} closed by the drain; ${rejected} sends retried by the test after a rejection`,
      );
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await lb.stop();
      for (const n of nodes) await stopServer(n, 'SIGKILL');
    }
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Bounded wait (about 2 minutes) for `cond`. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_400; i++) {
    if (cond()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting until ${what}`);
}

async function healthy(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await sleep(50);
  }
  assert.fail(`node on ${port} did not become healthy`);
}
