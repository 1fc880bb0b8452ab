/**
 * One process at a time per home directory: two processes writing the same sessions would fork
 * the ratchet state and lose messages. The lock is a file created with O_EXCL holding the owner's
 * pid; a lock left behind by a dead process (kill -9) is taken over.
 */
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { ClientError } from '../errors.js';

/** How long to wait for another tacit process to release the home before giving up, ms. */
export const HOME_LOCK_WAIT_MS = 10_000;
/** Poll interval while waiting for the lock, ms. */
export const HOME_LOCK_POLL_MS = 100;
/** An empty lock file older than this was left by a crash between create and write, ms. */
export const HOME_LOCK_EMPTY_STALE_MS = 5_000;

export interface HomeLock {
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function acquireHomeLock(path: string, waitMs: number = HOME_LOCK_WAIT_MS): Promise<HomeLock> {
  const attempts = Math.max(1, Math.ceil(waitMs / HOME_LOCK_POLL_MS));
  for (let i = 0; i < attempts; i++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          await unlink(path).catch(() => undefined);
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const text = (await readFile(path, 'utf8').catch(() => '')).trim();
    const owner = Number(text);
    const ageMs = Date.now() - ((await stat(path).catch(() => undefined))?.mtimeMs ?? 0);
    // An empty lock is either being written right now or was left by a crash during creation.
    const stale = text === '' ? ageMs > HOME_LOCK_EMPTY_STALE_MS : !Number.isSafeInteger(owner) || owner <= 0 || !alive(owner);
    if (owner === process.pid) throw new ClientError('STATE_LOCKED', 'this process already holds the tacit home');
    if (stale) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    await new Promise((r) => setTimeout(r, HOME_LOCK_POLL_MS));
  }
  throw new ClientError('STATE_LOCKED', 'another tacit process is using this home directory');
}
