// Cluster benchmark: one tacit node, then two, behind HAProxy, on the same PostgreSQL and Redis,
// driven by the same load generator as bench:relay (N devices, 1 KiB payloads to random peers,
// every message durably stored in PostgreSQL before `sent`). Rate limits are raised so the
// benchmark measures the write path, but they still run (shared through Redis, as in production).
//
//   npm run bench:cluster [-- --quick]
//
// Rounds alternate one node and two nodes, so both see the same spells of load from other
// processes on this shared machine; medians and the spread (min–max) over the rounds are printed.
// Per round: saturated throughput, p99 latency at a fixed rate, CPU per delivered message of the
// nodes, PostgreSQL's backends, Redis and HAProxy (while saturated: the load generator's measured
// window; and over the whole run, saturation, drain and fixed rate), and the time PostgreSQL
// backends spent waiting on locks (sampled from pg_stat_activity every 10 ms). Before each
// measured run the same load runs once unmeasured (BENCH_WARMUP=0 to skip), so that V8's
// compilation of the hot paths, paid once per node process, is not counted. Last line, JSON:
// {"n1":{"saturated":N,"p99ms":N},"n2":{"saturated":N,"p99ms":N}}
// Then the cross-node path alone (bench/cluster/path.ts): two nodes in one process, local against
// cross-node delivery, CPU per message. Benchmarks assert nothing.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { findHaproxy, startBalancer, type Balancer } from '../apps/server/test/balancer.ts';
import { cpuSeconds, kernelSeconds, request } from './children.ts';
import { machineLoad } from './machine.ts';
import { closedPort, startServer, stopServer, type ServerProcess } from '../apps/server/test/processes.ts';

const quick = process.argv.includes('--quick');
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? (quick ? 1 : 3));
const N = Number(process.env['BENCH_N'] ?? 200);
const FIXED_RATE = Number(process.env['BENCH_FIXED_RATE'] ?? 1000);
/** Messages in flight during saturation, over all senders: enough that batches, not round trips on a busy machine, bound throughput. */
const INFLIGHT = Number(process.env['BENCH_INFLIGHT'] ?? 6000);
const SATURATE_MS = quick ? 3000 : 6000;
const FIXED_MS = quick ? 3000 : 6000;
const here = import.meta.dirname;
const pgConfig = { host: '127.0.0.1', port: 5432, database: process.env['BENCH_PG_DATABASE'] ?? 'test', user: 'postgres' };
const redisUrl = 'redis://127.0.0.1:6379';
const HIGH = '1000000000';
/** BENCH_WARMUP=0: measure from the first message (JIT warm-up included; see where it is used). */
const WARMUP = process.env['BENCH_WARMUP'] !== '0';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** HAProxy's health-check interval for the bench (see where it is started). */
const BALANCER_CHECK_MS = 2000;
/**
 * BENCH_ONLY=n1|n2 runs one configuration; BENCH_CPU_PROF=<dir> profiles the nodes (see
 * bench/profile-summary.ts); BENCH_PATH=0 skips the cross-node path measurement at the end.
 */
const only = process.env['BENCH_ONLY'];
const withPath = process.env['BENCH_PATH'] !== '0';
const prof = process.env['BENCH_CPU_PROF'];

const haproxy = findHaproxy();
if (haproxy === undefined) {
  console.error('bench:cluster needs HAProxy (apt-get install haproxy)');
  process.exit(2);
}

/** CPU seconds of these processes so far (those gone count 0). */
const cpuOf = (pids: number[]) => pids.reduce((s, p) => s + (cpuSeconds(p) || 0), 0);

/** Read and write system calls of a process so far (/proc/<pid>/io). */
function syscalls(pid: number): number {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    return Number(/syscr: (\d+)/.exec(io)?.[1] ?? 0) + Number(/syscw: (\d+)/.exec(io)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Pids of processes whose command name is `name` (e.g. redis-server). */
function pidsNamed(name: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === name) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * Samples PostgreSQL's backends of one run (by application name) every 10 ms while running: how
 * many wait on a lock, and their CPU time (per backend, from its first sighting to its last).
 */
class BackendSampler {
  #client: pg.Client;
  #app: string;
  #running = false;
  #done: Promise<void> = Promise.resolve();
  readonly #cpu = new Map<number, { first: number; last: number }>();
  lockMs = 0;
  lwlockMs = 0;

  constructor(app: string) {
    this.#client = new pg.Client(pgConfig);
    this.#app = app;
  }

  async start(): Promise<void> {
    await this.#client.connect();
    this.#running = true;
    this.#done = (async () => {
      let last = performance.now();
      while (this.#running) {
        const r = await this.#client.query('SELECT pid, wait_event_type FROM pg_stat_activity WHERE application_name = $1', [this.#app]);
        const now = performance.now();
        const dt = now - last;
        last = now;
        for (const row of r.rows as { pid: number; wait_event_type: string | null }[]) {
          if (row.wait_event_type === 'Lock') this.lockMs += dt;
          if (row.wait_event_type === 'LWLock') this.lwlockMs += dt;
          const c = cpuSeconds(row.pid) || 0;
          const seen = this.#cpu.get(row.pid);
          if (seen === undefined) this.#cpu.set(row.pid, { first: c, last: c });
          else if (c > 0) seen.last = c;
        }
        await new Promise((r2) => setTimeout(r2, 10));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
    await this.#client.end();
  }

  /** CPU seconds of the run's backends while sampled. */
  get cpu(): number {
    let s = 0;
    for (const c of this.#cpu.values()) s += c.last - c.first;
    return s;
  }
}

interface Round {
  saturated: number;
  p50: number;
  p99: number;
  delivered: number;
  lost: number;
  duplicates: number;
  errors: number;
  /** CPU µs per delivered message, over the whole measured run (saturation, drain, fixed rate). */
  cpu: { nodes: number; postgres: number; redis: number; haproxy: number; load: number };
  /** CPU µs per delivered message while saturated (the load generator's measured window only). */
  sat: { nodes: number; postgres: number; redis: number; haproxy: number };
  /** Per second of the run: ms PostgreSQL backends spent waiting on locks (summed over backends). */
  lockMsPerS: number;
  lwlockMsPerS: number;
  wallS: number;
  /** Read and write system calls of the nodes per delivered message. */
  syscallsPerMsg: number;
  /** Of the nodes' CPU per message, µs in the kernel (system calls, loopback TCP). */
  nodesKernelUs: number;
}

async function runOne(nodesWanted: 1 | 2): Promise<Round> {
  const schema = `tacit_bench_${randomBytes(5).toString('hex')}`;
  const ports = await Promise.all(Array.from({ length: nodesWanted }, () => closedPort()));
  const env = (port: number) => ({
    PORT: String(port),
    TACIT_DATABASE_URL: `postgres://${pgConfig.user}@${pgConfig.host}:${pgConfig.port}/${pgConfig.database}`,
    TACIT_REDIS_URL: redisUrl,
    TACIT_DATABASE_SCHEMA: schema,
    TACIT_LOG_LEVEL: 'error',
    PGAPPNAME: schema,
    TACIT_SEND_RATE_PER_SECOND: HIGH,
    TACIT_SEND_BURST: HIGH,
    TACIT_FRAME_RATE_PER_SECOND: HIGH,
    TACIT_FRAME_BURST: HIGH,
    TACIT_REGISTRATION_BURST: HIGH,
    TACIT_REGISTRATION_PER_HOUR: HIGH,
    TACIT_MAX_HTTP_CONNECTIONS_PER_ADDRESS: HIGH,
    TACIT_MAX_UNAUTHENTICATED_PER_ADDRESS: HIGH,
    TACIT_MAX_UNAUTHENTICATED_CONNECTIONS: '100000',
  });
  const nodes: ServerProcess[] = [];
  let lb: Balancer | undefined;
  let load: ChildProcess | undefined;
  let sampler = new BackendSampler(schema);
  let warmDelivered = 0;
  try {
    // One at a time: the first migrates the empty schema.
    for (const p of ports) nodes.push(await startServer(env(p), prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []));
    // Health checks every 2 s: the failover test's 200 ms (a check also times out after that)
    // marks a node down whenever a busy shared machine delays its /healthz answer, and then
    // registration through the balancer fails with 503. Nothing here is about failover.
    lb = await startBalancer(haproxy!, ports, BALANCER_CHECK_MS);
    load = fork(resolve(here, 'relay', 'load.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const setup = { kind: 'tacit', port: lb.port, n: N, saturateMs: SATURATE_MS, fixedRate: FIXED_RATE, fixedMs: FIXED_MS, inflight: INFLIGHT };
    await request(load, { cmd: 'setup', setup }, (m) => (m['ev'] === 'registered' ? true : undefined));
    await request(load, { cmd: 'connect-half' }, (m) => (m['ev'] === 'connected' ? true : undefined));
    await request(load, { cmd: 'connect-rest' }, (m) => (m['ev'] === 'connected' ? true : undefined));
    const redis = pidsNamed('redis-server');
    const hap = pidsNamed('haproxy');
    const nodePids = nodes.map((n) => n.proc.pid!);
    const sys0 = nodePids.reduce((t, p) => t + syscalls(p), 0);
    const kernel0 = nodePids.reduce((t, p) => t + (kernelSeconds(p) || 0), 0);
    if (WARMUP) {
      // Unmeasured: the same load once, so every node process has compiled its hot paths (V8's
      // optimizing compiler runs for seconds of CPU). A deployed node runs for days; a short run
      // would charge that one-time cost to its messages, twice over with two node processes.
      await sampler.start();
      warmDelivered = Number((await request(load, { cmd: 'run' }, (m) => (m['ev'] === 'done' ? (m['result'] as Record<string, number>) : undefined)))['delivered']);
      await sampler.stop();
      sampler = new BackendSampler(schema);
    }
    const before = { nodes: cpuOf(nodePids), postgres: 0, redis: cpuOf(redis), haproxy: cpuOf(hap), load: cpuSeconds(load.pid!) || 0 };
    await sampler.start();
    const t0 = performance.now();
    const running = request(load, { cmd: 'run' }, (m) => (m['ev'] === 'done' ? (m['result'] as Record<string, number>) : undefined));
    // The load generator's saturated window (bench/relay/load.ts: after a warm quarter, at most
    // 1 s), sampled here on the same schedule: CPU of each part while saturated.
    const warm = Math.min(1000, SATURATE_MS / 4);
    const snap = () => ({ nodes: cpuOf(nodePids), postgres: sampler.cpu, redis: cpuOf(redis), haproxy: cpuOf(hap) });
    await sleep(warm);
    const s0 = snap();
    await sleep(SATURATE_MS - warm);
    const s1 = snap();
    const r = await running;
    const wallS = (performance.now() - t0) / 1000;
    await sampler.stop();
    const sys1 = nodePids.reduce((t, p) => t + syscalls(p), 0);
    const kernel1 = nodePids.reduce((t, p) => t + (kernelSeconds(p) || 0), 0);
    const after = { nodes: cpuOf(nodePids), postgres: sampler.cpu, redis: cpuOf(redis), haproxy: cpuOf(hap), load: cpuSeconds(load.pid!) || 0 };
    const delivered = Number(r['delivered']) - warmDelivered;
    const per = (k: keyof typeof before) => Math.round(((after[k] - before[k]) / delivered) * 1e6);
    const satDelivered = (Number(r['saturated']) * (SATURATE_MS - warm)) / 1000;
    const perSat = (k: keyof typeof s0) => (satDelivered > 0 ? Math.round(((s1[k] - s0[k]) / satDelivered) * 1e6) : NaN);
    return {
      saturated: Number(r['saturated']),
      p50: Number(r['p50']),
      p99: Number(r['p99']),
      delivered,
      lost: Number(r['lost']),
      duplicates: Number(r['duplicates']),
      errors: Number(r['errors']),
      cpu: { nodes: per('nodes'), postgres: per('postgres'), redis: per('redis'), haproxy: per('haproxy'), load: per('load') },
      sat: { nodes: perSat('nodes'), postgres: perSat('postgres'), redis: perSat('redis'), haproxy: perSat('haproxy') },
      lockMsPerS: Math.round((sampler.lockMs / (wallS * 1000)) * 10) / 10,
      lwlockMsPerS: Math.round((sampler.lwlockMs / (wallS * 1000)) * 10) / 10,
      wallS: Math.round(wallS * 10) / 10,
      syscallsPerMsg: Math.round(((sys1 - sys0) / delivered) * 10) / 10,
      nodesKernelUs: Math.round(((kernel1 - kernel0) / delivered) * 1e6),
    };
  } finally {
    if (load !== undefined && load.exitCode === null) {
      const exited = once(load, 'exit');
      load.send({ cmd: 'stop' });
      await exited;
    }
    await lb?.stop();
    for (const n of nodes) await stopServer(n, 'SIGTERM');
    const c = new pg.Client(pgConfig);
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
    const redisClient = new Redis(redisUrl);
    const keys = await redisClient.keys(`${schema}:*`);
    if (keys.length > 0) await redisClient.del(...keys);
    redisClient.disconnect();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const spread = (xs: number[]) => `${Math.min(...xs)}–${Math.max(...xs)}`;

console.log(`cluster bench: Node ${process.version}, ${availableParallelism()} cores, N=${N} devices, ${INFLIGHT} in flight when saturating, fixed rate ${FIXED_RATE}/s, ${ROUNDS} round(s) each, ${machineLoad()}`);
const results: Record<'n1' | 'n2', Round[]> = { n1: [], n2: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const k of [1, 2] as const) {
    if (only !== undefined && only !== `n${k}`) continue;
    const r = await runOne(k);
    results[k === 1 ? 'n1' : 'n2'].push(r);
    console.log(
      `n${k} round ${round + 1}: saturated ${r.saturated} msg/s | at ${FIXED_RATE}/s: p50 ${r.p50} ms p99 ${r.p99} ms | ` +
        `cpu µs/msg saturated: nodes ${r.sat.nodes} postgres ${r.sat.postgres} redis ${r.sat.redis} haproxy ${r.sat.haproxy} | ` +
        `syscalls/msg ${r.syscallsPerMsg} | whole run cpu µs/msg: nodes ${r.cpu.nodes} (kernel ${r.nodesKernelUs}) postgres ${r.cpu.postgres} redis ${r.cpu.redis} haproxy ${r.cpu.haproxy} (load gen ${r.cpu.load}) | ` +
        `lock wait ${r.lockMsPerS} ms/s, lwlock ${r.lwlockMsPerS} ms/s | delivered ${r.delivered} lost ${r.lost} dup ${r.duplicates} errors ${r.errors} | ${machineLoad()}`,
    );
  }
}
const summary = (rs: Round[]) => ({
  saturated: median(rs.map((r) => r.saturated)),
  p99ms: median(rs.map((r) => r.p99)),
});
for (const k of ['n1', 'n2'] as const) {
  const rs = results[k];
  console.log(
    `${k} median of ${rs.length}: saturated ${median(rs.map((r) => r.saturated))} msg/s (${spread(rs.map((r) => r.saturated))}), ` +
      `p99 ${median(rs.map((r) => r.p99))} ms (${spread(rs.map((r) => r.p99))}), ` +
      `cpu µs/msg saturated: nodes ${median(rs.map((r) => r.sat.nodes))} (${spread(rs.map((r) => r.sat.nodes))}) postgres ${median(rs.map((r) => r.sat.postgres))} ` +
      `redis ${median(rs.map((r) => r.sat.redis))} haproxy ${median(rs.map((r) => r.sat.haproxy))}; whole run: nodes ${median(rs.map((r) => r.cpu.nodes))} ` +
      `postgres ${median(rs.map((r) => r.cpu.postgres))} redis ${median(rs.map((r) => r.cpu.redis))} haproxy ${median(rs.map((r) => r.cpu.haproxy))}, ` +
      `lock wait ${median(rs.map((r) => r.lockMsPerS))} ms/s (${spread(rs.map((r) => r.lockMsPerS))}), lost ${rs.reduce((s, r) => s + r.lost, 0)}, dup ${rs.reduce((s, r) => s + r.duplicates, 0)}`,
  );
}
// The cross-node path alone, in one process (no time-slicing between node processes).
if (withPath) {
  const path = await new Promise<{ local: number[]; crossNode: number[] }>((resolvePath, reject) => {
    let text = '';
    const c = fork(resolve(here, 'cluster', 'path.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    c.stdout!.on('data', (d: Buffer) => (text += d.toString()));
    c.on('exit', (code) => (code === 0 ? resolvePath(JSON.parse(text.trim().split('\n').at(-1)!) as { local: number[]; crossNode: number[] }) : reject(new Error(`path.ts exited ${code}`))));
  });
  console.log(
    `cross-node path, two nodes in one process, CPU per message (servers and clients): local delivery ${median(path.local)} µs (${spread(path.local)}), ` +
      `through a Redis event to the other node ${median(path.crossNode)} µs (${spread(path.crossNode)}): +${median(path.crossNode) - median(path.local)} µs`,
  );
}
const out = { n1: summary(results.n1), n2: summary(results.n2) };
const ratio = Math.round((out.n2.saturated / out.n1.saturated) * 100) / 100;
const perRound = results.n1.map((r, i) => Math.round(((results.n2[i]?.saturated ?? NaN) / r.saturated) * 100) / 100);
console.log(`ratio n2/n1 saturated: ${ratio} (median of medians; per round ${perRound.join(', ')})`);
console.log(JSON.stringify(out));
