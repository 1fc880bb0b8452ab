// Load generator for the relay benchmark, in its own process (forked by bench/relay.ts).
// N clients, 1 KiB payloads to random peers. Phases, driven over IPC:
//   setup   (tacit: register N accounts over HTTP with valid signed keys)
//   connect (open and authenticate N sockets; wait until each has an empty queue)
//   run     (saturation: each sender keeps W messages undelivered; then a fixed 5,000 msg/s for
//            latency; then drain and count what never arrived)
// Every message carries (sender, seq, send time) in its first 18 bytes, so the receiver measures
// latency with the same clock and detects loss and duplicates.
// tacit clients speak as the SDK does: `batched` in `auth`, so sends are answered by `sent-batch`,
// and the messages a socket received in one event-loop turn are acknowledged in one `ack` frame
// (the SDK acks what one receive batch stored; a lone id goes in the single form).
// BENCH_BATCHED=0: the single forms instead (one `ack` per message, one `sent` per send), as
// clients before batched frames spoke.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { IdentityKeyPair, generateSignedPreKey } from '@tacit/protocol';
import { nodeBackend } from '@tacit/protocol/node';
import { KyberKeyPair } from '@tacit/protocol';

type Kind = 'tacit' | 'bare';
interface Setup {
  kind: Kind;
  port: number;
  n: number;
  saturateMs: number;
  fixedRate: number;
  fixedMs: number;
  /** Messages kept in flight during saturation, over all senders (default 2,000). */
  inflight?: number;
}

const PAYLOAD_BYTES = 1024;
const HEADER_BYTES = 18; // multiple of 3, so base64(header) + base64(rest) is base64(payload)
const restB64 = randomBytes(PAYLOAD_BYTES - HEADER_BYTES).toString('base64');
const header = Buffer.alloc(HEADER_BYTES);

let cfg: Setup;
let sockets: WebSocket[] = [];
const secrets: string[] = [];
const names: string[] = [];

// Per-sender bookkeeping.
let nextSeq: Uint32Array;
let outstanding: Int32Array;
/** Delivered (sender, seq) pairs: seq is per sender, so a bitmap per sender. */
let delivered: Uint8Array[];
let totalSent = 0;
let totalDelivered = 0;
let duplicates = 0;
let errors = 0;
/** tacit only: sends the server answered with `sent` (it promised delivery) — loss is counted against these. */
let acknowledged = 0;
/** tacit: `ack` frames written and `sent`/`sent-batch` frames read (frames per relayed message). */
let ackFrames = 0;
let sentFrames = 0;
const errorCodes = new Map<string, number>();
let mode: 'idle' | 'saturate' | 'fixed' = 'idle';
let window = 1;
let latencies: number[] = [];
let deliveredInWindow = 0;
let measuring = false;
const batched = process.env['BENCH_BATCHED'] !== '0';
/** tacit: envelope ids received in this event-loop turn and not yet acknowledged, per socket. */
const unacked = new Map<WebSocket, string[]>();
let ackScheduled = false;

/** Acknowledges what each socket received in this turn, one frame per socket (MAX_ACK_IDS is 256). */
function flushAcks(): void {
  ackScheduled = false;
  for (const [ws, ids] of unacked) {
    for (let i = 0; i < ids.length; i += 256) {
      const chunk = ids.slice(i, i + 256);
      ackFrames++;
      ws.send(chunk.length === 1 ? `{"type":"ack","id":"${chunk[0]}"}` : `{"type":"ack","ids":["${chunk.join('","')}"]}`);
    }
  }
  unacked.clear();
}

function payload(sender: number, seq: number): string {
  header.writeUInt32BE(sender, 0);
  header.writeUInt32BE(seq, 4);
  header.writeDoubleBE(performance.now(), 8);
  return header.toString('base64') + restB64;
}

function send(sender: number): void {
  let to = Math.floor(Math.random() * (cfg.n - 1));
  if (to >= sender) to++;
  const seq = nextSeq[sender]!++;
  const ws = sockets[sender]!;
  const body = payload(sender, seq);
  if (cfg.kind === 'tacit') {
    ws.send(`{"type":"send","id":"${seq}","to":{"username":"${names[to]}","deviceId":1},"message":{"type":"whisper","body":"${body}"}}`);
  } else {
    ws.send(`{"to":"${to}","payload":"${body}"}`);
  }
  outstanding[sender]!++;
  totalSent++;
}

function received(body: string): void {
  const h = Buffer.from(body.slice(0, 24), 'base64');
  const sender = h.readUInt32BE(0);
  const seq = h.readUInt32BE(4);
  const sentAt = h.readDoubleBE(8);
  const bits = delivered[sender]!;
  if (seq >> 3 >= bits.length) {
    const grown = new Uint8Array(Math.max(bits.length * 2, (seq >> 3) + 1));
    grown.set(bits);
    delivered[sender] = grown;
  }
  const b = delivered[sender]!;
  if (b[seq >> 3]! & (1 << (seq & 7))) {
    duplicates++;
    return;
  }
  b[seq >> 3]! |= 1 << (seq & 7);
  totalDelivered++;
  outstanding[sender]!--;
  if (measuring) deliveredInWindow++;
  if (mode === 'fixed') latencies.push(performance.now() - sentAt);
  if (mode === 'saturate' && outstanding[sender]! < window) send(sender);
}

async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

async function setup(): Promise<void> {
  nextSeq = new Uint32Array(cfg.n);
  outstanding = new Int32Array(cfg.n);
  delivered = Array.from({ length: cfg.n }, () => new Uint8Array(64));
  for (let i = 0; i < cfg.n; i++) names.push(`bench${i}`);
  if (cfg.kind !== 'tacit') return;
  const backend = nodeBackend();
  const kyberPublic = KyberKeyPair.generate(backend).publicKey.serialize();
  const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');
  await pool([...Array(cfg.n).keys()], 16, async (i) => {
    const identity = IdentityKeyPair.generate(backend);
    const spk = generateSignedPreKey(backend, identity, 1, 0);
    const secret = randomBytes(32).toString('base64');
    secrets[i] = secret;
    const res = await fetch(`http://127.0.0.1:${cfg.port}/v1/accounts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        username: names[i],
        deviceId: 1,
        registrationId: 1 + i,
        identityKey: b64(identity.publicKey.serialize()),
        signedPreKey: { keyId: 1, publicKey: b64(spk.keyPair.publicKey.serialize()), signature: b64(spk.signature) },
        kyberLastResortKey: { keyId: 1, publicKey: b64(kyberPublic), signature: b64(identity.sign(backend, kyberPublic)) },
        preKeys: [],
        kyberPreKeys: [],
        secret,
      }),
    });
    if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${await res.text()}`);
  });
}

/** Connects clients [from, to) and waits until each is authenticated with an empty queue. */
async function connect(from: number, to: number): Promise<void> {
  if (sockets.length === 0) sockets = new Array(cfg.n);
  await pool([...Array(to - from).keys()].map((k) => k + from), 32, (i) => {
    return new Promise<void>((resolve, reject) => {
      const url = cfg.kind === 'tacit' ? `ws://127.0.0.1:${cfg.port}/v1/ws` : `ws://127.0.0.1:${cfg.port}/?id=${i}`;
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 20 });
      sockets[i] = ws;
      ws.on('error', reject);
      ws.on('close', (code) => {
        if (mode !== 'idle' || code !== 1000) process.stderr.write(`socket ${i} closed ${code}\n`);
      });
      if (cfg.kind === 'bare') {
        ws.on('open', () => resolve());
        ws.on('message', (data) => received((JSON.parse(data.toString()) as { payload: string }).payload));
        return;
      }
      ws.on('open', () => ws.send(JSON.stringify({ type: 'auth', username: names[i], deviceId: 1, secret: secrets[i], ...(batched ? { batched: true } : {}) })));
      ws.on('message', (data) => {
        const f = JSON.parse(data.toString()) as { type: string; envelope?: { id: string; body: string }; sent?: unknown[] };
        if (f.type === 'message' && !batched) {
          ackFrames++;
          ws.send(`{"type":"ack","id":"${f.envelope!.id}"}`);
          received(f.envelope!.body);
        } else if (f.type === 'message') {
          const ids = unacked.get(ws);
          if (ids === undefined) unacked.set(ws, [f.envelope!.id]);
          else ids.push(f.envelope!.id);
          if (!ackScheduled) {
            ackScheduled = true;
            setImmediate(flushAcks);
          }
          received(f.envelope!.body);
        } else if (f.type === 'queue-empty') resolve();
        else if (f.type === 'sent-batch') {
          acknowledged += f.sent!.length;
          sentFrames++;
        } else if (f.type === 'sent') {
          acknowledged++;
          sentFrames++;
        }
        else if (f.type === 'error') {
          errors++;
          const code = (f as unknown as { code: string }).code;
          errorCodes.set(code, (errorCodes.get(code) ?? 0) + 1);
        }
      });
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Messages that should arrive: for tacit those it acknowledged, for the bare relay all sent. */
const expected = () => (cfg.kind === 'tacit' ? acknowledged : totalSent);

async function drain(maxMs: number): Promise<void> {
  const end = performance.now() + maxMs;
  while ((totalDelivered < expected() || (cfg.kind === 'tacit' && acknowledged + errors < totalSent)) && performance.now() < end) await sleep(50);
}

async function run(): Promise<Record<string, number>> {
  // Saturation: W undelivered per sender, ~2,000 in flight in total (or cfg.inflight).
  window = Math.max(2, Math.ceil((cfg.inflight ?? 2000) / cfg.n));
  mode = 'saturate';
  for (let s = 0; s < cfg.n; s++) for (let k = 0; k < window; k++) send(s);
  const warm = Math.min(1000, cfg.saturateMs / 4);
  await sleep(warm);
  deliveredInWindow = 0;
  measuring = true;
  const t0 = performance.now();
  await sleep(cfg.saturateMs - warm);
  measuring = false;
  const saturated = deliveredInWindow / ((performance.now() - t0) / 1000);
  mode = 'idle';
  await drain(30_000);

  // Fixed rate: send on a schedule, from random senders; latency is measured at the receiver.
  mode = 'fixed';
  latencies = [];
  const start = performance.now();
  let scheduled = 0;
  const total = Math.round((cfg.fixedRate * cfg.fixedMs) / 1000);
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * cfg.fixedRate) / 1000));
      while (scheduled < due) {
        send(Math.floor(Math.random() * cfg.n));
        scheduled++;
      }
      if (scheduled >= total) {
        clearInterval(tick);
        resolve();
      }
    }, 5);
  });
  const sendSeconds = (performance.now() - start) / 1000;
  await drain(30_000);
  mode = 'idle';
  if (errorCodes.size > 0) process.stderr.write(`tacit error replies: ${JSON.stringify(Object.fromEntries(errorCodes))}\n`);
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return {
    saturated: Math.round(saturated),
    p50: Math.round(q(0.5) * 100) / 100,
    p99: Math.round(q(0.99) * 100) / 100,
    fixedAchievedRate: Math.round(total / sendSeconds),
    sent: totalSent,
    delivered: totalDelivered,
    lost: expected() - totalDelivered,
    refused: cfg.kind === 'tacit' ? totalSent - acknowledged : 0,
    duplicates,
    errors,
    // Over the whole run (both phases and the drains).
    acksPerFrame: ackFrames > 0 ? Math.round((totalDelivered / ackFrames) * 100) / 100 : 0,
    sentPerFrame: sentFrames > 0 ? Math.round((acknowledged / sentFrames) * 100) / 100 : 0,
  };
}

process.on('message', (m: { cmd: string; setup?: Setup }) => {
  const reply = (p: Promise<unknown>, ev: string) =>
    p.then(
      (r) => process.send!({ ev, result: r }),
      (e: unknown) => process.send!({ ev: 'error', message: e instanceof Error ? e.message : String(e) }),
    );
  if (m.cmd === 'setup') {
    cfg = m.setup!;
    void reply(setup(), 'registered');
  } else if (m.cmd === 'port') cfg.port = (m as unknown as { port: number }).port;
  else if (m.cmd === 'connect-half') void reply(connect(0, cfg.n / 2), 'connected');
  else if (m.cmd === 'connect-rest') void reply(connect(cfg.n / 2, cfg.n), 'connected');
  else if (m.cmd === 'run') void reply(run(), 'done');
  else if (m.cmd === 'stop') {
    for (const s of sockets) s?.terminate();
    process.exit(0);
  }
});
