// Issue 8 and 17: a receiving, displaying client is killed with SIGKILL at random moments, over
// and over, while a contact keeps writing. Afterwards: nothing lost, nothing shown twice, the
// home opens every time. Run for `tacit chat` and for an app on the SDK (support/display.ts).
//
// "Shown twice" has one honest exception, which the SDK documents: a kill after a message was
// printed and before its read mark was committed (a window of microseconds: the commit follows
// the print in the same synchronous step). That display did not complete, so it is repeated. The
// test tells the cases apart by opening the home after every kill: a message printed but not
// marked read in the store may be printed again; one marked read must never be.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { openHome, registerHome, type HomeClient } from '@tacit/client/node';
import { BIN, PASSPHRASE, ROOT, ServerProcess, ok, tempDir } from './harness.ts';

import { mulberry32, testSeed } from '../../../packages/protocol/test/support/random.ts';

/** Kill cycles per displayer. */
const CYCLES = 12;
/** Messages the contact sends during the cycles. */
const MESSAGES = 60;

let dir: { path: string; remove(): Promise<void> };
let server: ServerProcess;
let bob: HomeClient;

before(async () => {
  dir = await tempDir('display-kill');
  server = await ServerProcess.start(join(dir.path, 'server'));
  bob = await registerHome({ home: join(dir.path, 'bob'), passphrase: PASSPHRASE, scryptN: 1024 }, { server: server.url, username: 'bob' });
  await bob.client.connect();
});

after(async () => {
  await bob?.close();
  await server?.stop();
  await dir?.remove();
});

interface Run {
  lines: Record<string, unknown>[];
  exited: Promise<void>;
  kill(): void;
  ready(): boolean;
}

function start(cmd: string[]): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, TACIT_PASSPHRASE: PASSPHRASE, TACIT_SCRYPT_N: '1024' };
  delete env['TACIT_HOME'];
  const proc = spawn(process.execPath, cmd, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  proc.stdout.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  proc.stderr.on('data', () => undefined);
  return {
    lines,
    exited: new Promise((r) => proc.once('exit', () => r())),
    kill: () => proc.kill('SIGKILL'),
    ready: () => lines.some((l) => l['event'] === 'chat-ready' || l['event'] === 'display-ready'),
  };
}

async function killCycles(name: string, home: string, cmd: string[]): Promise<string> {
  const seed = testSeed();
  const random = mulberry32(seed);
  const sent: string[] = [];
  let sending = true;
  const sender = (async () => {
    for (let i = 0; i < MESSAGES; i++) {
      sent.push((await bob.client.send(name, `${name} ${i}`)).id);
      await new Promise((r) => setTimeout(r, 20 + random() * 60));
    }
    sending = false;
  })();
  const shown: string[] = [];
  const mayRepeat = new Set<string>();
  try {
    for (let cycle = 0; cycle < CYCLES || sending; cycle++) {
      const run = start(cmd);
      // A random moment: during start-up, while connecting, while the backlog is displayed, or
      // while new messages arrive.
      await new Promise((r) => setTimeout(r, 100 + random() * 1_200));
      run.kill();
      await run.exited;
      const printed = run.lines.filter((l) => l['event'] === 'message').map((l) => String(l['id']));
      shown.push(...printed);
      // The home opens after every kill; what the store marked read must not come again.
      const h = await openHome({ home, passphrase: PASSPHRASE });
      try {
        const read = new Map((await h.client.history('bob', { limit: 1_000 })).map((m) => [m.id, m.read === true]));
        for (const id of printed) if (read.get(id) !== true) mayRepeat.add(id);
      } finally {
        await h.close();
      }
      if (cycle > 200) assert.fail(`seed ${seed}: the sender did not finish`);
    }
    await sender;
    // A last, uninterrupted display shows whatever is left.
    const rest = await ok(home, ['recv']);
    const ids = [...shown, ...rest.filter((e) => e['event'] === 'message').map((e) => String(e['id']))];
    const seen = new Map<string, number>();
    for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
    assert.deepEqual(new Set(seen.keys()), new Set(sent), `seed ${seed}: every message displayed`);
    const twice = [...seen].filter(([id, n]) => n > 1 && !mayRepeat.has(id)).map(([id]) => id);
    assert.deepEqual(twice, [], `seed ${seed}: nothing whose display completed was shown again`);
    // First displays keep the sender's order.
    const firsts = [...seen.keys()];
    assert.deepEqual(firsts, sent, `seed ${seed}: in order`);
    const cut = shown.length;
    return `seed ${seed}: ${sent.length} messages, ${cut} shown by killed runs, ${ids.length - cut} by the last one, ${[...seen.values()].filter((n) => n > 1).length} shown twice after an incomplete display (allowed: ${mayRepeat.size})`;
  } finally {
    sending = false;
    await sender.catch(() => undefined);
  }
}

test('tacit chat killed at random moments: every message shown, none twice, the home always opens', { timeout: 15 * 60_000 }, async (t) => {
  const home = join(dir.path, 'alice');
  await ok(home, ['register', 'alice', '--server', server.url]);
  t.diagnostic(await killCycles('alice', home, [BIN, '--home', home, '--json', 'chat', 'bob']));
});

test('an app on the SDK killed at random moments: every message shown, none twice, the home always opens', { timeout: 15 * 60_000 }, async (t) => {
  const home = join(dir.path, 'carol');
  await ok(home, ['register', 'carol', '--server', server.url]);
  t.diagnostic(await killCycles('carol', home, ['--import', 'tsx', join(import.meta.dirname, 'support', 'display.ts'), home]));
});
