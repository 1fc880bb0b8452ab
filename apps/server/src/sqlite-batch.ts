/**
 * The relay's hot path on SQLite: one transaction per batch of sends and acks. Used inline by
 * SqliteStore, or on its own connection in a worker thread (sqlite-worker.ts) so that the commit
 * and its fsync never block the event loop that serves the sockets.
 */
import type Database from 'better-sqlite3';
import { addressKey, type Address, type EnqueueResult, type NewMessage } from './store.js';

/** Past this many entries the queue-length cache is cleared rather than grown. */
const CACHE_MAX_ENTRIES = 100_000;

type Row = Record<string, unknown>;

export class MessageBatchWriter {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #delete: Database.Statement;
  readonly #registrationId: Database.Statement;
  readonly #count: Database.Statement;
  /** addr → queue length, for MAILBOX_FULL without a COUNT per send. */
  readonly #queueLen = new Map<string, number>();

  constructor(db: Database.Database) {
    this.#db = db;
    this.#insert = db.prepare('INSERT INTO messages (recipient, sender, sender_device, kind, body, ts, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.#delete = db.prepare('DELETE FROM messages WHERE id = ? AND recipient = ?');
    // Checked per send, not cached: a device removed or re-registered on another connection must
    // not get mail meant for its previous install.
    this.#registrationId = db.prepare('SELECT registration_id FROM devices WHERE addr = ?').pluck();
    this.#count = db.prepare('SELECT count(*) FROM messages WHERE recipient = ?').pluck();
  }

  /** Forget cached queue lengths (after expiry or device removal on another connection). */
  invalidate(): void {
    this.#queueLen.clear();
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

  write(messages: NewMessage[], acks: { to: Address; id: number }[], maxQueue: number): EnqueueResult[] {
    const lenDelta = new Map<string, number>();
    const tx = this.#db.transaction((): EnqueueResult[] => {
      const results: EnqueueResult[] = [];
      for (const a of acks) {
        const key = addressKey(a.to);
        if (this.#delete.run(a.id, key).changes === 1) lenDelta.set(key, (lenDelta.get(key) ?? 0) - 1);
      }
      // addr → current registration id, or null when there is no such device.
      const registrationIds = new Map<string, number | null>();
      for (const m of messages) {
        const key = addressKey(m.to);
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
        results.push({ ok: true, id: Number(r.lastInsertRowid) });
      }
      return results;
    });
    let results: EnqueueResult[];
    try {
      results = tx.immediate();
    } catch (e) {
      // Rolled back: cached lengths may be off in either direction.
      this.#queueLen.clear();
      throw e;
    }
    for (const [key, d] of lenDelta) {
      const n = this.#queueLen.get(key);
      if (n !== undefined) this.#queueLen.set(key, Math.max(0, n + d));
    }
    return results;
  }
}

export type { Row };
