import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/index.js';
import { storeConformance } from './store-conformance.js';

storeConformance('sqlite (memory)', async () => new SqliteStore({ path: ':memory:' }));

const dirs: string[] = [];
storeConformance('sqlite (file)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  return new SqliteStore({ path: join(dir, 'sub', 'tacit.db') });
});

storeConformance('sqlite (file, worker)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  return new SqliteStore({ path: join(dir, 'tacit.db'), worker: true });
});

test('sqlite: WAL with synchronous=FULL (acknowledged messages survive power loss)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-sqlite-'));
  dirs.push(dir);
  const path = join(dir, 'tacit.db');
  const s = new SqliteStore({ path });
  assert.deepEqual(s.durability(), { journalMode: 'wal', synchronous: 'FULL' });
  await s.close();
  // WAL is persistent in the file.
  const db = new Database(path);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  db.close();
});

test('sqlite: cleanup', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
