/**
 * Online backup of the SQLite store, safe while the server runs (`main.ts backup <file>`).
 *
 * SQLite's online backup API (better-sqlite3's `backup()`) copies the database page by page under
 * a read transaction, so it sees one consistent commit; in WAL mode the server keeps writing
 * meanwhile. The API restarts the copy when another connection commits between two steps, so
 * after the first step we ask for every remaining page at once: at most one restart, never a
 * loop under a steady stream of sends. The copy goes to a temporary file (mode 0600: it holds
 * what the database holds), is checked with `PRAGMA integrity_check`, fsynced and only then
 * linked under its name, so a crash never leaves a half-written file under the backup's name.
 */
import Database from 'better-sqlite3';
import { closeSync, existsSync, fsyncSync, linkSync, openSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface BackupResult {
  readonly bytes: number;
  readonly accounts: number;
  readonly devices: number;
  readonly queuedMessages: number;
}

export class BackupError extends Error {
  override readonly name = 'BackupError';
}

export async function backupSqlite(source: string, destination: string): Promise<BackupResult> {
  if (!existsSync(source)) throw new BackupError(`no database at ${source}`);
  if (existsSync(destination)) throw new BackupError(`${destination} exists; choose a new file`);
  const dir = dirname(destination);
  if (!existsSync(dir)) throw new BackupError(`directory ${dir} does not exist`);
  const temp = join(dir, `.${basename(destination)}.partial-${process.pid}`);
  // Created here with 0600, so the copy is never readable by others, even for a moment.
  closeSync(openSync(temp, 'wx', 0o600));
  const db = new Database(source, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    await db.backup(temp, { progress: ({ totalPages }) => Math.max(totalPages, 100) });
  } catch (e) {
    rmSync(temp, { force: true });
    throw e;
  } finally {
    db.close();
  }
  let result: BackupResult;
  const copy = new Database(temp, { fileMustExist: true });
  try {
    const check = copy.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new BackupError(`the copy failed its integrity check: ${String(check)}`);
    const count = (table: string): number => (copy.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    result = { bytes: 0, accounts: count('accounts'), devices: count('devices'), queuedMessages: count('messages') };
    // A single file, independent of the server's WAL.
    copy.pragma('journal_mode = DELETE');
  } catch (e) {
    copy.close();
    rmSync(temp, { force: true });
    throw e;
  }
  copy.close();
  const fd = openSync(temp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // link + unlink rather than rename: never replaces a file that appeared under the name meanwhile.
  try {
    linkSync(temp, destination);
  } finally {
    rmSync(temp, { force: true });
  }
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
  return { ...result, bytes: statSync(destination).size };
}
