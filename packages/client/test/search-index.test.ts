// The search index (chat/search-index.ts) through the Node SQLite record store: it finds what the
// scan finds (a word from last week, every word as a prefix, newest first, a conversation), it
// stays exact through edits, deletions for everyone and disappearing messages (the index after
// them equals one built from scratch, so a removed message's words are not kept), a store of the
// previous format gets its index built, hostile texts and queries stay bounded, and neither the
// keys nor the file show a word.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeBackend } from '@tacit/protocol/node';
import { MAX_SEARCH_QUERY, MAX_TERMS_PER_MESSAGE, TacitClient, isClientError, searchTerms, type HistoryMessage } from '../src/index.ts';
import { SqliteRecordStore } from '../src/node.ts';
import { MessageActions } from '../src/chat/edits.ts';
import { SEARCH_PENDING_MAX, SearchIndex, describeIndexRecord } from '../src/chat/search-index.ts';
import { Core, FORMAT_KEY, formatCodec } from '../src/core.ts';
import { Emitter } from '../src/emitter.ts';
import type { ClientEvents } from '../src/events.ts';
import { History, type MessageMeta } from '../src/history.ts';
import { PREFIX } from '../src/keys.ts';
import { Txn } from '../src/txn.ts';
import { MemoryServer } from './support/memory-server.ts';

const backend = nodeBackend();
const DAY = 24 * 3600_000;
const GROUP = `g:${'ab'.repeat(16)}`;

interface Parts {
  store: SqliteRecordStore;
  core: Core;
  history: History;
  index: SearchIndex;
  actions: MessageActions;
  clock: { now: number };
}

/** A registered account in a SQLite file, driven part by part (no server needed after registering). */
async function account(dir: string): Promise<{ path: string; parts: () => Promise<Parts> }> {
  const path = join(dir, 'state.db');
  const server = new MemoryServer();
  const client = await TacitClient.register({ store: await SqliteRecordStore.open(path, 'pass', { create: true, scryptN: 1024 }), backend, connect: server.factory, fetch: server.fetch }, { server: 'http://tacit.test', username: 'alice' });
  await client.close();
  return {
    path,
    parts: async () => {
      const store = await SqliteRecordStore.open(path, 'pass');
      const clock = { now: Date.now() };
      const core = await Core.load({ store, backend, now: () => clock.now, events: new Emitter<ClientEvents>() });
      const history = new History(core);
      const index = new SearchIndex(core, history);
      const actions = new MessageActions(core, history);
      return { store, core, history, index, actions, clock };
    },
  };
}

/** Runs `fn` on a registered account in a temporary directory, removed afterwards. */
async function inTempHome(fn: (acc: Awaited<ReturnType<typeof account>>, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tacit-search-'));
  try {
    await fn(await account(dir), dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

let ids = 0;
function incoming(from: string, text: string, sentAt: number): [MessageMeta, string] {
  return [{ d: 'in', id: (++ids).toString(16).padStart(32, '0'), from, dev: 1, sentAt, rcv: sentAt }, text];
}
function outgoing(text: string, sentAt: number, dev = 1): [MessageMeta, string] {
  return [{ d: 'out', id: (++ids).toString(16).padStart(32, '0'), from: 'alice', dev, sentAt, st: 'sent' }, text];
}

async function add(p: Parts, conv: string, [meta, text]: [MessageMeta, string]): Promise<HistoryMessage> {
  return p.core.mutate((t) => p.history.append(t, conv, meta, text));
}

/** Every posting of the index, as sorted lines (bucket/span key, then the decoded chunk). */
async function postings(p: Parts): Promise<string[]> {
  return (await p.core.view().list(PREFIX.searchIndex)).flatMap((r) => describeIndexRecord(r.key, r.value)).sort();
}

/** The index as a fresh build over the same messages makes it (nothing written). */
async function rebuilt(p: Parts): Promise<string[]> {
  await p.core.mutate(async (t) => {
    for (const r of await t.list(PREFIX.searchIndex)) t.delete(r.key);
    t.delete(`${PREFIX.meta}search`);
  });
  assert.equal(await p.index.build(), true);
  return postings(p);
}

const texts = (hits: HistoryMessage[]): string[] => hits.map((m) => m.text);

/** Makes a store one of the previous format: no index, no build state, format 2. */
async function toFormat2(store: SqliteRecordStore): Promise<void> {
  const t = new Txn(store);
  for (const r of await store.list(PREFIX.searchIndex)) t.delete(r.key);
  t.delete(`${PREFIX.meta}search`);
  t.write(formatCodec, FORMAT_KEY, { v: 2 });
  await t.commit();
}

test('index: finds what the scan finds, a word from last week first among equals, and stays exact through edits, deletions and disappearing', { timeout: 120_000 }, async () => {
  await inTempHome(async (acc, dir) => {
    const p = await acc.parts();
    const now = p.clock.now;
    assert.equal(await p.index.build(), true, 'a new store: the build finds nothing to do');
    const week = await add(p, 'u:bob', incoming('bob', 'The Quarterly figures are in the shared folder', now - 7 * DAY));
    await add(p, 'u:bob', outgoing('quarterly planning on Monday?', now - DAY));
    await add(p, 'u:carol', incoming('carol', 'Déjà vu: the ﬁle CAFÉ menu ☕ 東京 tower', now - 2 * DAY));
    await add(p, GROUP, outgoing('group: quarterly retro notes', now - 3 * DAY, 2)); // from our other device
    await add(p, GROUP, incoming('dave', 'retro at noon', now - 4 * DAY));
    // Enough messages after them that theirs are merged into the chunks (not waiting any more).
    await p.core.mutate(async (t) => {
      for (let i = 0; i < SEARCH_PENDING_MAX + 10; i++) await p.history.append(t, `u:user${i % 5}`, ...incoming(`user${i % 5}`, `filler ${i} lorem ipsum dolor`, now - 5 * DAY + i));
    });
    assert.ok((await p.core.view().list(`${PREFIX.searchIndex}nw/`)).length < SEARCH_PENDING_MAX, 'merged');
    assert.ok((await p.core.view().getBytes(`${PREFIX.searchIndex}spans`)) !== undefined);
    const found = await p.index.search('quarterly');
    assert.deepEqual(texts(found), ['quarterly planning on Monday?', 'group: quarterly retro notes', 'The Quarterly figures are in the shared folder']);
    assert.equal(found[2]!.seq, week.seq, 'the message from a week ago is found');
    assert.deepEqual(texts(await p.index.search('folder QUARTER')), ['The Quarterly figures are in the shared folder']);
    assert.deepEqual(texts(await p.index.search('retro', { conversation: GROUP })), ['group: quarterly retro notes', 'retro at noon']);
    assert.deepEqual(texts(await p.index.search('quarterly', { conversation: 'u:carol' })), []);
    assert.deepEqual(texts(await p.index.search('uarterly')), [], 'a prefix of a word, not a substring');
    assert.deepEqual(texts(await p.index.search('file cafe')), [], 'accents are letters');
    assert.deepEqual(texts(await p.index.search('file café déjà 東京')), ['Déjà vu: the ﬁle CAFÉ menu ☕ 東京 tower'], 'NFKC: the ligature is "fi"');
    assert.deepEqual(texts(await p.index.search('quarterlyx')), []);
    assert.deepEqual(texts(await p.index.search('quarterly', { limit: 1 })), ['quarterly planning on Monday?']);

    // The same answers as the scan for every word and prefix of the corpus, and for pairs.
    const corpus = ['lorem 7', 'filler 1', 'quarterly', 'q', 'qu', 'quarterl', 'quarterlies', 'retro', 'the', 't', 'déjà', 'café', '東', '東京', 'monday', 'shared folder', 'the retro', 'zzz'];
    for (const q of corpus) assert.deepEqual(texts(await p.index.search(q)), texts((await p.index.scan(q)).sort((a, b) => b.sentAt - a.sentAt || b.seq - a.seq)), q);

    // An edit: the old words are gone, the new ones found.
    const mine = (await p.history.page('u:bob')).find((m) => m.text.startsWith('quarterly planning'))!;
    const edited = await p.core.mutate((t) => p.actions.apply(t, 'u:bob', 'alice', { k: 'edit', target: mine.id, text: 'budget review on Tuesday' }, mine.sentAt + 1000));
    assert.ok(!('ignored' in edited));
    assert.deepEqual(texts(await p.index.search('monday')), []);
    assert.deepEqual(texts(await p.index.search('tues budg')), ['budget review on Tuesday']);
    assert.equal((await p.index.search('quarterly')).length, 2);
    // A reaction or a receipt changes no posting.
    const before = await postings(p);
    await p.core.mutate((t) => p.actions.apply(t, 'u:bob', 'bob', { k: 'react', author: 'alice', target: mine.id, emoji: '👍' }, mine.sentAt + 2000));
    assert.deepEqual(await postings(p), before);

    // A deletion for everyone: not found, and its postings are gone.
    const group = (await p.history.page(GROUP)).find((m) => m.text.startsWith('group:'))!;
    await p.core.mutate((t) => p.actions.apply(t, GROUP, 'alice', { k: 'delete', target: group.id }, group.sentAt + 1000));
    assert.deepEqual(texts(await p.index.search('retro')), ['retro at noon']);
    assert.deepEqual(texts(await p.index.search('notes')), []);

    // A message still waiting to be merged: edited, then deleted.
    const fresh = await add(p, 'u:bob', outgoing('waiting room chatter', now - 500));
    assert.ok((await p.core.view().list(`${PREFIX.searchIndex}nw/`)).length > 0);
    await p.core.mutate((t) => p.actions.apply(t, 'u:bob', 'alice', { k: 'edit', target: fresh.id, text: 'lobby chatter' }, fresh.sentAt + 10));
    assert.deepEqual(texts(await p.index.search('waiting')), []);
    assert.deepEqual(texts(await p.index.search('lobby')), ['lobby chatter']);
    await p.core.mutate((t) => p.actions.apply(t, 'u:bob', 'alice', { k: 'delete', target: fresh.id }, fresh.sentAt + 20));
    assert.deepEqual(texts(await p.index.search('chatter')), []);

    // Disappearing: a message whose time ran out goes from the store and the index.
    p.clock.now = now;
    const [m, text] = outgoing('vanishing secret plans', now - 10_000);
    await add(p, 'u:carol', [{ ...m, exp: 5_000 }, text]);
    assert.equal((await p.index.search('vanish')).length, 1);
    assert.equal(await p.actions.sweep(), 1);
    assert.deepEqual(texts(await p.index.search('vanish')), []);

    // After all of it the index is exactly what a build from the remaining messages gives.
    const incremental = await postings(p);
    assert.ok(incremental.length > 0);
    assert.deepEqual(await rebuilt(p), incremental);

    // Keys are in the clear in this store: none holds a word (words that are not hex: pseudonyms are), and neither does the file.
    const keys = (await p.core.view().list('')).map((r) => r.key).join('\n');
    for (const w of ['quarter', 'retro', 'folder', 'budget', 'menu', 'vanish']) assert.ok(!keys.toLowerCase().includes(w), w);
    await p.store.close();
    for (const f of await readdir(dir)) {
      const raw = (await readFile(join(dir, f))).toString('latin1').toLowerCase();
      for (const w of ['quarterly', 'folder', 'budget', 'vanishing']) assert.ok(!raw.includes(w), `${w} in ${f}`);
    }
  });
});

test('index: a store of the previous format is upgraded and indexed, losing nothing; until then search scans', { timeout: 120_000 }, async () => {
  await inTempHome(async (acc) => {
    let p = await acc.parts();
    const now = p.clock.now;
    const n = 1_300; // several build batches and index spans
    await p.core.mutate(async (t) => {
      for (let i = 0; i < n; i++) {
        const [meta, text] = i % 2 === 0 ? incoming('bob', `note ${i} about topic${i % 7} from last week`, now - 7 * DAY + i) : outgoing(`reply ${i} topic${i % 7}`, now - 6 * DAY + i);
        await p.history.append(t, i % 3 === 0 ? 'u:carol' : 'u:bob', meta, text);
      }
    });
    const expected = await rebuilt(p);
    await toFormat2(p.store);
    await p.store.close();

    // Opening raises the format; search works at once (scanning) and builds the index.
    p = await acc.parts();
    assert.equal((await new Txn(p.store).read(formatCodec, FORMAT_KEY))?.v, 3);
    assert.equal(await p.index.ready(), false);
    assert.equal((await p.index.scan('topic3')).length, Math.floor((n - 1 - 3) / 7) + 1);
    const hits = await p.index.search('topic3 last', { limit: 200 });
    assert.equal(await p.index.ready(), true, 'the search finished the build');
    assert.deepEqual(texts(hits), texts((await p.index.scan('topic3 last')).sort((a, b) => b.sentAt - a.sentAt || b.seq - a.seq)));
    assert.ok(hits.length > 10);
    assert.deepEqual(await postings(p), expected, 'the same index as one kept from the start');
    assert.equal((await p.history.page('u:bob', { limit: 1000 })).length + (await p.history.page('u:carol', { limit: 1000 })).length, n, 'nothing lost');
    const replies = (await p.index.scan('reply topic2')).length;
    assert.ok(replies > 10);
    await p.store.close();

    // A client opening a format-2 store builds the index by itself.
    const q = await acc.parts();
    await toFormat2(q.store);
    await q.store.close();
    const server = new MemoryServer();
    const client = await TacitClient.open({ store: await SqliteRecordStore.open(acc.path, 'pass'), backend, connect: server.factory, fetch: server.fetch });
    try {
      assert.equal((await client.search('reply topic2', { limit: 200 })).length, replies);
    } finally {
      await client.close();
    }
    const r = await acc.parts();
    assert.equal(await r.index.ready(), true);
    assert.deepEqual(await postings(r), expected);
    await r.store.close();
  });
});

test('index: hostile texts and queries stay bounded and are still found exactly', { timeout: 120_000 }, async () => {
  await inTempHome(async (acc) => {
    const p = await acc.parts();
    const now = p.clock.now;
    await p.index.build();
    // Thousands of distinct words: more terms than a message may add, so it is listed unindexed.
    const huge = Array.from({ length: 3_000 }, (_, i) => `w${i.toString(36)}x${(i * 7919).toString(36)}`).join(' ') + ' needleword';
    assert.equal(searchTerms(huge), undefined);
    const h = await add(p, 'u:mallory', incoming('mallory', huge, now - 1000));
    await add(p, 'u:bob', incoming('bob', 'an ordinary needleword here', now - 2000));
    const chunks = await p.core.view().list(PREFIX.searchIndex);
    const indexBytes = chunks.reduce((s, r) => s + r.key.length + r.value.length, 0);
    assert.ok(indexBytes < 8 * 1024, `the huge message costs the index one posting (${indexBytes} bytes)`);
    const needle = (await p.index.search('needleword')).map((m) => m.seq);
    assert.equal(needle.length, 2);
    assert.ok(needle.includes(h.seq));
    assert.equal((await p.index.search('w1x')).length, 1);
    // Odd unicode: combining marks, bidi overrides, lone surrogates, zero-width joiners, emoji only.
    const odd = ['e\u0301cole naïve', 'evil\u202egnp.exe payload', 'lone \ud800 surrogate \udfff', '👩‍👩‍👧 family\u200dtime', '🎉🎉🎉', 'ＦＵＬＬＷＩＤＴＨ text'];
    for (const [i, text] of odd.entries()) await add(p, 'u:bob', incoming('bob', text, now - 10_000 - i));
    for (const q of ['école', 'e\u0301c', 'evil', 'gnp', 'lone \ud800', 'surrogate', 'family', 'fullwidth', 'ｆｕｌｌ', '👩‍👩‍👧 family']) {
      assert.deepEqual(texts(await p.index.search(q)), texts((await p.index.scan(q)).sort((a, b) => b.sentAt - a.sentAt || b.seq - a.seq)), q);
    }
    assert.deepEqual(texts(await p.index.search('école')), ['e\u0301cole naïve'], 'NFKC composes the accent');
    assert.deepEqual(texts(await p.index.search('fullwidth')), ['ＦＵＬＬＷＩＤＴＨ text']);
    // Queries: too long is refused; many words are answered (only a few are looked up).
    await assert.rejects(p.index.search('a'.repeat(MAX_SEARCH_QUERY + 1)), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
    await assert.rejects(p.index.search('🎉 ,,, \u202e'), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
    const many = Array.from({ length: 50 }, (_, i) => `n${i}`).join(' ');
    assert.ok(many.length <= MAX_SEARCH_QUERY);
    assert.deepEqual(await p.index.search(many), []);
    assert.deepEqual(texts(await p.index.search('an ordinary needle here')), ['an ordinary needleword here']);
    // The huge message edited to a short one leaves the unindexed list; deleted, nothing is left of it.
    await p.core.mutate((t) => p.history.update(t, 'u:mallory', h.seq, (m) => m, () => 'short now'));
    assert.deepEqual(texts(await p.index.search('needleword')), ['an ordinary needleword here']);
    assert.deepEqual(texts(await p.index.search('short')), ['short now']);
    assert.deepEqual(await rebuilt(p), await postings(p));
    assert.ok(MAX_TERMS_PER_MESSAGE >= 64);
    await p.store.close();
  });
});
