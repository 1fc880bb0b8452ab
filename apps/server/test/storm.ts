/**
 * The storm (issues 13 "Faults" and 17): SDK clients exchange messages through real server
 * processes while the server is killed with `kill -9` again and again. Each client displays what
 * arrives through the SDK's takeForDisplay (watchForDisplay), as an app would, and the run reports:
 *
 * - lost: messages whose send was acknowledged (or that are still queued at the end) and that their
 *   recipient never displayed;
 * - shown twice: messages handed to the display more than once;
 * - reordered: messages displayed before an earlier message of the same sender to the same recipient;
 * - failed: sends the SDK gave up on (a definite refusal; should be none);
 * - resends: `send` frames the clients wrote again after a reconnect (no answer had come; stored or not);
 *   besides the kills, a share of `sent` answers is cut off with its connection (`loseAnswers`), as
 *   when a connection dies just after the server's commit, so some resends are of stored messages;
 * - server copies: messages that reached their recipient under two or more server ids (a resend
 *   stored again instead of answered with the stored copy; target 0). Measured on the recipients'
 *   sockets, by ciphertext: a resend carries the same bytes.
 *
 * Modes: `single`, one server process on SQLite, killed and restarted on its port; `cluster`, two
 * nodes on one PostgreSQL + Redis behind a small TCP balancer (here, so HAProxy is not needed),
 * one node killed at a time while clients reconnect to the other, then restarted.
 *
 * Used by storm.test.ts (small, in `npm test`) and scripts/storm.ts (`npm run storm`, full size).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect, createServer, type Server, type Socket as NetSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryRecordStore, TacitClient, type HistoryMessage, type SocketFactory } from '@tacit/client';
import { wsSocketFactory } from '@tacit/client/node';
import { nodeBackend } from '@tacit/protocol/node';
import { closedPort, startServer, stopServer, type ServerProcess } from './processes.js';

export interface StormOptions {
  mode: 'single' | 'cluster';
  clients: number;
  /** Messages in all, spread evenly over the clients; each client writes to every other in turn. */
  messages: number;
  /** Times a server process is killed with SIGKILL during the run. */
  kills: number;
  /** Sends one client has waiting for the server at once (the SDK queues them durably). */
  window: number;
  /**
   * Share of `sent` answers lost on the way, with the connection (the socket is cut as the answer
   * arrives, as when a connection dies just after the server's commit): the client resends a
   * message the server stored. 0 for none.
   */
  loseAnswers: number;
  /** For `cluster`: PostgreSQL URL, Redis URL and a fresh schema name. */
  cluster?: { databaseUrl: string; redisUrl: string; schema: string };
  /** Progress lines. */
  log?: (line: string) => void;
  random?: () => number;
}

export interface StormReport {
  mode: StormOptions['mode'];
  clients: number;
  messages: number;
  kills: number;
  lost: number;
  shownTwice: number;
  reordered: number;
  failed: number;
  resends: number;
  /** `sent` answers cut off with their connection (loseAnswers). */
  answersLost: number;
  serverCopies: number;
  /** Wall time of the exchange (from the first send to the last display), s. */
  seconds: number;
}

/** How long the run waits for the last messages after every send settled, ms. A stall past it ends the run (the report then shows what was lost). */
const SETTLE_TIMEOUT_MS = 120_000;

export async function runStorm(o: StormOptions): Promise<StormReport> {
  const log = o.log ?? (() => undefined);
  const random = o.random ?? Math.random;
  const root = await mkdtemp(join(tmpdir(), 'tacit-storm-'));
  const nodes: { port: number; proc: ServerProcess | undefined; env: Record<string, string> }[] = [];
  const common = { TACIT_REGISTRATION_BURST: '1000', TACIT_LOG_LEVEL: 'silent' };
  if (o.mode === 'single') {
    const port = await closedPort();
    nodes.push({ port, proc: undefined, env: { ...common, PORT: String(port), TACIT_DATA_DIR: join(root, 'data') } });
  } else {
    const c = o.cluster;
    if (c === undefined) throw new Error('cluster mode needs PostgreSQL and Redis');
    for (let i = 0; i < 2; i++) {
      const port = await closedPort();
      nodes.push({
        port,
        proc: undefined,
        env: { ...common, PORT: String(port), TACIT_DATA_DIR: join(root, `data${i}`), TACIT_DATABASE_URL: c.databaseUrl, TACIT_REDIS_URL: c.redisUrl, TACIT_DATABASE_SCHEMA: c.schema },
      });
    }
  }
  for (const n of nodes) n.proc = await startServer(n.env);
  const balancer = await startBalancer(nodes.map((n) => n.port));
  const clients: TacitClient[] = [];
  try {
    const server = `http://127.0.0.1:${balancer.port}`;
    const tag = randomBytes(3).toString('hex');
    const names = Array.from({ length: o.clients }, (_, i) => `st${i}_${tag}`);

    // What the sockets carry: every `send` frame written (by client and id), and for every message
    // delivered, the server ids it came under (by recipient, sender and ciphertext).
    const sendFrames = new Map<string, number>();
    const copies = new Map<string, Set<string>>();
    let answersLost = 0;
    const watching = (who: number): SocketFactory => (url, handlers) => {
      let cut = false;
      const s = wsSocketFactory(url, {
        ...handlers,
        message: (text) => {
          if (cut) return;
          // A `sent` or `sent-multi` answers one send, a `sent-batch` several: the frame is lost with
          // the chance that any of its answers would be, so the share of answers lost stays `loseAnswers`.
          const answers = text.startsWith('{"type":"sent-batch"')
            ? text.split('"serverId"').length - 1
            : text.startsWith('{"type":"sent"') || text.startsWith('{"type":"sent-multi"') ? 1 : 0;
          if (o.loseAnswers > 0 && answers > 0 && random() < 1 - (1 - o.loseAnswers) ** answers) {
            // The answers are lost with the connection: nothing more arrives on it.
            cut = true;
            answersLost += answers;
            s.close(4000, 'storm: answer lost');
            return;
          }
          if (text.startsWith('{"type":"message"')) {
            const e = (JSON.parse(text) as { envelope: { id: string; body: string; source: { username: string } } }).envelope;
            const key = `${who}|${e.source.username}|${createHash('sha256').update(e.body).digest('hex')}`;
            let ids = copies.get(key);
            if (ids === undefined) copies.set(key, (ids = new Set()));
            ids.add(e.id);
          }
          handlers.message(text);
        },
      });
      return {
        send: (text: string) => {
          if (text.startsWith('{"type":"send"')) {
            const k = `${who}|${(JSON.parse(text) as { id: string }).id}`;
            sendFrames.set(k, (sendFrames.get(k) ?? 0) + 1);
          }
          s.send(text);
        },
        close: (code?: number, reason?: string) => s.close(code, reason),
      };
    };
    for (let i = 0; i < o.clients; i++) {
      const options = { store: new MemoryRecordStore(), backend: nodeBackend(), connect: watching(i), backoff: { baseMs: 50, maxMs: 500 } };
      clients.push(await TacitClient.register(options, { server, username: names[i]! }));
    }
    const displayed: HistoryMessage[][] = clients.map(() => []);
    let displayedCount = 0;
    const stops = clients.map((c, i) =>
      c.watchForDisplay(
        (list) => {
          for (const m of list) {
            if (m.direction !== 'in') continue;
            displayed[i]!.push(m);
            displayedCount++;
          }
        },
        { onError: () => undefined },
      ),
    );
    await Promise.all(clients.map((c) => c.connect()));

    // Who writes what: client i's k-th message goes to the k-th other client in turn.
    const perClient = Math.ceil(o.messages / o.clients);
    const total = perClient * o.clients;
    const target = (i: number, k: number) => (i + 1 + (k % (o.clients - 1))) % o.clients;
    const started = Date.now();
    let acknowledged = 0;
    let failed = 0;
    const failedKeys = new Set<string>();
    const senders = clients.map(async (c, i) => {
      let next = 0;
      const worker = async () => {
        while (next < perClient) {
          const k = next++;
          try {
            await c.send(names[target(i, k)]!, `${i}:${k}`);
            acknowledged++;
          } catch {
            failed++;
            failedKeys.add(`${i}:${k}`);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(o.window, perClient) }, worker));
    });
    const sending = Promise.all(senders);

    // The kills: spread over the run, each at a random moment within its share.
    for (let n = 1; n <= o.kills; n++) {
      const at = (total * (n - 1 + 0.3 + 0.6 * random())) / o.kills;
      if (!(await until(() => acknowledged >= at || acknowledged + failed >= total, SETTLE_TIMEOUT_MS))) break;
      if (acknowledged + failed >= total) {
        log(`storm: the run finished before kill ${n}`);
        break;
      }
      const node = nodes[(n - 1) % nodes.length]!;
      await stopServer(node.proc!, 'SIGKILL');
      log(`storm: kill -9 #${n} of node ${nodes.indexOf(node)} at ${acknowledged}/${total} acknowledged`);
      node.proc = await startServer(node.env);
    }
    await sending;
    const expected = total - failed;
    await until(() => displayedCount >= expected, SETTLE_TIMEOUT_MS);
    const seconds = (Date.now() - started) / 1000;
    // A copy or a second display would arrive now.
    await sleep(500);

    let lost = 0;
    let shownTwice = 0;
    let reordered = 0;
    for (let j = 0; j < o.clients; j++) {
      const seen = new Set<string>();
      const last = new Map<string, number>();
      for (const m of displayed[j]!) {
        if (seen.has(m.id)) shownTwice++;
        seen.add(m.id);
        const [from, k] = m.text.split(':').map(Number) as [number, number];
        if (names[from] !== m.from) continue;
        if (k < (last.get(m.from) ?? -1)) reordered++;
        last.set(m.from, Math.max(k, last.get(m.from) ?? -1));
      }
      const texts = new Set(displayed[j]!.map((m) => `${m.from}|${m.text}`));
      for (let i = 0; i < o.clients; i++) {
        for (let k = 0; k < perClient; k++) if (target(i, k) === j && !failedKeys.has(`${i}:${k}`) && !texts.has(`${names[i]}|${i}:${k}`)) lost++;
      }
    }
    let resends = 0;
    for (const n of sendFrames.values()) resends += n - 1;
    let serverCopies = 0;
    for (const ids of copies.values()) serverCopies += ids.size - 1;
    return { mode: o.mode, clients: o.clients, messages: total, kills: o.kills, lost, shownTwice, reordered, failed, resends, answersLost, serverCopies, seconds };
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await balancer.stop();
    for (const n of nodes) if (n.proc !== undefined) await stopServer(n.proc, 'SIGKILL');
    await rm(root, { recursive: true, force: true });
  }
}

/** A line for people and logs. */
export function stormLine(r: StormReport): string {
  return (
    `storm (${r.mode}): ${r.clients} clients, ${r.messages} messages, ${r.kills} x kill -9, ${r.seconds.toFixed(1)} s: ` +
    `lost ${r.lost}, shown twice ${r.shownTwice}, reordered ${r.reordered}, failed ${r.failed}; ` +
    `${r.resends} sends resent after a reconnect (${r.answersLost} answers cut off with their connection), ${r.serverCopies} delivered under a second server id`
  );
}

/**
 * A TCP balancer in front of the nodes: each new connection goes to the next node in turn, or to
 * another if that one refuses; when a node dies its connections are cut, and the clients'
 * reconnects land on a node that is up.
 */
async function startBalancer(ports: number[]): Promise<{ port: number; stop: () => Promise<void> }> {
  let turn = 0;
  const open = new Set<NetSocket>();
  const server: Server = createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => undefined);
    client.pause();
    const tryNode = (left: number) => {
      if (left === 0) return client.destroy();
      const port = ports[turn++ % ports.length]!;
      const up = netConnect(port, '127.0.0.1');
      // Refused (the node is down): the next one.
      up.once('error', () => tryNode(left - 1));
      up.once('connect', () => {
        up.removeAllListeners('error');
        open.add(up);
        up.on('close', () => {
          open.delete(up);
          client.destroy();
        });
        up.on('error', () => client.destroy());
        client.on('close', () => up.destroy());
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
    };
    tryNode(ports.length);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    stop: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(20);
  }
  return true;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
