// Search benchmark (issue 14): local full-text search over a full history (MAX_STORED_MESSAGES,
// 20,000 messages) in the CLI's store (one SQLite file, every record sealed), with the search
// index (chat/search-index.ts) against the full scan it replaced, in the same run and store.
//
//   npm run bench:search [-- --messages=20000] [-- --rounds=5]
//
// History: texts of 4 to 30 words drawn from a Zipf-like vocabulary of 5,000 words (so some
// words are in most messages and most words in few), across 50 conversations, one in ten from
// a week ago. Queries: a rare word, a common word, two words, a two-letter prefix, a word that is
// nowhere. Each is timed with the index and with the scan, rounds interleaved, medians reported.
// Also: what keeping the index costs (appending the history with and without it, in batches of
// 500 per commit, each into its own file), building it for an existing store (an upgrade), and
// its storage (the index's records, and both files' sizes).
// Last line, one JSON object with the figures. Benchmarks assert nothing.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MAX_STORED_MESSAGES, TacitClient } from '@tacit/client';
import { SqliteRecordStore } from '@tacit/client/node';
import { nodeBackend } from '@tacit/protocol/node';
import { SearchIndex } from '../packages/client/src/chat/search-index.ts';
import { Core } from '../packages/client/src/core.ts';
import { Emitter } from '../packages/client/src/emitter.ts';
import type { ClientEvents } from '../packages/client/src/events.ts';
import { History, type MessageMeta } from '../packages/client/src/history.ts';
import { PREFIX } from '../packages/client/src/keys.ts';
import { MemoryServer } from '../packages/client/test/support/memory-server.ts';
import { machineLoad } from './machine.ts';

const { values } = parseArgs({ options: { messages: { type: 'string', default: String(MAX_STORED_MESSAGES) }, rounds: { type: 'string', default: '5' } } });
const N = Number(values.messages);
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(N) || N < 1 || N > MAX_STORED_MESSAGES) throw new Error(`--messages must be 1..${MAX_STORED_MESSAGES}`);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 50) throw new Error('--rounds must be 1..50');

const backend = nodeBackend();
const dir = mkdtempSync(join(tmpdir(), 'tacit-bench-search-'));
const DAY = 24 * 3600_000;
const VOCABULARY = 5_000;
const BATCH = 500;

// A deterministic generator (xorshift32), so every run writes the same history.
let seed = 0x2545f491;
function random(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
}
const syllables = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'to', 'vi', 'de', 'po', 'qua', 'ter', 'ly', 'gen', 'bor', 'sch', 'an', 'el', 'is', 'ou'];
const words = Array.from({ length: VOCABULARY }, (_, i) => {
  let w = '';
  for (let x = i + 7, n = 0; n < 2 + (i % 3); n++, x = Math.floor(x / syllables.length) + n * 31) w += syllables[x % syllables.length];
  return `${w}${i}`;
});
/** Zipf-like: word i drawn with weight ~ 1/(i+1). */
function word(): string {
  return words[Math.min(VOCABULARY - 1, Math.floor(Math.exp(random() * Math.log(VOCABULARY + 1)) - 1))]!;
}
function text(): string {
  const n = 4 + Math.floor(random() * 27);
  return Array.from({ length: n }, word).join(' ');
}
const now = Date.now();
const history: { conv: string; meta: MessageMeta; text: string }[] = [];
for (let i = 0; i < N; i++) {
  const conv = `u:user${i % 50}`;
  const sentAt = i % 10 === 0 ? now - 7 * DAY + i : now - DAY + i;
  const meta: MessageMeta = i % 2 === 0 ? { d: 'in', id: i.toString(16).padStart(32, '0'), from: `user${i % 50}`, dev: 1, sentAt, rcv: sentAt } : { d: 'out', id: i.toString(16).padStart(32, '0'), from: 'alice', dev: 1, sentAt, st: 'sent' };
  history.push({ conv, meta, text: text() });
}
history[Math.floor(N / 2)]!.text += ' needle';

async function account(name: string): Promise<string> {
  const path = join(dir, `${name}.db`);
  const server = new MemoryServer();
  const c = await TacitClient.register({ store: await SqliteRecordStore.open(path, 'bench', { create: true, scryptN: 1024 }), backend, connect: server.factory, fetch: server.fetch }, { server: 'http://tacit.test', username: 'alice' });
  await c.close();
  return path;
}

async function open(path: string, withIndex: boolean): Promise<{ store: SqliteRecordStore; core: Core; history: History; index: SearchIndex }> {
  const store = await SqliteRecordStore.open(path, 'bench');
  const core = await Core.load({ store, backend, now: Date.now, events: new Emitter<ClientEvents>() });
  const h = new History(core);
  const index = new SearchIndex(core, h);
  if (!withIndex) h.indexer = undefined;
  return { store, core, history: h, index };
}

async function fill(path: string, withIndex: boolean): Promise<number> {
  const p = await open(path, withIndex);
  const t0 = performance.now();
  for (let i = 0; i < N; i += BATCH) {
    await p.core.mutate(async (t) => {
      for (const m of history.slice(i, i + BATCH)) await p.history.append(t, m.conv, m.meta, m.text);
    });
  }
  const ms = performance.now() - t0;
  await p.store.close();
  return ms;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fileBytes = (path: string): number => ['', '-wal'].reduce((s, x) => s + (statSync(path + x, { throwIfNoEntry: false })?.size ?? 0), 0);

try {
  const load = machineLoad();
  const indexed = await account('indexed');
  const plain = await account('plain');
  console.log(`history: ${N} messages, 50 conversations, vocabulary ${VOCABULARY} (Zipf-like), ${BATCH} per commit; machine load ${load}`);
  const appendIndexed = await fill(indexed, true);
  const appendPlain = await fill(plain, false);
  const filePlain = fileBytes(plain);
  console.log(`append ${N}: with index ${appendIndexed.toFixed(0)} ms, without ${appendPlain.toFixed(0)} ms (${(appendIndexed / appendPlain).toFixed(2)}x)`);

  // The plain store is one of the previous format: build its index as an upgrade would.
  const up = await open(plain, true);
  // Its client marked an empty index complete when it registered; this history came without it.
  await up.core.mutate((t) => t.delete(`${PREFIX.meta}search`));
  const tb = performance.now();
  await up.index.build();
  const buildMs = performance.now() - tb;
  await up.store.close();
  console.log(`building the index of an existing store of ${N} messages: ${buildMs.toFixed(0)} ms`);

  const p = await open(indexed, true);
  await p.index.build();
  const view = p.core.view();
  const idx = await view.list(PREFIX.searchIndex);
  const msgs = await view.list(PREFIX.message);
  // Sealing adds a 12-byte nonce and a 16-byte tag to every stored value.
  const sealed = (rs: { key: string; value: Uint8Array }[]): number => rs.reduce((s, r) => s + r.key.length + r.value.length + 28, 0);
  const indexBytes = sealed(idx);
  const messageBytes = sealed(msgs);
  await p.store.close();
  const fileIndexed = fileBytes(indexed);
  console.log(`storage: index ${idx.length} records, ${(indexBytes / 1e6).toFixed(2)} MB sealed (${(indexBytes / N).toFixed(0)} B/message); messages ${(messageBytes / 1e6).toFixed(2)} MB; file ${(fileIndexed / 1e6).toFixed(2)} MB with the index, ${(filePlain / 1e6).toFixed(2)} MB without (the same store, upgraded and built: ${(fileBytes(plain) / 1e6).toFixed(2)} MB)`);

  const q = await open(indexed, true);
  const queries: [string, string][] = [
    ['rare word', words[VOCABULARY - 3]!],
    ['needle', 'needle'],
    ['common word', words[0]!],
    ['two words', `${words[1]} ${words[40]}`],
    ['prefix (2 letters)', words[9]!.slice(0, 2)],
    ['nowhere', 'zzzzzz'],
  ];
  const results: Record<string, { hits: number; indexMs: number; scanMs: number; ratio: number }> = {};
  for (const [name, query] of queries) {
    const ti: number[] = [];
    const ts: number[] = [];
    let hits = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ['index', 'scan'] : ['scan', 'index'];
      for (const which of order) {
        const t0 = performance.now();
        if (which === 'index') hits = (await q.index.search(query, { limit: 200 })).length;
        else await q.index.scan(query);
        (which === 'index' ? ti : ts).push(performance.now() - t0);
      }
    }
    const matches = (await q.index.scan(query)).length;
    const indexMs = median(ti);
    const scanMs = median(ts);
    results[name] = { hits: matches, indexMs: Math.round(indexMs * 10) / 10, scanMs: Math.round(scanMs * 10) / 10, ratio: Math.round((scanMs / indexMs) * 10) / 10 };
    console.log(`${name.padEnd(20)} ${String(matches).padStart(6)} matches (${hits} returned): index ${indexMs.toFixed(1)} ms, scan ${scanMs.toFixed(1)} ms, ${(scanMs / indexMs).toFixed(1)}x`);
  }
  await q.store.close();
  console.log(
    JSON.stringify({
      messages: N,
      appendMs: { indexed: Math.round(appendIndexed), plain: Math.round(appendPlain) },
      buildMs: Math.round(buildMs),
      indexBytes,
      indexBytesPerMessage: Math.round(indexBytes / N),
      messageBytes,
      fileBytes: { indexed: fileIndexed, plain: filePlain },
      search: results,
      load,
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
