// Safety numbers, equal to libsignal's Fingerprint (version 2): per party, iterated SHA-512 over
// its identity key and stable identifier; 30 digits each, shown in a stable order (60 digits);
// the scannable form is a small protobuf with both parties' first 32 bytes.
import { type CryptoBackend } from './backend.ts';
import { bytesEqual, concatBytes } from './bytes.ts';
import { type PublicKey } from './curve.ts';
import { fail } from './errors.ts';

/** libsignal's iteration count for safety numbers. */
export const FINGERPRINT_ITERATIONS = 5200;
/** Version of the scannable encoding (libsignal's current). */
export const SCANNABLE_FINGERPRINT_VERSION = 2;
/** Bound on the stable identifier, so hashing cost stays predictable. */
export const MAX_STABLE_ID_BYTES = 1024;

const FINGERPRINT_FORMAT_VERSION = Uint8Array.of(0, 0);

function iteratedHash(backend: CryptoBackend, iterations: number, stableId: Uint8Array, key: PublicKey): Uint8Array {
  const keyBytes = key.serialize();
  let hash = backend.sha512(FINGERPRINT_FORMAT_VERSION, keyBytes, stableId, keyBytes);
  for (let i = 1; i < iterations; i++) hash = backend.sha512(hash, keyBytes);
  return hash;
}

function displayDigits(hash: Uint8Array): string {
  let out = '';
  for (let i = 0; i < 30; i += 5) {
    let n = 0;
    for (let j = 0; j < 5; j++) n = n * 256 + (hash[i + j] as number);
    out += (n % 100000).toString().padStart(5, '0');
  }
  return out;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

function lengthDelimited(tag: number, body: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.from([(tag << 3) | 2, ...varint(body.length)]), body);
}

function scannable(version: number, local: Uint8Array, remote: Uint8Array): Uint8Array {
  return concatBytes(
    Uint8Array.from([(1 << 3) | 0, ...varint(version)]),
    lengthDelimited(2, lengthDelimited(1, local.subarray(0, 32))),
    lengthDelimited(3, lengthDelimited(1, remote.subarray(0, 32))),
  );
}

export interface SafetyNumber {
  /** 60 digits, the same string on both sides. */
  readonly displayable: string;
  /** Bytes for a QR code, from the local party's point of view. */
  readonly scannable: Uint8Array;
}

/** Compute the safety number for a pair of identities (stable ids are the users' names as bytes). */
export function safetyNumber(
  backend: CryptoBackend,
  localId: Uint8Array,
  localKey: PublicKey,
  remoteId: Uint8Array,
  remoteKey: PublicKey,
  iterations: number = FINGERPRINT_ITERATIONS,
): SafetyNumber {
  if (localId.length > MAX_STABLE_ID_BYTES || remoteId.length > MAX_STABLE_ID_BYTES) fail('INVALID_ARGUMENT', 'stable identifier too long');
  if (!Number.isInteger(iterations) || iterations < 2 || iterations > 1_000_000) fail('INVALID_ARGUMENT', 'iterations out of range');
  const local = iteratedHash(backend, iterations, localId, localKey);
  const remote = iteratedHash(backend, iterations, remoteId, remoteKey);
  const l = displayDigits(local);
  const r = displayDigits(remote);
  return { displayable: l < r ? l + r : r + l, scannable: scannable(SCANNABLE_FINGERPRINT_VERSION, local, remote) };
}

/** Compare our scannable fingerprint with the one scanned from the peer's screen. */
export function compareScannable(ours: Uint8Array, theirs: Uint8Array): boolean {
  // Theirs lists (their, our) where ours lists (our, their): swap halves and compare.
  if (ours.length !== theirs.length || ours.length < 4) return false;
  const half = (ours.length - 2) / 2;
  if (!Number.isInteger(half)) return false;
  const swapped = concatBytes(theirs.subarray(0, 2), theirs.subarray(2 + half), theirs.subarray(2, 2 + half));
  // The tags of the two halves differ (2 vs 3): rewrite them after the swap.
  swapped[2] = (2 << 3) | 2;
  swapped[2 + half] = (3 << 3) | 2;
  return bytesEqual(ours, swapped);
}
