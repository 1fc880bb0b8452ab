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
 * `meta/names`). Its first byte picks one of 256 buckets and the next 23 bits are the tag. Postings
 * live in chunks `sx/<seq span>/<bucket>`, one per bucket and SEARCH_SEQ_SPAN sequence numbers,
 * their sealed value a list of (tag, seq offset). A key thus says only that some word of
 * some message in a span of the store hashed into a bucket (nearly all do); the value's size
 * says roughly how much text the span holds. No key names a message, a word or a term.
 * Messages with more than MAX_TERMS_PER_MESSAGE terms (hostile or huge texts) are not expanded:
 * they are listed once in `sx/ov` and read by every search.
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
import { corrupt, isObj, isStr, jsonCodec } from '../record-codec.js';
import type { Txn } from '../txn.js';
import type { StoredRecord } from '../record-store.js';
import { conversationCodec, MAX_STORED_MESSAGES, messageCodec, toHistory, type ConversationId, type ConversationRecord, type History, type HistoryMessage, type MessageMeta } from '../history.js';

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
/**
 * Sequence numbers per posting chunk: a chunk holds one bucket's postings for this many. Small
 * enough that a new message rewrites little (its chunks hold a span's worth of text over 256
 * buckets: a few hundred bytes each), large enough that a term's postings over a full history
 * are a few hundred records, read in one range.
 */
export const SEARCH_SEQ_SPAN = 512; // 2 ** OFFSET_BITS
/** Buckets (the first byte of a term's tag). */
export const SEARCH_BUCKETS = 256;
/**
 * Postings one chunk holds at most (4 bytes each: 256 KiB). Ordinary use puts tens in a chunk; a
 * message whose terms would cross it is listed as unindexed instead.
 */
export const MAX_CHUNK_POSTINGS = 65_536;
/** Index terms a query is looked up by at most (the longest ones); its other words are checked on the text. */
export const MAX_QUERY_LOOKUPS = 4;
/**
 * Messages whose postings wait in a record of their own (`sx/nw/<seq>`) before they are merged
 * into the chunks, all at once. A new message then writes one small record instead of one per
 * bucket it touches (tens of records in pages all over the store's b-tree), and the chunks of a
 * span are rewritten once per this many messages. A search reads the waiting records too.
 */
export const SEARCH_PENDING_MAX = 128;
/** Terms whose tags are kept in memory (oldest first out): common prefixes recur in most messages. */
export const TAG_CACHE_ENTRIES = 20_000;
/** Messages indexed per commit while building the index of an existing store. */
export const SEARCH_BUILD_BATCH = 200;

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

// ---- records ----
//
// Each a version byte then fixed-size entries (appending is a copy of bytes, no decoding), all
// bounded. A span's records sit together in key order, so merging writes a few b-tree pages:
//   chunk     `sx/<span>/<bucket>`  (tag, 23 bits | seq offset in the span, 9 bits) per posting, at most MAX_CHUNK_POSTINGS
//   table     `sx/<span>/sq`        (seq offset u16 | conversation pseudonym, 12 bytes | sent at, f64) per merged message
//   spans     `sx/spans`            (span, f64) per span with a table: what a search reads
//   unindexed `sx/ov`               (seq, f64) per merged message with too many terms
//   waiting   `sx/nw/<seq>`         flags (1: unindexed) | conversation pseudonym (12) | sent at (f64) | (bucket u8 | tag u32) per term

const RECORD_VERSION = 1;
const POSTING_BYTES = 4;
/** A posting is one u32: the tag's 23 bits, then the seq's offset in its span (OFFSET_BITS). */
const OFFSET_BITS = 9;
const TABLE_ENTRY_BYTES = 22;
const SEQ_ENTRY_BYTES = 8;
const TABLE = 'sq';
const OVERFLOW = 'ov';
const OVERFLOW_KEY = `${PREFIX.searchIndex}${OVERFLOW}`;
const SPANS_KEY = `${PREFIX.searchIndex}spans`;
/** Entries of the unindexed list and of the span list: each names at least one stored message. */
const MAX_LISTED = 2 * MAX_STORED_MESSAGES;
const PENDING = 'nw';
const PENDING_HEAD_BYTES = 22;
const PENDING_TAG_BYTES = 5;

function spanOf(seq: number): number {
  return Math.floor(seq / SEARCH_SEQ_SPAN);
}

/** Checks a stored index record's layout (total: damage is STATE_CORRUPT). */
function checkRecord(b: Uint8Array, entryBytes: number, max: number): DataView {
  if (b.length < 1 || b[0] !== RECORD_VERSION || (b.length - 1) % entryBytes !== 0 || (b.length - 1) / entryBytes > max) throw corrupt('search index', 'unexpected layout');
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Walks a chunk's postings: (tag, offset). */
function eachPosting(b: Uint8Array, visit: (tag: number, off: number) => void): void {
  const dv = checkRecord(b, POSTING_BYTES, MAX_CHUNK_POSTINGS);
  for (let o = 1; o < b.length; o += POSTING_BYTES) {
    const v = dv.getUint32(o);
    visit(v >>> OFFSET_BITS, v & (SEARCH_SEQ_SPAN - 1));
  }
}

/** Walks a table: (offset, conversation pseudonym). */
function eachTableEntry(b: Uint8Array, visit: (off: number, pseudo: string, sentAt: number) => void): void {
  const dv = checkRecord(b, TABLE_ENTRY_BYTES, SEARCH_SEQ_SPAN);
  for (let o = 1; o < b.length; o += TABLE_ENTRY_BYTES) visit(dv.getUint16(o), toHex(b.subarray(o + 2, o + 14)), dv.getFloat64(o + 14));
}

function tableHas(b: Uint8Array, off: number): boolean {
  const dv = checkRecord(b, TABLE_ENTRY_BYTES, SEARCH_SEQ_SPAN);
  for (let o = 1; o < b.length; o += TABLE_ENTRY_BYTES) if (dv.getUint16(o) === off) return true;
  return false;
}

/** Walks a list of numbers (the unindexed messages' seqs, or the spans in use). */
function eachNumber(b: Uint8Array, visit: (n: number) => void): void {
  const dv = checkRecord(b, SEQ_ENTRY_BYTES, MAX_LISTED);
  for (let o = 1; o < b.length; o += SEQ_ENTRY_BYTES) visit(dv.getFloat64(o));
}

function f64(n: number): Uint8Array {
  const out = new Uint8Array(SEQ_ENTRY_BYTES);
  new DataView(out.buffer).setFloat64(0, n);
  return out;
}

function withoutNumber(b: Uint8Array, n: number): Uint8Array | undefined {
  return filtered(b, SEQ_ENTRY_BYTES, (dv, o) => dv.getFloat64(o) !== n);
}

/** `old` (or a new record) with `entries` appended. */
function appended(old: Uint8Array | undefined, entries: Uint8Array): Uint8Array {
  const base = old ?? Uint8Array.of(RECORD_VERSION);
  const out = new Uint8Array(base.length + entries.length);
  out.set(base);
  out.set(entries, base.length);
  return out;
}

/** The entries of a record (of `entryBytes` each) for which `keep` holds; undefined when none is left. */
function filtered(b: Uint8Array, entryBytes: number, keep: (dv: DataView, o: number) => boolean): Uint8Array | undefined {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Uint8Array(b.length);
  out[0] = RECORD_VERSION;
  let n = 1;
  for (let o = 1; o < b.length; o += entryBytes) {
    if (!keep(dv, o)) continue;
    out.set(b.subarray(o, o + entryBytes), n);
    n += entryBytes;
  }
  return n === 1 ? undefined : out.slice(0, n);
}

interface Pending {
  pseudo: string;
  sentAt: number;
  overflow: boolean;
  tags: { bucket: string; tag: number }[];
}

function encodePending(p: Pending): Uint8Array {
  const out = new Uint8Array(PENDING_HEAD_BYTES + p.tags.length * PENDING_TAG_BYTES);
  const dv = new DataView(out.buffer);
  out[0] = RECORD_VERSION;
  out[1] = p.overflow ? 1 : 0;
  out.set(fromHex(p.pseudo), 2);
  dv.setFloat64(14, p.sentAt);
  let o = PENDING_HEAD_BYTES;
  for (const { bucket, tag } of p.tags) {
    out[o] = parseInt(bucket, 16);
    dv.setUint32(o + 1, tag);
    o += PENDING_TAG_BYTES;
  }
  return out;
}

function decodePending(b: Uint8Array): Pending {
  if (b.length < PENDING_HEAD_BYTES || b[0] !== RECORD_VERSION || b[1]! > 1 || (b.length - PENDING_HEAD_BYTES) % PENDING_TAG_BYTES !== 0 || (b.length - PENDING_HEAD_BYTES) / PENDING_TAG_BYTES > MAX_TERMS_PER_MESSAGE) {
    throw corrupt('search index', 'unexpected layout');
  }
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const tags: { bucket: string; tag: number }[] = [];
  for (let o = PENDING_HEAD_BYTES; o < b.length; o += PENDING_TAG_BYTES) tags.push({ bucket: b[o]!.toString(16).padStart(2, '0'), tag: dv.getUint32(o + 1) });
  return { pseudo: toHex(b.subarray(2, 14)), sentAt: dv.getFloat64(14), overflow: b[1] === 1, tags };
}

/** Any index record's entries as text lines `<record> <entry…>`, sorted (tests compare indexes with it). */
export function describeIndexRecord(key: string, value: Uint8Array): string[] {
  // A waiting record reads as the chunk, table and unindexed entries it will be merged into.
  const out: string[] = [];
  const rest = key.slice(PREFIX.searchIndex.length);
  if (rest.startsWith(`${PENDING}/`)) {
    const p = decodePending(value);
    const seq = keyNumber(key);
    if (p.overflow) out.push(`${OVERFLOW} ${seq}`);
    out.push(`${TABLE} ${seq} ${p.pseudo} ${p.sentAt}`);
    for (const { bucket, tag } of p.tags) out.push(`${bucket} ${tag.toString(16).padStart(6, '0')} ${seq}`);
  } else if (key === OVERFLOW_KEY) {
    eachNumber(value, (seq) => out.push(`${OVERFLOW} ${seq}`));
  } else if (key === SPANS_KEY) {
    // Derived from the tables: which spans have one.
  } else {
    const [span, name] = rest.split('/') as [string, string];
    const base = Number(span) * SEARCH_SEQ_SPAN;
    if (name === TABLE) eachTableEntry(value, (off, pseudo, sentAt) => out.push(`${name} ${base + off} ${pseudo} ${sentAt}`));
    else eachPosting(value, (tag, off) => out.push(`${name} ${tag.toString(16).padStart(6, '0')} ${base + off}`));
  }
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

function u16(n: number): Uint8Array {
  return Uint8Array.of(n >>> 8, n & 0xff);
}

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
  readonly #tags = new Map<string, { bucket: string; tag: number }>();
  readonly #growing = new WeakMap<Txn, Map<string, { buf: Uint8Array; view: Uint8Array }>>();
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
   * (`after` undefined). Adds and removes exactly the postings that differ. Idempotent for an
   * add (the build may meet a message that was indexed as it arrived).
   */
  async changed(t: StateTxn, conversation: ConversationId, seq: number, before: { meta: MessageMeta; text: string } | undefined, after: { meta: MessageMeta; text: string } | undefined): Promise<void> {
    // Most changes (receipts, reactions, states) leave the text and what is searchable alone.
    if (before !== undefined && after !== undefined && before.text === after.text && searchable(before.meta, before.text) === searchable(after.meta, after.text)) return;
    const old = termsOf(before);
    let now = termsOf(after);
    const span = spanOf(seq);
    const off = seq - span * SEARCH_SEQ_SPAN;
    const tableKey = this.#key(TABLE, span);
    const table = await t.getBytes(tableKey);
    const listed = table !== undefined && tableHas(table, off);
    if (!listed) {
      // Not in the chunks: its waiting record is all there is of it (written anew, or removed).
      const pendKey = this.#pendingKey(seq);
      const pending = await t.getBytes(pendKey);
      if (now === undefined || (now instanceof Set && now.size === 0)) {
        if (pending !== undefined) {
          t.delete(pendKey);
          t.counters.searchPending = Math.max(0, t.counters.searchPending - 1);
        }
        return;
      }
      const tags = now === 'overflow' ? [] : [...now].map((x) => this.#tag(x));
      t.putBytes(pendKey, encodePending({ pseudo: this.#pseudo(conversation), sentAt: after!.meta.sentAt, overflow: now === 'overflow', tags }));
      if (pending === undefined && ++t.counters.searchPending >= SEARCH_PENDING_MAX) await this.#merge(t);
      return;
    }
    const wasOverflow = old === 'overflow' || (await this.#inOverflow(t, seq));
    if (old instanceof Set) {
      const drop = [...old].filter((x) => !(now instanceof Set && now.has(x)));
      if (drop.length > 0) this.#remove(t, off, await this.#chunks(t, span, drop.map((x) => this.#tag(x))));
    }
    if (now instanceof Set && now.size > 0) {
      // Already listed: some postings may exist (the build meeting a message indexed on arrival).
      // A change of text adds what is new; the build meeting a merged message adds what is missing.
      const add = old instanceof Set ? [...now].filter((x) => !old.has(x)) : [...now];
      if (!(await this.#add(t, span, off, add.map((x) => this.#tag(x)), !(old instanceof Set)))) {
        this.#remove(t, off, await this.#chunks(t, span, [...now].map((x) => this.#tag(x))));
        now = 'overflow';
      }
    }
    if (now === 'overflow') {
      if (!wasOverflow) t.putBytes(OVERFLOW_KEY, appended(await t.getBytes(OVERFLOW_KEY), f64(seq)));
    } else if (wasOverflow) {
      this.#put(t, OVERFLOW_KEY, withoutNumber((await t.getBytes(OVERFLOW_KEY))!, seq));
    }
    const shouldList = now === 'overflow' || (now instanceof Set && now.size > 0);
    if (shouldList && !listed) {
      const entry = new Uint8Array(TABLE_ENTRY_BYTES);
      entry.set(u16(off));
      entry.set(fromHex(this.#pseudo(conversation)), 2);
      // Its time, so a search can order candidates before reading them (it never changes).
      new DataView(entry.buffer).setFloat64(14, after!.meta.sentAt);
      await this.#listIn(t, span, entry);
    } else if (!shouldList && listed) {
      const rest = filtered(table!, TABLE_ENTRY_BYTES, (dv, o) => dv.getUint16(o) !== off);
      this.#put(t, tableKey, rest);
      // A span without messages leaves the list of spans a search reads.
      if (rest === undefined) this.#put(t, SPANS_KEY, withoutNumber((await t.getBytes(SPANS_KEY))!, span));
    }
  }

  async #inOverflow(t: Txn, seq: number): Promise<boolean> {
    const b = await t.getBytes(OVERFLOW_KEY);
    let found = false;
    if (b !== undefined) eachNumber(b, (n) => (found ||= n === seq));
    return found;
  }

  /** Adds a table entry to its span's table (and the span to the list when it is new there). */
  async #listIn(t: StateTxn, span: number, entry: Uint8Array): Promise<void> {
    const tableKey = this.#key(TABLE, span);
    const table = await t.getBytes(tableKey);
    if (table === undefined) t.putBytes(SPANS_KEY, appended(await t.getBytes(SPANS_KEY), f64(span)));
    t.putBytes(tableKey, appended(table, entry));
  }

  #put(t: StateTxn, key: string, value: Uint8Array | undefined): void {
    if (value === undefined) t.delete(key);
    else t.putBytes(key, value);
  }

  #pseudo(conversation: ConversationId): string {
    return this.#core.keys.messagesOf(conversation).slice(PREFIX.message.length, -1);
  }

  /** A term's bucket (two hex digits) and tag; recent ones are remembered (an HMAC each otherwise). */
  #tag(term: string): { bucket: string; tag: number } {
    const known = this.#tags.get(term);
    if (known !== undefined) return known;
    const h = this.#core.keys.pseudonym('search', term);
    const v = { bucket: h.slice(0, 2), tag: parseInt(h.slice(2, 8), 16) >>> 1 };
    if (this.#tags.size >= TAG_CACHE_ENTRIES) this.#tags.delete(this.#tags.keys().next().value!);
    this.#tags.set(term, v);
    return v;
  }

  /** A span's record (`bucket` two hex digits, or the table): a span's records sit together. */
  #key(bucket: string, span: number): string {
    return `${PREFIX.searchIndex}${seqKey(span)}/${bucket}`;
  }

  #pendingKey(seq: number): string {
    return `${PREFIX.searchIndex}${PENDING}/${seqKey(seq)}`;
  }

  /** Moves every waiting record into the chunks, tables and unindexed lists (in the change that made the last one wait). */
  async #merge(t: StateTxn): Promise<void> {
    const recs: StoredRecord[] = [];
    for (let round = 0, after: string | undefined; round < 10_000; round++) {
      const page = await t.list(`${PREFIX.searchIndex}${PENDING}/`, { limit: 512, ...(after !== undefined ? { after } : {}) });
      recs.push(...page);
      if (page.length < 512) break;
      after = page[page.length - 1]!.key;
    }
    for (const r of recs) {
      const seq = keyNumber(r.key);
      const p = decodePending(r.value);
      const span = spanOf(seq);
      const off = seq - span * SEARCH_SEQ_SPAN;
      const overflow = p.overflow || !(await this.#add(t, span, off, p.tags, false));
      if (overflow) t.putBytes(OVERFLOW_KEY, appended(await t.getBytes(OVERFLOW_KEY), f64(seq)));
      const entry = new Uint8Array(TABLE_ENTRY_BYTES);
      entry.set(u16(off));
      entry.set(fromHex(p.pseudo), 2);
      new DataView(entry.buffer).setFloat64(14, p.sentAt);
      await this.#listIn(t, span, entry);
      t.delete(r.key);
    }
    t.counters.searchPending = 0;
  }

  /** The chunks of a span that tags fall in, with their tags and current bytes. */
  async #chunks(t: Txn, span: number, tags: readonly { bucket: string; tag: number }[]): Promise<Map<string, { tags: Set<number>; bytes: Uint8Array | undefined }>> {
    const out = new Map<string, { tags: Set<number>; bytes: Uint8Array | undefined }>();
    for (const { bucket, tag } of tags) {
      const key = this.#key(bucket, span);
      const c = out.get(key);
      if (c !== undefined) c.tags.add(tag);
      else out.set(key, { tags: new Set([tag]), bytes: await t.getBytes(key) });
    }
    return out;
  }

  #remove(t: StateTxn, off: number, chunks: Map<string, { tags: Set<number>; bytes: Uint8Array | undefined }>): void {
    for (const [key, c] of chunks) {
      if (c.bytes === undefined) continue;
      checkRecord(c.bytes, POSTING_BYTES, MAX_CHUNK_POSTINGS);
      this.#put(t, key, filtered(c.bytes, POSTING_BYTES, (dv, o) => !((dv.getUint32(o) & (SEARCH_SEQ_SPAN - 1)) === off && c.tags.has(dv.getUint32(o) >>> OFFSET_BITS))));
    }
  }

  /** Appends one message's postings; false (nothing written) when a chunk would pass MAX_CHUNK_POSTINGS. */
  async #add(t: StateTxn, span: number, off: number, tags: readonly { bucket: string; tag: number }[], dedupe: boolean): Promise<boolean> {
    const chunks = await this.#chunks(t, span, tags);
    const writes: [string, Uint8Array | undefined, Uint8Array][] = [];
    for (const [key, c] of chunks) {
      if (dedupe && c.bytes !== undefined) eachPosting(c.bytes, (tag, o) => o === off && c.tags.delete(tag));
      if (c.tags.size === 0) continue;
      const have = c.bytes === undefined ? 0 : (c.bytes.length - 1) / POSTING_BYTES;
      if (have + c.tags.size > MAX_CHUNK_POSTINGS) return false;
      const entries = new Uint8Array(c.tags.size * POSTING_BYTES);
      const dv = new DataView(entries.buffer);
      let o = 0;
      for (const tag of c.tags) {
        dv.setUint32(o, ((tag << OFFSET_BITS) | off) >>> 0);
        o += POSTING_BYTES;
      }
      writes.push([key, c.bytes, entries]);
    }
    for (const [key, current, entries] of writes) this.#append(t, key, current, entries);
    return true;
  }

  /**
   * Appends bytes to a record in this transaction. A record appended to again and again (its
   * span's chunks, while a batch is indexed) grows in a buffer with room to spare, so each append
   * copies only the new entries: the record's value is a prefix view of the buffer, and writing
   * past the end of every view handed out changes none of them (a rolled-back transaction's
   * earlier views stay intact; a value that is not our latest view starts a new buffer).
   * `current` is the record's value as this transaction reads it now.
   */
  #append(t: StateTxn, key: string, current: Uint8Array | undefined, entries: Uint8Array): void {
    let growing = this.#growing.get(t);
    if (growing === undefined) this.#growing.set(t, (growing = new Map()));
    let g = growing.get(key);
    if (g === undefined || g.view !== current) {
      const base = current ?? Uint8Array.of(RECORD_VERSION);
      const buf = new Uint8Array(Math.max(64, (base.length + entries.length) * 2));
      buf.set(base);
      g = { buf, view: buf.subarray(0, base.length) };
      growing.set(key, g);
    }
    const len = g.view.length + entries.length;
    if (len > g.buf.length) {
      const buf = new Uint8Array(len * 2);
      buf.set(g.view);
      g.buf = buf;
    }
    g.buf.set(entries, g.view.length);
    g.view = g.buf.subarray(0, len);
    t.putBytes(key, g.view);
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
    const hits = ready ? await this.#lookup(terms, options.conversation, limit) : await this.#scanAll(terms, options.conversation);
    return hits.sort((a, b) => b.sentAt - a.sentAt || b.seq - a.seq).slice(0, limit);
  }

  async #lookup(terms: readonly string[], only: ConversationId | undefined, limit: number): Promise<HistoryMessage[]> {
    const t = this.#core.view();
    // Longest terms first: the most selective.
    const keys = [...new Set(terms.map((q) => [...q].slice(0, MAX_INDEXED_PREFIX).join('')))].sort((a, b) => b.length - a.length).slice(0, MAX_QUERY_LOOKUPS);
    const spansBytes = await t.getBytes(SPANS_KEY);
    let spans: number[] = [];
    if (spansBytes !== undefined) eachNumber(spansBytes, (n) => spans.push(n));
    let candidates: Set<number> | undefined;
    for (const term of keys) {
      const { bucket, tag } = this.#tag(term);
      const found = new Set<number>();
      // One chunk per span (a point read each); after the first term, only spans with candidates.
      for (const span of spans) {
        const b = await t.getBytes(this.#key(bucket, span));
        if (b === undefined) continue;
        const base = span * SEARCH_SEQ_SPAN;
        eachPosting(b, (x, off) => {
          if (x === tag && (candidates === undefined || candidates.has(base + off))) found.add(base + off);
        });
      }
      candidates = found;
      spans = [...new Set([...found].map(spanOf))];
      if (candidates.size === 0) break;
    }
    const all = candidates ?? new Set<number>();
    // Unindexed (overflowing) messages are candidates of every search.
    const overflow = await t.getBytes(OVERFLOW_KEY);
    if (overflow !== undefined) eachNumber(overflow, (seq) => all.add(seq));
    const onlyPseudo = only !== undefined ? this.#pseudo(only) : undefined;
    const where: { seq: number; pseudo: string; sentAt: number }[] = [];
    // Messages waiting to be merged: each record says what it holds.
    const wanted = keys.map((x) => this.#tag(x));
    for (const r of await t.list(`${PREFIX.searchIndex}${PENDING}/`)) {
      const p = decodePending(r.value);
      if (onlyPseudo !== undefined && p.pseudo !== onlyPseudo) continue;
      if (p.overflow || wanted.every((w) => p.tags.some((x) => x.tag === w.tag && x.bucket === w.bucket))) where.push({ seq: keyNumber(r.key), pseudo: p.pseudo, sentAt: p.sentAt });
    }
    // Where each merged candidate is, and when it was sent: the tables of the spans they fall in.
    for (const span of new Set([...all].map(spanOf))) {
      const b = await t.getBytes(this.#key(TABLE, span));
      if (b === undefined) continue;
      eachTableEntry(b, (off, pseudo, sentAt) => {
        const seq = span * SEARCH_SEQ_SPAN + off;
        if (all.has(seq) && (onlyPseudo === undefined || pseudo === onlyPseudo)) where.push({ seq, pseudo, sentAt });
      });
    }
    // Newest first, as results are ordered: once `limit` candidates pass the check, the rest
    // could only come after them, so they are not read.
    where.sort((a, b) => b.sentAt - a.sentAt || b.seq - a.seq);
    const convs = new Map<string, ConversationRecord | undefined>();
    const hits: HistoryMessage[] = [];
    for (const { seq, pseudo } of where) {
      if (hits.length >= limit) break;
      if (!convs.has(pseudo)) convs.set(pseudo, await t.read(conversationCodec, PREFIX.conversation + pseudo));
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
