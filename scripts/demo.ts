// `npm run demo`: a scripted conversation between alice and bob against a temporary tacit server
// (a child process on a free loopback port, temporary data directory, open registration).
// Prints side by side what alice saw, what the server stored (ciphertext only) and what bob saw,
// then searches the server's database and log for every plaintext.
//
// The clients are the SDK the `tacit` command uses (@tacit/client/node), in this process.
// Each message is sent while its recipient is offline, so the server's stored copy can be shown
// before the recipient connects, receives and acknowledges it (which deletes it from the server).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { openHome, registerHome, type HomeClient } from '@tacit/client/node';

const ROOT = resolve(import.meta.dirname, '..');
const COL = 34;
/** The demo's state files use a low scrypt cost so it starts at once; real homes use 2^17. */
process.env['TACIT_SCRYPT_N'] ??= '1024';
const PASSPHRASE = 'demo passphrase';

const dir = await mkdtemp(join(tmpdir(), 'tacit-demo-'));
const dataDir = join(dir, 'server');
const server = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'apps/server/src/main.ts')], {
  cwd: ROOT,
  env: { ...process.env, PORT: '0', HOST: '127.0.0.1', TACIT_DATA_DIR: dataDir, INIT_CWD: ROOT, TACIT_REGISTRATION: 'open', TACIT_LOG_LEVEL: 'info' },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let log = '';
server.stderr.on('data', (d: Buffer) => (log += d.toString('utf8')));
const url = await new Promise<string>((resolveUrl, reject) => {
  const timer = setTimeout(() => reject(new Error('the server did not start')), 60_000);
  server.stdout.on('data', (d: Buffer) => {
    log += d.toString('utf8');
    const m = /tacit server on (http:\/\/[^\s]+)/.exec(log);
    if (m) {
      clearTimeout(timer);
      resolveUrl(m[1]!);
    }
  });
  server.once('exit', () => reject(new Error('the server exited')));
});

const homes = { alice: join(dir, 'alice'), bob: join(dir, 'bob') } as const;
type Name = keyof typeof homes;
const db = new Database(join(dataDir, 'tacit.db'), { readonly: true, fileMustExist: true });
const plaintexts: string[] = [];

function cell(s: string): string {
  return s.length > COL ? s.slice(0, COL - 1) + '…' : s.padEnd(COL);
}
function row(a: string, s: string, b: string): void {
  console.log(`${cell(a)} │ ${cell(s)} │ ${b}`);
}
function hex(b: Uint8Array, n: number): string {
  return [...b.subarray(0, n)].map((x) => x.toString(16).padStart(2, '0')).join('');
}

async function withClient<T>(name: Name, fn: (h: HomeClient) => Promise<T>): Promise<T> {
  const h = await openHome({ home: homes[name], passphrase: PASSPHRASE });
  try {
    return await fn(h);
  } finally {
    await h.close();
  }
}

async function say(from: Name, to: Name, text: string): Promise<void> {
  plaintexts.push(text);
  await withClient(from, async (h) => {
    await h.client.connect();
    await h.client.send(to, text);
  });
  const stored = db.prepare('SELECT id, sender, sender_device, recipient, kind, body FROM messages ORDER BY id DESC LIMIT 1').get() as
    | { id: number; sender: string; sender_device: number; recipient: string; kind: number; body: Uint8Array }
    | undefined;
  const sent = `> ${text}`;
  const lines = stored
    ? [`#${stored.id} ${stored.sender}.${stored.sender_device} → ${stored.recipient}`, `${stored.kind === 3 ? 'PreKeySignalMessage' : 'SignalMessage'}, ${stored.body.length} bytes`, hex(stored.body, 15) + '…']
    : ['(not found)'];
  const received = await withClient(to, async (h) => {
    await h.client.connect();
    await h.client.waitDrained();
    const lines: string[] = [];
    await h.client.takeForDisplay((msgs) => {
      for (const m of msgs) lines.push(`< ${m.from}: ${m.text}`);
    });
    return lines;
  });
  const left = from === 'alice' ? [sent] : received;
  const right = from === 'alice' ? received : [sent];
  for (let i = 0; i < Math.max(left.length, lines.length, right.length); i++) row(left[i] ?? '', lines[i] ?? '', right[i] ?? '');
  row('', '', '');
}

try {
  console.log(`tacit demo — server ${url}, data in ${dataDir}\n`);
  for (const name of ['alice', 'bob'] as const) {
    const h = await registerHome({ home: homes[name], passphrase: PASSPHRASE }, { server: url, username: name });
    await h.close();
  }
  console.log('registered alice and bob (identity key, signed pre-key, Kyber last-resort key, 100 + 100 one-time keys each)\n');
  row('ALICE SAW', 'SERVER STORED (ciphertext only)', 'BOB SAW');
  row('─'.repeat(COL), '─'.repeat(COL), '─'.repeat(COL));
  await say('alice', 'bob', 'Hi Bob! Lunch at noon?');
  await say('bob', 'alice', 'Sure — the usual place?');
  await say('alice', 'bob', 'Yes. I will bring the slides.');
  await say('bob', 'alice', 'Great, see you there 👋');
  await say('alice', 'bob', 'Wait, bring your badge too.');

  const [a, b] = await Promise.all([
    withClient('alice', async (h) => (await h.client.safetyNumber('bob')).displayable),
    withClient('bob', async (h) => (await h.client.safetyNumber('alice')).displayable),
  ]);
  console.log(`safety number, as alice sees it: ${a.match(/.{5}/g)!.join(' ')}`);
  console.log(`safety number, as bob sees it:   ${b.match(/.{5}/g)!.join(' ')}  ${a === b ? '(equal)' : '(DIFFERENT!)'}\n`);

  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  db.close();
  let found = 0;
  for (const f of await readdir(dataDir)) {
    const bytes = await readFile(join(dataDir, f));
    for (const p of plaintexts) if (bytes.includes(Buffer.from(p))) found++;
  }
  if (log.length > 0) for (const p of plaintexts) if (log.includes(p)) found++;
  console.log(
    found === 0
      ? `searched the server's database, WAL and log for all ${plaintexts.length} plaintexts: none found.`
      : `WARNING: ${found} plaintext occurrence(s) found on the server side!`,
  );
  process.exitCode = found === 0 ? 0 : 1;
} finally {
  if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}
