// Soak test: a real tacit server process (main.ts, SQLite in a temporary directory, default
// limits except registration) with N connected devices for several minutes at a steady send rate.
//
//   npm run soak                                  # 1,000 devices, 200 msg/s, 5 minutes
//   SOAK_CLIENTS=1000 SOAK_RATE=200 SOAK_MINUTES=10 SOAK_SAMPLES=10 npm run soak
//
// Not part of `npm test`. Prints the server's memory before and after connecting (memory per
// connection), then one line per sample interval (messages, p50/p99 latency of that interval,
// server RSS and V8 heap, queue depth, refusals, all from the server's own GET /metrics), then
// the growth over the steady phase: least-squares slope of RSS and heap in MiB per minute, first
// against last third, and p99 first against last interval; last, one JSON object of it all.
// Each client has its own loopback source address (127.0.x.y), as devices on a LAN would, so the
// per-address limits apply as in production. Latency is measured by the receiving client from a
// send time carried in the payload (one process, one clock). Asserts nothing: the machine is shared.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { IdentityKeyPair, KyberKeyPair, generateSignedPreKey } from '@tacit/protocol';
import { nodeBackend } from '@tacit/protocol/node';
import { machineLoad } from './machine.ts';

const env = process.env;
const num = (name: string, dflt: number): number => {
  const v = Number(env[name] ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const N = Math.round(num('SOAK_CLIENTS', 1000));
const RATE = num('SOAK_RATE', 200);
const MINUTES = num('SOAK_MINUTES', 5);
const SAMPLES = Math.max(3, Math.round(num('SOAK_SAMPLES', 10)));
/** Payload bytes per message: a short chat message after padding and encryption is a few hundred. */
const PAYLOAD_BYTES = 512;
const HEADER_BYTES = 18;
const restB64 = randomBytes(PAYLOAD_BYTES - HEADER_BYTES).toString('base64');

const dir = mkdtempSync(join(tmpdir(), 'tacit-soak-'));
const MAIN = resolve(import.meta.dirname, '../apps/server/src/main.ts');
/** The server on the soak's data directory; resolves with its port once it listens. */
function startServer(): { proc: ChildProcess; port: Promise<number> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: {
      ...env,
      PORT: '0',
      HOST: '127.0.0.1',
      TACIT_DATA_DIR: dir,
      TACIT_REGISTRATION: 'open',
      TACIT_LOG_LEVEL: 'warn',
      // Registering N accounts from this one process is the only thing over a default limit.
      TACIT_REGISTRATION_BURST: String(N * 2),
      TACIT_REGISTRATION_PER_HOUR: String(N * 2),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = new Promise<number>((res, rej) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /tacit server on http:\/\/[^:]+:(\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
    proc.once('exit', (c) => rej(new Error(`server exited (${c})`)));
  });
  return { proc, port };
}
const first = startServer();
let server = first.proc;
let port = await first.port;
const cleanup = () => {
  server.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
let base = `http://127.0.0.1:${port}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The server's own figures, from GET /metrics (loopback, so allowed without a token). */
async function scrape(): Promise<{ rss: number; heap: number; queue: number; devices: number; refusals: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const pick = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  let refusals = 0;
  for (const m of text.matchAll(/^tacit_refusals_total\{[^}]*\} (\d+)$/gm)) refusals += Number(m[1]);
  return {
    rss: pick(/^tacit_process_resident_memory_bytes (\d+)$/m),
    heap: pick(/^tacit_process_heap_used_bytes (\d+)$/m),
    queue: pick(/^tacit_queue_depth (\d+)$/m),
    devices: pick(/^tacit_connections\{state="authenticated"\} (\d+)$/m),
    refusals,
  };
}
/** RSS from /proc too, for the memory before the first scrape could have allocated anything. */
const procRss = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
const MiB = (b: number) => Math.round((b / 1048576) * 10) / 10;

async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

// ---- accounts ----
const backend = nodeBackend();
const kyberPublic = KyberKeyPair.generate(backend).publicKey.serialize();
const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');
const names = Array.from({ length: N }, (_, i) => `soak${i}`);
const secrets: string[] = [];
const t0 = performance.now();
await pool([...Array(N).keys()], 8, async (i) => {
  const identity = IdentityKeyPair.generate(backend);
  const spk = generateSignedPreKey(backend, identity, 1, 0);
  secrets[i] = randomBytes(32).toString('base64');
  const r = await fetch(`${base}/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      username: names[i], deviceId: 1, registrationId: 1 + i, identityKey: b64(identity.publicKey.serialize()),
      signedPreKey: { keyId: 1, publicKey: b64(spk.keyPair.publicKey.serialize()), signature: b64(spk.signature) },
      kyberLastResortKey: { keyId: 1, publicKey: b64(kyberPublic), signature: b64(identity.sign(backend, kyberPublic)) },
      preKeys: [], kyberPreKeys: [], secret: secrets[i],
    }),
  });
  if (r.status !== 201) throw new Error(`registration ${i}: ${r.status} ${await r.text()}`);
});
process.stdout.write(`soak: ${N} accounts registered in ${Math.round(performance.now() - t0)} ms; ${machineLoad()}\n`);

// ---- connections ----
let sent = 0;
let acknowledged = 0;
let delivered = 0;
let errors = 0;
let closedUnexpectedly = 0;
let intervalLatencies: number[] = [];
const errorCodes = new Map<string, number>();
const header = Buffer.alloc(HEADER_BYTES);
const sockets: WebSocket[] = new Array(N);
let stopping = false;

// A fresh server process on the same database, so the memory before connecting is a baseline
// that registration's garbage does not blur.
{
  const exited = once(server, 'exit');
  server.kill('SIGTERM');
  await exited;
  const s = startServer();
  server = s.proc;
  port = await s.port;
  base = `http://127.0.0.1:${port}`;
}
await sleep(2000);
const before = await scrape();
const rssBefore = procRss();
const t1 = performance.now();
await pool([...Array(N).keys()], 32, (i) =>
  new Promise<void>((res, rej) => {
    // Its own source address: 127.0.<1..>.<1..250>.
    const localAddress = `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, { perMessageDeflate: false, localAddress });
    sockets[i] = ws;
    ws.once('error', rej);
    ws.on('close', () => {
      if (!stopping) closedUnexpectedly++;
    });
    ws.on('open', () => ws.send(JSON.stringify({ type: 'auth', username: names[i], deviceId: 1, secret: secrets[i] })));
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as { type: string; code?: string; envelope?: { id: string; body: string } };
      if (f.type === 'message') {
        ws.send(`{"type":"ack","id":"${f.envelope!.id}"}`);
        const h = Buffer.from(f.envelope!.body.slice(0, 24), 'base64');
        intervalLatencies.push(performance.now() - h.readDoubleBE(8));
        delivered++;
      } else if (f.type === 'queue-empty') res();
      else if (f.type === 'sent') acknowledged++;
      else if (f.type === 'error') {
        errors++;
        errorCodes.set(f.code ?? '?', (errorCodes.get(f.code ?? '?') ?? 0) + 1);
      }
    });
  }),
);
await sleep(2000);
const connected = await scrape();
const rssConnected = procRss();
process.stdout.write(
  `soak: ${N} devices connected in ${Math.round(performance.now() - t1)} ms (server: ${connected.devices} authenticated); ` +
    `server RSS ${MiB(rssBefore)} → ${MiB(rssConnected)} MiB, ${Math.round((rssConnected - rssBefore) / N / 102.4) / 10} KiB per connection ` +
    `(V8 heap ${MiB(before.heap)} → ${MiB(connected.heap)} MiB, ${Math.round((connected.heap - before.heap) / N / 102.4) / 10} KiB)\n`,
);

// ---- steady phase ----
function send(): void {
  const from = Math.floor(Math.random() * N);
  let to = Math.floor(Math.random() * (N - 1));
  if (to >= from) to++;
  header.writeUInt32BE(from, 0);
  header.writeUInt32BE(sent, 4);
  header.writeDoubleBE(performance.now(), 8);
  const ws = sockets[from]!;
  if (ws.readyState !== WebSocket.OPEN) return;
  ws.send(`{"type":"send","id":"${sent}","to":{"username":"${names[to]}","deviceId":1},"message":{"type":"whisper","body":"${header.toString('base64') + restB64}"}}`);
  sent++;
}

interface Sample { minute: number; sent: number; delivered: number; p50: number; p99: number; rss: number; heap: number; queue: number; devices: number; refusals: number }
const samples: Sample[] = [];
const q = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
const totalMs = MINUTES * 60_000;
const sampleMs = totalMs / SAMPLES;
const start = performance.now();
let scheduled = 0;
let lastSample = start;
let lastSent = 0;
let lastDelivered = 0;
process.stdout.write(`soak: ${RATE} msg/s for ${MINUTES} min, ${SAMPLES} samples\n`);
process.stdout.write('  min    sent  deliv   p50ms   p99ms  rssMiB heapMiB  queue devices refusals\n');
await new Promise<void>((res) => {
  const tick = setInterval(() => {
    const now = performance.now();
    const due = Math.floor(((Math.min(now, start + totalMs) - start) * RATE) / 1000);
    while (scheduled < due) {
      send();
      scheduled++;
    }
    if (now - lastSample >= sampleMs) {
      lastSample = now;
      const lat = intervalLatencies.sort((a, b) => a - b);
      intervalLatencies = [];
      const s = { sent, delivered };
      void scrape().then((m) => {
        const row: Sample = {
          minute: Math.round(((now - start) / 60_000) * 100) / 100,
          sent: s.sent - lastSent,
          delivered: s.delivered - lastDelivered,
          p50: Math.round(q(lat, 0.5) * 10) / 10,
          p99: Math.round(q(lat, 0.99) * 10) / 10,
          rss: MiB(m.rss ?? NaN),
          heap: MiB(m.heap ?? NaN),
          queue: m.queue ?? NaN,
          devices: m.devices ?? NaN,
          refusals: m.refusals ?? NaN,
        };
        lastSent = s.sent;
        lastDelivered = s.delivered;
        samples.push(row);
        const p = (v: number, w: number) => String(v).padStart(w);
        process.stdout.write(`${p(row.minute, 5)} ${p(row.sent, 7)} ${p(row.delivered, 6)} ${p(row.p50, 7)} ${p(row.p99, 7)} ${p(row.rss, 7)} ${p(row.heap, 7)} ${p(row.queue, 6)} ${p(row.devices, 7)} ${p(row.refusals, 8)}\n`);
      });
      if (now - start >= totalMs) {
        clearInterval(tick);
        res();
      }
    }
  }, 5);
});

// Drain: every acknowledged message delivered (bounded wait).
const drainEnd = performance.now() + 30_000;
while ((delivered < acknowledged || acknowledged + errors < sent) && performance.now() < drainEnd) await sleep(50);
await sleep(200);

// ---- growth ----
function slope(ys: number[], xs: number[]): number {
  const n = ys.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
const third = Math.max(1, Math.floor(samples.length / 3));
const mean = (xs: number[]) => Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 10) / 10;
const minutes = samples.map((s) => s.minute);
const result = {
  clients: N,
  rate: RATE,
  minutes: MINUTES,
  perConnectionKiB: Math.round((rssConnected - rssBefore) / N / 102.4) / 10,
  perConnectionHeapKiB: Math.round((connected.heap - before.heap) / N / 102.4) / 10,
  rssSlopeMiBPerMin: Math.round(slope(samples.map((s) => s.rss), minutes) * 100) / 100,
  heapSlopeMiBPerMin: Math.round(slope(samples.map((s) => s.heap), minutes) * 100) / 100,
  rssFirstThirdMiB: mean(samples.slice(0, third).map((s) => s.rss)),
  rssLastThirdMiB: mean(samples.slice(-third).map((s) => s.rss)),
  heapFirstThirdMiB: mean(samples.slice(0, third).map((s) => s.heap)),
  heapLastThirdMiB: mean(samples.slice(-third).map((s) => s.heap)),
  p99FirstMs: samples[0]?.p99,
  p99LastMs: samples.at(-1)?.p99,
  p99MaxMs: Math.max(...samples.map((s) => s.p99)),
  sent,
  acknowledged,
  delivered,
  lost: acknowledged - delivered,
  errors: Object.fromEntries(errorCodes),
  socketsClosedUnexpectedly: closedUnexpectedly,
  load: machineLoad(),
};
process.stdout.write(
  `soak: growth over the steady phase: RSS ${result.rssSlopeMiBPerMin} MiB/min (first third ${result.rssFirstThirdMiB}, last third ${result.rssLastThirdMiB} MiB), ` +
    `heap ${result.heapSlopeMiBPerMin} MiB/min (${result.heapFirstThirdMiB} → ${result.heapLastThirdMiB} MiB); p99 ${result.p99FirstMs} ms first interval, ${result.p99LastMs} ms last, ${result.p99MaxMs} ms worst\n` +
    `soak: sent ${sent}, stored (acknowledged) ${acknowledged}, delivered ${delivered}, lost ${result.lost}, refused ${errors} ${JSON.stringify(result.errors)}, sockets closed unexpectedly ${closedUnexpectedly}\n`,
);
process.stdout.write(JSON.stringify(result) + '\n');
stopping = true;
for (const s of sockets) s?.terminate();
process.exit(0);
