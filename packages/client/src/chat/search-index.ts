/**
 * Local full-text search of this device's history (issue 14), through a persistent index kept
 * in the record store beside the messages, changed in the same commit as they are.
 *
 * Semantics (unchanged from the scan it replaces): a message is found when every word of the
 * query is a prefix of one of its words (`searchWords`: NFKC, lower case, letters, digits and
 * marks); deleted messages, system lines and records that only carry an edit are never found;
 * newest first (the author's clock, then store order); an optional conversation; at most
 * MAX_SEARCH_RESULTS.
 *
 * Terms. Every word contributes its prefixes of 1 to MAX_INDEXED_PREFIX code points, so a query
 * word is looked up as itself (clipped to that length) and no prefix expansion happens at query
 * time. Every candidate is then checked against its decrypted text, so a longer query word, a
 * clipped term or a hash collision never gives a wrong hit: the index only decides which
 * messages are read.
 *
 * Layout (keys are stored in the clear, so they hold no word): a term's tag is
 * HMAC-SHA256(names key, "search\0" || term), the store's pseudonym key (keys.ts; kept sealed in
 * `meta/names`). Its first byte picks one of 256 buckets and the next four are the tag. Postings
 * live in chunks `sx/<bucket>/<seq span>`, one per bucket and SEARCH_SEQ_SPAN sequence numbers,
 * their sealed value a list of (tag, seq, conversation). A key thus says only that some word of
 * some message in a span of the store hashed into a bucket (nearly all do); the value's size
 * says roughly how much text the span holds. No key names a message, a word or a term.
 * Messages with more than MAX_TERMS_PER_MESSAGE terms (hostile or huge texts) are not expanded:
 * they are listed once in `sx/ov/<span>` and read by every search.
 *
 * Exactness: History tells the index of every change to a message (append, edit, deletion for
 * everyone, disappearing, trimming) inside the change's own transaction, so a commit holds both
 * or neither. A removed message's postings are removed with it, so its words do not stay behind.
 *
 * Stores written before the index (format 2, see core.ts) get it built in the background in
 * batches of SEARCH_BUILD_BATCH messages, each its own commit, remembered in `meta/search`;
 * until it is done, search scans as before (and a search waits for the build first).
 */
import type { Core, StateTxn } from '../core.js';
import { ClientError, isClientError } from '../errors.js';
import { fromHex, toHex, utf8Decode } from '../bytes.js';
import { keyNumber, PREFIX, seqKey } from '../keys.js';
import { corrupt, isObj, isStr, jsonCodec, type RecordCodec } from '../record-codec.js';
import type { Txn } from '../txn.js';
import { conversationCodec, messageCodec, toHistory, type ConversationId, type ConversationRecord, type History, type HistoryMessage, type MessageMeta } from '../history.js';

/** Results `search` returns at most. */
export const MAX_SEARCH_RESULTS = 200;
/** Longest search query, in characters. */
export const MAX_SEARCH_QUERY = 200;
/**
 * Longest word prefix indexed, in code points. A query word up to this long is looked up
 * exactly; a longer one by its first MAX_INDEXED_PREFIX code points, then checked against the
 * text. 8 covers most words whole while a long word costs at most 8 terms.
 */
export const MAX_INDEXED_PREFIX = 8;
/**
 * Distinct terms (prefixes) one message may put in the index. An ordinary message has tens; past
 * this (a hostile or huge text) the message is listed as unindexed and every search reads it,
 * so what one message costs the index is bounded without changing what search finds.
 */
export const MAX_TERMS_PER_MESSAGE = 256;
/** Sequence numbers per posting chunk: a chunk holds the postings of one bucket for this many. */
export const SEARCH_SEQ_SPAN = 4096;
/** Buckets (the first byte of a term's tag). */
export const SEARCH_BUCKETS = 256;
/**
 * Postings one chunk holds at most (8 bytes each: 512 KiB). Ordinary use fills a few hundred; a
 * message whose terms would cross it is listed as unindexed instead.
 */
export const MAX_CHUNK_POSTINGS = 65_536;
/** Index terms a query is looked up by at most (the longest ones); its other words are checked on the text. */
export const MAX_QUERY_LOOKUPS = 4;
/** Messages indexed per commit while building the index of an existing store. */
export const SEARCH_BUILD_BATCH = 200;

const OVERFLOW = 'ov';
const STATE_KEY = `${PREFIX.meta}search`;

/** The words of a text for search: lower case, compatibility-normalized, letters and digits. */
export function searchWords(text: string): string[] {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .split(/[^\p{L}\p{N}\p{M}]+/u)
    .filter((w) => w.length > 0);
}

/**
 * The index terms of a message text: every word's prefixes of 1 to MAX_INDEXED_PREFIX code
 * points, distinct; undefined when there are more than `max` (the message is then unindexed).
 */
export function searchTerms(text: string, max = MAX_TERMS_PER_MESSAGE): Set<string> | undefined {
  const terms = new Set<string>();
  for (const w of searchWords(text)) {
    let p = '';
    let n = 0;
    for (const ch of w) {
      if (n++ === MAX_INDEXED_PREFIX) break;
      p += ch;
      terms.add(p);
      if (terms.size > max) return undefined;
    }
  }
  return terms;
}

/** Does a text match every query word as a word prefix? (The check every candidate passes.) */
function matches(text: string, terms: readonly string[]): boolean {
  const words = searchWords(text);
  return terms.every((q) => words.some((w) => w.startsWith(q)));
}

/** Is this message searchable at all? */
function searchable(meta: MessageMeta, text: string): boolean {
  return meta.del !== 1 && meta.sys !== 1 && meta.act === undefined && text !== '';
}

// ---- chunks ----

/** One chunk's postings, in parallel arrays (seq is the full store sequence number). */
interface Chunk {
  tags: number[];
  seqs: number[];
  convs: string[];
}

const POSTING_BYTES = 8;
const PSEUDONYM_BYTES = 12;
const CHUNK_VERSION = 1;

/**
 * Layout: version (1) | conversations n (u16) | n × 12-byte conversation pseudonym |
 * postings m (u32) | m × (tag u32 | seq offset in the span u16 | conversation index u16).
 */
function chunkCodec(span: number): RecordCodec<Chunk> {
  const base = span * SEARCH_SEQ_SPAN;
  return {
    kind: 'search index',
    encode: (c) => {
      const convIndex = new Map<string, number>();
      for (const cv of c.convs) if (!convIndex.has(cv)) convIndex.set(cv, convIndex.size);
      const out = new Uint8Array(1 + 2 + convIndex.size * PSEUDONYM_BYTES + 4 + c.tags.length * POSTING_BYTES);
      const dv = new DataView(out.buffer);
      out[0] = CHUNK_VERSION;
      dv.setUint16(1, convIndex.size);
      let o = 3;
      for (const cv of convIndex.keys()) {
        out.set(fromHex(cv), o);
        o += PSEUDONYM_BYTES;
      }
      dv.setUint32(o, c.tags.length);
      o += 4;
      for (let i = 0; i < c.tags.length; i++) {
        dv.setUint32(o, c.tags[i]!);
        dv.setUint16(o + 4, c.seqs[i]! - base);
        dv.setUint16(o + 6, convIndex.get(c.convs[i]!)!);
        o += POSTING_BYTES;
      }
      return out;
    },
    decode: (b) => {
      const c: Chunk = { tags: [], seqs: [], convs: [] };
      readChunk(b, base, (tag, seq, conv) => {
        c.tags.push(tag);
        c.seqs.push(seq);
        c.convs.push(conv);
      });
      return c;
    },
  };
}

/** Walks a chunk's postings (total: damaged bytes give STATE_CORRUPT). `want` filters by tag before the conversation is decoded. */
function readChunk(b: Uint8Array, base: number, visit: (tag: number, seq: number, conv: string) => void, want?: number): void {
  const bad = (): ClientError => corrupt('search index', 'truncated');
  if (b.length < 7 || b[0] !== CHUNK_VERSION) throw corrupt('search index', 'unknown layout');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const nConv = dv.getUint16(1);
  let o = 3;
  if (b.length < o + nConv * PSEUDONYM_BYTES + 4) throw bad();
  const convs: string[] = [];
  for (let i = 0; i < nConv; i++, o += PSEUDONYM_BYTES) convs.push(toHex(b.subarray(o, o + PSEUDONYM_BYTES)));
  const n = dv.getUint32(o);
  o += 4;
  if (n > MAX_CHUNK_POSTINGS || b.length !== o + n * POSTING_BYTES) throw bad();
  for (let i = 0; i < n; i++, o += POSTING_BYTES) {
    const tag = dv.getUint32(o);
    if (want !== undefined && tag !== want) continue;
    const off = dv.getUint16(o + 4);
    const conv = convs[dv.getUint16(o + 6)];
    if (conv === undefined || off >= SEARCH_SEQ_SPAN) throw corrupt('search index', 'bad posting');
    visit(tag, base + off, conv);
  }
}

/** A chunk's postings as text lines, `<tag hex> <seq> <conversation pseudonym>`, sorted (tests compare indexes with it). */
export function describeChunk(key: string, value: Uint8Array): string[] {
  const out: string[] = [];
  readChunk(value, keyNumber(key) * SEARCH_SEQ_SPAN, (tag, seq, conv) => out.push(`${key.slice(0, key.lastIndexOf('/'))} ${tag.toString(16).padStart(8, '0')} ${seq} ${conv}`));
  return out.sort();
}

interface BuildState {
  /** Everything is indexed. */
  done: boolean;
  /** Building: the last message record indexed. */
  next?: string;
}

const buildStateCodec = jsonCodec<BuildState>('search index', (v) => {
  if (!isObj(v) || typeof v['done'] !== 'boolean' || !(v['next'] === undefined || isStr(v['next'], 200))) return undefined;
  return { done: v['done'], ...(v['next'] !== undefined ? { next: v['next'] } : {}) };
});

/** What a message is, for the index: its terms, or 'overflow' (too many), or nothing. */
type Terms = Set<string> | 'overflow' | undefined;

function termsOf(m: { meta: MessageMeta; text: string } | undefined): Terms {
  if (m === undefined || !searchable(m.meta, m.text)) return undefined;
  return searchTerms(m.text) ?? 'overflow';
}

export class SearchIndex {
  readonly #core: Core;
  readonly #history: History;
  #building: Promise<boolean> | undefined;
  #closed = false;

  constructor(core: Core, history: History) {
    this.#core = core;
    this.#history = history;
    history.indexer = (t, conversation, seq, before, after) => this.changed(t, conversation, seq, before, after);
  }

  close(): void {
    this.#closed = true;
  }

  // ---- keeping it exact ----

  /**
   * Inside a state change: a message was added (`before` undefined), changed, or removed
   * (`after` undefined). Adds and removes exactly the postings that differ.
   */
  async changed(t: StateTxn, conversation: ConversationId, seq: number, before: { meta: MessageMeta; text: string } | undefined, after: { meta: MessageMeta; text: string } | undefined): Promise<void> {
    // Most changes (receipts, reactions, states) leave the text and what is searchable alone.
    if (before !== undefined && after !== undefined && before.text === after.text && searchable(before.meta, before.text) === searchable(after.meta, after.text)) return;
    const old = termsOf(before);
    const now = termsOf(after);
    const pseudo = this.#pseudo(conversation);
    if (old === 'overflow' && now !== 'overflow') await this.#removeOverflow(t, seq);
    const drop = old instanceof Set ? [...old].filter((x) => !(now instanceof Set && now.has(x))) : [];
    const add = now instanceof Set ? [...now].filter((x) => !(old instanceof Set && old.has(x))) : [];
    if (drop.length > 0) await this.#apply(t, seq, pseudo, drop, 'remove');
    if (add.length > 0 && !(await this.#apply(t, seq, pseudo, add, 'add'))) {
      // A chunk would overflow: list the message as unindexed instead (its other postings go).
      if (now instanceof Set) await this.#apply(t, seq, pseudo, [...now], 'remove');
      await this.#addOverflow(t, seq, pseudo);
      return;
    }
    if (now === 'overflow' && old !== 'overflow') await this.#addOverflow(t, seq, pseudo);
  }

  #pseudo(conversation: ConversationId): string {
    return this.#core.keys.messagesOf(conversation).slice(PREFIX.message.length, -1);
  }

  /** A term's bucket (two hex digits) and tag. */
  #tag(term: string): { bucket: string; tag: number } {
    const h = this.#core.keys.pseudonym('search', term);
    return { bucket: h.slice(0, 2), tag: parseInt(h.slice(2, 10), 16) };
  }

  #chunkKey(bucket: string, seq: number): string {
    return `${PREFIX.searchIndex}${bucket}/${seqKey(Math.floor(seq / SEARCH_SEQ_SPAN))}`;
  }

  /** Adds or removes one message's postings of `terms`, one read and write per chunk. False when a chunk would pass MAX_CHUNK_POSTINGS (nothing written for it). */
  async #apply(t: StateTxn, seq: number, pseudo: string, terms: readonly string[], op: 'add' | 'remove'): Promise<boolean> {
    const byChunk = new Map<string, number[]>();
    for (const term of terms) {
      const { bucket, tag } = this.#tag(term);
      const key = this.#chunkKey(bucket, seq);
      const list = byChunk.get(key) ?? [];
      list.push(tag);
      byChunk.set(key, list);
    }
    const span = Math.floor(seq / SEARCH_SEQ_SPAN);
    const codec = chunkCodec(span);
    let fits = true;
    for (const [key, tags] of byChunk) {
      const c = (await t.read(codec, key)) ?? { tags: [], seqs: [], convs: [] };
      const mine = new Set(tags);
      if (op === 'remove') {
        const keep: Chunk = { tags: [], seqs: [], convs: [] };
        for (let i = 0; i < c.tags.length; i++) {
          if (c.seqs[i] === seq && mine.has(c.tags[i]!)) continue;
          keep.tags.push(c.tags[i]!);
          keep.seqs.push(c.seqs[i]!);
          keep.convs.push(c.convs[i]!);
        }
        if (keep.tags.length === c.tags.length) continue;
        if (keep.tags.length === 0) t.delete(key);
        else t.write(codec, key, keep);
      } else {
        for (let i = 0; i < c.tags.length; i++) if (c.seqs[i] === seq) mine.delete(c.tags[i]!);
        if (mine.size === 0) continue;
        if (c.tags.length + mine.size > MAX_CHUNK_POSTINGS) {
          fits = false;
          continue;
        }
        for (const tag of mine) {
          c.tags.push(tag);
          c.seqs.push(seq);
          c.convs.push(pseudo);
        }
        t.write(codec, key, c);
      }
    }
    return fits;
  }

  async #addOverflow(t: StateTxn, seq: number, pseudo: string): Promise<void> {
    const key = this.#chunkKey(OVERFLOW, seq);
    const codec = chunkCodec(Math.floor(seq / SEARCH_SEQ_SPAN));
    const c = (await t.read(codec, key)) ?? { tags: [], seqs: [], convs: [] };
    if (c.seqs.includes(seq)) return;
    c.tags.push(0);
    c.seqs.push(seq);
    c.convs.push(pseudo);
    t.write(codec, key, c);
  }

  async #removeOverflow(t: StateTxn, seq: number): Promise<void> {
    const key = this.#chunkKey(OVERFLOW, seq);
    const codec = chunkCodec(Math.floor(seq / SEARCH_SEQ_SPAN));
    const c = await t.read(codec, key);
    if (c === undefined) return;
    const i = c.seqs.indexOf(seq);
    if (i < 0) return;
    c.tags.splice(i, 1);
    c.seqs.splice(i, 1);
    c.convs.splice(i, 1);
    if (c.tags.length === 0) t.delete(key);
    else t.write(codec, key, c);
  }

  // ---- building it for an existing store ----

  /** Whether every message is indexed (reads the build state). */
  async ready(): Promise<boolean> {
    return (await this.#core.view().read(buildStateCodec, STATE_KEY))?.done === true;
  }

  /**
   * Indexes what is not indexed yet, SEARCH_BUILD_BATCH messages per commit, giving the event
   * loop a turn between batches. Resolves true once the index is complete (false if closed or a
   * batch failed: the next call resumes where it stopped).
   */
  build(): Promise<boolean> {
    this.#building ??= this.#build().finally(() => (this.#building = undefined));
    return this.#building;
  }

  async #build(): Promise<boolean> {
    for (let round = 0; round < 1_000_000 && !this.#closed; round++) {
      let done: boolean;
      try {
        done = await this.#core.mutate((t) => this.#buildBatch(t));
      } catch (e) {
        if (isClientError(e) && (e.code === 'CLOSED' || e.code === 'STORAGE_FULL')) return false;
        throw e;
      }
      if (done) return true;
      await new Promise((r) => setTimeout(r, 0));
    }
    return false;
  }

  async #buildBatch(t: StateTxn): Promise<boolean> {
    const state = (await t.read(buildStateCodec, STATE_KEY)) ?? { done: false };
    if (state.done) return true;
    const recs = await t.list(PREFIX.message, { limit: SEARCH_BUILD_BATCH, ...(state.next !== undefined ? { after: state.next } : {}) });
    for (const r of recs) {
      const { meta, blob } = messageCodec.decode(r.value);
      const pseudo = r.key.slice(PREFIX.message.length, r.key.lastIndexOf('/'));
      const conv = await this.#conversationOf(t, pseudo);
      if (conv === undefined) continue;
      // Idempotent: a message changed since the build began already has some of its postings.
      await this.changed(t, conv, keyNumber(r.key), undefined, { meta, text: utf8Decode(blob) });
    }
    const done = recs.length < SEARCH_BUILD_BATCH;
    t.write(buildStateCodec, STATE_KEY, done ? { done: true } : { done: false, next: recs[recs.length - 1]!.key });
    return done;
  }

  readonly #conversations = new Map<string, ConversationId>();

  /** A conversation id from its pseudonym (conversation records are few; read once). */
  async #conversationOf(t: Txn, pseudo: string): Promise<ConversationId | undefined> {
    if (!this.#conversations.has(pseudo)) {
      const c = await t.read(conversationCodec, PREFIX.conversation + pseudo);
      if (c === undefined) return undefined;
      this.#conversations.set(pseudo, c.id);
    }
    return this.#conversations.get(pseudo);
  }

  // ---- searching ----

  /**
   * Messages whose text holds every word of `query` as a word prefix, newest first. Reads the
   * postings of at most MAX_QUERY_LOOKUPS terms, then only the candidate messages; a store whose
   * index is still being built is scanned whole (the build is finished first when it can be).
   */
  async search(query: string, options: { conversation?: ConversationId; limit?: number } = {}): Promise<HistoryMessage[]> {
    if (query.length > MAX_SEARCH_QUERY) throw new ClientError('INVALID_ARGUMENT', `a search is at most ${MAX_SEARCH_QUERY} characters`);
    const words = [...new Set(searchWords(query))];
    if (words.length === 0) throw new ClientError('INVALID_ARGUMENT', 'search for at least one word');
    // A word that is a prefix of another query word adds nothing: the longer one implies it.
    const terms = words.filter((q) => !words.some((w) => w !== q && w.startsWith(q)));
    const limit = Math.min(options.limit ?? 50, MAX_SEARCH_RESULTS);
    const ready = (await this.ready()) || (await this.build().catch(() => false));
    const hits = ready ? await this.#lookup(terms, options.conversation) : await this.#scanAll(terms, options.conversation);
    return hits.sort((a, b) => b.sentAt - a.sentAt || b.seq - a.seq).slice(0, limit);
  }

  async #lookup(terms: readonly string[], only: ConversationId | undefined): Promise<HistoryMessage[]> {
    const t = this.#core.view();
    const convs = new Map<string, ConversationRecord>();
    for (const r of await t.list(PREFIX.conversation)) convs.set(r.key.slice(PREFIX.conversation.length), conversationCodec.decode(r.value));
    const onlyPseudo = only !== undefined ? this.#pseudo(only) : undefined;
    // Longest terms first: the most selective.
    const keys = [...new Set(terms.map((q) => [...q].slice(0, MAX_INDEXED_PREFIX).join('')))].sort((a, b) => b.length - a.length).slice(0, MAX_QUERY_LOOKUPS);
    let candidates: Map<number, string> | undefined;
    for (const term of keys) {
      const { bucket, tag } = this.#tag(term);
      const found = new Map<number, string>();
      await this.#postings(t, bucket, tag, (seq, conv) => {
        if ((onlyPseudo === undefined || conv === onlyPseudo) && (candidates === undefined || candidates.has(seq))) found.set(seq, conv);
      });
      candidates = found;
      if (candidates.size === 0) break;
    }
    const all = candidates ?? new Map<number, string>();
    // Unindexed (overflowing) messages are candidates of every search.
    await this.#postings(t, OVERFLOW, undefined, (seq, conv) => {
      if (onlyPseudo === undefined || conv === onlyPseudo) all.set(seq, conv);
    });
    const hits: HistoryMessage[] = [];
    for (const [seq, pseudo] of all) {
      const conv = convs.get(pseudo);
      if (conv === undefined) continue;
      const bytes = await t.getBytes(`${PREFIX.message}${pseudo}/${seqKey(seq)}`);
      if (bytes === undefined) continue;
      const { meta, blob } = messageCodec.decode(bytes);
      const text = utf8Decode(blob);
      if (searchable(meta, text) && matches(text, terms)) hits.push(toHistory(conv.id, seq, meta, text, conv.read));
    }
    return hits;
  }

  async #postings(t: Txn, bucket: string, tag: number | undefined, visit: (seq: number, conv: string) => void): Promise<void> {
    const prefix = `${PREFIX.searchIndex}${bucket}/`;
    let after: string | undefined;
    for (let round = 0; round < 100_000; round++) {
      const recs = await t.list(prefix, { limit: 256, ...(after !== undefined ? { after } : {}) });
      for (const r of recs) readChunk(r.value, keyNumber(r.key) * SEARCH_SEQ_SPAN, (_tag, seq, conv) => visit(seq, conv), tag);
      if (recs.length < 256) break;
      after = recs[recs.length - 1]!.key;
    }
  }

  /** The search before the index: every message record, read and checked (while the index is built). */
  async #scanAll(terms: readonly string[], only: ConversationId | undefined): Promise<HistoryMessage[]> {
    const t = this.#core.view();
    const convs = only !== undefined ? [only] : (await this.#history.summaries()).map((c) => c.id);
    const hits: HistoryMessage[] = [];
    for (const c of convs) {
      const conv = await this.#history.conversation(t, c);
      if (conv === undefined) continue;
      const prefix = this.#core.keys.messagesOf(c);
      let after: string | undefined;
      for (let round = 0; round < 1_000; round++) {
        const recs = await t.list(prefix, { limit: 500, ...(after !== undefined ? { after } : {}) });
        for (const rec of recs) {
          const { meta, blob } = messageCodec.decode(rec.value);
          const text = utf8Decode(blob);
          if (searchable(meta, text) && matches(text, terms)) hits.push(toHistory(c, keyNumber(rec.key), meta, text, conv.read));
        }
        if (recs.length < 500) break;
        after = recs[recs.length - 1]!.key;
      }
    }
    return hits;
  }

  /** For the benchmark and tests: the scan, whatever the index's state. */
  scan(query: string, conversation?: ConversationId): Promise<HistoryMessage[]> {
    return this.#scanAll([...new Set(searchWords(query))], conversation);
  }
}
