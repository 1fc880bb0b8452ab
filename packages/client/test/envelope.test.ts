import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeEnvelope, encodeEnvelope, PADDING_BLOCK } from '../src/index.ts';

test('round trip, padded to a multiple of the block', () => {
  for (const text of ['', 'hi', 'x'.repeat(500), 'ünïcødé ✓ 🙂', 'line\nbreak']) {
    const env = { v: 1 as const, id: 'a1b2', text, sentAt: 1_700_000_000_000 };
    const bytes = encodeEnvelope(env);
    assert.equal(bytes.length % PADDING_BLOCK, 0);
    assert.deepEqual(decodeEnvelope(bytes), env);
  }
});

test('malformed envelopes decode to undefined', () => {
  const enc = (s: string): Uint8Array => {
    const b = new TextEncoder().encode(s);
    const out = new Uint8Array(b.length + 1);
    out.set(b);
    out[b.length] = 0x80;
    return out;
  };
  for (const s of ['{}', '[]', 'null', '{"v":2,"id":"a","text":"","sentAt":1}', '{"v":1,"id":"","text":"","sentAt":1}', '{"v":1,"id":"a","text":1,"sentAt":1}', '{"v":1,"id":"a","text":"","sentAt":-1}', '{"v":1,"id":"a","text":"","sentAt":1.5}', 'not json']) {
    assert.equal(decodeEnvelope(enc(s)), undefined, s);
  }
  assert.equal(decodeEnvelope(new Uint8Array(0)), undefined);
  assert.equal(decodeEnvelope(new Uint8Array(10)), undefined);
  assert.equal(decodeEnvelope(new TextEncoder().encode('{"v":1,"id":"a","text":"","sentAt":1}')), undefined); // no padding marker
});

test('decoding never throws on arbitrary bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), (b) => {
      decodeEnvelope(b);
      const padded = new Uint8Array(b.length + 1);
      padded.set(b);
      padded[b.length] = 0x80;
      decodeEnvelope(padded);
      return true;
    }),
  );
});
