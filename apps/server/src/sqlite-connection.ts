/** Settings and upkeep shared by the SQLite store's connections (main thread and writer thread). */
import type Database from 'better-sqlite3';

/**
 * Connection settings shared by the main and the worker connection. `secure_delete` overwrites
 * deleted content with zeros, so what a checkpoint copies into the database file holds no trace
 * of deleted rows.
 */
export function configureConnection(db: Database.Database, synchronous: 'FULL' | 'NORMAL'): void {
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma('busy_timeout = 5000');
  db.pragma('secure_delete = ON');
}

/** Checkpoints every frame of the WAL into the database and truncates the WAL to zero bytes. */
export function checkpointWal(db: Database.Database): void {
  db.pragma('wal_checkpoint(TRUNCATE)');
}
