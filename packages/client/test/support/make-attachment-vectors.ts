// Writes test/fixtures/attachment-vectors.json: known answers for the attachment blob format,
// computed straight from the format's definition (docs/PROTOCOL.md, "Attachments") with
// @noble/ciphers' AES-GCM and @noble/hashes' SHA-256, not with the SDK's cipher.
//   node --import tsx packages/client/test/support/make-attachment-vectors.ts
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gcm } from '@noble/ciphers/aes.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

const CHUNK = 65536;

/** Buckets: 541, then ×21/20 rounded down, the smallest ≥ size. */
function padded(size: number): number {
  let b = 541;
  while (b < size) b = Math.floor((b * 21) / 20);
  return b;
}

export function vectorPlaintext(size: number): Uint8Array {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (i * 31 + 7) & 255;
  return p;
}

export const VECTOR_KEY = Uint8Array.from({ length: 32 }, (_, i) => i);

function blob(key: Uint8Array, plain: Uint8Array): Uint8Array {
  const total = padded(plain.length);
  const padded_ = new Uint8Array(total);
  padded_.set(plain);
  const n = Math.max(1, Math.ceil(total / CHUNK));
  const parts: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setUint32(7, i); // the low 4 bytes of the 11-byte counter
    nonce[11] = i === n - 1 ? 1 : 0;
    parts.push(gcm(key, nonce).encrypt(padded_.subarray(i * CHUNK, Math.min(total, (i + 1) * CHUNK))));
  }
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

if (process.argv[1]?.endsWith('make-attachment-vectors.ts')) {
  const sizes = [0, 1, 540, 541, 542, 1000, 65_536, 65_537, 200_000, 1_048_576];
  const vectors = sizes.map((size) => {
    const plain = vectorPlaintext(size);
    const b = blob(VECTOR_KEY, plain);
    return {
      size,
      padded: padded(size),
      blobLength: b.length,
      digest: bytesToHex(sha256(plain)),
      blobSha256: bytesToHex(sha256(b)),
      ...(b.length <= 2048 ? { blob: bytesToHex(b) } : { blobHead: bytesToHex(b.subarray(0, 64)), blobTail: bytesToHex(b.subarray(b.length - 64)) }),
    };
  });
  const buckets = [1, 541, 542, 568, 569, 10_000, 65_536, 1_000_000, 104_857_600, 2 ** 40].map((size) => ({ size, padded: padded(size) }));
  const out = {
    about: 'attachment blob format known answers: key = bytes 0..31, plaintext byte i = (31 i + 7) mod 256; made by test/support/make-attachment-vectors.ts',
    key: bytesToHex(VECTOR_KEY),
    vectors,
    buckets,
  };
  writeFileSync(join(import.meta.dirname, '..', 'fixtures', 'attachment-vectors.json'), JSON.stringify(out, null, 1) + '\n');
}
