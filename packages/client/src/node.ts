// @tacit/client/node: the Node-only half of the SDK. A home directory holds one account: its
// state sealed with a passphrase (scrypt + AES-256-GCM) and a lock file so only one process
// uses it at a time. Sockets are `ws`; crypto is the protocol's node:crypto backend.
import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeBackend } from '@tacit/protocol/node';
import { TacitClient, type ClientOptions, type RegisterOptions } from './client.js';
import { ClientError } from './errors.js';
import type { FetchLike } from './http.js';
import type { BackoffPolicy } from './backoff.js';
import { acquireHomeLock, type HomeLock } from './node/home-lock.js';
import { SealedFile } from './node/sealed-file.js';
import { wsSocketFactory } from './node/websocket.js';

export { SealedFile, atomicWrite, MAX_SEALED_FILE_BYTES } from './node/sealed-file.js';
export { scryptLogNFromEnv, DEFAULT_SCRYPT_LOG_N, MIN_SCRYPT_LOG_N, MAX_SCRYPT_LOG_N } from './node/passphrase-key.js';
export { SqliteRecordStore, type SqliteStoreOptions } from './node/sqlite-store.js';
export type { SealedFileOptions } from './node/sealed-file.js';
export { acquireHomeLock, HOME_LOCK_WAIT_MS, type HomeLock } from './node/home-lock.js';
export { wsSocketFactory, HANDSHAKE_TIMEOUT_MS } from './node/websocket.js';

/** The sealed state inside a home directory. */
export const STATE_FILE = 'state.sealed';
/** The lock file inside a home directory. */
export const LOCK_FILE = 'lock';

export interface HomeOptions {
  home: string;
  passphrase: string;
  /** scrypt N for a new state file (defaults to TACIT_SCRYPT_N, else 2^17). */
  scryptN?: number;
  fetch?: FetchLike;
  backoff?: BackoffPolicy;
  /** How long to wait for another process to release the home, ms. */
  lockWaitMs?: number;
}

/** A client bound to a home directory; `close` also releases the home. */
export interface HomeClient {
  client: TacitClient;
  close(): Promise<void>;
}

function clientOptions(vault: SealedFile, o: HomeOptions): ClientOptions {
  return {
    vault,
    backend: nodeBackend(),
    connect: wsSocketFactory,
    ...(o.fetch ? { fetch: o.fetch } : {}),
    ...(o.backoff ? { backoff: o.backoff } : {}),
  };
}

function bind(client: TacitClient, lock: HomeLock): HomeClient {
  return {
    client,
    async close() {
      try {
        await client.close();
      } finally {
        await lock.release();
      }
    },
  };
}

async function withLock<T>(o: HomeOptions, fn: (lock: HomeLock) => Promise<T>): Promise<T> {
  await mkdir(o.home, { recursive: true, mode: 0o700 });
  const lock = await acquireHomeLock(join(o.home, LOCK_FILE), o.lockWaitMs);
  try {
    return await fn(lock);
  } catch (e) {
    await lock.release();
    throw e;
  }
}

/** Registers a new account and stores it in `home` (which must not hold a registered account). */
export function registerHome(o: HomeOptions, reg: RegisterOptions): Promise<HomeClient> {
  return withLock(o, async (lock) => {
    const path = join(o.home, STATE_FILE);
    let vault: SealedFile;
    try {
      const opened = await SealedFile.open(path, o.passphrase);
      vault = opened.file;
    } catch (e) {
      if (!(e instanceof ClientError && e.code === 'NOT_REGISTERED')) throw e;
      vault = await SealedFile.create(path, o.passphrase, o.scryptN !== undefined ? { scryptN: o.scryptN } : {});
    }
    let client: TacitClient;
    try {
      client = await TacitClient.register(clientOptions(vault, o), reg);
    } catch (e) {
      // A refused or failed registration must not leave a half-made account behind.
      if (!(e instanceof ClientError && e.code === 'ALREADY_REGISTERED')) await unlink(path).catch(() => undefined);
      throw e;
    }
    return bind(client, lock);
  });
}

/** Opens the account stored in `home`. */
export function openHome(o: HomeOptions): Promise<HomeClient> {
  return withLock(o, async (lock) => {
    const { file } = await SealedFile.open(join(o.home, STATE_FILE), o.passphrase);
    const client = await TacitClient.open(clientOptions(file, o));
    return bind(client, lock);
  });
}
