// tacit's server for the relay benchmark: SQLite on a file (durable, synchronous=FULL), rate
// limits raised so the benchmark measures the relay rather than the limiter. Runs as a forked
// child; talks to bench/relay.ts over IPC: {port} when listening, {rss} after {cmd:'mem'}.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer, SqliteStore } from '@tacit/server';

// The orchestrator may pass a data directory (to restart on the same database); it then owns it.
const given = process.env['BENCH_DIR'];
const dir = given ?? mkdtempSync(join(tmpdir(), 'tacit-bench-'));
const HIGH = 1_000_000_000;
const store = new SqliteStore({ path: join(dir, 'tacit.db'), worker: process.env['BENCH_WORKER'] !== '0', ...(process.env['BENCH_SYNC'] === 'NORMAL' ? { synchronous: 'NORMAL' as const } : {}) });
// BENCH_STORE=none: message batches are answered with fresh ids and never written (not durable;
// only to measure what the relay costs on top of the bare relay before any storage).
if (process.env['BENCH_STORE'] === 'none') {
  let id = 1e9;
  store.writeBatch = async (messages) => messages.map(() => ({ ok: true as const, id: id++ }));
}
const server = await buildServer({
  store,
  registration: 'open',
  logger: { level: 'error' },
  limits: {
    sendRatePerSecond: HIGH,
    sendBurst: HIGH,
    frameRatePerSecond: HIGH,
    frameBurst: HIGH,
    registrationBurst: HIGH,
    registrationPerHour: HIGH,
    maxUnauthenticatedConnections: 100_000,
    maxUnauthenticatedPerAddress: 100_000,
    maxHttpConnectionsPerAddress: 100_000,
  },
});
const port = await server.listen(0, '127.0.0.1');
const gc = (globalThis as { gc?: () => void }).gc;
/** RSS after a few collections spaced out, so freed pages have gone back to the OS. */
async function settledRss(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 150));
  }
  return process.memoryUsage().rss;
}
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'mem') void settledRss().then((rss) => process.send!({ rss }));
});
process.on('disconnect', () => {
  void server.close().finally(() => {
    if (given === undefined) rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
});
process.send!({ port });
