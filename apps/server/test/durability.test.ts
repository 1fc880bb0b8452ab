/**
 * Durability across `kill -9`: a real server child process on a file database, killed without
 * warning and restarted on the same data directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { authorizationHeader, type MessageFrame } from '@tacit/api';
import { buildServer, SqliteStore } from '../src/index.js';
import { Client, makeDevice, register, registration, sendMessage, WAIT_MS } from './helpers.js';

const MAIN = resolve(import.meta.dirname, '../src/main.ts');

interface Child {
  proc: ChildProcess;
  port: number;
}

async function spawnServer(dataDir: string): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', TACIT_DATA_DIR: dataDir, TACIT_REGISTRATION: 'open', TACIT_LOG_LEVEL: 'silent', INIT_CWD: dataDir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolvePort, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('server did not start')), WAIT_MS * 2);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolvePort(Number(m[1]));
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited early: ${code}`)));
  });
  return { proc, port };
}

async function kill9(c: Child): Promise<void> {
  const exited = once(c.proc, 'exit');
  c.proc.kill('SIGKILL');
  await exited;
}

async function registerHttp(port: number, username: string) {
  const d = makeDevice();
  const r = await fetch(`http://127.0.0.1:${port}/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(registration(username, d)),
  });
  assert.equal(r.status, 201);
  return { username, deviceId: 1, secret: d.secret };
}

const text = (f: MessageFrame) => Buffer.from(f.envelope.body, 'base64').toString();

/** Connects as `who`, returns the queued messages (everything before queue-empty). */
async function drain(port: number, who: { username: string; deviceId: number; secret: string }) {
  const c = await Client.connect(`ws://127.0.0.1:${port}/v1/ws`, who);
  await c.next((f) => f.type === 'queue-empty');
  return { c, messages: c.frames.filter((f) => f.type === 'message') as MessageFrame[] };
}

test('acknowledged sends survive kill -9 and restart, in order; acknowledged deliveries are never redelivered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-dur-'));
  let server = await spawnServer(dir);
  try {
    const a = await registerHttp(server.port, 'alice');
    const b = await registerHttp(server.port, 'bob');
    const c = await registerHttp(server.port, 'carol');
    const N = 30;

    // Phase 1: 30 messages to offline bob, every one acknowledged with `sent`, then kill -9.
    const ca = await Client.connect(`ws://127.0.0.1:${server.port}/v1/ws`, a);
    for (let i = 0; i < N; i++) ca.send({ type: 'send', id: `s${i}`, to: { username: 'bob', deviceId: 1 }, message: { type: 'whisper', body: Buffer.from(`m${i}`).toString('base64') } });
    for (let i = 0; i < N; i++) assert.equal((await ca.next((f) => (f.type === 'sent' || f.type === 'error') && f.id === `s${i}`)).type, 'sent');
    await kill9(server);
    await ca.closed;

    // Phase 2: restart; bob gets all 30 in order; acks the first 10; kill -9.
    server = await spawnServer(dir);
    const r2 = await drain(server.port, b);
    assert.deepEqual(r2.messages.map(text), Array.from({ length: N }, (_, i) => `m${i}`));
    for (const m of r2.messages.slice(0, 10)) r2.c.send({ type: 'ack', id: m.envelope.id });
    r2.c.send({ type: 'ping', id: 'barrier' });
    await r2.c.next((f) => f.type === 'pong');
    // Barrier: a send accepted after the acks commits in the same or a later transaction.
    const ca2 = await Client.connect(`ws://127.0.0.1:${server.port}/v1/ws`, a);
    assert.equal((await sendMessage(ca2, { username: c.username, deviceId: 1 }, 'barrier')).type, 'sent');
    await kill9(server);

    // Phase 3: the 20 unacknowledged come again, in order, and nothing acknowledged does.
    server = await spawnServer(dir);
    const r3 = await drain(server.port, b);
    assert.deepEqual(r3.messages.map(text), Array.from({ length: N - 10 }, (_, i) => `m${i + 10}`));
    for (const m of r3.messages) r3.c.send({ type: 'ack', id: m.envelope.id });
    r3.c.send({ type: 'ping', id: 'barrier' });
    await r3.c.next((f) => f.type === 'pong');
    const ca3 = await Client.connect(`ws://127.0.0.1:${server.port}/v1/ws`, a);
    assert.equal((await sendMessage(ca3, { username: c.username, deviceId: 1 }, 'barrier')).type, 'sent');
    await kill9(server);

    // Phase 4: empty; ids keep increasing after restarts (never reused).
    server = await spawnServer(dir);
    const r4 = await drain(server.port, b);
    assert.equal(r4.messages.length, 0);
    const ca4 = await Client.connect(`ws://127.0.0.1:${server.port}/v1/ws`, a);
    const s = await sendMessage(ca4, { username: 'bob', deviceId: 1 }, 'after');
    assert.ok(s.type === 'sent' && Number(s.serverId) > Math.max(...r2.messages.map((m) => Number(m.envelope.id))));
    r4.c.close();
    ca4.close();
    // Credentials survived too.
    const counts = await fetch(`http://127.0.0.1:${server.port}/v1/keys/count`, { headers: { authorization: authorizationHeader(b) } });
    assert.equal(counts.status, 200);
  } finally {
    await kill9(server).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kill -9 while messages stream to an online recipient (delivered before their commit): nothing acknowledged is lost, no id is reused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-dur-live-'));
  let server = await spawnServer(dir);
  try {
    const a = await registerHttp(server.port, 'alice');
    const b = await registerHttp(server.port, 'bob');
    // bob is online and acknowledges nothing, so everything delivered stays queued as well.
    const cb = await Client.connect(`ws://127.0.0.1:${server.port}/v1/ws`, b);
    await cb.next((f) => f.type === 'queue-empty');
    const ca = await Client.connect(`ws://127.0.0.1:${server.port}/v1/ws`, a);
    // Bounded: at most 400 sends; the kill lands while sends, commits and deliveries overlap.
    const N = 400;
    let i = 0;
    const pump = () => {
      for (let k = 0; k < 20 && i < N; k++, i++) {
        ca.send({ type: 'send', id: `s${i}`, to: { username: 'bob', deviceId: 1 }, message: { type: 'whisper', body: Buffer.from(`live${i}`).toString('base64') } });
      }
    };
    pump();
    await ca.next((f) => f.type === 'sent');
    pump();
    await ca.next((f) => f.type === 'sent' && f.id === 's25');
    pump();
    await kill9(server);
    await Promise.all([ca.closed, cb.closed]);
    const acknowledged = ca.frames.filter((f) => f.type === 'sent').map((f) => (f as { id: string }).id);
    const beforeKill = cb.frames.filter((f) => f.type === 'message') as MessageFrame[];
    assert.ok(acknowledged.length >= 26);

    // Restart: every acknowledged message is queued for bob; any id bob saw before the kill names
    // the same message after it (an id announced but rolled back is never given to another).
    server = await spawnServer(dir);
    const r = await drain(server.port, b);
    const after = new Map(r.messages.map((m) => [text(m), m.envelope.id]));
    for (const id of acknowledged) assert.ok(after.has(`live${id.slice(1)}`), `acknowledged ${id} survived`);
    const byId = new Map(r.messages.map((m) => [m.envelope.id, text(m)]));
    for (const m of beforeKill) {
      const now = byId.get(m.envelope.id);
      assert.ok(now === undefined || now === text(m), `id ${m.envelope.id} was ${text(m)}, now ${now}`);
    }
    // New messages get ids no client has seen.
    const ca2 = await Client.connect(`ws://127.0.0.1:${server.port}/v1/ws`, a);
    const s = await sendMessage(ca2, { username: 'bob', deviceId: 1 }, 'after-restart');
    assert.ok(s.type === 'sent');
    const seen = [...beforeKill, ...r.messages].map((m) => Number(m.envelope.id));
    assert.ok(Number(s.serverId) > Math.max(...seen));
    r.c.close();
    ca2.close();
  } finally {
    await kill9(server).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('graceful close writes and answers what was received before closing the store', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-close-'));
  const lines: string[] = [];
  try {
    const server = await buildServer({
      store: new SqliteStore({ path: join(dir, 'tacit.db'), worker: true }),
      registration: 'open',
      logger: { level: 'error', stream: { write: (l: string) => void lines.push(l) } },
    });
    const port = await server.listen(0, '127.0.0.1');
    const h = { server, port, wsUrl: `ws://127.0.0.1:${port}/v1/ws`, close: () => server.close() };
    const a = await register(h);
    const b = await register(h);
    const ca = await Client.connect(h.wsUrl, a);
    const N = 200;
    for (let i = 0; i < N; i++) ca.send({ type: 'send', id: `s${i}`, to: { username: b.username, deviceId: 1 }, message: { type: 'whisper', body: 'AAAA' } });
    await ca.next((f) => f.type === 'sent');
    await server.close();
    await ca.closed;
    const sent = ca.frames.filter((f) => f.type === 'sent').map((f) => (f as { serverId: string }).serverId);
    assert.equal(lines.join(''), '', 'no write failed during shutdown');
    const store = new SqliteStore({ path: join(dir, 'tacit.db') });
    const queued = new Set((await store.fetchQueue({ username: b.username, deviceId: 1 }, 0, 1000, 0)).map((m) => String(m.id)));
    await store.close();
    for (const id of sent) assert.ok(queued.has(id), `acknowledged ${id} is stored`);
    assert.ok(sent.length >= 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
