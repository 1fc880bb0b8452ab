// Attachment benchmark: a 64 MiB file through tacit (encrypt, upload in pieces, download,
// verify, decrypt, fsynced to disk; server: SQLite + files blob store, every piece fsynced) and,
// in the same run, the same bytes by a plain HTTP PUT and GET against a bare Node server on this
// machine (streamed to and from a file, fsynced once). Rounds interleave the two (the order
// alternates) so both see the same spells of load from other processes; medians are reported.
// Then the peak RSS growth of the client and the server processes while one 512 MiB file goes
// up and comes back through tacit.
//
//   npm run bench:attachments [-- --rounds=5] [-- --big-mib=512]
//
// Throughput is file MiB / (upload + download seconds). Last line, one JSON object:
// {"throughput":{"tacit":MiBps,"plain":MiBps},"peakRssMiB":{"client":N,"server":N}}
// Benchmarks assert nothing; the machine is shared and noisy, so compare the two in the same run.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { openSync, writeSync, closeSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { machineLoad } from './machine.ts';
import { request } from './children.ts';
import { ServerProcess } from '../packages/client/test/support/server-process.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, 'big-mib': { type: 'string', default: '512' } } });
const rounds = Number(values.rounds);
const bigMiB = Number(values['big-mib']);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) throw new Error('--rounds must be 1..100');
if (!Number.isInteger(bigMiB) || bigMiB < 1 || bigMiB > 4096) throw new Error('--big-mib must be 1..4096');

const MiB = 1024 * 1024;
const SMALL_MIB = 64;
const here = import.meta.dirname;
const dir = mkdtempSync(join(tmpdir(), 'tacit-bench-att-'));

/** A file of `mib` MiB of random bytes (a random 4 MiB block repeated: it is all ciphertext to the server anyway). */
function makeFile(name: string, mib: number): string {
  const p = join(dir, name);
  const block = randomBytes(4 * MiB);
  const fd = openSync(p, 'w');
  for (let written = 0; written < mib * MiB; written += block.length) writeSync(fd, block, 0, Math.min(block.length, mib * MiB - written));
  closeSync(fd);
  return p;
}

function memoryOf(pid: number): { rss: number; peak: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/** Resets a process's VmHWM to its current RSS; false where the kernel does not allow it. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

async function startBare(): Promise<{ url: string; proc: ChildProcess }> {
  const bareDir = join(dir, 'bare');
  mkdirSync(bareDir);
  const proc = spawn(process.execPath, ['--import', 'tsx', resolve(here, 'attachments', 'bare-server.ts'), bareDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((res, rej) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /port (\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
    proc.once('exit', (code) => rej(new Error(`bare server exited ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, proc };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (x: number, d = 1) => x.toFixed(d);

const tacitServer = await ServerProcess.start({
  TACIT_MAX_ATTACHMENT_BYTES: String((bigMiB + 16) * MiB),
  TACIT_ATTACHMENT_QUOTA_BYTES: String(4 * (bigMiB + 16) * MiB),
  TACIT_ATTACHMENT_REQUEST_BURST: '100000',
  TACIT_ATTACHMENT_CREATE_BURST: '10000',
});
const bare = await startBare();
const creds = await tacitServer.register();
async function startClient(): Promise<ChildProcess> {
  const c = fork(resolve(here, 'attachments', 'client.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, TACIT_URL: tacitServer.url, PLAIN_URL: bare.url, TACIT_CREDENTIALS: JSON.stringify(creds) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await request(c, {}, (m) => (m['ev'] === 'ready' ? true : undefined));
  return c;
}
async function stopClient(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, 'exit');
  if (c.connected) c.disconnect();
  await exited;
}
let client = await startClient();
const run = (cmd: 'tacit' | 'plain', file: string) =>
  request(client, { cmd, file, out: join(dir, `out-${cmd}`) }, (m) => (m['ev'] === 'done' ? { up: m['up'] as number, down: m['down'] as number } : undefined));

try {
  const small = makeFile('small.bin', SMALL_MIB);
  process.stdout.write(`bench:attachments: ${SMALL_MIB} MiB through tacit and plain HTTP, ${rounds} rounds interleaved; then ${bigMiB} MiB through tacit for memory\n`);
  // Warm-up: code paths, page cache, JIT.
  await run('tacit', small);
  await run('plain', small);
  const results: Record<'tacit' | 'plain', { up: number; down: number; total: number }[]> = { tacit: [], plain: [] };
  for (let r = 0; r < rounds; r++) {
    const order: ('tacit' | 'plain')[] = r % 2 === 0 ? ['tacit', 'plain'] : ['plain', 'tacit'];
    for (const kind of order) {
      const t = await run(kind, small);
      const total = SMALL_MIB / ((t.up + t.down) / 1000);
      results[kind].push({ up: SMALL_MIB / (t.up / 1000), down: SMALL_MIB / (t.down / 1000), total });
      process.stdout.write(
        `  round ${r + 1} ${kind.padEnd(5)} ${fmt(total).padStart(7)} MiB/s  (upload ${fmt(SMALL_MIB / (t.up / 1000))}, download ${fmt(SMALL_MIB / (t.down / 1000))})  [${machineLoad()}]\n`,
      );
    }
  }
  const med = (k: 'tacit' | 'plain', f: 'up' | 'down' | 'total') => median(results[k].map((x) => x[f]));
  const tacitMiBps = med('tacit', 'total');
  const plainMiBps = med('plain', 'total');
  process.stdout.write(`\n${SMALL_MIB} MiB round trip, median MiB/s (spread):\n`);
  for (const k of ['tacit', 'plain'] as const) {
    const xs = results[k].map((x) => x.total);
    process.stdout.write(
      `  ${k.padEnd(5)} ${fmt(med(k, 'total')).padStart(7)}  (${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))})   upload ${fmt(med(k, 'up'))}, download ${fmt(med(k, 'down'))}\n`,
    );
  }
  const sameRound = median(results.tacit.map((x, i) => x.total / results.plain[i]!.total));
  process.stdout.write(`  tacit / plain = ${fmt(tacitMiBps / plainMiBps, 2)} (ratio of medians; median of same-round ratios ${fmt(sameRound, 2)}; target >= 0.5)\n`);

  // Peak memory while a big file goes through tacit, in a fresh client process warmed up by one
  // 1 MiB transfer only (a process that already moved many files has grown its heap limits, and
  // would show less).
  const big = makeFile('big.bin', bigMiB);
  await stopClient(client);
  client = await startClient();
  await run('tacit', makeFile('warm.bin', 1));
  const clientPid = client.pid!;
  const serverPid = tacitServer.pid;
  const before = { client: memoryOf(clientPid), server: memoryOf(serverPid) };
  const reset = resetPeak(clientPid) && resetPeak(serverPid);
  // Without clear_refs, sample RSS instead (every 20 ms).
  const peaks = { client: before.client.rss, server: before.server.rss };
  const sampler = setInterval(() => {
    peaks.client = Math.max(peaks.client, memoryOf(clientPid).rss);
    peaks.server = Math.max(peaks.server, memoryOf(serverPid).rss);
  }, 20);
  const t = await run('tacit', big);
  clearInterval(sampler);
  const after = { client: memoryOf(clientPid), server: memoryOf(serverPid) };
  // Never below zero: a process whose RSS only fell did not grow.
  const growth = (k: 'client' | 'server') => Math.max(0, (reset ? after[k].peak : Math.max(peaks[k], after[k].rss)) - before[k].rss) / MiB;
  process.stdout.write(
    `\n${bigMiB} MiB through tacit (a fresh client process): ${fmt(bigMiB / ((t.up + t.down) / 1000))} MiB/s; peak RSS growth (${reset ? 'VmHWM after clear_refs' : 'sampled every 20 ms'}): ` +
      `client ${fmt(growth('client'))} MiB (from ${fmt(before.client.rss / MiB)}), server ${fmt(growth('server'))} MiB (from ${fmt(before.server.rss / MiB)}) (target <= 64 each)\n`,
  );
  process.stdout.write(
    JSON.stringify({ throughput: { tacit: Number(fmt(tacitMiBps)), plain: Number(fmt(plainMiBps)) }, peakRssMiB: { client: Number(fmt(growth('client'))), server: Number(fmt(growth('server'))) } }) + '\n',
  );
} finally {
  await stopClient(client);
  bare.proc.kill('SIGTERM');
  await once(bare.proc, 'exit').catch(() => undefined);
  await tacitServer.stop();
  rmSync(dir, { recursive: true, force: true });
}
