// Multi-recipient sends through a real server on SQLite (in memory, and a file written by the
// worker thread). The same suite runs on PostgreSQL + Redis in postgres.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { SqliteStore } from '../src/index.js';
import { fanoutSuite } from './fanout-suite.js';

fanoutSuite('sqlite (memory)', async () => new SqliteStore({ path: ':memory:' }));

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
fanoutSuite('sqlite (file, worker)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tacit-fanout-'));
  dirs.push(dir);
  return new SqliteStore({ path: join(dir, 'tacit.db'), worker: true });
});
