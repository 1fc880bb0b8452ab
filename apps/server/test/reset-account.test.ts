/**
 * The operator's `reset-account` command as a real child process, run against the data directory
 * of a running server (the realistic flow: SQLite in WAL mode takes a second writer process).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { authorizationHeader, ROUTES, type DeviceCredentials, type MessageFrame } from '@tacit/api';
import { Client, makeDevice, registration, sendMessage, WAIT_MS } from './helpers.js';

const MAIN = resolve(import.meta.dirname, '../src/main.ts');

let dir: string;
let server: ChildProcess;
let port: number;
/** The invite code the server printed at first start (no accounts yet). */
let firstInvite: string;
/** What the server printed on stdout until then. */
let startOutput = '';

function env(): NodeJS.ProcessEnv {
  return { ...process.env, TACIT_DATA_DIR: dir, INIT_CWD: dir, TACIT_REGISTRATION: 'invite', TACIT_LOG_LEVEL: 'silent', TACIT_DATABASE_URL: '' };
}

/** Runs a one-shot server command (`invite`, `reset-account`) to completion. */
async function command(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...env(), ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(proc, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tacit-reset-'));
  // A short heartbeat: each beat re-checks every connected device's credentials.
  server = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { ...env(), PORT: '0', HOST: '127.0.0.1', TACIT_HEARTBEAT_INTERVAL_MS: '250' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  [port, firstInvite] = await new Promise<[number, string]>((resolveStart, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('server did not start')), WAIT_MS * 6);
    server.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const p = /on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      const i = /invite code[^:]*: (\S+)/.exec(out);
      if (p && i && /={72}\n$/.test(out)) {
        clearTimeout(t);
        startOutput = out;
        resolveStart([Number(p[1]), i[1]!]);
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

async function registerHttp(username: string, inviteCode: string, keys: { preKeys?: number; kyberPreKeys?: number } = {}): Promise<DeviceCredentials & { status: number }> {
  const d = makeDevice(keys);
  const r = await fetch(`http://127.0.0.1:${port}${ROUTES.accounts}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(registration(username, d, inviteCode)),
  });
  await r.arrayBuffer();
  return { username, deviceId: 1, secret: d.secret, status: r.status };
}

async function keyCountStatus(who: DeviceCredentials): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}${ROUTES.keyCount}`, { headers: { authorization: authorizationHeader(who) } });
  await r.arrayBuffer();
  return r.status;
}

const text = (f: MessageFrame) => Buffer.from(f.envelope.body, 'base64').toString();

test('reset-account on a running server: counts printed, old secret refused, name and a fresh invite usable, mail the account sent kept', async () => {
  const ann = await registerHttp('ann', firstInvite);
  assert.equal(ann.status, 201);
  const invited = await command(['invite']);
  assert.equal(invited.code, 0, invited.stderr);
  // The code alone on stdout (for scripts); the link to hand out on stderr.
  assert.match(invited.stdout, /^[A-Za-z0-9_-]{20,}\n$/);
  assert.equal(invited.stderr, `  http://localhost:8080/#invite=${invited.stdout.trim()}\n(single use, valid 7 days)\n`);
  const bob = await registerHttp('bob', invited.stdout.trim(), { preKeys: 3, kyberPreKeys: 2 });
  assert.equal(bob.status, 201);

  const wsUrl = `ws://127.0.0.1:${port}/v1/ws`;
  const bobSocket = await Client.connect(wsUrl, bob);
  const annSocket = await Client.connect(wsUrl, ann);
  try {
    assert.equal((await sendMessage(bobSocket, { username: 'ann', deviceId: 1 }, 'from the old bob')).type, 'sent');
    // Two messages to bob, delivered to his open socket but never acknowledged: still queued.
    assert.equal((await sendMessage(annSocket, { username: 'bob', deviceId: 1 }, 'one')).type, 'sent');
    assert.equal((await sendMessage(annSocket, { username: 'bob', deviceId: 1 }, 'two')).type, 'sent');
    await bobSocket.next((f) => f.type === 'message' && text(f as MessageFrame) === 'two');
    assert.equal(await keyCountStatus(bob), 200);

    // Any case works: usernames are folded.
    const r = await command(['reset-account', 'Bob']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3, r.stdout);
    assert.equal(
      lines[0],
      'reset-account: removed account bob: 1 device(s), 3 one-time pre-key(s), 2 one-time Kyber pre-key(s), 2 queued message(s)',
    );
    const code = /^invite code \(single use, valid \d+ days\): (\S+)$/.exec(lines[1]!)?.[1];
    assert.ok(code !== undefined, lines[1]);
    assert.equal(lines[2], `link: http://localhost:8080/#invite=${code}`);
    assert.ok(!r.stdout.includes(bob.secret), 'the device secret is never printed');

    // The old device's open socket is closed at the next heartbeat (4401 UNAUTHORIZED), ann's stays.
    const closed = await Promise.race([
      bobSocket.closed,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('old socket still open')), WAIT_MS * 2).unref()),
    ]);
    assert.equal(closed.code, 4401);
    assert.equal(annSocket.ws.readyState, annSocket.ws.OPEN);

    // The old device's secret no longer authenticates, over HTTP or WebSocket.
    assert.equal(await keyCountStatus(bob), 401);
    await assert.rejects(Client.connect(wsUrl, bob));

    // The name is free; the printed invite registers it again (once).
    const bobNew = await registerHttp('bob', code);
    assert.equal(bobNew.status, 201);
    assert.equal((await registerHttp('cyd', code)).status, 403, 'the invite is single use');
    // The same address (bob.1) now belongs to the new device: the old secret still fails.
    assert.equal(await keyCountStatus(bob), 401);
    assert.equal(await keyCountStatus(bobNew), 200);

    // The new bob starts with an empty mailbox; what the old bob sent to ann is still hers.
    const fresh = await Client.connect(wsUrl, bobNew);
    await fresh.next((f) => f.type === 'queue-empty');
    assert.deepEqual(fresh.frames.filter((f) => f.type === 'message'), []);
    fresh.close();
    const annAgain = await Client.connect(wsUrl, ann);
    await annAgain.next((f) => f.type === 'queue-empty');
    assert.deepEqual(
      (annAgain.frames.filter((f) => f.type === 'message') as MessageFrame[]).map(text),
      ['from the old bob'],
    );
    annAgain.close();
  } finally {
    bobSocket.close();
    annSocket.close();
  }
});

test('first start prints one clear block: the invite link, the terminal command, the code', () => {
  const block = startOutput.slice(startOutput.indexOf('='.repeat(72)));
  const lines = block.trimEnd().split('\n');
  assert.equal(lines[0], '='.repeat(72));
  assert.equal(lines[lines.length - 1], '='.repeat(72));
  assert.ok(lines.some((l) => /first account becomes the admin/.test(l)));
  const url = `http://127.0.0.1:${port}`;
  assert.ok(lines.includes(`   ${url}/#invite=${firstInvite}`), block);
  assert.ok(lines.includes(`   npx tacit register <username> --server ${url} --invite ${firstInvite}`), block);
  assert.ok(lines.includes(` invite code: ${firstInvite}`), block);
});

test('admin: lists admins (the first account), names and revokes one; TACIT_PUBLIC_URL shapes links', async () => {
  // By now: ann registered first (admin), bob registered again after his reset (not an admin).
  const list = await command(['admin']);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stdout, 'ann\n');
  assert.equal((await command(['admin', 'Bob'])).stdout, 'admin: bob is an admin\n');
  assert.equal((await command(['admin'])).stdout, 'ann\nbob\n');
  assert.equal((await command(['admin', '--revoke', 'ann'])).stdout, 'admin: ann is no longer an admin\n');
  assert.equal((await command(['admin'])).stdout, 'bob\n');
  for (const [args, err] of [
    [['admin', 'nobody'], 'tacit-server: admin: no account "nobody"\n'],
    [['admin', '--revoke'], 'tacit-server: usage: admin [--revoke] [<username>]\n'],
    [['admin', 'a b'], 'tacit-server: usage: admin [--revoke] [<username>]\n'],
  ] as const) {
    const r = await command([...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stderr, err);
  }
  await command(['admin', 'ann']);
  const linked = await command(['invite'], { TACIT_PUBLIC_URL: 'https://chat.example.com/' });
  assert.equal(linked.stderr.split('\n')[0], `  https://chat.example.com/#invite=${linked.stdout.trim()}`);
  const bad = await command(['invite'], { TACIT_PUBLIC_URL: 'ftp://x' });
  assert.equal(bad.code, 2);
});

test('reset-account: unknown username or bad arguments fail with a clear error and exit code 2, changing nothing', async () => {
  const unknown = await command(['reset-account', 'nobody']);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stdout, '', 'no invite is made for an unknown account');
  assert.equal(unknown.stderr, 'tacit-server: reset-account: no account "nobody"\n');
  for (const args of [['reset-account'], ['reset-account', 'a b'], ['reset-account', 'ann', 'bob']]) {
    const r = await command(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /usage: reset-account <username>/);
  }
  // ann (registered by the first test) was left alone by the failed runs.
  const ann = await command(['reset-account', 'ann']);
  assert.equal(ann.code, 0, ann.stderr);
  assert.match(ann.stdout, /^reset-account: removed account ann: 1 device\(s\)/);
});
