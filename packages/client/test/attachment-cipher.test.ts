// The attachment cipher (src/attachment/cipher.ts) on both backends: known answers from the
// format's definition, round trips under any chunking, resumption, and refusal of every kind of
// damage (a flipped bit, truncation, extension, reordering, a wrong key, size or digest).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { gcm } from '@noble/ciphers/aes.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import {
  ATTACHMENT_CHUNK_BYTES,
  ATTACHMENT_FRAME_BYTES,
  attachmentBlobLength,
  attachmentChunkCount,
  paddedAttachmentLength,
} from '@tacit/api';
import { AttachmentDecryption, AttachmentEncryption, chunkNonce, isClientError, webAttachmentCrypto, type AttachmentCrypto } from '../src/index.js';
import { nodeAttachmentCrypto } from '../src/node.js';
import { vectorPlaintext, VECTOR_KEY } from './support/make-attachment-vectors.js';

interface Vector {
  size: number;
  padded: number;
  blobLength: number;
  digest: string;
  blobSha256: string;
  blob?: string;
  blobHead?: string;
  blobTail?: string;
}
const VECTORS = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'attachment-vectors.json'), 'utf8')) as {
  key: string;
  vectors: Vector[];
  buckets: { size: number; padded: number }[];
};

const BACKENDS: AttachmentCrypto[] = [nodeAttachmentCrypto(), webAttachmentCrypto()];
const seed = process.env['TACIT_TEST_SEED'] === undefined ? undefined : Number(process.env['TACIT_TEST_SEED']);
const fcOptions = (numRuns: number) => ({ numRuns, ...(seed !== undefined ? { seed } : {}) });

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `bytes` cut at the given offsets (sorted, deduplicated, within bounds). */
function cut(bytes: Uint8Array, at: number[]): Uint8Array[] {
  const points = [...new Set(at.map((x) => x % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  return out;
}

async function collect(gen: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of gen) parts.push(p.slice());
  return concat(parts);
}

async function encrypt(c: AttachmentCrypto, key: Uint8Array, plain: Uint8Array, pieces: Uint8Array[] = [plain], fromChunk = 0) {
  const enc = await AttachmentEncryption.start(c, key, plain.length, fromChunk);
  const blob = await collect(enc.frames(pieces));
  return { blob, digest: enc.digest };
}

async function decrypt(c: AttachmentCrypto, key: Uint8Array, size: number, digest: Uint8Array, pieces: Iterable<Uint8Array>): Promise<Uint8Array> {
  const dec = await AttachmentDecryption.start(c, key, size, digest);
  return collect(dec.plaintext(pieces));
}

async function refused(p: Promise<unknown>, code = 'ATTACHMENT_CORRUPT', why?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isClientError(e), String(e));
    assert.equal(e.code, code);
    if (why) assert.match(e.message, why);
    return true;
  });
}

test('padding buckets and blob lengths match the pinned table', () => {
  for (const b of VECTORS.buckets) assert.equal(paddedAttachmentLength(b.size), b.padded, `size ${b.size}`);
  for (const v of VECTORS.vectors) {
    assert.equal(paddedAttachmentLength(v.size), v.padded);
    assert.equal(attachmentBlobLength(v.size), v.blobLength);
  }
  // At most 5% more than the file, and never less.
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (size) => {
      const p = paddedAttachmentLength(size);
      assert.ok(p >= size && p >= 541 && (size < 541 || p <= Math.ceil(size * 1.05)));
    }),
    fcOptions(2000),
  );
  assert.throws(() => paddedAttachmentLength(-1), RangeError);
  assert.throws(() => paddedAttachmentLength(2 ** 40 + 1), RangeError);
  assert.throws(() => paddedAttachmentLength(1.5), RangeError);
});

test('the nonce is the chunk index (11 bytes, big-endian) then the final flag', () => {
  assert.equal(bytesToHex(chunkNonce(0, false)), '000000000000000000000000');
  assert.equal(bytesToHex(chunkNonce(0, true)), '000000000000000000000001');
  assert.equal(bytesToHex(chunkNonce(0x0102_0304, false)), '000000000000000102030400');
  assert.equal(bytesToHex(chunkNonce(2 ** 40 + 5, true)), '000000000001000000000501');
});

for (const c of BACKENDS) {
  test(`${c.name}: known answers (encrypt and decrypt)`, async () => {
    assert.equal(VECTORS.key, bytesToHex(VECTOR_KEY));
    for (const v of VECTORS.vectors) {
      const plain = vectorPlaintext(v.size);
      const { blob, digest } = await encrypt(c, VECTOR_KEY, plain);
      assert.equal(bytesToHex(digest), v.digest, `digest, size ${v.size}`);
      assert.equal(blob.length, v.blobLength, `length, size ${v.size}`);
      assert.equal(bytesToHex(sha256(blob)), v.blobSha256, `blob, size ${v.size}`);
      if (v.blob !== undefined) assert.equal(bytesToHex(blob), v.blob);
      if (v.blobHead !== undefined) assert.equal(bytesToHex(blob.subarray(0, 64)), v.blobHead);
      if (v.blobTail !== undefined) assert.equal(bytesToHex(blob.subarray(blob.length - 64)), v.blobTail);
      assert.deepEqual(await decrypt(c, VECTOR_KEY, v.size, hexToBytes(v.digest), [blob]), plain);
    }
  });

  test(`${c.name}: any chunking of either stream gives the same bytes`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 3 * ATTACHMENT_CHUNK_BYTES + 100 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (size, plainCuts, blobCuts) => {
          const key = c.randomBytes(32);
          const plain = c.randomBytes(size);
          const whole = await encrypt(c, key, plain);
          const pieces = await encrypt(c, key, plain, cut(plain, plainCuts));
          assert.deepEqual(pieces.blob, whole.blob);
          assert.deepEqual(pieces.digest, whole.digest);
          assert.equal(whole.blob.length, attachmentBlobLength(size));
          assert.deepEqual(await decrypt(c, key, size, whole.digest, cut(whole.blob, blobCuts)), plain);
        },
      ),
      fcOptions(40),
    );
  });

  test(`${c.name}: resuming from a chunk yields the rest of the same blob`, async () => {
    const key = c.randomBytes(32);
    const plain = c.randomBytes(4 * ATTACHMENT_CHUNK_BYTES + 777);
    const { blob, digest } = await encrypt(c, key, plain);
    const chunks = attachmentChunkCount(paddedAttachmentLength(plain.length));
    for (let k = 1; k < chunks; k++) {
      const rest = await encrypt(c, key, plain, cut(plain, [1000, ATTACHMENT_CHUNK_BYTES * k - 3]), k);
      assert.deepEqual(rest.blob, blob.subarray(k * ATTACHMENT_FRAME_BYTES), `from chunk ${k}`);
      assert.deepEqual(rest.digest, digest);
    }
    await assert.rejects(AttachmentEncryption.start(c, key, plain.length, chunks), (e: unknown) => isClientError(e) && e.code === 'INVALID_ARGUMENT');
  });

  test(`${c.name}: a flipped bit anywhere is refused`, async () => {
    const key = c.randomBytes(32);
    const plain = c.randomBytes(2 * ATTACHMENT_CHUNK_BYTES + 5000);
    const { blob, digest } = await encrypt(c, key, plain);
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: blob.length * 8 - 1 }), async (bit) => {
        const bad = blob.slice();
        bad[bit >> 3]! ^= 1 << (bit & 7);
        await refused(decrypt(c, key, plain.length, digest, [bad]), 'ATTACHMENT_CORRUPT', /not authentic/);
      }),
      fcOptions(60),
    );
  });

  test(`${c.name}: truncated, extended, reordered, duplicated or foreign blobs are refused`, async () => {
    const key = c.randomBytes(32);
    const plain = c.randomBytes(3 * ATTACHMENT_CHUNK_BYTES + 100);
    const { blob, digest } = await encrypt(c, key, plain);
    const F = ATTACHMENT_FRAME_BYTES;
    // Truncated at every chunk boundary, inside chunks, and to nothing.
    for (const n of [0, 1, 16, 17, F - 1, F, F + 1, 2 * F, 3 * F, blob.length - 1]) {
      await refused(decrypt(c, key, plain.length, digest, [blob.subarray(0, n)]));
    }
    // Extended: a copy of the last chunk, or one stray byte.
    await refused(decrypt(c, key, plain.length, digest, [blob, blob.subarray(3 * F)]));
    await refused(decrypt(c, key, plain.length, digest, [blob, new Uint8Array(1)]));
    // Two chunks swapped; a chunk repeated in place of another.
    const swapped = concat([blob.subarray(F, 2 * F), blob.subarray(0, F), blob.subarray(2 * F)]);
    await refused(decrypt(c, key, plain.length, digest, [swapped]));
    const repeated = concat([blob.subarray(0, F), blob.subarray(0, F), blob.subarray(2 * F)]);
    await refused(decrypt(c, key, plain.length, digest, [repeated]));
    // Another key; the right blob under a pointer with another digest or size.
    await refused(decrypt(c, c.randomBytes(32), plain.length, digest, [blob]));
    const otherDigest = digest.slice();
    otherDigest[0]! ^= 1;
    await refused(decrypt(c, key, plain.length, otherDigest, [blob]), 'ATTACHMENT_CORRUPT', /digest/);
    await refused(decrypt(c, key, plain.length + 1, digest, [blob]));
    await refused(decrypt(c, key, plain.length - 1, digest, [blob]));
    // A pointer claiming a much smaller file: refused at the first chunk past its bucket.
    await refused(decrypt(c, key, 10, digest, [blob]), 'ATTACHMENT_CORRUPT', /longer than its size allows/);
  });

  test(`${c.name}: the last bytes of the file are produced only after the digest checked out`, async () => {
    const key = c.randomBytes(32);
    const plain = c.randomBytes(ATTACHMENT_CHUNK_BYTES + 10);
    const { blob, digest } = await encrypt(c, key, plain);
    const wrong = digest.slice();
    wrong[31]! ^= 0x80;
    const dec = await AttachmentDecryption.start(c, key, plain.length, wrong);
    let out = 0;
    await refused(
      (async () => {
        for await (const p of dec.plaintext([blob])) out += p.length;
      })(),
    );
    assert.ok(out < plain.length, 'never the whole file');
  });

  test(`${c.name}: other padding up to the bucket is accepted; non-zero padding is not`, async () => {
    // A sender with another padding policy: two full chunks and no padding at all (the final chunk
    // is full, so the blob ends exactly at a chunk boundary).
    const key = c.randomBytes(32);
    const plain = c.randomBytes(2 * ATTACHMENT_CHUNK_BYTES);
    const seal = (i: number, final: boolean, p: Uint8Array) => gcm(key, chunkNonce(i, final)).encrypt(p);
    const blob = concat([seal(0, false, plain.subarray(0, ATTACHMENT_CHUNK_BYTES)), seal(1, true, plain.subarray(ATTACHMENT_CHUNK_BYTES))]);
    assert.deepEqual(await decrypt(c, key, plain.length, sha256(plain), [blob]), plain);
    // The same chunks, the first one's last byte counted as (non-zero) padding.
    const short = plain.length - ATTACHMENT_CHUNK_BYTES - 1;
    await refused(decrypt(c, key, short, sha256(plain.subarray(0, short)), [blob]), 'ATTACHMENT_CORRUPT', /padding/);
  });

  test(`${c.name}: a file that changes size while it is read is refused`, async () => {
    const key = c.randomBytes(32);
    const enc1 = await AttachmentEncryption.start(c, key, 100);
    await refused(collect(enc1.frames([new Uint8Array(60), new Uint8Array(60)])), 'INVALID_ARGUMENT', /grew/);
    const enc2 = await AttachmentEncryption.start(c, key, 100);
    await refused(collect(enc2.frames([new Uint8Array(60)])), 'INVALID_ARGUMENT', /shrank/);
    await refused(AttachmentEncryption.start(c, new Uint8Array(16), 100), 'INVALID_ARGUMENT');
    await refused(AttachmentDecryption.start(c, key, 100, new Uint8Array(31)), 'INVALID_ARGUMENT');
  });

  test(`${c.name}: encryption reads the source no further ahead than one chunk`, async () => {
    const key = c.randomBytes(32);
    const size = 20 * ATTACHMENT_CHUNK_BYTES;
    let read = 0;
    async function* source() {
      for (let i = 0; i < size / 4096; i++) {
        read += 4096;
        yield new Uint8Array(4096);
      }
    }
    const enc = await AttachmentEncryption.start(c, key, size);
    let frames = 0;
    for await (const f of enc.frames(source())) {
      frames++;
      assert.equal(f.length, frames === 21 ? attachmentBlobLength(size) - 20 * ATTACHMENT_FRAME_BYTES : ATTACHMENT_FRAME_BYTES);
      assert.ok(read <= frames * ATTACHMENT_CHUNK_BYTES, `read ${read} bytes for ${frames} frames`);
    }
  });
}

test('both backends make the same blob and open each other', async () => {
  const [a, b] = BACKENDS as [AttachmentCrypto, AttachmentCrypto];
  const key = a.randomBytes(32);
  const plain = a.randomBytes(150_000);
  const x = await encrypt(a, key, plain);
  const y = await encrypt(b, key, plain);
  assert.deepEqual(x.blob, y.blob);
  assert.deepEqual(await decrypt(b, key, plain.length, x.digest, [x.blob]), plain);
  assert.deepEqual(await decrypt(a, key, plain.length, y.digest, [y.blob]), plain);
});
