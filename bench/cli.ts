// CLI start-up benchmark: wall time of whole `tacit` processes against Node's own start-up
// (`node -e ""`), measured in the same run, interleaved round by round so that load on this
// shared machine hits every contender alike.
//
//   npm run bench:cli [-- --rounds=15]
//
// - help:   tacit --help (no account, no network)
// - whoami: opens the sealed home (one scrypt with the default cost, N = 2^17), no network
// - send:   opens the home, connects to a real server on loopback, sends one message, waits for
//           the server to store it
// - node:   node -e ""
// Also shown, not in the JSON: `node -e` running one scrypt at the default cost (what opening a
// home costs before any tacit code runs), `npx tacit --help` (npm's own start-up on top) and `--help` run
// from the TypeScript sources through tsx (how the command ran before it was bundled).
//
// Prints a table of medians and ratios to node and, last, one JSON object:
// {"help":ms,"whoami":ms,"send":ms,"node":ms}
// Benchmarks assert nothing; compare the figures of one run with each other.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBuilt } from '../apps/cli/scripts/build.mjs';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '15' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 1000) throw new Error('--rounds must be 1..1000');

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'apps', 'cli', 'bin', 'tacit.js');
const SERVER_MAIN = join(ROOT, 'apps', 'server', 'src', 'main.ts');
const PASSPHRASE = 'bench passphrase 1';

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ ms: number; code: number; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    p.on('error', reject);
    p.on('exit', (code) => resolvePromise({ ms: performance.now() - t0, code: code ?? -1, stderr }));
  });
}

async function startServer(dataDir: string): Promise<{ url: string; stop(): Promise<void> }> {
  const p = spawn(process.execPath, ['--import', 'tsx', SERVER_MAIN], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', TACIT_DATA_DIR: dataDir, INIT_CWD: ROOT, TACIT_REGISTRATION: 'open', TACIT_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolvePromise, reject) => {
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const m = /tacit server on (http:\/\/\S+)/.exec(out);
      if (m) resolvePromise(m[1]!);
    });
    p.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return {
    url,
    stop: () =>
      new Promise<void>((r) => {
        p.once('exit', () => r());
        p.kill('SIGTERM');
      }),
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

await ensureBuilt();
const dir = mkdtempSync(join(tmpdir(), 'tacit-bench-cli-'));
const server = await startServer(join(dir, 'server'));
try {
  // The default scrypt cost (TACIT_SCRYPT_N unset): the passphrase KDF real users pay.
  const env: NodeJS.ProcessEnv = { ...process.env, TACIT_PASSPHRASE: PASSPHRASE };
  delete env['TACIT_SCRYPT_N'];
  delete env['TACIT_HOME'];
  const alice = join(dir, 'alice');
  for (const [home, name] of [[alice, 'alice'], [join(dir, 'bob'), 'bob']] as const) {
    const r = await run(process.execPath, [BIN, '--home', home, 'register', name, '--server', server.url], env);
    if (r.code !== 0) throw new Error(`register ${name} failed: ${r.stderr}`);
  }
  // What opening a home costs before any tacit code runs: one scrypt at the default cost.
  const KDF = `require('node:crypto').scryptSync('p', Buffer.alloc(16), 64, { N: 2 ** 17, r: 8, p: 1, maxmem: 256 * 2 ** 17 * 8 })`;
  const viaTsx = `import('./apps/cli/src/main.ts').then((m) => m.main(['--help'])).then((c) => process.exit(c))`;
  const contenders: Record<string, () => Promise<{ ms: number; code: number; stderr: string }>> = {
    node: () => run(process.execPath, ['-e', '']),
    help: () => run(process.execPath, [BIN, '--help']),
    whoami: () => run(process.execPath, [BIN, '--home', alice, 'whoami'], env),
    send: () => run(process.execPath, [BIN, '--home', alice, 'send', 'bob', 'bench'], env),
    'node + scrypt (the KDF)': () => run(process.execPath, ['-e', KDF]),
    'npx tacit --help': () => run('npx', ['--no-install', 'tacit', '--help']),
    'help via tsx (before)': () => run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', viaTsx]),
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  // One warm-up round (disk cache), not counted.
  for (let round = -1; round < rounds; round++) {
    for (const [name, f] of Object.entries(contenders)) {
      const r = await f();
      if (r.code !== 0) throw new Error(`${name} exited ${r.code}: ${r.stderr}`);
      if (round >= 0) times[name]!.push(r.ms);
    }
  }
  const med = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  const node = med['node']!;
  console.log(`tacit CLI wall time, median of ${rounds} rounds (ms), and ratio to node -e ""`);
  for (const [k, v] of Object.entries(med)) console.log(`  ${k.padEnd(24)} ${v.toFixed(0).padStart(6)} ms  ${(v / node).toFixed(1).padStart(5)}x`);
  console.log(JSON.stringify({ help: Math.round(med['help']!), whoami: Math.round(med['whoami']!), send: Math.round(med['send']!), node: Math.round(node) }));
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
