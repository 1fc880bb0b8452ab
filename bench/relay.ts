// Relay benchmark: tacit's server (SQLite, every message durably stored before it is
// acknowledged) against a bare `ws` relay, N = 100 and N = 1000 connected devices, 1 KiB
// payloads to random peers. Servers and the load generator each run in their own process.
//
//   npm run bench:relay [-- --quick]
//
// Each configuration runs ROUNDS times (3; BENCH_ROUNDS to change, 1 with --quick), bare and tacit
// interleaved (the order alternates by round) so both see the same spells of load from other
// processes. Prints one line per run (with the machine's load), then per configuration the
// median and spread (min-max) of each figure and the ratio of the medians, and, last, one JSON
// object of medians:
// {"saturated":{"n100":{"tacit":N,"bare":N},"n1000":{...}},"p99ms":{...},"cpuUsPerMsg":{...},"lost":{...},"idleKiB":{...}}
// Benchmarks assert nothing; the machine is shared and noisy, so compare the two in the same run.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { machineLoad } from './machine.ts';
import { cpuSeconds, request, threadCpuSeconds } from './children.ts';

const quick = process.argv.includes('--quick');
const here = import.meta.dirname;
const execArgv = ['--import', 'tsx', '--expose-gc'];

/** BENCH_CPU_PROF=<dir> profiles the servers (node --cpu-prof); see bench/profile-summary.ts. */
const prof = process.env['BENCH_CPU_PROF'];
/** BENCH_ONLY=tacit|bare and BENCH_N=100|1000 narrow the matrix while optimising. */
const only = process.env['BENCH_ONLY'];
const onlyN = process.env['BENCH_N'];
/** BENCH_RATE: the fixed rate of the latency phase (5,000 msg/s, the issue's target, by default). */
const fixedRate = Number(process.env['BENCH_RATE'] ?? 5000);
if (!Number.isSafeInteger(fixedRate) || fixedRate <= 0) throw new Error('BENCH_RATE must be a positive integer');

function child(file: string, env: Record<string, string> = {}): ChildProcess {
  const args = prof && file.endsWith('-server.ts') ? [...execArgv, '--cpu-prof', `--cpu-prof-dir=${prof}`] : execArgv;
  return fork(resolve(here, 'relay', file), [], { execArgv: args, env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

/** CPU seconds (user + system) a child has used so far. */
const cpuSecondsOf = (c: ChildProcess): number => cpuSeconds(c.pid!);

const mem = (server: ChildProcess) => request(server, { cmd: 'mem' }, (m) => m['rss'] as number | undefined);

interface Result {
  saturated: number;
  p50: number;
  p99: number;
  lost: number;
  idleKiB: number;
  cpuUsPerMsg: number;
  [k: string]: number;
}

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, 'exit');
  if (c.connected) c.disconnect();
  await exited;
}

async function runOne(kind: 'tacit' | 'bare', n: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-bench-'));
  const serverFile = kind === 'tacit' ? 'tacit-server.ts' : 'bare-server.ts';
  let server = child(serverFile, { BENCH_DIR: dir });
  const load = child('load.ts');
  try {
    let port = await request(server, {}, (m) => m['port'] as number | undefined);
    const setup = { kind, port, n, saturateMs: quick ? 2000 : 4000, fixedRate, fixedMs: quick ? 2000 : 5000 };
    await request(load, { cmd: 'setup', setup }, (m) => (m['ev'] === 'registered' ? true : undefined));
    if (kind === 'tacit') {
      // Restart on the same database, so registration's garbage is not in the memory figures.
      await stop(server);
      server = child(serverFile, { BENCH_DIR: dir });
      port = await request(server, {}, (m) => m['port'] as number | undefined);
      load.send({ cmd: 'port', port });
    }
    // Memory per idle connection is the marginal cost: RSS with all N connected minus RSS with
    // N/2 connected, over N/2. Fixed costs (caches warmed by the first connections, the store,
    // registration garbage) cancel out.
    await request(load, { cmd: 'connect-half' }, (m) => (m['ev'] === 'connected' ? true : undefined));
    const before = await mem(server);
    await request(load, { cmd: 'connect-rest' }, (m) => (m['ev'] === 'connected' ? true : undefined));
    const after = await mem(server);
    const cpu0 = [cpuSecondsOf(server), cpuSecondsOf(load)];
    const threads0 = threadCpuSeconds(server.pid!);
    const t0 = Date.now();
    const r = await request(load, { cmd: 'run' }, (m) => (m['ev'] === 'done' ? (m['result'] as Record<string, number>) : undefined));
    const wall = (Date.now() - t0) / 1000;
    const serverCpu = cpuSecondsOf(server) - cpu0[0]!;
    // Where the server's CPU went: its main thread (the event loop) and the busiest other thread
    // (tacit: the SQLite writer), per delivered message.
    const threads = [...threadCpuSeconds(server.pid!)].map(([tid, s]) => [tid, s - (threads0.get(tid) ?? 0)] as const);
    const mainCpu = threads.find(([tid]) => tid === server.pid)?.[1] ?? NaN;
    const busiest = Math.max(0, ...threads.filter(([tid]) => tid !== server.pid).map(([, s]) => s));
    // CPU per delivered message does not depend on how much of the machine others take.
    const perMsg = Math.round((serverCpu / Number(r['delivered'])) * 1e6);
    const us = (s: number) => Math.round((s / Number(r['delivered'])) * 1e6);
    const cpu = `cpu server ${Math.round((serverCpu / wall) * 100)}% (${perMsg} µs/msg: main thread ${us(mainCpu)}, busiest other ${us(busiest)}, rest ${perMsg - us(mainCpu) - us(busiest)}) load ${Math.round(((cpuSecondsOf(load) - cpu0[1]!) / wall) * 100)}%`;
    const idleKiB = Math.round(((after - before) / (n / 2) / 1024) * 10) / 10;
    const result = { ...r, idleKiB, cpuUsPerMsg: perMsg, mainUsPerMsg: us(mainCpu) } as Result;
    console.log(
      `${kind.padEnd(5)} n=${String(n).padEnd(4)} saturated ${result.saturated} msg/s | at ${fixedRate}/s (achieved ${result['fixedAchievedRate']}/s): p50 ${result.p50} ms p99 ${result.p99} ms | sent ${result['sent']} refused ${result['refused']} lost ${result.lost} dup ${result['duplicates']} errors ${result['errors']}${kind === 'tacit' ? ` | ids per ack frame ${result['acksPerFrame']}, per sent frame ${result['sentPerFrame']}` : ''} | idle ${idleKiB} KiB/conn | ${cpu} | ${machineLoad()}`,
    );
    return result;
  } finally {
    const loadExit = once(load, 'exit');
    load.send({ cmd: 'stop' });
    await Promise.all([loadExit, stop(server)]);
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`relay bench: Node ${process.version}, ${availableParallelism()} cores, ${machineLoad()}`);
const ROUNDS = quick ? 1 : Number(process.env['BENCH_ROUNDS'] ?? 3);
const KINDS = ['bare', 'tacit'] as const;
type Kind = (typeof KINDS)[number];
const runs: Record<'n100' | 'n1000', Record<Kind, Result[]>> = { n100: { bare: [], tacit: [] }, n1000: { bare: [], tacit: [] } };
for (const n of [100, 1000] as const) {
  if (onlyN !== undefined && String(n) !== onlyN) continue;
  const key = n === 100 ? 'n100' : 'n1000';
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? KINDS : ([...KINDS].reverse() as unknown as typeof KINDS);
    for (const kind of order) {
      if (only !== undefined && kind !== only) continue;
      runs[key][kind].push(await runOne(kind, n));
    }
  }
}

const median = (xs: number[]) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};
const round2 = (x: number) => Math.round(x * 100) / 100;
const ratio = (a: number, b: number) => (b === 0 || !Number.isFinite(a) || !Number.isFinite(b) ? NaN : round2(a / b));
const spread = (xs: number[]) => (xs.length === 0 ? '-' : `${round2(median(xs))} [${round2(Math.min(...xs))}-${round2(Math.max(...xs))}]`);
const FIGURES = [
  ['saturated', 'saturated msg/s', 'higher is better'],
  ['p50', `p50 ms at ${fixedRate}/s`, ''],
  ['p99', `p99 ms at ${fixedRate}/s`, 'target tacit <= 1.5x bare (at 5000/s)'],
  ['cpuUsPerMsg', 'server CPU µs/msg', 'target tacit <= 1.5x bare'],
  ['mainUsPerMsg', '  of it main thread', ''],
  ['idleKiB', 'KiB per idle connection', 'target tacit <= 24'],
] as const;
console.log(`\nsummary: median [min-max] of ${ROUNDS} interleaved round(s) per contender; ${machineLoad()}`);
for (const key of ['n100', 'n1000'] as const) {
  if (runs[key].bare.length + runs[key].tacit.length === 0) continue;
  console.log(`  ${key === 'n100' ? 'N = 100' : 'N = 1000'}`);
  for (const [f, label, note] of FIGURES) {
    // Memory per connection is the difference of two RSS readings over N/2: meaningful at N = 1000 only.
    if (f === 'idleKiB' && key === 'n100') continue;
    const t = runs[key].tacit.map((r) => r[f]);
    const b = runs[key].bare.map((r) => r[f]);
    // Same-round ratios, where both contenders ran in the round: a second view on the noise.
    const paired = t.slice(0, Math.min(t.length, b.length)).map((x, i) => x / b[i]!);
    console.log(
      `    ${label.padEnd(24)} tacit ${spread(t).padEnd(26)} bare ${spread(b).padEnd(26)} tacit/bare ${ratio(median(t), median(b))} (same-round ${paired.length > 0 ? spread(paired) : '-'})${note ? `  ${note}` : ''}`,
    );
  }
}
const lost = (k: Kind) => [...runs.n100[k], ...runs.n1000[k]].reduce((a, r) => a + r.lost, 0);
console.log(`  lost (all rounds): tacit ${lost('tacit')}, bare ${lost('bare')}`);
const pick = (f: (typeof FIGURES)[number][0]) => ({
  n100: { tacit: median(runs.n100.tacit.map((r) => r[f])), bare: median(runs.n100.bare.map((r) => r[f])) },
  n1000: { tacit: median(runs.n1000.tacit.map((r) => r[f])), bare: median(runs.n1000.bare.map((r) => r[f])) },
});
const out = {
  saturated: pick('saturated'),
  p99ms: pick('p99'),
  cpuUsPerMsg: pick('cpuUsPerMsg'),
  lost: { tacit: lost('tacit'), bare: lost('bare') },
  idleKiB: { tacit: pick('idleKiB').n1000.tacit, bare: pick('idleKiB').n1000.bare },
};
console.log(JSON.stringify(out));
