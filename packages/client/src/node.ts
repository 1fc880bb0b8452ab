// @tacit/client/node: the Node-only half of the SDK. A home directory holds one account: its
// records in one SQLite file sealed with a passphrase (scrypt + AES-256-GCM per record) and a lock
// file so only one process uses it at a time. Sockets are `ws`; crypto is the protocol's
// node:crypto backend. A home written by the release before record storage (`state.sealed`) is
// upgraded on first open.
import { mkdir, readdir, rmdir, unlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { nodeBackend } from '@tacit/protocol/node';
import { TacitClient, type ClientOptions, type LinkOptions, type RegisterOptions, type UnlinkResult } from './client.js';
import { ClientError } from './errors.js';
import type { FetchLike } from './http.js';
import type { BackoffPolicy } from './backoff.js';
import { acquireHomeLock, type HomeLock } from './node/home-lock.js';
import { SealedFile } from './node/sealed-file.js';
import { SqliteRecordStore } from './node/sqlite-store.js';
import { wsSocketFactory } from './node/websocket.js';
import { upgradeLegacyState } from './upgrade.js';
import { nodeAttachmentCrypto } from './node/attachment-crypto.js';
import { saveVerified } from './node/attachment-file.js';
import { nodeBlobFetch } from './node/blob-fetch.js';
import type { DownloadOptions } from './attachment/download.js';

export { SealedFile, atomicWrite, MAX_SEALED_FILE_BYTES } from './node/sealed-file.js';
export type { SealedFileOptions } from './node/sealed-file.js';
export { scryptLogNFromEnv, DEFAULT_SCRYPT_LOG_N, MIN_SCRYPT_LOG_N, MAX_SCRYPT_LOG_N } from './node/passphrase-key.js';
export { SqliteRecordStore, type SqliteStoreOptions } from './node/sqlite-store.js';
export { acquireHomeLock, HOME_LOCK_WAIT_MS, type HomeLock } from './node/home-lock.js';
export { wsSocketFactory, HANDSHAKE_TIMEOUT_MS } from './node/websocket.js';
export { nodeAttachmentCrypto } from './node/attachment-crypto.js';
export { fileSource, saveAttachment, saveVerified, MAX_NAME_ATTEMPTS } from './node/attachment-file.js';
export { nodeBlobFetch } from './node/blob-fetch.js';

/** The record store inside a home directory (with SQLite's -wal and -shm beside it). */
export const STATE_DB = 'state.db';
/** The sealed state of the release before record storage; upgraded and removed on first open. */
export const LEGACY_STATE_FILE = 'state.sealed';
/** The lock file inside a home directory. */
export const LOCK_FILE = 'lock';

export interface HomeOptions {
  home: string;
  passphrase: string;
  /** scrypt N for a new state database (defaults to TACIT_SCRYPT_N, else 2^17). */
  scryptN?: number;
  fetch?: FetchLike;
  backoff?: BackoffPolicy;
  /** How long to wait for another process to release the home, ms. */
  lockWaitMs?: number;
  /** The client's clock (tests: a message "from last week"); default Date.now. */
  now?: () => number;
}

/** A client bound to a home directory; `close` also releases the home. */
export interface HomeClient {
  client: TacitClient;
  close(): Promise<void>;
}

function clientOptions(store: SqliteRecordStore, o: HomeOptions): ClientOptions {
  return {
    store,
    backend: nodeBackend(),
    connect: wsSocketFactory,
    attachmentCrypto: nodeAttachmentCrypto(),
    blobFetch: nodeBlobFetch,
    ...(o.fetch ? { fetch: o.fetch } : {}),
    ...(o.backoff ? { backoff: o.backoff } : {}),
    ...(o.now ? { now: o.now } : {}),
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

/**
 * Runs `fn` holding the home's lock. Opening a home that does not exist creates nothing
 * (NOT_REGISTERED); a home this call created is removed again if `fn` fails and left it empty
 * (a refused registration), so neither leaves an empty directory behind.
 */
async function withLock<T>(o: HomeOptions, create: boolean, fn: (lock: HomeLock) => Promise<T>): Promise<T> {
  const existed = existsSync(o.home);
  if (!existed && !create) throw new ClientError('NOT_REGISTERED', `no account in ${o.home} yet; run register first`);
  await mkdir(o.home, { recursive: true, mode: 0o700 });
  const lock = await acquireHomeLock(join(o.home, LOCK_FILE), o.lockWaitMs);
  try {
    return await fn(lock);
  } catch (e) {
    await lock.release();
    // Only if empty: rmdir refuses a directory that still holds anything.
    if (!existed) await rmdir(o.home).catch(() => undefined);
    throw e;
  }
}

async function removeDatabase(path: string): Promise<void> {
  for (const suffix of ['', '-wal', '-shm']) await unlink(path + suffix).catch(() => undefined);
}

/**
 * Opens the home's record store, upgrading a home of the previous release in place: its sealed
 * state is converted in one commit, and the old file is removed only after that commit (a crash
 * in between upgrades again, or just removes the old file). A wrong passphrase fails before
 * anything is written.
 */
export async function openHomeStore(o: HomeOptions, create: boolean): Promise<SqliteRecordStore> {
  const dbPath = join(o.home, STATE_DB);
  const legacyPath = join(o.home, LEGACY_STATE_FILE);
  const hasLegacy = existsSync(legacyPath);
  if (!hasLegacy) return SqliteRecordStore.open(dbPath, o.passphrase, { create, ...(o.scryptN !== undefined ? { scryptN: o.scryptN } : {}) });
  // The old file proves the passphrase before anything new is written.
  const legacy = await SealedFile.open(legacyPath, o.passphrase);
  const store = await SqliteRecordStore.open(dbPath, o.passphrase, { create: true, scryptN: 2 ** legacy.file.scryptLogN });
  try {
    if ((await store.list('', { limit: 1 })).length === 0) await upgradeLegacyState(store, nodeBackend(), { state: legacy.state }, Date.now());
  } catch (e) {
    await store.close();
    throw e;
  }
  await unlink(legacyPath);
  return store;
}

/** Registers a new account and stores it in `home` (which must not hold a registered account). */
export function registerHome(o: HomeOptions, reg: RegisterOptions): Promise<HomeClient> {
  return withLock(o, true, async (lock) => {
    const dbPath = join(o.home, STATE_DB);
    const store = await openHomeStore(o, true);
    let client: TacitClient;
    try {
      client = await TacitClient.register(clientOptions(store, o), reg);
    } catch (e) {
      await store.close();
      // A refused or failed registration must not leave a half-made account behind.
      if (!(e instanceof ClientError && e.code === 'ALREADY_REGISTERED')) await removeDatabase(dbPath);
      throw e;
    }
    return bind(client, lock);
  });
}

/**
 * Links a new device to an existing account (TacitClient.link) and stores it in `home` (which must
 * not hold a registered account). `link.onCode` gets the code to show.
 */
export function linkHome(o: HomeOptions, link: LinkOptions): Promise<HomeClient> {
  return withLock(o, true, async (lock) => {
    const dbPath = join(o.home, STATE_DB);
    const store = await openHomeStore(o, true);
    let client: TacitClient;
    try {
      client = await TacitClient.link(clientOptions(store, o), link);
    } catch (e) {
      await store.close();
      if (!(e instanceof ClientError && e.code === 'ALREADY_REGISTERED')) await removeDatabase(dbPath);
      throw e;
    }
    return bind(client, lock);
  });
}

/** Opens the account stored in `home`. */
export function openHome(o: HomeOptions): Promise<HomeClient> {
  return withLock(o, false, async (lock) => {
    const store = await openHomeStore(o, false);
    let client: TacitClient;
    try {
      client = await TacitClient.open(clientOptions(store, o));
    } catch (e) {
      await store.close();
      throw e;
    }
    return bind(client, lock);
  });
}

/** What `signOutHome` did on the server. */
export type SignOutServerResult =
  | UnlinkResult
  /** The server could not be asked or refused: remove this device from another device. */
  | { kind: 'failed'; error: unknown };

export interface SignOutResult {
  username: string;
  deviceId: number;
  server: SignOutServerResult;
  /** Names left in the home (files received into it, anything not tacit's); the home was removed if none. */
  kept: string[];
}

/**
 * Signs this home out (`tacit sign-out`): holding the home's lock, opens it (WRONG_PASSPHRASE,
 * nothing changed, if the passphrase is not it), removes this device from the account on the
 * server when the account has other devices (TacitClient.unlinkThisDevice; best effort: a server
 * that cannot be reached or refuses is reported, not fatal), then deletes the state database and
 * the lock, and the home itself if nothing else is in it. Received files are never deleted.
 */
export function signOutHome(o: HomeOptions): Promise<SignOutResult> {
  return withLock(o, false, async (lock) => {
    const store = await openHomeStore(o, false);
    let client: TacitClient;
    try {
      client = await TacitClient.open(clientOptions(store, o));
    } catch (e) {
      await store.close();
      throw e;
    }
    const { username, deviceId } = client;
    let server: SignOutServerResult;
    try {
      server = await client.unlinkThisDevice();
    } catch (error) {
      server = { kind: 'failed', error };
    }
    await client.close();
    await removeDatabase(join(o.home, STATE_DB));
    await unlink(join(o.home, LEGACY_STATE_FILE)).catch(() => undefined);
    await lock.release();
    const kept = await readdir(o.home).catch(() => [] as string[]);
    if (kept.length === 0) await rmdir(o.home).catch(() => undefined);
    return { username, deviceId, server, kept };
  });
}

/**
 * Changes the passphrase that seals the state in `home` (`tacit passphrase`): holds the home's
 * lock, opens the store with `o.passphrase` (WRONG_PASSPHRASE, nothing written, if that is not
 * it) and seals every record again under `next` (SqliteRecordStore.changePassphrase).
 */
export function changeHomePassphrase(o: HomeOptions, next: string): Promise<void> {
  return withLock(o, false, async (lock) => {
    const store = await openHomeStore(o, false);
    try {
      await store.changePassphrase(next, o.scryptN !== undefined ? { scryptN: o.scryptN } : {});
    } finally {
      await store.close();
    }
    await lock.release();
  });
}

/**
 * Downloads the file of a message (sent or received) into `dir`, checked and decrypted, under the
 * sender's name made safe and never replacing a file (`name (1)`, …); notes the path in the
 * message and resolves to it. On any failure (ATTACHMENT_CORRUPT, NOT_FOUND, CANCELLED, …) nothing
 * is left in `dir`.
 */
export async function saveMessageAttachment(client: TacitClient, conversation: string, seq: number, dir: string, options: DownloadOptions = {}): Promise<string> {
  const info = await client.attachment(conversation, seq);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = await saveVerified(client.downloadAttachment(conversation, seq, options), dir, info.name);
  await client.markAttachmentSaved(conversation, seq, path);
  return path;
}
