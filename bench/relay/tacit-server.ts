// tacit's server for the relay benchmark: SQLite on a file (durable, synchronous=FULL), rate
// limits raised so the benchmark measures the relay rather than the limiter. Runs as a forked
// child; talks to bench/relay.ts over IPC: {port} when listening, {rss} after {cmd:'mem'}.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer, SqliteStore } from '@tacit/server';

const dir = mkdtempSync(join(tmpdir(), 'tacit-bench-'));
const HIGH = 1_000_000_000;
const server = await buildServer({
  store: new SqliteStore({ path: join(dir, 'tacit.db'), worker: process.env['BENCH_WORKER'] !== '0', ...(process.env['BENCH_SYNC'] === 'NORMAL' ? { synchronous: 'NORMAL' as const } : {}) }),
  registration: 'open',
  limits: {
    sendRatePerSecond: HIGH,
    sendBurst: HIGH,
    frameRatePerSecond: HIGH,
    frameBurst: HIGH,
    registrationBurst: HIGH,
    registrationPerHour: HIGH,
    maxUnauthenticatedConnections: 100_000,
  },
});
const port = await server.listen(0, '127.0.0.1');
const gc = (globalThis as { gc?: () => void }).gc;
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'mem') {
    gc?.();
    gc?.();
    process.send!({ rss: process.memoryUsage().rss });
  }
});
process.on('disconnect', () => {
  void server.close().finally(() => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
});
process.send!({ port });
