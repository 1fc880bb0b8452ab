// One receiving client of bench:client, in a process of its own so that /proc/self/io counts
// only its writes. Opens a home and receives what the server queued for it:
//   persisted:  the home's SQLite record store (every batch committed and fsynced)
//   memory:     the same records copied into a MemoryRecordStore first (nothing reaches the disk)
// Prints one JSON line: {"messages":N,"ms":T,"writeBytes":W,"writeCalls":C,"wchar":B}.
import { readFileSync } from 'node:fs';
import { MemoryRecordStore, TacitClient } from '@tacit/client';
import { openHome, openHomeStore, wsSocketFactory } from '@tacit/client/node';
import { nodeBackend } from '@tacit/protocol/node';

const [mode, home, passphrase, expectedText] = process.argv.slice(2);
const expected = Number(expectedText);
if ((mode !== 'persisted' && mode !== 'memory') || home === undefined || passphrase === undefined || !(expected > 0)) {
  throw new Error('usage: receiver.ts persisted|memory <home> <passphrase> <messages>');
}

function io(): { writeBytes: number; writeCalls: number; wchar: number } {
  const text = readFileSync('/proc/self/io', 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { writeBytes: field('write_bytes'), writeCalls: field('syscw'), wchar: field('wchar') };
}

let client: TacitClient;
let close: () => Promise<void>;
if (mode === 'persisted') {
  const h = await openHome({ home, passphrase });
  client = h.client;
  close = () => h.close();
} else {
  const disk = await openHomeStore({ home, passphrase }, false);
  const records = await disk.list('');
  await disk.close();
  const memory = new MemoryRecordStore();
  await memory.commit(records, []);
  client = await TacitClient.open({ store: memory, backend: nodeBackend(), connect: wsSocketFactory });
  close = () => client.close();
}

let received = 0;
const done = new Promise<void>((resolve) => {
  client.on('message', () => {
    if (++received >= expected) resolve();
  });
});
const before = io();
const t0 = performance.now();
await client.connect();
await done;
const ms = performance.now() - t0;
const after = io();
await close();
process.stdout.write(
  JSON.stringify({ messages: received, ms, writeBytes: after.writeBytes - before.writeBytes, writeCalls: after.writeCalls - before.writeCalls, wchar: after.wchar - before.wchar }) + '\n',
);
process.exit(0);
