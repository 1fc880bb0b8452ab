/**
 * A file sealed with a passphrase: scrypt(passphrase, salt) → AES-256-GCM. It held the whole client
 * state before record storage (`state.sealed`); it is read now to upgrade such a home.
 *
 * Layout (all of the header is authenticated as GCM associated data):
 *   magic "TACITSF1" (8) | log2 N (1) | r (1) | p (1) | salt (16) | verifier (16) | nonce (12) | ciphertext+tag
 * scrypt yields 64 bytes: the first 32 are the AES key, SHA-256 of the last 32 (truncated to 16)
 * is the verifier. The verifier tells a wrong passphrase (verifier differs) apart from a damaged or
 * modified file (verifier matches, tag fails); it gives an attacker nothing the tag does not.
 *
 * Writes are atomic: write a temporary file in the same directory, fsync it, rename it over the
 * old file, fsync the directory. A crash leaves either the old or the new file, never a mix.
 */
import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ClientError } from '../errors.js';
import { DEFAULT_SCRYPT_LOG_N, MAX_SCRYPT_LOG_N, MIN_SCRYPT_LOG_N, SALT_BYTES, SCRYPT_P, SCRYPT_R, VERIFIER_BYTES, deriveKeys, scryptLogNFromEnv } from './passphrase-key.js';

const MAGIC = new TextEncoder().encode('TACITSF1');
/**
 * Largest sealed file we read, 512 MiB. This format is read only to upgrade it, and the release
 * that wrote it had no bound after encoding: 5,000 stored messages of up to 16 Ki characters,
 * each control character escaped to six bytes in JSON, come to about 480 MiB. Reading that much
 * once rescues an account that release could no longer open (it stopped at 64 MiB).
 */
export const MAX_SEALED_FILE_BYTES = 512 * 1024 * 1024;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = MAGIC.length + 3 + SALT_BYTES + VERIFIER_BYTES + NONCE_BYTES;

export interface SealedFileOptions {
  /** scrypt N as a power of two; defaults to TACIT_SCRYPT_N from the environment, else 2^17. */
  readonly scryptN?: number;
  /** Test hook: runs after the temporary file is synced and before it is renamed into place. */
  readonly beforeRename?: (tempPath: string) => Promise<void> | void;
}

export class SealedFile {
  readonly path: string;
  #key: Buffer;
  #salt: Uint8Array;
  #verifier: Buffer;
  #logN: number;
  #beforeRename: SealedFileOptions['beforeRename'];

  private constructor(path: string, key: Buffer, salt: Uint8Array, verifier: Buffer, logN: number, beforeRename: SealedFileOptions['beforeRename']) {
    this.path = path;
    this.#key = key;
    this.#salt = salt;
    this.#verifier = verifier;
    this.#logN = logN;
    this.#beforeRename = beforeRename;
  }

  /** Opens an existing sealed file; WRONG_PASSPHRASE or STATE_CORRUPT if it cannot be. */
  static async open(path: string, passphrase: string, options: SealedFileOptions = {}): Promise<{ file: SealedFile; state: Uint8Array }> {
    const raw = await readBounded(path);
    if (raw === undefined) throw new ClientError('NOT_REGISTERED', `no state file at ${path}`);
    const header = parseHeader(raw);
    const { key, verifier } = await deriveKeys(passphrase, header.salt, header.logN);
    if (!timingSafeEqual(verifier, header.verifier)) throw new ClientError('WRONG_PASSPHRASE', 'wrong passphrase for the local state');
    const file = new SealedFile(path, key, header.salt, verifier, header.logN, options.beforeRename);
    return { file, state: file.#unseal(raw) };
  }

  /** Creates a new sealed file key (fresh salt); nothing is written until `write`. */
  static async create(path: string, passphrase: string, options: SealedFileOptions = {}): Promise<SealedFile> {
    const logN = scryptLogNFromEnv(options.scryptN !== undefined ? String(options.scryptN) : process.env['TACIT_SCRYPT_N']) ?? DEFAULT_SCRYPT_LOG_N;
    const salt = new Uint8Array(randomBytes(SALT_BYTES));
    const { key, verifier } = await deriveKeys(passphrase, salt, logN);
    return new SealedFile(path, key, salt, verifier, logN, options.beforeRename);
  }

  async read(): Promise<Uint8Array | undefined> {
    const raw = await readBounded(this.path);
    if (raw === undefined) return undefined;
    const header = parseHeader(raw);
    if (!timingSafeEqual(this.#verifier, header.verifier)) throw new ClientError('WRONG_PASSPHRASE', 'the state file was re-keyed by another passphrase');
    return this.#unseal(raw);
  }

  async write(state: Uint8Array): Promise<void> {
    const nonce = randomBytes(NONCE_BYTES);
    const header = new Uint8Array(HEADER_BYTES);
    let o = 0;
    header.set(MAGIC, o); o += MAGIC.length;
    header[o++] = this.#logN;
    header[o++] = SCRYPT_R;
    header[o++] = SCRYPT_P;
    header.set(this.#salt, o); o += SALT_BYTES;
    header.set(this.#verifier, o); o += VERIFIER_BYTES;
    header.set(nonce, o);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce);
    cipher.setAAD(header);
    const body = Buffer.concat([cipher.update(state), cipher.final(), cipher.getAuthTag()]);
    await atomicWrite(this.path, [header, body], this.#beforeRename);
  }

  #unseal(raw: Uint8Array): Uint8Array {
    const header = raw.subarray(0, HEADER_BYTES);
    const nonce = header.subarray(HEADER_BYTES - NONCE_BYTES);
    const body = raw.subarray(HEADER_BYTES, raw.length - TAG_BYTES);
    const tag = raw.subarray(raw.length - TAG_BYTES);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, nonce);
      decipher.setAAD(header);
      decipher.setAuthTag(tag);
      return new Uint8Array(Buffer.concat([decipher.update(body), decipher.final()]));
    } catch {
      throw new ClientError('STATE_CORRUPT', 'the local state file is damaged or was modified');
    }
  }

  /** The scrypt cost the file was made with, as a power of two. */
  get scryptLogN(): number {
    return this.#logN;
  }

  /** Never print the key. */
  toJSON(): never {
    throw new ClientError('INVALID_ARGUMENT', 'SealedFile is not serializable');
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `SealedFile { path: ${JSON.stringify(this.path)}, scryptLogN: ${this.#logN} }`;
  }
}

interface Header {
  logN: number;
  salt: Uint8Array;
  verifier: Buffer;
}

function parseHeader(raw: Uint8Array): Header {
  if (raw.length < HEADER_BYTES + TAG_BYTES) throw new ClientError('STATE_CORRUPT', 'the local state file is truncated');
  for (let i = 0; i < MAGIC.length; i++) {
    if (raw[i] !== MAGIC[i]) throw new ClientError('STATE_CORRUPT', 'the local state file is not a tacit state file');
  }
  let o = MAGIC.length;
  const logN = raw[o++]!;
  const r = raw[o++]!;
  const p = raw[o++]!;
  if (logN < MIN_SCRYPT_LOG_N || logN > MAX_SCRYPT_LOG_N || r !== SCRYPT_R || p !== SCRYPT_P) {
    throw new ClientError('STATE_CORRUPT', 'the local state file declares unsupported key-derivation parameters');
  }
  const salt = raw.slice(o, o + SALT_BYTES); o += SALT_BYTES;
  const verifier = Buffer.from(raw.subarray(o, o + VERIFIER_BYTES));
  return { logN, salt, verifier };
}

async function readBounded(path: string): Promise<Uint8Array | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const { size } = await fh.stat();
    if (size > MAX_SEALED_FILE_BYTES) throw new ClientError('STATE_CORRUPT', `the local state file is too large (${size} bytes)`);
    return new Uint8Array(await readFile(fh));
  } finally {
    await fh.close();
  }
}

/** Write temp → fsync → rename → fsync directory. The temp file is removed if anything fails. */
export async function atomicWrite(path: string, chunks: Uint8Array[], beforeRename?: (tempPath: string) => Promise<void> | void): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(temp, 'wx', 0o600);
  let renamed = false;
  try {
    try {
      for (const c of chunks) await fh.write(c);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (beforeRename) await beforeRename(temp);
    await rename(temp, path);
    renamed = true;
  } finally {
    if (!renamed) await unlink(temp).catch(() => undefined);
  }
  // Make the rename itself durable. Some platforms refuse to open a directory; that is not fatal.
  const dh = await open(dir, 'r').catch(() => undefined);
  if (dh) {
    await dh.sync().catch(() => undefined);
    await dh.close();
  }
}
