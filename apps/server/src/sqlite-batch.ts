/**
 * The relay's hot path on SQLite: one transaction per batch of sends and acks. Used inline by
 * SqliteStore, or on its own connection in a worker thread (sqlite-worker.ts) so that the commit
 * and its fsync never block the event loop that serves the sockets.
 */
import type Database from 'better-sqlite3';
import { checkDeviceLists, fanoutTargets, resentFanout, type CurrentDevices, type FanoutResult, type NewFanout, type StoredCopy } from './fanout.js';
import { RESEND_MEMORY_PER_DEVICE, RESEND_WINDOW_MS } from './resend.js';
import { addressKey, type Address, type EnqueueResult, type NewMessage } from './store.js';

/** Past this many entries the queue-length cache is cleared rather than grown. */
const CACHE_MAX_ENTRIES = 100_000;

/**
 * Resend memory rows (resend.ts) held in memory, over all sending devices. Looking a send's
 * digest up in memory is what lets `sent_memory` do without an index on the digest: a digest is
 * random, so that index took one random page per send, and writing those pages was most of what a
 * stored message cost (about 45 of 58 µs of the writer's CPU in batches of 600). A device's rows
 * are read in one range scan the first time it sends after the cache dropped it; at about 150
 * bytes a row this bounds the memory to about 15 MiB. Past it, the least recently sending devices
 * are dropped (their rows stay in the table).
 */
export const RESEND_CACHE_MAX_ROWS = 100_000;

/**
 * Another connection (the main thread's, or the invite command's) may hold the write lock past
 * busy_timeout when the disk is slow. Nothing was written then, so the batch is simply retried
 * rather than refused.
 */
export const BUSY_RETRIES = 5;

/**
 * Largest batch whose ids are announced before its commit (`onAssigned`); a larger one (rare: one
 * event-loop turn of sends) is delivered after its commit. Bounds the ids a crash can leave
 * announced but uncommitted.
 */
export const MAX_ANNOUNCED_BATCH = 4096;

/**
 * Opening a database file moves the message-id counter on by this much. Ids announced before a
 * commit that a crash (kill -9, power loss) then undid are at most one batch, retried at most
 * BUSY_RETRIES times; skipping past them means no client that saw such an id is ever given it
 * again for another message (it would drop that message as already seen). Ids have 15 digits of
 * room, so this allows 10^10 restarts.
 */
export const ID_GAP_ON_OPEN = 100_000;
if (MAX_ANNOUNCED_BATCH * (BUSY_RETRIES + 1) > ID_GAP_ON_OPEN) throw new Error('ID_GAP_ON_OPEN must cover every announced id');

type Row = Record<string, unknown>;
const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
/** A digest as a map key (one byte per character). */
const digestKey = (d: Uint8Array): string => buf(d).toString('latin1');

/** One sending device's resend memory, as `sent_memory` holds it (a ring of slots). */
interface SenderMemory {
  /** The ring position the next send takes (`sent_memory_heads.next`; slot = next % ring). */
  next: number;
  /** The transaction that last used it (see `#tx`). */
  tx: number;
  /** digest → its row. */
  byDigest: Map<string, { slot: number; messageId: number; ts: number }>;
  /** slot → the digest stored there, so overwriting a slot forgets its digest. */
  bySlot: Map<number, string>;
}

export class MessageBatchWriter {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #delete: Database.Statement;
  readonly #registrationId: Database.Statement;
  readonly #count: Database.Statement;
  readonly #raiseSequence: Database.Statement;
  readonly #startSequence: Database.Statement;
  readonly #accountDevices: Database.Statement;
  readonly #loadSent: Database.Statement;
  readonly #loadHead: Database.Statement;
  readonly #saveHead: Database.Statement;
  readonly #rememberSent: Database.Statement;
  /** Sending device → its resend memory, least recently used first (see RESEND_CACHE_MAX_ROWS). */
  readonly #memory = new Map<string, SenderMemory>();
  #memoryRows = 0;
  /**
   * Devices whose ring the running transaction wrote. The cache takes a transaction's rows as it
   * writes them; should it roll back, the whole cache is dropped (`#commit`).
   */
  readonly #written = new Map<string, SenderMemory>();
  /** Counts transactions, so a device's place in the cache moves once per transaction. */
  #tx = 0;
  /** addr → queue length, for MAILBOX_FULL without a COUNT per send. */
  readonly #queueLen = new Map<string, number>();
  /**
   * The highest message id announced before its commit (see `write`'s `onAssigned`). After a
   * failed commit SQLite would hand those ids out again (the AUTOINCREMENT counter rolls back
   * too), so the next write first raises the counter past them: a client that saw an id never
   * sees it again for another message.
   */
  #announced = 0;

  readonly #maxCachedRows: number;

  /** `maxCachedRows`: see RESEND_CACHE_MAX_ROWS (tests lower it). */
  constructor(db: Database.Database, maxCachedRows = RESEND_CACHE_MAX_ROWS) {
    this.#db = db;
    this.#maxCachedRows = maxCachedRows;
    this.#insert = db.prepare('INSERT INTO messages (recipient, sender, sender_device, kind, body, ts, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.#delete = db.prepare('DELETE FROM messages WHERE id = ? AND recipient = ?');
    // Checked per send, not cached: a device removed or re-registered on another connection must
    // not get mail meant for its previous install.
    this.#registrationId = db.prepare('SELECT registration_id FROM devices WHERE addr = ?').pluck();
    this.#count = db.prepare('SELECT count(*) FROM messages WHERE recipient = ?').pluck();
    this.#raiseSequence = db.prepare("UPDATE sqlite_sequence SET seq = ? WHERE name = 'messages' AND seq < ?");
    this.#startSequence = db.prepare("INSERT INTO sqlite_sequence (name, seq) SELECT 'messages', ? WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages')");
    this.#loadSent = db.prepare('SELECT slot, digest, message_id, ts FROM sent_memory WHERE sender = ?');
    this.#loadHead = db.prepare('SELECT next FROM sent_memory_heads WHERE sender = ?').pluck();
    this.#saveHead = db.prepare('INSERT INTO sent_memory_heads (sender, next) VALUES (?, ?) ON CONFLICT (sender) DO UPDATE SET next = excluded.next');
    this.#rememberSent = db.prepare('INSERT OR REPLACE INTO sent_memory (sender, slot, digest, message_id, ts) VALUES (?, ?, ?, ?, ?)');
    this.#accountDevices = db.prepare(
      'SELECT d.device_id AS id, d.registration_id AS reg FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = ?',
    );
  }

  /** Ids up to `id` were announced elsewhere (by another connection's writer that is gone). */
  raiseFloor(id: number): void {
    this.#announced = Math.max(this.#announced, id);
  }

  /** Moves the id counter on by ID_GAP_ON_OPEN (see there); run once when a file is opened. */
  skipIdsOnOpen(): void {
    this.#db.transaction(() => {
      const seq = this.#db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").pluck().get() as number | undefined;
      if (seq === undefined) this.#startSequence.run(ID_GAP_ON_OPEN);
      else this.#db.prepare("UPDATE sqlite_sequence SET seq = ? WHERE name = 'messages'").run(seq + ID_GAP_ON_OPEN);
    }).immediate();
  }

  /** Inside a write's transaction: the id counter past every announced id. */
  #skipAnnounced(): void {
    // No-op unless ids were announced and then rolled back (or the row is not there yet).
    if (this.#announced > 0 && this.#raiseSequence.run(this.#announced, this.#announced).changes === 0) this.#startSequence.run(this.#announced);
  }

  /** Forget cached queue lengths (after expiry or device removal on another connection). */
  invalidate(): void {
    this.#queueLen.clear();
    this.#memory.clear();
    this.#memoryRows = 0;
  }

  /** A sending device's resend memory, read from the table unless cached; marks it recently used. */
  #senderMemory(sender: string): SenderMemory {
    let m = this.#memory.get(sender);
    if (m !== undefined) {
      if (m.tx !== this.#tx) {
        m.tx = this.#tx;
        this.#memory.delete(sender);
        this.#memory.set(sender, m);
      }
      return m;
    }
    // Dropped from the cache during this transaction, after writing to its ring: the table now
    // holds rows of this transaction but not its ring position yet, so keep the cached one.
    m = this.#written.get(sender);
    if (m !== undefined) {
      this.#memoryRows += m.bySlot.size;
      this.#memory.set(sender, m);
      return m;
    }
    m = { next: Number((this.#loadHead.get(sender) as number | bigint | undefined) ?? 0), tx: this.#tx, byDigest: new Map(), bySlot: new Map() };
    for (const r of this.#loadSent.iterate(sender) as IterableIterator<Row>) {
      const key = digestKey(r['digest'] as Buffer);
      const slot = Number(r['slot']);
      m.byDigest.set(key, { slot, messageId: Number(r['message_id']), ts: Number(r['ts']) });
      m.bySlot.set(slot, key);
    }
    for (const [k, old] of this.#memory) {
      if (this.#memoryRows + m.bySlot.size <= this.#maxCachedRows) break;
      this.#memory.delete(k);
      this.#memoryRows -= old.bySlot.size;
    }
    this.#memoryRows += m.bySlot.size;
    this.#memory.set(sender, m);
    return m;
  }

  /**
   * The stored send (or fan-out) this digest names, if the sender stored it within the window
   * (in this transaction too: the same frame twice in one batch).
   */
  #findSent(sender: string, key: string, after: number): { messageId: number; ts: number } | undefined {
    const row = this.#senderMemory(sender).byDigest.get(key);
    return row !== undefined && row.ts > after ? row : undefined;
  }

  /** Remembers a stored send in the next slot of its sender's ring (the oldest is overwritten). */
  #remember(sender: string, digest: Uint8Array, key: string, messageId: number, ts: number): void {
    const m = this.#senderMemory(sender);
    const slot = m.next % RESEND_MEMORY_PER_DEVICE;
    this.#rememberSent.run(sender, slot, buf(digest), messageId, ts);
    m.next++;
    this.#written.set(sender, m);
    const old = m.bySlot.get(slot);
    if (old !== undefined) m.byDigest.delete(old);
    else this.#memoryRows++;
    m.bySlot.set(slot, key);
    m.byDigest.set(key, { slot, messageId, ts });
  }

  /** Inside a transaction, before its commit: the ring position of each device it wrote, once each. */
  #saveHeads(): void {
    for (const [sender, m] of this.#written) this.#saveHead.run(sender, m.next);
    this.#written.clear();
  }

  #queueLength(key: string): number {
    let n = this.#queueLen.get(key);
    if (n === undefined) {
      n = this.#count.get(key) as number;
      if (this.#queueLen.size >= CACHE_MAX_ENTRIES) this.#queueLen.clear();
      this.#queueLen.set(key, n);
    }
    return n;
  }

  /** `onAssigned` runs inside the transaction, after the inserts and before the commit. */
  write(messages: NewMessage[], acks: { to: Address; id: number }[], maxQueue: number, onAssigned?: (results: EnqueueResult[]) => void): EnqueueResult[] {
    const lenDelta = new Map<string, number>();
    const tx = this.#db.transaction((): EnqueueResult[] => {
      const results: EnqueueResult[] = [];
      if (messages.length > 0) this.#skipAnnounced();
      for (const a of acks) {
        const key = addressKey(a.to);
        if (this.#delete.run(a.id, key).changes === 1) lenDelta.set(key, (lenDelta.get(key) ?? 0) - 1);
      }
      // addr → current registration id, or null when there is no such device.
      const registrationIds = new Map<string, number | null>();
      for (const m of messages) {
        const key = addressKey(m.to);
        const sender = m.digest === undefined ? '' : addressKey(m.from);
        const dkey = m.digest === undefined ? '' : digestKey(m.digest);
        if (m.digest !== undefined) {
          // A resend of a stored message: answered with that copy (resend.ts), before any other
          // check, since the copy is stored whatever the device or queue is like now.
          const seen = this.#findSent(sender, dkey, m.timestamp - RESEND_WINDOW_MS);
          if (seen !== undefined) {
            results.push({ ok: true, id: seen.messageId, resent: seen.ts });
            continue;
          }
        }
        let reg = registrationIds.get(key);
        if (reg === undefined) registrationIds.set(key, (reg = (this.#registrationId.get(key) as number | undefined) ?? null));
        if (reg === null) {
          results.push({ ok: false, code: 'NOT_FOUND' });
          continue;
        }
        if (m.expectedRegistrationId !== undefined && m.expectedRegistrationId !== reg) {
          results.push({ ok: false, code: 'STALE_DEVICE' });
          continue;
        }
        if (this.#queueLength(key) + (lenDelta.get(key) ?? 0) >= maxQueue) {
          results.push({ ok: false, code: 'MAILBOX_FULL' });
          continue;
        }
        const b = m.body;
        const r = this.#insert.run(key, m.from.username, m.from.deviceId, m.kind, Buffer.from(b.buffer, b.byteOffset, b.byteLength), m.timestamp, m.expiresAt);
        lenDelta.set(key, (lenDelta.get(key) ?? 0) + 1);
        const id = Number(r.lastInsertRowid);
        if (m.digest !== undefined) this.#remember(sender, m.digest, dkey, id, m.timestamp);
        results.push({ ok: true, id });
      }
      this.#saveHeads();
      if (onAssigned !== undefined && messages.length > 0 && messages.length <= MAX_ANNOUNCED_BATCH) {
        for (const r of results) if (r.ok && r.resent === undefined && r.id > this.#announced) this.#announced = r.id;
        onAssigned(results);
      }
      return results;
    });
    return this.#commit(tx, lenDelta);
  }

  /** One multi-recipient send in one transaction: the device-list check, then every insert (fanout.ts). */
  writeFanout(f: NewFanout, maxQueue: number): FanoutResult {
    const lenDelta = new Map<string, number>();
    const tx = this.#db.transaction((): FanoutResult => {
      const sender = addressKey(f.from);
      if (f.digest !== undefined) {
        // A resend of a stored fan-out: answered as it was (resend.ts), before any other check.
        const seen = this.#findSent(sender, digestKey(f.digest), f.timestamp - RESEND_WINDOW_MS);
        if (seen !== undefined) return resentFanout(f, seen.ts, seen.messageId);
      }
      const current = new Map<string, CurrentDevices | undefined>();
      for (const r of f.recipients) {
        const rows = this.#accountDevices.all(r.username) as { id: number; reg: number }[];
        // An account always has a device; none means no such account.
        current.set(r.username, rows.length === 0 ? undefined : new Map(rows.map((d) => [d.id, d.reg])));
      }
      const refused = checkDeviceLists(f, (u) => current.get(u));
      if (refused !== null) return { ok: false, ...refused };
      this.#skipAnnounced();
      const stored: (StoredCopy | null)[][] = f.recipients.map((r) => r.devices.map(() => null));
      const mailboxFull: Address[] = [];
      let copies = 0;
      for (const { i, j, to, device } of fanoutTargets(f)) {
        const key = addressKey(to);
        if (this.#queueLength(key) + (lenDelta.get(key) ?? 0) >= maxQueue) {
          mailboxFull.push(to);
          continue;
        }
        const b = device.body;
        const r = this.#insert.run(key, f.from.username, f.from.deviceId, device.kind, Buffer.from(b.buffer, b.byteOffset, b.byteLength), f.timestamp, f.expiresAt);
        lenDelta.set(key, (lenDelta.get(key) ?? 0) + 1);
        stored[i]![j] = { id: Number(r.lastInsertRowid) };
        copies++;
      }
      if (f.digest !== undefined && copies > 0) {
        this.#remember(sender, f.digest, digestKey(f.digest), copies, f.timestamp);
        this.#saveHeads();
      }
      return { ok: true, stored, mailboxFull };
    });
    return this.#commit(tx, lenDelta);
  }

  /** Runs `tx` (BEGIN IMMEDIATE), then applies its queue-length changes to the cache. */
  #commit<T>(tx: Database.Transaction<() => T>, lenDelta: Map<string, number>): T {
    let result: T;
    this.#tx++;
    try {
      result = tx.immediate();
    } catch (e) {
      // Rolled back: cached lengths may be off in either direction, and the resend memory holds
      // rows that are gone.
      this.invalidate();
      this.#written.clear();
      throw e;
    }
    for (const [key, d] of lenDelta) {
      const n = this.#queueLen.get(key);
      if (n !== undefined) this.#queueLen.set(key, Math.max(0, n + d));
    }
    return result;
  }
}

export type { Row };
