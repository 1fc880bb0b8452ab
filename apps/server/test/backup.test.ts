/**
 * The operator's `backup` command as a real child process, run while a real server process keeps
 * storing messages: the copy is consistent, holds every message acknowledged before the backup
 * started, is readable only by its owner, and opens as a working database.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import Database from 'better-sqlite3';
import { ROUTES, type DeviceCredentials } from '@tacit/api';
import { Client, makeDevice, registration, WAIT_MS } from './helpers.js';

const MAIN = resolve(import.meta.dirname, '../src/main.ts');

/** The test sends as fast as the server answers: no rate limit may interfere, however fast or slow the machine. */
const NO_RATE_LIMITS = {
  TACIT_SEND_RATE_PER_SECOND: '1000000',
  TACIT_SEND_BURST: '1000000',
  TACIT_FRAME_RATE_PER_SECOND: '1000000',
  TACIT_FRAME_BURST: '1000000',
};

let dir: string;
let server: ChildProcess;
let port: number;

function env(): NodeJS.ProcessEnv {
  return { ...process.env, TACIT_DATA_DIR: join(dir, 'data'), INIT_CWD: dir, TACIT_REGISTRATION: 'open', TACIT_LOG_LEVEL: 'silent', TACIT_DATABASE_URL: '' };
}

async function command(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...env(), ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(proc, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tacit-backup-'));
  server = spawn(process.execPath, ['--import', 'tsx', MAIN], { env: { ...env(), PORT: '0', HOST: '127.0.0.1', ...NO_RATE_LIMITS }, stdio: ['ignore', 'pipe', 'inherit'] });
  port = await new Promise<number>((resolveStart, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('server did not start')), WAIT_MS * 6);
    server.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const p = /on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (p) {
        clearTimeout(t);
        resolveStart(Number(p[1]));
      }
    });
    server.on('exit', (code) => reject(new Error(`server exited early: ${code}`)));
  });
});

after(async () => {
  if (server !== undefined && server.exitCode === null) {
    const exited = once(server, 'exit');
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

async function registerHttp(username: string): Promise<DeviceCredentials> {
  const d = makeDevice();
  const r = await fetch(`http://127.0.0.1:${port}${ROUTES.accounts}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(registration(username, d)) });
  await r.arrayBuffer();
  assert.equal(r.status, 201);
  return { username, deviceId: 1, secret: d.secret };
}

test('backup while the server stores messages: consistent, complete up to its start, 0600, opens', async () => {
  const ann = await registerHttp('ann');
  await registerHttp('bob'); // offline: everything sent to him stays queued
  const socket = await Client.connect(`ws://127.0.0.1:${port}/v1/ws`, ann);
  let sent = 0;
  let acknowledged = 0;
  let stop = false;
  let senderFailure: unknown;
  // A steady stream of sends, each waiting for its `sent`, until the backup is done. A failure is
  // kept and asserted below (never an unhandled rejection).
  const sender = (async () => {
    try {
      while (!stop) {
        const id = `m${++sent}`;
        socket.send({ type: 'send', id, to: { username: 'bob', deviceId: 1 }, message: { type: 'whisper', body: Buffer.from(`message ${sent}`).toString('base64') } });
        const f = await socket.next((x) => (x.type === 'sent' || x.type === 'error') && 'id' in x && x.id === id);
        if (f.type !== 'sent') throw new Error(`send ${id} refused: ${JSON.stringify(f)}`);
        acknowledged++;
      }
    } catch (e) {
      senderFailure = e;
    }
  })();
  try {
    for (let i = 0; i < WAIT_MS / 10 && acknowledged < 50 && senderFailure === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(senderFailure, undefined);
    assert.ok(acknowledged >= 50, 'the sender is running');
    const before = acknowledged;
    const r = await command(['backup', 'backups/tacit.db']);
    // The directory must exist: the command does not create it.
    assert.equal(r.code, 2);
    assert.match(r.stderr, /backup: directory .* does not exist/);
    const made = await command(['backup', 'tacit-backup.db']);
    const during = acknowledged;
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /^backup: .*tacit-backup\.db: \d+ bytes, 2 account\(s\), 2 device\(s\), \d+ queued message\(s\); integrity ok\n$/);
    stop = true;
    await sender;
    assert.equal(senderFailure, undefined);

    const file = join(dir, 'tacit-backup.db');
    assert.equal((statSync(file).mode & 0o777).toString(8), '600');
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('partial')), [], 'no temporary file left behind');
    const db = new Database(file, { readonly: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      assert.equal(db.pragma('journal_mode', { simple: true }), 'delete', 'a single self-contained file');
      const queued = (db.prepare("SELECT count(*) AS n FROM messages WHERE recipient = 'bob.1'").get() as { n: number }).n;
      assert.ok(queued >= before, `every message acknowledged before the backup started is in it (${queued} >= ${before})`);
      assert.ok(queued <= sent, `and nothing that was never sent (${queued} <= ${sent})`);
      // Messages are whole and in order: ids increase and the bodies count up from 1.
      const bodies = (db.prepare("SELECT body FROM messages WHERE recipient = 'bob.1' ORDER BY id").all() as { body: Buffer }[]).map((x) => x.body.toString());
      assert.deepEqual(bodies, Array.from({ length: queued }, (_, i) => `message ${i + 1}`));
      assert.ok(during >= before);
    } finally {
      db.close();
    }
    // An existing file is never overwritten.
    const again = await command(['backup', 'tacit-backup.db']);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists; choose a new file/);
    // With PostgreSQL the command says what to use instead.
    const pg = await command(['backup', 'x.db'], { TACIT_DATABASE_URL: 'postgres://127.0.0.1/none', TACIT_REDIS_URL: 'redis://127.0.0.1:1' });
    assert.equal(pg.code, 2);
    assert.match(pg.stderr, /pg_dump/);
    assert.equal(existsSync(join(dir, 'x.db')), false);
  } finally {
    stop = true;
    socket.close();
  }
});
