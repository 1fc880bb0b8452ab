// Client benchmark (issue 8): a Node client with HISTORY messages of history receives BATCH more
// that a real local server queued for it while it was offline.
//
//   npm run bench:client [-- --history=5000] [-- --messages=5000] [-- --rounds=3]
//
// Contenders, on the same ciphertexts: before the rounds the server's data directory and the
// receiver's home are saved; each round restores both and starts the server again on the same
// port, so both contenders drain the identical queue from the identical state.
//   persisted   the CLI's store: records in one SQLite file, each sealed, one commit per batch
//   memoryOnly  the same records copied into a MemoryRecordStore: the same SDK path, no disk
// Each receiver runs in a process of its own (bench/client/receiver.ts) so /proc/self/io counts
// its writes alone. Rounds interleave the two, the order alternating; medians are reported.
// Last line, one JSON object: {"receive":{"persisted":N,"memoryOnly":M},"bytesPerMessage":B}
// (messages per second; bytes written to the storage layer per received message, persisted).
// Benchmarks assert nothing; the machine is shared and noisy, so compare the two in the same run.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { MemoryRecordStore, TacitClient } from '@tacit/client';
import { registerHome, wsSocketFactory } from '@tacit/client/node';
import { nodeBackend } from '@tacit/protocol/node';
import { ServerProcess } from '../packages/client/test/support/server-process.ts';
import { machineLoad } from './machine.ts';

const { values } = parseArgs({
  options: { history: { type: 'string', default: '5000' }, messages: { type: 'string', default: '5000' }, rounds: { type: 'string', default: '3' } },
});
const HISTORY = Number(values.history);
const BATCH = Number(values.messages);
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(HISTORY) || HISTORY < 0 || HISTORY > 100_000) throw new Error('--history must be 0..100000');
if (!Number.isInteger(BATCH) || BATCH < 1 || BATCH > 100_000) throw new Error('--messages must be 1..100000');
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 20) throw new Error('--rounds must be 1..20');

const PASSPHRASE = 'bench passphrase';
const RECEIVER = resolve(import.meta.dirname, 'client', 'receiver.ts');
const dir = mkdtempSync(join(tmpdir(), 'tacit-bench-client-'));
const run = promisify(execFile);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const port = await freePort();
// One sender sends HISTORY + BATCH messages to one device today: above the default daily quotas.
const QUOTAS = {
  TACIT_SENDS_PER_RECIPIENT_DEVICE_PER_DAY: '1000000',
  TACIT_SENDS_PER_ACCOUNT_PER_DAY: '1000000',
  TACIT_SEND_BYTES_PER_ACCOUNT_PER_DAY: String(2 ** 40),
};
const start = (dataDir: string) => ServerProcess.start({ PORT: String(port), TACIT_DATA_DIR: dataDir, ...QUOTAS });

/** Sends `n` texts from `sender` to `to` and waits until the server stored every one. */
async function sendAll(sender: TacitClient, to: string, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++) await sender.send(to, `${tag} ${i} ${'x'.repeat(i % 80)}`);
  const left = await sender.flush(600_000);
  if (left !== 0) throw new Error(`${left} messages still unsent`);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Result {
  messages: number;
  ms: number;
  writeBytes: number;
  writeCalls: number;
  wchar: number;
}

try {
  // ---- setup: bob (SQLite home) with HISTORY messages of history, then BATCH queued while offline
  const seedData = join(dir, 'seed-data');
  const seedHome = join(dir, 'seed-home');
  process.stdout.write(`bench:client: a receiver with ${HISTORY} messages of history drains ${BATCH} queued messages; ${ROUNDS} rounds, persisted and memory-only interleaved\n`);
  const server = await start(seedData);
  try {
    const t0 = performance.now();
    const bob = await registerHome({ home: seedHome, passphrase: PASSPHRASE, scryptN: 1 << 14 }, { server: server.url, username: 'bob' });
    const alice = await TacitClient.register({ store: new MemoryRecordStore(), backend: nodeBackend(), connect: wsSocketFactory }, { server: server.url, username: 'alice' });
    await alice.connect();
    if (HISTORY > 0) {
      let got = 0;
      const all = new Promise<void>((r) => bob.client.on('message', () => ++got >= HISTORY && r()));
      await bob.client.connect();
      await sendAll(alice, 'bob', HISTORY, 'history');
      await all;
    }
    await bob.close();
    await sendAll(alice, 'bob', BATCH, 'new');
    await alice.close();
    process.stdout.write(`  setup ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  } finally {
    await server.stop();
  }

  // ---- rounds
  const results: Record<'persisted' | 'memory', Result[]> = { persisted: [], memory: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order: ('persisted' | 'memory')[] = r % 2 === 0 ? ['persisted', 'memory'] : ['memory', 'persisted'];
    for (const mode of order) {
      const data = join(dir, `data-${r}-${mode}`);
      const home = join(dir, `home-${r}-${mode}`);
      cpSync(seedData, data, { recursive: true });
      cpSync(seedHome, home, { recursive: true });
      const s = await start(data);
      try {
        const { stdout } = await run(process.execPath, ['--import', 'tsx', RECEIVER, mode, home, PASSPHRASE, String(BATCH)], { maxBuffer: 1 << 20, timeout: 900_000 });
        const res = JSON.parse(stdout.trim().split('\n').pop()!) as Result;
        if (res.messages !== BATCH) throw new Error(`${mode}: received ${res.messages} of ${BATCH}`);
        results[mode].push(res);
        process.stdout.write(
          `  round ${r + 1} ${mode.padEnd(9)} ${(BATCH / (res.ms / 1000)).toFixed(0).padStart(6)} msg/s  ${(res.writeBytes / BATCH / 1024).toFixed(2)} KiB written/msg  ${(res.writeCalls / BATCH).toFixed(2)} writes/msg  [${machineLoad()}]\n`,
        );
      } finally {
        await s.stop();
        rmSync(home, { recursive: true, force: true });
        rmSync(data, { recursive: true, force: true });
      }
    }
  }
  const rate = (m: 'persisted' | 'memory') => median(results[m].map((x) => BATCH / (x.ms / 1000)));
  const persisted = rate('persisted');
  const memoryOnly = rate('memory');
  const sameRound = median(results.persisted.map((x, i) => results.memory[i]!.ms / x.ms));
  const bytesPerMessage = median(results.persisted.map((x) => x.writeBytes / BATCH));
  const memBytes = median(results.memory.map((x) => x.writeBytes / BATCH));
  process.stdout.write(`\nreceive, median messages/s: persisted ${persisted.toFixed(0)}, memory-only ${memoryOnly.toFixed(0)}; persisted/memory-only ${(persisted / memoryOnly).toFixed(2)}x (same-round median ${sameRound.toFixed(2)}x; target >= 0.5x)\n`);
  process.stdout.write(`bytes written per received message (persisted): ${bytesPerMessage.toFixed(0)} B = ${(bytesPerMessage / 1024).toFixed(2)} KiB (target <= 16 KiB); memory-only wrote ${memBytes.toFixed(0)} B/msg\n`);
  process.stdout.write(JSON.stringify({ receive: { persisted: Math.round(persisted), memoryOnly: Math.round(memoryOnly) }, bytesPerMessage: Math.round(bytesPerMessage) }) + '\n');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
