/**
 * The key that seals local state, derived from the user's passphrase: scrypt(passphrase, salt)
 * gives 64 bytes; the first 32 are the AES-256-GCM key, SHA-256 of the last 32 (truncated to 16)
 * is a verifier stored beside the salt. The verifier tells a wrong passphrase apart from damaged
 * data (verifier matches, authentication fails) and gives an attacker nothing the GCM tags do not.
 * Used by the sealed legacy state file and by the SQLite record store.
 */
import { createHash, scrypt } from 'node:crypto';
import { ClientError } from '../errors.js';

/** Bytes of the passphrase verifier kept beside the salt. */
export const VERIFIER_BYTES = 16;
/** Bytes of the scrypt salt. */
export const SALT_BYTES = 16;

/**
 * Default scrypt cost: N = 2^17, r = 8, p = 1 (128 MiB, roughly half a second on a laptop), the
 * interactive-login setting recommended for file encryption. Paid once per process start.
 */
export const DEFAULT_SCRYPT_LOG_N = 17;
export const SCRYPT_R = 8;
export const SCRYPT_P = 1;
/** Lowest cost a file may declare: 2^10. Only tests go that low (TACIT_SCRYPT_N=1024). */
export const MIN_SCRYPT_LOG_N = 10;
/** Highest cost a file may declare: 2^20 (1 GiB); bounds the memory a planted file can demand. */
export const MAX_SCRYPT_LOG_N = 20;

/** Parses TACIT_SCRYPT_N (a power of two between 2^10 and 2^20); undefined if unset. */
export function scryptLogNFromEnv(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  const log = Math.log2(n);
  if (!Number.isInteger(n) || !Number.isInteger(log) || log < MIN_SCRYPT_LOG_N || log > MAX_SCRYPT_LOG_N) {
    throw new ClientError('INVALID_ARGUMENT', `TACIT_SCRYPT_N must be a power of two between 2^${MIN_SCRYPT_LOG_N} and 2^${MAX_SCRYPT_LOG_N}`);
  }
  return log;
}

export function deriveKeys(passphrase: string, salt: Uint8Array, logN: number): Promise<{ key: Buffer; verifier: Buffer }> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) => {
    scrypt(passphrase.normalize('NFC'), salt, 64, { N, r: SCRYPT_R, p: SCRYPT_P, maxmem: 256 * N * SCRYPT_R }, (err, out) => {
      if (err) {
        reject(new ClientError('STATE_CORRUPT', 'cannot derive the state key (scrypt failed)'));
        return;
      }
      const key = Buffer.from(out.subarray(0, 32));
      const verifier = createHash('sha256').update(out.subarray(32)).digest().subarray(0, VERIFIER_BYTES);
      out.fill(0);
      resolve({ key, verifier });
    });
  });
}

